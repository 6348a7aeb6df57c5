"""Explicit structural causal models with additive noise.

An :class:`AdditiveNoiseSCM` over ``n`` causal variables has one mechanism per variable,

.. math:: z_k = f_k(z_{\\mathrm{pa}(k)}) + \\sigma_k e_k, \\qquad e_k \\sim N(0, 1),

evaluated in a topological order of the graph. Its **solution function** ``s: e ↦ z`` solves
all mechanisms at once; a perfect intervention on ``z_k`` replaces mechanism k by a new value
and keeps every other noise component, so that the intervened world reuses the same noise
(``e~_j = e_j`` for ``j ≠ k``) and ``e~_k`` is the noise that would have produced the new value.
A soft intervention (:meth:`AdditiveNoiseSCM.shift`) keeps mechanism k and its parents and
shifts it, which moves ``e_k`` only: ``e~_k = e_k + v``.

These are deterministic tensor maps: the Pyro programs that sample noise and interventions
live in :mod:`pyrocrl.models.truth`.
"""

__all__ = ["AdditiveNoiseSCM", "LinearSCM", "bimodal_weights"]

from collections.abc import Callable, Sequence

import numpy as np
import torch

from pyrocrl.graphs import check_adjacency, is_acyclic, parents, topological_order

Mechanism = Callable[[torch.Tensor], torch.Tensor]
"""A location function ``f_k``: parent values of shape ``(*, |pa(k)|)`` → shape ``(*,)``."""


class AdditiveNoiseSCM:
    """SCM ``z_k = f_k(z_pa(k)) + σ_k e_k`` over a fixed DAG.

    :param adjacency: ``(n, n)`` 0/1 matrix, ``adjacency[i, j] = 1`` for ``z_i → z_j``.
    :param locs: one location function per variable (``None`` for a root, meaning ``f_k = 0``).
        ``locs[k]`` receives the values of ``z_k``'s parents, in increasing index order.
    :param noise_scale: ``σ``, shape ``(n,)``, positive; defaults to ones.
    """

    def __init__(
        self,
        adjacency: np.ndarray,
        locs: Sequence[Mechanism | None],
        noise_scale: Sequence[float] | None = None,
    ) -> None:
        self.adjacency = check_adjacency(adjacency)
        if not is_acyclic(self.adjacency):
            raise ValueError("the adjacency matrix has a cycle; an SCM needs a DAG")
        self.n = len(self.adjacency)
        if len(locs) != self.n:
            raise ValueError(
                f"need one location function per variable ({self.n}), got {len(locs)}"
            )
        self.locs = list(locs)
        scale = np.ones(self.n) if noise_scale is None else np.asarray(noise_scale, float)
        if scale.shape != (self.n,) or not (scale > 0).all():
            raise ValueError(f"noise_scale must be {self.n} positive numbers, got {scale}")
        self.noise_scale = torch.as_tensor(scale, dtype=torch.get_default_dtype())
        self.order = topological_order(self.adjacency)
        self.parents = [torch.as_tensor(parents(self.adjacency, k)) for k in range(self.n)]
        for k in range(self.n):
            if len(self.parents[k]) and self.locs[k] is None:
                raise ValueError(f"z{k + 1} has parents but no location function")

    def loc(self, k: int, z: torch.Tensor) -> torch.Tensor:
        """``f_k`` evaluated on the parents of ``z_k`` read from ``z`` of shape ``(*, n)``."""
        if self.locs[k] is None:
            return z.new_zeros(z.shape[:-1])
        return self.locs[k](z[..., self.parents[k]])

    def mechanism(self, k: int, z: torch.Tensor, noise_k: torch.Tensor) -> torch.Tensor:
        """``z_k = f_k(z_pa(k)) + σ_k e_k``; ``z`` has shape ``(*, n)``, ``noise_k`` ``(*,)``."""
        return self.loc(k, z) + self.noise_scale[k] * noise_k

    def solve(self, noise: torch.Tensor) -> torch.Tensor:
        """Solution function ``s``: noise of shape ``(*, n)`` → causal variables ``(*, n)``."""
        z = noise.new_zeros(noise.shape)
        for k in self.order:
            z[..., k] = self.mechanism(k, z, noise[..., k])
        return z

    def abduct(self, z: torch.Tensor) -> torch.Tensor:
        """Inverse solution function ``s⁻¹``: causal variables ``(*, n)`` → noise ``(*, n)``."""
        loc = torch.stack([self.loc(k, z) for k in range(self.n)], dim=-1)
        return (z - loc) / self.noise_scale

    def _check_target(self, target: torch.Tensor) -> None:
        if target.dtype.is_floating_point:
            raise TypeError(f"target must hold integers, got dtype {target.dtype}")
        if target.numel() and (target.min() < 0 or target.max() > self.n):
            raise ValueError(
                f"intervention target must lie in 0..{self.n} (0 = none), "
                f"got values in {int(target.min())}..{int(target.max())}"
            )

    def intervene(
        self, noise: torch.Tensor, target: torch.Tensor, value: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Perfect intervention ``do(z_target = value)``, one per row, with shared noise.

        :param noise: ``e``, shape ``(*, n)``.
        :param target: shape ``(*,)``, integers in ``0 … n``; 0 means no intervention and
            ``k ≥ 1`` intervenes on ``z_k`` (the variable at index ``k − 1``).
        :param value: the new value of the intervened variable, shape ``(*,)``.
        :returns: ``(noise_tilde, z_tilde)``, both of shape ``(*, n)``. Components that are
            not descendants of the target are bitwise equal to the unintervened ones.
        """
        self._check_target(target)
        hit = torch.nn.functional.one_hot(target, self.n + 1)[..., 1:].bool()
        return self.intervene_set(noise, hit, value[..., None].expand(hit.shape))

    def intervene_set(
        self, noise: torch.Tensor, hit: torch.Tensor, value: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Perfect intervention on every variable ``hit`` marks at once, one set per row,
        with shared noise: ``do(z_k = value_k)`` for the marked ``k``.

        :param noise: ``e``, shape ``(*, n)``; :param hit: booleans ``(*, n)``;
        :param value: the new values ``(*, n)`` (read where ``hit``).
        :returns: ``(noise_tilde, z_tilde)``, both of shape ``(*, n)``. Components that are
            not descendants of a hit variable are bitwise equal to the unintervened ones.
        """
        z = noise.new_zeros(noise.shape)
        noise_tilde = noise.clone()
        for k in self.order:
            loc = self.loc(k, z)
            z[..., k] = torch.where(
                hit[..., k], value[..., k], loc + self.noise_scale[k] * noise[..., k]
            )
            noise_tilde[..., k] = torch.where(
                hit[..., k], (value[..., k] - loc) / self.noise_scale[k], noise[..., k]
            )
        return noise_tilde, z

    def shift(
        self, noise: torch.Tensor, target: torch.Tensor, value: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Soft intervention: mechanism ``target`` keeps its parents and is shifted by
        ``σ_k · value``, so ``e~_k = e_k + value`` and every other noise component stays.

        Shapes and ``target`` as for :meth:`intervene`.

        :returns: ``(noise_tilde, z_tilde)``, both of shape ``(*, n)``.
        """
        self._check_target(target)
        hit = torch.nn.functional.one_hot(target, self.n + 1)[..., 1:].bool()
        return self.shift_set(noise, hit, value[..., None].expand(hit.shape))

    def shift_set(
        self, noise: torch.Tensor, hit: torch.Tensor, value: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Soft intervention on every variable ``hit`` ``(*, n)`` marks, each shifted by
        its ``value`` ``(*, n)``: ``e~_k = e_k + value_k``.

        :returns: ``(noise_tilde, z_tilde)``, both of shape ``(*, n)``.
        """
        noise_tilde = torch.where(hit, noise + value, noise)
        return noise_tilde, self.solve(noise_tilde)


class LinearSCM(AdditiveNoiseSCM):
    """Linear Gaussian SCM ``z_k = Σ_i w_ik z_i + σ_k e_k``.

    :param weights: ``(n, n)`` matrix with ``weights[i, k]`` the effect of ``z_i`` on ``z_k``;
        its non-zero pattern is the graph.
    :param noise_scale: ``σ``, shape ``(n,)``; defaults to ones.

    Solving it is ``z = e (I − W)⁻¹`` for a row of noise ``e``: with ``z1 → z2`` of weight
    2, ``z2 = 2 z1 + e2``.

    >>> scm = LinearSCM(np.array([[0.0, 2.0], [0.0, 0.0]]))
    >>> scm.solve(torch.tensor([[1.0, 0.5]])).tolist()
    [[1.0, 2.5]]
    """

    def __init__(self, weights: np.ndarray, noise_scale: Sequence[float] | None = None) -> None:
        self.weights = np.asarray(weights, dtype=np.float64)
        adjacency = (self.weights != 0).astype(np.int8)
        w = torch.as_tensor(self.weights, dtype=torch.get_default_dtype())
        locs = [
            _linear_loc(w[parents(adjacency, k), k]) if adjacency[:, k].any() else None
            for k in range(len(adjacency))
        ]
        super().__init__(adjacency, locs, noise_scale)


def _linear_loc(w: torch.Tensor) -> Mechanism:
    return lambda z_pa: z_pa @ w


def bimodal_weights(adjacency: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Edge weights ``w = sign(a)(1 + 0.3 b)`` with ``a, b ~ N(0, 1)``, zero off the graph.

    Weights cluster around ±1, so no edge is nearly absent. One pair ``(a, b)`` is drawn for
    every entry of the matrix in row-major order, whether or not the edge exists, so the
    weights of existing edges do not depend on which other edges were drawn.

    :returns: ``float64`` array of the adjacency's shape.
    """
    a = rng.standard_normal(adjacency.shape)
    b = rng.standard_normal(adjacency.shape)
    return np.where(adjacency != 0, np.sign(a) * (1.0 + 0.3 * b), 0.0)
