"""Intervention targets that are sets of variables.

A pair's intervention may hit up to ``k`` of the ``n`` causal variables at once. The
target site stays one categorical variable: its value is the index of a set in the
*target table*, every subset of ``{z1, …, zn}`` with at most ``k`` members, ordered by
size and then lexicographically. Index 0 is the empty set (no intervention) and indices
``1 … n`` are the single variables, so with ``k = 1`` the table is the familiar
``0 … n`` (0 = none, ``j`` = ``z_j``) and every single-target dataset and model reads as
before. With ``n = 3, k = 2``::

    index   0   1     2     3     4        5        6
    set     ∅   {z1}  {z2}  {z3}  {z1,z2}  {z1,z3}  {z2,z3}

The table has ``K = Σ_{j ≤ k} C(n, j)`` rows; an ELBO enumerates all of them, so ``K``
is the cost factor of training (``n = 4, k = 2``: 11 hypotheses against 5).
"""

__all__ = ["num_targets", "set_index", "target_names", "target_sets"]

import functools
import itertools
from collections.abc import Iterable
from math import comb

import numpy as np


def num_targets(n: int, max_targets: int = 1) -> int:
    """``K``, the number of target sets with at most ``max_targets`` of ``n`` variables.

    >>> num_targets(4, 1), num_targets(4, 2), num_targets(4, 4)
    (5, 11, 16)
    """
    _check(n, max_targets)
    return sum(comb(n, j) for j in range(max_targets + 1))


@functools.cache
def _table(n: int, max_targets: int) -> np.ndarray:
    rows = [
        members
        for size in range(max_targets + 1)
        for members in itertools.combinations(range(n), size)
    ]
    table = np.zeros((len(rows), n), dtype=bool)
    for index, members in enumerate(rows):
        table[index, list(members)] = True
    return table


def target_sets(n: int, max_targets: int = 1) -> np.ndarray:
    """The target table: ``(K, n)`` booleans, row ``t`` marking the variables of set ``t``
    (a fresh array; see the module docstring for the order).

    >>> target_sets(3, 2).astype(int).tolist()
    [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]]
    """
    _check(n, max_targets)
    return _table(n, max_targets).copy()


def set_index(members: Iterable[int], n: int, max_targets: int = 1) -> int:
    """The index of the set of variables ``members`` (numbered from 1, as in ``z1``).

    >>> set_index([1, 3], n=3, max_targets=2), set_index([], n=3)
    (5, 0)

    :raises ValueError: for a variable outside ``1 … n`` or more than ``max_targets``.
    """
    _check(n, max_targets)
    chosen = sorted({int(k) for k in members})
    if any(not 1 <= k <= n for k in chosen):
        raise ValueError(f"variables are numbered 1..{n}, got {chosen}")
    if len(chosen) > max_targets:
        raise ValueError(
            f"{len(chosen)} variables intervened on, but targets hold at most {max_targets}"
        )
    row = np.zeros(n, dtype=bool)
    row[[k - 1 for k in chosen]] = True
    return int(np.flatnonzero((_table(n, max_targets) == row).all(-1))[0])


def target_names(n: int, max_targets: int = 1, prefix: str = "z") -> list[str]:
    """A name per target set: ``"none"``, ``"z1"``, …, ``"z1+z2"``, ….

    >>> target_names(2, 2)
    ['none', 'z1', 'z2', 'z1+z2']
    """
    _check(n, max_targets)
    return [
        "+".join(f"{prefix}{k + 1}" for k in np.flatnonzero(row)) or "none"
        for row in _table(n, max_targets)
    ]


def _check(n: int, max_targets: int) -> None:
    if n < 1 or not 1 <= max_targets <= n:
        raise ValueError(
            f"need n ≥ 1 and 1 ≤ max_targets ≤ n, got n={n}, max_targets={max_targets}"
        )
