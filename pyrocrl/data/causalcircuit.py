"""CausalCircuit: a robot finger and three touch-sensitive lights wired as a circuit.

Four causal variables, in this order: the position of a robotic finger along a 1-D arc
over a board and the intensities of a red, a green and a blue light. Each light has a
touch-sensitive button on the arc; the green light is also wired into the red one::

    arm ──► red ◄── green ◄── arm
    arm ──► blue

The SCM lives in unconstrained coordinates (the ``z`` of the dataset, an
:class:`~pyrocrl.scm.AdditiveNoiseSCM` with unit noise), and the physical state it renders
is ``(Φ(z_arm), σ(z_red), σ(z_green), σ(z_blue))``: the arm's place on its arc in ``(0, 1)``
and each light's intensity in ``(0, 1)``. With ``t_c(a) = exp(−½((a − p_c)/w)²)`` how firmly
the finger at ``a`` presses button ``c`` (at ``p_c`` on the arc),

.. math::

    z_\\mathrm{arm} = e_1, \\quad
    z_c = −κ + 2κ\\,t_c(a) + e_c \\;(c = \\mathrm{green, blue}), \\quad
    z_\\mathrm{red} = −κ + 2κ\\,[1 − (1 − t_\\mathrm{red}(a))(1 − σ(z_\\mathrm{green}))] + e_2,

so a pressed button lights its light, and a lit green light lights the red one too.
Perfect interventions set one variable (or none, uniformly over the five choices) to
``N(0, 1)`` and recompute its descendants with the same noise.

Pixels come from a MuJoCo scene: the TriFinger "pro" finger (meshes from the PyPI package
``robot-properties-fingers``) is driven along the arc by inverse kinematics, over three
buttons, with three lamps in front whose colours follow the intensities. Rendering is
offscreen (EGL by default; OSMesa with ``MUJOCO_GL=osmesa``), without shadows or
multisampling, from one fixed camera. Images are a pure function of the state, so data are
deterministic given the seed.

MuJoCo draws the arm and the board once per pair, and again only when the arm moved; the
lamps — which nothing ever passes in front of — are painted from a per-pixel calibration of
MuJoCo's own response to a lamp's colour (:meth:`CircuitScene.paint`), which equals a full
render within one intensity level and makes an intervention on a light cost no render.

:func:`simulate_causalcircuit` returns the images in memory; :func:`write_causalcircuit`
renders them block by block straight into a NetCDF file or Zarr store, for datasets larger
than memory (the same images: each is a pure function of its state).
"""

__all__ = [
    "BUTTONS",
    "VARIABLES",
    "CircuitScene",
    "CircuitState",
    "causal_circuit",
    "render_states",
    "simulate_causalcircuit",
    "simulate_causalcircuit_splits",
    "write_causalcircuit",
]

import importlib.util
import os
import pathlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from pyrocrl.data.dataset import rendered_pairs
from pyrocrl.data.offscreen import (
    OffscreenScene,
    check_states,
    import_mujoco,
    look_at,
    render_rows,
    serve,
)
from pyrocrl.errors import RenderingError
from pyrocrl.models.truth import GroundTruthLCM
from pyrocrl.scm import AdditiveNoiseSCM

VARIABLES = ("arm", "red", "green", "blue")
"""The causal variables, in the order of the dataset's ``latent`` dim (``z1 … z4``)."""

BUTTONS = {"red": 0.15, "green": 0.5, "blue": 0.85}
"""Where each light's button lies on the arm's arc (arc position in ``(0, 1)``)."""

PRESS_WIDTH = 0.06
"""``w``: how far along the arc (in arc units) a press reaches."""

KAPPA = 2.0
"""``κ``: a light's logit is ``−κ`` when nothing lights it and ``+κ`` when pressed."""

ADJACENCY = np.array(
    [
        [0, 1, 1, 1],  # arm → red, green, blue
        [0, 0, 0, 0],
        [0, 1, 0, 0],  # green → red
        [0, 0, 0, 0],
    ],
    dtype=np.int8,
)

INSTALL_HINT = (
    "the CausalCircuit renderer needs the packages 'mujoco' and 'robot-properties-fingers' "
    "(pip install 'pyrocrl[circuit]')"
)


# -- the latent SCM --------------------------------------------------------------------------
def _press(a: torch.Tensor, light: str) -> torch.Tensor:
    """``t_c(a)``: how firmly the finger at arc position ``a`` presses button ``c``."""
    return torch.exp(-0.5 * ((a - BUTTONS[light]) / PRESS_WIDTH) ** 2)


def _arm(z_arm: torch.Tensor) -> torch.Tensor:
    return torch.special.ndtr(z_arm)


def _lit(pressed: torch.Tensor) -> torch.Tensor:
    return KAPPA * (2.0 * pressed - 1.0)


def _green_or_blue(light: str):
    def loc(z_pa: torch.Tensor) -> torch.Tensor:  # parents: (arm,)
        return _lit(_press(_arm(z_pa[..., 0]), light))

    return loc


def _red(z_pa: torch.Tensor) -> torch.Tensor:  # parents: (arm, green)
    pressed = _press(_arm(z_pa[..., 0]), "red")
    green = torch.sigmoid(z_pa[..., 1])
    return _lit(1.0 - (1.0 - pressed) * (1.0 - green))


class CircuitState:
    """The map from causal variables to the rendered physical state, as a "mixing".

    ``(*, 4) → (*, 4)``: ``s = (Φ(z_arm), σ(z_red), σ(z_green), σ(z_blue))``, with its inverse.
    """

    n = 4
    dim_x = 4

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        return torch.cat([_arm(z[..., :1]), torch.sigmoid(z[..., 1:])], dim=-1)

    def inverse(self, state: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.special.ndtri(state[..., :1]), torch.logit(state[..., 1:])], -1)


def causal_circuit() -> GroundTruthLCM:
    """The CausalCircuit latent causal model; its observations are the physical state.

    :func:`simulate_causalcircuit` samples pairs from it and renders the states to images.
    """
    locs = [None, _red, _green_or_blue("green"), _green_or_blue("blue")]
    scm = AdditiveNoiseSCM(ADJACENCY, locs)
    settings = {
        "simulator": "causalcircuit",
        "n": 4,
        "variables": ",".join(VARIABLES),
        "buttons": [BUTTONS[c] for c in VARIABLES[1:]],
        "press_width": PRESS_WIDTH,
        "kappa": KAPPA,
    }
    return GroundTruthLCM(scm, CircuitState(), settings=settings)


# -- the MuJoCo scene ------------------------------------------------------------------------
def _import_mujoco() -> Any:
    return import_mujoco(INSTALL_HINT)


def _finger_urdf() -> str:
    """The TriFinger "pro" finger's URDF with its mesh paths made absolute.

    Found without importing ``robot_properties_fingers`` (which would import pinocchio).
    """
    spec = importlib.util.find_spec("robot_properties_fingers")
    if spec is None or not spec.submodule_search_locations:
        raise RenderingError(INSTALL_HINT)
    root = pathlib.Path(next(iter(spec.submodule_search_locations)))
    urdf = root / "urdf" / "pro" / "fingerpro.urdf"
    if not urdf.is_file():
        raise RenderingError(f"{INSTALL_HINT}; {urdf} is missing")
    return urdf.read_text().replace("package://robot_properties_fingers/", f"{root}/")


TABLE_Z = -0.02
ARC_CENTRE = (0.0, -0.06)
ARC_RADIUS = 0.18
ARC_DEGREES = (150.0, 30.0)
TIP_OFFSET = (0.019, 0.0, -0.176)  # the fingertip in the frame of the lower link
LIGHT_RGB = {"red": (1.0, 0.05, 0.05), "green": (0.05, 1.0, 0.05), "blue": (0.1, 0.3, 1.0)}
IK_GRID = 1025
LAMP_FLOOR = 0.08  # a lamp at intensity 0 is dark, not black
LAMP_EMISSION = 0.5  # with the scene's light, a lamp's pixels stay below saturation
# grey levels at which each lamp pixel's response is sampled; not 0.5, because MuJoCo reads a
# geom colour of exactly (0.5, 0.5, 0.5, 1) as "use the material's colour"
CALIBRATION_LEVELS = np.linspace(0.0, 1.0, 101)
CALIBRATION_LEVELS[50] = 0.499
CAMERA_POS = (0.0, -0.3, 0.45)
CAMERA_AIM = (0.0, 0.05, 0.0)


def _arc_point(a: np.ndarray) -> np.ndarray:
    """Fingertip target on the board for arc position ``a``: ``(*,) → (*, 3)``."""
    theta = np.deg2rad(ARC_DEGREES[0] + (ARC_DEGREES[1] - ARC_DEGREES[0]) * np.asarray(a))
    x = ARC_CENTRE[0] + ARC_RADIUS * np.cos(theta)
    y = ARC_CENTRE[1] + ARC_RADIUS * np.sin(theta)
    return np.stack([x, y, np.full_like(x, TABLE_Z + 0.012)], axis=-1)


class CircuitScene(OffscreenScene):
    """The MuJoCo scene and an offscreen renderer of it.

    :param int resolution: image height and width in pixels (8 to 512).

    :meth:`render` maps states ``(N, 4)`` to images ``(N, H, W, 3)`` of ``uint8``. Use it as a
    context manager (or call :meth:`close`) to free the OpenGL context.
    """

    def __init__(self, resolution: int = 64) -> None:
        if not 8 <= resolution <= 512:
            raise ValueError(f"resolution must lie in 8..512 pixels, got {resolution}")
        mujoco = _import_mujoco()
        self._mujoco = mujoco
        self.resolution = int(resolution)
        self.model = self._build(mujoco)
        self.data = mujoco.MjData(self.model)
        self._lamps = [self.model.geom(f"lamp_{c}").id for c in VARIABLES[1:]]
        self._joint_path = self._solve_arc()
        self._open_renderer(mujoco)
        self._calibrate_lamps()

    def _build(self, mujoco: Any) -> Any:
        spec = mujoco.MjSpec.from_string(_finger_urdf())
        spec.body("finger_lower_link").add_site(name="tip", pos=list(TIP_OFFSET))
        world = spec.worldbody
        world.add_geom(
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[0.3, 0.3, 0.01],
            pos=[0.0, 0.08, TABLE_Z - 0.01],
            rgba=[0.22, 0.22, 0.25, 1.0],
        )
        lamp = spec.add_material()
        lamp.name, lamp.emission, lamp.specular = "lamp", LAMP_EMISSION, 0.0
        for i, light in enumerate(VARIABLES[1:]):
            x, y, _ = _arc_point(BUTTONS[light])
            world.add_geom(
                name=f"button_{light}",
                type=mujoco.mjtGeom.mjGEOM_CYLINDER,
                size=[0.022, 0.004, 0.0],
                pos=[x, y, TABLE_Z + 0.004],
                rgba=[0.75, 0.75, 0.75, 1.0],
            )
            world.add_geom(
                name=f"lamp_{light}",
                type=mujoco.mjtGeom.mjGEOM_SPHERE,
                size=[0.035, 0.0, 0.0],
                pos=[-0.11 + 0.11 * i, -0.1, TABLE_Z + 0.035],
                material="lamp",
            )
        world.add_light(pos=[0.0, -0.2, 1.0], dir=[0.0, 0.2, -1.0], castshadow=False)
        world.add_camera(
            name="front", pos=list(CAMERA_POS), xyaxes=look_at(CAMERA_POS, CAMERA_AIM)
        )
        spec.compiler.discardvisual = False  # URDF import sets it, and it drops materials
        spec.visual.quality.offsamples = 0  # multisampling triples the software renderer's time
        spec.visual.global_.offwidth = spec.visual.global_.offheight = self.resolution
        return spec.compile()

    def _solve_arc(self) -> np.ndarray:
        """Joint angles along the arc by damped least squares, ``(IK_GRID, 3)``, each from the
        previous solution so the path is smooth."""
        mujoco, m, d = self._mujoco, self.model, self.data
        site = m.site("tip").id
        low, high = m.jnt_range[:, 0], m.jnt_range[:, 1]
        q = np.array([0.7, 0.2, -0.5])
        jac = np.zeros((3, m.nv))
        path = np.empty((IK_GRID, m.nq))
        for i, target in enumerate(_arc_point(np.linspace(0.0, 1.0, IK_GRID))):
            for _ in range(200):
                d.qpos[:] = q
                mujoco.mj_kinematics(m, d)
                mujoco.mj_comPos(m, d)
                error = target - d.site_xpos[site]
                if np.linalg.norm(error) < 1e-6:
                    break
                mujoco.mj_jacSite(m, d, jac, None, site)
                step = jac.T @ np.linalg.solve(jac @ jac.T + 1e-6 * np.eye(3), error)
                q = np.clip(q + step, low, high)
            else:
                raise RuntimeError(f"inverse kinematics did not reach arc point {i}")
            path[i] = q
        return path

    def joints(self, arm: np.ndarray) -> np.ndarray:
        """Joint angles for arc positions ``arm`` ``(N,)`` → ``(N, 3)`` (interpolated)."""
        grid = np.linspace(0.0, 1.0, IK_GRID)
        arm = np.clip(np.asarray(arm, dtype=np.float64), 0.0, 1.0)
        return np.stack([np.interp(arm, grid, self._joint_path[:, j]) for j in range(3)], -1)

    def _lamp_rgba(self, intensity: np.ndarray) -> np.ndarray:
        """Lamp colours ``(*, 3) → (*, 3, 3)``: a dark lamp at 0, its full colour at 1."""
        base = np.stack([LIGHT_RGB[c] for c in VARIABLES[1:]])  # (lamp, channel)
        return LAMP_FLOOR + (1.0 - LAMP_FLOOR) * intensity[..., :, None] * base

    def _draw(self, arm: float, lamp_rgba: np.ndarray, out: np.ndarray) -> None:
        """One MuJoCo render of the scene: arm at ``arm``, lamps in colours ``(3, 3)``."""
        mujoco, m, d = self._mujoco, self.model, self.data
        d.qpos[:] = self.joints(np.array([arm]))[0]
        mujoco.mj_kinematics(m, d)
        mujoco.mj_camlight(m, d)
        for lamp, rgb in zip(self._lamps, lamp_rgba, strict=True):
            m.geom_rgba[lamp] = (*rgb, 1.0)
        self._renderer.update_scene(d, camera="front")
        self._renderer.render(out=out)

    def _calibrate_lamps(self) -> None:
        """Where the lamps are in the image, and how each of their pixels responds to the
        lamp's colour.

        A lamp's pixel depends only on that lamp's colour, channel by channel, through a
        fixed curve (emission and light, then clipping). The curves are sampled by rendering
        all lamps at grey levels ``CALIBRATION_LEVELS``; the lamp pixels are those that change
        between the darkest and brightest level, with the arm across its arc — nothing in
        front of a lamp moves, which is checked here.
        """
        size = self.resolution
        frames = np.empty((len(CALIBRATION_LEVELS), size, size, 3), np.uint8)
        masks = []
        for arm in np.linspace(0.0, 1.0, 5):
            self._draw(arm, np.zeros((3, 3)), frames[0])
            self._draw(arm, np.ones((3, 3)), frames[-1])
            masks.append((frames[0] != frames[-1]).any(axis=-1))
        if not all(np.array_equal(masks[0], m) for m in masks[1:]):
            raise RuntimeError("the arm passes in front of a lamp")
        self._lamp_pixels = []
        self._lamp_curves = []  # per lamp: (pixels, channel, level)
        for k in range(3):
            lamp = np.zeros((3, 3))
            lamp[k] = 1.0
            self._draw(0.0, lamp, frames[0])
            self._draw(0.0, np.zeros((3, 3)), frames[1])
            pixels = np.nonzero(masks[0] & (frames[0] != frames[1]).any(axis=-1))
            self._lamp_pixels.append(pixels)
        for i, level in enumerate(CALIBRATION_LEVELS):
            self._draw(0.0, np.full((3, 3), level), frames[i])
        for pixels in self._lamp_pixels:
            self._lamp_curves.append(np.moveaxis(frames[(slice(None), *pixels)], 0, -1))

    def paint(self, images: np.ndarray, intensity: np.ndarray) -> np.ndarray:
        """Set the lamps of ``images`` ``(N, H, W, 3)`` to ``intensity`` ``(N, 3)``, in place.

        Each lamp pixel follows its calibrated curve (linear between calibration levels):
        equal to MuJoCo's own render with those lamp colours up to a level or two.
        """
        rgba = self._lamp_rgba(np.asarray(intensity, dtype=np.float64))  # (N, lamp, channel)
        levels = CALIBRATION_LEVELS
        for k, pixels in enumerate(self._lamp_pixels):
            curve, value = self._lamp_curves[k], rgba[:, k, :]  # (pixels, 3, level), (N, 3)
            upper = np.clip(np.searchsorted(levels, value), 1, len(levels) - 1)
            t = (value - levels[upper - 1]) / (levels[upper] - levels[upper - 1])
            where = (np.arange(len(curve))[None, :, None], np.arange(3)[None, None, :])
            lo = curve[(*where, upper[:, None, :] - 1)].astype(np.float64)  # (N, pixels, 3)
            hi = curve[(*where, upper[:, None, :])].astype(np.float64)
            images[(slice(None), *pixels)] = np.rint(lo + t[:, None, :] * (hi - lo))
        return images

    def render_board(self, arm: np.ndarray) -> np.ndarray:
        """MuJoCo renders of the arm at arc positions ``arm`` ``(N,)`` → ``(N, H, W, 3)``,
        lamps dark (:meth:`paint` lights them)."""
        arm = np.asarray(arm, dtype=np.float64)
        out = np.empty((len(arm), self.resolution, self.resolution, 3), dtype=np.uint8)
        dark = np.zeros((3, 3))
        for i, a in enumerate(arm):
            self._draw(float(a), dark, out[i])
        return out

    def render(self, state: np.ndarray, *, exact: bool = False) -> np.ndarray:
        """Images of the states ``(N, 4)`` (arc position, red, green, blue) → ``(N, H, W, 3)``.

        The arm and board are rendered by MuJoCo and the lamps painted in (:meth:`paint`);
        ``exact`` renders every image with MuJoCo alone (slower, the same up to rounding).
        """
        state = _check_states(state)
        if not exact:
            return self.paint(self.render_board(state[:, 0]), state[:, 1:])
        out = np.empty((len(state), self.resolution, self.resolution, 3), dtype=np.uint8)
        for i, s in enumerate(state):
            self._draw(float(s[0]), self._lamp_rgba(s[1:]), out[i])
        return out


# -- rendering many states in parallel -----------------------------------------------------
def _serve() -> None:
    """A rendering process: arm positions in, board images out
    (:func:`~pyrocrl.data.offscreen.serve`)."""
    resolution = int(sys.argv[2])
    serve(lambda: CircuitScene(resolution), lambda scene, rows: scene.render_board(rows[:, 0]))


def _check_states(state: Any) -> np.ndarray:
    """States as ``(N, 4)`` float64 in ``[0, 1]`` (arc position, red, green, blue)."""
    return check_states(state, 4, "arc position, intensities")


def render_states(
    state: np.ndarray,
    resolution: int = 64,
    *,
    workers: int | None = None,
    chunk: int = 256,
    progress: bool | None = None,
) -> np.ndarray:
    """Render states ``(N, 4)`` to images ``(N, H, W, 3)`` of ``uint8``
    (:meth:`CircuitScene.render`, spread over processes).

    :param workers: rendering processes (each with its own OpenGL context); defaults to
        the number of CPUs. With 1, renders in this process.
    :param progress: show a progress bar; ``None`` shows one for more than a few chunks.
    """
    state = _check_states(state)
    with CircuitScene(resolution) as scene:
        boards = _render_boards(scene, state[:, 0], workers, chunk, progress)
        return scene.paint(boards, state[:, 1:])


def _render_boards(
    scene: CircuitScene,
    arm: np.ndarray,
    workers: int | None,
    chunk: int,
    progress: bool | None,
) -> np.ndarray:
    """:meth:`CircuitScene.render_board` of ``arm`` ``(N,)``, in ``workers`` processes."""
    out = list(_board_parts(scene, arm, workers, chunk, progress))
    if not out:
        return np.empty((0, scene.resolution, scene.resolution, 3), dtype=np.uint8)
    return np.concatenate(out)


def _board_parts(
    scene: CircuitScene,
    arm: np.ndarray,
    workers: int | None,
    chunk: int,
    progress: bool | None,
) -> Iterator[np.ndarray]:
    """:meth:`CircuitScene.render_board` of ``arm`` ``(N,)`` in parts of ``chunk`` arm
    positions, in order, rendered by ``workers`` processes (a few parts ahead)."""
    size = scene.resolution
    return render_rows(
        np.asarray(arm, dtype=np.float64)[:, None],
        lambda rows: scene.render_board(rows[:, 0]),
        (__name__, str(size)),
        (size, size, 3),
        workers=workers,
        chunk=chunk,
        progress=progress,
    )


def simulate_causalcircuit(
    pairs: int,
    seed: int,
    *,
    resolution: int = 64,
    workers: int | None = None,
    progress: bool | None = None,
) -> xr.Dataset:
    """Weakly supervised pairs of CausalCircuit images as a pyrocrl dataset.

    ``x`` holds each image flattened to ``H·W·3`` features of ``uint8``
    (``attrs["image_shape"]`` is ``(H, W, 3)``; :func:`pyrocrl.data.images` restores it);
    ``z``, ``noise``, ``target`` and the true ``adjacency`` are the ground truth, and
    ``state`` ``(pair, world, latent)`` is the physical state that was rendered. A pair
    without intervention shows one image twice.

    :param int pairs: number of pairs.
    :param int seed: sample seed; the same seed gives the same images.
    :param int resolution: image size in pixels (64 by default, up to 512).
    """
    lcm, truth = _sample(pairs, seed)
    state = truth["x"].values  # (pair, world, 4)
    # MuJoCo draws the arm and board: once per pair, and again where the arm was moved
    moved = state[:, 1, 0] != state[:, 0, 0]
    with CircuitScene(resolution) as scene:
        arm = np.concatenate([state[:, 0, 0], state[moved, 1, 0]])
        boards = _render_boards(scene, arm, workers, 256, progress)
        pictures = np.repeat(boards[:pairs, None], 2, axis=1)
        pictures[moved, 1] = boards[pairs:]
        for world in (0, 1):  # then the lamps are lit
            scene.paint(pictures[:, world], state[:, world, 1:])
    return _circuit_dataset(lcm, truth, pictures.reshape(pairs, 2, -1), resolution)


def write_causalcircuit(
    path: str | os.PathLike,
    pairs: int,
    seed: int,
    *,
    resolution: int = 64,
    workers: int | None = None,
    block: int = 4096,
    compress: bool = True,
    progress: bool | None = None,
) -> Path:
    """:func:`simulate_causalcircuit` written to ``path`` (a NetCDF file, or a Zarr store
    for a name ending in ``.zarr``) as it is rendered, ``block`` pairs at a time
    (:func:`~pyrocrl.data.writer.write_pairs`): the same dataset, while memory holds the
    truth, one block of images and the renders in flight, never all images.

    :param compress: compress the images (``False``: stored raw, larger and faster to read).
    :returns: ``path``; an interrupted render leaves nothing there.
    """
    from pyrocrl.data.writer import placeholder, write_pairs

    if block < 1:
        raise ValueError(f"block must be at least 1 pair, got {block}")
    lcm, truth = _sample(pairs, seed)
    state = truth["x"].values
    features = resolution * resolution * 3
    template = _circuit_dataset(lcm, truth, placeholder(pairs, features), resolution)
    with CircuitScene(resolution) as scene:
        blocks = _render_blocks(scene, state, block, workers, progress)
        return write_pairs(path, template, blocks, compress=compress)


def _sample(pairs: int, seed: int) -> tuple[GroundTruthLCM, xr.Dataset]:
    """The latent model and ``pairs`` pairs of its truth (``x``: the physical state)."""
    from pyrocrl.data.simulators import simulate

    lcm = causal_circuit()
    return lcm, simulate(lcm, pairs, seed, progress=False)


def _render_blocks(
    scene: CircuitScene,
    state: np.ndarray,
    block: int,
    workers: int | None,
    progress: bool | None,
) -> Iterator[np.ndarray]:
    """Images of the states ``(N, 2, 4)``, ``block`` pairs at a time: ``(b, 2, H, W, 3)``.

    The boards of each block (every first world, then the moved second worlds) are queued
    for the renderers in one stream, so that they never wait between blocks.
    """
    moved = state[:, 1, 0] != state[:, 0, 0]
    blocks = [slice(a, a + block) for a in range(0, len(state), block)]
    arm = np.concatenate([_arms(state[rows], moved[rows]) for rows in blocks])
    boards = _board_parts(scene, arm, workers, 256, progress)
    drawn = np.empty((0, scene.resolution, scene.resolution, 3), dtype=np.uint8)
    try:
        for rows in blocks:
            shifted = moved[rows]
            size = len(shifted)
            need = size + int(shifted.sum())
            parts = [drawn]
            while sum(len(p) for p in parts) < need:
                parts.append(next(boards))
            drawn = np.concatenate(parts)
            pictures = np.repeat(drawn[:size, None], 2, axis=1)
            pictures[shifted, 1] = drawn[size:need]
            drawn = drawn[need:]
            for world in (0, 1):
                scene.paint(pictures[:, world], state[rows, world, 1:])
            yield pictures
    finally:
        boards.close()  # the rendering processes end, also when the writer stops early


def _arms(state: np.ndarray, moved: np.ndarray) -> np.ndarray:
    """Arm positions to draw for states ``(b, 2, 4)``: every first world, then the second
    worlds where the arm ``moved``."""
    return np.concatenate([state[:, 0, 0], state[moved, 1, 0]])


def _circuit_dataset(
    lcm: GroundTruthLCM, truth: xr.Dataset, x: np.ndarray, resolution: int
) -> xr.Dataset:
    """The dataset of pairs whose images (both worlds, flattened) are ``x``."""
    image_shape = (resolution, resolution, 3)
    return rendered_pairs(truth, x, image_shape, truth["x"].values, {"renderer": "mujoco"})


def simulate_causalcircuit_splits(
    seed: int,
    sizes: dict[str, int] | None = None,
    *,
    resolution: int = 64,
    workers: int | None = None,
    progress: bool | None = None,
) -> dict[str, xr.Dataset]:
    """Independent CausalCircuit datasets, one per named split (seeded as in
    :func:`~pyrocrl.data.simulate_splits`); ``sizes`` defaults to 100,000 training pairs and
    10,000 each for testing and for the DCI regressors."""
    from pyrocrl.data.simulators import DEFAULT_SPLITS, _chunk_seed

    splits = {}
    for i, (name, size) in enumerate(dict(sizes or DEFAULT_SPLITS).items()):
        split_seed = _chunk_seed(seed, 1_000_000 + i)
        splits[name] = simulate_causalcircuit(
            size, split_seed, resolution=resolution, workers=workers, progress=progress
        )
        splits[name].attrs.update(split=name, split_seed=seed)
    return splits


if __name__ == "__main__":
    _serve()
