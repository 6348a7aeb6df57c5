"""Baselines without causal structure between the latent variables, for the scaling study.

- :class:`DVAE` — a disentangled VAE for weakly supervised pairs: an intervention resamples
  one latent component independently of the others.
- :class:`BetaVAE` — a VAE on each view with an independent prior: the pairing is not used.
"""

__all__ = ["DVAE", "BetaVAE", "IndependentViews"]

from collections.abc import Sequence
from typing import Any

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
    queries are the ILCM's; ``fit_ilcm(..., model="dvae")`` fits it. Further keyword
    arguments are options of :class:`~pyrocrl.models.ilcm.ILCM` (``max_targets``,
    ``intervention``, …).
    """

    def __init__(
        self,
        dim_x: int,
        n: int,
        *,
        hidden: Sequence[int] = (64, 64),
        likelihood: str | nn.Module = "normal",
        intervention_probs: Sequence[float] | torch.Tensor | None = None,
        **options: Any,
    ) -> None:
        super().__init__(
            dim_x,
            n,
            hidden=hidden,
            likelihood=likelihood,
            solution=AffineSolution(n, hidden, context="empty"),
            intervention_probs=intervention_probs,
            **options,
        )
        self.config.update(model="dvae", solution="affine-empty")


class IndependentViews:
    """A model of two independent views, for any backend: trained and scored with its
    independent programs (a VAE on each view), and without an intervention posterior."""

    infers_interventions = False

    def programs(self, guide: Any) -> tuple[Any, Any]:
        """The independent programs: a VAE on each view."""
        return self.independent_model, guide.independent_guide

    def training_recipe(self, recipe: Any) -> Any:
        """Every step the pretraining objective (``independent_views``), and no
        preconditioning (it reads how the pairs change)."""
        if recipe.independent_views:
            return recipe
        return recipe.replace(independent_views=True, precondition=False)


class BetaVAE(IndependentViews, DVAE):
    """A β-VAE on each view: ``e, e~ ~ N(0, I)`` independently, ``x ~ p(x | e)``,
    ``x~ ~ p(x | e~)`` — :meth:`~pyrocrl.models.ilcm.ILCM.independent_model`.

    The weak supervision is ignored: the two views are two independent observations. This
    is the "β-VAE" baseline of Brehmer et al. (2022). Encoder, decoder, trainer and recipes
    are the ILCM's; the recipe runs with ``independent_views`` (every step is the
    pretraining objective, with the recipe's ``β`` schedule, and no regularizer that reads
    the pairs), and the ELBO is that of the independent program. The causal variables
    reported by :func:`~pyrocrl.inference.queries.encode` are the noise up to a fixed
    per-component affine map (the empty-context solution function, never trained); there
    is no intervention posterior, so no intervention accuracy or graph either.
    ``fit_ilcm(..., model="betavae")`` fits it. Further keyword arguments are options of
    :class:`~pyrocrl.models.ilcm.ILCM`.
    """

    def __init__(
        self,
        dim_x: int,
        n: int,
        *,
        hidden: Sequence[int] = (64, 64),
        likelihood: str | nn.Module = "normal",
        **options: Any,
    ) -> None:
        super().__init__(dim_x, n, hidden=hidden, likelihood=likelihood, **options)
        self.config["model"] = "betavae"
