"""A posterior over the causal graph of the learned variables: exact Bayesian model
averaging over DAGs with linear-Gaussian mechanisms.

Given the encoded pairs of a fitted model — the causal variables of both worlds and the
inferred intervention targets — every variable ``z_j`` is a linear-Gaussian function of
its parents wherever its mechanism is intact: in the first worlds, and in the second
worlds of the pairs that did not intervene on it. The evidence of a parent set ``pa`` for
``z_j`` integrates the weights and the noise variance out in closed form (a conjugate
normal-inverse-gamma regression: Zellner's g-prior on the weights, Jeffreys' prior on the
variance), so

.. math:: p(G \\mid \\mathcal D) \\propto p(G) \\prod_j p(z_j \\mid z_{\\mathrm{pa}_G(j)}),

and an edge's posterior probability is the mass of the graphs that hold it. The sum over
DAGs runs over causal orders (Friedman & Koller, 2003): for an order, parent sets are the
subsets of each variable's predecessors and factor; summing over all ``n!`` orders is exact
under the *order-modular* prior (each order equally likely, each parent set equally
likely given it), which favours graphs that fit many orders. This is feasible up to
:data:`MAX_VARIABLES` variables.

The likelihood is that of the linear SCM check (:mod:`pyrocrl.inference.scm_check`).

**Learned variables leak.** A fitted model's variables are the true ones up to a small
leak of each into the others (a DCI of 0.98 rather than 1), so their own SCM has small
extra edges, which the exact posterior makes certain once it reads enough pairs although
the true graph lacks them. The data say how large the leak is, without labels: a perfect
intervention on ``z_i`` leaves the variables before ``z_i`` in the causal order unchanged,
so what the learned ones change there, relative to the change of ``z_i``, is leak
(:func:`leakage`, the median ratio of the variances of those changes, ``δ``). The posterior
then treats the linear-Gaussian model as an approximation good to that leak: it is the
coarsened posterior of Miller & Dunson (2019), which conditions on the data lying within a
relative-entropy distance of the model's, approximated by raising the likelihood to the
power ``α = ζ / (ζ + N)`` for ``N`` observations, with ``1/ζ`` the expected distance; a
regression that misses a partial correlation ``ρ`` is ``−½ log(1 − ρ²) ≈ ρ²/2`` away per
observation, and a leak ``δ`` is a squared correlation, hence ``ζ = 2/δ`` and
``α = 1 / (1 + N δ / 2)``. Under Zellner's g-prior with the unit-information ``g`` the
tempered evidence is the evidence of ``α N`` rows with the same ``R²``: the posterior reads
at most about ``2/δ`` observations' worth, whatever ``N``. With ``leakage=0`` it is the
exact posterior. ``benchmarks/edge_posterior.py`` measures the calibration of both against
the true graphs of the scaling toy (see ``docs/graphs.md``).
"""

__all__ = [
    "MAX_VARIABLES",
    "MIN_GROUP",
    "EdgePosterior",
    "edge_posterior",
    "fitted_edge_posterior",
    "leakage",
]

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import logsumexp

from pyrocrl.interventions import target_sets
from pyrocrl.sites import variable_names

MAX_VARIABLES = 8
"""The most variables whose orders are summed over (``8! = 40320``)."""
MIN_GROUP = 10
"""Pairs that intervene on one variable needed to read the leak from them."""


@dataclass(frozen=True)
class EdgePosterior:
    """Edge probabilities ``probs (n, n)`` (``[i, j]`` for ``z_i → z_j``), the posterior
    probability that ``z_i`` comes before ``z_j`` (``before``), the names, and the leak
    ``δ`` the likelihood was tempered for (0: the exact posterior)."""

    probs: np.ndarray
    before: np.ndarray
    names: list[str]
    leakage: float = 0.0

    def most_probable_edges(self, threshold: float = 0.5) -> np.ndarray:
        """The adjacency of the edges with probability above ``threshold`` (0/1)."""
        return (self.probs > threshold).astype(np.int8)


def edge_posterior(
    z: np.ndarray,
    z_tilde: np.ndarray,
    targets: np.ndarray,
    *,
    max_targets: int = 1,
    pairs: int | None = 1000,
    g: float | None = None,
    leakage: float | str = "estimate",
) -> EdgePosterior:
    """The posterior over DAGs of linear-Gaussian mechanisms, as edge probabilities.

    :param z, z_tilde: causal variables of both worlds, ``(N, n)``.
    :param targets: intervention targets ``(N,)`` (indices of the target table of
        :mod:`pyrocrl.interventions` for ``max_targets ≥ 2``).
    :param pairs: read the first ``pairs`` pairs (``None``: all).
    :param g: of Zellner's g-prior (default: the number of rows, the unit-information
        prior).
    :param leakage: the leak ``δ`` of the variables into each other to temper the
        likelihood for (see the module): ``"estimate"`` reads it from the pairs
        (:func:`leakage`, in the order of the exact posterior); ``0`` gives the exact
        posterior, for variables known to be the true ones.
    :raises ValueError: on inconsistent shapes, non-finite values, more than
        :data:`MAX_VARIABLES` variables, or a negative ``leakage``.
    """
    z, z_tilde = np.asarray(z, dtype=np.float64), np.asarray(z_tilde, dtype=np.float64)
    targets = np.asarray(targets)
    if z.ndim != 2 or z.shape != z_tilde.shape or targets.shape != z.shape[:1]:
        raise ValueError(
            f"need z and z_tilde (N, n) and targets (N,), got {z.shape}, {z_tilde.shape}, "
            f"{targets.shape}"
        )
    n = z.shape[1]
    if not 2 <= n <= MAX_VARIABLES:
        raise ValueError(f"the sum over orders takes 2 … {MAX_VARIABLES} variables, got {n}")
    if not (np.isfinite(z).all() and np.isfinite(z_tilde).all()):
        raise ValueError("z and z_tilde must be finite")
    if leakage != "estimate" and not (isinstance(leakage, int | float) and leakage >= 0):
        raise ValueError(f"leakage must be 'estimate' or a number ≥ 0, got {leakage!r}")
    z, z_tilde, targets = z[:pairs], z_tilde[:pairs], targets[:pairs]
    hit = target_sets(n, max_targets)[targets]  # (N, n): the intervened variables
    delta = 0.0 if leakage == "estimate" else float(leakage)
    posterior = _order_sum(_local_scores(z, z_tilde, hit, g, delta), n, delta)
    if leakage != "estimate":
        return posterior
    delta = _leakage(z, z_tilde, hit, posterior.before)
    return _order_sum(_local_scores(z, z_tilde, hit, g, delta), n, delta) if delta else posterior


def leakage(z: np.ndarray, z_tilde: np.ndarray, targets: np.ndarray, before: np.ndarray) -> float:
    """How much the variables leak into each other, read from pairs without labels: over
    the pairs that intervene on one variable ``z_i`` (at least :data:`MIN_GROUP` of them)
    and the variables ``z_j`` that come before it (``before[j, i] > 0.5``, the posterior
    probability of ``z_j`` before ``z_i``), the median of ``Var(Δz_j) / Var(Δz_i)``, with
    ``Δ`` the change from the first world to the second in standardized variables. A
    perfect intervention leaves the variables before its target unchanged, so this is 0
    for the true variables; 0 also when no group is large enough.

    :param z, z_tilde: ``(N, n)``; :param targets: ``(N,)`` single targets (0 = none,
        ``k`` for ``z_k``).
    """
    z, z_tilde = np.asarray(z, dtype=np.float64), np.asarray(z_tilde, dtype=np.float64)
    n = z.shape[1]
    hit = np.eye(n + 1, n, k=-1, dtype=bool)[np.asarray(targets)]
    return _leakage(z, z_tilde, hit, np.asarray(before))


def _leakage(z: np.ndarray, z_tilde: np.ndarray, hit: np.ndarray, before: np.ndarray) -> float:
    """:func:`leakage` with the intervened variables as a mask ``hit (N, n)`` (pairs that
    hit several variables are left out)."""
    both = np.concatenate([z, z_tilde])
    scale = both.std(0)
    scale[scale == 0] = 1.0
    change = (z_tilde - z) / scale
    single = hit.sum(1) == 1
    ratios = []
    for i in range(z.shape[1]):
        rows = single & hit[:, i]
        spread = change[rows, i].var() if rows.sum() >= MIN_GROUP else 0.0
        if spread > 0:
            earlier = [j for j in range(z.shape[1]) if j != i and before[j, i] > 0.5]
            ratios += [change[rows, j].var() / spread for j in earlier]
    return float(np.median(ratios)) if ratios else 0.0


def fitted_edge_posterior(
    guide: Any, x: Any, x_tilde: Any, *, pairs: int | None = 1000, leakage: Any = "estimate"
):
    """:func:`edge_posterior` of a fitted model's learned variables: the encoded pairs
    ``(N, D)`` each, and their most probable intervention targets (the leak estimated from
    them, by default)."""
    from pyrocrl.inference.queries import encode, predict_targets

    x, x_tilde = np.asarray(x)[:pairs], np.asarray(x_tilde)[:pairs]
    z = encode(guide, x)["z"].numpy()
    z_tilde = encode(guide, x_tilde)["z"].numpy()
    targets = predict_targets(guide, x, x_tilde).numpy()
    max_targets = guide.model.max_targets
    return edge_posterior(
        z, z_tilde, targets, max_targets=max_targets, pairs=pairs, leakage=leakage
    )


def _local_scores(
    z: np.ndarray, z_tilde: np.ndarray, hit: np.ndarray, g: float | None, delta: float = 0.0
):
    """``scores[j][pa]``: log evidence of parent set ``pa`` (a bitmask) for ``z_j``, the
    likelihood tempered for the leak ``delta``."""
    both = np.concatenate([z, z_tilde])
    scale = both.std(0)
    scale[scale == 0] = 1.0
    both = (both - both.mean(0)) / scale
    intact = np.concatenate([np.ones_like(hit), ~hit])  # (2N, n): mechanism j at work
    n = z.shape[1]
    scores = []
    for j in range(n):
        rows = both[intact[:, j]]
        y = rows[:, j] - rows[:, j].mean()
        effective = max(len(y) / (1 + len(y) * delta / 2), n + 1.0)  # α N, coarsened
        others = [k for k in range(n) if k != j]
        table = {}
        for size in range(n):
            for parents in itertools.combinations(others, size):
                x = rows[:, list(parents)]
                x = x - x.mean(0)
                table[sum(1 << k for k in parents)] = _evidence(y, x, g, effective)
        scores.append(table)
    return scores


def _evidence(y: np.ndarray, x: np.ndarray, g: float | None, effective: float | None = None):
    """Log marginal likelihood of ``y = x w + ε`` (both centred) under Zellner's g-prior
    ``w ~ N(0, g σ² (xᵀx)⁻¹)`` and ``p(σ²) ∝ 1/σ²``, up to a constant shared by all
    parent sets of one variable (Liang et al., 2008, eq. 5). With the likelihood raised to
    ``α = effective / rows``, the same with ``effective`` rows in place of ``rows`` (and
    ``g`` scaled by ``α``)."""
    rows, k = x.shape
    g = float(rows) if g is None else g
    if effective is not None and effective < rows:
        g, rows = g * effective / rows, effective
    total = float(y @ y)
    if k == 0:
        return -(rows - 1) / 2 * math.log(total)
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    explained = float(y @ (x @ coef))
    r2 = min(max(explained / total, 0.0), 1.0 - 1e-12)
    return (
        (rows - 1 - k) / 2 * math.log1p(g)
        - (rows - 1) / 2 * math.log1p(g * (1 - r2))
        - (rows - 1) / 2 * math.log(total)
    )


def _order_sum(scores: list[dict[int, float]], n: int, delta: float = 0.0) -> EdgePosterior:
    """Edge and order probabilities, summed over all orders exactly."""
    # per variable and set of allowed parents U: log Σ_{pa ⊆ U} score, and the same with
    # each parent i forced in
    total = np.full((n, 1 << n), -np.inf)
    with_parent = np.full((n, n, 1 << n), -np.inf)
    for j in range(n):
        for allowed in range(1 << n):
            if allowed >> j & 1:
                continue
            subsets = [pa for pa in scores[j] if pa & ~allowed == 0]
            values = np.array([scores[j][pa] for pa in subsets])
            total[j, allowed] = logsumexp(values)
            for i in range(n):
                chosen = [v for pa, v in zip(subsets, values, strict=True) if pa >> i & 1]
                if chosen:
                    with_parent[i, j, allowed] = logsumexp(chosen)
    log_orders, edge_terms, order_pairs = [], [], []
    for order in itertools.permutations(range(n)):
        before, allowed = 0, []
        for j in order:
            allowed.append(before)
            before |= 1 << j
        parts = np.array([total[j, u] for j, u in zip(order, allowed, strict=True)])
        log_orders.append(parts.sum())
        edges = np.full((n, n), -np.inf)
        for j, u in zip(order, allowed, strict=True):
            edges[:, j] = with_parent[:, j, u] - total[j, u]
        edge_terms.append(edges)
        rank = np.empty(n, dtype=int)
        rank[list(order)] = np.arange(n)
        order_pairs.append(rank[:, None] < rank[None, :])
    log_orders = np.array(log_orders)
    weights = np.exp(log_orders - logsumexp(log_orders))
    probs = np.einsum("o,oij->ij", weights, np.exp(np.array(edge_terms)))
    before = np.einsum("o,oij->ij", weights, np.array(order_pairs, dtype=float))
    np.fill_diagonal(probs, 0.0)
    probs, before = np.clip(probs, 0.0, 1.0), np.clip(before, 0.0, 1.0)  # rounding
    return EdgePosterior(probs, before, variable_names(n), delta)
