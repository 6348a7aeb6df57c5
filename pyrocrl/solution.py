"""Solution functions: the maps between exogenous noise ``e`` and causal variables ``z``.

An implicit latent causal model never writes its graph down. It keeps a solution function
``s: e ↦ z`` whose component ``s_k(e_k; e_\\k)`` is invertible in ``e_k`` given the other
noise components. A perfect intervention that sets ``z_k`` to a value ``v`` keeps every
other noise component and replaces ``e_k`` with ``s_k⁻¹(v; e_\\k)``.

The implicit one (:class:`AffineSolution`) is affine in a transform of the own noise,
``s_k(e) = (g_k(e_k) − shift_k) / scale_k``, with ``g`` the identity by default or a learned
monotone spline (:mod:`pyrocrl.splines`); :func:`warp` reads ``g`` of any solution function.
"""

__all__ = [
    "NOISE_TRANSFORMS",
    "AffineSolution",
    "AffineSolutionMaths",
    "GraphSolution",
    "GraphSolutionMaths",
    "SCMSolution",
    "mechanisms",
    "shared_evaluations",
    "transforms_noise",
    "warp",
]

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import Any, ClassVar

import torch
from torch import nn

from pyrocrl.backends import pyro as pyro_backend
from pyrocrl.nets import StackedMLP
from pyrocrl.scm import AdditiveNoiseSCM
from pyrocrl.splines import spline

NOISE_TRANSFORMS = ("identity", "spline")
"""The transforms ``g`` of the own noise that :class:`AffineSolution` offers."""
SPLINE_BINS = 8
"""Bins of the spline transform."""
SPLINE_BOUND = 8.0
"""Half-width ``B`` of the interval where the spline transform departs from the identity
(the noise has a standard normal prior; intervened components reach a few times further)."""

_SHARED: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "pyrocrl_shared_solution_evaluations", default=None
)


@contextlib.contextmanager
def shared_evaluations() -> Iterator[None]:
    """Within the block, a solution function evaluated twice on the same noise array (the
    same object) computes once: the guide and the model of a pair program both read the
    solution on the guide's noise sample, and a bound that runs both shares one forward
    pass and one backward pass. The record lives as long as the block (so under JAX it
    holds no tracer beyond the trace) and is private to the running context."""
    token = _SHARED.set({})
    try:
        yield
    finally:
        _SHARED.reset(token)


def _shared(solution: Any, e: Any, compute: Callable[[Any], Any]) -> Any:
    """``compute(e)``, or inside :func:`shared_evaluations` the result of an earlier call
    with this very solution function and this very array."""
    record = _SHARED.get()
    if record is None:
        return compute(e)
    key = (id(solution), id(e))
    if key in record and record[key][0] is solution and record[key][1] is e:
        return record[key][2]
    result = compute(e)
    record[key] = (solution, e, result)  # holding both keeps their ids theirs
    return result


def mechanisms(backend: ModuleType, net: Any, u: Any, masks: Any, min_scale: float):
    """``(shift, scale)`` of the elementwise maps ``T: z ↦ e``, ``e_k = shift_k + scale_k z_k``,
    each ``(*, n)``, from ``n`` stacked MLPs ``net`` on the masked contexts
    ``c_k = [u ⊙ m_k, m_k]`` of inputs ``u (*, n)``; row ``k`` of ``masks (n, n)`` is ``m_k``.
    ``scale = exp(raw) + min_scale``."""
    n = u.shape[-1]
    masks = backend.broadcast_to(masks, (*u.shape[:-1], n, n))
    out = net(backend.concat([u[..., None, :] * masks, masks], axis=-1))
    return out[..., 0], backend.exp(out[..., 1]) + min_scale


def transforms_noise(solution: Any) -> bool:
    """Whether a solution function has a transform of the own noise other than the
    identity (a ``spline`` attribute that is not ``None``)."""
    return getattr(solution, "spline", None) is not None


def warp(solution: Any, e: Any, inverse: bool = False) -> tuple[Any, Any]:
    """``(g(e), log g'(e))`` of a solution function's transform ``g`` of the own noise,
    elementwise on ``e (*, n)``; with ``inverse=True`` ``(g⁻¹(e), log g'(g⁻¹(e)))``. For a
    solution function without one (``spline`` absent or ``None``), ``(e, 0)``: the affine
    solution functions of Brehmer et al. (2022)."""
    if not transforms_noise(solution):
        return e, 0 * e
    return spline(solution.backend, e, solution.spline, solution.bound, inverse=inverse)


class AffineSolutionMaths:
    """The maths of :class:`AffineSolution` for any backend: needs ``backend``, ``net``
    (stacked MLPs), ``masks (n, n)``, ``min_scale``, ``spline`` (``None`` or the spline
    parameters ``(n, 3K − 1)``) and ``bound``."""

    backend: ClassVar[ModuleType]

    def shift_scale(self, e: Any) -> tuple[Any, Any]:
        """``(shift, scale)`` of every variable, each ``(*, n)``, from the noise ``(*, n)``."""
        masks = self.backend.stop_gradient(self.masks)
        return _shared(
            self, e, lambda e: mechanisms(self.backend, self.net, e, masks, self.min_scale)
        )

    def causal_variables(self, e: Any) -> Any:
        """Causal variables ``z = s(e)``, ``(*, n) → (*, n)``."""
        shift, scale = self.shift_scale(e)
        return (warp(self, e)[0] - shift) / scale


class GraphSolutionMaths:
    """The maths of :class:`GraphSolution` for any backend: needs ``backend``, ``net``,
    ``edge_logits (n, n)``, ``positions (n,)``, ``off_diagonal (n, n)``, ``n``,
    ``min_scale``, ``hard`` and ``order``."""

    backend: ClassVar[ModuleType]

    def _before(self) -> tuple[Any, Any]:
        """``(hard, soft)`` orientation ``(n, n)``: ``[i, j]`` for ``i`` before ``j``."""
        b = self.backend
        index = b.arange(0, self.n, like=self.positions)
        rho = self.positions if self.order == "learned" else index
        key = rho[None, :] - rho[:, None]  # [i, j] = ρ_j − ρ_i
        ties = (key == 0) & (index[None, :] > index[:, None])
        hard = b.cast((key > 0) | ties, like=rho)
        if self.order == "fixed":
            return hard, hard
        return hard, b.sigmoid(key) * b.stop_gradient(self.off_diagonal)

    def edge_probs(self) -> Any:
        """Soft adjacency ``(n, n)``: ``σ(γ_ij)`` times the soft orientation of ``i → j``."""
        return self.backend.sigmoid(self.edge_logits) * self._before()[1]

    def adjacency(self) -> Any:
        """The adjacency the mechanisms use, ``(n, n)`` (``[i, j]`` for ``z_i → z_j``)."""
        b = self.backend
        before, soft_before = self._before()
        probs = b.sigmoid(self.edge_logits) * soft_before
        if not self.hard:
            return probs
        hard = b.cast(b.sigmoid(self.edge_logits) > 0.5, like=probs) * before
        return hard + probs - b.stop_gradient(probs)

    def solve(self, e: Any) -> tuple[Any, Any, Any]:
        """``(z, shift, scale)``, each ``(*, n)``, at the solution ``z = s(e)``."""
        return _shared(self, e, self._solve)

    def _solve(self, e: Any) -> tuple[Any, Any, Any]:
        masks = self.adjacency().T  # row k: the parents of z_k
        z = self.backend.zeros_like(e)
        for _ in range(self.n):
            shift, scale = mechanisms(self.backend, self.net, z, masks, self.min_scale)
            z = (e - shift) / scale
        return z, shift, scale

    def shift_scale(self, e: Any) -> tuple[Any, Any]:
        """``(shift, scale)`` of every variable, each ``(*, n)``, from the noise ``(*, n)``."""
        _, shift, scale = self.solve(e)
        return shift, scale

    def causal_variables(self, e: Any) -> Any:
        """Causal variables ``z = s(e)``, ``(*, n) → (*, n)``."""
        return self.solve(e)[0]


def _mechanism_net(n: int, hidden: Sequence[int], init_log_scale: float) -> StackedMLP:
    """``n`` MLPs of ``(shift, log scale)`` with a broad start: ``scale ≈ exp(init_log_scale)``
    and small shifts, so every ``z_k`` starts close to a rescaled ``e_k``."""
    net = StackedMLP(n, 2 * n, 2, hidden)
    with torch.no_grad():
        w, b = net.weights[-1], net.biases[-1]  # (n, hidden, 2), (n, 2)
        w[..., 0].normal_(0.0, 0.1)
        b[..., 0].normal_(0.0, 1e-3)
        w[..., 1].normal_(0.0, 1e-3)
        b[..., 1].normal_(init_log_scale, 1e-6)
    return net


class AffineSolution(AffineSolutionMaths, nn.Module):
    """Conditional affine solution function of an implicit model, one small MLP per variable.

    Given the noise ``e`` of shape ``(*, n)``, the elementwise map ``T_e: z ↦ e`` is
    ``T_e(z)_k = g_k⁻¹(shift_k(c_k) + scale_k(c_k)·z_k)``. The context of variable k is
    ``c_k = [e ⊙ m_k, m_k]`` with the mask ``m_k = 1 − onehot(k)``, so component k never
    sees its own noise. Hence

    - causal variables: ``z = s(e) = T_e⁻¹(e)``, ``z_k = (g_k(e_k) − shift_k) / scale_k``;
    - intervention ``do(z_k = v)``: ``e~_k = T_e(v)_k``, the other components unchanged.

    ``g`` transforms each variable's own noise: the identity (Brehmer et al., 2022), or with
    ``noise_transform="spline"`` a learned monotone spline per variable
    (:mod:`pyrocrl.splines`, the identity at the start). A mechanism ``z_k = f(pa) +
    σ(pa)·u_k`` is then in the model class whatever monotone map of ``u_k`` the encoder
    settles on: identification pins the noise only up to such a map, and the Gaussian
    prior pulls it straight by a few hundredths of a nat per pair, too weakly for training
    to get there (``docs/results.md``, "The 2D toy").

    :param int n: number of causal variables.
    :param hidden: hidden layer sizes of each variable's MLP.
    :param float min_scale: floor of the scale.
    :param str context: ``"full"`` (the ILCM: each ``s_k`` sees all of ``e_\\k``) or
        ``"empty"`` (each ``s_k`` sees nothing: interventions resample a component
        independently of the others, as in a disentangled VAE).
    :param str noise_transform: ``"identity"`` or ``"spline"`` (see above).
    """

    backend = pyro_backend

    def __init__(
        self,
        n: int,
        hidden: Sequence[int] = (64, 64),
        min_scale: float = 0.2,
        context: str = "full",
        init_log_scale: float = 2.3,
        noise_transform: str = "identity",
    ) -> None:
        if context not in ("full", "empty"):
            raise ValueError(f"context must be 'full' or 'empty', got {context!r}")
        if noise_transform not in NOISE_TRANSFORMS:
            raise ValueError(
                f"noise_transform must be one of {NOISE_TRANSFORMS}, got {noise_transform!r}"
            )
        super().__init__()
        self.n, self.min_scale, self.context = n, min_scale, context
        self.net = _mechanism_net(n, hidden, init_log_scale)
        masks = 1.0 - torch.eye(n) if context == "full" else torch.zeros(n, n)
        self.register_buffer("masks", masks)
        self.bound = SPLINE_BOUND
        theta = torch.zeros(n, 3 * SPLINE_BINS - 1) if noise_transform == "spline" else None
        self.spline = None if theta is None else nn.Parameter(theta)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        """Causal variables ``z = s(e)``, ``(*, n) → (*, n)``."""
        return self.causal_variables(e)


class GraphSolution(GraphSolutionMaths, nn.Module):
    """Solution function of an explicit SCM whose graph is learned.

    Mechanisms ``z_k = (e_k − shift_k(c_k)) / scale_k(c_k)`` read the causal values of the
    parents, ``c_k = [z ⊙ a_k, a_k]`` with ``a_k`` column k of the adjacency ``a``.

    The graph is a DAG by construction: an edge ``i → j`` needs ``σ(γ_ij) > ½`` (edge
    logits ``γ``) and ``i`` before ``j`` in the variable order. With ``order="fixed"`` the
    order is the index order (variables are only identified up to relabelling, so this
    loses nothing in the model class, but training must then move each variable to its
    place); with ``order="learned"`` each variable has a position ``ρ_i`` and ``i`` comes
    before ``j`` when ``ρ_i < ρ_j`` (ties by index), with the soft orientation
    ``σ(ρ_j − ρ_i)``.

    The adjacency used by the mechanisms is hard, with the gradient of its soft version
    (``σ(γ_ij)`` times the orientation) passed straight through; ``hard=False`` uses the
    soft version itself — with a learned order, both orientations of a pair then carry some
    weight, and ``n`` sweeps are a fixed-point approximation rather than the exact solution.
    ``s(e)`` is solved by ``n`` sweeps of all mechanisms: after sweep ``t`` the first ``t``
    variables in the order are exact, so ``n`` sweeps give the exact solution for any hard
    graph.

    The interface is that of :class:`AffineSolution`: an intervention on ``z_k`` changes
    ``e_k`` only, and since ``k``'s parents come before it, ``shift_k`` and ``scale_k`` are
    the same in both worlds.

    :param init_edge_logit: ``γ`` at the start (4: every edge present with ``σ ≈ 0.98``).
    :param order: ``"learned"`` or ``"fixed"``.
    """

    backend = pyro_backend

    def __init__(
        self,
        n: int,
        hidden: Sequence[int] = (64, 64),
        min_scale: float = 0.2,
        init_log_scale: float = 2.3,
        init_edge_logit: float = 4.0,
        hard: bool = True,
        order: str = "learned",
    ) -> None:
        if order not in ("learned", "fixed"):
            raise ValueError(f"order must be 'learned' or 'fixed', got {order!r}")
        super().__init__()
        self.n, self.min_scale, self.hard, self.order = n, min_scale, hard, order
        self.net = _mechanism_net(n, hidden, init_log_scale)
        self.edge_logits = nn.Parameter(torch.full((n, n), float(init_edge_logit)))
        self.positions = nn.Parameter(torch.zeros(n), requires_grad=order == "learned")
        self.register_buffer("off_diagonal", 1.0 - torch.eye(n))

    def ordered_edge_probs(self) -> torch.Tensor:
        """``σ(γ_ij)`` where ``i`` comes before ``j`` in the learned order, else 0;
        ``(n, n)``, no gradient: the probabilities of the edges the order allows."""
        with torch.no_grad():
            before, _ = self._before()
            return torch.sigmoid(self.edge_logits) * before

    def graph(self) -> torch.Tensor:
        """The learned DAG as a 0/1 tensor ``(n, n)``, no gradient."""
        return (self.ordered_edge_probs() > 0.5).to(self.edge_logits.dtype)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        """Causal variables ``z = s(e)``, ``(*, n) → (*, n)``."""
        return self.causal_variables(e)


class SCMSolution:
    """The solution function of an explicit additive-noise SCM, in the interface of
    :class:`AffineSolution`.

    With ``z_k = f_k(z_pa(k)) + σ_k e_k``: ``shift_k = −f_k(z_pa(k)) / σ_k`` and
    ``scale_k = 1 / σ_k``, where the parents' values come from the other noise components.
    Lets tools written for learned solution functions (such as graph discovery) run on a
    known SCM.
    """

    def __init__(self, scm: AdditiveNoiseSCM) -> None:
        self.scm = scm
        self.n = scm.n

    def shift_scale(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.scm.solve(e)
        loc = torch.stack([self.scm.loc(k, z) for k in range(self.n)], dim=-1)
        scale = (1.0 / self.scm.noise_scale).expand_as(loc)
        return -loc * scale, scale

    def __call__(self, e: torch.Tensor) -> torch.Tensor:
        return self.scm.solve(e)
