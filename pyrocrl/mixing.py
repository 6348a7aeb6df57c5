"""Invertible maps from causal variables to observations (the "mixing" ``g: z ↦ x``)."""

__all__ = ["CouplingMixing2D", "Rotation", "random_rotation"]

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
