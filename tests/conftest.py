"""Shared test set-up: one torch thread, validation on, a clean param store, seeded tests."""

import os

import numpy as np
import pyro
import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _seeded_pyro():
    pyro.clear_param_store()
    pyro.enable_validation(True)
    pyro.set_rng_seed(0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield
    pyro.clear_param_store()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def short_recipe():
    """Two epochs with every phase of a real recipe: fits in seconds on small data."""
    from pyrocrl.inference.recipes import Recipe

    return Recipe(
        name="short",
        epochs=2.0,
        lr=3e-3,
        pretrain_epochs=0.2,
        beta_ramp=(0.2, 0.6),
        intervention_prior_epoch=0.6,
        deterministic_epoch=1.6,
        sparsity_weight=10.0,
        balance_weight=10.0,
        sparsity_decay=(0.6, 1.0),
        posterior_power=0.1,
        posterior_power_ramp=(0.2, 0.8),
        offset=(0.025, 1e-4),
        offset_decay=(0.2, 0.6),
        consistency_weight=0.01,
        norm_weight=0.01,
        norm_decay=(0.2, 0.6),
        precondition=True,
    )
