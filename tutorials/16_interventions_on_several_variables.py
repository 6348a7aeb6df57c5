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
# # Interventions on several variables
#
# An experimenter rarely controls exactly one causal variable: a drug binds two
# receptors, a knob moves two actuators, a gene knock-out silences a pathway. This
# tutorial fits an ILCM to pairs whose intervention may hit a **set** of variables:
#
# 1. the target table that numbers the sets, and a simulated dataset with sets;
# 2. a fit that knows sets exist, against one that assumes single targets, scored by
#    exact-set accuracy (the inferred set must be the true one);
# 3. the posterior over sets of a few pairs, and an intervention with `do` on a model of
#    sets.
#
# Causal variables are written `z_1 … z_n`; a target is the index of a set of them.
#
# **Needs** no extra. Background: [the data format](../data) (interventions on several
# variables) and [results](../results) (the benchmark and what it took to get there).

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import pyro
import torch

import pyrocrl
from pyrocrl.data import simulate_pairs
from pyrocrl.inference import do, intervention_posterior
from pyrocrl.inference.fit_setup import tuned_recipe
from pyrocrl.interventions import num_targets, target_names, target_sets
from pyrocrl.metrics import dci, match_sets

torch.set_num_threads(1)
pyro.set_rng_seed(0)
smoke_test = "CI" in os.environ
n = 3 if smoke_test else 4
pairs, test_pairs = (3_000, 1_000) if smoke_test else (30_000, 5_000)
recipe = tuned_recipe("fast", scale=0.5 if smoke_test else 1.0)

# %% [markdown]
# ## Sets of variables, numbered
#
# The target site of a pair program is one categorical variable. With sets, its values
# index the *target table*: every set of at most `k` variables, by size and then in
# lexicographic order. Index 0 is "none" and `1 … n` are the single variables, exactly as
# for single targets, so nothing changes for data without sets.

# %%
k = 2
print(num_targets(n, k), "sets:", target_names(n, k))
print(target_sets(n, k).astype(int))

# %% [markdown]
# The simulators draw the set uniformly from the table (`pyrocrl simulate --max-targets 2`
# on the command line) and intervene on all its members at once: each gets a new value,
# and their descendants follow with the same noise. The dataset records `k` in its
# `attrs`, and `describe` counts every set.

# %%
train = simulate_pairs("scaling", pairs, n=n, seed=302, max_targets=k)
test = simulate_pairs("scaling", test_pairs, n=n, seed=9302, graph_seed=302, max_targets=k)
print(pyrocrl.describe(train))

# %% [markdown]
# ## A model of sets against a model of single targets
#
# `fit_ilcm` reads `k` from the dataset. Its model enumerates all sets in the bound, gives
# each intervened variable its own new value (the site `value` is `(*, n)` now) and finds
# the noise that produces those values by a fixed-point iteration of the solution
# function. The recipe's times are stretched by `K / (n + 1)`: the order of the variables
# is learned from the pairs that intervene on one variable alone, which are rarer among
# sets. The second fit is told `max_targets=1`: it must explain a pair in which two
# variables moved by one intervention.

# %%
fits = {}
for label, max_targets in (("model of sets", None), ("single targets", 1)):
    _, guide, report = pyrocrl.fit_ilcm(
        train, n, test=test, recipe=recipe, max_targets=max_targets, progress=False
    )
    fits[label] = (guide, report.metrics)
    scores = {
        key: round(report.metrics[key], 3)
        for key in ("dci_disentanglement", "intervention_accuracy")
    }
    print(f"{label:15s} recipe {report.recipe:14s}", scores)

# %% [markdown]
# Both reports give the share of test pairs whose inferred set is exactly the true one
# (after learned variables are matched to true ones). The model of single targets cannot
# name a set at all, so it misses every pair with two targets — about 6 in 11 for `n = 4`.
# Split by how many variables the truth intervened on:

# %%
x = torch.as_tensor(test["x"].values)
true_sets = target_sets(n, k)[test["target"].values]
size = true_sets.sum(-1)
fig, ax = plt.subplots(figsize=(5, 3.2))
for offset, (label, (guide, _)) in zip((-0.2, 0.2), fits.items(), strict=True):
    probs = intervention_posterior(guide, x[:, 0], x[:, 1])
    predicted = target_sets(n, guide.model.max_targets)[probs.argmax(-1).numpy()]
    # learned variables in the order of the true ones, by the sets they share
    matched = np.zeros_like(true_sets)
    matched[:, match_sets(predicted, true_sets)] = predicted
    right = (matched == true_sets).all(-1)
    shares = [right[size == s].mean() for s in range(k + 1)]
    ax.bar(np.arange(k + 1) + offset, shares, width=0.4, label=label)
ax.set(xticks=range(k + 1), xlabel="variables the intervention hit", ylabel="exact-set accuracy")
ax.legend()
plt.show()

# %% [markdown]
# ## The posterior over sets, and `do`
#
# `intervention_posterior` gives `q(I | x, x~)` over all sets; here for three test pairs,
# with the true set beside it (learned variables are numbered in the model's own order).

# %%
guide, metrics = fits["model of sets"]
probs = intervention_posterior(guide, x[:3, 0], x[:3, 1]).numpy()
names = target_names(n, k)
for row, target in zip(probs, test["target"].values[:3], strict=True):
    top = np.argsort(row)[::-1][:3]
    print(f"true {names[target]:6s} | " + ", ".join(f"{names[t]} {row[t]:.2f}" for t in top))

# %% [markdown]
# `do(z={2: 0.5})` on a model of sets is the set `{z_2}`: every second world gets
# `z_2 = 0.5`, whatever the networks learned.

# %%
with torch.no_grad(), do(z={2: 0.5}):
    sample = guide.model.model(size=5)
print(sample["target"].tolist(), sample["z_tilde"][:, 1].round(decimals=4).tolist())

# %% [markdown]
# At full size (`n = 4`, 30,000 pairs, `CI` unset; 3 minutes on two cores) the model of
# sets reaches DCI 0.992 and names the exact set in 92 % of the test pairs. The model of
# single targets gets DCI 0.941 but an exact-set accuracy of 0.41: it cannot name a set,
# so it is capped at the share of pairs with one target or none (5 in 11). The posterior
# above spreads over the sets that share a variable with the most probable one. The
# benchmark in [results](../results) fits 110,000 pairs on three data seeds (DCI
# 0.960–0.996, exact-set accuracy 0.958–0.973) and explains what the model needed: a bound
# that leaves the mechanisms alone before they mean anything, values whose density holds
# the Jacobian of the whole set, enough rounds of the fixed-point iteration to cross from a
# wrong order of the variables to the right one, and a longer schedule.

# %%
assert guide.model.max_targets == k and probs.shape == (3, num_targets(n, k))
assert torch.allclose(sample["z_tilde"][:, 1], torch.tensor(0.5))
# a model of single targets names at most the pairs with one target or none
assert fits["single targets"][1]["intervention_accuracy"] <= 1 - (size == k).mean() + 1e-9

# %% [markdown]
# ## Interventions that only shift a mechanism
#
# Not every intervention replaces a mechanism. A *soft* one shifts it and keeps its
# parents: the simulator `scaling-shift` moves the intervened noise, `e~_I = e_I + v` with
# `v ~ N(0, 2²)`, and says so in the dataset (`attrs["intervention"] = "shift"`), so
# `fit_ilcm` fits the shift program of the model (or pass `intervention="shift"`). What
# such pairs can tell is less: both worlds pass through the same solution function and
# mixing, so pairs identify the exogenous **noise** and the targets, not the causal
# variables or the graph — by any method. The program says so too: its solution function
# gets no gradient from a pair. Read the noise, and score it against the true noise.

# %%
shifted = simulate_pairs("scaling-shift", pairs, n=n, seed=302)
shifted_test = simulate_pairs("scaling-shift", test_pairs, n=n, seed=9302, graph_seed=302)
print("intervention kind in the data:", shifted.attrs["intervention"])
soft_model, soft_guide, soft_report = pyrocrl.fit_ilcm(
    shifted, n, test=shifted_test, recipe=recipe, seed=0, progress=False
)
learned = pyrocrl.encode(soft_guide, shifted_test["x"].values[:, 0])
half, soft_scores = test_pairs // 2, {}
for name in ("noise", "z"):
    a, b = learned[name].numpy(), shifted_test[name].values[:, 0]
    soft_scores[name] = dci(a[:half], b[:half], a[half:], b[half:], seed=0).disentanglement
    print(f"DCI disentanglement, learned {name} against the true {name}: {soft_scores[name]:.3f}")
print(f"intervention accuracy: {soft_report.metrics['intervention_accuracy']:.3f}")
assert soft_model.intervention == "shift"
if not smoke_test:
    assert soft_scores["noise"] >= 0.9

# %% [markdown]
# At full size (`n = 4`, 30,000 pairs) the learned noise matches the true noise (DCI
# 0.998, intervention accuracy 0.949) while the learned causal variables do not match the
# true ones (0.319); the benchmark
# in [results](../results) fits 110,000 pairs on three data seeds: noise DCI 1.000 and
# intervention accuracy 0.96–0.97, the causal variables' DCI 0.10–0.78 (as good as the
# graph is sparse, since with no edges the noise *is* the causal variables).
