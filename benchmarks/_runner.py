"""What the benchmark scripts share: their grid arguments, fits with ``pyrocrl fit`` in
processes of their own, grids of runs side by side, the test split of the scaling toy, and
markdown tables.

The scripts import it as ``from _runner import …``: Python puts a script's own folder first
on ``sys.path``, as it does for ``from scaling_ilcm import run``.
"""

__all__ = [
    "DATA_SEEDS",
    "TEST_SPLITS",
    "fit_in_process",
    "grid_parser",
    "header",
    "met",
    "run_dir",
    "run_grid",
    "scaling_test_split",
]

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

DATA_SEEDS = [302, 303, 304]
"""The data (and graph) seeds of the scaling toy that the benchmarks average over."""

TEST_SPLITS = {"train": 1, "test": 10_000}
"""The splits that regenerate the test split of ``pyrocrl fit`` (split 1 of the data seed;
``simulate_splits`` seeds each split on its own, so the training pairs are not needed)."""


def grid_parser(
    doc: str,
    *,
    n: list[int],
    root: str | None,
    seeds: str = "--data-seeds",
    jobs: bool = False,
) -> argparse.ArgumentParser:
    """A parser described by the first line of ``doc``, with ``--n`` (causal variables,
    default ``n``), the data seeds (option ``seeds``, default :data:`DATA_SEEDS`), ``--jobs``
    (runs side by side, default 2) if ``jobs``, and ``--root`` (a folder, default ``root``;
    with ``root=None`` the script adds its own)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=n)
    parser.add_argument(seeds, type=int, nargs="+", default=DATA_SEEDS)
    if jobs:
        parser.add_argument("--jobs", type=int, default=2)
    if root is not None:
        parser.add_argument("--root", type=Path, default=Path(root))
    return parser


def run_dir(root: Path, n: int, data_seed: int, model_seed: int) -> Path:
    """The folder of one fit of the scaling toy: ``root/n{n}_data{seed}_model{seed}``."""
    return root / f"n{n}_data{data_seed}_model{model_seed}"


def fit_in_process(
    out: Path,
    options: Mapping[str, Any],
    label: str,
    *,
    reuse: bool = True,
    env: Mapping[str, str] | None = None,
    announce: str | None = None,
) -> tuple[dict[str, Any], float]:
    """``pyrocrl fit --OPTION VALUE … -o OUT`` in a process of its own, and its results.

    :param options: option names without the dashes and their values (``True``: a flag).
    :param label: names the fit in the error raised when it fails.
    :param reuse: read a finished fit (``OUT/results.json``) back instead of fitting again;
        an interrupted one resumes from its checkpoint (unless ``fresh`` is among the
        options).
    :param env: the environment of the process (default: this one's).
    :param announce: print ``"{announce}: {command}"`` before fitting.
    :returns: ``results.json`` and the wall time of the process in seconds, which is also
        written to ``OUT/wall_time.txt`` and read back from there for a finished fit (``nan``
        without that file).
    """
    results, wall_file = out / "results.json", out / "wall_time.txt"
    wall = float(wall_file.read_text()) if wall_file.exists() else float("nan")
    if not (reuse and results.exists()):
        command = [sys.executable, "-m", "pyrocrl.cli", "fit"]
        for name, value in options.items():
            command += [f"--{name}"] if value is True else [f"--{name}", str(value)]
        command += ["-o", str(out)]
        if announce is not None:
            print(f"{announce}: {' '.join(command[1:])}", flush=True)
        start = time.perf_counter()
        env = None if env is None else dict(env)
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise RuntimeError(f"{label} failed:\n{done.stderr[-2000:]}")
        wall = time.perf_counter() - start
        wall_file.write_text(f"{wall:.1f}\n")
    return json.loads(results.read_text()), wall


def run_grid(run: Callable[..., Any], cells: Iterable[tuple], jobs: int) -> list[Any]:
    """``run(*cell)`` for every cell, ``jobs`` at a time (threads: each run is a process of
    its own or releases the GIL), results in the order of the cells."""
    with ThreadPoolExecutor(jobs) as pool:
        return list(pool.map(lambda cell: run(*cell), cells))


def scaling_test_split(n: int, seed: int) -> tuple[Any, Any]:
    """The scaling toy of ``n`` variables with graph seed ``seed`` and the test split that
    ``pyrocrl fit --n N --data-seed SEED`` is evaluated on: ``(lcm, test)``."""
    from pyrocrl.data import make_simulator, simulate_splits

    lcm = make_simulator("scaling", n, seed)
    return lcm, simulate_splits(lcm, seed, TEST_SPLITS, progress=False)["test"]


def header(columns: str) -> str:
    """A markdown table's header row and the rule under it, from ``"a | b | c"``."""
    return f"| {columns} |\n" + "|---" * (columns.count("|") + 1) + "|"


def met(ok: bool) -> str:
    """How the scripts report a target: ``met`` or ``MISSED``."""
    return "met" if ok else "MISSED"
