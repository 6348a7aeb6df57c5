"""Every simulator by name, the image simulators among them: one entry point to simulated
pairs (the ``pyrocrl simulate`` command calls :func:`simulate_dataset`)."""

__all__ = [
    "CHAMBER",
    "CHAMBER_MODES",
    "CIRCUIT",
    "CIRCUIT_VARIABLES",
    "MAX_RESOLUTION",
    "SIMULATOR_NAMES",
    "simulate_dataset",
]

import numpy as np
import torch
import xarray as xr

from pyrocrl.data.dataset import pairs_dataset
from pyrocrl.data.simulators import SIMULATORS, simulate, simulate_pairs

CIRCUIT = "causalcircuit"
"""The image simulator (:mod:`pyrocrl.data.causalcircuit`), which renders with MuJoCo."""
CIRCUIT_VARIABLES = 4
"""CausalCircuit's causal variables: the arm and three lights."""
MAX_RESOLUTION = 512
"""The largest CausalCircuit images, in pixels a side."""
CHAMBER = "chamber"
"""The light tunnel of the causal chambers (:mod:`pyrocrl.models.light_tunnel`)."""
CHAMBER_MODES = {"sensors": 5, "images": 3}
"""What the light tunnel is observed through, and the causal variables each mode has."""
SIMULATOR_NAMES = tuple(sorted([*SIMULATORS, CIRCUIT]))
"""The names :func:`simulate_dataset` knows."""
DEFAULT_N = {"scaling": 4, "scaling-sensors": 4, "scaling-shift": 4}
"""Causal variables of a simulator when not given (the others have a fixed number)."""


def simulate_dataset(
    simulator: str = "scaling",
    pairs: int = 100_000,
    *,
    n: int | None = None,
    seed: int = 302,
    graph_seed: int | None = None,
    resolution: int = 64,
    workers: int | None = None,
    mode: str | None = None,
    noise: float | None = None,
    max_targets: int = 1,
    progress: bool | None = None,
) -> xr.Dataset:
    """Simulate ``pairs`` weakly supervised pairs with ground truth from a simulator by
    name: a toy of :data:`~pyrocrl.data.SIMULATORS` (via
    :func:`~pyrocrl.data.simulate_pairs`), :data:`CIRCUIT`, whose images MuJoCo renders,
    or :data:`CHAMBER` in either of its :data:`CHAMBER_MODES`.

    :param n: causal variables (default: 4 for ``"scaling"``; the others have their own).
    :param seed: sample seed; :param graph_seed: seed of the toys' graph, weights and
        mixing (default: ``seed``).
    :param resolution: image size in pixels (CausalCircuit, up to :data:`MAX_RESOLUTION`,
        and the chamber's images); :param workers: CausalCircuit's rendering processes
        (default: the CPUs).
    :param mode: the chamber's observations, ``"sensors"`` (default) or ``"images"``;
        :param noise: its relative sensor noise (default 0).
    :param max_targets: the most variables one intervention hits (the toys; default 1).
    :returns: a pyrocrl dataset: ``x (pair, world, feature)`` and the ground truth.
    :raises ValueError: on an unknown simulator, ``n`` other than the simulator's, too large
        a ``resolution``, or ``mode``/``noise`` for a simulator other than the chamber.
    :raises ImportError: for the chamber without the package ``causalchamber``.
    """
    if max_targets != 1 and simulator in (CHAMBER, CIRCUIT):
        raise ValueError(f"{simulator} intervenes on one variable at a time: max_targets 1")
    if simulator == CHAMBER:
        return _simulate_chamber(pairs, seed, n, graph_seed, mode, noise, resolution, progress)
    if mode is not None or noise is not None:
        raise ValueError(f"mode and noise are options of the {CHAMBER} simulator, not {simulator}")
    if simulator == CIRCUIT:
        return _simulate_circuit(pairs, seed, n, resolution, workers, progress)
    n = DEFAULT_N.get(simulator) if n is None else n
    return simulate_pairs(
        simulator,
        pairs,
        n=n,
        seed=seed,
        graph_seed=graph_seed,
        max_targets=max_targets,
        progress=progress,
    )


def _simulate_circuit(
    pairs: int,
    seed: int,
    n: int | None,
    resolution: int,
    workers: int | None,
    progress: bool | None,
) -> xr.Dataset:
    if n not in (None, CIRCUIT_VARIABLES):
        raise ValueError(f"CausalCircuit has exactly 4 causal variables, got n={n}")
    if resolution > MAX_RESOLUTION:
        raise ValueError(f"resolution must be at most {MAX_RESOLUTION}, got {resolution}")
    from pyrocrl.data.causalcircuit import simulate_causalcircuit  # MuJoCo: only when used

    return simulate_causalcircuit(
        pairs, seed, resolution=resolution, workers=workers, progress=progress
    )


def _simulate_chamber(
    pairs: int,
    seed: int,
    n: int | None,
    graph_seed: int | None,
    mode: str | None,
    noise: float | None,
    resolution: int,
    progress: bool | None,
) -> xr.Dataset:
    """The light tunnel's pairs, with ``state`` (the actuator settings) beside ``z``.

    Sensor readings are named in the ``feature`` coordinate. Images are rendered from the
    sampled settings in batches and stored as ``uint8`` with ``attrs["image_shape"]``.
    """
    mode = "sensors" if mode is None else mode
    if mode not in CHAMBER_MODES:
        raise ValueError(f"mode must be one of {sorted(CHAMBER_MODES)}, got {mode!r}")
    if n not in (None, CHAMBER_MODES[mode]):
        raise ValueError(
            f"the light tunnel's {mode} see exactly {CHAMBER_MODES[mode]} causal variables, "
            f"got n={n}"
        )
    if mode == "images" and resolution > MAX_RESOLUTION:
        raise ValueError(f"resolution must be at most {MAX_RESOLUTION}, got {resolution}")
    from pyrocrl.models.light_tunnel import chamber  # causalchamber: only when used

    lcm = chamber(
        seed if graph_seed is None else graph_seed,
        noise=noise or 0.0,
        mode=mode,
        image_size=resolution,
    )
    if mode == "sensors":
        ds = simulate(lcm, pairs, seed, progress=progress)
        ds = ds.assign_coords(feature=list(lcm.mixing.feature_names))
        state = lcm.actuators(torch.from_numpy(ds["z"].values)).numpy()
        return ds.assign(state=(("pair", "world", "latent"), state))
    truth = simulate(lcm.actuator_lcm(), pairs, seed, progress=progress)
    state = truth["x"].values  # (pair, world, 3)
    pictures = lcm.mixing.render(state.reshape(-1, lcm.n)).reshape(pairs, 2, -1)
    attrs = {**truth.attrs, "image_shape": list(lcm.mixing.image_shape)}
    ds = pairs_dataset(
        pictures[:, 0],
        pictures[:, 1],
        z=truth["z"].values[:, 0],
        z_tilde=truth["z"].values[:, 1],
        noise=truth["noise"].values[:, 0],
        noise_tilde=truth["noise"].values[:, 1],
        target=truth["target"].values,
        adjacency=truth["adjacency"].values,
        weights=truth["weights"].values,
        attrs=attrs,
    )
    return ds.assign(state=(("pair", "world", "latent"), np.asarray(state)))
