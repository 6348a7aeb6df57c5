"""Baselines without causal structure between the latent variables, for the scaling study.

- :class:`DVAE` — a disentangled VAE for weakly supervised pairs: an intervention resamples
  one latent component independently of the others.
"""

__all__ = ["DVAE"]

from collections.abc import Sequence

import torch
from torch import nn

from pyrocrl.models.ilcm import ILCM
from pyrocrl.solution import AffineSolution


class DVAE(ILCM):
    """The ILCM's pair program with a solution function of empty context.

    Each ``s_k`` sees none of the other noise components, so ``z_k`` is an affine function
    of ``e_k`` alone and an intervention on ``z_k`` resamples it from a learned 1-D Gaussian
    and changes nothing else: weakly supervised disentanglement with an independent prior
    (the "dVAE" baseline of Brehmer et al., 2022). Guide, trainer, recipes, metrics and
    queries are the ILCM's; ``fit_ilcm(..., model="dvae")`` fits it.
    """

    def __init__(
        self,
        dim_x: int,
        n: int,
        *,
        hidden: Sequence[int] = (64, 64),
        likelihood: str | nn.Module = "normal",
        intervention_probs: Sequence[float] | torch.Tensor | None = None,
    ) -> None:
        super().__init__(
            dim_x,
            n,
            hidden=hidden,
            likelihood=likelihood,
            solution=AffineSolution(n, hidden, context="empty"),
            intervention_probs=intervention_probs,
        )
        self.config.update(model="dvae", solution="affine-empty")
