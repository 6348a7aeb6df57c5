"""Choosing the number of causal variables ``n`` from the pairs alone.

Weak supervision identifies a causal variable through the pairs that intervene on it: a
learned variable that the intervention posterior names as the target of (almost) no pair
is not one of the data's causal variables, only a spare dimension (or half of a variable
split in two). Too few variables, on the other hand, leave interventions that no single
learned variable explains, which costs held-out likelihood, often many nats per pair. So:

1. fit ``n = n_min, n_min + 1, …`` (one fit per model seed) and, for every fit, measure on
   held-out pairs its log-likelihood per pair (importance-sampled with the guide as
   proposal, :func:`held_out_elpd`) and the *intervention share* of each learned variable,
   the share of pairs whose most probable target under ``q(I | x, x~)`` it is;
2. a fit is **complete** when every learned variable has a share of at least
   ``min_share``; the scan stops after the first ``n`` none of whose fits is complete
   (larger ``n`` only add spare variables);
3. the chosen ``n`` is that of the complete fit with the best held-out log-likelihood.

With several model seeds, each fit also gets its variables' agreement with the other seeds
(:func:`~pyrocrl.inference.trust.seed_agreement`): a variable split in two is split
differently by every seed. It is reported, and a criterion only on request
(``min_agreement``): with two seeds one failed fit discredits the good one beside it, and
on the benchmark requiring an agreement of 0.9 chose worse than the shares alone.

No label enters. The likelihood alone does not choose ``n``: a spare variable costs little
(a fraction of a nat per pair), sometimes nothing, while the share test sees it; among
complete fits, the likelihood sees the missing variables. It is importance-sampled rather
than the ELBO because the ELBO charges every extra variable the KL of its posterior: on
readings whose decoder stops short of the noise floor, a fourth variable gained 2.8 nats of
likelihood per pair and paid 3.1 of KL, so the ELBO preferred three variables for data of
four, while 100 importance draws preferred four (−9.0 against −9.9).
:func:`choose_n` is the rule, :func:`measure_fits` measures fits of one ``n`` and
:func:`scan_n` runs the whole scan (``pyrocrl fit --n auto``).
"""

__all__ = [
    "ELPD_DRAWS",
    "MIN_SHARE",
    "NChoice",
    "NFit",
    "choose_n",
    "held_out_elpd",
    "intervention_shares",
    "measure_fits",
    "scan_n",
]

import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import xarray as xr

from pyrocrl.data.dataset import pairs_only
from pyrocrl.inference.trust import seed_agreement
from pyrocrl.io import write_json

MIN_SHARE = 0.01
"""Smallest share of held-out pairs a learned variable must be the inferred target of, by
default. On the scaling toy seen by eight sensors (``n = 3 … 5``) a spare variable measures
at most 0.001, a causal variable at least 0.02 (half of one split in two) and about
``1/(n + 1)`` when the fit is right. A variable intervened on in fewer than this share of
the pairs cannot be told from a spare one."""
SHARE_PAIRS = 10_000
"""Held-out pairs the shares are measured on (the first ones)."""
ELPD_DRAWS = 100
"""Importance draws per pair of :func:`held_out_elpd`."""
ELPD_PAIRS = 1000
"""Held-out pairs the log-likelihood is measured on (the first ones)."""


class NFit(NamedTuple):
    """One fit of the scan, measured on held-out pairs.

    :param n: its number of causal variables.
    :param seed: its model seed.
    :param elpd: mean held-out log-likelihood per pair (:func:`held_out_elpd`).
    :param shares: ``(n,)`` intervention share of each learned variable.
    :param elbo: mean held-out ELBO per pair, for comparison.
    :param agreement: ``(n,)`` each learned variable's agreement with the fits of the other
        seeds of the same ``n``: the largest, over them, of its matched correlation
        (:func:`~pyrocrl.inference.trust.seed_agreement`); ``None`` for a scan of one seed.
    """

    n: int
    seed: int
    elpd: float
    shares: np.ndarray
    elbo: float = float("nan")
    agreement: np.ndarray | None = None

    def complete(self, min_share: float = MIN_SHARE, min_agreement: float | None = None) -> bool:
        """Whether every learned variable is the inferred target of at least ``min_share``
        of the pairs and, with a ``min_agreement`` and where measured, found again by
        another seed (agreement of at least ``min_agreement``)."""
        agreed = (
            min_agreement is None
            or self.agreement is None
            or self.agreement.min() >= min_agreement
        )
        return bool(self.used(min_share) and agreed)

    def used(self, min_share: float = MIN_SHARE) -> bool:
        """Whether every learned variable is the inferred target of at least ``min_share``
        of the pairs."""
        return bool(self.shares.min() >= min_share)

    def to_dict(self) -> dict[str, Any]:
        agreement = None if self.agreement is None else self.agreement.tolist()
        return {
            "n": self.n,
            "seed": self.seed,
            "elpd": self.elpd,
            "elbo": self.elbo,
            "shares": self.shares.tolist(),
            "agreement": agreement,
        }


class NChoice(NamedTuple):
    """The outcome of a scan: the chosen ``n`` (``None`` when no fit is complete), the
    fit it comes from, and every fit measured."""

    n: int | None
    best: NFit | None
    fits: list[NFit]
    min_share: float
    min_agreement: float | None = None

    def format(self) -> str:
        """The table ``pyrocrl fit --n auto`` prints."""
        lines = [
            f"number of causal variables (label-free; complete: every learned variable is "
            f"the inferred target of ≥ {self.min_share:.0%} of held-out pairs"
            + (
                ""
                if self.min_agreement is None
                else f" and found again by another seed at ≥ {self.min_agreement}"
            )
            + "):",
            "    n  seed  log-likelihood  ELBO (held-out)  smallest share  agreement  complete",
        ]
        for fit in self.fits:
            mark = "  ← chosen" if fit is self.best else ""
            agreement = "–" if fit.agreement is None else f"{fit.agreement.min():.2f}"
            complete = fit.complete(self.min_share, self.min_agreement)
            lines.append(
                f"  {fit.n:>3}  {fit.seed:>4}  {fit.elpd:>14.2f}  {fit.elbo:>15.2f}  "
                f"{fit.shares.min():>14.3f}  {agreement:>9}  {'yes' if complete else 'no':>8}"
                f"{mark}"
            )
        if self.n is None:
            lines.append("no fit is complete: every scanned n leaves a variable unused")
        else:
            lines.append(f"chosen: n = {self.n} (model seed {self.best.seed})")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        best = None if self.best is None else self.best.seed
        return {
            "n": self.n,
            "seed": best,
            "min_share": self.min_share,
            "min_agreement": self.min_agreement,
            "fits": [fit.to_dict() for fit in self.fits],
        }


def choose_n(
    fits: list[NFit], min_share: float = MIN_SHARE, min_agreement: float | None = None
) -> NChoice:
    """The rule: among the complete fits, the one with the best held-out log-likelihood.

    >>> fits = [
    ...     NFit(2, 0, 5.9, np.array([0.22, 0.23])),  # too few: the likelihood is far lower
    ...     NFit(3, 0, 22.5, np.array([0.20, 0.21, 0.22])),
    ...     NFit(4, 0, 22.6, np.array([0.20, 0.21, 0.22, 0.001])),  # one spare variable
    ... ]
    >>> choose_n(fits).n
    3
    """
    if not 0 < min_share < 1:
        raise ValueError(f"min_share must lie in (0, 1), got {min_share}")
    if min_agreement is not None and not 0 < min_agreement <= 1:
        raise ValueError(f"min_agreement must lie in (0, 1], got {min_agreement}")
    complete = [fit for fit in fits if fit.complete(min_share, min_agreement)]
    best = max(complete, key=lambda fit: fit.elpd, default=None)
    n = None if best is None else best.n
    return NChoice(n, best, list(fits), min_share, min_agreement)


@torch.no_grad()
def intervention_shares(guide: Any, x: Any, x_tilde: Any) -> np.ndarray:
    """``(n,)`` for each learned variable ``k = 1 … n``, the share of the pairs ``x,
    x_tilde`` ``(N, D)`` whose most probable intervention target under ``q(I | x, x~)`` is
    ``k``.

    The most probable target, not the mean probability: a spare variable keeps a little
    posterior mass on every pair (a mean near 0.01 on the scaling toy), but is the most
    probable target of almost none."""
    from pyrocrl.inference.queries import intervention_posterior

    probs = intervention_posterior(guide, x, x_tilde)
    counts = np.bincount(probs.argmax(-1).numpy(), minlength=probs.shape[-1])
    return counts[1:] / len(probs)


@torch.no_grad()
def held_out_elpd(
    model: Any, guide: Any, x: Any, x_tilde: Any, *, draws: int = ELPD_DRAWS, seed: int = 0
) -> float:
    """Mean log-likelihood per pair of ``x, x_tilde`` ``(N, D)``,
    ``log p(x, x~) ≈ log mean_s p(x, x~, latents_s) / q(latents_s | x, x~)`` over ``draws``
    draws of the guide (:func:`~pyrocrl.inference.diagnostics.importance_elpd` of the
    posterior export). In expectation a lower bound that tightens with ``draws``, and never
    looser than the ELBO.

    :raises ValueError: if a draw's importance weight is not finite.
    """
    from pyrocrl.inference.diagnostics import importance_elpd, to_datatree

    tree = to_datatree(model, guide, (x, x_tilde), num_samples=draws, max_pairs=None, seed=seed)
    return float(importance_elpd(tree).mean())


@torch.no_grad()
def measure_fits(fits: list[tuple[Any, Any, Any]], x: Any, x_tilde: Any) -> list[NFit]:
    """The :class:`NFit` of each fitted ``(model, guide, report)`` of one ``n`` (e.g. several
    model seeds, as :func:`~pyrocrl.inference.fit.fit_ilcm` returns them), on held-out pairs
    ``x, x_tilde`` ``(N, D)``: the shares on the first :data:`SHARE_PAIRS` pairs, the
    log-likelihood on the first :data:`ELPD_PAIRS`, and, for two fits or more, each one's
    agreement with the others (per variable, the best over the other fits, so that one
    failed seed does not discredit the rest)."""
    from pyrocrl.inference.queries import encode

    x, x_tilde = torch.as_tensor(x[:SHARE_PAIRS]), torch.as_tensor(x_tilde[:SHARE_PAIRS])
    if len({guide.n for _, guide, _ in fits}) > 1:
        raise ValueError("measure the fits of one n at a time")
    measured = []
    for model, guide, report in fits:
        shares = intervention_shares(guide, x, x_tilde)
        elpd = held_out_elpd(model, guide, x[:ELPD_PAIRS], x_tilde[:ELPD_PAIRS])
        measured.append(NFit(guide.n, report.seed, elpd, shares, report.metrics["elbo"]))
    if len(fits) > 1:
        z = [encode(guide, x)["z"].numpy() for _, guide, _ in fits]
        measured = [
            fit._replace(agreement=_best_agreement(z[i], z[:i] + z[i + 1 :]))
            for i, fit in enumerate(measured)
        ]
    return measured


def _best_agreement(z: np.ndarray, others: list[np.ndarray]) -> np.ndarray:
    """``(n,)`` per variable of ``z``, its largest agreement with any of ``others``."""
    return np.max([seed_agreement([z, other]).variables for other in others], axis=0)


def scan_n(
    train: xr.Dataset,
    *,
    test: xr.Dataset,
    n_min: int = 1,
    n_max: int | None = None,
    seeds: tuple[int, ...] = (0,),
    min_share: float = MIN_SHARE,
    min_agreement: float | None = None,
    output: str | os.PathLike | None = None,
    log: Any = None,
    **fit_options: Any,
) -> tuple[NChoice, dict[tuple[int, int], tuple[Any, Any, Any]]]:
    """Fit ``n = n_min, n_min + 1, …`` with :func:`~pyrocrl.inference.fit.fit_ilcm` and
    choose ``n`` by :func:`choose_n`; stop after the first ``n`` none of whose fits has
    every variable above ``min_share`` (agreement aside: with too few variables seeds may
    merge different ones), or at ``n_max`` (default: the number of features).

    :param test: held-out pairs: the log-likelihood and the shares are measured on them.
    :param seeds: model seeds fitted for each ``n``; with two or more, each fit's
        agreement with the others is measured (and required with ``min_agreement``).
    :param output: a directory; fit ``(n, seed)`` goes to ``output/n-{n}/seed-{seed}``
        (so a scan resumes where it stopped) and the choice to ``output/n_scan.json``.
    :param log: called with each fit's :class:`NFit` and report once the fits of its ``n``
        are measured (e.g. to print progress).
    :param fit_options: passed on to ``fit_ilcm`` (recipe, backend, …).
    :returns: the :class:`NChoice` and every fit as ``(model, guide, report)`` by
        ``(n, seed)``.
    """
    from pyrocrl.inference.fit import fit_ilcm

    dim_x = train.sizes["feature"]
    n_max = dim_x if n_max is None else n_max
    if not 1 <= n_min <= n_max:
        raise ValueError(f"the scan needs 1 ≤ n_min ≤ n_max, got n_min={n_min}, n_max={n_max}")
    if not seeds:
        raise ValueError("the scan needs at least one model seed")
    if "n" in fit_options:
        raise TypeError("scan_n chooses n itself: do not pass n")
    test = pairs_only(test)
    x = torch.as_tensor(test["x"].values[:SHARE_PAIRS])
    measured, fitted = [], {}
    for n in range(n_min, n_max + 1):
        for seed in seeds:
            where = None if output is None else Path(output) / f"n-{n}" / f"seed-{seed}"
            fitted[n, seed] = fit_ilcm(train, n, test=test, seed=seed, output=where, **fit_options)
        this_n = measure_fits([fitted[n, seed] for seed in seeds], x[:, 0], x[:, 1])
        if log is not None:
            for fit in this_n:
                log(fit, fitted[n, fit.seed][2])
        measured += this_n
        choice = choose_n(measured, min_share, min_agreement)
        if output is not None:
            write_json(Path(output) / "n_scan.json", choice.to_dict())
        if not any(fit.used(min_share) for fit in this_n):
            break
    return choice, fitted
