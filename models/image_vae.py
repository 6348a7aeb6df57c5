"""An image VAE: the first stage of learning causal variables from pixels.

Images are mapped to a few continuous features by a VAE that never sees the pairing; the
ILCM then learns causal variables from the pairs of features, as Brehmer et al. (2022) do
for CausalCircuit (512 × 512 images → 8 features → 4 causal variables).

**Program** (:meth:`ImageVAE.model`), for each image::

    u ~ N(0, I_d)                                 # "code"
    x ~ N(σ(decoder(u)), scale² I)                # "image", (C, H, W) in [0, 1]

**Guide** (:meth:`ImageVAE.guide`): ``u ~ N(μ(x), diag σ(x)²)`` from a convolutional encoder.
The features handed on to the ILCM are the guide's means, standardized with statistics of
the training images: ``f(x) = (μ(x) − m) / s`` (:meth:`ImageVAE.features`) — a deterministic,
smooth function of the image, on the unit scale the ILCM's recipes are made for.
"""

__all__ = ["ImageVAE"]

from collections.abc import Sequence
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch.nn import functional as F

from pyrocrl.conv import ConvDecoder, ConvEncoder

CODE = "code"
IMAGE = "image"
PLATE = "images"


class ImageVAE(PyroModule):
    """A VAE on images ``(N, C, H, W)`` with ``dim`` Gaussian codes.

    :param int dim: code size ``d``.
    :param int resolution: image side.
    :param channels: encoder channels (the decoder mirrors them).
    :param float scale: the pixel noise ``scale`` of the likelihood (a fixed number: it sets
        how much reconstruction counts against the KL term).
    """

    def __init__(
        self,
        dim: int = 8,
        *,
        resolution: int = 64,
        channels: Sequence[int] = (32, 32, 64, 64),
        in_channels: int = 3,
        scale: float = 0.1,
    ) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"the code needs at least one dimension, got {dim}")
        if scale <= 0:
            raise ValueError(f"the pixel scale must be positive, got {scale}")
        self.dim, self.resolution, self.scale = dim, resolution, float(scale)
        self.encoder = ConvEncoder(
            2 * dim, resolution=resolution, channels=channels, in_channels=in_channels
        )
        self.decoder = ConvDecoder(
            dim,
            resolution=resolution,
            channels=tuple(reversed(channels)),
            out_channels=in_channels,
        )
        self.register_buffer("feature_loc", torch.zeros(dim))
        self.register_buffer("feature_scale", torch.ones(dim))
        self.config: dict[str, Any] = {
            "model": "image_vae",
            "dim": dim,
            "resolution": resolution,
            "channels": list(channels),
            "in_channels": in_channels,
            "scale": self.scale,
        }

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """Mean image of codes: ``(*, d) → (*, C, H, W)`` in ``[0, 1]``."""
        return torch.sigmoid(self.decoder(code))

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and standard deviation of the code: ``(*, C, H, W) → 2 × (*, d)``."""
        loc, raw = self.encoder(images).chunk(2, dim=-1)
        return loc, F.softplus(raw) + 1e-4

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Standardized code means: ``(*, C, H, W) → (*, d)``."""
        return (self.encode(images)[0] - self.feature_loc) / self.feature_scale

    def decode_features(self, features: torch.Tensor) -> torch.Tensor:
        """Mean image of standardized features: ``(*, d) → (*, C, H, W)``."""
        return self.decode(features * self.feature_scale + self.feature_loc)

    def model(self, images: torch.Tensor | None = None, *, size: int | None = None):
        """Shapes: ``images (N, C, H, W)``; returns the sampled codes ``(N, d)``."""
        size = len(images) if images is not None else size
        if size is None:
            raise ValueError("give images or a size")
        pyro.module("image_vae", self)
        with pyro.plate(PLATE, size):
            prior = dist.Normal(torch.zeros(self.dim), 1.0).to_event(1)
            code = pyro.sample(CODE, prior)
            pyro.sample(IMAGE, dist.Normal(self.decode(code), self.scale).to_event(3), obs=images)
        return code

    def guide(self, images: torch.Tensor, *, size: int | None = None):
        pyro.module("image_vae", self)
        loc, scale = self.encode(images)
        with pyro.plate(PLATE, len(images)):
            return pyro.sample(CODE, dist.Normal(loc, scale).to_event(1))
