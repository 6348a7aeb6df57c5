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
# # The training loop by hand
#
# `fit_ilcm` hides a training loop. This tutorial writes that loop out, in the manner of
# Pyro's [SVI Part I](https://pyro.ai/examples/svi_part_i.html): build the model and its
# guide, the bound, an optimizer, and step. Pyro's `SVI` class does not fit here as it
# is: the objective of an ILCM changes with the training phase (which program, which KL
# weight, which options), and a few regularizers sit on top of the bound. So we write
# what `SVI.step` does ourselves — compute the loss, call `backward`, let a Pyro
# optimizer update the parameters — and let a *recipe* say what each step looks like.
#
# At the end, `fit_ilcm` trains a model with the same seed, and we check that it produced
# the very same parameters: the library's loop is this loop. No extra is needed (the
# base install is enough).

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import pyro
import torch

from pyrocrl import ILCM, ILCMGuide, fit_ilcm
from pyrocrl.data import make_simulator, simulate_splits
from pyrocrl.inference import PairELBO, evaluate, get_recipe

torch.set_num_threads(1)
smoke_test = "CI" in os.environ
seed = 0  # the model seed: initial weights and every random draw of training
n = 3
sizes = {"train": 3_000, "test": 1_000, "dci": 1_000} if smoke_test else None
recipe = get_recipe("fast")
if smoke_test:  # a few dozen steps: enough to run every line, not to learn well
    recipe = recipe.scaled(0.3)

# %% [markdown]
# ## Data, model and guide
#
# The scaling toy of [tutorial 02](02_quickstart): three causal variables, linear
# mechanisms on a random DAG, a random rotation to the observations. Full size, 100,000
# training pairs and 10,000 each for testing and for the DCI regressors.
#
# The model and the guide are ordinary modules; seeding torch before building them fixes
# their initial weights. Two steps prepare them for the data, and neither is learning:
#
# - `model.fit_features` records the mean and spread of every feature, so that the
#   networks see standardized features while the likelihood speaks in the data's units;
# - `guide.precondition` starts the noise encoder from the linear solution of the pair
#   statistics (the directions along which the pairs change, [training](../training)),
#   which the `fast` recipe asks for (`recipe.precondition`). It reads the first 20,000
#   pairs.

# %%
lcm = make_simulator("scaling", n=n, graph_seed=302)
splits = simulate_splits(lcm, seed=302, sizes=sizes)
pairs = torch.as_tensor(splits["train"]["x"].values, dtype=torch.float32)  # (N, 2, D)
print("training pairs:", tuple(pairs.shape))

torch.manual_seed(seed)
model = ILCM(pairs.shape[-1], n)
guide = ILCMGuide(model)
model.fit_features(pairs)
if recipe.precondition:
    guide.precondition(pairs[:20_000, 0], pairs[:20_000, 1])

# %% [markdown]
# ## The bound
#
# `PairELBO` evaluates the evidence lower bound of the pair program with the intervention
# target summed out exactly (the guide enumerates it), one value per pair and one entry
# per term: `log_likelihood`, and `kl_<site>` for each latent site (`noise`, `target`,
# `value`). Here it is on one batch, for the untrained model:

# %%
elbo = PairELBO()
x, x_tilde = pairs[:64, 0], pairs[:64, 1]
terms = elbo.terms(model.model, guide.guide, x, x_tilde)
for name, value in terms.items():
    print(f"{name:>15s} {value.mean().item():10.2f}")
assert torch.allclose(
    terms["elbo"], terms["log_likelihood"] - sum(v for k, v in terms.items() if "kl_" in k)
)

# %% [markdown]
# The last line checks what the bound is: the log-likelihood minus the KL terms.
# `-terms["elbo"].mean()` would already do as a loss. Trained from a random start,
# though, this bound rarely finds the variables it can identify, so training follows a
# recipe.
#
# ## The phases of a recipe
#
# A `Recipe` is a table of schedules in epochs (passes over the training pairs);
# `recipe.at(epoch)` returns the `Phase` of a step, the settings the loss needs. The
# `fast` recipe at a few epochs:

# %%
print(f"{'epoch':>6s} {'phase':>13s} {'beta':>6s} {'prior':>6s} {'offset':>7s} {'power':>6s}")
for epoch in (0.0, 0.5, 1.0, 1.5, 2.0, 2.75, 3.4):
    phase = recipe.at(epoch * recipe.epochs / get_recipe("fast").epochs)
    print(
        f"{epoch:6.2f} {phase.name:>13s} {phase.beta:6.3f} {phase.intervention_prior!s:>6s}"
        f" {phase.offset:7.4f} {phase.posterior_power:6.2f}"
    )

# %% [markdown]
# (Epochs of the full recipe; in smoke mode the schedule is compressed to 30 %.) What
# each phase changes:
#
# - **Pretraining** (`phase.pretrain`, the first 0.3 epochs). The loss is the bound of a
#   different pair of programs, `model.independent_model` and `guide.independent_guide`:
#   each view has its own noise, as in a plain VAE, and the KL weight is tiny
#   (`β = 10⁻³`). Encoder and decoder learn to reconstruct before any causal structure is
#   asked of them; the solution function and the intervention encoder get no gradient.
# - **KL weight** (`phase.beta`). After pretraining the pair program takes over, and `β`
#   multiplies every KL term; it ramps linearly from 0 to 1 by epoch 1. At `β = 1` the
#   objective is the ELBO itself.
# - **Intervention prior** (`phase.intervention_prior`, from epoch 1.5). Before, the
#   intervened noise component has a flat prior: the bound does not yet ask the new
#   values of intervened variables to look like draws from `N(0, 1)`, and the solution
#   function is hardly constrained while the encoder settles. Then the prior
#   `v ~ N(0, 1)` on the new value switches on and the mechanisms start to matter.
# - **Deterministic phase** (`phase.deterministic`, from epoch 2.75). Until then the bound
#   sums over every intervention hypothesis, weighted by `q(I | x, x~)` (the *soft*
#   phase); now only the most probable hypothesis is kept, with a straight-through
#   gradient to `q`.
#
# Two guide options ramp as well: `offset` floors `q(I | x, x~)` early on and
# `posterior_power` flattens it (`q^p`, normalized), so every hypothesis shapes the
# encoder before the posterior commits. Finally the recipe weighs a few regularizers: the
# entropy of the batch-averaged `q(I | x, x~)` (all hypotheses stay in use), a per-view
# reconstruction error (weight 0.01 throughout), the size of the noise encodings (its
# weight decays to 0 by epoch 1), and two penalties that favour changes between the
# views on a single noise component, spread evenly over the components (weight 10 each,
# decaying to 0 between epochs 1.5 and 2). [Training](../training) explains why each is
# there.
#
# ## The loss of one step, written out
#
# The function below is the whole objective: the phase picks the programs and their
# options, `PairELBO` traces the guide, replays the model on its samples and returns the
# terms with the KL part weighted by `β`; the regularizers read the guide's encodings
# (its return value). The arithmetic follows the library's objective operation by
# operation, so that the two agree to the last bit.


# %%
def step_loss(x, x_tilde, phase):
    if phase.pretrain:
        programs, options = (model.independent_model, guide.independent_guide), {}
    else:
        programs = (model.model, guide.guide)
        options = {
            "intervention_prior": phase.intervention_prior,
            "deterministic": phase.deterministic,
            "offset": phase.offset,
            "posterior_power": phase.posterior_power,
        }
    model_trace, guide_trace = elbo.traces(*programs, x, x_tilde, **options)
    terms = elbo.terms_from_traces(model_trace, guide_trace, beta=phase.beta)
    loc, scale, loc_tilde, scale_tilde, probs = guide_trace.nodes["_RETURN"]["value"]
    penalties = []
    if phase.entropy_weight and probs is not None:  # keep every hypothesis in use
        average = probs.mean(0)
        entropy = -(average * torch.log(average.clamp_min(1e-30))).sum()
        penalties.append(-phase.entropy_weight * entropy)
    if phase.norm_weight or phase.consistency_weight:  # each view on its own
        e = loc + scale * torch.randn(loc.shape)
        e_tilde = loc_tilde + scale_tilde * torch.randn(loc.shape)
        if phase.norm_weight:
            norm = ((e**2).sum(-1) + (e_tilde**2).sum(-1)).mean()
            penalties.append(phase.norm_weight * norm)
        if phase.consistency_weight:
            mean = model.likelihood(torch.cat([e, e_tilde])).mean  # standardized features
            target = model.standardize(torch.cat([x, x_tilde]))
            penalties.append(
                phase.consistency_weight * (((mean - target) ** 2).sum(-1).mean() * 2)
            )
    if phase.sparsity_weight or phase.balance_weight:  # changes on one component each
        delta = (loc_tilde - loc) / torch.cat([loc, loc_tilde]).std(0).clamp_min(1e-6)
        if phase.sparsity_weight:
            sparsity = abs(delta).sum() / delta.norm(dim=-1).sum().clamp_min(1e-12)
            penalties.append(phase.sparsity_weight * sparsity)
        if phase.balance_weight:
            share = (delta**2 / delta.norm(dim=-1)[..., None].clamp_min(1e-12)).sum(0)
            share = share / share.sum().clamp_min(1e-12)
            balance = (share * torch.log((share * n).clamp_min(1e-12))).sum()
            penalties.append(phase.balance_weight * balance)
    return -terms["elbo"].mean() + sum(penalties), terms


# %% [markdown]
# ## The optimizer and the loop
#
# A Pyro optimizer wraps a PyTorch one and keeps one instance per parameter; called with
# a list of parameters, it takes a step for each (this is what `SVI.step` does after
# computing the loss). Adam has no state shared between parameters, so this is the same
# as one PyTorch Adam over all of them. The recipe clips the norm of *all* gradients
# together at 10, so we clip by hand before the step rather than per parameter, as
# `pyro.optim.ClippedAdam` would. The `fast` recipe keeps its learning rate constant
# (`fast-anneal` and `authors` change it; then one would set it on each step).
#
# Minibatches are drawn without replacement, one permutation per epoch, seeded by the
# pair `(seed, epoch)`; torch is seeded once before the first step for the random draws
# inside the loss (the noise samples of the guide, `λ`, the regularizers' samples).

# %%
params = [*model.parameters(), *guide.parameters()]
optimizer = pyro.optim.Adam({"lr": recipe.lr, "foreach": True})
batch_size = recipe.batch_size
steps_per_epoch = len(pairs) // batch_size
total_steps = int(np.ceil(recipe.epochs * steps_per_epoch))
print_every = 10 if smoke_test else 500


def batch_order(epoch):
    epoch_seed = int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])
    return torch.randperm(len(pairs), generator=torch.Generator().manual_seed(epoch_seed))


torch.manual_seed(seed)
history = []  # (loss, −ELBO per pair, β) of every step
for step in range(total_steps):
    epoch, i = divmod(step, steps_per_epoch)
    if i == 0:
        order = batch_order(epoch)
    batch = pairs[order[i * batch_size : (i + 1) * batch_size]]
    phase = recipe.at(step / steps_per_epoch)
    loss, terms = step_loss(batch[:, 0], batch[:, 1], phase)
    for p in params:
        p.grad = None
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, recipe.grad_clip)
    optimizer([p for p in params if p.grad is not None])  # pretraining leaves some unused
    history.append((loss.item(), -terms["elbo"].mean().item(), phase.beta))
    if step % print_every == 0 or step == total_steps - 1:
        print(
            f"step {step:5d}  epoch {step / steps_per_epoch:4.2f}  {phase.name:>13s}  "
            f"loss {loss.item():9.3f}"
        )
model.eval()
guide.eval()

# %% [markdown]
# ## The loss curve
#
# Running means over 50 steps of the loss and of its bound part, `−ELBO_β` (the ELBO
# with the KL terms weighted by `β`), with the phases shaded and `β` on the right axis.

# %%
history = np.array(history)
epochs = np.arange(len(history)) / steps_per_epoch
window = min(50, len(history) // 5)  # fewer steps in smoke mode


def running_mean(values):
    return np.convolve(values, np.ones(window) / window, mode="valid")


fig, ax = plt.subplots(figsize=(10, 3.8))
ax.plot(epochs, history[:, 0], color="0.85", lw=0.5, label="loss per step")
ax.plot(epochs[window - 1 :], running_mean(history[:, 0]), color="C0", label="loss")
ax.plot(epochs[window - 1 :], running_mean(history[:, 1]), color="C4", label="−ELBO_β")
for start, end, label, color in (
    (0, recipe.pretrain_epochs, "pretrain", "C1"),
    (recipe.deterministic_epoch, recipe.epochs, "deterministic", "C2"),
):
    ax.axvspan(start, end, color=color, alpha=0.15, label=label)
ax.axvline(recipe.intervention_prior_epoch, color="k", ls=":", label="intervention prior on")
ax.set_yscale("symlog")
ax.set_xlabel("epoch")
ax.set_ylabel("per pair")
beta_axis = ax.twinx()
beta_axis.plot(epochs, history[:, 2], color="C3", lw=1)
beta_axis.set_ylabel("KL weight β", color="C3")
ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.1, 1))
fig.tight_layout()
plt.show()

# %% [markdown]
# Reading it from left to right: during pretraining the loss falls fast (a VAE on each
# view, with a tiny KL weight). It jumps when the pair program takes over, since both
# views must now be explained by one shared noise with at most one component changed,
# then falls to a plateau while `β` climbs to 1. The gap between the two curves is the
# regularizers, mostly the change penalties (weight 10 each); it closes between epochs
# 1.5 and 2, where those penalties decay to nothing, just as the prior on the intervened
# value switches on. What is left of the gap is the small entropy bonus. The loss drops
# once more when the deterministic phase keeps only the most probable hypothesis.


# %%
def gap(first, last):
    """Mean of loss − (−ELBO_β), the regularizers, between two epochs of the full recipe."""
    scale = recipe.epochs / get_recipe("fast").epochs  # 0.3 in smoke mode
    inside = (epochs >= first * scale) & (epochs < last * scale)
    return (history[inside, 0] - history[inside, 1]).mean()


print(f"regularizers: {gap(1.0, 1.5):.2f} per pair before epoch 1.5, {gap(2.0, 2.75):.2f} after 2")
assert gap(1.0, 1.5) > 5 and abs(gap(2.0, 2.75)) < 2

# %% [markdown]
# ## The library does the same
#
# `fit_ilcm` builds the model and guide under the same seed (`seed=0`), fits the
# features, preconditions, and trains with `pyrocrl.inference.Trainer` and the recipe's
# objective; the trainer draws its minibatches and random numbers as above. With the same
# seed it returns the very same parameters, bit for bit, and therefore the same report.

# %%
fitted, fitted_guide, report = fit_ilcm(
    splits["train"], n, test=splits["test"], dci_train=splits["dci"], recipe=recipe, seed=seed
)
print(report.format())
same = all(
    torch.equal(a, b)
    for mine, theirs in ((model, fitted), (guide, fitted_guide))
    for a, b in zip(mine.state_dict().values(), theirs.state_dict().values(), strict=True)
)
print("identical parameters:", same)
assert same

# %% [markdown]
# ## Evaluate
#
# `evaluate` scores our hand-trained model on the test pairs as `fit_ilcm` scored its
# own: the ELBO per pair, DCI disentanglement and completeness (the DCI regressors are
# fitted on the separate DCI pairs), and the intervention accuracy — how often the most
# probable target of `q(I | x, x~)` is right, after matching learned to true labels by
# the intervention labels themselves (`pyrocrl.metrics.intervention_accuracy`; the DCI
# scores need no matching, and [tutorial 02](02_quickstart) shows how to match the
# learned variables to the true ones for pictures).

# %%
metrics = evaluate(model, guide, splits["test"], splits["dci"], seed=seed)
for key, value in metrics.items():
    print(f"{key:>22s} {value:8.4f}  (fit_ilcm: {report.metrics[key]:.4f})")
    assert value == report.metrics[key]
assert metrics["dci_disentanglement"] > (0.2 if smoke_test else 0.9)
assert metrics["intervention_accuracy"] > (0.3 if smoke_test else 0.9)

# %% [markdown]
# On the full run (model seed 0, data seed 302), both models score a DCI disentanglement
# and completeness of 0.980, an intervention accuracy of 0.961 and an ELBO of −3.39 per
# pair: the same numbers to the last digit, because they are the same parameters.
#
# Where to go from here: [training](../training) explains the recipes and their
# settings; [tutorial 13](13_your_own_model) changes the generative program and keeps
# this inference; `pyrocrl.inference.Trainer` adds checkpoints (a killed run resumes to
# the same result), validation while training and a progress bar to the loop above.
#
# ## References
#
# - Brehmer, J., de Haan, P., Lippe, P., Cohen, T. (2022). *Weakly supervised causal
#   representation learning.* NeurIPS.
# - Pyro documentation: [SVI Part I: An Introduction to Stochastic Variational Inference
#   in Pyro](https://pyro.ai/examples/svi_part_i.html) and
#   [Optimizers](https://docs.pyro.ai/en/stable/optimization.html).
# - Eastwood, C., Williams, C. K. I. (2018). *A framework for the quantitative evaluation
#   of disentangled representations.* ICLR (the DCI scores).
# - Kingma, D. P., Ba, J. (2015). *Adam: A method for stochastic optimization.* ICLR.
