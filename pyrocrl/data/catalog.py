"""Every simulator by name, the image simulators among them: one entry point to simulated
pairs in memory (:func:`simulate_dataset`) and one to pairs on disk (:func:`write_dataset`,
which the ``pyrocrl simulate`` command calls), where the image simulators write their
images block by block as they render them."""

__all__ = [
    "CHAMBER",
    "CHAMBER_MODES",
    "CIRCUIT",
    "CIRCUIT_VARIABLES",
    "MAX_RESOLUTION",
    "SCENES",
    "SIMULATOR_NAMES",
    "simulate_dataset",
    "write_dataset",
]

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from pyrocrl.data.dataset import rendered_pairs, save
from pyrocrl.data.simulators import SIMULATORS, simulate, simulate_pairs

CIRCUIT = "causalcircuit"
"""The image simulator (:mod:`pyrocrl.data.causalcircuit`), which renders with MuJoCo."""
CIRCUIT_VARIABLES = 4
"""CausalCircuit's causal variables: the arm and three lights."""
MAX_RESOLUTION = 512
"""The largest CausalCircuit images, in pixels a side."""
SCENES = "causal3dident"
"""The 3-D scenes of an object under a spotlight (:mod:`pyrocrl.data.causal3dident`),
rendered with MuJoCo."""
IMAGE_SIMULATORS = (CIRCUIT, SCENES)
"""The simulators that only render images (the chamber renders them in one of its modes)."""
CHAMBER = "chamber"
"""The light tunnel of the causal chambers (:mod:`pyrocrl.models.light_tunnel`)."""
CHAMBER_MODES = {"sensors": 5, "images": 3}
"""What the light tunnel is observed through, and the causal variables each mode has."""
SIMULATOR_NAMES = tuple(sorted([*SIMULATORS, *IMAGE_SIMULATORS]))
"""The names :func:`simulate_dataset` knows."""
DEFAULT_N = {"scaling": 4, "scaling-sensors": 4, "scaling-shift": 4}
"""Causal variables of a simulator when not given (the others have a fixed number)."""
BLOCK = 4096
"""Pairs of images :func:`write_dataset` renders and writes at a time."""


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
    shape: str | None = None,
    variables: Sequence[str] | None = None,
    progress: bool | None = None,
) -> xr.Dataset:
    """Simulate ``pairs`` weakly supervised pairs with ground truth from a simulator by
    name: a toy of :data:`~pyrocrl.data.SIMULATORS` (via
    :func:`~pyrocrl.data.simulate_pairs`), :data:`CIRCUIT` or :data:`SCENES`, whose images
    MuJoCo renders, or :data:`CHAMBER` in either of its :data:`CHAMBER_MODES`.

    :param n: causal variables (default: 4 for ``"scaling"``; the others have their own).
    :param seed: sample seed; :param graph_seed: seed of the toys' graph, weights and
        mixing (default: ``seed``).
    :param resolution: image size in pixels (the MuJoCo scenes, up to
        :data:`MAX_RESOLUTION`, and the chamber's images); :param workers: the MuJoCo
        scenes' rendering processes (default: the CPUs).
    :param mode: the chamber's observations, ``"sensors"`` (default) or ``"images"``;
        :param noise: its relative sensor noise (default 0).
    :param max_targets: the most variables one intervention hits (the toys; default 1).
    :param shape: the object of :data:`SCENES` (default ``"teapot"``); :param variables: the
        causal variables of :data:`SCENES` that vary (default: all nine).
    :returns: a pyrocrl dataset: ``x (pair, world, feature)`` and the ground truth.
    :raises ValueError: on an unknown simulator, ``n`` other than the simulator's, too large
        a ``resolution``, or ``mode``/``noise`` for a simulator other than the chamber.
    :raises ImportError: for the chamber without the package ``causalchamber``.
    """
    options = dict(n=n, seed=seed, graph_seed=graph_seed, resolution=resolution)
    options.update(workers=workers, mode=mode, noise=noise, max_targets=max_targets)
    options.update(shape=shape, variables=variables)
    return _simulate(simulator, pairs, progress=progress, **options)


def write_dataset(
    path: str | os.PathLike,
    simulator: str = "scaling",
    pairs: int = 100_000,
    *,
    block: int = BLOCK,
    compress: bool = True,
    **options: Any,
) -> Path:
    """:func:`simulate_dataset` written to ``path`` (a NetCDF file, or a Zarr store for a name
    ending in ``.zarr``; :func:`~pyrocrl.data.save`).

    The image simulators (:data:`CIRCUIT`, :data:`SCENES`, :data:`CHAMBER` in mode
    ``"images"``) write
    their images ``block`` pairs at a time as they render them
    (:func:`~pyrocrl.data.writer.write_pairs`), so that memory holds the truth and one block
    of images, never all images; ``compress=False`` stores those raw. The others are
    simulated in memory and saved.

    :param options: the keyword arguments of :func:`simulate_dataset`.
    :returns: ``path``; an interrupted simulation leaves nothing there.
    """
    if block < 1:
        raise ValueError(f"block must be at least 1 pair, got {block}")
    out = _simulate(simulator, pairs, output=(Path(path), block, compress), **options)
    return out if isinstance(out, Path) else save(out, path)


Output = tuple[Path, int, bool]
"""Where image simulators write, pairs per block, whether compressed."""


def _simulate(
    simulator: str,
    pairs: int,
    *,
    n: int | None = None,
    seed: int = 302,
    graph_seed: int | None = None,
    resolution: int = 64,
    workers: int | None = None,
    mode: str | None = None,
    noise: float | None = None,
    max_targets: int = 1,
    shape: str | None = None,
    variables: Sequence[str] | None = None,
    progress: bool | None = None,
    output: Output | None = None,
) -> xr.Dataset | Path:
    """:func:`simulate_dataset`; with ``output``, the image simulators write there instead
    and return its path."""
    if (shape is not None or variables is not None) and simulator != SCENES:
        raise ValueError(f"shape and variables are options of {SCENES}, not {simulator}")
    if max_targets != 1 and simulator in (CHAMBER, *IMAGE_SIMULATORS):
        raise ValueError(f"{simulator} intervenes on one variable at a time: max_targets 1")
    if simulator == CHAMBER:
        return _simulate_chamber(
            pairs, seed, n, graph_seed, mode, noise, resolution, progress, output
        )
    if mode is not None or noise is not None:
        raise ValueError(f"mode and noise are options of the {CHAMBER} simulator, not {simulator}")
    if simulator == CIRCUIT:
        return _simulate_circuit(pairs, seed, n, resolution, workers, progress, output)
    if simulator == SCENES:
        options = dict(shape=shape, variables=variables, workers=workers, progress=progress)
        return _simulate_scenes(pairs, seed, n, resolution, output, **options)
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
    output: Output | None = None,
) -> xr.Dataset | Path:
    if n not in (None, CIRCUIT_VARIABLES):
        raise ValueError(f"CausalCircuit has exactly 4 causal variables, got n={n}")
    if resolution > MAX_RESOLUTION:
        raise ValueError(f"resolution must be at most {MAX_RESOLUTION}, got {resolution}")
    # MuJoCo: only when used
    from pyrocrl.data.causalcircuit import simulate_causalcircuit, write_causalcircuit

    options = {"resolution": resolution, "workers": workers, "progress": progress}
    if output is None:
        return simulate_causalcircuit(pairs, seed, **options)
    path, block, compress = output
    return write_causalcircuit(path, pairs, seed, block=block, compress=compress, **options)


def _simulate_scenes(
    pairs: int,
    seed: int,
    n: int | None,
    resolution: int,
    output: Output | None,
    *,
    shape: str | None,
    variables: Sequence[str] | None,
    workers: int | None,
    progress: bool | None,
) -> xr.Dataset | Path:
    from pyrocrl.data.causal3dident import VARIABLES  # no MuJoCo yet

    kept = len(VARIABLES) if variables is None else len(variables)
    if n not in (None, kept):
        raise ValueError(f"{SCENES} has {kept} causal variables here, got n={n}")
    if resolution > MAX_RESOLUTION:
        raise ValueError(f"resolution must be at most {MAX_RESOLUTION}, got {resolution}")
    from pyrocrl.data.causal3dident import simulate_causal3dident, write_causal3dident

    options = dict(resolution=resolution, shape=shape or "teapot", variables=variables)
    options.update(workers=workers, progress=progress)
    if output is None:
        return simulate_causal3dident(pairs, seed, **options)
    path, block, compress = output
    return write_causal3dident(path, pairs, seed, block=block, compress=compress, **options)


def _simulate_chamber(
    pairs: int,
    seed: int,
    n: int | None,
    graph_seed: int | None,
    mode: str | None,
    noise: float | None,
    resolution: int,
    progress: bool | None,
    output: Output | None = None,
) -> xr.Dataset | Path:
    """The light tunnel's pairs, with ``state`` (the actuator settings) beside ``z``.

    Sensor readings are named in the ``feature`` coordinate. Images are rendered from the
    sampled settings in batches and stored as ``uint8`` with ``attrs["image_shape"]``; with
    ``output``, written there block by block.
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
    if output is None:
        pictures = lcm.mixing.render(state.reshape(-1, lcm.n)).reshape(pairs, 2, -1)
        return _chamber_images(truth, pictures, lcm.mixing.image_shape)
    from pyrocrl.data.writer import placeholder, write_pairs

    path, block, compress = output
    features = int(np.prod(lcm.mixing.image_shape))
    template = _chamber_images(truth, placeholder(pairs, features), lcm.mixing.image_shape)
    blocks = _chamber_blocks(lcm.mixing, state, block)
    return write_pairs(path, template, blocks, compress=compress)


def _chamber_blocks(mixing: Any, state: np.ndarray, block: int) -> Iterator[np.ndarray]:
    """The chamber's images of the settings ``(N, 2, 3)``, ``block`` pairs at a time."""
    for a in range(0, len(state), block):
        part = state[a : a + block]
        yield mixing.render(part.reshape(-1, part.shape[-1])).reshape(len(part), 2, -1)


def _chamber_images(truth: xr.Dataset, pictures: np.ndarray, image_shape: Any) -> xr.Dataset:
    """The chamber's dataset of pairs whose images (both worlds, flattened) are
    ``pictures``, with the truth of the settings ``truth``."""
    return rendered_pairs(truth, pictures, image_shape, truth["x"].values)
