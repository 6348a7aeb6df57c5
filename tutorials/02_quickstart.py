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
# # Quickstart: fit an implicit latent causal model to weakly supervised pairs
#
# We observe pairs `(x, x~)` of a system before and after an unknown intervention
# ([tutorial 01](01_simulate_pairs) simulates them). An **implicit latent causal model**
# (ILCM; Brehmer et al., 2022) explains them with exogenous noise, an intervention
# target and a new value for the intervened variable, all sample sites of one Pyro
# program; an amortized guide infers them. This tutorial
#
# 1. writes down the generative story and draws the Pyro program;
# 2. fits an ILCM to the scaling toy, where the truth is known, and reads the report;
# 3. matches learned to true variables — the convention every later tutorial uses — and
#    looks at what was learned;
# 4. **extends the generative model** (a heavier-tailed likelihood and a learned
#    intervention prior) and fits it again with the same inference code.
#
# **Needs** no extra: the base install (`pip install pyrocrl`) is enough. Background:
# [concepts](../concepts), [training](../training), [getting started](../getting-started).
#
# **Numbering.** In the text the causal variables are z_1 … z_n and an intervention
# target is a label: 0 means "no intervention", k means z_k. In code, arrays are 0-based:
# z_k is column `k - 1` of an array of causal variables, while target labels keep their
# values (column `k` of the intervention posterior below is target k, column 0 is "none").

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import pyro
import pyro.distributions as dist
import torch

import pyrocrl
from pyrocrl.data import make_simulator, simulate_splits
from pyrocrl.inference import get_recipe, predict_targets
from pyrocrl.metrics import dci, match_importance, match_interventions
from pyrocrl.plots import plot_model

torch.set_num_threads(1)
pyro.set_rng_seed(0)  # torch, numpy and random; the fits below take their own seeds
smoke_test = "CI" in os.environ
n = 3
sizes = {"train": 3_000, "test": 1_000, "dci": 1_000} if smoke_test else None

# %% [markdown]
# ## The generative story
#
# A latent causal model with $n$ causal variables explains one pair in four steps.
#
# 1. **Noise.** Exogenous noise $e \sim \mathcal N(0, I_n)$, shared by both worlds of the
#    pair. Its components are independent: one per causal mechanism.
# 2. **Intervention.** A target $I \sim \mathrm{Categorical}(\pi)$ over $\{0, 1, \dots,
#    n\}$, uniform by default ($\pi_k = 1 / (n + 1)$), with $I = 0$ for "nothing
#    happened", and a new value $v \sim \mathcal N(0, 1)$ for the intervened variable.
# 3. **Causal variables.** The *solution function* $s$ maps noise to causal variables,
#    $z = s(e)$. Its $k$-th component $z_k = s_k(e_k; e_{\setminus k})$ is invertible in
#    $e_k$ given the other components, so an intervention $\mathrm{do}(z_I = v)$ can be
#    written on the noise: the *intervened noise* $\tilde e$ equals $e$ except
#    $\tilde e_I = s_I^{-1}(v; e_{\setminus I})$, and the second world is $\tilde z =
#    s(\tilde e)$. Every descendant of $z_I$ changes through $s$; nothing else does.
# 4. **Observations.** A decoder gives the likelihood of each world,
#    $x \sim p(x \mid e)$ and $\tilde x \sim p(\tilde x \mid \tilde e)$ (here a Gaussian
#    whose mean and scale are networks).
#
# $$
# e \sim \mathcal N(0, I_n),\quad I \sim \mathrm{Cat}(\pi),\quad v \sim \mathcal N(0, 1),
# \quad \tilde e = e \text{ with } \tilde e_I = s_I^{-1}(v; e_{\setminus I}),
# \quad z = s(e),\ \tilde z = s(\tilde e),\quad x \sim p(x \mid e),\
# \tilde x \sim p(\tilde x \mid \tilde e).
# $$
#
# **Noise versus causal variables.** The noise components are independent by
# construction; the causal variables are not — $z_j$ depends on $e_i$ exactly when
# $i = j$ or $z_i$ is an ancestor of $z_j$. The graph is therefore nowhere written
# down: it lives in which noise components each $s_k$ reads. That is what makes the model
# *implicit*. pyrocrl's built-in solution function is affine in each $z_k$,
# $e_k = a_k(e_{\setminus k}) + b_k(e_{\setminus k})\, z_k$, with small networks for
# $a_k$ and $b_k$, so inverting it for an intervention is one multiply-add. The decoder
# reads noise, not causal variables: an intervention then changes exactly one of its
# inputs ([concepts](../concepts)).
#
# In the Pyro program `pyrocrl.ILCM.model` these are the sites `noise`, `target`, `value`
# (sampled), `noise_tilde`, `z`, `z_tilde` (deterministic) and `x`, `x_tilde` (observed),
# all inside a plate `pair`. `pyro.render_model` would draw it but needs graphviz;
# `pyrocrl.plots.plot_model` draws the same relations
# (`pyro.infer.inspect.get_model_relations`) with matplotlib. Passing observations makes
# `x` and `x_tilde` observed (shaded); latent sites are open, deterministic ones dashed.

# %%
lcm = make_simulator("scaling", n=n, graph_seed=302)
untrained = pyrocrl.ILCM(dim_x=lcm.dim_x, n=n)
x_few = lcm.model(size=4)
figure = plot_model(untrained.model, x_few["x"], x_few["x_tilde"])
plt.show()
drawn = {t.get_gid() for t in figure.axes[0].texts if " -> " in (t.get_gid() or "")}
print(sorted(drawn))
assert {"noise -> x", "noise_tilde -> x_tilde"} <= drawn  # the decoder reads noise
assert {"noise -> noise_tilde", "target -> noise_tilde", "value -> noise_tilde"} <= drawn
assert {"noise -> z", "noise_tilde -> z_tilde"} <= drawn  # z = s(e), z~ = s(e~)
assert not any(edge.startswith(("z ", "z_tilde ")) for edge in drawn)  # nothing reads z

# %% [markdown]
# ## Data
#
# The scaling toy with three causal variables on a random DAG (graph seed 302), linear
# mechanisms, seen through a random rotation. `simulate_splits` draws three independent
# sets from it (data seed 302), each with its own random stream ([data](../data)):
#
# - **train** (100,000 pairs): the only pairs the model is fitted to; their ground truth
#   is never used;
# - **test** (10,000): held out, to score the fit — ELBO, intervention accuracy and DCI;
# - **dci** (10,000): pairs on which the DCI regressors are fitted. DCI (Eastwood &
#   Williams, 2018) trains one regressor per true variable on the learned ones and reads
#   their feature importances; fitting them on their own pairs and scoring them on test
#   pairs keeps the score out of sample.
#
# In smoke mode (`CI` set) the sets have 3,000, 1,000 and 1,000 pairs.

# %%
splits = simulate_splits(lcm, seed=302, sizes=sizes)
print({name: ds.sizes["pair"] for name, ds in splits.items()})
expected_sizes = sizes or {"train": 100_000, "test": 10_000, "dci": 10_000}
assert {name: ds.sizes["pair"] for name, ds in splits.items()} == expected_sizes

# %% [markdown]
# ## The recipe
#
# Maximizing the ELBO from a random start rarely finds the identifiable solution, so
# training follows a *recipe* (`pyrocrl.inference.Recipe`), a schedule in epochs. The
# default `"fast"` recipe runs 3.5 epochs in three phases:
#
# - **pretrain** (epochs 0–0.3): a VAE on each view separately, with a small KL weight
#   ($\beta = 10^{-3}$), no causal structure; the encoder starts from the linear solution
#   of the pair statistics;
# - **soft** (0.3–2.75): the pair program, with $\beta$ rising to 1 by epoch 1 and the
#   ELBO summed over every intervention hypothesis $I$; the prior on the intervened value
#   switches on at epoch 1.5 (before, the intervened noise has a flat prior while the
#   encoders settle), and penalties that favour sparse, balanced changes fade out by epoch 2;
# - **deterministic** (2.75–3.5): only the most probable hypothesis of each pair is used.
#
# `"fast-anneal"` adds a falling learning rate over the last phase, `"authors"` is the
# 90-epoch schedule of the paper. [Training](../training) explains each choice. In smoke
# mode the schedule is compressed to 30 % (`recipe.scaled(0.3)`): enough to run every
# line, not to learn well.

# %%
recipe = get_recipe("fast")
if smoke_test:
    recipe = recipe.scaled(0.3)
epochs = np.linspace(0, recipe.epochs, 15, endpoint=False)
phases = [recipe.at(epoch).name for epoch in epochs]
print(" ".join(f"{epoch:.2f}:{phase}" for epoch, phase in zip(epochs, phases, strict=True)))
assert phases[0] == "pretrain" and phases[-1] == "deterministic"
fast = get_recipe("fast")  # the times quoted above, in epochs
assert (fast.epochs, fast.pretrain_epochs, fast.deterministic_epoch) == (3.5, 0.3, 2.75)
assert fast.beta_ramp == (0.3, 1.0) and fast.pretrain_beta == 1e-3 and fast.beta == 1.0
assert fast.intervention_prior_epoch == 1.5 and fast.sparsity_decay[1] == 2.0
assert fast.precondition
assert [p for i, p in enumerate(phases) if i == 0 or p != phases[i - 1]] == [
    "pretrain",
    "soft",
    "deterministic",
]

# %% [markdown]
# ## Fit
#
# `pyrocrl.fit_ilcm` builds the model (`pyrocrl.ILCM`) and its guide (`pyrocrl.ILCMGuide`),
# trains them with the recipe and evaluates on the test pairs. The guide enumerates the
# target site, so the bound sums over all $n + 1$ hypotheses exactly.

# %%
model, guide, report = pyrocrl.fit_ilcm(
    splits["train"], n, test=splits["test"], dci_train=splits["dci"], recipe=recipe, seed=0
)
print(report.format())
metrics = report.metrics

# %% [markdown]
# **Reading the report.** *DCI disentanglement* near 1 means each learned variable is a
# function of one true causal variable; *completeness* near 1 means each true variable
# lives in one learned variable; *informativeness* is the mean $R^2$ of the regressors.
# *Intervention accuracy* is how often the most probable target of $q(I \mid x, \tilde x)$
# is right, after matching learned to true targets. The ELBO is a lower bound on
# $\log p(x, \tilde x)$ per pair. On the full-size run (100,000 training pairs, model seed
# 0) the report reads DCI disentanglement 0.980, completeness 0.980 and intervention
# accuracy 0.961: the causal variables and the interventions are recovered. Without
# ground truth, [checks](../checks) shows how to judge a fit.

# %%
assert metrics["dci_disentanglement"] > (0.3 if smoke_test else 0.95)
assert metrics["dci_completeness"] > (0.3 if smoke_test else 0.95)
assert metrics["intervention_accuracy"] > (0.3 if smoke_test else 0.95)

# %% [markdown]
# ## Matching learned to true variables
#
# Learned variables are identified only up to their order and an invertible map of each,
# so before comparing anything with the truth we decide which learned variable is which
# true one. pyrocrl does this one way throughout the tutorials: **Hungarian matching on
# the DCI importance matrix**. `importance[j, i]` says how much the regressor for true
# $z_i$ relies on learned variable $j$; `pyrocrl.metrics.match_importance` finds the
# one-to-one assignment with the largest total importance (the Hungarian algorithm), and
# returns `match` with *learned variable j is true variable `match[j]`* (both 0-based).
# Taking each row's largest entry instead could send two learned variables to one true
# variable. We refit the report's regressors (the first 10,000 pairs of the DCI set,
# scored on the first 5,000 test pairs, seed 0), which gives the report's scores exactly.

# %%
test, dci_set = splits["test"], splits["dci"]
x = torch.as_tensor(test["x"].values)
z_learned = pyrocrl.encode(guide, x[:5000, 0])["z"].numpy()
z_true = test["z"].values[:5000, 0]  # (pair, variable), first world
dci_learned = pyrocrl.encode(guide, torch.as_tensor(dci_set["x"].values[:10000, 0]))["z"]
scores = dci(dci_learned.numpy(), dci_set["z"].values[:10000, 0], z_learned, z_true, seed=0)
assert abs(scores.disentanglement - metrics["dci_disentanglement"]) < 1e-9
match = match_importance(scores.importance)
print("importance (rows: learned, columns: true):\n", scores.importance.round(3))
print("learned variable j → true variable:", {j + 1: int(match[j]) + 1 for j in range(n)})
assert sorted(match.tolist()) == list(range(n))  # one-to-one

# %% [markdown]
# Each learned variable against the true variable it was matched to: a thin monotone
# curve means the learned variable is that true variable up to a reparametrization (the
# direction and units are arbitrary). The correlation of ranks measures it: above 0.99
# for all three on the full-size run.

# %%
fig, axes = plt.subplots(1, n, figsize=(4 * n, 3.5))
rank_corr = []
for j, ax in enumerate(axes):
    ax.scatter(z_true[:2000, match[j]], z_learned[:2000, j], s=2)
    ax.set_xlabel(f"true z_{match[j] + 1}")
    ax.set_ylabel(f"learned variable {j + 1}")
    ranks = np.argsort(np.argsort(np.c_[z_true[:, match[j]], z_learned[:, j]], axis=0), axis=0)
    rank_corr.append(abs(np.corrcoef(ranks.T)[0, 1]))
fig.tight_layout()
plt.show()
print("|rank correlation| per learned variable:", np.round(rank_corr, 3))
assert min(rank_corr) > (0.3 if smoke_test else 0.99)

# %% [markdown]
# Intervention labels name learned variables too, so they are translated through the
# same matching: learned target $j + 1$ is true target `match[j] + 1`, and 0 stays 0.
# Below, the intervention posterior averaged over the pairs of each true target, with its
# columns translated (rows sum to one). The report's intervention accuracy matches the
# labels by themselves (`pyrocrl.metrics.match_interventions`, Hungarian on the table of
# inferred against true targets); on a good fit both matchings agree, and so do the
# accuracies. On the full-size run, 93–96 % of the posterior mass of the pairs intervened
# on z_k goes to z_k. Pairs without intervention are the hard case (74 %): an
# intervention that sets a variable to nearly its old value leaves the pair unchanged
# too, so both explanations compete.

# %%
probs = pyrocrl.intervention_posterior(guide, x[:, 0], x[:, 1]).numpy()
true_targets = test["target"].values
to_true = np.r_[0, match + 1]  # learned label → true label
translated = np.zeros_like(probs)
translated[:, to_true] = probs
table = np.stack([translated[true_targets == t].mean(0) for t in range(n + 1)])
accuracy = float(np.mean(to_true[probs.argmax(-1)] == true_targets))
print(f"intervention accuracy, DCI matching: {accuracy:.4f}")
by_labels = match_interventions(predict_targets(guide, x[:, 0], x[:, 1]).numpy(), true_targets, n)
print("label matching:", by_labels.tolist(), "DCI matching:", to_true.tolist())
if not smoke_test:
    assert np.array_equal(by_labels, to_true)
    assert abs(accuracy - metrics["intervention_accuracy"]) < 1e-9
plt.imshow(table, cmap="Blues", vmin=0, vmax=1)
plt.xticks(range(n + 1), ["none"] + [f"z_{k}" for k in range(1, n + 1)])
plt.yticks(range(n + 1), ["none"] + [f"z_{k}" for k in range(1, n + 1)])
plt.xlabel("inferred target (translated)")
plt.ylabel("true target")
plt.colorbar()
plt.show()
print("share of each true target's pairs given to it:", np.diag(table).round(3))
assert np.diag(table)[1:].min() > (0.2 if smoke_test else 0.9)
assert np.diag(table)[0] > (0.2 if smoke_test else 0.7)

# %% [markdown]
# ## Extend the generative model
#
# The ILCM is built from swappable parts. Here we change two of them without touching any
# inference code:
#
# - the **likelihood**: `likelihood="laplace"` (or any module mapping noise to a
#   distribution over `x`);
# - the **intervention prior** $p(I)$: a subclass learns its logits instead of assuming
#   that every target is equally likely.


# %%
class LearnedPriorILCM(pyrocrl.ILCM):
    """An ILCM whose intervention prior p(I) is learned."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.prior_logits = torch.nn.Parameter(torch.zeros(self.n + 1))

    def target_dist(self):
        return dist.Categorical(logits=self.prior_logits)


# Functions that build the parts work with every recipe (a recipe with several candidates
# builds one model per candidate); a ready-made module works when there is one candidate.
extended, _, extended_report = pyrocrl.fit_ilcm(
    splits["train"],
    n,
    test=test,
    dci_train=dci_set,
    recipe=recipe,
    seed=1,
    model=lambda: LearnedPriorILCM(lcm.dim_x, n, likelihood="laplace"),
    guide=pyrocrl.ILCMGuide,
)
print(extended_report.format())
learned_prior = extended.target_dist().probs.detach().numpy()
print("learned p(I):", learned_prior.round(3))

# %% [markdown]
# The data were simulated with a uniform intervention prior, $1/4$ for each of "none",
# z_1, z_2 and z_3. The learned prior comes out near it, within 0.05 on the full-size run
# (0.29 for "none", 0.24 for each variable). The Laplace likelihood is a worse
# description of these Gaussian data, yet the extended model recovers the causal
# variables and the interventions about as well (full-size run: DCI disentanglement
# 0.989, intervention accuracy 0.957).

# %%
assert np.abs(learned_prior - 1 / (n + 1)).max() < (0.1 if smoke_test else 0.05)
assert extended_report.metrics["dci_disentanglement"] > (0.3 if smoke_test else 0.95)
assert extended_report.metrics["intervention_accuracy"] > (0.3 if smoke_test else 0.95)

# %% [markdown]
# ## Where next
#
# [Tutorial 03](03_interventions_counterfactuals) asks the fitted model causal questions,
# [tutorial 04](04_finding_the_graph) reads its graph. The pages [training](../training),
# [queries](../queries) and [checks](../checks) go deeper.
#
# ## References
#
# - J. Brehmer, P. de Haan, P. Lippe, T. Cohen (2022). *Weakly supervised causal
#   representation learning*. NeurIPS 2022. The ILCM, its guide and the scaling toy.
# - C. Eastwood, C. K. I. Williams (2018). *A framework for the quantitative evaluation of
#   disentangled representations*. ICLR 2018. The DCI scores.
# - H. W. Kuhn (1955). *The Hungarian method for the assignment problem*. Naval Research
#   Logistics Quarterly 2. The matching.
# - Pyro: [`get_model_relations`](https://docs.pyro.ai/en/stable/infer.util.html#pyro.infer.inspect.get_model_relations)
#   and [`render_model`](https://docs.pyro.ai/en/stable/infer.util.html#pyro.infer.inspect.render_model)
#   (with the tutorial [Automatic rendering of Pyro models](https://pyro.ai/examples/model_rendering.html)),
#   and [enumeration of discrete sites](https://pyro.ai/examples/enumeration.html).
