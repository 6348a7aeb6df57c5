"""Solution functions: the maps between exogenous noise ``e`` and causal variables ``z``.

An implicit latent causal model never writes its graph down. It keeps a solution function
``s: e ↦ z`` whose component ``s_k(e_k; e_\\k)`` is invertible in ``e_k`` given the other
noise components. A perfect intervention that sets ``z_k`` to a value ``v`` keeps every
other noise component and replaces ``e_k`` with ``s_k⁻¹(v; e_\\k)``.
"""

__all__ = ["AffineSolution", "GraphSolution", "SCMSolution"]

from collections.abc import Sequence

import torch
from pyro.distributions import ConditionalTransformModule
from pyro.distributions.transforms import AffineTransform
from torch import nn

from pyrocrl.nets import StackedMLP
from pyrocrl.scm import AdditiveNoiseSCM


class _AffineMechanisms(ConditionalTransformModule):
    """``n`` small MLPs, one per causal variable, each giving ``(shift_k, scale_k)`` of the
    elementwise map ``T: z ↦ e``, ``e_k = shift_k + scale_k z_k``, from a masked context
    ``c_k = [u ⊙ m_k, m_k]``. Subclasses choose ``u`` (noise or causal values) and the
    masks ``m_k``.

    ``scale = exp(raw) + min_scale``. The broad initialization (``scale ≈ 10``, small shifts)
    starts every ``z_k`` close to a rescaled ``e_k``.
    """

    def __init__(
        self, n: int, hidden: Sequence[int], min_scale: float, init_log_scale: float
    ) -> None:
        super().__init__()
        self.n, self.min_scale = n, min_scale
        self.net = StackedMLP(n, 2 * n, 2, hidden)
        with torch.no_grad():  # broad initialization
            w, b = self.net.weights[-1], self.net.biases[-1]  # (n, hidden, 2), (n, 2)
            w[..., 0].normal_(0.0, 0.1)
            b[..., 0].normal_(0.0, 1e-3)
            w[..., 1].normal_(0.0, 1e-3)
            b[..., 1].normal_(init_log_scale, 1e-6)

    def _mechanisms(
        self, u: torch.Tensor, masks: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(shift, scale)``, each ``(*, n)``, from inputs ``u (*, n)`` and ``masks (n, n)``
        (row k is ``m_k``)."""
        masks = masks.expand(*u.shape[:-1], self.n, self.n)
        out = self.net(torch.cat([u.unsqueeze(-2) * masks, masks], dim=-1))
        return out[..., 0], out[..., 1].exp() + self.min_scale

    def condition(self, e: torch.Tensor) -> AffineTransform:
        """The map ``T_e: z ↦ e`` (elementwise affine, ``event_dim = 0``)."""
        shift, scale = self.shift_scale(e)  # type: ignore[attr-defined]
        return AffineTransform(shift, scale)


class AffineSolution(_AffineMechanisms):
    """Conditional affine solution function of an implicit model, one small MLP per variable.

    Given the noise ``e`` of shape ``(*, n)``, :meth:`condition` returns the elementwise map
    ``T_e: z ↦ e`` with ``T_e(z)_k = shift_k(c_k) + scale_k(c_k)·z_k``. The context of
    variable k is ``c_k = [e ⊙ m_k, m_k]`` with the mask ``m_k = 1 − onehot(k)``, so
    component k never sees its own noise. Hence

    - causal variables: ``z = s(e) = T_e⁻¹(e)``;
    - intervention ``do(z_k = v)``: ``e~_k = T_e(v)_k``, the other components unchanged.

    :param int n: number of causal variables.
    :param hidden: hidden layer sizes of each variable's MLP.
    :param float min_scale: floor of the scale.
    :param str context: ``"full"`` (the ILCM: each ``s_k`` sees all of ``e_\\k``) or
        ``"empty"`` (each ``s_k`` sees nothing: interventions resample a component
        independently of the others, as in a disentangled VAE).
    """

    def __init__(
        self,
        n: int,
        hidden: Sequence[int] = (64, 64),
        min_scale: float = 0.2,
        context: str = "full",
        init_log_scale: float = 2.3,
    ) -> None:
        if context not in ("full", "empty"):
            raise ValueError(f"context must be 'full' or 'empty', got {context!r}")
        super().__init__(n, hidden, min_scale, init_log_scale)
        self.context = context
        masks = 1.0 - torch.eye(n) if context == "full" else torch.zeros(n, n)
        self.register_buffer("masks", masks)

    def shift_scale(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(shift, scale)`` of every variable, each ``(*, n)``, from the noise ``(*, n)``."""
        return self._mechanisms(e, self.masks)

    def forward(self, e: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Causal variables ``z = s(e)``, ``(*, n) → (*, n)``."""
        shift, scale = self.shift_scale(e)
        return (e - shift) / scale


class GraphSolution(_AffineMechanisms):
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
        super().__init__(n, hidden, min_scale, init_log_scale)
        self.hard, self.order = hard, order
        self.edge_logits = nn.Parameter(torch.full((n, n), float(init_edge_logit)))
        self.positions = nn.Parameter(torch.zeros(n), requires_grad=order == "learned")
        self.register_buffer("off_diagonal", 1.0 - torch.eye(n))

    def _before(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(hard, soft)`` orientation ``(n, n)``: ``[i, j]`` for ``i`` before ``j``."""
        index = torch.arange(self.n, dtype=self.positions.dtype)
        rho = self.positions if self.order == "learned" else index.detach()
        key = rho.unsqueeze(0) - rho.unsqueeze(1)  # [i, j] = ρ_j − ρ_i
        ties = (key == 0) & (index.unsqueeze(0) > index.unsqueeze(1))
        hard = ((key > 0) | ties).to(rho)
        if self.order == "fixed":
            return hard, hard
        return hard, torch.sigmoid(key) * self.off_diagonal

    def edge_probs(self) -> torch.Tensor:
        """Soft adjacency ``(n, n)``: ``σ(γ_ij)`` times the soft orientation of ``i → j``."""
        return torch.sigmoid(self.edge_logits) * self._before()[1]

    def adjacency(self) -> torch.Tensor:
        """The adjacency the mechanisms use, ``(n, n)`` (``[i, j]`` for ``z_i → z_j``)."""
        before, soft_before = self._before()
        probs = torch.sigmoid(self.edge_logits) * soft_before
        if not self.hard:
            return probs
        hard = (torch.sigmoid(self.edge_logits) > 0.5).to(probs) * before
        return hard + probs - probs.detach()

    def ordered_edge_probs(self) -> torch.Tensor:
        """``σ(γ_ij)`` where ``i`` comes before ``j`` in the learned order, else 0;
        ``(n, n)``, no gradient: the probabilities of the edges the order allows."""
        with torch.no_grad():
            before, _ = self._before()
            return torch.sigmoid(self.edge_logits) * before

    def graph(self) -> torch.Tensor:
        """The learned DAG as a 0/1 tensor ``(n, n)``, no gradient."""
        return (self.ordered_edge_probs() > 0.5).to(self.edge_logits.dtype)

    def solve(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(z, shift, scale)``, each ``(*, n)``, at the solution ``z = s(e)``."""
        masks = self.adjacency().T  # row k: the parents of z_k
        z = torch.zeros_like(e)
        for _ in range(self.n):
            shift, scale = self._mechanisms(z, masks)
            z = (e - shift) / scale
        return z, shift, scale

    def shift_scale(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(shift, scale)`` of every variable, each ``(*, n)``, from the noise ``(*, n)``."""
        _, shift, scale = self.solve(e)
        return shift, scale

    def forward(self, e: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Causal variables ``z = s(e)``, ``(*, n) → (*, n)``."""
        return self.solve(e)[0]


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
