"""Solution functions: the maps between exogenous noise ``e`` and causal variables ``z``.

An implicit latent causal model never writes its graph down. It keeps a solution function
``s: e ↦ z`` whose component ``s_k(e_k; e_\\k)`` is invertible in ``e_k`` given the other
noise components. A perfect intervention that sets ``z_k`` to a value ``v`` keeps every
other noise component and replaces ``e_k`` with ``s_k⁻¹(v; e_\\k)``.
"""

__all__ = ["AffineSolution", "SCMSolution"]

from collections.abc import Sequence

import torch
from pyro.distributions import ConditionalTransformModule
from pyro.distributions.transforms import AffineTransform

from pyrocrl.nets import StackedMLP
from pyrocrl.scm import AdditiveNoiseSCM


class AffineSolution(ConditionalTransformModule):
    """Conditional affine solution function, one small MLP per causal variable.

    Given the noise ``e`` of shape ``(*, n)``, :meth:`condition` returns the elementwise map
    ``T_e: z ↦ e`` with ``T_e(z)_k = shift_k(c_k) + scale_k(c_k)·z_k``. The context of
    variable k is ``c_k = [e ⊙ m_k, m_k]`` with the mask ``m_k = 1 − onehot(k)``, so
    component k never sees its own noise. Hence

    - causal variables: ``z = s(e) = T_e⁻¹(e)``;
    - intervention ``do(z_k = v)``: ``e~_k = T_e(v)_k``, the other components unchanged.

    ``scale = exp(raw) + min_scale``. The broad initialization (``scale ≈ 10``, small shifts)
    starts every ``z_k`` close to a rescaled ``e_k``.

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
        super().__init__()
        if context not in ("full", "empty"):
            raise ValueError(f"context must be 'full' or 'empty', got {context!r}")
        self.n, self.min_scale, self.context = n, min_scale, context
        self.net = StackedMLP(n, 2 * n, 2, hidden)
        self.register_buffer("masks", 1.0 - torch.eye(n))
        with torch.no_grad():  # broad initialization
            w, b = self.net.weights[-1], self.net.biases[-1]  # (n, hidden, 2), (n, 2)
            w[..., 0].normal_(0.0, 0.1)
            b[..., 0].normal_(0.0, 1e-3)
            w[..., 1].normal_(0.0, 1e-3)
            b[..., 1].normal_(init_log_scale, 1e-6)

    def shift_scale(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(shift, scale)`` of every variable, each ``(*, n)``, from the noise ``(*, n)``."""
        masks = self.masks.expand(*e.shape[:-1], self.n, self.n)
        if self.context == "full":
            masked = e.unsqueeze(-2) * self.masks
        else:
            masked = torch.zeros_like(masks)
            masks = torch.zeros_like(masks)
        out = self.net(torch.cat([masked, masks], dim=-1))
        shift, raw_scale = out[..., 0], out[..., 1]
        return shift, raw_scale.exp() + self.min_scale

    def condition(self, e: torch.Tensor) -> AffineTransform:
        """The map ``T_e: z ↦ e`` (elementwise affine, ``event_dim = 0``)."""
        shift, scale = self.shift_scale(e)
        return AffineTransform(shift, scale)

    def forward(self, e: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Causal variables ``z = s(e)``, ``(*, n) → (*, n)``."""
        shift, scale = self.shift_scale(e)
        return (e - shift) / scale


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
