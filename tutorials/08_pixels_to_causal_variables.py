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
# # From pixels to causal variables: CausalCircuit
#
# A robotic finger moves along an arc over a board with three touch-sensitive buttons.
# Each button lights a lamp (red, green, blue), and the circuit is wired so that the green
# lamp also lights the red one. Four causal variables, and a graph between them:
#
# ```
# arm → red,  arm → green,  arm → blue,  green → red
# ```
#
# All we observe are images — pairs of them, before and after an intervention on one
# unknown variable (or none): the finger is moved, or a lamp is switched to a new
# intensity, and everything downstream follows. From such pairs, without labels, we want
# the four variables back, which pairs were intervened on where, and the graph.
#
# The scene is rendered offscreen with MuJoCo (the TriFinger finger's own meshes, from
# the `robot-properties-fingers` package), so the data are ours to make: any size, any
# resolution, with the ground truth alongside.
#
# Throughout, the causal variables are `z_1 … z_4` = (arm, red, green, blue), in that
# order; an intervention target `0` means "no intervention" and `k` means `z_k`. Arrays
# are 0-based, so `z_k` is column `k - 1`.
#
# **Needs** the `circuit` extra for the renderer and the `jax` extra for training:
# `pip install 'pyrocrl[circuit,jax]'` (offscreen OpenGL comes from the system, see
# [images](../images)). Background: [training](../training), [graphs](../graphs).

# %%
import os
import warnings

import numpy as np
import pyro
import torch
from matplotlib import pyplot as plt
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPRegressor

from pyrocrl.data import describe, images
from pyrocrl.data.causalcircuit import VARIABLES, causal_circuit, simulate_causalcircuit_splits
from pyrocrl.inference import encode, fit_ilcm, get_recipe, learn_graph, predict_targets
from pyrocrl.inference.reduce import decode_features, fit_image_vae, intervention_images, reduce
from pyrocrl.metrics import dci, graph_scores, match_importance, monotone_r2
from pyrocrl.plots import plot_graph, plot_image_grid, plot_latents

torch.set_num_threads(1)
torch.manual_seed(0)
pyro.set_rng_seed(0)
smoke_test = "CI" in os.environ
resolution = 16 if smoke_test else 64
sizes = (
    {"train": 1_500, "test": 500, "dci": 500}
    if smoke_test
    else {"train": 100_000, "test": 10_000, "dci": 10_000}
)
splits = simulate_causalcircuit_splits(302, sizes, resolution=resolution)
print(describe(splits["train"]))

# %% [markdown]
# ## What a pair looks like
#
# One pair per kind of intervention: the top row is before, the bottom row after. Moving
# the arm changes which button is pressed, so the lamps follow; switching the green lamp
# changes the red one too; red and blue have no effects.

# %%
train = splits["train"]
target = train["target"].values
shown = [int(np.flatnonzero(target == k)[0]) for k in range(5)]
labels = ["no intervention", *[f"do({v})" for v in VARIABLES]]
plot_image_grid(images(train)[shown].swapaxes(0, 1), row_labels=["x", "x~"], column_labels=labels)
plt.show()

# %% [markdown]
# ## Two stages: pixels → 8 features → 4 causal variables
#
# We follow the two-stage pipeline of Brehmer et al. (2022). An image VAE (convolutional
# encoder and decoder, `pyrocrl.conv`) learns 8 features from single images — it never
# sees the pairing. Then an ILCM learns the causal variables from pairs of features. Why
# not one model on the pixels? Training the ILCM end to end would run the convolutional
# decoder for every intervention hypothesis at every step, on a CPU; the VAE is trained
# once, cheaply, and the ILCM on 8 numbers per image is as fast as on the scaling toy.
#
# What the two stages cost is a condition on the features. The identifiability result of
# the paper is about the map from causal variables to whatever the ILCM observes — here
# the features, not the pixels. The ILCM can identify a causal variable only if the
# features keep it: it is identifiable up to what the VAE's encoding preserves, and a
# variable the VAE blurs away (say, a lamp too dim to matter for the reconstruction) is
# lost for good. Whether the features keep all four is something we can check here,
# because the labels are known: a supervised read-out, an MLP fitted *with* the true
# variables, must recover them from the 8 features.

# %%
vae, vae_report = fit_image_vae(
    train,
    dim=8,
    epochs=1 if smoke_test else 4,
    max_images=2_000 if smoke_test else 50_000,
    seed=0,
    progress=False,
)
print(vae_report)
codes = {name: reduce(vae, ds) for name, ds in splits.items()}

x = images(splits["test"])[:6, 0]
reconstruction = decode_features(vae, codes["test"]["x"].values[:6, 0])
plot_image_grid(np.stack([x, reconstruction]), row_labels=["image", "VAE"])
plt.show()

# %%
readout = MLPRegressor(hidden_layer_sizes=(64, 64), max_iter=300, random_state=0)
with warnings.catch_warnings():  # in smoke mode it stops before it converges
    warnings.simplefilter("ignore", ConvergenceWarning)
    readout.fit(codes["dci"]["x"].values[:, 0], codes["dci"]["z"].values[:, 0])
predicted = readout.predict(codes["test"]["x"].values[:, 0])
true_z = codes["test"]["z"].values[:, 0]
ceiling = 1 - ((predicted - true_z) ** 2).mean(0) / true_z.var(0)
print("features → true variables, supervised read-out R²:")
print({name: round(float(r2), 3) for name, r2 in zip(VARIABLES, ceiling, strict=True)})
assert ceiling.min() > (0.0 if smoke_test else 0.95)  # the features keep every variable

# %% [markdown]
# The [measured results](../results) ("From pixels: CausalCircuit") measure this
# ceiling on the benchmark's features at R² 0.995–0.999 for all four variables. So the
# features are not what limits the ILCM on this dataset.
#
# ## The ILCM on the features: several candidates
#
# The same call as for any pyrocrl dataset, with one change that matters here. A single
# fit on CausalCircuit usually lands in a bad basin: the learned arm variable *folds back
# on itself* at a button (it rises with the arm position up to one button and falls
# beyond it), the light variables take over part of the arm, and arm interventions are
# read as light interventions. In the seed study of the
# [measured results](../results) (`benchmarks/causalcircuit_seeds.py`, twelve single
# fits), only 3 of 12 model seeds kept the arm one-to-one and reached DCI 0.93–0.95; the
# other nine folded and ended at DCI 0.46–0.78. Which basin a run ends in is settled
# early, and the good runs end with a much higher ELBO (7 or more per pair, against below
# 1.6).
#
# So we do what the benchmark does: train several **candidates** (model seeds derived
# from `seed`) up to a selection epoch, keep the one with the best training ELBO — no
# labels involved — and finish only that one. A recipe asks for it with
# `Recipe.replace(candidates=..., select_epoch=...)`; the full-size settings here are the
# benchmark's defaults (`fast` stretched to 14 epochs, 32 candidates compared at epoch
# 12), with which the benchmark reached DCI 0.937 and intervention accuracy 0.930.
#
# The candidates also differ in how the encoder starts. The even-numbered ones start with
# the preconditioner's feature screen (the screen that makes the light tunnel of tutorial
# 09 work: it leaves out sensors that multiply others); on these image features the arm
# lies along a curve, some features look like such products to the screen, and a
# screened start leaves the arm out — with the screen on every candidate the benchmark
# fell to DCI 0.53. The odd-numbered ones start from the plain linear solution, and the
# training ELBO chooses between them. It is not a guarantee: only plain starts find the
# good basin here, about one in 15, so 32 candidates (16 plain) hold none with a
# probability of about 30 %; such a run reports a DCI near 0.7 with a low ELBO — the
# sign to train more candidates. In smoke mode two tiny candidates only show the
# mechanics.

# %%
recipe = get_recipe("fast")
if smoke_test:
    recipe = recipe.scaled(0.5 / recipe.epochs).replace(candidates=2, select_epoch=0.25)
else:
    recipe = recipe.scaled(14 / recipe.epochs).replace(candidates=32, select_epoch=12)
model, guide, report = fit_ilcm(
    codes["train"],
    4,
    test=codes["test"],
    dci_train=codes["dci"],
    recipe=recipe,
    backend="torch" if smoke_test else "jax",  # a few steps: not worth compiling for
    seed=0,
    progress=False,
)
print(report.format())
assert len(report.selection) == recipe.candidates
assert all(np.isfinite(c["elbo"]) for c in report.selection)

# %% [markdown]
# ## Which learned variable is which, and the graph
#
# Learned variables come in an arbitrary order. We match them to the true ones as in
# [tutorial 02](02_quickstart): Hungarian matching on the DCI importance matrix
# (`match_importance`; learned `z_j` is true variable `match[j - 1] + 1`). The inferred
# intervention targets are translated through the same matching, and the graph is found
# by ENCO, fitted to the encoded pairs and their inferred targets, and scored against the
# true graph in the matched order.

# %%
test, dci_set = codes["test"], codes["dci"]
x, x_tilde = test["x"].values[:, 0], test["x"].values[:, 1]
learned = encode(guide, x)["z"].numpy()
true = test["z"].values[:, 0]
scores = dci(
    encode(guide, dci_set["x"].values[:, 0])["z"].numpy(), dci_set["z"].values[:, 0], learned, true
)
match = match_importance(scores.importance)  # learned j (0-based) is true match[j]
names = [VARIABLES[j] for j in match]
print(f"DCI disentanglement {scores.disentanglement:.3f}; learned z1..z4 are:", names)
targets = predict_targets(guide, x, x_tilde).numpy()  # 0: none, k: learned z_k
translated = np.concatenate([[0], match + 1])[targets]  # the same labels, in true variables
accuracy = float(np.mean(translated == test["target"].values))
print(f"intervention accuracy under the DCI matching: {accuracy:.3f}")
graph = learn_graph(model, guide, x, x_tilde, method="enco")
graph_score = graph_scores(graph.adjacency, causal_circuit().scm.adjacency, match)
print(
    f"SHD {graph_score.shd}, precision {graph_score.precision:.2f}, "
    f"recall {graph_score.recall:.2f}"
)
plot_graph(graph.adjacency, names=names)
plt.show()
assert sorted(match.tolist()) == [0, 1, 2, 3]
assert 0 <= accuracy <= 1 and graph_score.shd >= 0

# %% [markdown]
# ## Learned against true variables
#
# An identified variable is a thin monotone curve against its own true variable; against
# the others it shows only their causal effects on it (a light's variable dips where the
# arm presses its button). A fold, the failure described above, is visible here as a
# curve of the arm that turns back. `monotone_r2` measures it (1: one-to-one); the good
# runs of the seed study reach 0.988 or more, the folded ones 0.95 or less.

# %%
arm = int(np.flatnonzero(match == 0)[0])  # the learned variable matched to the arm
unfolded = monotone_r2(learned[:3000, arm], true[:3000, 0])
print(f"arm: monotone R² of its learned variable {unfolded:.3f}")
plot_latents(
    learned[:3000],
    true[:3000],
    learned_names=[f"z{k + 1} ({n})" for k, n in enumerate(names)],
    true_names=VARIABLES,
)
plt.show()
assert 0 <= unfolded <= 1

# %% [markdown]
# ## Interventions on the learned variables, in pixels
#
# The figure of the paper: take one scene, set each learned variable in turn to values
# from its 5 % to its 95 % quantile, let the learned model propagate the change to its
# effects, and decode to an image. Moving the arm should press buttons and light lamps;
# setting green should also change red.

# %%
z = encode(guide, x[:2000])["z"].numpy()
values = np.quantile(z, np.linspace(0.05, 0.95, 7), axis=0).T
grid = intervention_images(model, guide, vae, images(splits["test"])[0, 0], values)
plot_image_grid(grid, row_labels=[f"do(z{k + 1}) ({n})" for k, n in enumerate(names)])
plt.show()

# %% [markdown]
# The full benchmark — the same settings, with every stage cached on disk, the numbers
# against the targets and the figures in the [measured results](../results) — is `python
# benchmarks/causalcircuit.py`; `benchmarks/causalcircuit_seeds.py` is the seed study.
#
# ## References
#
# - J. Brehmer, P. de Haan, P. Lippe and T. Cohen (2022), *Weakly supervised causal
#   representation learning*, NeurIPS (the CausalCircuit dataset and the two-stage
#   pipeline).
# - D. P. Kingma and M. Welling (2014), *Auto-encoding variational Bayes*, ICLR (the image
#   VAE).
# - P. Lippe, T. Cohen and E. Gavves (2022), *Efficient neural causal discovery without
#   acyclicity constraints*, ICLR (ENCO).
# - C. Eastwood and C. K. I. Williams (2018), *A framework for the quantitative evaluation
#   of disentangled representations*, ICLR (DCI).
# - E. Todorov, T. Erez and Y. Tassa (2012), *MuJoCo: a physics engine for model-based
#   control*, IROS; M. Wüthrich et al. (2020), *TriFinger: an open-source robot for
#   learning dexterity*, CoRL.
