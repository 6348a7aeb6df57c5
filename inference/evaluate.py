"""Evaluation of a fitted ILCM against ground truth: DCI, intervention accuracy, ELBO."""

__all__ = ["elbo_per_pair", "evaluate"]

import numpy as np
import torch
import xarray as xr

from pyrocrl.data.dataset import max_targets, pairs_only
from pyrocrl.inference.elbo import PairELBO
from pyrocrl.inference.guides import ILCMGuide
from pyrocrl.inference.queries import encode, intervention_posterior
from pyrocrl.interventions import num_targets, target_sets
from pyrocrl.metrics import dci, intervention_accuracy, set_accuracy
from pyrocrl.models.ilcm import ILCM


@torch.no_grad()
def elbo_per_pair(
    model: ILCM, guide: ILCMGuide, x: torch.Tensor, x_tilde: torch.Tensor, batch: int = 4096
) -> float:
    """Mean ELBO per pair (β = 1, target summed over all hypotheses, one sample each) of
    the programs that score the model, ``model.programs(guide)`` (for the β-VAE: its
    independent ones).

    :param x, x_tilde: the pairs' observations, ``(N, D)`` each.
    """
    elbo = PairELBO()
    programs = model.programs(guide)
    total = 0.0
    for a, b in zip(x.split(batch), x_tilde.split(batch), strict=True):
        total += float(elbo.terms(*programs, a, b)["elbo"].sum())
    return total / len(x)


def evaluate(
    model: ILCM,
    guide: ILCMGuide,
    test: xr.Dataset,
    dci_train: xr.Dataset | None = None,
    *,
    seed: int = 0,
    dci_pairs: int | None = 10_000,
    dci_test_pairs: int | None = 5_000,
) -> dict[str, float]:
    """Metrics of a fitted model on a test dataset with ground truth.

    DCI regressors are fitted on ``dci_train`` (default: ``test``) restricted to its first
    ``dci_pairs`` pairs and scored on the first ``dci_test_pairs`` pairs of ``test``
    (``None``: all). Only the worlds before intervention are used for DCI.

    :returns: ``elbo``, ``dci_disentanglement``, ``dci_completeness``,
        ``dci_informativeness`` (mean R²) and ``intervention_accuracy`` (for targets that
        are sets, the share of pairs whose set is exactly right) where the truth has
        what they need (and the model infers interventions). Intervention accuracy matches
        learned to true variables one to one, so it is left out when the truth has another
        number of variables than the model; DCI is not.
    """
    test = pairs_only(test)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        x = torch.as_tensor(test["x"].values)
        results = {"elbo": elbo_per_pair(model, guide, x[:, 0], x[:, 1])}
        if "target" in test and model.infers_interventions and _as_many_variables(test, model):
            probs = intervention_posterior(guide, x[:, 0], x[:, 1])
            predicted, true = probs.argmax(-1).numpy(), test["target"].values
            data_targets = max_targets(test)
            if model.max_targets == data_targets == 1:
                accuracy = intervention_accuracy(predicted, true, model.n)
            else:  # sets of variables: the exact set must be right
                accuracy = set_accuracy(
                    target_sets(model.n, model.max_targets)[predicted],
                    target_sets(model.n, data_targets)[true],
                )
            results["intervention_accuracy"] = accuracy
        if "z" in test:
            train = dci_train if dci_train is not None else test
            train_x = torch.as_tensor(train["x"].values[:dci_pairs, 0])
            test_x = x[:dci_test_pairs, 0]
            scores = dci(
                encode(guide, train_x)["z"].numpy(),
                train["z"].values[:dci_pairs, 0],
                encode(guide, test_x)["z"].numpy(),
                test["z"].values[:dci_test_pairs, 0],
                seed=seed,
            )
            results["dci_disentanglement"] = scores.disentanglement
            results["dci_completeness"] = scores.completeness
            results["dci_informativeness"] = scores.informativeness
    return {k: float(np.asarray(v)) for k, v in results.items()}


def _as_many_variables(test: xr.Dataset, model: ILCM) -> bool:
    """Whether the truth of ``test`` has ``model.n`` causal variables (as far as it says)."""
    if "z" in test and test["z"].shape[-1] != model.n:
        return False
    k = max_targets(test)
    if k > model.n:
        return False
    return int(test["target"].values.max(initial=0)) < num_targets(model.n, k)
