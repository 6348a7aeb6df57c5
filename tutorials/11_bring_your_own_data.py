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
# # Bring your own data: from NumPy arrays to a fit you can trust
#
# Every other tutorial starts from a simulator that pyrocrl ships, so the truth is always
# one attribute away. Here we play a user who has nothing but their own measurements: a
# table of sensor readings taken before and after somebody did *something* to a system,
# with no record of what. We
#
# 1. turn two plain NumPy arrays into a pyrocrl dataset, with the sensors' names and units,
#    validate it, and save and load it;
# 2. see how bad inputs are refused;
# 3. fit an implicit latent causal model (ILCM) with three model seeds;
# 4. read the fit **without ground truth** — held-out ELBO, agreement between seeds,
#    confidence of the inferred interventions, what each learned variable and each
#    inferred intervention does to the sensors — and decide whether to believe it;
# 5. only then open the envelope with the hidden truth and check that verdict.
#
# Causal variables are written `z_1 … z_n` in the text; an intervention target `0` means
# "no intervention" and `k` means `z_k` (arrays are 0-based, so `z_k` is column `k - 1`).
#
# **Needs** no extra: `pip install pyrocrl` is enough. Background:
# [the data format](../data), [checks without labels](../checks), [training](../training).

# %%
import os
import tempfile
from itertools import pairwise
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pyro
import torch

import pyrocrl
from pyrocrl.data import pairs_dataset, validate
from pyrocrl.inference import elbo_per_pair, get_recipe, trust_report
from pyrocrl.metrics import dci, match_importance

torch.set_num_threads(1)
pyro.set_rng_seed(0)  # torch, numpy and random
smoke_test = "CI" in os.environ
n_pairs, n_test = (3_300, 600) if smoke_test else (33_000, 3_000)
recipe = get_recipe("fast")  # 3.5 epochs: ~160 steps on the smoke-test pairs, ~1,400 full
model_seeds = [0, 1, 2]

# %% [markdown]
# ## The measurements
#
# Our system is a small greenhouse. Three quantities drive it: the sunlight reaching the
# plants (W/m²), the air temperature (°C) and how far the roof vents are open (%). Sun warms
# the air, and the climate controller opens the vents when it is warm, so the causal graph
# is `sun → temperature → vents` with `sun → vents` through the temperature. Six sensors
# watch it, each in its own units, and most of them read a *mixture* of the three
# quantities: the leaf thermometer is warmed by the sun as well as by the air, CO₂ falls
# when the vents open and when the plants photosynthesize, the cooling pump's power grows
# with the square of the temperature excess.
#
# Every pair is two readings a few minutes apart. In between, the grower either did nothing
# or did one thing by hand — moved the shading screen (sets the sunlight), switched the
# heater (sets the temperature) or overrode the vents (sets the opening) — and the log of
# what was done was lost. Everything the grower did not touch kept its exogenous noise
# (the weather, the controller's state); what depends on the touched variable follows it.
#
# The cell below is the simulator that stands in for the real greenhouse. It is plain NumPy,
# not pyrocrl, with simple stand-ins for the physics, not clipped at physical limits (a few
# vent positions come out negative). The causal variables and the targets go into a
# `hidden` dictionary that we do not look at until the last section.

# %%
rng = np.random.default_rng(11)
SENSORS = ["pyranometer", "leaf temperature", "vent actuator", "CO₂", "pump power", "humidity"]
UNITS = ["V", "°F", "mm", "ppm", "W", "%"]


def greenhouse(noise, target=None, value=None):
    """Sunlight (W/m²), air temperature (°C), vent opening (%) from exogenous noise; where
    ``target == k`` (1-based), variable k is set to ``value[:, k - 1]`` instead."""
    z = np.empty_like(noise)
    mechanisms = [
        lambda z, e: 450 + 120 * e,  # sunlight
        lambda z, e: 12 + 0.025 * z[:, 0] + 1.5 * e,  # air temperature: the sun warms it
        lambda z, e: 35 + 4.0 * (z[:, 1] - 23.25) + 8 * e,  # vents: the controller reacts
    ]
    for k, mechanism in enumerate(mechanisms):
        z[:, k] = mechanism(z, noise[:, k])
        if target is not None:
            hit = target == k + 1
            z[hit, k] = value[hit, k]
    return z


def sensors(z):
    """Six readings in their own units, with 1 % sensor noise each."""
    sun, temperature, vents = z.T
    readings = np.stack(
        [
            1.5e-5 * sun,  # pyranometer, V
            1.8 * (temperature + 0.004 * sun) + 32,  # leaf temperature, °F
            3.0 * vents,  # vent actuator position, mm
            900 - 6 * vents - 0.3 * (sun - 450),  # CO₂, ppm
            500 + 10 * (temperature - 10) ** 2,  # cooling pump power, W
            70 - 1.5 * (temperature - 23) - 0.3 * (vents - 35),  # relative humidity, %
        ],
        axis=1,
    )
    return readings + 0.01 * readings.std(0) * rng.normal(size=readings.shape)


noise = rng.normal(size=(n_pairs, 3))
target = rng.integers(0, 4, size=n_pairs)  # 0: nothing done, k: z_k set by hand
value = np.stack(  # the values set by hand: screen, heater, vent override
    [
        rng.normal(450, 150, n_pairs),
        rng.normal(23, 3, n_pairs),
        rng.normal(35, 15, n_pairs),
    ],
    axis=1,
)
z_before, z_after = greenhouse(noise), greenhouse(noise, target, value)
before, after = sensors(z_before), sensors(z_after)
hidden = {"z": z_before, "z_tilde": z_after, "target": target}
print("before:", before.shape, before.dtype, "  after:", after.shape)
print(f"{'sensor':<18}{'unit':>5}{'mean':>12}{'std':>12}")
for name, unit, mean, std in zip(SENSORS, UNITS, before.mean(0), before.std(0), strict=True):
    print(f"{name:<18}{unit:>5}{mean:12.4g}{std:12.4g}")

# %% [markdown]
# Means range from a few millivolts to thousands of watts, spreads over five orders of
# magnitude. There is no need to rescale anything: a model holds its own feature transform,
# fitted on the training pairs, and speaks the user's units in everything it returns
# ([the data format](../data)).

# %%
fig, axes = plt.subplots(2, 3, figsize=(11, 5.5))
for k, ax in enumerate(axes.flat):
    ax.hist(before[:, k], bins=50, color="0.5")
    ax.set_xlabel(f"{SENSORS[k]} [{UNITS[k]}]")
fig.suptitle("the six sensors before the intervention, in their own units")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## A dataset from two arrays
#
# `pyrocrl.data.pairs_dataset` takes the readings before and after, each `(N, D)`,
# and returns an `xarray.Dataset` with the observations in `x` of dims
# `(pair, world, feature)` (world 0 before, 1 after). Features are called `x1 … xD`; the
# sensors' names and units fit as extra coordinates along `feature`, and free-form settings
# as `attrs`. The dataset is validated when it is built, and `validate` can be called on
# any dataset later.

# %%
ds = pairs_dataset(before, after, attrs={"source": "greenhouse", "interval_minutes": 5})
ds = ds.assign_coords(sensor=("feature", SENSORS), unit=("feature", UNITS))
validate(ds)
print(ds)

# %% [markdown]
# Saving writes NetCDF-4; `load` checks the file (format, dims, finite values) before it
# returns it, and gives back exactly what was saved, coordinates and attributes included.

# %%
workdir = Path(tempfile.mkdtemp())
path = pyrocrl.save(ds, workdir / "greenhouse.nc")
loaded = pyrocrl.load(path)
assert loaded.identical(ds)
print(pyrocrl.describe(loaded))
units = dict(zip(loaded["sensor"].values.tolist(), loaded["unit"].values.tolist(), strict=True))
print("units:", units)

# %% [markdown]
# ## Bad inputs are refused, by name
#
# Real logs have gaps and misaligned exports. A missing reading (NaN), arrays of different
# lengths, and a sensor that never changes are all refused before anything is trained, with
# a `pyrocrl.DatasetError` (or, for the constant sensor, at the start of the fit)
# that says what is wrong.

# %%
broken = before.copy()
broken[17, 3] = np.nan  # a CO₂ reading dropped out
stuck_before, stuck_after = before.copy(), after.copy()
stuck_before[:, 4] = stuck_after[:, 4] = 1234.0  # the pump meter froze
attempts = {
    "a NaN": lambda: pairs_dataset(broken, after),
    "mismatched shapes": lambda: pairs_dataset(before, after[:-1]),
    "a constant sensor": lambda: pyrocrl.fit_ilcm(pairs_dataset(stuck_before, stuck_after), 3),
}
for problem, attempt in attempts.items():
    try:
        attempt()
    except (pyrocrl.DatasetError, ValueError) as error:
        print(f"{problem}: {type(error).__name__}: {error}")
    else:
        raise AssertionError(f"{problem} was accepted")

# %% [markdown]
# The fit's message counts features from 0: feature 4 is the fifth column, `x5`, the pump.

# %% [markdown]
# ## Fit
#
# We hold out a random tenth of the pairs (the model never trains on them; every check
# below reads them), and fit with `n = 3` causal variables: the grower can act on three
# things, so that is our guess (what a wrong guess looks like is the subject of
# [tutorial 12](12_reading_a_failed_fit)). Without ground truth there is nothing to score
# against, so we fit **three model seeds** on the same data: the label-free checks below
# compare them.

# %%
order = rng.permutation(n_pairs)
test_idx, train_idx = order[:n_test], order[n_test:]
train, test = ds.isel(pair=train_idx), ds.isel(pair=test_idx)
fits, reports = [], []
for seed in model_seeds:
    model, guide, report = pyrocrl.fit_ilcm(train, 3, test=test, recipe=recipe, seed=seed)
    fits.append((model, guide))
    reports.append(report)
print(reports[0].format())

# %% [markdown]
# ## Reading the fit without labels
#
# The report of a fit on user data has one number: the **held-out ELBO per pair**, a lower
# bound on `log p(x, x~)` of pairs the model has not seen. On its own it says little (it
# depends on the units and the number of sensors), but compared with the same bound on the
# training pairs it shows whether the model has merely memorized them, and across fits of
# the same data it ranks them. Then come the questions identifiability lets us ask.
#
# **1. Do independent fits agree?** Every good fit learns the same causal variables, up to
# their order and a monotone map of each. `pyrocrl.inference.trust_report` matches the
# learned variables of every two fits by their Spearman correlation, and asks how often two
# fits name the same intervened variable for the same pair.

# %%
x_test = torch.as_tensor(test["x"].values)
x_train = torch.as_tensor(train["x"].values[:n_test])
for (model, guide), report in zip(fits, reports, strict=True):
    train_elbo = elbo_per_pair(model, guide, x_train[:, 0], x_train[:, 1])
    print(
        f"seed {report.seed}: ELBO per pair  held-out {report.metrics['elbo']:7.3f}"
        f"   training {train_elbo:7.3f}"
    )
trust = trust_report(fits, x_test[:, 0], x_test[:, 1])
print(trust.format())
elbo_gap = max(
    elbo_per_pair(m, g, x_train[:, 0], x_train[:, 1]) - r.metrics["elbo"]
    for (m, g), r in zip(fits, reports, strict=True)
)

# %% [markdown]
# **2. Is the model sure about the interventions?** The guide's intervention posterior
# `q(I | x, x~)` over "nothing" and the three learned variables should be confident for the
# pairs that visibly changed, the hypotheses should all be used, and a pair the model calls
# "nothing happened" should show no more change than the sensor noise. Hesitation is expected
# only where the data cannot decide: a pair that barely moved is explained almost as well by
# "nothing" as by a small push on one variable.

# %%
model, guide = fits[0]
probs = pyrocrl.intervention_posterior(guide, x_test[:, 0], x_test[:, 1]).numpy()
inferred = probs.argmax(-1)
confidence = probs.max(-1)
scale = train["x"].values[:, 0].std(0)
change = np.abs(x_test[:, 1].numpy() - x_test[:, 0].numpy()) / scale  # in sensor std's
share = np.bincount(inferred, minlength=4) / len(inferred)
print("share of pairs per inferred target (nothing, learned 1, 2, 3):", share.round(3))
print(f"mean confidence max_k q(I = k | x, x~): {confidence.mean():.3f}")
sure_moved = np.mean(confidence[inferred > 0] > 0.9)  # among pairs inferred as intervened on
print(
    f"pairs with confidence above 0.9: {np.mean(confidence > 0.9):.1%} of all, "
    f"{sure_moved:.1%} of those inferred as intervened on"
)
calm = np.median(change[inferred == 0].max(1))
moved = np.median(change[inferred > 0].max(1))
print(f"largest sensor change (median, in sensor std's): 'nothing' {calm:.3f}, others {moved:.3f}")
unsure = confidence < 0.9
unsure_change = np.median(change[unsure].max(1))
print(
    f"  … for the pairs below 0.9 {unsure_change:.3f}, for those above 0.9 "
    f"{np.median(change[~unsure].max(1)):.3f}"
)
second = np.argsort(probs, axis=-1)[:, -2]  # the runner-up hypothesis
print(
    f"pairs below 0.9 whose two best hypotheses include 'nothing': "
    f"{np.mean((inferred[unsure] == 0) | (second[unsure] == 0)):.1%}"
)

# %% [markdown]
# **3. Does it make sense physically?** This is where knowing the system pays. For the pairs
# assigned to each inferred intervention, how much did each sensor move? An intervention
# moves the variable it hits *and everything downstream of it*, so its footprint on the
# sensors says which physical quantity a learned variable is, and in which causal order the
# learned variables stand. From the physics, we expect one intervention to move every
# sensor (the sunlight, upstream of all), one to move all but the pyranometer (the
# temperature), and one to move only the vent actuator, CO₂ and humidity (the vents).

# %%
moves = np.stack([change[inferred == k].mean(0) for k in range(4)])
rows = ["nothing"] + [f"do(learned {j + 1})" for j in range(3)]
fig, ax = plt.subplots(figsize=(7.5, 3.6))
image = ax.imshow(moves, cmap="Blues", vmin=0, aspect="auto")
ax.set_xticks(range(6), SENSORS, rotation=30, ha="right")
ax.set_yticks(range(4), rows)
for (i, j), v in np.ndenumerate(moves):
    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8)
fig.colorbar(image, ax=ax, label="sensor std's")
ax.set_title("mean |after − before| of each sensor, per inferred intervention")
fig.tight_layout()
plt.show()
footprint = moves[1:] > 0.25  # the sensors each inferred intervention moves
upstream_first = np.argsort(-footprint.sum(1), kind="stable")  # learned variables, 0-based
for j in upstream_first:
    print(f"do(learned {j + 1}) moves", [SENSORS[k] for k in np.flatnonzero(footprint[j])])
nested = all((footprint[b] <= footprint[a]).all() for a, b in pairwise(upstream_first))
print("causal order:", " → ".join(f"learned {j + 1}" for j in upstream_first))

# %% [markdown]
# Each footprint contains the next: the learned variables form a chain, and the variable
# at its head is the only one whose intervention moves the pyranometer. Read with the
# physics, the chain is sunlight → temperature → vents. (Correlating the learned variables
# with the sensors would say much less here: sunlight, temperature and vents are strongly
# correlated with each other, so every learned variable correlates with every sensor.)

# %% [markdown]
# ## The verdict
#
# Good fits agree with each other, and fits that wander off on their own do not; fits that
# never left their shared, data-driven starting point can agree on a wrong answer, so
# agreement is necessary, not sufficient. We therefore ask for all of it at once:
#
# - the seeds agree on the learned variables (matched |ρ| above 0.95) and on the inferred
#   targets (above 0.9);
# - the held-out ELBO is within a nat per pair of the training ELBO (no memorizing);
# - the pairs inferred as intervened on mostly (over 85 %) have one clearly most probable
#   hypothesis (above 0.9), the pairs the model hesitates over are ones that barely moved,
#   every hypothesis is used, and "nothing happened" pairs move far less than the others;
# - the inferred interventions move nested sets of sensors, as interventions along the
#   chain sunlight → temperature → vents must.
#
# On the full-size run (33,000 pairs, data seed 11, model seeds 0–2) the three fits agree
# at 0.998 on the variables and 0.996 on the targets. Their held-out ELBOs per pair (−16.8,
# −16.4, −16.3) are within 0.35 nats of the training ones. Of the pairs inferred as
# intervened on, 95.5 % get a hypothesis above 0.9; the pairs the model hesitates over moved
# a median of 0.025 sensor standard deviations (1.06 for the others), and for every one of
# them "nothing" is one of its two best hypotheses. The "nothing" pairs move 0.024 against
# 1.0 for the rest, and the footprints form the chain learned 3 → learned 1 → learned 2,
# which the physics reads as sunlight → temperature → vents.
# We believe the fit. (The smoke test trains about 150 steps on a tenth of the pairs; its
# numbers are rougher and its thresholds looser.)

# %%
verdict = {
    "seeds agree on the variables": trust.variables.mean > (0.8 if smoke_test else 0.95),
    "seeds agree on the targets": trust.targets > (0.6 if smoke_test else 0.9),
    "no memorizing": elbo_gap < (3.0 if smoke_test else 1.0),
    "confident posteriors": sure_moved > (0.6 if smoke_test else 0.85),
    "only calm pairs are unsure": unsure_change < 0.5 * moved,
    "every hypothesis used": share.min() > 0.1,
    "'nothing' pairs are calm": calm < 0.5 * moved,
    "footprints form a chain": nested and len(set(footprint.sum(1))) == 3,
}
for check, passed in verdict.items():
    print(f"{'pass' if passed else 'FAIL'}  {check}")
assert all(verdict.values()), verdict

# %% [markdown]
# ## Opening the envelope
#
# Now we look at `hidden`. The learned variables are matched to the true ones as in
# [tutorial 02](02_quickstart) — Hungarian matching on the DCI importance matrix with
# `pyrocrl.metrics.match_importance`, so learned variable `j` is true variable
# `match[j]` — and the inferred intervention labels are translated through the same
# matching before they are compared with the true targets.

# %%
z_true = hidden["z"][test_idx]
z_learned = pyrocrl.encode(guide, x_test[:, 0])["z"].numpy()
half = n_test // 2
scores = dci(z_learned[:half], z_true[:half], z_learned[half:], z_true[half:])
match = match_importance(scores.importance)
translated = np.concatenate([[0], match + 1])[inferred]  # learned label → true label
accuracy = float(np.mean(translated == hidden["target"][test_idx]))
print(f"DCI disentanglement {scores.disentanglement:.3f}, completeness {scores.completeness:.3f}")
print(f"intervention accuracy (DCI matching) {accuracy:.3f}")
print("true variable of each learned one, in the footprint's causal order:", match[upstream_first])
names = ["sunlight [W/m²]", "air temperature [°C]", "vent opening [%]"]
fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
for j, ax in enumerate(axes):
    ax.scatter(z_true[:, match[j]], z_learned[:, j], s=2)
    ax.set_xlabel(f"true {names[match[j]]}")
    ax.set_ylabel(f"learned variable {j + 1}")
fig.tight_layout()
plt.show()

# %% [markdown]
# The label-free verdict was right: each learned variable is one of the greenhouse's causal
# variables, up to a monotone rescaling (here with a flipped sign for some: the direction
# is not identifiable), the inferred interventions are the grower's actions, and the chain
# read from the footprints named the variables correctly. On the full-size run the first fit
# scores DCI disentanglement 0.964 and an intervention accuracy of 0.971.

# %%
assert scores.disentanglement > (0.5 if smoke_test else 0.9)
assert accuracy > (0.6 if smoke_test else 0.9)
assert match[upstream_first].tolist() == [0, 1, 2]  # the chain was sunlight → temp. → vents

# %% [markdown]
# ## What to take away
#
# - `pairs_dataset(before, after)` is all pyrocrl needs; units, offsets and scales can stay
#   as the sensors give them, and names and units travel as coordinates.
# - Bad data is refused up front, with the reason.
# - On your own data, fit several seeds and read them against each other
#   (`pyrocrl.inference.trust_report`), then the intervention posterior, then what the
#   inferred interventions do to the sensors you understand. From the
#   command line, `pyrocrl fit --data pairs.nc --n 3 --seeds 3` does the first part
#   ([checks without labels](../checks)).
#
# ## References
#
# - J. Brehmer, P. de Haan, P. Lippe, T. Cohen (2022). *Weakly supervised causal
#   representation learning*. NeurIPS 2022. The ILCM and its identifiability from pairs.
# - C. Eastwood, C. K. I. Williams (2018). *A framework for the quantitative evaluation of
#   disentangled representations*. ICLR 2018. The DCI scores and importance matrix.
# - H. W. Kuhn (1955). *The Hungarian method for the assignment problem*. Naval Research
#   Logistics Quarterly 2. The matching of variables.
# - [xarray](https://docs.xarray.dev) and
#   [NetCDF-4](https://docs.unidata.ucar.edu/netcdf-c/current/) for the dataset format.
# - Pyro: [SVI and the ELBO](https://pyro.ai/examples/svi_part_i.html).
