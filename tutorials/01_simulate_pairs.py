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
# # Weakly supervised pairs: simulate them and look at them
#
# Causal representation learning from weak supervision starts from **pairs** of
# observations `(x, x~)` of one system, taken before and after an *unknown* intervention.
# Nobody tells us the causal variables, the graph, or which variable was intervened on.
#
# To check that a method recovers what it should, we need data where all of that is
# known. pyrocrl ships ground-truth latent causal models written as Pyro programs. This
# tutorial
#
# 1. builds the *scaling toy* of Brehmer et al. (2022) and reads its Pyro program;
# 2. intervenes with `pyro.poutine.do` and computes a counterfactual by conditioning on
#    the noise;
# 3. simulates a dataset of pairs, saves it, and plots it.
#
# **Needs** no extra: the base install (`pip install pyrocrl`) is enough. Background:
# [concepts](../concepts) for the model, [data](../data) for the dataset format.
#
# **Numbering.** In the text the causal variables are z_1 … z_n, and an intervention
# target is a label: 0 means "no intervention", k means "z_k was intervened on". In code,
# arrays are 0-based, so z_k is column `k - 1` of an array of causal variables (and the
# single-world program below names its sites `z1 … zn`, like the text).

# %%
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pyro
import torch
from pyro import poutine

import pyrocrl
from pyrocrl.models import scaling_toy, toy2d
from pyrocrl.plots import plot_graph, plot_pairs

torch.set_num_threads(1)
pyro.set_rng_seed(0)  # seeds torch, numpy and random for the direct calls below
smoke_test = "CI" in os.environ  # small sizes when the test suite runs this file
pairs = 2_000 if smoke_test else 20_000

# %% [markdown]
# ## 1. A ground-truth latent causal model
#
# The scaling toy has `n` causal variables with linear Gaussian mechanisms over a random
# DAG, `z_j = e_j + Σ_i w_ij z_i`, seen through a random rotation, `x = R z`. The graph,
# weights and rotation come from a *graph seed*; samples come from a separate *sample seed*.
# With graph seed 302 and n = 4 the graph has five edges; z_2 has a single parent, z_1.

# %%
lcm = scaling_toy(n=4, graph_seed=302)
adjacency, weights = lcm.scm.adjacency, lcm.scm.weights
print("adjacency (row = cause, column = effect):\n", adjacency)
print("weights:\n", weights.round(2))
assert adjacency.sum() == 5
assert np.flatnonzero(adjacency[:, 1]).tolist() == [0]  # the parents of z_2: z_1 alone
plot_graph(adjacency, weights=weights)
plt.title("the true causal graph")
plt.show()

# %% [markdown]
# `lcm.model` is a Pyro program for one batch of pairs. Its sample sites are the
# exogenous `noise` e, the intervention `target` (0 = none, k = variable z_k) and the new
# `value` of the intervened variable; `z`, `z_tilde` and `noise_tilde` are deterministic;
# `x` and `x_tilde` are the observations. Tracing it shows every site and its shape.

# %%
trace = poutine.trace(lcm.model).get_trace(size=5)
shapes = {
    name: tuple(site["value"].shape)
    for name, site in trace.nodes.items()
    if site["type"] == "sample" and name != "pair"
}
for name, shape in shapes.items():
    print(f"{name:12s} {shape}")
assert shapes == {
    "noise": (5, 4),
    "target": (5,),
    "value": (5,),
    "z": (5, 4),
    "noise_tilde": (5, 4),
    "z_tilde": (5, 4),
    "x": (5, 4),
    "x_tilde": (5, 4),
}

# %% [markdown]
# ## 2. Interventions and counterfactuals with Pyro's handlers
#
# `pyro.poutine.do` fixes a site. Fixing `target = 2` makes every pair an intervention on
# z_2: in the second world, z_2 takes the sampled `value` and no longer listens to its
# parent z_1. Observationally the two are clearly correlated; after `do(z_2)` the
# correlation is gone (up to sampling noise).

# %%
with poutine.do(data={"target": torch.tensor(2)}):
    out = lcm.model(size=pairs)
r_before = np.corrcoef(out["z"][:, 0], out["z"][:, 1])[0, 1]  # columns 0, 1: z_1, z_2
r_after = np.corrcoef(out["z_tilde"][:, 0], out["z_tilde"][:, 1])[0, 1]
print(f"corr(z_1, z_2) before: {r_before:+.3f}; after do(z_2): {r_after:+.3f}")
assert torch.equal(out["z_tilde"][:, 1], out["value"])  # z~_2 is the new value
assert abs(r_before) > 0.5
assert abs(r_after) < (0.1 if smoke_test else 0.03)

# %% [markdown]
# The single-world program `lcm.world` has one site per mechanism (`z1 … z4`), so we can
# also intervene on a causal variable by name. A **counterfactual** keeps the noise of an
# observed unit: condition on `noise`, then intervene. For pairs whose intervention hit
# z_2, the answer matches the pair program's `x_tilde` exactly, because both worlds share
# the noise. We make every pair of this small batch such a pair by fixing its target, as
# above.

# %%
with poutine.do(data={"target": torch.tensor(2)}):
    pair = lcm.model(size=3)
counterfactual = poutine.do(
    pyro.condition(lcm.world, data={"noise": pair["noise"]}),
    data={"z2": pair["value"]},
)
x_counterfactual = counterfactual(size=3)["x"]
print("targets:", pair["target"].tolist())
print("x~ from the pair program:\n", pair["x_tilde"])
print("counterfactual x under do(z_2 = value):\n", x_counterfactual)
assert pair["target"].tolist() == [2, 2, 2]
assert torch.allclose(x_counterfactual, pair["x_tilde"], atol=1e-5)

# %% [markdown]
# ## 3. A dataset of pairs
#
# `pyrocrl.simulate` runs the pair program in batches on a private random stream (the
# global torch state is untouched) and returns an `xarray.Dataset` with named dims:
# `x (pair, world, feature)`, the ground truth `z`, `noise`, `target`, the graph, and the
# generator settings in `attrs`. The same sample seed gives the same pairs.

# %%
state = torch.get_rng_state()
ds = pyrocrl.simulate(lcm, pairs, seed=0)
assert torch.equal(torch.get_rng_state(), state)
assert ds.identical(pyrocrl.simulate(lcm, pairs, seed=0))
print(ds)
print(pyrocrl.describe(ds))

# %% [markdown]
# The mixing is a rotation, stored with the data: `x = R z` holds in both worlds.

# %%
z, x, rotation = ds["z"].values, ds["x"].values, ds["mixing"].values
assert np.allclose(x, z @ rotation.T, atol=1e-4)
assert np.allclose(rotation @ rotation.T, np.eye(4), atol=1e-6)

# %% [markdown]
# Saving writes NetCDF-4; loading checks the file and gives the same dataset back.

# %%
workdir = Path(tempfile.mkdtemp())
path = pyrocrl.save(ds, workdir / "scaling_pairs.nc")
assert pyrocrl.load(path).identical(ds)

# %% [markdown]
# Each pair is a segment from `x` (dot) to `x~`. Pairs without intervention are single
# grey dots: nothing changed. An intervention on z_k changes z_k and its descendants and
# nothing else, so the direction of a segment depends on which variable was intervened on
# and on its descendants — the signal weak supervision learns from. Below, on the right,
# the true z_1 and z_2: an intervention on z_2 moves a pair vertically, one on z_1 moves
# it along z_1 and, through the edge z_1 → z_2, along z_2 too.

# %%
target = ds["target"].values
changed = ~np.isclose(z[:, 0], z[:, 1], atol=1e-6)  # (pair, variable): did z_k change?
assert not changed[target == 0].any()  # no intervention: both worlds coincide
reach = np.eye(4, dtype=bool)  # reach[k, j]: z_j is z_k itself or one of its descendants
for _ in range(4):
    reach = reach | ((reach.astype(int) @ adjacency) > 0)
for k in range(1, 5):
    assert not (changed[target == k] & ~reach[k - 1]).any()  # only descendants change

fig, axes = plt.subplots(1, 2, figsize=(11, 5))
plot_pairs(ds, max_pairs=200, ax=axes[0])
plot_pairs(ds, variable="z", dims=(0, 1), max_pairs=200, ax=axes[1])
axes[1].set_title("true causal variables z_1, z_2")
plt.show()

# %% [markdown]
# ## The 2D toy
#
# Two variables `z_1 → z_2` with a nonlinear mechanism, `z_2 = 1.5 tanh(2 z_1) + 0.5 e_2`,
# and a nonlinear, invertible mixing into the plane: small enough to plot every map
# (tutorial [10](10_the_2d_toy) fits it).

# %%
toy = pyrocrl.simulate(toy2d(), pairs, seed=1)
z_toy, e_toy = toy["z"].values[:, 0], toy["noise"].values[:, 0]  # first world
assert np.allclose(z_toy[:, 1], 1.5 * np.tanh(2 * z_toy[:, 0]) + 0.5 * e_toy[:, 1], atol=1e-5)
fig, axes = plt.subplots(1, 2, figsize=(11, 5))
plot_pairs(toy, variable="z", max_pairs=150, ax=axes[0])
plot_pairs(toy, max_pairs=150, ax=axes[1])
plt.show()

# %% [markdown]
# ## Where next
#
# [Tutorial 02](02_quickstart) fits an implicit latent causal model to such pairs;
# [data](../data) explains the format and how to bring your own pairs, and
# [concepts](../concepts) the generative story behind the simulators.
#
# ## References
#
# - J. Brehmer, P. de Haan, P. Lippe, T. Cohen (2022). *Weakly supervised causal
#   representation learning*. NeurIPS 2022. The scaling toy and the pair setting.
# - Pyro's effect handlers: [`pyro.poutine.do`](https://docs.pyro.ai/en/stable/poutine.html#pyro.poutine.handlers.do)
#   and [`pyro.condition`](https://docs.pyro.ai/en/stable/poutine.html#pyro.poutine.handlers.condition).
# - J. Pearl (2009). *Causality*, 2nd ed., Cambridge University Press: interventions and
#   counterfactuals (abduction, action, prediction).
# - [xarray](https://docs.xarray.dev) for the dataset format.
