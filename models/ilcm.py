"""The implicit latent causal model (ILCM) of Brehmer et al. (2022): the pair program,
written once for both backends (:class:`PairModel`), and its Pyro module (:class:`ILCM`)."""

__all__ = [
    "DEFAULT_OFFSET",
    "ILCM",
    "INTERVENTIONS",
    "PairModel",
    "intervention_mask",
    "pairing",
    "select",
    "switch",
]

from collections.abc import Sequence
from types import ModuleType
from typing import Any, ClassVar

import torch
from pyro.nn import PyroModule
from torch import nn

from pyrocrl import sites
from pyrocrl.backends import pyro as pyro_backend
from pyrocrl.features import FeatureScaling
from pyrocrl.interventions import num_targets, target_sets
from pyrocrl.nets import BernoulliHead, LaplaceHead, NormalHead
from pyrocrl.solution import AffineSolution, transforms_noise, warp

LIKELIHOODS = {"normal": NormalHead, "laplace": LaplaceHead, "bernoulli": BernoulliHead}
SCALED_LIKELIHOODS = ("normal", "laplace")
"""The built-in likelihoods of location-scale families: their models hold a feature
transform (:mod:`pyrocrl.features`)."""
INTERVENTIONS = ("perfect", "shift")
"""The kinds of intervention a pair program models."""
SHIFT_PRIOR_SCALE = 2.0
"""Default sd of the shift of a soft intervention, in units of the noise."""
DEFAULT_OFFSET = 1e-4
"""The offset ``ε`` of ``q(I | x, x~)`` outside training (see the guide)."""


class PairModel:
    """The pair program of a latent causal model, for any backend.

    Generative story of one pair (site names in quotes; ``*`` is the plate ``pair``)::

        e      ~ p(e) = N(0, I_n)                    # "noise"        (*, n)
        I      ~ p(I) = Categorical(π), I ∈ 0 … n    # "target"       (*,)   0 = none
        v      ~ p(v) = N(0, 1)                      # "value"        (*,)   the new z~_I
        e~     = e with e~_I = T_e(v)_I              # "noise_tilde"  (*, n)
        z, z~  = s(e), s(e~)                         # "z", "z_tilde" (*, n)
        x      ~ p(x | e),  x~ ~ p(x | e~)           # "x", "x_tilde" (*, D)

    With ``max_targets = k ≥ 2`` an intervention may hit a *set* of up to ``k`` variables:
    ``I`` indexes the target table of :mod:`pyrocrl.interventions` (0 = none, ``1 … n`` the
    single variables, then the larger sets), ``value`` has shape ``(*, n)`` — the new values
    of the intervened variables, the other components unused and unscored — and ``e~``
    solves ``s_i(e~) = v_i`` for every ``i ∈ I`` with the other noise components kept. As
    ``s_i(e~)`` depends on the other intervened components, ``e~`` is found by a fixed-point
    iteration ``e~_I ← T_e(v; e~)_I`` from ``e`` (:meth:`intervened_noise`): exact after
    ``k`` rounds when the solution function respects a causal order (each round settles one
    more generation of the intervened set, as for the true SCM and
    :class:`~pyrocrl.solution.GraphSolution`), converging otherwise as long as the members'
    couplings are weak. The density of ``v`` is that of ``N(0, I)`` over the intervened
    components. Under the flat intervention prior of early training, one round only.

    With ``intervention="shift"`` an intervention is soft: the intervened mechanism keeps
    its parents and its noise moves, ``e~_I = e_I + v`` with the shift ``v ~ N(0, τ²)``
    (``shift_scale`` ``τ``) in the site ``value``, so the pair's distribution does not
    involve the solution function: such pairs identify the noise and the targets, not the
    causal variables (``docs/results.md``). ``do(z={k: v})`` on such a model shifts the
    noise of ``z_k`` by ``v``.

    An observed row whose ``x_tilde`` is all NaN is an *unpaired* observation (one world,
    see :func:`pairing`): ``target``, ``value`` and ``x_tilde`` are masked out for it, so its
    contribution is the single-world marginal ``p(x) = ∫ p(e) p(x | e) de`` — the pair
    program with ``x~`` integrated out.

    ``s`` is the solution function: ``z = s(e)`` and ``T_e`` maps an intervention value to
    the noise that produces it, given the other components. The graph stays implicit in
    ``s``; the decoder reads noise, not causal variables. ``value`` only matters when
    ``I ≥ 1``; its log-density is masked out for ``I = 0``.

    The program is written against ``self.backend`` (:mod:`pyrocrl.backends`), so the Pyro
    module :class:`ILCM` and its NumPyro twin
    (:class:`~pyrocrl.models.ilcm_jax.NumPyroILCM`) run this very code. A subclass needs
    ``backend``, ``n``, ``dim_x``, ``likelihood`` (noise ``(*, n)`` ↦ a distribution over
    ``x`` with event shape ``(D,)``), ``solution`` (with ``shift_scale`` and a call
    ``e ↦ z``), ``intervention_probs`` ``(K,)`` over the target table (``K = n + 1`` for
    single targets), ``max_targets`` (default 1) and ``features`` (``None``, or the
    feature transform with ``loc`` and ``scale`` ``(D,)`` and a call ``x ↦ u``, see
    :mod:`pyrocrl.features`).
    """

    backend: ClassVar[ModuleType]
    max_targets: int = 1
    """The most variables one intervention may hit (``k``; see the generative story)."""
    solve_rounds: int = 1
    """Rounds of :meth:`intervened_noise` (at least ``max_targets``)."""
    intervention: str = "perfect"
    """``"perfect"`` (the intervened variables get new values) or ``"shift"`` (their noise
    moves by a shift, see the generative story)."""
    shift_scale: float = SHIFT_PRIOR_SCALE
    """The sd of the shift's prior under ``intervention="shift"``."""
    infers_interventions: ClassVar[bool] = True
    """Whether the model has an intervention posterior (so intervention accuracy, graph
    discovery and the intervention part of the posterior export apply). ``False`` for
    models of two independent views (the β-VAE baseline)."""

    def programs(self, guide: Any) -> tuple[Any, Any]:
        """``(model, guide)`` programs whose ELBO trains and scores this model: the pair
        programs here; a model of independent views answers with its independent ones."""
        return self.model, guide.guide

    def training_recipe(self, recipe: Any) -> Any:
        """The :class:`~pyrocrl.inference.recipes.Recipe` as this model is trained with it
        (unchanged here)."""
        return recipe

    # -- the swappable parts ---------------------------------------------------------------
    def noise_dist(self) -> Any:
        """Prior of the exogenous noise, event shape ``(n,)``."""
        return self.backend.dist.Normal(0.0, 1.0).expand([self.n]).to_event(1)

    def target_dist(self) -> Any:
        """Prior of the intervention target over the ``K`` rows of the target table
        (``0 … n`` for single targets)."""
        return self.backend.dist.Categorical(self.intervention_probs)

    def value_dist(
        self, shift: Any, scale: Any, intervention_prior: Any = True, log_slope: Any = None
    ) -> Any:
        """Intervention distribution of the new value ``v = z~_I``: ``N(0, 1)``.

        With ``intervention_prior=False`` the intervened *noise* ``e~_I`` gets an improper
        flat prior instead, so the density of ``v`` is the Jacobian of ``v ↦ e~_I``:
        ``scale_I``, over ``g'(e~_I)`` for a solution function that transforms its own
        noise (:func:`~pyrocrl.solution.warp`; then ``log_slope``, ``v ↦ log g'(e~_I)``, is
        passed, else not). Training recipes use this early on, before the solution
        function is worth fitting.

        :param shift, scale: ``T_e`` of the intervened component, each ``(*,)``.
        """
        del shift  # the density of v does not depend on it
        return self.backend.InterventionValue(scale, intervention_prior, log_slope)

    def x_dist(self, e: Any) -> Any:
        """Observation likelihood ``p(x | e)``, event shape ``(D,)``, in the units of the
        observations: the likelihood of the standardized features ``u`` (a location-scale
        family) mapped through ``x = loc + scale · u`` by :attr:`features`."""
        u_dist = self.likelihood(e)
        if self.features is None:
            return u_dist
        base, loc, scale = u_dist.base_dist, self.features.loc, self.features.scale
        # the parameters were checked where the likelihood made them; a non-finite value
        # is left to the bound, which names the site
        rescaled = type(base)(base.loc * scale + loc, base.scale * scale, validate_args=False)
        return rescaled.to_event(1)

    def standardize(self, x: Any) -> Any:
        """The features the networks see, ``u = (x − loc) / scale`` (:attr:`features`)."""
        return x if self.features is None else self.features(x)

    def pair_factors(self, size: int) -> None:
        """Extra log-density terms of each pair (``factor`` sites), called inside the pair
        plate at the end of :meth:`model`; none here. ``size`` is the plate size."""

    # -- the programs ----------------------------------------------------------------------
    def model(
        self,
        x: Any = None,
        x_tilde: Any = None,
        *,
        size: int | None = None,
        intervention_prior: Any = True,
        deterministic: bool = False,
        offset: Any = DEFAULT_OFFSET,
        posterior_power: Any = 1.0,
    ) -> dict[str, Any]:
        """The pair program. ``x, x_tilde``: ``(N, D)`` observations, or ``None`` to sample
        ``size`` pairs. ``intervention_prior`` switches the prior on the intervened value
        (see :meth:`value_dist`); ``deterministic``, ``offset`` and ``posterior_power`` are
        options of the guide, accepted for a shared signature.

        :returns: the value of every site as used downstream, keyed by site name.
        """
        del deterministic, offset, posterior_power
        b = self.backend
        size = sites.plate_size(size, x, x_tilde, dim_x=self.dim_x)
        x_tilde, paired = pairing(b, x, x_tilde)
        with b.plate(sites.PAIR_PLATE, size):
            noise = b.sample(sites.NOISE, self.noise_dist())
            with b.mask(mask=paired):
                target = b.sample(sites.TARGET, self.target_dist())
            shift, scale = self.solution.shift_scale(noise)
            onehot, intervened = intervention_mask(b, target, self.n, self.max_targets)
            if self.intervention == "shift":
                value, noise_tilde = self._shifted(noise, onehot, intervened & paired, shift)
                target = b.broadcast_to(target, b.broadcast_shapes(target.shape, shift.shape[:-1]))
            elif self.max_targets == 1:
                shift_i = select(b, shift, onehot, intervened, 0.0)
                scale_i = select(b, scale, onehot, intervened, 1.0)
                extra = {}
                if transforms_noise(self.solution):

                    def log_slope(v: Any) -> Any:  # log g'(e~_I) of the noise that v sets
                        slopes = warp(self.solution, (shift_i + scale_i * v)[..., None], True)[1]
                        return b.where(onehot, slopes, 0.0).sum(-1)

                    extra = {"log_slope": log_slope}
                with b.mask(mask=intervened & paired):
                    value_dist = self.value_dist(shift_i, scale_i, intervention_prior, **extra)
                    value = b.sample(sites.VALUE, value_dist)
                # an intervention by ``do`` may be a scalar: give it the batch shape
                value = b.broadcast_to(b.as_array(value, like=shift_i), shift_i.shape)
                target = b.broadcast_to(target, b.broadcast_shapes(target.shape, shift_i.shape))
                # (*, 1) → (*, n): each variable's own g⁻¹ (where selects the intervened one)
                new = warp(self.solution, (shift_i + scale_i * value)[..., None], True)[0]
                noise_tilde = b.where(onehot, new, noise)
            else:
                extra = {}
                if transforms_noise(self.solution):
                    extra = {
                        "log_slope": lambda v: warp(self.solution, shift + scale * v, True)[1]
                    }
                value_dist = self.value_dist(shift, scale, intervention_prior, **extra)
                with b.mask(mask=intervened & paired):
                    value = b.sample(sites.VALUE, value_dist.mask(onehot).to_event(1))
                value = b.broadcast_to(b.as_array(value, like=shift), shift.shape)
                target = b.broadcast_to(target, b.broadcast_shapes(target.shape, shift.shape[:-1]))
                noise_tilde = self.intervened_noise(
                    noise, onehot, value, (shift, scale), solve=intervention_prior
                )
            noise_tilde = b.deterministic(sites.NOISE_TILDE, noise_tilde, event_dim=1)
            z = (warp(self.solution, noise)[0] - shift) / scale
            z = b.deterministic(sites.Z, z, event_dim=1)
            z_tilde = b.deterministic(sites.Z_TILDE, self.solution(noise_tilde), event_dim=1)
            x = b.sample(sites.X, self.x_dist(noise), obs=x)
            with b.mask(mask=paired):
                x_tilde = b.sample(sites.X_TILDE, self.x_dist(noise_tilde), obs=x_tilde)
            self.pair_factors(size)
        values = (noise, target, value, noise_tilde, z, z_tilde, x, x_tilde)
        return dict(zip(sites.PAIR_SITES, values, strict=True))

    def shift_dist(self, like: Any) -> Any:
        """Prior of the shift of an intervened noise component (``intervention="shift"``):
        ``N(0, shift_scale²)``, with the batch shape of ``like``."""
        b = self.backend
        return b.dist.Normal(b.zeros_like(like), self.shift_scale)

    def _shifted(self, noise: Any, onehot: Any, scored: Any, like: Any) -> tuple[Any, Any]:
        """``(value, e~)`` of a soft intervention: the intervened noise components move by
        the shift ``v``, ``e~_I = e_I + v_I``; the mechanism and its parents stay."""
        b = self.backend
        if self.max_targets == 1:
            base = b.zeros_like(like[..., 0])
            with b.mask(mask=scored):
                value = b.sample(sites.VALUE, self.shift_dist(base))
            value = b.broadcast_to(b.as_array(value, like=base), base.shape)
            return value, b.where(onehot, noise + value[..., None], noise)
        with b.mask(mask=scored):
            value = b.sample(sites.VALUE, self.shift_dist(like).mask(onehot).to_event(1))
        value = b.broadcast_to(b.as_array(value, like=like), like.shape)
        return value, b.where(onehot, noise + value, noise)

    def intervened_noise(
        self, e: Any, onehot: Any, value: Any, start: Any = None, solve: Any = True
    ) -> Any:
        """``e~`` of an intervention that sets ``z~_i = v_i`` on the variables ``onehot``
        ``(*, n)`` marks: :attr:`solve_rounds` rounds of the fixed-point iteration
        ``e~_I ← shift_I(e~) + scale_I(e~) v_I`` from ``e`` (see the generative story), the
        other components kept.

        For a solution function that respects a causal order, ``max_targets`` rounds
        reach the fixed point exactly; a learned one does so only nearly, and passes
        through cycles on its way to the right order. There the iteration converges
        geometrically, and an unconverged ``e~`` would make the guide's values (read at
        the fixed point) decode to another observation than the one they explain — a
        barrier between orders that stalls training in a wrong one. The default,
        ``2·max_targets + 1`` rounds, removes it (see ``docs/results.md``).

        With ``solve=False`` (a bool, or a traced one) only the first round: the affine map
        read at ``e``, which the guide inverts exactly under the flat intervention prior
        (see :meth:`value_dist`), so that — as for single targets — the bound then does not
        depend on the solution function, whose intervened values mean nothing yet.

        :param e, value: ``(*, n)``; :param start: ``solution.shift_scale(e)``, if known.
        """
        b, k, solution = self.backend, self.max_targets, self.solution
        shift, scale = solution.shift_scale(e) if start is None else start
        first = e_tilde = b.where(onehot, warp(solution, shift + scale * value, True)[0], e)
        if solve is False:
            return first
        rounds = k - 1
        if self.solve_rounds > k:  # settle first, then k rounds that carry gradients
            e_tilde, rounds = self._settle(first, e, onehot, value, self.solve_rounds - k), k
        for _ in range(rounds):
            shift, scale = solution.shift_scale(e_tilde)
            e_tilde = b.where(onehot, warp(solution, shift + scale * value, True)[0], e)
        return switch(b, solve, e_tilde, first)

    def _settle(self, e_tilde: Any, e: Any, onehot: Any, value: Any, steps: int) -> Any:
        """``steps`` rounds of the iteration of :meth:`intervened_noise` without gradients,
        returning the iterate whose values ``G(e~)`` came closest to ``v`` (so an iteration
        that diverges — possible for strongly coupled members — does not overflow: the
        rounds that follow start where it was best, and no overflow reaches a gradient). From a
        settled start, the ``max_targets`` differentiable rounds give the fixed point and
        its gradients exactly when the solution function respects a causal order."""
        b, sg = self.backend, self.backend.stop_gradient
        e_tilde, e, value = sg(e_tilde), sg(e), sg(value)
        best, best_residual = e_tilde, None
        for _ in range(steps):
            shift, scale = (sg(a) for a in self.solution.shift_scale(e_tilde))
            warped = sg(warp(self.solution, e_tilde)[0])
            residual = b.where(onehot, abs((warped - shift) / scale - value), 0.0).sum(-1)
            if best_residual is None:
                best, best_residual = e_tilde, residual
            else:
                better = residual < best_residual  # False for NaN
                best = b.where(better[..., None], e_tilde, best)
                best_residual = b.where(better, residual, best_residual)
            step = b.where(onehot, sg(warp(self.solution, shift + scale * value, True)[0]), e)
            e_tilde = b.where(abs(step) < 1e4, step, best)  # False for NaN and ±∞
        return best

    def independent_model(self, x: Any = None, x_tilde: Any = None, *, size: int | None = None):
        """Both views with independent noise, ``e, e~ ~ N(0, I)``: a VAE on each view.

        Sites ``noise`` and ``noise_tilde`` are both latent here. Used to pretrain encoder
        and decoder before the causal structure is switched on. An unpaired row (see
        :func:`pairing`) has only its first view.
        """
        b = self.backend
        size = sites.plate_size(size, x, x_tilde, dim_x=self.dim_x)
        x_tilde, paired = pairing(b, x, x_tilde)
        with b.plate(sites.PAIR_PLATE, size):
            noise = b.sample(sites.NOISE, self.noise_dist())
            b.sample(sites.X, self.x_dist(noise), obs=x)
            with b.mask(mask=paired):
                noise_tilde = b.sample(sites.NOISE_TILDE, self.noise_dist())
                b.sample(sites.X_TILDE, self.x_dist(noise_tilde), obs=x_tilde)


class ILCM(PairModel, PyroModule):
    """Implicit latent causal model for weakly supervised pairs ``(x, x~)``, in Pyro.

    The program is :class:`PairModel`'s (see there for the generative story); this class
    holds its PyTorch networks. Every part can be swapped without touching inference code:
    pass another ``likelihood`` module (any ``nn.Module`` mapping noise ``(*, n)`` to a
    distribution over ``x`` with event shape ``(D,)``, e.g.
    :class:`~pyrocrl.nets.LaplaceHead`) or ``solution``, or subclass and override
    :meth:`noise_dist`, :meth:`target_dist` (e.g. a learned intervention prior) or
    :meth:`value_dist` (the intervention distribution).

    :param int dim_x: observation size ``D``.
    :param int n: number of causal variables.
    :param hidden: hidden layer sizes of the default decoder and solution networks.
    :param likelihood: decoder ``e ↦ p(x | e)``: ``"normal"`` (default, a heteroskedastic
        Gaussian MLP), ``"laplace"``, ``"bernoulli"``, or any module.
    :param solution: solution function: any module with ``n``, ``shift_scale(e)`` and a
        call ``e ↦ z`` (tutorial 13 writes one); default
        :class:`~pyrocrl.solution.AffineSolution`.
    :param intervention_probs: ``π``, shape ``(K,)``, over the target table; uniform over
        {none, z1 … zn} (over every set) by default.
    :param max_targets: the most variables one intervention hits (see
        :class:`PairModel`); 1 by default.
    :param solve_rounds: rounds of :meth:`~PairModel.intervened_noise` for targets that
        are sets (default ``2·max_targets + 1``).
    :param intervention: ``"perfect"`` (default) or ``"shift"`` (soft interventions that
        move the intervened noise, see :class:`PairModel`); :param shift_scale: the sd of
        the shift's prior.
    :param noise_transform: the built-in solution function's transform of each variable's
        own noise: ``"identity"`` (default, the mechanisms of Brehmer et al., 2022) or
        ``"spline"`` (a learned monotone spline, see
        :class:`~pyrocrl.solution.AffineSolution`).

    With the built-in Normal or Laplace likelihood, :attr:`features` is a
    :class:`~pyrocrl.features.FeatureScaling` (identity until fitted, e.g. by
    :meth:`fit_features`): the networks see standardized features, the model speaks in the
    observations' units. Otherwise it is ``None``.

    An untrained model is already a complete pair program, with the sites of
    :mod:`pyrocrl.sites`:

    >>> from pyro import poutine
    >>> model = ILCM(dim_x=5, n=3)
    >>> trace = poutine.trace(model.model).get_trace(size=8)
    >>> [name for name in trace.nodes if not name.startswith("_")]
    ['pair', 'noise', 'target', 'value', 'noise_tilde', 'z', 'z_tilde', 'x', 'x_tilde']
    >>> tuple(trace.nodes["x"]["value"].shape), tuple(trace.nodes["z"]["value"].shape)
    ((8, 5), (8, 3))

    Under ``do(z_2 = 0.5)`` every second world has ``z2 = 0.5``, whatever the networks:

    >>> from pyrocrl.inference.queries import do
    >>> with do(z={2: 0.5}):
    ...     pairs = model.model(size=8)
    >>> torch.allclose(pairs["z_tilde"][:, 1], torch.tensor(0.5))
    True
    """

    backend = pyro_backend

    def __init__(
        self,
        dim_x: int,
        n: int,
        *,
        hidden: Sequence[int] = (64, 64),
        likelihood: str | nn.Module = "normal",
        solution: nn.Module | None = None,
        intervention_probs: Sequence[float] | torch.Tensor | None = None,
        max_targets: int = 1,
        solve_rounds: int | None = None,
        intervention: str = "perfect",
        shift_scale: float = SHIFT_PRIOR_SCALE,
        noise_transform: str = "identity",
    ) -> None:
        super().__init__()
        if intervention not in INTERVENTIONS:
            raise ValueError(f"intervention must be one of {INTERVENTIONS}, got {intervention!r}")
        if not shift_scale > 0:
            raise ValueError(f"shift_scale must be positive, got {shift_scale}")
        self.intervention, self.shift_scale = intervention, float(shift_scale)
        if dim_x < 1 or n < 1:
            raise ValueError(f"need dim_x ≥ 1 and n ≥ 1, got dim_x={dim_x}, n={n}")
        self.dim_x, self.n = dim_x, n
        size = num_targets(n, max_targets)  # refuses max_targets outside 1 … n
        self.max_targets = int(max_targets)
        self.solve_rounds = default_rounds(max_targets) if solve_rounds is None else solve_rounds
        if self.solve_rounds < self.max_targets:
            raise ValueError(
                f"solve_rounds must be at least max_targets={max_targets}, got {solve_rounds}"
            )
        if isinstance(likelihood, str):
            if likelihood not in LIKELIHOODS:
                raise ValueError(
                    f"likelihood must be one of {sorted(LIKELIHOODS)} or a module, "
                    f"got {likelihood!r}"
                )
            self.likelihood = LIKELIHOODS[likelihood](n, dim_x, hidden)
        else:
            self.likelihood = likelihood
        built = solution is None
        if built:
            solution = AffineSolution(n, hidden, noise_transform=noise_transform)
        elif noise_transform != "identity":
            raise ValueError("noise_transform applies to the built-in solution function only")
        self.solution = solution
        if self.solution.n != n:
            raise ValueError(f"the solution function has {self.solution.n} variables, not {n}")
        probs = (
            torch.full((size,), 1.0 / size)
            if intervention_probs is None
            else torch.as_tensor(intervention_probs, dtype=torch.get_default_dtype())
        )
        if probs.shape != (size,) or (probs < 0).any() or abs(float(probs.sum()) - 1) > 1e-6:
            raise ValueError(
                f"intervention_probs must be {size} probabilities summing to 1 (one per "
                "target set, see pyrocrl.interventions)"
            )
        self.register_buffer("intervention_probs", probs)
        self.features = FeatureScaling(dim_x) if likelihood in SCALED_LIKELIHOODS else None
        self._register_load_state_dict_pre_hook(_identity_features, with_module=True)
        # enough to rebuild the model from a checkpoint, when its parts are the built-in ones
        self.config = {
            "dim_x": dim_x,
            "n": n,
            "hidden": list(hidden),
            "likelihood": likelihood if isinstance(likelihood, str) else None,
            "solution": "affine" if built else None,
        }
        if noise_transform != "identity":
            self.config["noise_transform"] = noise_transform
        if self.max_targets > 1:
            self.config["max_targets"] = self.max_targets
        if self.solve_rounds != default_rounds(max_targets):
            self.config["solve_rounds"] = self.solve_rounds
        if intervention != "perfect":
            self.config.update(intervention=intervention, shift_scale=self.shift_scale)

    def fit_features(self, x: Any) -> None:
        """Fit :attr:`features` to training observations ``(*, D)`` (pairs ``(N, 2, D)``:
        both worlds); nothing to fit without them.

        :raises DatasetError: on a constant feature (see
            :meth:`~pyrocrl.features.FeatureScaling.fit`).
        """
        if self.features is not None:
            self.features.fit(x)

    def forward(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        return self.model(*args, **kwargs)


def default_rounds(max_targets: int) -> int:
    """The default :attr:`PairModel.solve_rounds`: ``2·max_targets + 1`` for sets of
    variables (1 for single targets, whose value the first round solves exactly)."""
    return 1 if max_targets == 1 else 2 * max_targets + 1


def _identity_features(model: "ILCM", state: dict, prefix: str, *_: Any) -> None:
    """Checkpoints written before models held a feature transform were trained on the
    observations as they were: their transform is the identity."""
    if model.features is not None and prefix + "features.loc" not in state:
        state[prefix + "features.loc"] = torch.zeros_like(model.features.loc)
        state[prefix + "features.scale"] = torch.ones_like(model.features.scale)


def pairing(backend: ModuleType, x: Any, x_tilde: Any) -> tuple[Any, Any]:
    """``(x_tilde, paired)`` of observed rows ``(N, D)``: ``paired (N,)`` is False for an
    unpaired observation, a row of ``x_tilde`` that is all NaN, whose ``x_tilde`` is then
    replaced by its ``x`` (a stand-in that programs mask out, so no NaN reaches a network
    or a gradient). Without both views observed: ``(x_tilde, True)``."""
    if x is None or x_tilde is None:
        return x_tilde, True
    paired = ~backend.isnan(x_tilde).all(-1)
    return backend.where(paired[..., None], x_tilde, x), paired


def intervention_mask(
    backend: ModuleType, target: Any, n: int, max_targets: int = 1
) -> tuple[Any, Any]:
    """``(onehot, intervened)``: ``onehot (*, n)`` marks the intervened variables (all
    False for no intervention; one for ``max_targets = 1``, else the row ``target`` of the
    target table); ``intervened (*,)`` is ``target ≥ 1``."""
    if max_targets == 1:
        backend.check_targets(target, n)
        return target[..., None] == backend.arange(1, n + 1, like=target), target > 0
    table = target_sets(n, max_targets)
    backend.check_targets(target, len(table) - 1)
    return backend.as_array(table, like=target != 0)[target], target > 0


def switch(backend: ModuleType, flag: Any, on: Any, off: Any) -> Any:
    """``on`` where ``flag`` holds, else ``off``: a Python bool picks one, a (traced) bool
    array selects elementwise."""
    if isinstance(flag, bool):
        return on if flag else off
    return backend.where(flag, on, off)


def select(backend: ModuleType, values: Any, onehot: Any, intervened: Any, default: float):
    """The intervened component of ``values (*, n)``, or ``default`` where none is."""
    return backend.where(intervened, (values * onehot).sum(-1), default)
