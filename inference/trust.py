"""Label-free trust checks: do independently trained fits agree?

Without ground truth, a fit cannot be scored against the true variables, but it can be
compared with fits from other model seeds on the same data. Identifiability says that every
good fit learns the same causal variables up to order and an invertible map of each; fits
that settle on different mixtures of them disagree. :func:`seed_agreement` matches the
learned variables of every pair of fits (Spearman correlation, so any monotone map of a
variable agrees) and reports how well they match; :func:`target_agreement` asks whether the
fits name the same intervened variable for the same pair. :func:`trust_report` computes
both from fitted models.
"""

__all__ = ["SeedAgreement", "TrustReport", "seed_agreement", "target_agreement", "trust_report"]

import itertools
from typing import Any, NamedTuple

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.stats import spearmanr


class SeedAgreement(NamedTuple):
    """How well the learned variables of ``K`` fits match each other.

    :param mean: mean over pairs of fits of the mean matched absolute Spearman correlation
        (1: every fit learned the same variables up to order and a monotone map of each).
    :param pairs: ``(K, K)`` the same per pair of fits (1 on the diagonal).
    :param variables: ``(n,)`` each variable of the first fit: its matched absolute
        correlation averaged over the other fits.
    :param matches: ``matches[i][j]`` maps the variables of fit ``i`` to those of fit ``j``
        (``(n,)`` indices).
    """

    mean: float
    pairs: np.ndarray
    variables: np.ndarray
    matches: list[list[np.ndarray]]


def _check(encodings: list[Any]) -> list[np.ndarray]:
    arrays = [np.asarray(e, dtype=np.float64) for e in encodings]
    if len(arrays) < 2:
        raise ValueError(f"agreement needs the encodings of at least 2 fits, got {len(arrays)}")
    shape = arrays[0].shape
    if len(shape) != 2 or shape[0] < 3:
        raise ValueError(f"encodings must be (N, n) with N ≥ 3, got {shape}")
    for k, a in enumerate(arrays):
        if a.shape != shape:
            raise ValueError(f"fit {k} has encodings of shape {a.shape}, fit 0 {shape}")
        if not np.isfinite(a).all():
            raise ValueError(f"the encodings of fit {k} hold NaN or infinite values")
    return arrays


def _match(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(matching, |correlation| of each matched variable)`` of the variables of ``a`` to
    those of ``b``: the assignment with the largest total |Spearman correlation|."""
    n = a.shape[1]
    statistic = spearmanr(a, b).statistic  # a number, not a matrix, for one variable each
    if np.ndim(statistic) == 0:
        statistic = np.array([[1.0, statistic], [statistic, 1.0]])
    correlation = np.abs(statistic[:n, n:])
    correlation = np.nan_to_num(correlation)  # a constant variable correlates with nothing
    rows, columns = linear_sum_assignment(-correlation)
    matching = np.empty(n, dtype=int)
    matching[rows] = columns
    return matching, correlation[rows, columns][np.argsort(rows)]


def seed_agreement(encodings: list[Any]) -> SeedAgreement:
    """The agreement of the learned causal variables of ``K ≥ 2`` fits, each ``(N, n)`` on
    the same ``N`` observations (e.g. ``encode(guide, x)["z"]``).

    :raises ValueError: on fewer than two fits, mismatched shapes or non-finite values.
    """
    arrays = _check(encodings)
    k, n = len(arrays), arrays[0].shape[1]
    pairs = np.eye(k)
    matches = [[np.arange(n)] * k for _ in range(k)]
    per_variable = np.zeros((k - 1, n))
    for i, j in itertools.combinations(range(k), 2):
        matching, scores = _match(arrays[i], arrays[j])
        pairs[i, j] = pairs[j, i] = scores.mean()
        matches[i][j], matches[j][i] = matching, np.argsort(matching)
        if i == 0:
            per_variable[j - 1] = scores
    mean = float(pairs[np.triu_indices(k, 1)].mean())
    return SeedAgreement(mean, pairs, per_variable.mean(0), matches)


def target_agreement(targets: list[Any], matches: list[list[np.ndarray]]) -> float:
    """Mean over pairs of fits of the share of test pairs whose inferred intervention
    target (``(N,)``, 0 = none, ``k`` = variable ``k``) is the same in both fits once the
    variables are matched (``matches`` of :class:`SeedAgreement`)."""
    arrays = [np.asarray(t, dtype=int) for t in targets]
    shares = []
    for i, j in itertools.combinations(range(len(arrays)), 2):
        mapped = np.concatenate([[0], matches[i][j] + 1])[arrays[i]]
        shares.append(float((mapped == arrays[j]).mean()))
    return float(np.mean(shares))


class TrustReport(NamedTuple):
    """The label-free checks of ``K`` fits on the same held-out pairs."""

    variables: SeedAgreement
    targets: float | None
    """:func:`target_agreement`, or ``None`` for models without intervention posterior."""

    def format(self) -> str:
        """The lines ``pyrocrl fit --seeds K`` prints."""
        k = len(self.variables.pairs)
        lines = [
            f"agreement between the {k} model seeds (label-free, 1 = the same variables):",
            f"  learned variables (matched |Spearman ρ|)  {self.variables.mean:.3f}",
            "  per variable of the first fit             "
            + " ".join(f"{v:.2f}" for v in self.variables.variables),
        ]
        if self.targets is not None:
            lines.append(f"  inferred intervention targets             {self.targets:.3f}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed_agreement": self.variables.mean,
            "pairs": self.variables.pairs.tolist(),
            "per_variable": self.variables.variables.tolist(),
            "target_agreement": self.targets,
        }


@torch.no_grad()
def trust_report(fits: list[tuple[Any, Any]], x: Any, x_tilde: Any) -> TrustReport:
    """:func:`seed_agreement` (and, where the models infer interventions,
    :func:`target_agreement`) of fitted ``(model, guide)`` pairs on held-out pairs
    ``x, x_tilde`` ``(N, D)``."""
    from pyrocrl.inference.queries import encode, intervention_posterior

    agreement = seed_agreement([encode(guide, x)["z"].numpy() for _, guide in fits])
    targets = None
    if all(model.infers_interventions for model, _ in fits):
        inferred = [
            intervention_posterior(guide, x, x_tilde).argmax(-1).numpy() for _, guide in fits
        ]
        targets = target_agreement(inferred, agreement.matches)
    return TrustReport(agreement, targets)
