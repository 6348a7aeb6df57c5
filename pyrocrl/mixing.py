"""Invertible maps from causal variables to observations (the "mixing" ``g: z ↦ x``)."""

__all__ = ["CouplingMixing2D", "Rotation", "Sensors", "random_rotation"]

import math

import numpy as np
import scipy.linalg
import torch


def random_rotation(n: int, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    """Random rotation ``R = exp(O) ∈ SO(n)`` with ``O`` skew-symmetric.

    The ``n(n−1)/2`` free entries of ``O`` are drawn from ``N(0, scale²)``. The matrix
    exponential of a skew-symmetric matrix is orthogonal with determinant ``exp(tr O) = 1``.

    :returns: ``float64`` array of shape ``(n, n)``.

    >>> R = random_rotation(5, np.random.default_rng(0))
    >>> bool(np.allclose(R @ R.T, np.eye(5))), round(float(np.linalg.det(R)), 6)
    (True, 1.0)
    """
    upper = np.triu(scale * rng.standard_normal((n, n)), k=1)
    return scipy.linalg.expm(upper - upper.T)


class Rotation:
    """Linear mixing ``x = R z`` with an orthogonal ``R`` of shape ``(D, n)``, ``D = n``."""

    def __init__(self, matrix: np.ndarray) -> None:
        self.matrix = np.asarray(matrix, dtype=np.float64)
        if self.matrix.ndim != 2 or self.matrix.shape[0] != self.matrix.shape[1]:
            raise ValueError(f"a rotation must be a square matrix, got {self.matrix.shape}")
        self._r = torch.as_tensor(self.matrix, dtype=torch.get_default_dtype())
        self.dim_x, self.n = self.matrix.shape

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """``(*, n) → (*, D)``."""
        return z @ self._r.T

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """``(*, D) → (*, n)``, using ``R⁻¹ = Rᵀ``."""
        return x @ self._r


class Sensors:
    """``D`` saturating sensors, each reading one direction of the causal variables:
    ``x_k = tanh(a_k · z + b_k)``, ``D ≥ n``.

    A camera pixel or a photodiode responds like this: linearly near its operating point
    ``b_k``, flat near the ends of its range. With ``A = (a_1 … a_D)ᵀ`` of full column rank
    the map is injective, and its inverse on the image is ``z = A⁺ (atanh(x) − b)``.

    :param matrix: ``A``, shape ``(D, n)``, rank ``n``.
    :param offset: ``b``, shape ``(D,)``.

    >>> rng = np.random.default_rng(0)
    >>> g = Sensors(rng.normal(size=(6, 3)) / 3**0.5, 0.5 * rng.normal(size=6))
    >>> z = torch.randn(4, 3)
    >>> torch.allclose(g.inverse(g(z)), z, atol=1e-4)
    True
    """

    def __init__(self, matrix: np.ndarray, offset: np.ndarray) -> None:
        self.matrix = np.asarray(matrix, dtype=np.float64)
        self.offset = np.asarray(offset, dtype=np.float64)
        if self.matrix.ndim != 2 or self.matrix.shape[0] < self.matrix.shape[1]:
            raise ValueError(f"sensors need a (D, n) matrix with D ≥ n, got {self.matrix.shape}")
        if self.offset.shape != self.matrix.shape[:1]:
            raise ValueError(f"offset must be ({self.matrix.shape[0]},), got {self.offset.shape}")
        if np.linalg.matrix_rank(self.matrix) < self.matrix.shape[1]:
            raise ValueError("the sensors' matrix must have full column rank")
        dtype = torch.get_default_dtype()
        self._a = torch.as_tensor(self.matrix, dtype=dtype)
        self._b = torch.as_tensor(self.offset, dtype=dtype)
        self._pinv = torch.as_tensor(np.linalg.pinv(self.matrix))  # float64: see inverse
        self.dim_x, self.n = self.matrix.shape

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """``(*, n) → (*, D)``."""
        return torch.tanh(z @ self._a.T + self._b)

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """``(*, D) → (*, n)``, least squares on ``atanh(x) − b``: exact on the image, up to
        rounding, which ``atanh`` magnifies near a saturated reading (so it is computed in
        float64; a reading that rounded to ±1 has lost its value)."""
        u = torch.atanh(x.double()) - torch.as_tensor(self.offset)
        return (u @ self._pinv.T).to(x.dtype)


class CouplingMixing2D:
    """Invertible nonlinear map of the plane, ``x = h₂(h₁(R_θ z))``.

    ``R_θ`` rotates by ``angle`` (radians); ``h₁(a, b) = (a, b + bend·a²)`` bends the plane into
    a parabola; ``h₂(a, b) = (a + shear·tanh(b), b)`` shears it. Every step is triangular
    or orthogonal, so the inverse is closed-form.
    """

    n = 2
    dim_x = 2

    def __init__(self, angle: float = math.pi / 4, bend: float = 0.3, shear: float = 1.0) -> None:
        self.angle, self.bend, self.shear = float(angle), float(bend), float(shear)
        c, s = math.cos(self.angle), math.sin(self.angle)
        self._r = torch.tensor([[c, -s], [s, c]], dtype=torch.get_default_dtype())

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """``(*, 2) → (*, 2)``."""
        u = z @ self._r.T
        a, b = u[..., 0], u[..., 1]
        b = b + self.bend * a**2
        a = a + self.shear * torch.tanh(b)
        return torch.stack([a, b], dim=-1)

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """``(*, 2) → (*, 2)``."""
        a, b = x[..., 0], x[..., 1]
        a = a - self.shear * torch.tanh(b)
        b = b - self.bend * a**2
        return torch.stack([a, b], dim=-1) @ self._r
