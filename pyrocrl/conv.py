"""Convolutional building blocks for images.

Images are ``(*, C, H, W)`` float tensors in ``[0, 1]`` (channels first, as in torch), with
square ``H = W = resolution``, a power of two ``≥ 8``. Each stride-2 layer halves the side,
down to a ``4 × 4`` map that a linear layer turns into features, and back.
"""

__all__ = ["ConvDecoder", "ConvEncoder", "to_images", "to_pixels"]

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn


def _depth(resolution: int) -> int:
    depth = math.log2(resolution / 4)
    if resolution < 8 or depth != int(depth):
        raise ValueError(f"resolution must be a power of two ≥ 8, got {resolution}")
    return int(depth)


def _widths(channels: Sequence[int], depth: int) -> list[int]:
    """``depth`` channel counts: ``channels`` cut to ``depth`` or padded with its last."""
    if not channels or min(channels) < 1:
        raise ValueError(f"channels must be positive, got {channels}")
    return [*channels[:depth], *[channels[-1]] * (depth - len(channels))]


class ConvEncoder(nn.Module):
    """Images ``(*, C, H, W)`` → features ``(*, out_features)``.

    ``log₂(H/4)`` layers of ``4 × 4`` convolutions with stride 2 and ReLU, then a linear map
    of the flattened ``4 × 4`` map.

    :param int out_features: size of the output.
    :param int resolution: image side ``H = W``.
    :param channels: channels of the convolutional layers, first to last.
    :param int in_channels: ``C``.
    """

    def __init__(
        self,
        out_features: int,
        *,
        resolution: int = 64,
        channels: Sequence[int] = (32, 32, 64, 64),
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.resolution, self.in_channels = resolution, in_channels
        widths = _widths(channels, _depth(resolution))
        layers: list[nn.Module] = []
        for a, b in zip([in_channels, *widths[:-1]], widths, strict=True):
            layers += [nn.Conv2d(a, b, 4, stride=2, padding=1), nn.ReLU()]
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Linear(widths[-1] * 16, out_features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        batch = images.shape[:-3]
        flat = images.reshape(-1, *images.shape[-3:])
        return self.head(self.features(flat)).reshape(*batch, -1)


class ConvDecoder(nn.Module):
    """Features ``(*, in_features)`` → images ``(*, C, H, W)`` (unbounded: apply a sigmoid
    for intensities, or read them as logits).

    A linear map to a ``4 × 4`` map, then ``log₂(H/4)`` transposed ``4 × 4`` convolutions with
    stride 2, ReLU between them.

    :param channels: channels of the layers from the ``4 × 4`` map up, mirroring
        :class:`ConvEncoder` when given reversed.
    """

    def __init__(
        self,
        in_features: int,
        *,
        resolution: int = 64,
        channels: Sequence[int] = (64, 64, 32, 32),
        out_channels: int = 3,
    ) -> None:
        super().__init__()
        self.resolution, self.out_channels = resolution, out_channels
        widths = _widths(channels, _depth(resolution))
        self.head = nn.Sequential(nn.Linear(in_features, widths[0] * 16), nn.ReLU())
        self._first = widths[0]
        layers: list[nn.Module] = []
        outs = [*widths[1:], out_channels]
        for i, (a, b) in enumerate(zip(widths, outs, strict=True)):
            layers.append(nn.ConvTranspose2d(a, b, 4, stride=2, padding=1))
            if i < len(widths) - 1:
                layers.append(nn.ReLU())
        self.features = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        batch = features.shape[:-1]
        grid = self.head(features.reshape(-1, features.shape[-1]))
        images = self.features(grid.reshape(-1, self._first, 4, 4))
        return images.reshape(*batch, *images.shape[-3:])


def to_images(pixels: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``uint8`` pixels ``(*, H, W, C)`` → float images ``(*, C, H, W)`` in ``[0, 1]``."""
    pixels = torch.as_tensor(pixels)
    return pixels.movedim(-1, -3).to(torch.get_default_dtype()) / 255.0


def to_pixels(images: torch.Tensor) -> np.ndarray:
    """Float images ``(*, C, H, W)`` in ``[0, 1]`` → ``uint8`` pixels ``(*, H, W, C)``."""
    scaled = (images.detach().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    return scaled.movedim(-3, -1).cpu().numpy()
