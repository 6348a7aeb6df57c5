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

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import pyro
import torch
from pyro import poutine

import pyrocrl
from pyrocrl.models import scaling_toy, toy2d
from pyrocrl.plots import plot_graph, plot_pairs

smoke_test = "CI" in os.environ  # small sizes when the test suite runs this file
pairs = 2_000 if smoke_test else 20_000

# %% [markdown]
# ## 1. A ground-truth latent causal model
#
# The scaling toy has `n` causal variables with linear Gaussian mechanisms over a random
# DAG, `z_j = e_j + Σ_i w_ij z_i`, seen through a random rotation, `x = R z`. The graph,
# weights and rotation come from a *graph seed*; samples come from a separate *sample seed*.

# %%
lcm = scaling_toy(n=4, graph_seed=302)
print("adjacency (row = cause, column = effect):\n", lcm.scm.adjacency)
print("weights:\n", lcm.scm.weights.round(2))
plot_graph(lcm.scm.adjacency, weights=lcm.scm.weights)
plt.title("the true causal graph")
plt.show()

# %% [markdown]
# `lcm.model` is a Pyro program for one batch of pairs. Its sample sites are the
# exogenous `noise` e, the intervention `target` (0 = none, k = variable z_k) and the new
# `value` of the intervened variable; `z`, `z_tilde` and `noise_tilde` are deterministic;
# `x` and `x_tilde` are the observations. Tracing it shows every site and its shape.

# %%
trace = poutine.trace(lcm.model).get_trace(size=5)
for name, site in trace.nodes.items():
    if site["type"] == "sample" and name != "pair":
        print(f"{name:12s} {tuple(site['value'].shape)}")

# %% [markdown]
# ## 2. Interventions and counterfactuals with Pyro's handlers
#
# `pyro.poutine.do` fixes a site. Fixing `target = 3` makes every pair an intervention on
# z3: the new value of z3 no longer listens to its parents z1 and z2.

# %%
with poutine.do(data={"target": torch.tensor(3)}):
    out = lcm.model(size=pairs)
r_before = np.corrcoef(out["z"][:, 0], out["z"][:, 2])[0, 1]
r_after = np.corrcoef(out["z_tilde"][:, 0], out["z_tilde"][:, 2])[0, 1]
print(f"corr(z1, z3) before: {r_before:+.3f}; after do(z3): {r_after:+.3f}")

# %% [markdown]
# The single-world program `lcm.world` has one site per mechanism (`z1 … z4`), so we can
# also intervene on a causal variable by name. A **counterfactual** keeps the noise of an
# observed unit: condition on `noise`, then intervene. The answer matches the pair
# program's `x_tilde` exactly, because both worlds share the noise.

# %%
pair = lcm.model(size=3)
counterfactual = poutine.do(
    pyro.condition(lcm.world, data={"noise": pair["noise"]}),
    data={"z3": pair["value"]},
)
print("x~ from the pair program:\n", pair["x_tilde"][pair["target"] == 3])
print("counterfactual x under do(z3 = value):\n", counterfactual(size=3)["x"][pair["target"] == 3])

# %% [markdown]
# ## 3. A dataset of pairs
#
# `pyrocrl.simulate` runs the pair program in batches on a private random stream (the
# global torch state is untouched) and returns an `xarray.Dataset` with named dims:
# `x (pair, world, feature)`, the ground truth `z`, `noise`, `target`, the graph, and the
# generator settings in `attrs`.

# %%
ds = pyrocrl.simulate(lcm, pairs, seed=0)
print(ds)
print(pyrocrl.describe(ds))

# %% [markdown]
# Saving writes NetCDF-4; loading checks the file and gives the same dataset back.

# %%
path = pyrocrl.save(ds, "scaling_pairs.nc")
assert pyrocrl.load(path).identical(ds)

# %% [markdown]
# Each pair is a segment from `x` (dot) to `x~`. Pairs without intervention are single
# grey dots; the direction of a segment depends on which variable was intervened on and
# on its descendants, which is the signal weak supervision learns from.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 5))
plot_pairs(ds, max_pairs=200, ax=axes[0])
plot_pairs(ds, variable="z", dims=(0, 2), max_pairs=200, ax=axes[1])
axes[1].set_title("true causal variables z1, z3")
plt.show()

# %% [markdown]
# ## The 2D toy
#
# Two variables `z1 → z2` with a nonlinear mechanism, `z2 = 1.5 tanh(2 z1) + 0.5 e2`, and
# a nonlinear, invertible mixing into the plane: small enough to plot every map.

# %%
toy = pyrocrl.simulate(toy2d(), pairs, seed=1)
fig, axes = plt.subplots(1, 2, figsize=(11, 5))
plot_pairs(toy, variable="z", max_pairs=150, ax=axes[0])
plot_pairs(toy, max_pairs=150, ax=axes[1])
plt.show()
