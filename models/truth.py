"""Ground-truth latent causal models: known SCMs and mixings, written as Pyro programs.

These are the simulators behind pyrocrl's benchmarks. Every part is known, so interventions
(``pyro.poutine.do``) and counterfactuals (``pyro.condition`` or ``pyro.poutine.replay`` on
the ``noise`` site) have exact answers that learned models can be checked against.
"""

__all__ = ["INTERVENTIONS", "SHIFT_SCALE", "GroundTruthLCM", "scaling_toy", "toy2d"]

from typing import Any

import numpy as np
import pyro
import pyro.distributions as dist
import torch

from pyrocrl import sites
from pyrocrl.graphs import random_dag
from pyrocrl.interventions import num_targets, target_sets
from pyrocrl.mixing import CouplingMixing2D, Rotation, Sensors, random_rotation
from pyrocrl.scm import AdditiveNoiseSCM, LinearSCM, bimodal_weights

INTERVENTIONS = ("perfect", "shift")
"""The kinds of intervention a ground-truth model's pairs can have."""
SHIFT_SCALE = 2.0
"""Sd of the shift of a soft intervention, in units of the mechanism's noise sd."""


class GroundTruthLCM:
    """A latent causal model with a known SCM and a known mixing ``g``.

    **Pair program** (:meth:`model`), for each pair::

        e       ~ N(0, I_n)                       # "noise"
        I       ~ Categorical(π) over 0 … n       # "target", 0 = no intervention
        v       ~ N(0, 1)                         # "value", the new z~_I
        z       = s(e)                            # "z", solving the SCM
        e~, z~  = do(z_I = v) with the same e     # "noise_tilde", "z_tilde"
        x       ~ p(x | g(z)),  x~ ~ p(x | g(z~)) # "x", "x_tilde"

    **Single-world program** (:meth:`world`) has one deterministic site per mechanism,
    ``z1 … zn``, so that ``pyro.poutine.do(lcm.world, {"z2": v})`` cuts ``z2`` from its
    parents and ``condition``/``replay`` on ``noise`` gives counterfactual worlds.

    The observation likelihood is ``Delta(g(z))`` (noise-free, as in the scaling experiment)
    when ``observation_scale`` is 0, else ``Normal(g(z), observation_scale)``.

    With ``intervention="shift"`` the interventions of the pair program are soft instead:
    the intervened mechanism keeps its parents and is shifted,
    ``z~_I = f_I(z~_pa(I)) + σ_I (e_I + v)``, with the shift ``v ~ N(0, SHIFT_SCALE²)`` in
    units of the mechanism's noise sd (site ``value`` holds ``v``). So ``e~_I = e_I + v``:
    still only the intervened noise component changes, but it now depends on the old one.

    :param scm: the explicit SCM over ``n`` causal variables.
    :param mixing: invertible map ``g`` with ``__call__`` and ``inverse``, ``(*, n) → (*, D)``.
    :param intervention_probs: ``π``, shape ``(n + 1,)``; uniform over ``{∅, z1, …, zn}`` when
        ``None``.
    :param float observation_scale: standard deviation of Gaussian observation noise.
    :param intervention: ``"perfect"`` (default) or ``"shift"`` (soft).
    :param max_targets: the most variables one intervention hits. With ``k ≥ 2`` the site
        ``target`` indexes the target table of :mod:`pyrocrl.interventions` (sets of up to
        ``k`` variables, all hit at once), ``value`` has shape ``(*, n)`` (the new value,
        or the shift, of each variable; read where hit) and ``intervention_probs`` has one
        entry per set (default: uniform over the sets).
    :param settings: generator settings recorded in datasets (name, seeds, …).
    """

    def __init__(
        self,
        scm: AdditiveNoiseSCM,
        mixing: Any,
        *,
        intervention_probs: np.ndarray | None = None,
        observation_scale: float = 0.0,
        intervention: str = "perfect",
        settings: dict[str, Any] | None = None,
        max_targets: int = 1,
    ) -> None:
        self.scm = scm
        self.mixing = mixing
        self.n = scm.n
        self.dim_x = mixing.dim_x
        if mixing.n != self.n:
            raise ValueError(f"mixing takes {mixing.n} variables but the SCM has {self.n}")
        size = num_targets(self.n, max_targets)  # refuses max_targets outside 1 … n
        self.max_targets = int(max_targets)
        probs = (
            np.full(size, 1.0 / size)
            if intervention_probs is None
            else np.asarray(intervention_probs, dtype=np.float64)
        )
        if probs.shape != (size,) or (probs < 0).any() or not np.isclose(probs.sum(), 1):
            raise ValueError(
                f"intervention_probs must be {size} probabilities summing to 1 (one per "
                "target set, see pyrocrl.interventions)"
            )
        self.intervention_probs = probs
        if observation_scale < 0:
            raise ValueError(f"observation_scale must be ≥ 0, got {observation_scale}")
        self.observation_scale = float(observation_scale)
        if intervention not in INTERVENTIONS:
            raise ValueError(f"intervention must be one of {INTERVENTIONS}, got {intervention!r}")
        self.intervention = intervention
        self.settings = dict(settings or {})

    def with_max_targets(
        self, max_targets: int, intervention_probs: np.ndarray | None = None
    ) -> "GroundTruthLCM":
        """This model with interventions on sets of up to ``max_targets`` variables
        (``intervention_probs`` over the target table, uniform by default); recorded in
        ``settings`` (and so in datasets) when above 1.

        >>> lcm = scaling_toy(n=3, graph_seed=0).with_max_targets(2)
        >>> lcm.intervention_probs.shape, lcm.settings["max_targets"]
        ((7,), 2)
        """
        settings = {k: v for k, v in self.settings.items() if k != "max_targets"}
        if max_targets > 1:
            settings["max_targets"] = int(max_targets)
        return GroundTruthLCM(
            self.scm,
            self.mixing,
            intervention_probs=intervention_probs,
            observation_scale=self.observation_scale,
            intervention=self.intervention,
            settings=settings,
            max_targets=max_targets,
        )

    # -- distributions of each site -------------------------------------------------------
    def noise_dist(self) -> dist.Distribution:
        return dist.Normal(0.0, 1.0).expand([self.n]).to_event(1)

    def target_dist(self) -> dist.Distribution:
        return dist.Categorical(torch.as_tensor(self.intervention_probs, dtype=torch.float32))

    def value_dist(self) -> dist.Distribution:
        """The new value of the intervened variable, or its shift (``"shift"``); one per
        variable (event shape ``(n,)``) when a target is a set."""
        value = dist.Normal(0.0, SHIFT_SCALE if self.intervention == "shift" else 1.0)
        return value if self.max_targets == 1 else value.expand([self.n]).to_event(1)

    def x_dist(self, z: torch.Tensor) -> dist.Distribution:
        """Observation likelihood ``p(x | z)``, event shape ``(D,)``."""
        mean = self.mixing(z)
        if self.observation_scale == 0:
            return dist.Delta(mean, event_dim=1)
        return dist.Normal(mean, self.observation_scale).to_event(1)

    # -- programs -------------------------------------------------------------------------
    def model(
        self,
        x: torch.Tensor | None = None,
        x_tilde: torch.Tensor | None = None,
        *,
        size: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """Weakly supervised pairs. Shapes: ``x, x_tilde (N, D)``; returns a dict of every
        site's value as used downstream (interventions by ``do`` included)."""
        size = sites.plate_size(size, x, x_tilde, dim_x=self.dim_x)
        n = self.n
        with pyro.plate(sites.PAIR_PLATE, size):
            noise = pyro.sample(sites.NOISE, self.noise_dist())
            target = pyro.sample(sites.TARGET, self.target_dist())
            value = pyro.sample(sites.VALUE, self.value_dist())
            noise = torch.broadcast_to(noise, (size, n))
            target = torch.broadcast_to(torch.as_tensor(target), (size,))
            value_shape = (size,) if self.max_targets == 1 else (size, n)
            value = torch.broadcast_to(torch.as_tensor(value, dtype=noise.dtype), value_shape)
            z = pyro.deterministic(sites.Z, self.scm.solve(noise), event_dim=1)
            if self.max_targets == 1:
                apply = self.scm.shift if self.intervention == "shift" else self.scm.intervene
                noise_tilde, z_tilde = apply(noise, target, value)
            else:
                hit = torch.as_tensor(target_sets(n, self.max_targets))[target]
                apply = (
                    self.scm.shift_set if self.intervention == "shift" else self.scm.intervene_set
                )
                noise_tilde, z_tilde = apply(noise, hit, value)
            noise_tilde = pyro.deterministic(sites.NOISE_TILDE, noise_tilde, event_dim=1)
            z_tilde = pyro.deterministic(sites.Z_TILDE, z_tilde, event_dim=1)
            x = pyro.sample(sites.X, self.x_dist(z), obs=x)
            x_tilde = pyro.sample(sites.X_TILDE, self.x_dist(z_tilde), obs=x_tilde)
        values = (noise, target, value, noise_tilde, z, z_tilde, x, x_tilde)
        return dict(zip(sites.PAIR_SITES, values, strict=True))

    def world(
        self, x: torch.Tensor | None = None, *, size: int | None = None
    ) -> dict[str, torch.Tensor]:
        """One world, with a deterministic site ``z1 … zn`` per mechanism (plate ``sample``).

        Shapes: ``x (N, D)``; returns ``{"noise": (N, n), "z": (N, n), "x": (N, D)}``.
        """
        size = sites.plate_size(size, x, dim_x=self.dim_x)
        with pyro.plate("sample", size):
            noise = pyro.sample(sites.NOISE, self.noise_dist())
            noise = torch.broadcast_to(noise, (size, self.n))
            z = noise.new_zeros(size, self.n)
            for k in self.scm.order:
                z_k = self.scm.mechanism(k, z, noise[..., k])
                z_k = pyro.deterministic(f"z{k + 1}", z_k, event_dim=0)
                z[..., k] = torch.broadcast_to(torch.as_tensor(z_k, dtype=z.dtype), (size,))
            z = pyro.deterministic(sites.Z, z, event_dim=1)
            x = pyro.sample(sites.X, self.x_dist(z), obs=x)
        return {sites.NOISE: noise, sites.Z: z, sites.X: x}

    # -- exact inversion ------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Exact abduction of the noise from noise-free observations: ``e = s⁻¹(g⁻¹(x))``.

        Shapes: ``(*, D) → (*, n)``.
        """
        return self.scm.abduct(self.mixing.inverse(x))

    def ground_truth(self) -> dict[str, np.ndarray]:
        """Graph-level truth: ``adjacency`` and, for linear SCMs and mixings, ``weights`` and
        ``mixing`` matrices."""
        truth = {"adjacency": self.scm.adjacency}
        if isinstance(self.scm, LinearSCM):
            truth["weights"] = self.scm.weights
        if isinstance(self.mixing, Rotation):
            truth["mixing"] = self.mixing.matrix
        return truth


def scaling_toy(
    n: int,
    graph_seed: int,
    *,
    edge_probability: float = 0.5,
    sensors: int | None = None,
    sensor_noise: float = 0.0,
    intervention: str = "perfect",
) -> GroundTruthLCM:
    """The scaling experiment of Brehmer et al. (2022): a linear SCM seen through a rotation.

    From one NumPy generator seeded with ``graph_seed``, in this order: a random DAG over the
    fixed order ``z1 < … < zn`` (each forward edge with ``edge_probability``), bimodal weights
    ``w = sign(a)(1 + 0.3b)`` and a rotation ``R = exp(O) ∈ SO(n)``. Mechanisms are
    ``z_j = e_j + Σ_i w_ij z_i``; observations ``x = R z`` (``D = n``), noise-free.
    Interventions are uniform over ``{∅, z1, …, zn}`` and set ``z~_k ~ N(0, 1)``.

    With ``sensors=D`` the same system is watched instead by ``D ≥ n`` saturating sensors
    (:class:`~pyrocrl.mixing.Sensors`, ``x_k = tanh(a_k · z + b_k)`` with ``a_k ~ N(0, I/n)``
    and ``b_k ~ N(0, 1/4)``, drawn after the rotation from the same generator, so graph and
    weights do not change), with Gaussian reading noise of sd ``sensor_noise``: data whose
    number of causal variables is not the number of features. With
    ``intervention="shift"`` the interventions are soft (see :class:`GroundTruthLCM`).

    >>> lcm = scaling_toy(n=4, graph_seed=302)
    >>> lcm.scm.adjacency  # row = cause, column = effect
    array([[0, 1, 1, 1],
           [0, 0, 1, 0],
           [0, 0, 0, 1],
           [0, 0, 0, 0]], dtype=int8)
    >>> R = lcm.mixing.matrix  # a rotation: x = R z keeps lengths
    >>> bool(np.allclose(R @ R.T, np.eye(4)))
    True
    >>> pairs = lcm.model(size=10)  # the pair program
    >>> tuple(pairs["x"].shape), tuple(pairs["target"].shape)
    ((10, 4), (10,))
    >>> torch.allclose(lcm.encode(pairs["x"]), pairs["noise"], atol=1e-5)  # exact inversion
    True
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    rng = np.random.default_rng(graph_seed)
    adjacency = random_dag(n, edge_probability, rng)
    weights = bimodal_weights(adjacency, rng)
    mixing = Rotation(random_rotation(n, rng))
    settings = {
        "simulator": "scaling",
        "n": n,
        "graph_seed": graph_seed,
        "edge_probability": edge_probability,
    }
    if sensors is None:
        if sensor_noise:
            raise ValueError("sensor_noise is the noise of the sensors: give sensors=D too")
    elif sensors < n:
        raise ValueError(f"{n} causal variables need at least {n} sensors, got {sensors}")
    else:
        directions = rng.normal(size=(sensors, n)) / np.sqrt(n)
        mixing = Sensors(directions, 0.5 * rng.normal(size=sensors))
        settings.update(simulator="scaling-sensors", sensors=sensors, sensor_noise=sensor_noise)
    if intervention != "perfect":
        settings.update(intervention=intervention)
    return GroundTruthLCM(
        LinearSCM(weights),
        mixing,
        observation_scale=sensor_noise,
        intervention=intervention,
        settings=settings,
    )


def toy2d(
    *, amplitude: float = 1.5, slope: float = 2.0, noise_scale: float = 0.5
) -> GroundTruthLCM:
    """A two-variable toy ``z1 → z2`` with a nonlinear mechanism and nonlinear mixing.

    ``z1 = e1``, ``z2 = amplitude·tanh(slope·z1) + noise_scale·e2``, and
    ``x = CouplingMixing2D()(z)`` (rotation by 45°, a parabolic bend, a tanh shear). It has no
    random parameters, so it needs no graph seed; small enough to plot every learned map.

    The single-world program has a site per mechanism, so Pyro's own ``do`` cuts ``z1`` from
    its noise and ``z2`` follows the mechanism:

    >>> from pyro import poutine
    >>> lcm = toy2d()
    >>> world = poutine.do(lcm.world, data={"z1": torch.tensor(1.0)})(size=5)
    >>> world["z"][:, 0].tolist()
    [1.0, 1.0, 1.0, 1.0, 1.0]
    >>> expected = 1.5 * torch.tanh(torch.tensor(2.0)) + 0.5 * world["noise"][:, 1]
    >>> torch.allclose(world["z"][:, 1], expected)
    True
    """
    locs = [None, lambda z_pa: amplitude * torch.tanh(slope * z_pa[..., 0])]
    scm = AdditiveNoiseSCM(np.array([[0, 1], [0, 0]]), locs, noise_scale=[1.0, noise_scale])
    mixing = CouplingMixing2D()
    settings = {
        "simulator": "toy2d",
        "n": 2,
        "amplitude": amplitude,
        "slope": slope,
        "noise_scale": noise_scale,
        "mixing_angle": mixing.angle,
        "mixing_bend": mixing.bend,
        "mixing_shear": mixing.shear,
    }
    return GroundTruthLCM(scm, mixing, settings=settings)
