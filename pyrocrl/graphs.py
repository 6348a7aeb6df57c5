"""Directed acyclic graphs over causal variables, as adjacency matrices.

Convention: ``adjacency[i, j] == 1`` means an edge ``z_i → z_j`` (row = cause, column = effect).
Variables are indexed from 0 in code and named ``z1 … zn`` in data and outputs.
"""

__all__ = [
    "ancestors",
    "check_adjacency",
    "descendants",
    "is_acyclic",
    "parents",
    "random_dag",
    "topological_order",
]

import numpy as np


def check_adjacency(adjacency: np.ndarray) -> np.ndarray:
    """Return ``adjacency`` as a square 0/1 integer array, or raise ``ValueError``."""
    a = np.asarray(adjacency)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"adjacency must be a square matrix, got shape {a.shape}")
    if not np.isin(a, (0, 1)).all():
        raise ValueError("adjacency entries must be 0 or 1")
    if np.diag(a).any():
        raise ValueError("adjacency has self-loops on the diagonal")
    return a.astype(np.int8)


def random_dag(n: int, edge_probability: float, rng: np.random.Generator) -> np.ndarray:
    """Random DAG over the fixed order ``z1 < z2 < … < zn``.

    Each forward edge ``z_i → z_j`` (``i < j``) is present independently with probability
    ``edge_probability``, so the adjacency matrix is strictly upper-triangular. Edges are
    drawn in row-major order; for probability ½ each draw is ``rng.integers(0, 2)``, which
    gives the same graph for the same seed as the reference implementation of Brehmer et al.

    :param int n: number of variables, ``n ≥ 1``.
    :param float edge_probability: probability of each forward edge, in ``[0, 1]``.
    :param rng: a NumPy generator; the only source of randomness.
    :returns: ``int8`` array of shape ``(n, n)``.

    >>> adjacency = random_dag(5, 0.5, np.random.default_rng(0))
    >>> bool((adjacency == np.triu(adjacency, k=1)).all())  # only forward edges
    True
    >>> is_acyclic(adjacency)
    True
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if not 0.0 <= edge_probability <= 1.0:
        raise ValueError(f"edge_probability must lie in [0, 1], got {edge_probability}")
    rows, cols = np.triu_indices(n, k=1)
    if edge_probability == 0.5:
        present = rng.integers(0, 2, size=len(rows))
    else:
        present = rng.random(len(rows)) < edge_probability
    adjacency = np.zeros((n, n), dtype=np.int8)
    adjacency[rows, cols] = present
    return adjacency


def parents(adjacency: np.ndarray, j: int) -> np.ndarray:
    """Indices of the parents of variable ``j``."""
    return np.flatnonzero(np.asarray(adjacency)[:, j])


def _reachability(adjacency: np.ndarray) -> np.ndarray:
    """Boolean matrix ``R[i, j]``: a directed path of length ≥ 1 leads from i to j."""
    a = np.asarray(adjacency).astype(bool)
    reach = a.copy()
    for _ in range(len(a)):
        step = reach | ((reach.astype(np.int64) @ a.astype(np.int64)) > 0)
        if (step == reach).all():
            break
        reach = step
    return reach


def descendants(adjacency: np.ndarray, j: int) -> np.ndarray:
    """Indices of the proper descendants of variable ``j`` (``j`` itself excluded)."""
    return np.flatnonzero(_reachability(adjacency)[j])


def ancestors(adjacency: np.ndarray, j: int) -> np.ndarray:
    """Indices of the proper ancestors of variable ``j`` (``j`` itself excluded)."""
    return np.flatnonzero(_reachability(adjacency)[:, j])


def is_acyclic(adjacency: np.ndarray) -> bool:
    """Whether the directed graph has no cycle (self-loops count as cycles)."""
    return not np.diag(_reachability(adjacency)).any()


def topological_order(adjacency: np.ndarray) -> list[int]:
    """A topological order (causes before effects); ties are broken by index.

    :raises ValueError: if the graph has a cycle.

    >>> adjacency = np.array([[0, 0, 1], [1, 0, 1], [0, 0, 0]])  # z2 → z1 → z3, z2 → z3
    >>> topological_order(adjacency)
    [1, 0, 2]
    >>> parents(adjacency, 2).tolist(), descendants(adjacency, 1).tolist()
    ([0, 1], [0, 2])
    """
    a = np.asarray(adjacency).astype(bool)
    indegree = a.sum(axis=0)
    remaining = set(range(len(a)))
    order = []
    while remaining:
        roots = [j for j in sorted(remaining) if indegree[j] == 0]
        if not roots:
            raise ValueError("the graph has a cycle, so it has no topological order")
        j = roots[0]
        order.append(j)
        remaining.remove(j)
        indegree = indegree - a[j]
    return order
