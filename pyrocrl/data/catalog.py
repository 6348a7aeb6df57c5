"""Every simulator by name, the image simulator among them: one entry point to simulated
pairs (the ``pyrocrl simulate`` command calls :func:`simulate_dataset`)."""

__all__ = ["CIRCUIT", "CIRCUIT_VARIABLES", "MAX_RESOLUTION", "SIMULATOR_NAMES", "simulate_dataset"]

import xarray as xr

from pyrocrl.data.simulators import SIMULATORS, simulate_pairs

CIRCUIT = "causalcircuit"
"""The image simulator (:mod:`pyrocrl.data.causalcircuit`), which renders with MuJoCo."""
CIRCUIT_VARIABLES = 4
"""CausalCircuit's causal variables: the arm and three lights."""
MAX_RESOLUTION = 512
"""The largest CausalCircuit images, in pixels a side."""
SIMULATOR_NAMES = tuple(sorted([*SIMULATORS, CIRCUIT]))
"""The names :func:`simulate_dataset` knows."""
DEFAULT_N = {"scaling": 4}
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
    progress: bool | None = None,
) -> xr.Dataset:
    """Simulate ``pairs`` weakly supervised pairs with ground truth from a simulator by
    name: a toy of :data:`~pyrocrl.data.SIMULATORS` (via
    :func:`~pyrocrl.data.simulate_pairs`) or :data:`CIRCUIT`, whose images MuJoCo renders.

    :param n: causal variables (default: 4 for ``"scaling"``; the others have their own).
    :param seed: sample seed; :param graph_seed: seed of the toys' graph, weights and
        mixing (default: ``seed``).
    :param resolution: CausalCircuit's image size in pixels, up to :data:`MAX_RESOLUTION`;
        :param workers: its rendering processes (default: the CPUs).
    :returns: a pyrocrl dataset: ``x (pair, world, feature)`` and the ground truth.
    :raises ValueError: on an unknown simulator, or CausalCircuit with ``n`` other than 4
        or too large a ``resolution``.
    """
    if simulator == CIRCUIT:
        return _simulate_circuit(pairs, seed, n, resolution, workers, progress)
    n = DEFAULT_N.get(simulator) if n is None else n
    return simulate_pairs(
        simulator, pairs, n=n, seed=seed, graph_seed=graph_seed, progress=progress
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
