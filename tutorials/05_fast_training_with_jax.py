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
# # Fast training with the JAX backend
#
# Every model in pyrocrl is a Pyro program. The ILCM (like the ELCM and the baselines built
# from the same program) also has a **NumPyro twin**
# (`pyrocrl.models.ilcm_jax.NumPyroILCM`, with its guide in
# `pyrocrl.inference.guides_jax`): the very same program — model, guide and bound are
# written once, against pyrocrl's backend layer (`pyrocrl.backends`) — run by NumPyro,
# with Equinox twins of the networks.
# A training step of the twin is compiled by XLA, and many steps run in one compiled call,
# so training is several times faster than Pyro's eager steps on a CPU.
#
# You do not have to leave Pyro to use it: `fit_ilcm(..., backend="jax")` copies the Pyro
# model into its twin, trains the twin, and copies the result back. The returned model,
# its checkpoint and every query are Pyro's.
#
# This tutorial (1) fits with both backends and compares, (2) checks that the two programs
# agree to float precision, and (3) answers a counterfactual query with NumPyro's own
# `do` and `condition` handlers.

# %%
import os
import time

import jax
import numpy as np
import torch
from numpyro import handlers

from pyrocrl.data import make_simulator, simulate_splits
from pyrocrl.inference import queries, queries_jax
from pyrocrl.inference.fit import fit_ilcm
from pyrocrl.inference.guides_jax import NumPyroILCMGuide
from pyrocrl.inference.recipes import get_recipe
from pyrocrl.models.ilcm_jax import NumPyroILCM

torch.set_num_threads(1)
smoke_test = "CI" in os.environ
n = 4
sizes = {"train": 4_000, "test": 1_000, "dci": 1_000} if smoke_test else None
truth = make_simulator("scaling", n=n, graph_seed=302)
splits = simulate_splits(truth, seed=302, sizes=sizes)

# %% [markdown]
# ## Fit with JAX
#
# The `fast` recipe compressed five-fold is enough at `n = 4` with the JAX backend; most of
# the first call's time is XLA compiling the training step (once per process; the command
# line keeps compiled programs on disk, so later runs skip it).

# %%
recipe = get_recipe("fast").scaled(0.05 if smoke_test else 0.2)
start = time.perf_counter()
model, guide, report = fit_ilcm(
    splits["train"],
    n,
    test=splits["test"],
    dci_train=splits["dci"],
    recipe=recipe,
    backend="jax",
)
print(report.format())
print(f"{time.perf_counter() - start:.0f} s in all")

# %% [markdown]
# With `backend="torch"` the same call trains the Pyro program itself; it is the one to
# use for models you extend (a new likelihood, a learned prior, another solution
# function), which have no twin. On the command line:
# `pyrocrl fit --backend jax --recipe-scale 0.2`.
#
# ## The two programs agree
#
# `NumPyroILCM.from_torch` builds the twin of a Pyro model with the same parameters. Fix
# the latent values and both programs give the same log-density at every site.

# %%
import pyro  # noqa: E402

twin = NumPyroILCM.from_torch(model)
twin_guide = NumPyroILCMGuide.from_torch(guide, twin)
x = torch.as_tensor(splits["test"]["x"].values[:8])
latents = {
    "noise": torch.randn(8, n),
    "target": torch.arange(8) % (n + 1),
    "value": torch.randn(8),
}
pyro_trace = pyro.poutine.trace(pyro.condition(model.model, data=latents)).get_trace(
    x[:, 0], x[:, 1]
)
pyro_trace.compute_log_prob()
jax_latents = {k: jax.numpy.asarray(v.numpy()) for k, v in latents.items()}
jax_trace = handlers.trace(handlers.substitute(twin.model, data=jax_latents)).get_trace(
    x[:, 0].numpy(), x[:, 1].numpy()
)
for site in ("noise", "target", "value", "x", "x_tilde"):
    ours = jax_trace[site]["fn"].log_prob(jax_trace[site]["value"])
    gap = np.abs(np.asarray(ours) - pyro_trace.nodes[site]["log_prob"].detach().numpy()).max()
    print(f"{site:8s} largest difference of log-densities: {gap:.1e}")

# %% [markdown]
# ## A counterfactual with NumPyro's handlers
#
# Abduction conditions `noise` on its encoding, action is `numpyro.handlers.do` on the
# sites `target` and `value`, prediction reads the intervened world. It matches the Pyro
# query on the Pyro model.

# %%
ours = queries_jax.counterfactual(twin, twin_guide, x[:, 0].numpy(), 2, 0.5)
theirs = queries.counterfactual(model, x[:, 0], {2: 0.5}, guide=guide)
print("z~ (JAX):\n", np.asarray(ours["z_tilde"][:3]).round(3))
print(
    "largest difference of x~ against Pyro:",
    float(np.abs(np.asarray(ours["x_tilde"]) - theirs["x_tilde"].numpy()).max()),
)
