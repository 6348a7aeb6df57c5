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
# with Equinox twins of the networks. A training step of the twin is compiled by XLA, and
# many steps run in one compiled call, so a step is many times cheaper than Pyro's eager
# step on a CPU.
#
# You do not have to leave Pyro to use it: `fit_ilcm(..., backend="jax")` copies the Pyro
# model into its twin, trains the twin, and copies the result back. The returned model,
# its checkpoint and every query are Pyro's.
#
# This tutorial (1) fits the same model with both backends and compares their training
# curves and clocks, (2) checks that the two programs agree to float precision, and
# (3) answers a counterfactual query with NumPyro's own `do` and `condition` handlers.
#
# **Needs** the `jax` extra: `pip install 'pyrocrl[jax]'`. Background:
# [backends](../backends) and [training](../training).

# %%
import json
import os
import tempfile
import time
from pathlib import Path

import jax
import matplotlib.pyplot as plt
import numpy as np
import pyro
import torch
from numpyro import handlers

from pyrocrl.data import make_simulator, simulate_splits
from pyrocrl.inference import counterfactual, fit_ilcm, get_recipe, queries_jax
from pyrocrl.inference.guides_jax import NumPyroILCMGuide
from pyrocrl.models.ilcm_jax import NumPyroILCM

torch.set_num_threads(1)
torch.manual_seed(0)
pyro.set_rng_seed(0)
smoke_test = "CI" in os.environ
n = 4
sizes = {"train": 4_000, "test": 1_000, "dci": 1_000} if smoke_test else None
truth = make_simulator("scaling", n=n, graph_seed=302)
splits = simulate_splits(truth, seed=302, sizes=sizes)
workdir = Path(tempfile.mkdtemp())

# %% [markdown]
# ## The same fit, twice
#
# We fit the `fast` recipe (5,467 steps on 100,000 training pairs at `n = 4`) once with
# each backend, same data, same model seed, and let each write its training log
# (`output=`: `results.json` beside the checkpoint). Part of the JAX time is XLA
# compiling the training step before the first step runs, a fixed cost of tens of seconds
# on a CPU (the command line keeps compiled programs on disk, so later runs of
# `pyrocrl fit --backend jax` skip it).

# %%
recipe = get_recipe("fast").scaled(0.05) if smoke_test else get_recipe("fast")
fits, seconds = {}, {}
for label, backend in (("Pyro", "torch"), ("JAX", "jax")):
    start = time.perf_counter()
    fits[label] = fit_ilcm(
        splits["train"],
        n,
        test=splits["test"],
        dci_train=splits["dci"],
        recipe=recipe,
        backend=backend,
        seed=0,
        output=workdir / backend,
        progress=False,
    )
    seconds[label] = fits[label][2].train_time
    print(f"== {label}: {time.perf_counter() - start:.0f} s for the whole call")
    print(fits[label][2].format())

# %% [markdown]
# The two backends run the same program with the same recipe, so their training curves
# (the running mean of the negative ELBO per pair, from each run's `results.json`) should
# look alike; they differ in the details because the two backends draw different random
# numbers. What differs is the clock.

# %%
figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
for label, backend in (("Pyro", "torch"), ("JAX", "jax")):
    history = json.loads((workdir / backend / "results.json").read_text())["history"]
    steps = [h["step"] for h in history if "elbo" in h]
    left.plot(steps, [-h["elbo"] for h in history if "elbo" in h], label=label)
left.set_yscale("symlog")
left.set_xlabel("training step")
left.set_ylabel("−ELBO per pair (running mean)")
left.set_title("same program, same curve")
left.legend()
right.barh(list(seconds), list(seconds.values()), color=["C0", "C1"])
right.set_xlabel("training time (s)")
right.set_title(f"{fits['Pyro'][2].steps} steps")
right.invert_yaxis()
figure.tight_layout()
plt.show()

# %% [markdown]
# Both backends reach the same quality (DCI disentanglement and intervention accuracy
# above), and JAX gets there sooner. In the full-size run of this tutorial (model seed 0,
# on a 2-core CPU shared with other jobs) Pyro trained for 5.1 minutes and JAX for 1.9,
# compilation included, both to DCI disentanglement 0.99 and intervention accuracy 0.96;
# on an idle machine the main job (`pyrocrl fit`) takes 51 s against 17 s. Per step
# the compiled program is 6–21× faster, depending on `n` and the training phase
# (`benchmarks/backends.py`; the [measured results](../results), "Backends"); for a
# short run the one-off compilation is a good part of the JAX time, so the gain grows
# with the length of the run.
#
# With `backend="torch"` the same call trains the Pyro program itself; it is the one to
# use for models you extend (a new likelihood, a learned prior, another solution
# function), which have no twin. On the command line:
# `pyrocrl fit --backend jax`.

# %%
model, guide, report = fits["JAX"]
for label, (_, _, fitted) in fits.items():
    assert fitted.metrics["dci_disentanglement"] > (0.2 if smoke_test else 0.95), label
    assert fitted.metrics["intervention_accuracy"] > (0.2 if smoke_test else 0.9), label
if not smoke_test:  # the same quality, sooner
    for key in ("dci_disentanglement", "intervention_accuracy"):
        assert abs(fits["JAX"][2].metrics[key] - fits["Pyro"][2].metrics[key]) < 0.02, key
    assert seconds["JAX"] < seconds["Pyro"]

# %% [markdown]
# ## The two programs agree
#
# `NumPyroILCM.from_torch` builds the twin of a Pyro model with the same parameters. Fix
# the latent values — the noise `e`, the intervention target `I` (0: none, `k`: `z_k`)
# and the intervened value — and both programs give the same log-density at every site,
# up to float32 rounding. (With latents drawn at random rather than from the posterior,
# the observation sites' log-densities are large numbers, so we compare relative
# differences.)

# %%
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
gaps = {}
for site in ("noise", "target", "value", "x", "x_tilde"):
    ours = np.asarray(jax_trace[site]["fn"].log_prob(jax_trace[site]["value"]))
    theirs = pyro_trace.nodes[site]["log_prob"].detach().numpy()
    gaps[site] = float(np.abs(ours - theirs).max() / (1 + np.abs(theirs).max()))
    print(
        f"{site:8s} largest log-density {np.abs(theirs).max():9.1f}, relative gap {gaps[site]:.1e}"
    )
assert max(gaps.values()) < 1e-5  # float32 rounding, nothing more

# %% [markdown]
# ## A counterfactual with NumPyro's handlers
#
# Abduction conditions `noise` on its encoding, action is `numpyro.handlers.do` on the
# sites `target` and `value`, prediction reads the intervened world. Here we set learned
# `z_2` (target 2; column 1 of the arrays) to 0.5 and compare with the Pyro query on the
# Pyro model.

# %%
ours = queries_jax.counterfactual(twin, twin_guide, x[:, 0].numpy(), 2, 0.5)
theirs = counterfactual(model, x[:, 0], {2: 0.5}, guide=guide)
print("z~ (JAX):\n", np.asarray(ours["z_tilde"][:3]).round(3))
gap = float(np.abs(np.asarray(ours["x_tilde"]) - theirs["x_tilde"].numpy()).max())
print("largest difference of x~ against Pyro:", gap)
assert np.allclose(np.asarray(ours["z_tilde"])[:, 1], 0.5, atol=1e-5)
assert gap < 1e-3

# %% [markdown]
# ## References
#
# - J. Brehmer, P. de Haan, P. Lippe and T. Cohen (2022), *Weakly supervised causal
#   representation learning*, NeurIPS.
# - D. Phan, N. Pradhan and M. Jankowiak (2019), *Composable effects for flexible and
#   accelerated probabilistic programming in NumPyro*, arXiv:1912.11554;
#   [NumPyro handlers](https://num.pyro.ai/en/stable/handlers.html).
# - P. Kidger and C. Garcia (2021), *Equinox: neural networks in JAX via callable PyTrees
#   and filtered transformations*, arXiv:2111.00254.
# - [Pyro's poutine](https://docs.pyro.ai/en/stable/poutine.html) (`trace`, `condition`,
#   `do`).
