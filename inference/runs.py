"""A run directory: what produced it, and who is writing to it.

A fit with an output directory records its *fingerprint* there (``run.json``): a hash of
the training pairs, the model seed, the model and its settings, the backend and the
recipe. Resuming compares the fingerprint of the new call with the recorded one and
refuses to mix two runs, saying what differs (:func:`start_run`); starting afresh removes
the old run's files first, so that a fresh run killed early cannot be resumed from the old
one's checkpoint. While a fit runs, a lock file refuses a second fit on the same directory
(:func:`run_directory`).
"""

__all__ = ["RUN_FILE", "data_hash", "run_directory", "run_fingerprint", "start_run"]

import contextlib
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pyrocrl.errors import TrainingError
from pyrocrl.inference.candidates import CHECKPOINT_FILE, RESULTS_FILE, SELECTION_FILE
from pyrocrl.inference.recipes import Recipe
from pyrocrl.io import directory_lock, write_json

RUN_FILE = "run.json"
"""The fingerprint of the run in its output directory."""
RUN_FILES = (CHECKPOINT_FILE, RESULTS_FILE, SELECTION_FILE, "training.png")
"""The files a fit writes into its output directory (with its candidates' checkpoints)."""


def data_hash(x: Any) -> str:
    """SHA-256 of the training pairs as trained on (``(N, 2, D)``, a tensor or an array):
    their shape, dtype and values."""
    array = np.ascontiguousarray(x.numpy() if hasattr(x, "numpy") else np.asarray(x))
    digest = hashlib.sha256(f"{array.shape}{array.dtype}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def run_fingerprint(
    data: Any, *, n: int, seed: int, model: str, backend: str, recipe: Recipe, **settings: Any
) -> dict[str, Any]:
    """What makes a fit the fit it is: its training pairs (hash, count and features), ``n``,
    the model seed, the model's name, the backend, the recipe and further ``settings`` of
    the model (JSON values)."""
    return {
        "data": {"sha256": data_hash(data), "pairs": len(data), "features": data.shape[-1]},
        "n": n,
        "seed": seed,
        "model": model,
        "backend": backend,
        "recipe": recipe.to_dict(),
        **settings,
    }


@contextlib.contextmanager
def run_directory(
    output: Path | None, fingerprint: dict[str, Any] | None, *, resume: bool
) -> Iterator[None]:
    """Hold ``output`` for the fit ``fingerprint`` describes while the block runs: locked
    (:func:`~pyrocrl.io.directory_lock`) and prepared by :func:`start_run`. Without an
    ``output``, nothing is held."""
    if output is None:
        yield
        return
    with directory_lock(output, "fit"):
        start_run(output, fingerprint, resume=resume)
        yield


def start_run(output: Path, fingerprint: dict[str, Any], *, resume: bool) -> None:
    """Prepare ``output`` for the fit ``fingerprint`` describes and record it there.

    With ``resume``, a directory that holds another run is refused; without, the files of
    an earlier run are removed first.

    :raises TrainingError: if ``resume`` and ``output`` holds a run with another
        fingerprint (naming what differs), or one whose record is unreadable.
    """
    path = output / RUN_FILE
    if resume and path.exists():
        try:
            recorded = json.loads(path.read_text())
        except ValueError as error:
            raise TrainingError(
                f"{path} is not a run record ({error}); start afresh (--fresh, or "
                "resume=False) or choose another output directory"
            ) from error
        differences = _differences(recorded, json.loads(json.dumps(fingerprint)))
        if differences:
            raise TrainingError(
                f"{output} holds another run ({'; '.join(differences)}): resume with the same "
                "data and settings, start afresh there (--fresh, or resume=False), or choose "
                "another output directory"
            )
    elif resume and (output / CHECKPOINT_FILE).exists():
        pass  # a run recorded before fingerprints: the checkpoint's own checks apply
    else:
        for name in RUN_FILES:
            (output / name).unlink(missing_ok=True)
        for leftover in output.glob("candidate*"):
            leftover.unlink()
    write_json(path, fingerprint)


def _differences(recorded: Any, current: dict[str, Any]) -> list[str]:
    """What differs between two fingerprints, e.g. ``"seed 0 there, 1 here"``."""
    if not isinstance(recorded, dict):
        return ["its record is not a fingerprint"]
    differences = []
    for key in [*current, *(k for k in recorded if k not in current)]:
        there, here = recorded.get(key), current.get(key)
        if there == here:
            continue
        if key == "data":
            differences.append(f"other training pairs: {_pairs(there)} there, {_pairs(here)} here")
        elif key == "recipe" and isinstance(there, dict) and isinstance(here, dict):
            keys = [k for k in {**there, **here} if there.get(k) != here.get(k)]
            differences.append(f"another recipe: {', '.join(keys)} differ")
        else:
            differences.append(f"{key} {there!r} there, {here!r} here")
    return differences


def _pairs(data: Any) -> str:
    if not isinstance(data, dict):
        return "unknown"
    digest = str(data.get("sha256"))[:12]
    return f"{data.get('pairs')} pairs of {data.get('features')} features (sha256 {digest}…)"
