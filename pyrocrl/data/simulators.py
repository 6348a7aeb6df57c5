"""Sampling weakly supervised pairs from ground-truth models into the dataset format."""

__all__ = ["SIMULATORS", "make_simulator", "simulate", "simulate_pairs", "simulate_splits"]

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

from pyrocrl import sites
from pyrocrl.data.dataset import pairs_dataset
from pyrocrl.models.truth import GroundTruthLCM, scaling_toy, toy2d

CHUNK_SIZE = 1 << 17
"""Pairs drawn per chunk; each chunk is seeded from ``(seed, chunk index)``, so data depend
on it."""


def _scaling(n: int | None, graph_seed: int) -> GroundTruthLCM:
    if n is None:
        raise ValueError("the scaling toy needs the number of causal variables n")
    if n < 2:
        raise ValueError(f"the scaling toy needs n ≥ 2 causal variables, got {n}")
    return scaling_toy(n, graph_seed)


SENSORS = 8
"""Sensors of the ``"scaling-sensors"`` simulator."""
SENSOR_NOISE = 0.01
"""Reading noise (sd) of the ``"scaling-sensors"`` simulator; the readings lie in ``(−1, 1)``."""


def _sensors(n: int | None, graph_seed: int) -> GroundTruthLCM:
    if n is None or not 2 <= n <= SENSORS:
        raise ValueError(f"scaling-sensors needs 2 … {SENSORS} causal variables n, got {n}")
    return scaling_toy(n, graph_seed, sensors=SENSORS, sensor_noise=SENSOR_NOISE)


def _shift(n: int | None, graph_seed: int) -> GroundTruthLCM:
    if n is None or n < 2:
        raise ValueError(f"scaling-shift needs n ≥ 2 causal variables, got {n}")
    return scaling_toy(n, graph_seed, intervention="shift")


def _toy2d(n: int | None, graph_seed: int) -> GroundTruthLCM:
    if n not in (None, 2):
        raise ValueError(f"the 2D toy has exactly 2 causal variables, got n={n}")
    return toy2d()


def _chamber(n: int | None, graph_seed: int) -> GroundTruthLCM:
    if n not in (None, 5):
        raise ValueError(f"the light tunnel's sensors see exactly 5 causal variables, got n={n}")
    from pyrocrl.models.light_tunnel import chamber  # causalchamber: only when used

    return chamber(graph_seed)


SIMULATORS: dict[str, Callable[[int | None, int], GroundTruthLCM]] = {
    "scaling": _scaling,
    "scaling-sensors": _sensors,
    "scaling-shift": _shift,
    "toy2d": _toy2d,
    "chamber": _chamber,
}
"""Built-in simulators by name: ``(n, graph_seed) → GroundTruthLCM``. ``"scaling-sensors"`` is the
scaling toy watched by :data:`SENSORS` saturating sensors with noise :data:`SENSOR_NOISE`
(:func:`~pyrocrl.models.truth.scaling_toy` with ``sensors``); ``"scaling-shift"`` is the
scaling toy with soft interventions that shift the intervened mechanism. ``"chamber"`` is the
light tunnel's sensor model, noise-free (:func:`pyrocrl.models.light_tunnel.chamber`; it needs the
optional package ``causalchamber``)."""


def make_simulator(name: str, n: int | None = None, graph_seed: int = 0) -> GroundTruthLCM:
    """A built-in ground-truth model by name (see :data:`SIMULATORS`)."""
    if name not in SIMULATORS:
        raise ValueError(f"unknown simulator {name!r}; choose from {sorted(SIMULATORS)}")
    return SIMULATORS[name](n, graph_seed)


def _chunk_seed(seed: int, chunk: int) -> int:
    """A seed in ``[0, 2⁶³)`` derived from ``(seed, chunk)`` by NumPy's ``SeedSequence``
    (63 bits, so that it fits a signed attribute)."""
    return int(np.random.SeedSequence([seed, chunk]).generate_state(1, dtype=np.uint64)[0] >> 1)


def simulate(
    lcm: GroundTruthLCM,
    pairs: int,
    seed: int,
    *,
    progress: bool | None = None,
) -> xr.Dataset:
    """Draw ``pairs`` weakly supervised pairs from ``lcm.model`` as a pyrocrl dataset.

    Pairs are drawn in chunks of :data:`CHUNK_SIZE`, chunk ``i`` with torch seeded from
    ``(seed, i)`` on a private copy of torch's random state (``torch.random.fork_rng``), so
    the global random state is left exactly as it was, and the same ``(lcm, pairs, seed)``
    always gives the same data.

    :param int pairs: number of pairs, ``≥ 1``.
    :param int seed: sample seed (the graph seed is part of ``lcm``).
    :param progress: show a progress bar; ``None`` shows one for large requests on a terminal.

    >>> lcm = scaling_toy(n=3, graph_seed=0)
    >>> ds = simulate(lcm, 200, seed=1)
    >>> dict(ds["x"].sizes)
    {'pair': 200, 'world': 2, 'feature': 3}
    >>> bool((simulate(lcm, 200, seed=1)["x"] == ds["x"]).all())  # the same seed, the same data
    True

    A pair without intervention (``target`` 0) shows the same observation twice:

    >>> calm = ds["target"] == 0
    >>> bool(np.allclose(ds["x"][calm, 0], ds["x"][calm, 1]))
    True
    """
    if pairs < 1:
        raise ValueError(f"pairs must be at least 1, got {pairs}")
    chunks = [min(CHUNK_SIZE, pairs - start) for start in range(0, pairs, CHUNK_SIZE)]
    keys = (sites.NOISE, sites.NOISE_TILDE, sites.Z, sites.Z_TILDE, sites.X, sites.X_TILDE)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in (*keys, sites.TARGET)}
    show = len(chunks) > 1 if progress is None else progress
    bar = tqdm(total=pairs, unit="pair", desc="simulate", disable=None if show else True)
    with bar, torch.random.fork_rng(devices=[]), torch.no_grad():
        for i, size in enumerate(chunks):
            torch.manual_seed(_chunk_seed(seed, i))
            out = lcm.model(size=size)
            for k in parts:
                parts[k].append(out[k].numpy())
            bar.update(size)
    data = {k: np.concatenate(v) for k, v in parts.items()}
    attrs: dict[str, Any] = {**lcm.settings, "sample_seed": seed}
    attrs["intervention_probs"] = lcm.intervention_probs
    attrs["observation_scale"] = lcm.observation_scale
    return pairs_dataset(**data, **lcm.ground_truth(), attrs=attrs)


def simulate_pairs(
    name: str,
    pairs: int,
    *,
    n: int | None = None,
    seed: int = 0,
    graph_seed: int | None = None,
    max_targets: int = 1,
    progress: bool | None = None,
) -> xr.Dataset:
    """Simulate a built-in toy by name: ``simulate(make_simulator(name, n, graph_seed), …)``.

    ``graph_seed`` defaults to ``seed``; the two seeds feed independent generators. With
    ``max_targets ≥ 2`` an intervention hits a set of up to that many variables, uniform
    over the sets (:meth:`~pyrocrl.models.truth.GroundTruthLCM.with_max_targets`).

    >>> ds = simulate_pairs("toy2d", 100, seed=0)
    >>> ds.attrs["simulator"], dict(ds["z"].sizes)
    ('toy2d', {'pair': 100, 'world': 2, 'latent': 2})
    """
    lcm = make_simulator(name, n, seed if graph_seed is None else graph_seed)
    if max_targets != 1:
        lcm = lcm.with_max_targets(max_targets)
    return simulate(lcm, pairs, seed, progress=progress)


DEFAULT_SPLITS = {"train": 100_000, "test": 10_000, "dci": 10_000}
"""Split sizes of :func:`simulate_splits`: training pairs, held-out test pairs, and pairs
on which DCI regressors are fitted."""


def simulate_splits(
    lcm: GroundTruthLCM,
    seed: int,
    sizes: dict[str, int] | None = None,
    *,
    progress: bool | None = None,
) -> dict[str, xr.Dataset]:
    """Independent datasets from one ground-truth model, one per named split.

    Split ``i`` (in the order of ``sizes``) is ``simulate(lcm, size, seed_i)`` with its own
    sample seed ``seed_i`` derived from ``(seed, 1_000_000 + i)`` (NumPy's ``SeedSequence``,
    shortened to 63 bits; recorded in the split's ``sample_seed`` attribute, ``seed`` in
    ``split_seed``). So a split depends only on ``seed``, its position ``i`` and its own
    size, not on the other splits, and the splits draw from unrelated random streams.

    >>> splits = simulate_splits(scaling_toy(n=3, graph_seed=0), 0, {"train": 200, "test": 50})
    >>> {name: ds.sizes["pair"] for name, ds in splits.items()}
    {'train': 200, 'test': 50}
    """
    sizes = dict(DEFAULT_SPLITS if sizes is None else sizes)
    splits = {}
    for i, (name, size) in enumerate(sizes.items()):
        splits[name] = simulate(lcm, size, _chunk_seed(seed, 1_000_000 + i), progress=progress)
        splits[name].attrs.update(split=name, split_seed=seed)
    return splits
