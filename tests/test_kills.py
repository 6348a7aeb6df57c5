"""``kill -9`` of ``pyrocrl fit``: at random moments and in the middle of checkpoint writes,
again and again, then resumed to the end; the final parameters are bit for bit those of a
run that was never interrupted. Meanwhile, a second fit into the running fit's directory is
refused, and the lock of a killed fit does not block the next one.

The fits run in forked processes (the imports are done: a fit starts at once), killed with
SIGKILL as ``kill -9`` does.
"""

import json
import multiprocessing
import os
import signal
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from pyrocrl.cli import main
from pyrocrl.io import LOCK_FILE, load_checkpoint

KILLS_AT_RANDOM = 6
KILLS_WHILE_WRITING = 6


def _fit_args(data: Path, output: Path) -> list[str]:
    return ["fit", "--data", str(data), "--checkpoint-every", "5", "-o", str(output)]


def _child(args: list[str], writer_kill: int | None) -> None:
    """A fit; with ``writer_kill = k``, its k-th ``torch.save`` writes half an archive and
    the process is killed."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    if writer_kill is not None:
        original, saves = torch.save, []

        def save(obj, path, *rest, **kwargs):
            saves.append(path)
            original(obj, path, *rest, **kwargs)
            if len(saves) == writer_kill:
                with open(path, "r+b") as file:
                    file.truncate(os.path.getsize(path) // 2)
                os.kill(os.getpid(), signal.SIGKILL)

        torch.save = save
    os._exit(main(args))


def _start(args: list[str], writer_kill: int | None = None):
    """A fit in a forked process."""
    with warnings.catch_warnings():  # JAX, if loaded, warns of forks: the child has no JAX
        warnings.simplefilter("ignore")
        process = multiprocessing.get_context("fork").Process(
            target=_child, args=(args, writer_kill)
        )
        process.start()
    return process


def _finish(process, timeout: float = 300.0) -> int:
    process.join(timeout)
    assert process.exitcode is not None, "the fit did not end"
    return process.exitcode


def _wait_for(path: Path, process, timeout: float = 120.0) -> bool:
    """Wait until ``path`` exists (``True``) or the process ends (``False``)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists():
            return True
        if not process.is_alive():
            return False
        time.sleep(0.005)
    raise TimeoutError(f"{path} did not appear")


def _parameters(checkpoint: Path) -> dict[str, torch.Tensor]:
    payload = load_checkpoint(checkpoint)
    flat = {f"model.{k}": v for k, v in payload["model"].items()}
    flat.update({f"guide.{k}": v for k, v in payload["guide"].items()})
    return flat


@pytest.fixture
def data(tmp_path) -> Path:
    path = tmp_path / "pairs.nc"
    assert main(["simulate", "--n", "2", "--pairs", "2000", "--seed", "3", "-o", str(path)]) == 0
    return path


def test_killed_fits_resume_to_the_uninterrupted_result(data, tmp_path, capsys):
    started = time.monotonic()
    assert _finish(_start(_fit_args(data, tmp_path / "reference"))) == 0
    duration = time.monotonic() - started

    run = tmp_path / "killed"
    rng = np.random.default_rng(0)
    kills = {"random": 0, "writing": 0}
    refused = 0
    for _ in range(60):
        if kills["writing"] < kills["random"]:  # alternate the two kinds of kill
            process = _start(_fit_args(data, run), writer_kill=int(rng.integers(1, 4)))
            kills["writing"] += _finish(process) == -signal.SIGKILL
        elif kills["random"] < KILLS_AT_RANDOM:
            process = _start(_fit_args(data, run))
            if _wait_for(run / LOCK_FILE, process):
                if not refused:  # a second fit into the same directory is refused
                    assert main(_fit_args(data, run)) == 1
                    assert "in use by another fit" in capsys.readouterr().err
                    refused += 1
                time.sleep(rng.uniform(0, duration / 10))
                os.kill(process.pid, signal.SIGKILL)
            kills["random"] += _finish(process) == -signal.SIGKILL
        else:
            break
        assert process.exitcode in (0, -signal.SIGKILL)
    assert kills == {"random": KILLS_AT_RANDOM, "writing": KILLS_WHILE_WRITING}
    assert refused == 1
    assert main(_fit_args(data, run)) == 0  # resumes, over the lock a killed fit left
    assert not (run / LOCK_FILE).exists() and not list(run.glob(".*.tmp"))

    finished = _parameters(run / "checkpoint.pt")
    expected = _parameters(tmp_path / "reference" / "checkpoint.pt")
    assert finished.keys() == expected.keys()
    assert not [k for k in expected if not torch.equal(finished[k], expected[k])]
    steps = [
        json.loads((d / "results.json").read_text())["steps"]
        for d in (run, tmp_path / "reference")
    ]
    assert steps[0] == steps[1]


@pytest.mark.parametrize("when", [1, 3])
def test_a_checkpoint_cut_short_by_a_kill_leaves_the_previous_one(data, tmp_path, when):
    run = tmp_path / "run"
    assert _finish(_start(_fit_args(data, run), writer_kill=when)) == -signal.SIGKILL
    assert len(list(run.glob(".checkpoint.pt.*.tmp"))) == 1  # half an archive, not renamed
    if when == 1:
        assert not (run / "checkpoint.pt").exists()
    else:
        assert load_checkpoint(run / "checkpoint.pt")["step"] == 5 * (when - 1)
    assert main(_fit_args(data, run)) == 0
    assert not list(run.glob(".*.tmp"))
