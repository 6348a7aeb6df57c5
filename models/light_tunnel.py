"""The light tunnel of the causal chambers as a ground-truth latent causal model.

The light tunnel (Gamella, Peters & Bühlmann, *Nature Machine Intelligence*, 2025) is a box
with an RGB light source at one end, two linear polarizers on motorized frames, three light
sensors (before, between and after the polarizers) and a camera. Its actuators are the
causal variables here, in this order::

    red, green, blue     LED brightness, 0 … 255
    pol_1, pol_2         polarizer angles in degrees

The latent SCM is linear and **standardized** (every ``z_k`` is ``N(0, 1)`` without
intervention, see :func:`standardized_scm`), over the default graph :data:`DEFAULT_GRAPH`::

    red ──► green ──► blue
     └───► pol_1 ──► pol_2

Each latent drives its actuator through ``a_k = low_k + (high_k − low_k) Φ(z_k)``
(:class:`Actuators`), so every actuator is uniform over its range, observationally and
under intervention. Observations are what a user of the real tunnel records:

* ``mode="sensors"`` (:class:`ChamberSensors`): the raw readings of the calibrated sensor
  model ``causalchamber.simulators.lt.Deterministic`` — light intensities ``ir_1 … vis_3``
  (float64, up to ~7·10⁴), the current drawn by the light source and the two angle encoders;
  light through both polarizers follows Malus's law ``cos²(θ₁ − θ₂)``;
* ``mode="images"`` (:class:`ChamberImages`): camera images of the package's model
  ``lt.ModelF1`` (a uniformly coloured hexagon on black). An image shows three numbers, so
  only the three LEDs vary and the polarizers stay aligned at 0°.

``causalchamber`` is an optional dependency (``pip install "pyrocrl[chamber]"``). The
package's light-tunnel models are deterministic; the sensor noise here is pyrocrl's own
(:class:`ChamberLCM`). See ``docs/chamber.md``.
"""

__all__ = [
    "ACTUATORS",
    "ANGLE_SENSORS",
    "DEFAULT_GRAPH",
    "DEFAULT_NOISE",
    "DEFAULT_RANGES",
    "IMAGE_GEOMETRY",
    "IMAGE_POLARIZERS",
    "LEDS",
    "LED_SENSORS",
    "LIMITS",
    "SENSORS",
    "SENSOR_PARAMETERS",
    "SENSOR_SETTINGS",
    "Actuators",
    "ChamberImages",
    "ChamberLCM",
    "ChamberSensors",
    "chamber",
    "standardized_scm",
]

import contextlib
import io
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyro.distributions as dist
import torch

from pyrocrl.graphs import check_adjacency, is_acyclic, topological_order
from pyrocrl.models.truth import GroundTruthLCM
from pyrocrl.scm import LinearSCM, bimodal_weights

ACTUATORS = ("red", "green", "blue", "pol_1", "pol_2")
"""The causal variables, in the order of the dataset's ``latent`` dim (``z1 … z5``)."""
LEDS = ACTUATORS[:3]
"""The actuators an image shows (``mode="images"``)."""
SENSORS = ("ir_1", "vis_1", "ir_2", "vis_2", "ir_3", "vis_3", "current", "angle_1", "angle_2")
"""The readings of ``mode="sensors"``, in the order of the ``feature`` dim."""
LED_SENSORS = ("ir_1", "vis_1", "ir_2", "vis_2", "current")
"""Readings that see the light source but no polarizer angle: sensor 1 sits before the
polarizers, sensor 2 behind the first one (whose transmission does not depend on its angle),
and the current is drawn by the LEDs. They are affine in the brightness."""
ANGLE_SENSORS = ("angle_1", "angle_2")
"""The encoders of ``pol_1`` and ``pol_2``, affine in the angle below their ceiling."""
ENCODER_CEILING = 1023
"""The largest reading of an angle encoder (10 bits)."""

DEFAULT_RANGES: dict[str, tuple[float, float]] = {
    "red": (0.0, 255.0),
    "green": (0.0, 255.0),
    "blue": (0.0, 255.0),
    "pol_1": (-90.0, 90.0),
    "pol_2": (-90.0, 90.0),
}
"""``(low, high)`` of each actuator. Over ±90° the difference ``θ₁ − θ₂`` sweeps Malus's
factor ``cos²`` from 0 (crossed) to 1 (aligned) and back twice."""
LIMITS: dict[str, tuple[float, float]] = {
    **{c: (0.0, 255.0) for c in LEDS},
    "pol_1": (-180.0, 180.0),
    "pol_2": (-180.0, 180.0),
}
"""The settings the tunnel (and its simulators) accept; ``ranges`` must lie within them."""

DEFAULT_GRAPH = np.array(
    [
        [0, 1, 0, 1, 0],  # red → green, red → pol_1
        [0, 0, 1, 0, 0],  # green → blue
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 1],  # pol_1 → pol_2
        [0, 0, 0, 0, 0],
    ],
    dtype=np.int8,
)
"""``red → green → blue`` and ``red → pol_1 → pol_2``: a chain through the light source and
one through the polarizers in the order light passes them, joined at ``red``. Both sensor
groups are therefore confounded (no block can be read off alone), and the graph has direct
and two-step effects, roots, a fork and leaves."""

DEFAULT_NOISE = 0.01
"""The level of "with noise" runs: sensor noise with a standard deviation of 1% of each
sensor's span. pyrocrl's choice — the package's light-tunnel models are noise-free and
give no figure (its only noise parameter, the barometer precision, is the wind tunnel's)."""

SENSOR_PARAMETERS: dict[str, Any] = {
    "S": ((4.34165202, 2.8594438, 1.91565691), (0.89410569, 1.58679242, 2.68477163)),
    "d1": 0.1,
    "d2": 0.17,
    "d3": 0.25,
    "Ts": (0.42685688, 0.41231782, 0.46652526),
    "Tp": (0.2909342, 0.29624314, 0.30526271),
    "Tc": (0.00431032, 0.01447611, 0.02041075),
    "Q": (0.12834946, 0.12870338, 0.13078523),
    "C0": 58.13307318503893,
    "A": 1.42261211,
    "a1": 506.8049747171294,
    "a2": 510.98343062774353,
}
"""The calibrated parameters of ``lt.Deterministic``, as its tutorial gives them: the
photodiodes' response ``S`` to each colour, sensor distances ``d1 … d3``, polarizer
transmissions (single ``Ts``, aligned pair ``Tp``, crossed pair ``Tc``), the current's
response ``Q`` and offset ``C0``, and the encoders' slope ``A`` and zeros ``a1, a2``."""

SENSOR_SETTINGS: dict[str, int] = {
    **{f"diode_ir_{j}": 2 for j in (1, 2, 3)},
    **{f"diode_vis_{j}": 1 for j in (1, 2, 3)},
    **{f"t_{kind}_{j}": 3 for kind in ("ir", "vis") for j in (1, 2, 3)},
    "v_c": 5,
    "v_angle_1": 5,
    "v_angle_2": 5,
}
"""The sensors' settings of the tutorial of ``lt.Deterministic``: photodiode sizes (0–2),
exposure times (0–3) and reference voltages. A reading scales as ``2^(diode + t)``."""

IMAGE_GEOMETRY: dict[str, float] = {
    "center_x": 0.5,
    "center_y": 0.5,
    "radius": 0.22,
    "offset": 0.0,
}
"""The hexagon of the image models, as in their tutorial (fractions of the image side)."""
IMAGE_POLARIZERS: dict[str, float] = {"pol_1": 0.0, "pol_2": 0.0}
"""The polarizers of ``mode="images"``: aligned, so Malus's factor is 1 (brightest)."""

INSTALL_HINT = (
    'the light-tunnel simulator needs the package causalchamber: pip install "pyrocrl[chamber]"'
)
RENDER_BATCH = 256
"""Images rendered per call of the image model (it works in float64: bounded memory)."""


def _lt() -> Any:
    """``causalchamber.simulators.lt``, imported without the banner the package prints."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            from causalchamber.simulators import lt
    except ImportError as error:
        raise ImportError(INSTALL_HINT) from error
    return lt


def _frame(columns: Mapping[str, Any]) -> Any:
    import pandas as pd  # a dependency of causalchamber

    return pd.DataFrame(dict(columns))


# -- the latent SCM ------------------------------------------------------------------------
def standardized_scm(weights: np.ndarray) -> LinearSCM:
    """The linear SCM ``z_k = (Σ_i w_ik z_i + e_k) / s_k`` with unit variances.

    ``s_k`` is the standard deviation of ``Σ_i w_ik z_i + e_k`` without intervention, so
    every ``z_k ~ N(0, 1)`` marginally (no variance grows along the causal order). As a
    :class:`~pyrocrl.scm.LinearSCM` its weights are ``w_ik / s_k`` and its noise scales
    ``1 / s_k``.

    :param weights: ``(n, n)`` raw effects, ``weights[i, k]`` of ``z_i`` on ``z_k``, over a DAG.
    """
    w = np.asarray(weights, dtype=np.float64)
    adjacency = check_adjacency((w != 0).astype(np.int8))
    if not is_acyclic(adjacency):
        raise ValueError("the graph has a cycle; the SCM needs a DAG")
    n = len(w)
    effects, scale, cov = np.zeros((n, n)), np.ones(n), np.zeros((n, n))
    for k in topological_order(adjacency):
        s = np.sqrt(1.0 + w[:, k] @ cov @ w[:, k])
        effects[:, k], scale[k] = w[:, k] / s, 1.0 / s
        # the noise e_k is independent of every variable solved before z_k
        cov[k] = cov[:, k] = effects[:, k] @ cov
        cov[k, k] = 1.0
    return LinearSCM(effects, noise_scale=scale)


# -- the maps to observations --------------------------------------------------------------
class Actuators:
    """Standardized causal variables to actuator settings and back.

    ``a_k = low_k + (high_k − low_k) Φ(z_k)`` with ``Φ`` the standard normal CDF; shapes
    ``(*, n) → (*, n)``, settings in float64 and causal variables in torch's default dtype.

    :param names: the actuators, in the order of the causal variables.
    :param ranges: ``{name: (low, high)}`` for each name.
    """

    def __init__(self, names: Sequence[str], ranges: Mapping[str, tuple[float, float]]) -> None:
        self.names = tuple(names)
        self.n = self.dim_x = len(self.names)
        self.low = torch.tensor([float(ranges[k][0]) for k in self.names], dtype=torch.float64)
        self.high = torch.tensor([float(ranges[k][1]) for k in self.names], dtype=torch.float64)

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """``(*, n) → (*, n)`` float64 settings in ``[low, high]``."""
        u = torch.special.ndtr(torch.as_tensor(z).to(torch.float64))
        return self.low + (self.high - self.low) * u

    def inverse(self, a: torch.Tensor) -> torch.Tensor:
        """``(*, n) → (*, n)``; settings outside ``(low, high)`` are clipped to just inside."""
        u = (torch.as_tensor(a).to(torch.float64) - self.low) / (self.high - self.low)
        tiny = torch.finfo(torch.float64).eps
        return torch.special.ndtri(u.clamp(tiny, 1.0 - tiny)).to(torch.get_default_dtype())


class ChamberSensors:
    """The tunnel's sensor readings as a mixing: ``g = Deterministic ∘ a``.

    ``(*, 5) → (*, 9)`` float64, readings in the order :data:`SENSORS`. The inverse is
    exact for noise-free readings: brightness from the readings of :data:`LED_SENSORS`
    (least squares, each reading weighted by ``1 / span``) and angles from the encoders,
    through the affine responses probed from the simulator when it is built.

    :param actuators: the map to the five settings (:class:`Actuators` over :data:`ACTUATORS`).
    :param parameters: ``lt.Deterministic``'s parameters (default :data:`SENSOR_PARAMETERS`).
    :param settings: the sensors' settings (default :data:`SENSOR_SETTINGS`), each a number.
    :attr span: ``(9,)`` each reading's range over the actuator box (grid over the angles).
    """

    feature_names = SENSORS

    def __init__(
        self,
        actuators: Actuators,
        parameters: Mapping[str, Any] | None = None,
        settings: Mapping[str, float] | None = None,
    ) -> None:
        if actuators.names != ACTUATORS:
            raise ValueError(f"the sensor model needs the actuators {ACTUATORS}")
        params = {**SENSOR_PARAMETERS, **(parameters or {})}
        self.settings = {**SENSOR_SETTINGS, **(settings or {})}
        unknown = (set(params) - set(SENSOR_PARAMETERS)) | (
            set(self.settings) - set(SENSOR_SETTINGS)
        )
        if unknown:
            raise ValueError(f"unknown sensor parameters or settings: {sorted(unknown)}")
        self.simulator = _lt().Deterministic(**{k: np.asarray(v) for k, v in params.items()})
        self.actuators = actuators
        self.n, self.dim_x = len(ACTUATORS), len(SENSORS)
        self.span = self._span()
        self._probe()

    def readings(self, a: np.ndarray) -> np.ndarray:
        """Actuator settings ``(N, 5)`` → readings ``(N, 9)``, float64."""
        a = np.asarray(a, dtype=np.float64)
        columns = {name: a[:, k] for k, name in enumerate(ACTUATORS)}
        columns.update({k: np.full(len(a), v) for k, v in self.settings.items()})
        out = self.simulator.simulate_from_inputs(_frame(columns))
        by_name = dict(zip(self.simulator.outputs_names, out, strict=True))
        return np.stack([np.asarray(by_name[s], dtype=np.float64) for s in SENSORS], axis=-1)

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """``(*, 5) → (*, 9)`` float64 readings."""
        a = self.actuators(z)
        x = self.readings(a.reshape(-1, self.n).numpy())
        return torch.from_numpy(x).reshape(*a.shape[:-1], self.dim_x)

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """``(*, 9) → (*, 5)`` causal variables of noise-free readings."""
        x = torch.as_tensor(x).to(torch.float64)
        led = x[..., self._led] - self._led_offset
        rgb = led @ self._unmix.T
        angles = (x[..., self._angle] - self._angle_offset) / self._angle_slope
        return self.actuators.inverse(torch.cat([rgb, angles], dim=-1))

    def _span(self) -> np.ndarray:
        """Each reading's max − min over the brightness corners and a 19 × 19 angle grid."""
        corners = np.array(np.meshgrid(*[[0.0, 1.0]] * 3)).reshape(3, -1).T
        low, high = self.actuators.low.numpy(), self.actuators.high.numpy()
        rgb = low[:3] + (high[:3] - low[:3]) * corners
        angles = np.array(np.meshgrid(*[np.linspace(low[k], high[k], 19) for k in (3, 4)]))
        angles = angles.reshape(2, -1).T
        grid = np.concatenate(
            [np.repeat(rgb, len(angles), axis=0), np.tile(angles, (len(rgb), 1))], axis=1
        )
        x = self.readings(grid)
        if x[:, [SENSORS.index(s) for s in ANGLE_SENSORS]].max() >= ENCODER_CEILING:
            raise ValueError(
                f"the angle encoders saturate at {ENCODER_CEILING} over these ranges and "
                "settings: narrow the polarizer ranges or raise v_angle_1, v_angle_2"
            )
        return x.max(axis=0) - x.min(axis=0)

    def _probe(self) -> None:
        """The affine responses of :data:`LED_SENSORS` to brightness and of the encoders to
        the angles, from six settings, and their weighted least-squares inverse."""
        a = np.zeros((6, 5))
        a[1:4, :3] = np.eye(3)
        a[4:, 3:] = np.eye(2)
        x = self.readings(a)
        self._led = [SENSORS.index(s) for s in LED_SENSORS]
        self._angle = [SENSORS.index(s) for s in ANGLE_SENSORS]
        response = (x[1:4, self._led] - x[0, self._led]).T  # (5, 3) per unit of brightness
        weight = 1.0 / self.span[self._led]
        unmix = np.linalg.pinv(response * weight[:, None]) * weight[None, :]
        self._unmix = torch.from_numpy(unmix)
        self._led_offset = torch.from_numpy(x[0, self._led])
        self._angle_offset = torch.from_numpy(x[0, self._angle])
        self._angle_slope = torch.from_numpy(np.diag(x[4:, self._angle]) - x[0, self._angle])


class ChamberImages:
    """Camera images of the tunnel as a mixing: ``g = ModelF1 ∘ a`` with the polarizers fixed.

    ``(*, 3) → (*, H·W·3)`` float64 pixel intensities in ``[0, 255]`` (not rounded), each
    image flattened in ``(H, W, 3)`` order. :meth:`render` gives rounded ``uint8`` images in
    batches. The inverse reads the mean colour of the hexagon and solves the model's
    colour response (probed when built); it is exact while no channel saturates.

    :param actuators: the map to the three LED settings (:class:`Actuators` over ``LEDS``).
    :param int image_size: ``H = W``, in pixels (at least 8).
    :param model: an image model with ``simulate_from_inputs``; default ``lt.ModelF1`` with
        :data:`IMAGE_GEOMETRY`.
    :param polarizers: the fixed angles (default :data:`IMAGE_POLARIZERS`).
    """

    def __init__(
        self,
        actuators: Actuators,
        image_size: int = 64,
        model: Any = None,
        polarizers: Mapping[str, float] | None = None,
    ) -> None:
        if actuators.names != LEDS:
            raise ValueError(f"the image model needs the actuators {LEDS}")
        if int(image_size) != image_size or image_size < 8:
            raise ValueError(f"image_size must be a whole number of pixels ≥ 8, got {image_size}")
        self.image_size = int(image_size)
        self.image_shape = (self.image_size, self.image_size, 3)
        self.model = model or _lt().ModelF1(**IMAGE_GEOMETRY, image_size=self.image_size)
        self.polarizers = dict(polarizers or IMAGE_POLARIZERS)
        self.actuators = actuators
        self.n, self.dim_x = len(LEDS), int(np.prod(self.image_shape))
        self._probe()

    def pixels(self, a: np.ndarray) -> np.ndarray:
        """LED settings ``(N, 3)`` → float64 images ``(N, H, W, 3)`` in ``[0, 255]``."""
        a = np.asarray(a, dtype=np.float64)
        out = np.empty((len(a), *self.image_shape))
        for start in range(0, len(a), RENDER_BATCH):
            out[start : start + RENDER_BATCH] = 255.0 * self._simulate(
                a[start : start + RENDER_BATCH]
            )
        return out

    def render(self, a: np.ndarray) -> np.ndarray:
        """LED settings ``(N, 3)`` → ``uint8`` images ``(N, H, W, 3)``, the pixels rounded."""
        a = np.asarray(a, dtype=np.float64)
        out = np.empty((len(a), *self.image_shape), dtype=np.uint8)
        for start in range(0, len(a), RENDER_BATCH):
            rows = slice(start, start + RENDER_BATCH)
            out[rows] = np.rint(self.pixels(a[rows]))
        return out

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """``(*, 3) → (*, H·W·3)`` float64 pixel intensities."""
        a = self.actuators(z)
        x = self.pixels(a.reshape(-1, self.n).numpy())
        return torch.from_numpy(x).reshape(*a.shape[:-1], self.dim_x)

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """``(*, H·W·3) → (*, 3)`` causal variables of unsaturated images."""
        x = torch.as_tensor(x).to(torch.float64)
        colour = x.reshape(*x.shape[:-1], -1, 3)[..., self._mask, :].mean(dim=-2)
        rgb = (colour - self._offset) @ self._unmix.T
        return self.actuators.inverse(rgb)

    def _simulate(self, a: np.ndarray) -> np.ndarray:
        columns = {name: a[:, k] for k, name in enumerate(LEDS)}
        columns.update({k: np.full(len(a), v) for k, v in self.polarizers.items()})
        with warnings.catch_warnings():  # the hexagon's mask crosses 2-D vectors (NumPy ≥ 2)
            warnings.filterwarnings("ignore", "Arrays of 2-dimensional", DeprecationWarning)
            images = self.model.simulate_from_inputs(_frame(columns))
        return np.asarray(images, dtype=np.float64)

    def _probe(self) -> None:
        """The hexagon's pixels and the mean colour's affine response to each LED."""
        a = np.zeros((4, 3))
        a[1:] = 255.0 * np.eye(3)
        images = self.pixels(a).reshape(4, -1, 3)
        self._mask = torch.from_numpy((images[1:] > 0).any(axis=(0, 2)))
        colour = images[:, self._mask.numpy()].mean(axis=1)  # (4, 3)
        self._offset = torch.from_numpy(colour[0])
        self._unmix = torch.from_numpy(np.linalg.inv((colour[1:] - colour[0]).T / 255.0))


# -- the model -----------------------------------------------------------------------------
class ChamberLCM(GroundTruthLCM):
    """The light tunnel's latent causal model, with sensor noise relative to each span.

    As :class:`~pyrocrl.models.truth.GroundTruthLCM`, but ``observation_scale`` is the
    *relative* noise level ``ν``: ``x_d ~ N(g_d(z), (ν · span_d)²)``, with ``span_d`` the
    reading's range over the actuator box (``mixing.span``), or ``Delta(g(z))`` when
    ``ν = 0``. ``noise_scale`` holds the standard deviations ``ν · span``, shape ``(D,)``.
    """

    def __init__(self, scm: LinearSCM, mixing: Any, *, noise: float = 0.0, **kwargs: Any) -> None:
        if not np.isfinite(noise) or noise < 0:
            raise ValueError(f"noise must be a finite level ≥ 0, got {noise}")
        if noise > 0 and not hasattr(mixing, "span"):
            raise ValueError("noise is a level of the sensors: use it with mode='sensors'")
        super().__init__(scm, mixing, observation_scale=noise, **kwargs)
        self.noise_scale = (
            torch.from_numpy(noise * mixing.span) if noise > 0 else torch.zeros(self.dim_x)
        )

    def x_dist(self, z: torch.Tensor) -> dist.Distribution:
        """Observation likelihood ``p(x | z)``, event shape ``(D,)``, float64."""
        mean = self.mixing(z)
        if self.observation_scale == 0:
            return dist.Delta(mean, event_dim=1)
        return dist.Normal(mean, self.noise_scale).to_event(1)

    def actuators(self, z: torch.Tensor) -> torch.Tensor:
        """The settings of the tunnel for causal variables ``z``: ``(*, n) → (*, n)``."""
        return self.mixing.actuators(z)

    def actuator_lcm(self) -> GroundTruthLCM:
        """The same SCM observed through the actuator settings, ``x = a(z)``, noise-free:
        what a dataset of images is rendered from."""
        settings = {k: v for k, v in self.settings.items() if k != "image_shape"}
        return GroundTruthLCM(
            self.scm,
            self.mixing.actuators,
            intervention_probs=self.intervention_probs,
            settings=settings,
        )


def _ranges(names: Sequence[str], ranges: Mapping[str, Sequence[float]] | None) -> dict:
    chosen = {k: DEFAULT_RANGES[k] for k in names}
    for name, bounds in (ranges or {}).items():
        if name not in names:
            raise ValueError(
                f"ranges: {name!r} is not a causal variable here; choose from {names}"
            )
        low, high = (float(b) for b in bounds)
        limit = LIMITS[name]
        if not limit[0] <= low < high <= limit[1]:
            raise ValueError(
                f"ranges: {name} needs {limit[0]:g} ≤ low < high ≤ {limit[1]:g}, got "
                f"({low:g}, {high:g})"
            )
        chosen[name] = (low, high)
    return chosen


def _weights(n: int, graph: Any, weights: Any, graph_seed: int) -> np.ndarray:
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (n, n):
            raise ValueError(f"weights must have shape ({n}, {n}), got {w.shape}")
        if graph is not None and ((w != 0) != (np.asarray(graph) != 0)).any():
            raise ValueError("weights must be non-zero exactly on the edges of graph")
        return w
    rng = np.random.default_rng(graph_seed)
    if graph is None:  # image mode keeps the LED block of the sensors' weights
        return bimodal_weights(DEFAULT_GRAPH, rng)[:n, :n]
    adjacency = check_adjacency(graph)
    if adjacency.shape != (n, n):
        raise ValueError(f"graph must be a {n} × {n} adjacency matrix, got {adjacency.shape}")
    return bimodal_weights(adjacency, rng)


def chamber(
    graph_seed: int = 0,
    *,
    graph: Any = None,
    weights: Any = None,
    ranges: Mapping[str, Sequence[float]] | None = None,
    noise: float = 0.0,
    mode: str = "sensors",
    image_size: int = 64,
    sensor_parameters: Mapping[str, Any] | None = None,
    sensor_settings: Mapping[str, float] | None = None,
) -> ChamberLCM:
    """The light tunnel as a ground-truth latent causal model.

    ``mode="sensors"``: five causal variables :data:`ACTUATORS`, observed through the nine
    raw readings :data:`SENSORS` of ``lt.Deterministic``. ``mode="images"``: three, the
    LEDs, observed as ``image_size``² camera images of ``lt.ModelF1`` with the polarizers
    aligned. The SCM is :func:`standardized_scm` of ``weights``; actuators follow
    :class:`Actuators`. Interventions are uniform over ``{∅, z1, …, zn}``.

    :param int graph_seed: seeds the bimodal weights ``sign(a)(1 + 0.3b)`` on the graph.
    :param graph: ``(n, n)`` 0/1 adjacency (default :data:`DEFAULT_GRAPH`; its LED block in
        image mode).
    :param weights: ``(n, n)`` raw effects (before standardizing); overrides ``graph_seed``.
    :param ranges: ``{name: (low, high)}`` overriding :data:`DEFAULT_RANGES` (LEDs within
        0…255, angles within −180…180 degrees).
    :param float noise: relative sensor noise (sensors only); :data:`DEFAULT_NOISE` is the
        documented "with noise" level.
    :param sensor_parameters, sensor_settings: override :data:`SENSOR_PARAMETERS` and
        :data:`SENSOR_SETTINGS`.
    :raises ImportError: when ``causalchamber`` is missing, saying how to install it.
    """
    if mode not in ("sensors", "images"):
        raise ValueError(f"mode must be 'sensors' or 'images', got {mode!r}")
    names = ACTUATORS if mode == "sensors" else LEDS
    actuators = Actuators(names, _ranges(names, ranges))
    scm = standardized_scm(_weights(len(names), graph, weights, graph_seed))
    settings: dict[str, Any] = {
        "simulator": "chamber",
        "mode": mode,
        "n": len(names),
        "graph_seed": graph_seed,
        "variables": ",".join(names),
        "range_low": actuators.low.numpy(),
        "range_high": actuators.high.numpy(),
        "causalchamber_version": _version(),
    }
    if mode == "sensors":
        mixing: Any = ChamberSensors(actuators, sensor_parameters, sensor_settings)
        settings.update(
            features=",".join(SENSORS),
            sensor_model="causalchamber.simulators.lt.Deterministic",
            sensor_settings=",".join(f"{k}={v}" for k, v in mixing.settings.items()),
            noise=noise,
            sensor_span=mixing.span,
        )
    else:
        if sensor_parameters or sensor_settings:
            raise ValueError("sensor_parameters and sensor_settings are for mode='sensors'")
        if noise:
            raise ValueError("noise is a level of the sensors: image mode is noise-free")
        mixing = ChamberImages(actuators, image_size)
        settings.update(
            image_model="causalchamber.simulators.lt.ModelF1",
            image_size=mixing.image_size,
            image_shape=list(mixing.image_shape),
            polarizers=[mixing.polarizers["pol_1"], mixing.polarizers["pol_2"]],
        )
    return ChamberLCM(scm, mixing, noise=noise, settings=settings)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("causalchamber")
    except PackageNotFoundError:  # imported from a source tree
        return "unknown"
