"""Monotone rational-quadratic splines: elementwise bijections of the real line, for any
backend.

Each component ``k`` of an array ``x (*, n)`` has its own map ``g_k``: on ``[−B, B]`` a
rational-quadratic spline with ``K`` bins (Durkan et al., 2019, *Neural spline flows*),
outside it the identity. The knots ``(x_j, y_j)`` and the slopes ``δ_j > 0`` at the inner
knots come from unconstrained parameters ``θ (n, 3K − 1)``: ``K`` bin widths and ``K`` bin
heights (each a softmax over the bins, times ``2B``) and ``K − 1`` slopes (``exp``, floored); the
slopes at ``±B`` are 1, so ``g_k`` and its derivative are continuous everywhere. At
``θ = 0`` every bin is a square with slope 1 at both ends: ``g_k`` is the identity.

In bin ``j``, with ``ξ = (x − x_j) / w_j ∈ [0, 1]`` and ``s_j = h_j / w_j``::

    g(x) = y_j + h_j (s_j ξ² + δ_j ξ(1 − ξ)) / (s_j + (δ_{j+1} + δ_j − 2 s_j) ξ(1 − ξ))

whose derivative is positive and whose inverse solves a quadratic in ``ξ``. Both
directions and ``log g'`` are closed forms, written once against a backend module
(:mod:`pyrocrl.backends`), so Pyro and NumPyro programs share them:

>>> import torch
>>> from pyrocrl.backends import pyro as b
>>> theta = torch.randn(2, 3 * 4 - 1)
>>> x = torch.linspace(-5, 5, 11)[:, None].expand(11, 2)
>>> y, log_slope = spline(b, x, theta, bound=3.0)
>>> back, _ = spline(b, y, theta, bound=3.0, inverse=True)
>>> torch.allclose(back, x, atol=1e-5), bool((y[1:] > y[:-1]).all())
(True, True)
>>> torch.equal(y[0], x[0])  # outside [−B, B]: the identity
True
"""

__all__ = ["MIN_BIN", "MIN_SLOPE", "bins", "spline"]

from types import ModuleType
from typing import Any

import numpy as np

MIN_BIN = 1e-3
"""The smallest bin width and height, as a share of ``2B``."""
MIN_SLOPE = 1e-3
"""The smallest slope at an inner knot."""


def bins(theta: Any) -> int:
    """The number of bins ``K`` of spline parameters ``θ (n, 3K − 1)``."""
    size = theta.shape[-1]
    if size < 2 or (size + 1) % 3:
        raise ValueError(f"spline parameters need 3K − 1 entries (K ≥ 1 bins), got {size}")
    return (size + 1) // 3


def _knots(b: ModuleType, raw: Any, bound: float, like: Any) -> tuple[Any, Any]:
    """``(sizes (n, K), knots (n, K + 1))`` of bins from their raw sizes."""
    k = raw.shape[-1]
    sizes = 2 * bound * (MIN_BIN + (1 - MIN_BIN * k) * b.softmax(raw, axis=-1))
    upper = b.as_array(np.triu(np.ones((k, k))), like=like)  # cumulative sums as a product
    start = b.full((*raw.shape[:-1], 1), -bound, like=like)
    return sizes, b.concat([start, -bound + sizes @ upper], axis=-1)


def _pick(b: ModuleType, table: Any, onehot: Any) -> Any:
    """``table[k, j]`` of each element's bin: ``(n, J), (*, n, J) → (*, n)``."""
    return (onehot * table[..., : onehot.shape[-1]]).sum(-1)


def spline(
    b: ModuleType, x: Any, theta: Any, bound: float, inverse: bool = False
) -> tuple[Any, Any]:
    """``(g(x), log g'(x))`` of the splines ``θ (n, 3K − 1)`` on ``x (*, n)``; with
    ``inverse=True`` ``(g⁻¹(x), log g'(g⁻¹(x)))``. See the module for the maths."""
    k = bins(theta)
    widths, xs = _knots(b, theta[..., :k], bound, like=x)
    heights, ys = _knots(b, theta[..., k : 2 * k], bound, like=x)
    ones = b.full((*theta.shape[:-1], 1), 1.0, like=x)
    inner_slopes = MIN_SLOPE + (1 - MIN_SLOPE) * b.exp(theta[..., 2 * k :])
    slopes = b.concat([ones, inner_slopes, ones], axis=-1)
    inside = (x >= -bound) & (x <= bound)
    inner = b.where(inside, x, 0.0)  # the bin formulas only ever see points inside
    edges = ys if inverse else xs
    index = b.cast(inner[..., None] >= edges[..., 1:k], like=x).sum(-1)
    onehot = b.cast(index[..., None] == b.arange(0, k, like=x), like=x)  # (*, n, K)
    x_j, y_j = _pick(b, xs, onehot), _pick(b, ys, onehot)
    w, h = _pick(b, widths, onehot), _pick(b, heights, onehot)
    d0, d1 = _pick(b, slopes, onehot), _pick(b, slopes[..., 1:], onehot)
    s = h / w
    slack = d1 + d0 - 2 * s
    if inverse:
        dy = inner - y_j
        a = h * (s - d0) + dy * slack
        c = h * d0 - dy * slack
        root = b.maximum(c * c + 4 * a * s * dy, 0.0) ** 0.5
        xi = 2 * s * dy / (c + root)
        out = x_j + xi * w
    else:
        xi = (inner - x_j) / w
        out = y_j + h * (s * xi * xi + d0 * xi * (1 - xi)) / (s + slack * xi * (1 - xi))
    both = xi * (1 - xi)
    denominator = s + slack * both
    numerator = s * s * (d1 * xi * xi + 2 * s * both + d0 * (1 - xi) * (1 - xi))
    log_slope = b.log(numerator) - 2 * b.log(denominator)
    return b.where(inside, out, x), b.where(inside, log_slope, 0.0)
