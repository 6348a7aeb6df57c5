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

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import pyro
import torch
from pyro import poutine

import pyrocrl
from pyrocrl.data import make_simulator, simulate_splits
from pyrocrl.inference.queries import counterfactual, do, generate, intervene, predict_targets
from pyrocrl.inference.recipes import get_recipe
from pyrocrl.metrics import match_interventions

torch.set_num_threads(1)
smoke_test = "CI" in os.environ
n = 3
truth = make_simulator("scaling", n=n, graph_seed=302)
sizes = {"train": 3_000, "test": 500, "dci": 500} if smoke_test else None
splits = simulate_splits(truth, seed=302, sizes=sizes)
recipe = get_recipe("fast")
if smoke_test:
    recipe = recipe.scaled(0.3)
model, guide, report = pyrocrl.fit_ilcm(
    splits["train"], n, test=splits["test"], dci_train=splits["dci"], recipe=recipe
)
print(report.format())

# %% [markdown]
# ## Interventions as handlers
#
# `pyrocrl.do(z={k: v})` works as a context manager, a decorator or a function wrapper,
# on the simulator and on the learned model alike. The second world of each pair is the
# intervened one.

# %%
with do(z={2: 1.5}):
    sample = truth.model(size=5)
print("true z~ under do(z2 = 1.5):\n", sample["z_tilde"].numpy().round(2))

# %% [markdown]
# Learned variables come in their own order. The intervention posterior tells which
# learned variable each true one became: match them on the test pairs.

# %%
test = splits["test"]
x = torch.as_tensor(test["x"].values)
perm = match_interventions(
    predict_targets(guide, x[:, 0], x[:, 1]).numpy(), test["target"].values, n
)
learned = {int(t): int(j) for j, t in enumerate(perm) if j > 0}
print("true variable → learned variable:", learned)

# %% [markdown]
# ## Interventional distributions
#
# Set the root cause `z1` to a few values and look at the intervened observations
# (first two features), for the simulator and for the learned model. The learned variable
# has its own units and may run the other way, so we set it to the matching quantile of its
# observational distribution (mirrored when it decreases with the true one).

# %%
true_values = [-1.5, 0.0, 1.5]
learned_z = pyrocrl.encode(guide, x[:, 0])["z"][:, learned[1] - 1].numpy()
true_z = test["z"].values[:, 0, 0]
increasing = np.corrcoef(learned_z, true_z)[0, 1] > 0


def learned_value(true_value: float) -> float:
    """The learned value at the quantile the true value has in the true distribution."""
    q = float((true_z < true_value).mean())
    return float(np.quantile(learned_z, q if increasing else 1 - q))


learned_values = [learned_value(v) for v in true_values]
fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True, sharey=True)
for v, w in zip(true_values, learned_values, strict=True):
    a = intervene(truth, {1: v}, 500, seed=0)["x_tilde"].numpy()
    b = intervene(model, {learned[1]: float(w)}, 500, seed=0)["x_tilde_mean"].numpy()
    axes[0].scatter(a[:, 0], a[:, 1], s=3, label=f"do(z1 = {v:+.1f})")
    axes[1].scatter(b[:, 0], b[:, 1], s=3, label=f"learned value {w:+.2f}")
axes[0].set_title("simulator")
axes[1].set_title("learned ILCM")
for ax in axes:
    ax.legend(fontsize="small")
    ax.set_xlabel("x1")
axes[0].set_ylabel("x2")
plt.show()

# %% [markdown]
# ## Counterfactuals
#
# Take one observation and sweep the value of `z1`: each point is "what this observation
# would have been". The simulator's answer is exact (its noise is recovered by inverting
# the mixing and the SCM); the ILCM's uses the guide's posterior mean of the noise.

# %%
observed = x[:1, 0]
true_sweep = np.quantile(true_z, np.linspace(0.05, 0.95, 25))
learned_sweep = [learned_value(v) for v in true_sweep]


def counterfactual_x(lcm, k: int, value: float, **kwargs) -> np.ndarray:
    """What the observation would have been under do(z_k = value)."""
    return counterfactual(lcm, observed, z={k: float(value)}, **kwargs)["x_tilde"][0].numpy()


exact = np.stack([counterfactual_x(truth, 1, v) for v in true_sweep])
predicted = np.stack([counterfactual_x(model, learned[1], w, guide=guide) for w in learned_sweep])
plt.plot(exact[:, 0], exact[:, 1], "o-", ms=3, label="simulator (exact)")
plt.plot(predicted[:, 0], predicted[:, 1], "s--", ms=3, label="learned ILCM")
plt.scatter(*observed[0, :2].numpy(), color="black", zorder=3, label="observed x")
plt.xlabel("x1")
plt.ylabel("x2")
plt.title("counterfactual x~ as z1 sweeps its range")
plt.legend()
plt.show()

# %% [markdown]
# Under the hood a counterfactual is plain Pyro: condition the pair program on the noise,
# intervene, and read the second world.

# %%
noise = pyrocrl.encode(guide, observed)["noise"]
program = do(pyro.condition(model.model, data={"noise": noise}), z={learned[1]: learned_sweep[-1]})
trace = poutine.trace(program).get_trace(size=1)
print("x~ mean, by hand:      ", trace.nodes["x_tilde"]["fn"].mean.detach().numpy().round(3))
print("x~ from counterfactual:", predicted[-1].round(3))

# %% [markdown]
# ## Datasets
#
# `generate` writes observational, interventional and counterfactual pairs in the pyrocrl
# format, in batches — here, what the test pairs would have been under `do(z1)`.

# %%
cf = generate(model, "counterfactual", x=x[:, 0], z={learned[1]: learned_values[-1]}, guide=guide)
print(pyrocrl.describe(cf))
