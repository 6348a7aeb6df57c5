"""Metrics of learned causal representations against a known truth.

- **DCI** (Eastwood & Williams, 2018): regress each true causal variable on the learned
  ones with gradient-boosted trees; the importance matrix ``R`` (learned × true) gives
  *disentanglement* (does each learned variable capture one true variable?),
  *completeness* (is each true variable captured by one learned variable?) and
  *informativeness* (how well the learned variables predict the true ones).
- **Intervention accuracy**: accuracy of the inferred intervention targets after the best
  matching of learned to true variables (no intervention is always matched to itself).
- **Monotone R²**: how far a learned variable is one-to-one in its true variable (a
  learned variable that folds back on itself explains less of itself monotonically).
- **Graphs**: structural Hamming distance and edge precision/recall of a learned graph
  against the true one, after a matching of learned to true variables (from intervention
  labels or from the DCI importance matrix).
"""

__all__ = [
    "DCIScores",
    "GraphScores",
    "dci",
    "graph_scores",
    "intervention_accuracy",
    "match_importance",
    "match_interventions",
    "match_sets",
    "monotone_r2",
    "reliability",
    "set_accuracy",
    "structural_hamming_distance",
]

from dataclasses import dataclass

import numpy as np
import xarray as xr
from scipy.optimize import linear_sum_assignment
from sklearn.ensemble import GradientBoostingRegressor


@dataclass(frozen=True)
class DCIScores:
    """DCI scores; ``importance[j, i]`` is the importance of learned ``j`` for true ``i``."""

    disentanglement: float
    completeness: float
    informativeness: float
    """Mean R² of the regressors on the test set (1 is perfect)."""
    importance: np.ndarray


def _entropy(p: np.ndarray, base: int, axis: int) -> np.ndarray:
    p = p / np.clip(p.sum(axis=axis, keepdims=True), 1e-12, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=axis)
    return h / np.log(base) if base > 1 else np.zeros_like(h)


def _check_pair(name: str, a: np.ndarray, b: np.ndarray) -> None:
    if a.ndim != 2 or b.ndim != 2 or len(a) != len(b):
        raise ValueError(
            f"{name}: need matrices with one row per sample, got shapes {a.shape} and {b.shape}"
        )
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError(f"{name}: inputs hold NaN or infinite values")


def dci(
    learned_train: np.ndarray,
    true_train: np.ndarray,
    learned_test: np.ndarray,
    true_test: np.ndarray,
    *,
    seed: int = 0,
    n_estimators: int = 100,
) -> DCIScores:
    """DCI scores from learned ``(N, m)`` and true ``(N, n)`` causal variables.

    One :class:`~sklearn.ensemble.GradientBoostingRegressor` (seeded) per true variable is
    fitted on the train split; importances are normalized per true variable.

    A representation that holds the true variables in another order is perfectly
    disentangled and complete, and :func:`match_importance` recovers the order:

    >>> z = np.random.default_rng(0).normal(size=(500, 3))
    >>> learned = z[:, [2, 0, 1]]
    >>> scores = dci(learned, z, learned, z)
    >>> scores.disentanglement > 0.99 and scores.completeness > 0.99
    True
    >>> match_importance(scores.importance).tolist()
    [2, 0, 1]
    """
    learned_train, true_train = np.asarray(learned_train), np.asarray(true_train)
    learned_test, true_test = np.asarray(learned_test), np.asarray(true_test)
    _check_pair("dci train split", learned_train, true_train)
    _check_pair("dci test split", learned_test, true_test)
    if learned_train.shape[1] != learned_test.shape[1]:
        raise ValueError("learned variables differ in number between train and test")
    m, n = learned_train.shape[1], true_train.shape[1]
    mean, std = true_train.mean(0), true_train.std(0) + 1e-12
    importance = np.zeros((m, n))
    r2 = np.zeros(n)
    for i in range(n):
        target_train = (true_train[:, i] - mean[i]) / std[i]
        target_test = (true_test[:, i] - mean[i]) / std[i]
        regressor = GradientBoostingRegressor(n_estimators=n_estimators, random_state=seed)
        regressor.fit(learned_train, target_train)
        importance[:, i] = np.abs(regressor.feature_importances_)
        residual = target_test - regressor.predict(learned_test)
        r2[i] = 1.0 - residual.var() / max(target_test.var(), 1e-12)
    total = importance.sum()
    rho = importance.sum(axis=1) / total if total > 0 else np.full(m, 1.0 / m)
    disentanglement = float(np.sum(rho * (1.0 - _entropy(importance, n, axis=1))))
    weight = importance.sum(axis=0) / total if total > 0 else np.full(n, 1.0 / n)
    completeness = float(np.sum(weight * (1.0 - _entropy(importance, m, axis=0))))
    return DCIScores(disentanglement, completeness, float(r2.mean()), importance)


def monotone_r2(learned: np.ndarray, true: np.ndarray) -> float:
    """The share of a learned variable's variance that a monotone function of the true
    variable explains: ``1 − Var(ẑ − f(z)) / Var(ẑ)`` for the best monotone ``f``
    (isotonic regression, increasing or decreasing).

    1 when ``ẑ`` is one-to-one in ``z`` (any strictly monotone reparametrization, the
    ambiguity the model is identified up to), lower when it folds back on itself or mixes
    in other variables.

    :param learned, true: ``(N,)`` each, the same samples.
    """
    from sklearn.isotonic import IsotonicRegression

    learned, true = np.asarray(learned, dtype=float), np.asarray(true, dtype=float)
    if learned.ndim != 1 or learned.shape != true.shape or len(learned) < 2:
        raise ValueError(
            f"need two 1-D arrays of the same length ≥ 2, got {learned.shape} and {true.shape}"
        )
    if not (np.isfinite(learned).all() and np.isfinite(true).all()):
        raise ValueError("monotone_r2: inputs hold NaN or infinite values")
    spread = float(np.var(learned))
    if spread == 0:
        raise ValueError("the learned variable is constant")
    fits = [IsotonicRegression(increasing=up).fit(true, learned) for up in (True, False)]
    return max(1.0 - float(np.var(learned - f.predict(true))) / spread for f in fits)


def match_interventions(predicted: np.ndarray, true: np.ndarray, n: int) -> np.ndarray:
    """Best matching of learned to true variables for intervention labels.

    Labels are ``0 … n`` with 0 for no intervention. Returns ``perm`` of shape ``(n + 1,)``
    with ``perm[0] = 0`` and ``perm[k]`` the true label matched to learned label ``k``,
    maximizing agreement (Hungarian algorithm).
    """
    predicted, true = np.asarray(predicted), np.asarray(true)
    if predicted.shape != true.shape or predicted.ndim != 1:
        raise ValueError(
            f"need two label vectors of one shape, got {predicted.shape}, {true.shape}"
        )
    for name, labels in (("predicted", predicted), ("true", true)):
        if labels.size and (labels.min() < 0 or labels.max() > n):
            raise ValueError(f"{name} labels must lie in 0..{n}")
    counts = np.zeros((n + 1, n + 1))
    np.add.at(counts, (predicted, true), 1)
    rows, cols = linear_sum_assignment(-counts[1:, 1:])
    perm = np.zeros(n + 1, dtype=np.int64)
    perm[rows + 1] = cols + 1
    return perm


def intervention_accuracy(predicted: np.ndarray, true: np.ndarray, n: int) -> float:
    """Share of pairs whose inferred target is right, under :func:`match_interventions`.

    Learned labels name learned variables, so only the matching matters:

    >>> true = np.array([0, 1, 2, 1, 0])
    >>> intervention_accuracy(np.array([0, 2, 1, 2, 0]), true, n=2)  # z1 and z2 swapped
    1.0
    >>> intervention_accuracy(np.array([0, 2, 1, 2, 2]), true, n=2)
    0.8
    """
    perm = match_interventions(predicted, true, n)
    return float(np.mean(perm[np.asarray(predicted)] == np.asarray(true)))


def set_accuracy(predicted: np.ndarray, true: np.ndarray) -> float:
    """Share of pairs whose inferred *set* of intervened variables is exactly the true one,
    after matching learned to true variables one to one (Hungarian, maximizing how often a
    matched pair of variables is intervened on together).

    :param predicted, true: booleans ``(N, n)``, row ``i`` marking the variables intervened
        on in pair ``i`` (rows of :func:`pyrocrl.interventions.target_sets`). For single
        targets this is :func:`intervention_accuracy`.

    >>> true = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=bool)
    >>> set_accuracy(true[:, ::-1], true)  # z1 and z2 swapped
    1.0
    >>> set_accuracy(np.array([[0, 0], [0, 1], [1, 0], [1, 0]], dtype=bool), true)
    0.75
    """
    predicted, true = np.asarray(predicted, dtype=bool), np.asarray(true, dtype=bool)
    matched = np.zeros_like(true)
    matched[:, match_sets(predicted, true)] = predicted
    return float(np.mean((matched == true).all(-1)))


def match_sets(predicted: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Matching of learned to true variables from sets of intervened variables, booleans
    ``(N, n)`` each: Hungarian, maximizing how often a matched pair of variables is
    intervened on together.

    :returns: ``match (n,)``: learned variable ``j`` (0-based) is true variable
        ``match[j]``.
    """
    predicted, true = np.asarray(predicted, dtype=bool), np.asarray(true, dtype=bool)
    if predicted.shape != true.shape or predicted.ndim != 2:
        raise ValueError(
            f"need two (N, n) masks of one shape, got {predicted.shape}, {true.shape}"
        )
    counts = predicted.T.astype(np.int64) @ true.astype(np.int64)
    rows, cols = linear_sum_assignment(-counts)
    match = np.empty(len(rows), dtype=np.int64)
    match[rows] = cols
    return match


def reliability(probs: np.ndarray, outcomes: np.ndarray, *, bins: int = 10) -> xr.Dataset:
    """How often events given probability ``p`` happen, in ``bins`` equal bins of ``p``.

    :param probs: predicted probabilities, any shape; :param outcomes: whether each event
        happened (booleans or 0/1, the same shape).
    :returns: dims ``bin`` (centres): ``probability`` (mean predicted), ``frequency``
        (observed; NaN in an empty bin), ``count``; attrs ``ece``, the expected calibration
        error (the count-weighted mean gap). A calibrated forecaster lies on the diagonal.

    >>> table = reliability(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 0]), bins=2)
    >>> table["frequency"].values.tolist(), round(table.attrs["ece"], 3)
    ([0.0, 0.5], 0.25)
    """
    probs, outcomes = np.asarray(probs, dtype=float).ravel(), np.asarray(outcomes).ravel()
    if probs.shape != outcomes.shape:
        raise ValueError(f"need as many outcomes as probabilities, got {outcomes.shape}")
    if not ((probs >= 0) & (probs <= 1)).all():
        raise ValueError("probabilities must lie in [0, 1]")
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(probs, edges[1:-1]), 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore"):
        mean_p = np.bincount(index, probs, bins) / count
        freq = np.bincount(index, outcomes.astype(float), bins) / count
    ece = float(np.nansum(count * np.abs(mean_p - freq)) / max(count.sum(), 1))
    return xr.Dataset(
        {"probability": ("bin", mean_p), "frequency": ("bin", freq), "count": ("bin", count)},
        coords={"bin": (edges[:-1] + edges[1:]) / 2},
        attrs={"ece": ece},
    )


def match_importance(importance: np.ndarray) -> np.ndarray:
    """Matching from a DCI importance matrix ``(n learned, n true)``, Hungarian.

    :returns: ``match`` of shape ``(n,)``: learned variable ``j`` (0-based) is true variable
        ``match[j]``.
    """
    importance = np.asarray(importance, dtype=float)
    if importance.ndim != 2 or importance.shape[0] != importance.shape[1]:
        raise ValueError(f"need a square importance matrix, got shape {importance.shape}")
    rows, cols = linear_sum_assignment(-importance)
    match = np.empty(len(rows), dtype=np.int64)
    match[rows] = cols
    return match


def structural_hamming_distance(learned: np.ndarray, true: np.ndarray) -> int:
    """Edge insertions, deletions and reversals (a reversal counts once) that turn
    ``learned`` into ``true``; both ``(n, n)`` 0/1 with ``A[i, j] = 1`` for ``i → j``.

    >>> true = np.array([[0, 1, 1], [0, 0, 1], [0, 0, 0]])  # z1 → z2 → z3, z1 → z3
    >>> structural_hamming_distance(true.T, true)  # every edge reversed
    3
    >>> learned = true.copy()
    >>> learned[0, 2] = 0  # the edge z1 → z3 missed
    >>> structural_hamming_distance(learned, true)
    1
    """
    a, b = _binary_pair(learned, true)
    differ = a != b
    # each unordered pair {i, j} counts once if its edges differ in any way (missing,
    # extra, or reversed)
    return int(np.triu(differ | differ.T, k=1).sum() + np.diag(differ).sum())


@dataclass(frozen=True)
class GraphScores:
    """A learned graph against the truth (after matching)."""

    shd: int
    precision: float
    """Share of learned edges that are true edges (1 when nothing is learned)."""
    recall: float
    """Share of true edges that are learned (1 when there are none)."""


def graph_scores(
    learned: np.ndarray, true: np.ndarray, match: np.ndarray | None = None
) -> GraphScores:
    """SHD, precision and recall of ``learned`` against ``true``.

    :param match: ``match[j]`` is the true variable of learned variable ``j`` (0-based); the
        learned graph is relabelled with it first. ``None``: the labels already agree.
    """
    learned, true = _binary_pair(learned, true)
    if match is not None:
        match = np.asarray(match)
        if sorted(match.tolist()) != list(range(len(true))):
            raise ValueError(f"match must be a permutation of 0..{len(true) - 1}, got {match}")
        relabelled = np.zeros_like(learned)
        relabelled[np.ix_(match, match)] = learned
        learned = relabelled
    hits = int((learned & true).sum())
    precision = hits / learned.sum() if learned.sum() else 1.0
    recall = hits / true.sum() if true.sum() else 1.0
    return GraphScores(structural_hamming_distance(learned, true), float(precision), float(recall))


def _binary_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"need two square graphs of one size, got {a.shape} and {b.shape}")
    for name, g in (("learned", a), ("true", b)):
        if not np.isin(g, (0, 1)).all():
            raise ValueError(f"the {name} graph must hold only 0 and 1")
    return a.astype(bool), b.astype(bool)
