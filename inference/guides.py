"""Amortized guides: the encoder of noise and intervention targets for pair programs,
written once for both backends (:class:`PairGuide`), and its Pyro module
(:class:`ILCMGuide`)."""

__all__ = [
    "Encoding",
    "HeuristicInterventionEncoder",
    "ILCMGuide",
    "MLPInterventionEncoder",
    "PairGuide",
]

from collections.abc import Sequence
from types import ModuleType
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
from pyro.nn import PyroModule
from torch import nn

from pyrocrl import sites
from pyrocrl.backends import pyro as pyro_backend
from pyrocrl.features import nonlinear_features
from pyrocrl.interventions import num_targets, target_sets
from pyrocrl.models.ilcm import (
    DEFAULT_OFFSET,
    ILCM,
    intervention_mask,
    pairing,
    select,
    switch,
)
from pyrocrl.nets import MLP, GaussianEncoder
from pyrocrl.solution import transforms_noise, warp


class HeuristicInterventionEncoder(nn.Module):
    """``q(I | x, x~)`` from the change of the noise encodings, with three parameters.

    With ``Δ = μ(x~) − μ(x)``: ``logit(none) = 0`` and ``logit(k) = α + β|Δ_k| + γΔ_k²``
    (initialized ``α = −3, β = γ = 15``). With ``max_targets ≥ 2`` a set scores the sum
    of its members' logits, so ``q`` is a product of independent "changed" indicators
    conditioned on at most ``max_targets`` of them.

    :returns: probabilities ``(*, K)`` over the target table (``K = n + 1`` for single
        targets).
    """

    def __init__(
        self,
        n: int,
        init: tuple[float, float, float] = (-3.0, 15.0, 15.0),
        max_targets: int = 1,
    ) -> None:
        super().__init__()
        self.n, self.max_targets = n, max_targets
        self.alpha = nn.Parameter(torch.tensor(float(init[0])))
        self.beta = nn.Parameter(torch.tensor(float(init[1])))
        self.gamma = nn.Parameter(torch.tensor(float(init[2])))

    def forward(self, loc: torch.Tensor, loc_tilde: torch.Tensor) -> torch.Tensor:
        delta = loc_tilde - loc
        logits = self.alpha + self.beta * delta.abs() + self.gamma * delta**2
        if self.max_targets > 1:
            table = torch.as_tensor(target_sets(self.n, self.max_targets), dtype=logits.dtype)
            return (logits @ table.T).softmax(-1)
        logits = torch.cat([torch.zeros_like(logits[..., :1]), logits], dim=-1)
        return logits.softmax(-1)


class MLPInterventionEncoder(nn.Module):
    """``q(I | x, x~)`` from an MLP on ``[μ(x), μ(x~) − μ(x)]``.

    :returns: probabilities ``(*, K)`` over the target table.
    """

    def __init__(self, n: int, hidden: Sequence[int] = (64, 64), max_targets: int = 1):
        super().__init__()
        self.net = MLP(2 * n, num_targets(n, max_targets), hidden)

    def forward(self, loc: torch.Tensor, loc_tilde: torch.Tensor) -> torch.Tensor:
        logits = self.net(torch.cat([loc, loc_tilde - loc], dim=-1))
        return logits.softmax(-1)


INTERVENTION_ENCODERS = {"heuristic": HeuristicInterventionEncoder, "mlp": MLPInterventionEncoder}


class Encoding(NamedTuple):
    """What a guide returns: the encodings of both views, each ``(N, n)``, and
    ``q(I | x, x~)`` ``(N, K)`` over the target table (``None`` for the independent
    guide)."""

    loc: Any
    scale: Any
    loc_tilde: Any
    scale_tilde: Any
    probs: Any = None


class PairGuide:
    """The amortized guide of a pair program, for any backend.

    One Gaussian encoder ``q(e | x) = N(μ(x), σ(x)²)`` serves both views. The target site
    is enumerated in parallel (``infer={"enumerate": "parallel"}``), so an ELBO can sum
    over all ``K`` hypotheses exactly (``K = n + 1`` single targets, or the sets of the
    model's target table, :mod:`pyrocrl.interventions`). Given a hypothesis ``I``, the two
    views must share every noise component but ``e_I``: for ``j ≠ I`` the guide mixes the two
    posteriors, ``N(λμ_j + (1−λ)μ~_j, (λσ_j + (1−λ)σ~_j)²)`` with ``λ ~ U(0, 1)`` drawn per
    hypothesis and component, and both worlds use the same sample. ``λ`` is not a latent
    site: each ``λ`` defines a valid guide, so averaging over it keeps the bound. The new
    noise ``e~_I ~ N(μ~_I, σ~_I²)`` is passed through the model's solution function to the
    site ``value`` (an affine map, so still Gaussian). A hypothesis that is a set of
    variables draws each member's new noise so and maps the set through the solution
    function read at the new noise (:meth:`_values`).

    ``q(I | x, x~)`` is the intervention encoder's output ``q`` floored and flattened,
    ``q ← (q + ε) / (1 + Kε)`` (``offset`` ``ε``), then ``q ← q^p / Σ q^p``
    (``posterior_power`` ``p``); any ``q`` gives a valid bound, and training recipes start flat and
    with a large offset so that every hypothesis shapes the encoder before the posterior
    sharpens. Both are arguments of the programs (the recipe schedules them); the defaults
    are the values outside training.

    An unpaired observation (``x_tilde`` all NaN, :func:`~pyrocrl.models.ilcm.pairing`) is
    encoded as the pair ``(x, x)``: every hypothesis then gives ``q(e | x)``, and the
    target and value sites are masked out as in the model, so its bound is the
    single-world ELBO.

    With ``deterministic=True`` only the most probable hypothesis is kept (a ``Delta`` at
    the argmax whose weight carries a straight-through gradient to ``q(I | x, x~)``).

    A subclass needs ``backend``, ``n``, ``dim_x``, ``tie``, ``encoder`` (``x ↦ (μ, σ)``),
    ``intervention_encoder`` (``(μ(x), μ(x~)) ↦`` probabilities ``(*, K)``) and
    ``model`` (the model whose solution function it reads).
    """

    backend: ClassVar[ModuleType]

    def noise_posterior(self, x: Any) -> tuple[Any, Any]:
        """``(μ(x), σ(x))`` of ``q(e | x)``, each ``(*, n)``, for observations ``(*, D)`` in
        their own units (standardized by the model's feature transform) and of any float
        dtype (read in the encoder's)."""
        x = self.backend.as_array(x, self.encoder.input_mean)
        return self.encoder(self.model.standardize(x))

    def encode(self, x: Any, x_tilde: Any) -> tuple[Any, Any, Any, Any]:
        """``(μ(x), σ(x), μ(x~), σ(x~))``, each ``(N, n)``, in one encoder pass
        (:meth:`noise_posterior`)."""
        b, like = self.backend, self.encoder.input_mean
        loc, scale = self.noise_posterior(
            b.concat([b.as_array(x, like), b.as_array(x_tilde, like)])
        )
        size = x.shape[0]
        return loc[:size], scale[:size], loc[size:], scale[size:]

    def target_probs(
        self, loc: Any, loc_tilde: Any, offset: Any = DEFAULT_OFFSET, posterior_power: Any = 1.0
    ) -> Any:
        """``q(I | x, x~)`` from the encodings, ``(N, K)``."""
        probs = self.intervention_encoder(loc, loc_tilde)
        probs = (probs + offset) / (1 + probs.shape[-1] * offset)
        if not (isinstance(posterior_power, int | float) and posterior_power == 1):
            probs = probs**posterior_power
            probs = probs / probs.sum(-1)[..., None]
        return probs

    def intervention_probs(self, x: Any, x_tilde: Any) -> Any:
        """``q(I | x, x~)`` of pairs ``(N, D)``, shape ``(N, K)`` (``K = n + 1`` for single
        targets)."""
        loc, _, loc_tilde, _ = self.encode(x, x_tilde)
        return self.target_probs(loc, loc_tilde)

    def guide(
        self,
        x: Any = None,
        x_tilde: Any = None,
        *,
        size: int | None = None,
        intervention_prior: Any = True,
        deterministic: bool = False,
        offset: Any = DEFAULT_OFFSET,
        posterior_power: Any = 1.0,
    ) -> Encoding:
        """Sites ``target``, ``noise`` and ``value`` given observed pairs ``(N, D)``.

        ``size`` is a model option, accepted for a shared signature; ``intervention_prior``
        matters only for targets that are sets (:meth:`_values`). Returns the
        :class:`Encoding` of the pairs, for regularizers and diagnostics.
        """
        b = self.backend
        if x is None or x_tilde is None:
            raise ValueError("the guide needs observed pairs x and x_tilde")
        size = sites.plate_size(size, x, x_tilde, dim_x=self.dim_x)
        x_tilde, paired = pairing(b, x, x_tilde)
        loc, scale, loc_tilde, scale_tilde = self.encode(x, x_tilde)
        probs = self.target_probs(loc, loc_tilde, offset, posterior_power)
        with b.plate(sites.PAIR_PLATE, size):
            with b.mask(mask=paired):
                if deterministic:
                    best = b.argmax(probs, -1)
                    weight = b.take_along(probs, best)
                    straight_through = 1.0 + weight - b.stop_gradient(weight)
                    target = b.sample(
                        sites.TARGET, b.dist.Delta(best, log_density=b.log(straight_through))
                    )
                else:
                    target = b.sample(
                        sites.TARGET, b.dist.Categorical(probs), infer={"enumerate": "parallel"}
                    )
            k = self.model.max_targets
            onehot, intervened = intervention_mask(b, target, self.n, k)
            shape = b.broadcast_shapes(onehot.shape, loc.shape)
            lam = b.uniform(shape, like=loc) if self.tie == "random" else b.full(shape, 0.5, loc)
            noise_loc = b.where(onehot, loc, lam * loc + (1 - lam) * loc_tilde)
            noise_scale = b.where(onehot, scale, lam * scale + (1 - lam) * scale_tilde)
            noise = b.sample(sites.NOISE, b.dist.Normal(noise_loc, noise_scale).to_event(1))
            if self.model.intervention == "shift":
                self._shifts(
                    noise, onehot, intervened, intervened & paired, loc_tilde, scale_tilde
                )
                return Encoding(loc, scale, loc_tilde, scale_tilde, probs)
            if k > 1:
                scored = intervened & paired
                self._values(noise, onehot, scored, loc_tilde, scale_tilde, intervention_prior)
                return Encoding(loc, scale, loc_tilde, scale_tilde, probs)
            # e~_I ~ N(μ~_I, σ~_I²), mapped to v = (g(e~_I) − shift_I) / scale_I
            solution = self.model.solution
            shift, sol_scale = solution.shift_scale(noise)
            shift_i = select(b, shift, onehot, intervened, 0.0)
            scale_i = select(b, sol_scale, onehot, intervened, 1.0)
            new_loc = select(b, loc_tilde, onehot, intervened, 0.0)
            new_scale = select(b, scale_tilde, onehot, intervened, 1.0)
            if not transforms_noise(solution):  # g = id: v is Gaussian
                value = b.dist.Normal((new_loc - shift_i) / scale_i, new_scale / scale_i)
            else:
                value = self._warped_value(new_loc, new_scale, shift_i, scale_i, onehot)
            with b.mask(mask=intervened & paired):
                b.sample(sites.VALUE, value)
        return Encoding(loc, scale, loc_tilde, scale_tilde, probs)

    def _warped_value(
        self, new_loc: Any, new_scale: Any, shift_i: Any, scale_i: Any, onehot: Any
    ) -> Any:
        """``q(v)`` of one intervened variable whose solution function transforms its own
        noise (:func:`~pyrocrl.solution.warp`): the new noise ``e~_I ~ N(μ~_I, σ~_I²)`` is
        drawn and mapped to ``v = (g(e~_I) − shift_I) / scale_I``, a ``Delta`` at ``v`` with
        the density of the change of variables, ``q(e~_I) · scale_I / g'(e~_I)``."""
        b = self.backend
        new = new_loc + new_scale * b.normal(new_loc.shape, like=new_loc)
        warped, log_slope = warp(self.model.solution, new[..., None])  # (*, n): every g_k
        warped_i = b.where(onehot, warped, 0.0).sum(-1)
        log_slope_i = b.where(onehot, log_slope, 0.0).sum(-1)
        log_q = b.dist.Normal(new_loc, new_scale).log_prob(new) - log_slope_i + b.log(scale_i)
        return b.dist.Delta((warped_i - shift_i) / scale_i, log_density=log_q)

    def _shifts(
        self,
        noise: Any,
        onehot: Any,
        intervened: Any,
        scored: Any,
        loc_tilde: Any,
        scale_tilde: Any,
    ) -> None:
        """The site ``value`` of a soft intervention: the shift ``v = e~_I − e_I`` with the
        new noise ``e~_I ~ N(μ~_I, σ~_I²)``, so ``q(v) = N(μ~_I − e_I, σ~_I²)``."""
        b = self.backend
        if self.model.max_targets == 1:
            new_loc = select(b, loc_tilde, onehot, intervened, 0.0)
            old = select(b, noise, onehot, intervened, 0.0)
            new_scale = select(b, scale_tilde, onehot, intervened, 1.0)
            with b.mask(mask=scored):
                b.sample(sites.VALUE, b.dist.Normal(new_loc - old, new_scale))
            return
        shift = b.dist.Normal(loc_tilde - noise, scale_tilde).mask(onehot).to_event(1)
        with b.mask(mask=scored):
            b.sample(sites.VALUE, shift)

    def _values(
        self,
        noise: Any,
        onehot: Any,
        scored: Any,
        loc_tilde: Any,
        scale_tilde: Any,
        intervention_prior: Any,
    ) -> None:
        """The site ``value`` ``(*, n)`` of a set of intervened variables ``I`` (``onehot``).

        The members' new noise is drawn, ``e~_i ~ N(μ~_i, σ~_i²)``, and mapped to their
        values ``v = G(e~)``, ``v_i = (e~_i − shift_i(e~)) / scale_i(e~)``: the values that
        the model's :meth:`~pyrocrl.models.ilcm.PairModel.intervened_noise` maps back to
        this ``e~``. The site is a ``Delta`` at ``v`` whose density is that of the change
        of variables, ``q(e~_I) / |det ∂G/∂e~_I|``, with

        ``det ∂G/∂e~_I = det(I − A_I) / Π_{i ∈ I} scale_i``,
        ``A_ij = ∂shift_i/∂e~_j + v_i ∂scale_i/∂e~_j`` (``i, j ∈ I``),

        ``A`` by forward-mode differentiation of the solution function (:meth:`_coupling`).
        For a solution function that respects a causal order ``A_I`` is triangular with a
        zero diagonal and ``det(I − A_I) = 1``; otherwise the term keeps the bound a bound
        (without it a cycle between two members, ``A_ij A_ji > 0``, would be rewarded).

        Under the flat intervention prior both maps are read at ``e`` instead, the affine
        map that the model then inverts in one round (``A = 0``), so the bound does not
        depend on the solution function.
        """
        b, solution = self.backend, self.model.solution
        shape = b.broadcast_shapes(onehot.shape, loc_tilde.shape)
        new = loc_tilde + scale_tilde * b.normal(shape, like=loc_tilde)
        e_tilde = b.where(onehot, new, noise)
        point = switch(b, intervention_prior, e_tilde, noise)
        shift, sol_scale = solution.shift_scale(point)
        warped, log_slope = warp(solution, e_tilde)
        value = b.where(onehot, (warped - shift) / sol_scale, 0.0)
        log_q = b.dist.Normal(loc_tilde, scale_tilde).log_prob(new) + b.log(sol_scale)
        log_q = b.where(onehot, log_q - log_slope, 0.0).sum(-1)
        if intervention_prior is not False:  # the map read at e has A = 0
            coupling = self._coupling(point, onehot, value, b.exp(log_slope))
            log_q = log_q - switch(b, intervention_prior, coupling, 0.0)
        with b.mask(mask=scored):
            b.sample(sites.VALUE, b.dist.Delta(value, log_density=log_q, event_dim=1))

    def _coupling(self, point: Any, onehot: Any, value: Any, slope: Any = 1.0) -> Any:
        """``log |det(I − A_I)|`` of :meth:`_values`, ``(*,)``: one forward-mode
        derivative of the solution function per variable. With a transform ``g`` of the own
        noise (slopes ``g'(e~)``, ``(*, n)``), ``∂v_i/∂e~_j = (g_i' δ_ij − A_ij) / scale_i``,
        so ``A_ij`` is divided by ``g_i'`` (the ``Π g_i'`` left over is in ``log_q``)."""
        b, n = self.backend, self.n
        columns = []
        for j in range(n):
            direction = b.broadcast_to(b.as_array(np.eye(n)[j], like=point), point.shape)
            _, (d_shift, d_scale) = b.jvp(self.model.solution.shift_scale, point, direction)
            columns.append(((d_shift + value * d_scale) / slope)[..., None])
        coupling = b.concat(columns, axis=-1)  # [..., i, j]: A_ij
        both = onehot[..., :, None] & onehot[..., None, :]
        identity = b.as_array(np.eye(n), like=point)
        matrix = identity - b.where(both, coupling, 0.0)
        return b.log(b.maximum(abs(b.det(matrix)), 1e-30))

    def independent_guide(
        self, x: Any = None, x_tilde: Any = None, *, size: int | None = None
    ) -> Encoding:
        """Guide of the model's ``independent_model``: each view encoded on its own."""
        b = self.backend
        if x is None or x_tilde is None:
            raise ValueError("the guide needs observed pairs x and x_tilde")
        size = sites.plate_size(size, x, x_tilde, dim_x=self.dim_x)
        x_tilde, paired = pairing(b, x, x_tilde)
        loc, scale, loc_tilde, scale_tilde = self.encode(x, x_tilde)
        with b.plate(sites.PAIR_PLATE, size):
            b.sample(sites.NOISE, b.dist.Normal(loc, scale).to_event(1))
            with b.mask(mask=paired):
                b.sample(sites.NOISE_TILDE, b.dist.Normal(loc_tilde, scale_tilde).to_event(1))
        return Encoding(loc, scale, loc_tilde, scale_tilde)


class ILCMGuide(PairGuide, PyroModule):
    """Amortized guide of :class:`~pyrocrl.models.ilcm.ILCM`, in Pyro.

    The program is :class:`PairGuide`'s (see there); this class holds its PyTorch
    networks. The guide reads the model's solution function; it does not own it (its state
    dict holds the encoders only).

    :param model: the ILCM this guide serves.
    :param hidden: hidden layer sizes of the noise encoder.
    :param intervention_encoder: ``"heuristic"`` (3 parameters) or ``"mlp"``, or a module
        mapping ``(μ(x), μ(x~))`` to probabilities ``(*, K)`` over the model's target table
        (``K = n + 1`` for single targets).
    :param str tie: ``"random"`` (``λ ~ U(0, 1)``) or ``"mean"`` (``λ = ½``).
    """

    backend = pyro_backend

    def __init__(
        self,
        model: ILCM,
        *,
        hidden: Sequence[int] = (64, 64),
        intervention_encoder: str | nn.Module = "heuristic",
        init_std: float = 0.01,
        min_std: float = 1e-4,
        tie: str = "random",
    ) -> None:
        super().__init__()
        object.__setattr__(self, "_model", model)  # a reference, not a submodule
        self.n, self.dim_x = model.n, model.dim_x
        self.encoder = GaussianEncoder(model.dim_x, model.n, hidden, init_std, min_std)
        encoder_name = intervention_encoder if isinstance(intervention_encoder, str) else None
        if isinstance(intervention_encoder, str):
            if intervention_encoder not in INTERVENTION_ENCODERS:
                raise ValueError(
                    f"intervention_encoder must be one of {sorted(INTERVENTION_ENCODERS)} or "
                    f"a module, got {intervention_encoder!r}"
                )
            kind = INTERVENTION_ENCODERS[intervention_encoder]
            intervention_encoder = kind(model.n, max_targets=model.max_targets)
        self.intervention_encoder = intervention_encoder
        if tie not in ("random", "mean"):
            raise ValueError(f"tie must be 'random' or 'mean', got {tie!r}")
        self.tie = tie
        self._register_load_state_dict_pre_hook(_drop_schedule_buffers)
        self.config = {
            "hidden": list(hidden),
            "intervention_encoder": encoder_name,
            "init_std": init_std,
            "min_std": min_std,
            "tie": tie,
        }

    @property
    def model(self) -> ILCM:
        return self._model

    @torch.no_grad()
    def precondition(
        self, x: torch.Tensor, x_tilde: torch.Tensor, ridge: float = 1e-6, screen: bool = True
    ) -> list[int]:
        """Start the encoder from the linear solution of the pair statistics.

        Solves ``Cov(x~ − x) v = λ Cov(x) v`` for the directions ``v`` (normalized to
        ``vᵀ Cov(x) v = 1``), feeds the encoder ``u = (x − mean) @ V``, and starts its mean
        at ``μ(x) ≈ u_top + MLP(u)`` with ``n`` of these directions (chosen below). If the
        noise reached the observations linearly, each intervention would move one noise
        component, so with distinct ``λ`` these directions are the noise components up to
        order and scale; otherwise they are a change-aware whitening that training refines.
        The model class is unchanged: the map is an invertible linear layer.

        Features that break the linear premise outright — nonlinear functions of the
        other features (:func:`~pyrocrl.features.nonlinear_features`), such as a sensor
        reading the product of two quantities other sensors read — would bend every
        direction; with ``screen``, the directions are solved without them and they reach
        the encoder as they are (standardized), after the directions. No information is
        lost either way: the other features determine them.

        The directions of most change are not all causal ones when the observations are
        noisy: independent noise in the two views changes a direction in every pair, and
        the directions where noise is all there is change the most (their two views are
        uncorrelated). The ``n`` directions the encoder starts from are therefore those
        whose change is sparsest — zero in most pairs, large in a few, as an intervention
        on one variable moves it — measured by the excess kurtosis of the change. With as
        many directions as variables the choice changes nothing.

        Without ``screen`` the start is the plain linear solution: every feature, and the
        ``n`` directions of most change first. Image features need it: a variable they hold
        along a curve (the arm of CausalCircuit) spans several directions and makes some
        features nonlinear functions of the others, so the screen would start the encoder
        without it, and the sparsest changes would all be the same variable's. Nothing in
        the features tells the two cases apart; the training ELBO does, so a fit with
        several candidates starts half of them each way
        (:func:`~pyrocrl.inference.candidates.candidate_screen`).

        The statistics are those of the features the encoder reads (standardized by the
        model's feature transform, so fit that first).

        :param x, x_tilde: training pairs ``(N, D)`` with ``N`` well above ``D``.
        :returns: the features left out of the directions (their indices).
        """
        dim = self.dim_x
        if len(x) <= 2 * dim:
            raise ValueError(f"need more than {2 * dim} pairs to precondition, got {len(x)}")
        x, x_tilde = (self.model.standardize(torch.as_tensor(v).double()) for v in (x, x_tilde))
        left_out = []
        if screen:
            left_out = nonlinear_features(torch.cat([x, x_tilde]), max_flagged=dim - self.n)
        kept = [j for j in range(dim) if j not in left_out]
        ridge_matrix = ridge * torch.eye(len(kept), dtype=x.dtype)
        static = torch.cov(x[:, kept].T) + ridge_matrix
        delta = (x_tilde - x)[:, kept]
        change = delta.T @ delta / len(delta)
        values, vectors = torch.linalg.eigh(static)
        whiten = vectors / values.sqrt()
        _, rotation = torch.linalg.eigh(whiten.T @ change @ whiten)
        directions = (whiten @ rotation).flip(-1)  # largest change first
        spanned = torch.einsum("di,de,ei->i", directions, static - ridge_matrix, directions)
        order = list(range(len(kept)))
        if screen:
            order = _sparse_change_first(delta @ directions, spanned > 0.5, self.n)
        transform = torch.zeros(dim, dim, dtype=x.dtype)
        transform[kept, : len(kept)] = directions[:, order]
        transform[left_out, len(kept) :] = torch.eye(len(left_out), dtype=x.dtype)
        encoder = self.encoder
        encoder.input_mean.copy_(x.mean(0))
        encoder.input_transform.copy_(transform)
        skip = torch.zeros_like(encoder.skip.weight)
        top = min(len(kept), self.n)
        skip[:top, :top] = torch.eye(top)
        encoder.skip.weight.copy_(skip)
        return left_out

    def forward(self, *args: Any, **kwargs: Any) -> Encoding:
        return self.guide(*args, **kwargs)


def _drop_schedule_buffers(state: dict, prefix: str, *_: Any) -> None:
    """Checkpoints written before the schedule became an argument of the programs hold it
    as buffers; their values are the defaults now."""
    for name in ("posterior_power", "intervention_encoder.offset"):
        state.pop(prefix + name, None)


def _sparse_change_first(change: torch.Tensor, spanned: torch.Tensor, n: int) -> list[int]:
    """An order of the directions of ``change`` ``(N, K)`` (the pairs' change along each,
    columns in decreasing order of change) that puts the ``n`` changing most sparsely
    first, keeping their order, then the others in theirs.

    An intervention moves one causal variable (and what it causes) in some pairs and
    leaves it in the others, so along a causal direction the change is mostly zero with
    large moves: heavy-tailed. Observation noise that is independent between the two
    views changes every pair a little (excess kurtosis ≈ 0), and so does a direction that
    no intervention moves. Directions that ``spanned`` marks ``False`` (the data do not
    vary along them) are never chosen.
    """
    kurtosis = change.pow(4).mean(0) / change.pow(2).mean(0).pow(2).clamp_min(1e-300) - 3
    score = torch.where(spanned, kurtosis, torch.tensor(-torch.inf, dtype=kurtosis.dtype))
    chosen = sorted(score.argsort(descending=True)[: min(n, len(score))].tolist())
    return chosen + [k for k in range(len(score)) if k not in chosen]
