"""What a fit starts from: its pairs — the scaling toy simulated into training, test and
DCI splits, or a dataset with a held-out part — and its recipe, tuned in length and in
candidates (what ``pyrocrl fit`` hands to :func:`~pyrocrl.inference.fit.fit_ilcm`)."""

__all__ = ["FitData", "held_out_fit_data", "toy_fit_data", "tuned_recipe"]

from dataclasses import dataclass

import numpy as np
import xarray as xr

from pyrocrl.inference.recipes import Recipe, get_recipe
from pyrocrl.observations import paired_rows

HELD_OUT = 0.1
"""Share of a dataset's pairs held out for testing when no test set is given."""


@dataclass
class FitData:
    """The pairs of a fit and the number of causal variables to learn.

    :param train: training pairs; :param test: held-out pairs (or ``None``).
    :param dci: pairs on which the DCI regressors are fitted (``None``: ``test``).
    """

    train: xr.Dataset
    test: xr.Dataset | None
    n: int
    dci: xr.Dataset | None = None


def toy_fit_data(
    n: int = 4, *, seed: int = 302, pairs: int = 100_000, test_pairs: int = 10_000
) -> FitData:
    """The scaling toy with ``n`` causal variables (graph and samples seeded by ``seed``):
    ``pairs`` training pairs, and ``test_pairs`` each for testing and for the DCI
    regressors (:func:`~pyrocrl.data.simulate_splits`)."""
    from pyrocrl.data import make_simulator, simulate_splits

    lcm = make_simulator("scaling", n, seed)
    splits = simulate_splits(lcm, seed, {"train": pairs, "test": test_pairs, "dci": test_pairs})
    return FitData(splits["train"], splits["test"], n, splits["dci"])


def held_out_fit_data(
    train: xr.Dataset,
    test: xr.Dataset | None = None,
    *,
    n: int | None = None,
    held_out: float = HELD_OUT,
    split_seed: int = 0,
) -> FitData:
    """A dataset's pairs for a fit: all of them to train on and ``test`` to test on, or
    without ``test`` a random ``held_out`` share of them held out (drawn with
    ``split_seed``, so that fits with other model seeds test on the same pairs; both parts
    keep the dataset's order). Only pairs are held out: unpaired observations all train.

    :param n: causal variables (default: those of the dataset's ground truth).
    :raises ValueError: if ``n`` is not given and the dataset has no ground truth, or if
        the split would leave a part empty.
    """
    n = n or train.sizes.get("latent")
    if n is None:
        raise ValueError("the dataset has no ground truth: give the number of variables n")
    if test is None:
        paired = np.flatnonzero(paired_rows(train["x"].values))
        size = len(paired)
        held = round(held_out * size)
        if not 0 < held < size:
            raise ValueError(
                f"holding out {held_out:.0%} of {size} pairs leaves an empty part: "
                "give more pairs or a test set"
            )
        test_rows = np.sort(np.random.default_rng(split_seed).permutation(paired)[:held])
        train, test = train.drop_isel(pair=test_rows), train.isel(pair=test_rows)
    return FitData(train, test, n)


def tuned_recipe(
    recipe: str | Recipe = "fast",
    *,
    scale: float = 1.0,
    candidates: int = 1,
    select_epoch: float | None = None,
) -> Recipe:
    """A recipe (a preset by name, or a :class:`~pyrocrl.inference.recipes.Recipe`) with
    every time multiplied by ``scale``, and ``candidates`` model seeds compared at
    ``select_epoch`` (default: 6/7 of the scaled recipe's epochs).

    :raises ValueError: on an unknown preset, or a ``select_epoch`` with one candidate.
    """
    recipe = get_recipe(recipe)
    if scale != 1.0:
        recipe = recipe.scaled(scale)
    if select_epoch is not None and candidates == 1:
        raise ValueError("select_epoch compares candidates: give candidates ≥ 2")
    if candidates > 1:
        select = recipe.epochs * 6 / 7 if select_epoch is None else select_epoch
        recipe = recipe.replace(candidates=candidates, select_epoch=select)
    return recipe
