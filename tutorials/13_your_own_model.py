# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Your own latent causal model
#
# An ILCM is a Pyro program built from parts: a noise prior, an intervention prior, a
# distribution of the new value, a likelihood, and a **solution function** `s` that maps
# the exogenous noise `e` to the causal variables `z = s(e)`
# ([concepts](../concepts)). [Tutorial 02](02_quickstart) swapped the likelihood and the
# intervention prior. Here we write a solution function of our own — a different
# assumption about the causal mechanisms — plug it into the same program, check what the
# program says before fitting anything (a prior predictive check), fit it with the same
# inference, and compare it with the default model by the ELBO and by DCI.
#
# No extra is needed; a model with custom parts trains with the Pyro backend (the JAX
# backend knows the built-in parts only).

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import torch
from pyro.infer import Predictive
from torch import nn

from pyrocrl import ILCM, encode, fit_ilcm
from pyrocrl.data import simulate_splits
from pyrocrl.inference import get_recipe
from pyrocrl.metrics import dci, match_importance
from pyrocrl.models import toy2d

torch.set_num_threads(1)
torch.manual_seed(0)
smoke_test = "CI" in os.environ
n = 2
sizes = {"train": 3_000, "test": 1_000, "dci": 1_000} if smoke_test else None
recipe = get_recipe("fast")
if smoke_test:  # a few dozen steps: enough to run every line, not to learn well
    recipe = recipe.scaled(0.3)

# %% [markdown]
# ## The data: a nonlinear mechanism with additive noise
#
# The 2D toy ([tutorial 10](10_the_2d_toy)) has two causal variables, `z1 → z2`, with
#
# $$ z_1 = e_1, \qquad z_2 = 1.5 \tanh(2 z_1) + 0.5\, e_2, \qquad e \sim \mathcal N(0, I), $$
#
# seen through a nonlinear mixing of the plane. The noise of `z2` is *additive*: it
# shifts `z2` by the same amount whatever `z1` is. Full size: 100,000 training pairs and
# 10,000 each for testing and for the DCI regressors.

# %%
truth = toy2d()
splits = simulate_splits(truth, seed=0, sizes=sizes)
train, test = splits["train"], splits["test"]
pairs = torch.as_tensor(train["x"].values, dtype=torch.float32)  # (N, 2, D)

# %% [markdown]
# ## A solution function of our own
#
# The ILCM never writes its graph down. Its solution function is given through the
# inverse maps `T_e: z ↦ e`, one per variable, each affine in `z_k`:
#
# $$ e_k = \mathrm{shift}_k(e_{\setminus k}) + \mathrm{scale}_k(e_{\setminus k})\, z_k ,$$
#
# where `e_\k` is every noise component but the `k`-th. The library's default
# (`AffineSolution`) computes both shift and scale with small networks: noise may enter
# each variable with a strength that depends on the others (heteroskedastic). The toy's
# mechanism is narrower: an *additive noise* model `z_k = f_k(parents) + σ_k e_k` has
# `shift_k = −f_k / σ_k`, a function of the other components, and a **constant** scale
# `1 / σ_k`. So our solution function keeps a network for the shift (tanh units, as the
# toy's mechanism happens to be a tanh) and makes the scale a single learned number per
# variable.
#
# Anything with this interface can be a solution function of a pair program:
#
# - an attribute `n`, the number of causal variables;
# - `shift_scale(e)`: `(shift, scale)`, each `(*, n)`, from noise `(*, n)` — the model
#   uses it to turn an intervention's new value into noise, and the guide to place the
#   value site;
# - a call `e ↦ z = (e − shift) / scale`.
#
# It must be an `nn.Module` so that its parameters become the model's. Variable `k`
# must never read its own noise component: a mask zeroes it in the network's input.
# Like the default, it starts with a large scale (`exp(2.3) ≈ 10`) and small shifts.


# %%
class AdditiveNoiseSolution(nn.Module):
    """``z_k = (e_k − shift_k(e_\\k)) / scale_k``: a tanh network per shift, a constant
    learned scale per variable (an additive-noise mechanism)."""

    def __init__(self, n, hidden=32, min_scale=0.2, init_log_scale=2.3):
        super().__init__()
        self.n, self.min_scale = n, min_scale
        self.shift_nets = nn.ModuleList(
            nn.Sequential(nn.Linear(n, hidden), nn.Tanh(), nn.Linear(hidden, 1)) for _ in range(n)
        )
        for net in self.shift_nets:  # start close to z_k ∝ e_k
            nn.init.normal_(net[-1].weight, std=0.01)
            nn.init.zeros_(net[-1].bias)
        self.log_scale = nn.Parameter(torch.full((n,), init_log_scale))
        self.register_buffer("masks", 1.0 - torch.eye(n))  # row k: what z_k may read

    def shift_scale(self, e):
        masked = zip(self.shift_nets, self.masks, strict=True)
        shift = torch.cat([net(e * mask) for net, mask in masked], -1)
        scale = self.log_scale.exp() + self.min_scale
        return shift, scale.expand_as(shift)

    def forward(self, e):
        shift, scale = self.shift_scale(e)
        return (e - shift) / scale


def additive_ilcm():
    return ILCM(train.sizes["feature"], n, solution=AdditiveNoiseSolution(n))


# %% [markdown]
# Nothing else changes: `ILCM(..., solution=...)` runs the same program (`noise`,
# `target`, `value`, `z`, `z_tilde`, `x`, `x_tilde`), and the guide, the bound and the
# recipe work unchanged.
#
# ## A prior predictive check
#
# Before fitting, draw pairs from the program and hold them against the data. We fit the
# model's feature transform first (the observations' mean and spread, not learning), so
# that the likelihood speaks in the data's units, and draw 2,000 pairs with Pyro's
# `Predictive`, which runs the program with nothing observed (`size` is the number of
# pairs).

# %%
prior_model = additive_ilcm()
prior_model.fit_features(pairs)
sites = ["x", "x_tilde", "target", "z", "z_tilde"]
with torch.no_grad():
    draws = Predictive(prior_model.model, num_samples=1, return_sites=sites)(size=2000)
prior = {k: v[0].numpy() for k, v in draws.items()}  # one draw of 2,000 pairs
data_x, data_x_tilde = train["x"].values[:2000, 0], train["x"].values[:2000, 1]


def change_size(x, x_tilde):
    return np.log10(np.linalg.norm(x_tilde - x, axis=-1) + 1e-6)


def predictive_figure(draws, title):
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    axes[0].scatter(*data_x.T, s=2, color="0.6", label="data")
    axes[0].scatter(*draws["x"].T, s=2, color="C0", alpha=0.5, label=title)
    axes[0].set(xlabel="x1", ylabel="x2", title="observations (first view)")
    axes[0].legend(markerscale=4)
    bins = np.linspace(-6.5, 1.5, 50)
    axes[1].hist(change_size(data_x, data_x_tilde), bins, color="0.6", label="data")
    axes[1].hist(
        change_size(draws["x"], draws["x_tilde"]), bins, color="C0", alpha=0.6, label=title
    )
    axes[1].set(xlabel="log10 ‖x~ − x‖ (10⁻⁶ added)", ylabel="pairs", title="change per pair")
    axes[1].legend()
    hit = draws["target"] > 0
    axes[2].scatter(*draws["z"].T, s=2, color="C0", label="z (first world)")
    axes[2].scatter(
        *draws["z_tilde"][hit].T, s=2, color="C3", alpha=0.4, label="z~ of intervened pairs"
    )
    axes[2].set(xlabel="z1", ylabel="z2", title=f"causal variables ({title})")
    axes[2].legend(markerscale=4)
    fig.tight_layout()


def value_spread(draws):
    """Spread of the intervened variables' new values over that of the same variables
    in the first world."""
    hit = draws["target"] > 0
    k = draws["target"][hit] - 1  # target k is column k − 1
    rows = np.flatnonzero(hit)
    return draws["z_tilde"][rows, k].std() / draws["z"][rows, k].std()


predictive_figure(prior, "prior predictive")
plt.show()
no_change_data = np.mean(change_size(data_x, data_x_tilde) < -5)
no_change_prior = np.mean(change_size(prior["x"], prior["x_tilde"]) < -5)
print(f"pairs without any change: data {no_change_data:.3f}, prior {no_change_prior:.3f}")
print(f"prior pairs with target 0 (no intervention): {np.mean(prior['target'] == 0):.3f}")
print("spread of x: data", data_x.std(0).round(2), " prior", prior["x"].std(0).round(2))
print(f"intervened values spread {value_spread(prior):.1f} × as far as the variables do")

# %% [markdown]
# What the check shows:
#
# - **Where and how wide**: the prior's observations sit at the centre of the data (the
#   feature transform at work) but in a small round blob: the untrained decoder hardly
#   reads the noise, so almost all the spread of `x` must still be learned.
# - **Which pairs change**: a third of the data's pairs (those without intervention) show
#   the same observation twice. The program draws "no intervention" as often (`target`
#   0 in about a third of the prior's pairs), yet *none* of its pairs is unchanged: the
#   Normal likelihood draws each view with its own observation noise, wide before
#   training. The data are noise-free, so the fit has to shrink the likelihood's scale;
#   it can, since the scale is learned.
# - **What an intervention does**: our solution function starts with a scale of about
#   10, so `z = (e − shift) / scale` varies about a tenth as much as the noise, while the
#   new value of an intervened variable is drawn from `N(0, 1)`: in the prior, an
#   intervention throws a variable ten times further than it ever goes on its own (red
#   against blue). This is why the recipe keeps the prior on the new value switched off
#   for the first epochs ([training](../training)): until the mechanisms have been
#   learned, that prior would only pull the wrong way.
#
# None of this calls for a change of the program — each mismatch is in a part that
# training learns — but it says where training will spend its first steps. We fit it.

# %%
assert no_change_data > 0.25 and no_change_prior == 0
assert abs(np.mean(prior["target"] == 0) - 1 / 3) < 0.05
assert np.all(prior["x"].std(0) < 0.3 * data_x.std(0))
assert value_spread(prior) > 5

# %% [markdown]
# ## Fit both models with the same inference
#
# `fit_ilcm` takes a function that builds the model; the guide (`ILCMGuide`), the bound
# (`PairELBO`) and the recipe are the defaults. The default ILCM is fitted beside it,
# with the same recipe and model seed.

# %%
fits = {}
for name, model in (("additive", additive_ilcm), ("default", None)):
    fits[name] = fit_ilcm(
        train, n, test=test, dci_train=splits["dci"], recipe=recipe, seed=0, model=model
    )
    print(fits[name][2].format(), "\n")

# %% [markdown]
# ## A posterior predictive look
#
# The same picture with pairs drawn from the fitted program (parameters now learned):

# %%
fitted_model = fits["additive"][0]
with torch.no_grad():
    draws = Predictive(fitted_model.model, num_samples=1, return_sites=sites)(size=2000)
posterior = {k: v[0].numpy() for k, v in draws.items()}
predictive_figure(posterior, "fitted model")
plt.show()
calm_prior, calm_posterior = prior["target"] == 0, posterior["target"] == 0
shrink = np.median(
    np.linalg.norm(posterior["x_tilde"] - posterior["x"], axis=-1)[calm_posterior]
) / np.median(np.linalg.norm(prior["x_tilde"] - prior["x"], axis=-1)[calm_prior])
print(f"change between the views of pairs without intervention: {shrink:.3g} × the prior's")
print(f"intervened values spread {value_spread(posterior):.2f} × as far as the variables do")
print("spread of x: data", data_x.std(0).round(2), " fitted", posterior["x"].std(0).round(2))

# %% [markdown]
# The fitted program draws its observations along the bent band of the data. Its pairs
# without intervention now change by about a quarter of what they did under the prior
# (0.26× on the full run): they form a group of their own, well below the intervened
# pairs, but do not reach zero as the data's do, since the fitted likelihood still draws
# each view with a little noise. And the new values of intervened variables now spread
# about as far as the variables themselves (1.03× on the full run, against 10.3× under
# the prior): the solution function's scale has come down to where the prior on the new
# value makes sense.

# %%
assert smoke_test or (shrink < 0.5 and 0.5 < value_spread(posterior) < 2)

# %% [markdown]
# ## Compare: ELBO and DCI
#
# Both models are scored on the same test pairs. The ELBO per pair is a lower bound on
# `log p(x, x~)`, so a higher value means the model explains the held-out pairs better;
# DCI disentanglement and completeness say how well each learned variable captures one
# true variable (the regressors are fitted on the separate DCI pairs).

# %%
keys = ("elbo", "dci_disentanglement", "dci_completeness", "intervention_accuracy")
print(f"{'':>24s} {'additive':>9s} {'default':>9s}")
for key in keys:
    print(f"{key:>24s} " + " ".join(f"{fits[m][2].metrics[key]:9.4f}" for m in fits))
scores = {m: fits[m][2].metrics for m in fits}

# %% [markdown]
# To see the variables themselves, we match learned to true variables as in
# [tutorial 02](02_quickstart) (learned variable `j` is true variable `match[j]`; in code
# variables are 0-based, `z1` is column 0) and draw each learned variable against its
# true partner.

# %%
x_test, z_test = test["x"].values[:, 0], test["z"].values[:, 0]
half = len(x_test) // 2
fig, axes = plt.subplots(2, n, figsize=(8, 7))
for row, name in enumerate(fits):
    learned = encode(fits[name][1], torch.as_tensor(x_test))["z"].numpy()
    matched = dci(learned[:half], z_test[:half], learned[half:], z_test[half:])
    match = match_importance(matched.importance)
    for j, ax in enumerate(axes[row]):
        ax.scatter(z_test[:2000, match[j]], learned[:2000, j], s=2)
        ax.set_xlabel(f"true z{match[j] + 1}")
        ax.set_ylabel(f"{name}: learned variable {j + 1}")
fig.tight_layout()
plt.show()

# %% [markdown]
# On the full run (model seed 0) the two models are close, and the default one is
# slightly ahead on both counts: an ELBO per pair of −2.29 against −2.46 for the additive
# model, DCI disentanglement 0.907 against 0.884; both find the intervention target of
# 97 % of the test pairs. Being the right model did not make ours the better one here.
# The default contains it (its scale networks can learn to be constant), and differences
# this small are within what fits of this toy vary from one model seed to another: one
# seed does not rank two models this close. What the comparison does show is that a
# program of our own trains with the unchanged inference to a representation of nearly
# the same quality.

# %%
additive, default = scores["additive"], scores["default"]
assert all(np.isfinite(scores[m]["elbo"]) for m in scores)
if not smoke_test:
    assert min(additive["dci_disentanglement"], default["dci_disentanglement"]) > 0.85
    assert min(additive["intervention_accuracy"], default["intervention_accuracy"]) > 0.95
    assert 0 < default["elbo"] - additive["elbo"] < 0.5
    assert 0 < default["dci_disentanglement"] - additive["dci_disentanglement"] < 0.1

# %% [markdown]
# ## Going further
#
# - Other parts swap the same way: a subclass of `ILCM` overrides `noise_dist` (e.g. a
#   Laplace noise prior), `target_dist` or `value_dist`, and the `likelihood` argument
#   takes any module that maps noise to a distribution over `x`.
# - A model with a solution function of your own is saved like any other
#   (`fit_ilcm(..., output=...)`); its configuration cannot rebuild the solution
#   function, so load it with `pyrocrl.load_ilcm(path, model=additive_ilcm)`: the
#   checkpoint's state goes into the model that function builds, after the same checks
#   as for the built-in parts.
# - [Tutorial 14](14_training_loop_by_hand) writes the training loop itself out;
#   [training](../training) explains the recipe.
#
# ## References
#
# - Brehmer, J., de Haan, P., Lippe, P., Cohen, T. (2022). *Weakly supervised causal
#   representation learning.* NeurIPS.
# - Hoyer, P. O., Janzing, D., Mooij, J. M., Peters, J., Schölkopf, B. (2009). *Nonlinear
#   causal discovery with additive noise models.* NeurIPS.
# - Eastwood, C., Williams, C. K. I. (2018). *A framework for the quantitative evaluation
#   of disentangled representations.* ICLR (the DCI scores).
# - Gabry, J., Simpson, D., Vehtari, A., Betancourt, M., Gelman, A. (2019).
#   *Visualization in Bayesian workflow.* JRSS A (prior and posterior predictive checks).
# - Pyro documentation: [`pyro.infer.Predictive`](https://docs.pyro.ai/en/stable/inference_utilities.html#pyro.infer.predictive.Predictive)
#   and [modules in Pyro](https://pyro.ai/examples/modules.html).
