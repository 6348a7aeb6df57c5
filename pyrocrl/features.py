"""The feature transform of a model: observations as they come (any offset, any scale,
float32 or float64) to the standardized features the networks see, and back.

A model holds one (:attr:`pyrocrl.models.ILCM.features`): its encoder reads
``u = (x − loc) / scale`` and its likelihood over ``u`` is mapped back to the user's units,
so every output (samples, reconstructions, counterfactuals, log-densities) is in those
units. Fitted on training pairs only (:meth:`FeatureScaling.fit`) and stored with the
model's parameters in its checkpoint.
"""

__all__ = ["RESOLUTION", "FeatureScaling"]

from typing import Any

import numpy as np
import torch
from torch import nn

from pyrocrl.errors import DatasetError

RESOLUTION = 1e-6
"""The smallest spread, relative to a feature's magnitude, that the model can represent:
float32 keeps about seven significant digits, so a feature that varies by less than this
share of its size holds no information for it."""


class FeatureScaling(nn.Module):
    """``u = (x − loc) / scale``, per feature; ``(*, D) → (*, D)``.

    Identity (``loc = 0``, ``scale = 1``) until :meth:`fit`.

    :param int dim_x: the number of features ``D``.
    """

    def __init__(self, dim_x: int) -> None:
        super().__init__()
        self.register_buffer("loc", torch.zeros(dim_x))
        self.register_buffer("scale", torch.ones(dim_x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.loc) / self.scale

    def inverse(self, u: torch.Tensor) -> torch.Tensor:
        """``x = loc + scale · u``."""
        return u * self.scale + self.loc

    @torch.no_grad()
    def fit(self, x: Any) -> "FeatureScaling":
        """Set ``loc`` and ``scale`` to the mean and standard deviation of each feature of
        ``x`` ``(*, D)`` (e.g. training pairs ``(N, 2, D)``: both worlds count), computed in
        float64.

        :raises DatasetError: naming every feature that is constant (or varies by less
            than :data:`RESOLUTION` of its magnitude), and on non-finite values.
        """
        values = np.asarray(x.detach().cpu() if torch.is_tensor(x) else x, dtype=np.float64)
        dim = self.loc.shape[0]
        if values.ndim < 2 or values.shape[-1] != dim:
            raise DatasetError(f"expected observations of shape (..., {dim}), got {values.shape}")
        values = values.reshape(-1, dim)
        if not np.isfinite(values).all():
            raise DatasetError("the observations hold NaN or infinite values")
        loc, scale = values.mean(0), values.std(0)
        magnitude = np.abs(values).max(0)
        flat = np.flatnonzero(scale <= RESOLUTION * magnitude)
        if flat.size:
            listed = ", ".join(f"{k} (value {loc[k]:.6g})" for k in flat[:8])
            raise DatasetError(
                f"feature{'s' if flat.size > 1 else ''} {listed}"
                f"{' …' if flat.size > 8 else ''} {'are' if flat.size > 1 else 'is'} constant "
                "across the training pairs: drop them, they carry no information"
            )
        self.loc.copy_(torch.as_tensor(loc))
        self.scale.copy_(torch.as_tensor(scale))
        return self
