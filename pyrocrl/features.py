"""The feature transform of a model: observations as they come (any offset, any scale,
float32 or float64) to the standardized features the networks see, and back.

A model holds one (:attr:`pyrocrl.models.ILCM.features`): its encoder reads
``u = (x − loc) / scale`` and its likelihood over ``u`` is mapped back to the user's units,
so every output (samples, reconstructions, counterfactuals, log-densities) is in those
units. Fitted on training pairs only (:meth:`FeatureScaling.fit`) and stored with the
model's parameters in its checkpoint.

:func:`nonlinear_features` finds the features that are nonlinear functions of the others
(e.g. a sensor that reads a product of two quantities that other sensors read), which a
linear statistic of the features — the encoder's preconditioner — must leave out.
"""

__all__ = [
    "DETERMINED",
    "NONLINEAR_GAIN",
    "RESOLUTION",
    "FeatureScaling",
    "nonlinear_features",
    "regression_r2",
]

from collections.abc import Sequence
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
    def fit(self, x: Any, names: Sequence[str] | None = None) -> "FeatureScaling":
        """Set ``loc`` and ``scale`` to the mean and standard deviation of each feature of
        ``x`` ``(*, D)`` (e.g. training pairs ``(N, 2, D)``: both worlds count; the all-NaN
        second world of an unpaired observation is skipped), computed in float64.

        :param names: of the ``D`` features, for the error message (a dataset's
            ``feature`` coordinate); default: their 0-based indices.
        :raises DatasetError: naming every feature that is constant (or varies by less
            than :data:`RESOLUTION` of its magnitude), and on non-finite values.
        """
        values = np.asarray(x.detach().cpu() if torch.is_tensor(x) else x, dtype=np.float64)
        dim = self.loc.shape[0]
        if values.ndim < 2 or values.shape[-1] != dim:
            raise DatasetError(f"expected observations of shape (..., {dim}), got {values.shape}")
        values = values.reshape(-1, dim)
        values = values[~np.isnan(values).all(-1)]  # the missing world of unpaired rows
        if not np.isfinite(values).all():
            raise DatasetError("the observations hold NaN or infinite values")
        loc, scale = values.mean(0), values.std(0)
        magnitude = np.abs(values).max(0)
        flat = np.flatnonzero(scale <= RESOLUTION * magnitude)
        if flat.size:
            label = [str(v) for v in names] if names is not None else list(map(str, range(dim)))
            listed = ", ".join(f"{label[k]} (value {loc[k]:.6g})" for k in flat[:8])
            raise DatasetError(
                f"feature{'s' if flat.size > 1 else ''} {listed}"
                f"{' …' if flat.size > 8 else ''} {'are' if flat.size > 1 else 'is'} constant "
                "across the training pairs: drop them, they carry no information"
            )
        self.loc.copy_(torch.as_tensor(loc))
        self.scale.copy_(torch.as_tensor(scale))
        return self


NONLINEAR_GAIN = 3.0
"""How many times less of a feature a quadratic regression on the other features must
leave unexplained than a linear one for :func:`nonlinear_features` to flag it."""
DETERMINED = 0.9
"""The R² with which the other features must (quadratically) determine a flagged one."""


def regression_r2(
    u: torch.Tensor, rows: int = 5000, ridge: float = 1e-6, seed: int = 0
) -> torch.Tensor:
    """Held-out R² of each feature of ``u`` ``(N, D)`` regressed on the other features by
    least squares, linearly and with all their squares and pairwise products: ``(D, 2)``.

    Fitted on up to ``rows`` rows and scored on as many others (drawn with ``seed``, from
    a private generator); ``ridge`` (per row) keeps the quadratic fits stable.
    """
    u = torch.as_tensor(u).double()
    u = (u - u.mean(0)) / u.std(0).clamp_min(1e-12)
    order = torch.randperm(len(u), generator=torch.Generator().manual_seed(seed))
    half = min(rows, len(u) // 2)
    fit, score = u[order[:half]], u[order[half : 2 * half]]
    dim = u.shape[1]
    pairs = torch.triu_indices(dim - 1, dim - 1)

    def design(v: torch.Tensor, quadratic: bool) -> torch.Tensor:
        columns = [torch.ones(len(v), 1, dtype=v.dtype), v]
        if quadratic:
            columns.append((v[:, :, None] * v[:, None, :])[:, pairs[0], pairs[1]])
        return torch.cat(columns, 1)

    r2 = torch.zeros(dim, 2, dtype=u.dtype)
    for j in range(dim):
        others = [k for k in range(dim) if k != j]
        for column, quadratic in enumerate((False, True)):
            a, b = design(fit[:, others], quadratic), design(score[:, others], quadratic)
            gram = a.T @ a + ridge * len(a) * torch.eye(a.shape[1], dtype=a.dtype)
            weights = torch.linalg.solve(gram, a.T @ fit[:, j])
            residual = score[:, j] - b @ weights
            r2[j, column] = 1 - residual.pow(2).mean() / score[:, j].var()
    return r2


def nonlinear_features(
    u: torch.Tensor, *, max_flagged: int, gain: float = NONLINEAR_GAIN, floor: float = 1e-3
) -> list[int]:
    """The features of ``u`` ``(N, D)`` that are nonlinear functions of the others: a
    quadratic regression on the other features determines them (R² ≥ :data:`DETERMINED`)
    and leaves ``gain`` times less of them unexplained than a linear one (unexplained
    shares plus ``floor``, so that exactly linear features do not count). At most
    ``max_flagged``, the strongest first; none when the quadratic regression has too many
    terms for the rows (a screen for tens of features, not for images).

    :returns: their indices, in increasing order.
    """
    dim = u.shape[1]
    terms = 1 + (dim - 1) + (dim - 1) * dim // 2  # of a quadratic in the other features
    if max_flagged <= 0 or dim < 3 or 10 * terms > min(5000, len(u) // 2):
        return []
    r2 = regression_r2(u)
    ratio = (1 - r2[:, 0] + floor) / (1 - r2[:, 1] + floor)
    flagged = (ratio > gain) & (r2[:, 1] >= DETERMINED)
    strongest = [int(j) for j in ratio.argsort(descending=True) if flagged[j]]
    return sorted(strongest[:max_flagged])
