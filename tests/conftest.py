"""Shared test set-up: one torch thread, validation on, a clean param store, seeded tests;
the documentation site, built once per session."""

import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyro
import pytest
import torch

from pyrocrl.inference.recipes import Recipe

torch.set_num_threads(1)
os.environ.setdefault("MPLBACKEND", "Agg")

ROOT = Path(__file__).resolve().parents[1]


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


SHORT_RECIPE = Recipe(
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
"""Two epochs with every phase of a real recipe: fits in seconds on small data."""


class Interrupted(Exception):
    """A stand-in for an interruption (Ctrl-C, a kill) in the middle of training."""


@contextlib.contextmanager
def svi_interrupted_after(steps: int):
    """Pyro's ``SVI.step`` takes ``steps`` steps, then raises :class:`Interrupted`."""
    from pyro.infer import SVI

    step, calls = SVI.step, {"n": 0}

    def interrupted(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > steps:
            raise Interrupted
        return step(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SVI, "step", interrupted)
        with pytest.raises(Interrupted):
            yield


@pytest.fixture
def short_recipe():
    """:data:`SHORT_RECIPE`."""
    return SHORT_RECIPE


@dataclass(frozen=True)
class DocsSite:
    """The documentation as built once per test session (:func:`docs_site`)."""

    returncode: int
    log: str
    html: Path
    seconds: float

    def problems(self) -> list[str]:
        """The build's warnings and errors, one per line, for failure messages."""
        return [line for line in self.log.splitlines() if "WARNING:" in line or "ERROR:" in line]


@pytest.fixture(scope="session")
def docs_site(tmp_path_factory) -> DocsSite:
    """Build the documentation site (docs/) once: ``sphinx-build -W --keep-going -b html``
    into a temporary folder, with every tutorial executed in smoke mode (``CI`` set). The
    docs' own tests and the tutorials' tests read the result."""
    out = tmp_path_factory.mktemp("docs") / "html"
    env = {
        **os.environ,
        "CI": "true",  # the tutorials' small sizes
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",  # figures in the pages
        "OMP_NUM_THREADS": "1",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }
    env.pop("PYROCRL_DOCS_EXECUTE", None)
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-q"]
    start = time.perf_counter()
    run = subprocess.run(
        [*command, str(ROOT / "docs"), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    log = run.stdout + run.stderr
    return DocsSite(run.returncode, log, out, time.perf_counter() - start)
