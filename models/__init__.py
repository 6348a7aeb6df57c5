"""Generative programs: latent causal models written in Pyro (``import pyrocrl.models``)."""

from pyrocrl.models.image_vae import ImageVAE
from pyrocrl.models.truth import GroundTruthLCM, scaling_toy, toy2d

__all__ = ["GroundTruthLCM", "ImageVAE", "scaling_toy", "toy2d"]
