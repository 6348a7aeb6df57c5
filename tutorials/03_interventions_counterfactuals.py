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
# # Interventions and counterfactuals with a learned causal model
#
# A latent causal model answers three kinds of questions:
#
# - **observational**: what do typical observations look like?
# - **interventional**: what would observations look like if we *set* a causal variable,
#   `do(z_k = v)`?
# - **counterfactual**: for *this* observation `x`, what would it have been had `z_k` been
#   `v`? (Abduction: infer the noise of `x`; action: `do`; prediction: decode.)
#
# In pyrocrl they are all effect handlers on the same Pyro program: `pyrocrl.do` sets the
# program's `target` and `value` sites, and `pyro.condition` on `noise` gives
# counterfactuals. We ask the same questions of a fitted ILCM and of the simulator that
# made the data, where the answers are exact.
#
# **Needs** no extra: the base install (`pip install pyrocrl`) is enough. Background:
# [queries](../queries) and [concepts](../concepts); the model and its fit are those of
# [tutorial 02](02_quickstart).
#
# **Numbering.** In the text the causal variables are z_1 … z_n. `do(z={k: v})` takes the
# variable's number k as in the text (1-based, as the `target` label k means z_k), while
# arrays are 0-based: z_k is column `k - 1`.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import pyro
import torch
from pyro import poutine

import pyrocrl
from pyrocrl.data import make_simulator, simulate_splits
from pyrocrl.inference import get_recipe
from pyrocrl.metrics import dci, match_importance

torch.set_num_threads(1)
pyro.set_rng_seed(0)  # torch, numpy and random; the fit and the queries take their own seeds
smoke_test = "CI" in os.environ
n = 3
truth = make_simulator("scaling", n=n, graph_seed=302)
sizes = {"train": 3_000, "test": 500, "dci": 500} if smoke_test else None
splits = simulate_splits(truth, seed=302, sizes=sizes)
recipe = get_recipe("fast")
if smoke_test:  # 30 % of the schedule: enough to run every line, not to learn well
    recipe = recipe.scaled(0.3)
model, guide, report = pyrocrl.fit_ilcm(
    splits["train"], n, test=splits["test"], dci_train=splits["dci"], recipe=recipe, seed=0
)
print(report.format())

# %% [markdown]
# ## Interventions as handlers
#
# `pyrocrl.do(z={k: v})` works as a context manager, a decorator or a function wrapper,
# on the simulator and on the learned model alike. The second world of each pair is the
# intervened one: below, every pair's z~_2 (column 1) is 1.5.

# %%
with pyrocrl.do(z={2: 1.5}):
    sample = truth.model(size=5)
print("true z~ under do(z_2 = 1.5):\n", sample["z_tilde"].numpy().round(2))
assert torch.allclose(sample["z_tilde"][:, 1], torch.tensor(1.5))
assert torch.equal(sample["target"], torch.full((5,), 2))

# %% [markdown]
# Learned variables come in their own order and units. We match them to the true ones
# as in [tutorial 02](02_quickstart): Hungarian matching on the DCI importance matrix
# (`pyrocrl.metrics.match_importance`; learned variable j is true variable `match[j]`,
# 0-based), with the report's regressors.

# %%
test, dci_set = splits["test"], splits["dci"]
x = torch.as_tensor(test["x"].values)
scores = dci(
    pyrocrl.encode(guide, torch.as_tensor(dci_set["x"].values[:10000, 0]))["z"].numpy(),
    dci_set["z"].values[:10000, 0],
    pyrocrl.encode(guide, x[:5000, 0])["z"].numpy(),
    test["z"].values[:5000, 0],
    seed=0,
)
assert abs(scores.disentanglement - report.metrics["dci_disentanglement"]) < 1e-9
match = match_importance(scores.importance)
learned = {int(match[j]) + 1: j + 1 for j in range(n)}  # true k → learned label
print("true variable → learned variable:", learned)

# %% [markdown]
# ## Interventional distributions
#
# Set the root cause z_1 to a few values and look at the intervened observations
# (first two features), for the simulator and for the learned model. The learned variable
# has its own units and may run the other way, so we set it to the matching quantile of its
# observational distribution (mirrored when it decreases with the true one).

# %%
true_values = [-1.5, 0.0, 1.5]
learned_z = pyrocrl.encode(guide, x[:, 0])["z"][:, learned[1] - 1].numpy()
true_z = test["z"].values[:, 0, 0]  # true z_1 of the first world
increasing = np.corrcoef(learned_z, true_z)[0, 1] > 0


def learned_value(true_value: float) -> float:
    """The learned value at the quantile the true value has in the true distribution."""
    q = float((true_z < true_value).mean())
    return float(np.quantile(learned_z, q if increasing else 1 - q))


learned_values = [learned_value(v) for v in true_values]
fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True, sharey=True)
gaps = []
for v, w in zip(true_values, learned_values, strict=True):
    a = pyrocrl.intervene(truth, {1: v}, 500, seed=0)["x_tilde"].numpy()
    b = pyrocrl.intervene(model, {learned[1]: float(w)}, 500, seed=0)["x_tilde_mean"].numpy()
    gaps.append(np.linalg.norm(a.mean(0) - b.mean(0)) / a.std(0).mean())
    axes[0].scatter(a[:, 0], a[:, 1], s=3, label=f"do(z_1 = {v:+.1f})")
    axes[1].scatter(b[:, 0], b[:, 1], s=3, label=f"learned value {w:+.2f}")
axes[0].set_title("simulator")
axes[1].set_title("learned ILCM")
for ax in axes:
    ax.legend(fontsize="small")
    ax.set_xlabel("x1")
axes[0].set_ylabel("x2")
plt.show()
print("distance of the means, in simulator spreads:", np.round(gaps, 3))

# %% [markdown]
# The two clouds agree: on the full-size run, for each value, the mean of the learned
# model's intervened observations lies within 0.2 standard deviations (of the simulator's
# cloud) of the simulator's mean.

# %%
assert max(gaps) < (2.0 if smoke_test else 0.2)

# %% [markdown]
# ## Counterfactuals
#
# Take one observation and sweep the value of z_1: each point is "what this observation
# would have been". The simulator's answer is exact (its noise is recovered by inverting
# the mixing and the SCM); the ILCM's uses the guide's posterior mean of the noise.
# Setting z_1 to the value it already has must give the observation back.

# %%
observed = x[:1, 0]
own_value = float(test["z"].values[0, 0, 0])
same = pyrocrl.counterfactual(truth, observed, z={1: own_value})["x_tilde"]
assert torch.allclose(same, observed, atol=1e-4)

true_sweep = np.quantile(true_z, np.linspace(0.05, 0.95, 25))
learned_sweep = [learned_value(v) for v in true_sweep]


def counterfactual_x(lcm, k: int, value: float, **kwargs) -> np.ndarray:
    """What the observation would have been under do(z_k = value)."""
    out = pyrocrl.counterfactual(lcm, observed, z={k: float(value)}, **kwargs)
    return out["x_tilde"][0].numpy()


exact = np.stack([counterfactual_x(truth, 1, v) for v in true_sweep])
predicted = np.stack([counterfactual_x(model, learned[1], w, guide=guide) for w in learned_sweep])
plt.plot(exact[:, 0], exact[:, 1], "o-", ms=3, label="simulator (exact)")
plt.plot(predicted[:, 0], predicted[:, 1], "s--", ms=3, label="learned ILCM")
plt.scatter(*observed[0, :2].numpy(), color="black", zorder=3, label="observed x")
plt.xlabel("x1")
plt.ylabel("x2")
plt.title("counterfactual x~ as z_1 sweeps its range")
plt.legend()
plt.show()
error = np.linalg.norm(predicted - exact, axis=1).mean()
span = np.linalg.norm(exact[-1] - exact[0])
print(f"mean distance to the exact counterfactual: {error:.3f} (length of the sweep {span:.3f})")

# %% [markdown]
# The learned counterfactuals follow the exact ones: on the full-size run their mean
# distance is below 1 % of the length of the exact sweep.

# %%
assert error < (1.0 if smoke_test else 0.01) * span

# %% [markdown]
# Under the hood a counterfactual is plain Pyro: condition the pair program on the noise
# (abduction), intervene (action), and read the second world (prediction).

# %%
noise = pyrocrl.encode(guide, observed)["noise"]
program = pyrocrl.do(
    pyro.condition(model.model, data={"noise": noise}), z={learned[1]: learned_sweep[-1]}
)
trace = poutine.trace(program).get_trace(size=1)
by_hand = trace.nodes["x_tilde"]["fn"].mean.detach().numpy()
print("x~ mean, by hand:      ", by_hand.round(3))
print("x~ from counterfactual:", predicted[-1].round(3))
assert np.allclose(by_hand[0], predicted[-1], atol=1e-5)

# %% [markdown]
# ## Datasets
#
# `pyrocrl.generate` writes observational, interventional and counterfactual pairs in the
# pyrocrl format, in batches — here, what the test pairs would have been under `do(z_1)`
# (the learned variable matched to z_1). Its `z` holds the model's own causal variables,
# so the intervened one takes the value set, in the second world of every pair.

# %%
value = learned_values[-1]
cf = pyrocrl.generate(model, "counterfactual", x=x[:, 0], z={learned[1]: value}, guide=guide)
print(pyrocrl.describe(cf))
assert cf.sizes["pair"] == test.sizes["pair"]
assert (cf["target"].values == learned[1]).all()
assert np.allclose(cf["z"].values[:, 1, learned[1] - 1], value, atol=1e-4)

# %% [markdown]
# ## References
#
# - J. Brehmer, P. de Haan, P. Lippe, T. Cohen (2022). *Weakly supervised causal
#   representation learning*. NeurIPS 2022.
# - J. Pearl (2009). *Causality*, 2nd ed., Cambridge University Press: interventions and
#   the three steps of a counterfactual.
# - C. Eastwood, C. K. I. Williams (2018). *A framework for the quantitative evaluation of
#   disentangled representations*. ICLR 2018 (the DCI matrix used for matching).
# - Pyro's handlers: [`pyro.poutine.do`](https://docs.pyro.ai/en/stable/poutine.html#pyro.poutine.handlers.do)
#   and [`pyro.condition`](https://docs.pyro.ai/en/stable/poutine.html#pyro.poutine.handlers.condition).
