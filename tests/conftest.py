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
