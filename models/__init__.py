"""Generative programs: latent causal models written in Pyro (``import pyrocrl.models``).

The learnable models — the implicit :class:`ILCM`, the explicit :class:`ELCM` and the
baselines :class:`DVAE` and :class:`BetaVAE` — the ground-truth simulators
(:class:`GroundTruthLCM`, :func:`scaling_toy`, :func:`toy2d` and :func:`chamber`, the light
tunnel of the causal chambers) and the :class:`ImageVAE` that reduces images to features.
"""

from pyrocrl.models.baselines import DVAE, BetaVAE
from pyrocrl.models.elcm import ELCM
from pyrocrl.models.ilcm import ILCM
from pyrocrl.models.image_vae import ImageVAE
from pyrocrl.models.light_tunnel import chamber
from pyrocrl.models.truth import GroundTruthLCM, scaling_toy, toy2d

__all__ = [
    "DVAE",
    "ELCM",
    "ILCM",
    "BetaVAE",
    "GroundTruthLCM",
    "ImageVAE",
    "chamber",
    "scaling_toy",
    "toy2d",
]
