"""Causal3DIdent-style scenes: an object, a spotlight and a coloured background.

Causal3DIdent (von Kügelgen, Sharma, Gresele, Brendel, Schölkopf, Besserve & Locatello,
"Self-Supervised Learning with Data Augmentations Provably Isolates Content from Style",
NeurIPS 2021, §5.2 and its appendix; dataset on Zenodo, record 4784282) renders one object in
front of a coloured background under a coloured spotlight with Blender, from ten continuous
latent variables and the object's class, with causal dependencies among them. This module
renders the same kind of scene offline with MuJoCo. Nine causal variables, in this order:

==================  =======================================================  ========
variable            what it sets in the scene                                range
==================  =======================================================  ========
``pos_x``           object position, left–right                              ±0.18
``pos_y``           object position, down–up                                 ±0.1
``pos_z``           object position, away from the camera (apparent size)    ±0.2
``rot_alpha``       object rotation about the vertical axis                  ±60°
``rot_beta``        object rotation about the horizontal axis (after alpha)  ±45°
``spot``            spotlight position on its arc above the object           ±70°
``hue_object``      hue of the object's colour                               0–0.75
``hue_spot``        hue of the spotlight's colour                            0–0.75
``hue_background``  hue of the background wall                               0–0.75
==================  =======================================================  ========

As in Causal3DIdent the spotlight follows the object and the object's colour depends on the
spotlight's and the background's (the dataset's class → position/rotation edges become
constants here, as the class is a fixed context of a dataset: ``shape``)::

    pos_x ──► spot ◄── pos_y
    hue_spot ──► hue_object ◄── hue_background

The SCM lives in unconstrained coordinates ``z`` (an :class:`~pyrocrl.scm.AdditiveNoiseSCM`
with unit noise); the rendered state is ``Φ(z)`` ∈ (0, 1)⁹, mapped linearly onto the ranges
above, with

.. math::

    z_\\mathrm{spot} = 1.5 \\tanh z_\\mathrm{pos\\,x} + 0.5 \\tanh z_\\mathrm{pos\\,y} + e,
    \\qquad z_\\mathrm{hue\\,obj} = 0.5 \\tanh z_\\mathrm{hue\\,spot}
    − 1.5 \\tanh z_\\mathrm{hue\\,bg} + e.

Two departures from the original, both so that the map from causal variables to images is
injective, which identifiability from pairs needs: angles and hues span part of their circle
(the original's full circles make a colour of hue 0 and hue 1, or two rotations of a
symmetric object, look the same), and the objects are asymmetric. The object class is a
fixed context per dataset (``shape``): ``"teapot"`` (a lathed body with a spout, a handle
and a knob), ``"arrow"`` (an extruded arrow) or ``"blob"`` (an asymmetrically deformed
sphere), each a mesh generated here, with no files or downloads.

``variables`` keeps a subset of the nine varying; the others stay at the middle of their
range (``z = 0``), and a kept variable whose parent is held fixed sees the parent's fixed
value. Perfect interventions set one variable (or none, uniformly over the choices) to
``N(0, 1)`` and recompute its descendants with the same noise, as for the other simulators.
Images are a pure function of the state: a pair without intervention shows one image twice.
"""

__all__ = [
    "SHAPES",
    "VARIABLES",
    "Causal3DIdentState",
    "SceneRenderer",
    "causal3dident",
    "object_meshes",
    "physical",
    "render_states",
    "simulate_causal3dident",
    "simulate_causal3dident_splits",
    "write_causal3dident",
]

import os
import sys
from collections.abc import Iterator, Sequence
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
from pyrocrl.models.truth import GroundTruthLCM
from pyrocrl.scm import AdditiveNoiseSCM

VARIABLES = (
    "pos_x",
    "pos_y",
    "pos_z",
    "rot_alpha",
    "rot_beta",
    "spot",
    "hue_object",
    "hue_spot",
    "hue_background",
)
"""The causal variables, in the order of the dataset's ``latent`` dim."""

SHAPES = ("teapot", "arrow", "blob")
"""The objects, one per dataset (the class is a fixed context)."""

EDGES = (
    ("pos_x", "spot"),
    ("pos_y", "spot"),
    ("hue_spot", "hue_object"),
    ("hue_background", "hue_object"),
)
"""The causal graph, as (cause, effect) pairs."""

RANGES = {
    "pos_x": (-0.18, 0.18),
    "pos_y": (-0.1, 0.1),
    "pos_z": (-0.2, 0.2),
    "rot_alpha": (-60.0, 60.0),
    "rot_beta": (-45.0, 45.0),
    "spot": (-70.0, 70.0),
    "hue_object": (0.0, 0.75),
    "hue_spot": (0.0, 0.75),
    "hue_background": (0.0, 0.75),
}
"""What ``Φ(z) = 0`` and ``1`` mean in the scene: lengths in scene units, angles in
degrees, hues as a fraction of the colour circle (0 red, 1/3 green, 2/3 blue)."""

INSTALL_HINT = (
    "the Causal3DIdent renderer needs the package 'mujoco' (pip install 'pyrocrl[circuit]')"
)


# -- the latent SCM --------------------------------------------------------------------------
def _spot(z_pa: torch.Tensor) -> torch.Tensor:  # parents: (pos_x, pos_y)
    return 1.5 * torch.tanh(z_pa[..., 0]) + 0.5 * torch.tanh(z_pa[..., 1])


def _hue_object(z_pa: torch.Tensor) -> torch.Tensor:  # parents: (hue_spot, hue_background)
    return 0.5 * torch.tanh(z_pa[..., 0]) - 1.5 * torch.tanh(z_pa[..., 1])


MECHANISMS = {"spot": _spot, "hue_object": _hue_object}


def _check_variables(variables: Sequence[str] | None) -> tuple[str, ...]:
    if variables is None:
        return VARIABLES
    variables = tuple(variables)
    unknown = sorted(set(variables) - set(VARIABLES))
    if unknown:
        raise ValueError(f"unknown Causal3DIdent variables {unknown}; known: {list(VARIABLES)}")
    if len(set(variables)) != len(variables) or not variables:
        raise ValueError("variables must name each kept variable once, at least one")
    return tuple(v for v in VARIABLES if v in variables)  # in the canonical order


def _adjacency(variables: tuple[str, ...]) -> np.ndarray:
    index = {v: i for i, v in enumerate(variables)}
    adjacency = np.zeros((len(variables), len(variables)), dtype=np.int8)
    for cause, effect in EDGES:
        if cause in index and effect in index:
            adjacency[index[cause], index[effect]] = 1
    return adjacency


def _mechanism(effect: str, variables: tuple[str, ...]):
    """The location of ``effect`` given its kept parents, with held parents at ``z = 0``."""
    full = MECHANISMS[effect]
    parents = [cause for cause, e in EDGES if e == effect]
    kept = [cause in variables for cause in parents]

    def loc(z_pa: torch.Tensor) -> torch.Tensor:
        columns, k = [], 0
        for is_kept in kept:
            if is_kept:
                columns.append(z_pa[..., k])
                k += 1
            else:
                columns.append(torch.zeros(z_pa.shape[:-1], dtype=z_pa.dtype))
        return full(torch.stack(columns, dim=-1))

    return loc


class Causal3DIdentState:
    """The map from the kept causal variables to the rendered state, as a "mixing".

    ``(*, n) → (*, 9)``: ``s = Φ(z)`` for the kept variables and ``1/2`` for the held ones
    (all nine, in the order of :data:`VARIABLES`, each in ``(0, 1)``), with its inverse.
    """

    def __init__(self, variables: Sequence[str] | None = None) -> None:
        self.variables = _check_variables(variables)
        self.n = len(self.variables)
        self.dim_x = len(VARIABLES)
        self._kept = [VARIABLES.index(v) for v in self.variables]

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        state = torch.full((*z.shape[:-1], self.dim_x), 0.5, dtype=z.dtype)
        state[..., self._kept] = torch.special.ndtr(z)
        return state

    def inverse(self, state: torch.Tensor) -> torch.Tensor:
        return torch.special.ndtri(state[..., self._kept])


def causal3dident(variables: Sequence[str] | None = None) -> GroundTruthLCM:
    """The Causal3DIdent latent causal model over ``variables`` (default: all nine); its
    observations are the rendered state (:class:`Causal3DIdentState`).

    :func:`simulate_causal3dident` samples pairs from it and renders the states to images.
    """
    variables = _check_variables(variables)
    locs = [_mechanism(v, variables) if v in MECHANISMS else None for v in variables]
    scm = AdditiveNoiseSCM(_adjacency(variables), locs)
    settings = {
        "simulator": "causal3dident",
        "n": len(variables),
        "variables": ",".join(variables),
    }
    return GroundTruthLCM(scm, Causal3DIdentState(variables), settings=settings)


# -- the objects: meshes generated here ------------------------------------------------------
Mesh = tuple[np.ndarray, np.ndarray]
"""Vertices ``(V, 3)`` and triangles ``(F, 3)`` (vertex indices, counter-clockwise seen from
outside)."""


def _outward(vertices: np.ndarray, faces: np.ndarray) -> Mesh:
    """The closed mesh with its triangles turned outward (positive signed volume)."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    if np.einsum("ij,ij->", a, np.cross(b, c)) < 0:
        faces = faces[:, ::-1]
    return vertices, np.ascontiguousarray(faces)


def _lathe(profile: Sequence[tuple[float, float]], segments: int = 24) -> Mesh:
    """A surface of revolution about the z axis through ``(radius, height)`` points, from a
    bottom pole to a top pole (radius 0 at both ends)."""
    profile = np.asarray(profile, dtype=np.float64)
    rings = profile[1:-1]
    angle = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
    ring_xyz = np.stack(
        [
            rings[:, None, 0] * np.cos(angle)[None],
            rings[:, None, 0] * np.sin(angle)[None],
            np.repeat(rings[:, None, 1], segments, axis=1),
        ],
        axis=-1,
    ).reshape(-1, 3)
    bottom, top = [0.0, 0.0, profile[0, 1]], [0.0, 0.0, profile[-1, 1]]
    vertices = np.vstack([bottom, ring_xyz, top])
    k = np.arange(segments)
    faces = [np.stack([np.zeros(segments, int), 1 + (k + 1) % segments, 1 + k], -1)]
    for r in range(len(rings) - 1):
        lo, hi = 1 + r * segments, 1 + (r + 1) * segments
        faces.append(np.stack([lo + k, lo + (k + 1) % segments, hi + (k + 1) % segments], -1))
        faces.append(np.stack([lo + k, hi + (k + 1) % segments, hi + k], -1))
    last = 1 + (len(rings) - 1) * segments
    faces.append(
        np.stack([np.full(segments, len(vertices) - 1), last + k, last + (k + 1) % segments], -1)
    )
    return _outward(vertices, np.concatenate(faces))


def _torus(major: float, minor: float, segments: int = 20, sides: int = 10) -> Mesh:
    """A torus about the z axis."""
    u, v = np.meshgrid(
        np.linspace(0.0, 2 * np.pi, segments, endpoint=False),
        np.linspace(0.0, 2 * np.pi, sides, endpoint=False),
        indexing="ij",
    )  # (segments, sides): around the axis, around the tube
    radius, height = major + minor * np.cos(v), minor * np.sin(v)
    vertices = np.stack([radius * np.cos(u), radius * np.sin(u), height], -1).reshape(-1, 3)
    i, j = np.meshgrid(np.arange(segments), np.arange(sides), indexing="ij")
    a, b = i * sides + j, ((i + 1) % segments) * sides + j
    c, d = ((i + 1) % segments) * sides + (j + 1) % sides, i * sides + (j + 1) % sides
    faces = np.concatenate([np.stack([a, b, c], -1), np.stack([a, c, d], -1)]).reshape(-1, 3)
    return _outward(vertices, faces)


def _extrude(
    polygon: Sequence[tuple[float, float]], centre: tuple[float, float], depth: float
) -> Mesh:
    """A prism of thickness ``depth`` (along z) over a polygon that is star-shaped about
    ``centre`` (caps fanned from it)."""
    polygon = np.asarray(polygon, dtype=np.float64)
    m = len(polygon)
    ring = np.vstack([polygon, centre])
    vertices = np.vstack(
        [
            np.column_stack([ring, np.full(m + 1, -depth / 2)]),
            np.column_stack([ring, np.full(m + 1, depth / 2)]),
        ]
    )
    k = np.arange(m)
    nxt = (k + 1) % m
    top = m + 1
    faces = [
        np.stack([np.full(m, m), nxt, k], -1),  # bottom cap
        np.stack([np.full(m, top + m), top + k, top + nxt], -1),  # top cap
        np.stack([k, nxt, top + nxt], -1),
        np.stack([k, top + nxt, top + k], -1),
    ]
    return _outward(vertices, np.concatenate(faces))


BLOB_WAVES = ((0.3, 2, 1, 0.4), (0.2, 3, 2, 1.3), (0.15, 1, 3, 2.1))
"""``(a, k, m, c)`` of the blob's waves ``a cos(k θ) cos(m φ + c)``."""


def _blob() -> Mesh:
    """A sphere deformed by a few fixed angular waves (:data:`BLOB_WAVES`), so that no
    rotation or mirror maps it onto itself."""
    theta = np.linspace(0.0, np.pi, 18)
    vertices, faces = _lathe([(np.sin(t), -np.cos(t)) for t in theta], segments=28)
    x, y, z = vertices.T
    polar, azimuth = np.arccos(np.clip(z, -1.0, 1.0)), np.arctan2(y, x)
    waves = (a * np.cos(k * polar) * np.cos(m * azimuth + c) for a, k, m, c in BLOB_WAVES)
    return _outward(vertices * (1.0 + sum(waves))[:, None], faces)


def _rotation(axis: str, degrees: float) -> np.ndarray:
    """The matrix of a rotation by ``degrees`` about the world ``axis``."""
    t = np.deg2rad(degrees)
    c, s = np.cos(t), np.sin(t)
    return {
        "x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
        "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
        "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]),
    }[axis]


def _moved(mesh: Mesh, rotation: np.ndarray, shift: Sequence[float] = (0.0, 0.0, 0.0)) -> Mesh:
    """``mesh`` rotated, then shifted."""
    vertices, faces = mesh
    return vertices @ rotation.T + np.asarray(shift), faces


TEAPOT_BODY = [(0.0, -0.55), (0.45, -0.55), (0.75, -0.35), (0.85, -0.05), (0.7, 0.3)]
TEAPOT_BODY += [(0.45, 0.45), (0.0, 0.47)]
ARROW = [(-1.0, -0.22), (0.15, -0.22), (0.15, -0.6), (1.0, 0.0), (0.15, 0.6), (0.15, 0.22)]
ARROW += [(-1.0, 0.22)]
ARROW_FIN = [(-1.0, -0.55), (-0.7, -0.55), (-0.7, 0.0), (-1.0, 0.0)]


def object_meshes(shape: str) -> list[Mesh]:
    """The parts of an object, each a closed mesh, together within a radius of about 1.

    The camera looks along +y. No object has a symmetry that two of its poses in the
    rotation ranges could share: the teapot's mirror plane faces the camera (its spout
    toward it), so poses mirrored by it are mirror images; the arrow has a fin on the
    camera's side of its tail; the blob has no symmetry at all.
    """
    if shape == "teapot":
        spout = _lathe([(0.0, 0.0), (0.16, 0.0), (0.1, 0.55), (0.07, 0.7), (0.0, 0.7)], 12)
        knob = _lathe([(0.0, 0.0), (0.12, 0.02), (0.12, 0.1), (0.0, 0.16)], 12)
        parts = [
            _lathe(TEAPOT_BODY),
            _moved(spout, _rotation("y", 55.0), (0.6, 0.0, -0.2)),
            _moved(_torus(0.3, 0.07), _rotation("x", 90.0), (-0.8, 0.0, 0.0)),
            _moved(knob, np.eye(3), (0.0, 0.0, 0.44)),
        ]
        return [_moved(part, _rotation("z", -90.0)) for part in parts]  # spout to the camera
    if shape == "arrow":  # in the x–z plane, pointing right; the fin toward the camera
        arrow = _moved(_extrude(ARROW, (0.3, 0.0), 0.3), _rotation("x", 90.0))
        return [arrow, _extrude(ARROW_FIN, (-0.85, -0.275), 0.5)]
    if shape == "blob":
        return [_blob()]
    raise ValueError(f"shape must be one of {list(SHAPES)}, got {shape!r}")


# -- the MuJoCo scene ------------------------------------------------------------------------
OBJECT_SIZE = 0.2  # the radius of the sphere around the object, in scene units
FLOOR_Z = -0.3
WALL_Y = 0.6
SPOT_ARC = (0.0, -0.5, 0.1, 0.6)  # the arc's centre (x, y, z) and radius, in the plane y = −0.5
SPOT_CUTOFF = 35.0  # degrees
CAMERA_POS = (0.0, -0.85, 0.14)
CAMERA_AIM = (0.0, 0.0, -0.06)
SATURATION = {"hue_object": (0.8, 0.85), "hue_spot": (0.7, 0.9), "hue_background": (0.6, 0.8)}
"""HSV saturation and value of each coloured thing (hue is the causal variable)."""


def _hsv_to_rgb(hue: np.ndarray, saturation: float, value: float) -> np.ndarray:
    """RGB ``(*, 3)`` of hues ``(*,)`` in ``[0, 1)`` at one saturation and value."""
    k = (np.asarray(hue)[..., None] * 6.0 + np.array([5.0, 3.0, 1.0])) % 6.0
    return value - value * saturation * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def physical(state: np.ndarray) -> dict[str, np.ndarray]:
    """The scene quantities of states ``(N, 9)`` in ``[0, 1]``: each variable on its range
    (:data:`RANGES`), ``(N,)`` each."""
    low = np.array([RANGES[v][0] for v in VARIABLES])
    high = np.array([RANGES[v][1] for v in VARIABLES])
    values = low + (high - low) * state
    return {v: values[:, i] for i, v in enumerate(VARIABLES)}


class SceneRenderer(OffscreenScene):
    """The MuJoCo scene of one object and an offscreen renderer of it.

    :param int resolution: image height and width in pixels (8 to 512).
    :param str shape: the object, one of :data:`SHAPES`.

    :meth:`render` maps states ``(N, 9)`` (all nine variables, each in ``[0, 1]``) to images
    ``(N, H, W, 3)`` of ``uint8``. Use it as a context manager (or call :meth:`close`) to free
    the OpenGL context.
    """

    def __init__(self, resolution: int = 64, shape: str = "teapot") -> None:
        if not 8 <= resolution <= 512:
            raise ValueError(f"resolution must lie in 8..512 pixels, got {resolution}")
        meshes = object_meshes(shape)  # an unknown shape is refused before MuJoCo loads
        extent = max(np.linalg.norm(vertices, axis=1).max() for vertices, _ in meshes)
        mujoco = import_mujoco(INSTALL_HINT)
        self._mujoco = mujoco
        self.resolution, self.shape = int(resolution), shape
        self.model = self._build(mujoco, [(v / extent, f) for v, f in meshes])
        self.data = mujoco.MjData(self.model)
        self._parts = [g for g in range(self.model.ngeom) if self.model.geom_bodyid[g] == 1]
        self._wall = self.model.geom("wall").id
        self._open_renderer(mujoco)

    def _build(self, mujoco: Any, meshes: list[Mesh]) -> Any:
        spec = mujoco.MjSpec()
        world = spec.worldbody
        body = world.add_body(name="object", mocap=True)
        for i, (vertices, faces) in enumerate(meshes):
            mesh = spec.add_mesh(name=f"part_{i}")
            mesh.uservert = (OBJECT_SIZE * vertices).ravel().tolist()
            mesh.userface = faces.ravel().tolist()
            mesh.inertia = mujoco.mjtMeshInertia.mjMESH_INERTIA_SHELL
            body.add_geom(
                type=mujoco.mjtGeom.mjGEOM_MESH, meshname=f"part_{i}", contype=0, conaffinity=0
            )
        world.add_geom(
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[1.5, 1.1, 0.01],
            pos=[0.0, WALL_Y - 1.1, FLOOR_Z - 0.01],
            rgba=[0.9, 0.9, 0.9, 1.0],
        )
        wall = spec.add_material()
        wall.name, wall.emission, wall.specular = "wall", 0.8, 0.0
        world.add_geom(
            name="wall",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[1.5, 0.01, 0.8],
            pos=[0.0, WALL_Y, FLOOR_Z + 0.8],
            material="wall",
        )
        world.add_light(
            name="spot",
            type=mujoco.mjtLightType.mjLIGHT_SPOT,
            pos=list(SPOT_ARC[:3]),
            dir=[0.0, 0.0, -1.0],
            cutoff=SPOT_CUTOFF,
            exponent=4.0,
            castshadow=False,
        )
        world.add_camera(
            name="front", pos=list(CAMERA_POS), xyaxes=look_at(CAMERA_POS, CAMERA_AIM)
        )
        spec.visual.headlight.ambient = [0.2, 0.2, 0.2]
        spec.visual.headlight.diffuse = [0.15, 0.15, 0.15]
        spec.visual.headlight.specular = [0.0, 0.0, 0.0]
        spec.visual.quality.offsamples = 0  # multisampling triples the software renderer's time
        spec.visual.global_.offwidth = spec.visual.global_.offheight = self.resolution
        return spec.compile()

    def _pose(self, s: dict[str, float]) -> None:
        """Set the object, the spotlight and the colours of one state (scene units)."""
        mujoco, m, d = self._mujoco, self.model, self.data
        position = np.array([s["pos_x"], s["pos_z"], s["pos_y"]])  # y up in the image: world z
        d.mocap_pos[0] = position
        rotation = _rotation("x", s["rot_beta"]) @ _rotation("z", s["rot_alpha"])
        mujoco.mju_mat2Quat(d.mocap_quat[0], rotation.ravel())
        cx, cy, cz, radius = SPOT_ARC
        angle = np.deg2rad(s["spot"])
        light = np.array([cx + radius * np.sin(angle), cy, cz + radius * np.cos(angle)])
        m.light_pos[0] = light
        m.light_dir[0] = (position - light) / np.linalg.norm(position - light)
        m.light_diffuse[0] = _hsv_to_rgb(s["hue_spot"], *SATURATION["hue_spot"])
        rgb = _hsv_to_rgb(s["hue_object"], *SATURATION["hue_object"])
        for geom in self._parts:
            m.geom_rgba[geom] = (*rgb, 1.0)
        m.geom_rgba[self._wall] = (
            *_hsv_to_rgb(s["hue_background"], *SATURATION["hue_background"]),
            1.0,
        )
        mujoco.mj_kinematics(m, d)
        mujoco.mj_camlight(m, d)

    def render(self, state: np.ndarray) -> np.ndarray:
        """Images of the states ``(N, 9)`` in ``[0, 1]`` → ``(N, H, W, 3)`` of ``uint8``."""
        state = _check_states(state)
        scene = physical(state)
        out = np.empty((len(state), self.resolution, self.resolution, 3), dtype=np.uint8)
        for i in range(len(state)):
            self._pose({v: float(scene[v][i]) for v in VARIABLES})
            self._renderer.update_scene(self.data, camera="front")
            self._renderer.render(out=out[i])
        return out


def _check_states(state: Any) -> np.ndarray:
    """States as ``(N, 9)`` float64 in ``[0, 1]``."""
    return check_states(state, len(VARIABLES), ", ".join(VARIABLES))


# -- datasets --------------------------------------------------------------------------------
def _serve() -> None:
    """A rendering process: states in, images out (:func:`~pyrocrl.data.offscreen.serve`)."""
    resolution, shape = int(sys.argv[2]), sys.argv[3]
    serve(lambda: SceneRenderer(resolution, shape), lambda scene, rows: scene.render(rows))


def _image_parts(
    scene: SceneRenderer,
    state: np.ndarray,
    workers: int | None,
    progress: bool | None,
    chunk: int = 256,
) -> Iterator[np.ndarray]:
    """:meth:`SceneRenderer.render` of ``state`` ``(N, 9)`` in parts of ``chunk`` states, in
    order, rendered by ``workers`` processes."""
    size = scene.resolution
    return render_rows(
        state,
        scene.render,
        (__name__, str(size), scene.shape),
        (size, size, 3),
        workers=workers,
        chunk=chunk,
        progress=progress,
    )


def render_states(
    state: np.ndarray,
    resolution: int = 64,
    shape: str = "teapot",
    *,
    workers: int | None = None,
    progress: bool | None = None,
) -> np.ndarray:
    """Render states ``(N, 9)`` to images ``(N, H, W, 3)`` of ``uint8``
    (:meth:`SceneRenderer.render`, spread over ``workers`` processes; default: the CPUs)."""
    state = _check_states(state)
    with SceneRenderer(resolution, shape) as scene:
        parts = list(_image_parts(scene, state, workers, progress))
    return np.concatenate(parts) if parts else np.empty((0, resolution, resolution, 3), np.uint8)


def _to_draw(state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The states of pairs ``(b, 2, 9)`` to render: every first world, then the second
    worlds that differ from their first; and which pairs those are."""
    moved = (state[:, 1] != state[:, 0]).any(axis=-1)
    return np.concatenate([state[:, 0], state[moved, 1]]), moved


def _pictures(drawn: np.ndarray, moved: np.ndarray) -> np.ndarray:
    """Both worlds' images ``(b, 2, H, W, 3)`` from the images of :func:`_to_draw`."""
    size = len(moved)
    pictures = np.repeat(drawn[:size, None], 2, axis=1)
    pictures[moved, 1] = drawn[size:]
    return pictures


def simulate_causal3dident(
    pairs: int,
    seed: int,
    *,
    resolution: int = 64,
    shape: str = "teapot",
    variables: Sequence[str] | None = None,
    workers: int | None = None,
    progress: bool | None = None,
) -> xr.Dataset:
    """Weakly supervised pairs of Causal3DIdent-style images as a pyrocrl dataset.

    ``x`` holds each image flattened to ``H·W·3`` features of ``uint8``
    (``attrs["image_shape"]`` is ``(H, W, 3)``; :func:`pyrocrl.data.images` restores it);
    ``z``, ``noise``, ``target`` and the true ``adjacency`` are the ground truth over the
    kept ``variables``, and ``state`` ``(pair, world, latent)`` is their rendered state
    (each in ``[0, 1]``; the variables held fixed are at 1/2). A pair without intervention
    shows one image twice.

    :param int pairs: number of pairs.
    :param int seed: sample seed; the same seed gives the same images.
    :param int resolution: image size in pixels (64 by default, up to 512).
    :param str shape: the object, one of :data:`SHAPES`.
    :param variables: the causal variables that vary (default: all nine).
    :param workers: rendering processes (default: the CPUs; 1 renders in this process).
    """
    lcm, truth = _sample(pairs, seed, variables)
    state = truth["x"].values  # (pair, world, 9)
    draw, moved = _to_draw(state)
    with SceneRenderer(resolution, shape) as scene:
        parts = list(_image_parts(scene, draw, workers, progress))
    pictures = _pictures(np.concatenate(parts), moved)
    return _scene_dataset(lcm, truth, pictures.reshape(pairs, 2, -1), resolution, shape)


def write_causal3dident(
    path: str | os.PathLike,
    pairs: int,
    seed: int,
    *,
    resolution: int = 64,
    shape: str = "teapot",
    variables: Sequence[str] | None = None,
    workers: int | None = None,
    block: int = 4096,
    compress: bool = True,
    progress: bool | None = None,
) -> Path:
    """:func:`simulate_causal3dident` written to ``path`` (a NetCDF file, or a Zarr store
    for a name ending in ``.zarr``) as it is rendered, ``block`` pairs at a time
    (:func:`~pyrocrl.data.writer.write_pairs`): the same dataset, while memory holds the
    truth and one block of images, never all images.

    :returns: ``path``; an interrupted render leaves nothing there.
    """
    from pyrocrl.data.writer import placeholder, write_pairs

    if block < 1:
        raise ValueError(f"block must be at least 1 pair, got {block}")
    lcm, truth = _sample(pairs, seed, variables)
    state = truth["x"].values
    features = resolution * resolution * 3
    template = _scene_dataset(lcm, truth, placeholder(pairs, features), resolution, shape)
    with SceneRenderer(resolution, shape) as scene:
        blocks = _render_blocks(scene, state, block, workers, progress)
        return write_pairs(path, template, blocks, compress=compress)


def _render_blocks(
    scene: SceneRenderer,
    state: np.ndarray,
    block: int,
    workers: int | None,
    progress: bool | None,
) -> Iterator[np.ndarray]:
    """Images of the states ``(N, 2, 9)``, ``block`` pairs at a time: ``(b, 2, H, W, 3)``.

    The states of all blocks are queued for the renderers in one stream, so that they never
    wait between blocks."""
    blocks = [state[a : a + block] for a in range(0, len(state), block)]
    plans = [_to_draw(rows) for rows in blocks]
    parts = _image_parts(scene, np.concatenate([draw for draw, _ in plans]), workers, progress)
    drawn = np.empty((0, scene.resolution, scene.resolution, 3), dtype=np.uint8)
    try:
        for draw, moved in plans:
            pieces = [drawn]
            while sum(len(p) for p in pieces) < len(draw):
                pieces.append(next(parts))
            drawn = np.concatenate(pieces)
            yield _pictures(drawn[: len(draw)], moved)
            drawn = drawn[len(draw) :]
    finally:
        parts.close()  # the rendering processes end, also when the writer stops early


def simulate_causal3dident_splits(
    seed: int,
    sizes: dict[str, int] | None = None,
    **options: Any,
) -> dict[str, xr.Dataset]:
    """Independent datasets of :func:`simulate_causal3dident` (``options`` are its keyword
    arguments), one per named split, seeded as in :func:`~pyrocrl.data.simulate_splits`;
    ``sizes`` defaults to 100,000 training pairs and 10,000 each for testing and for the DCI
    regressors."""
    from pyrocrl.data.simulators import DEFAULT_SPLITS, _chunk_seed

    splits = {}
    for i, (name, size) in enumerate(dict(sizes or DEFAULT_SPLITS).items()):
        splits[name] = simulate_causal3dident(size, _chunk_seed(seed, 1_000_000 + i), **options)
        splits[name].attrs.update(split=name, split_seed=seed)
    return splits


def _sample(
    pairs: int, seed: int, variables: Sequence[str] | None
) -> tuple[GroundTruthLCM, xr.Dataset]:
    """The latent model and ``pairs`` pairs of its truth (``x``: the rendered state)."""
    from pyrocrl.data.simulators import simulate

    lcm = causal3dident(variables)
    return lcm, simulate(lcm, pairs, seed, progress=False)


def _scene_dataset(
    lcm: GroundTruthLCM, truth: xr.Dataset, x: np.ndarray, resolution: int, shape: str
) -> xr.Dataset:
    """The dataset of pairs whose images (both worlds, flattened) are ``x``."""
    kept = [VARIABLES.index(v) for v in lcm.mixing.variables]
    state = truth["x"].values[..., kept]
    attrs = {"renderer": "mujoco", "shape": shape}
    return rendered_pairs(truth, x, (resolution, resolution, 3), state, attrs)


if __name__ == "__main__":
    _serve()
