"""ILCM (or ELCM) on the scaling toy: DCI, intervention accuracy, steps and wall time per run.

Targets (issue: ILCM core): mean DCI disentanglement ≥ 0.95 at n = 4 and ≥ 0.90 at n = 5;
intervention accuracy ≥ 0.95 at n = 4; each n = 4 fit within 5 minutes of wall time.

    python benchmarks/scaling_ilcm.py [--n 4 5] [--data-seeds 302 303 304] [--jobs 2]
                                      [--model ilcm|elcm]

Each run is ``pyrocrl fit`` in its own process (one torch thread), writing to
``runs/benchmarks/scaling_ilcm/<recipe>/n<n>_data<seed>_model<seed>`` (``elcm_<recipe>``
for the ELCM); finished runs are
read back instead of rerun. Wall times are measured with ``--jobs`` runs side by side, so
with two jobs on a two-core machine they include some contention.
"""

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

TARGETS = {4: 0.95, 5: 0.90}


def run_dir(n: int, data_seed: int, model_seed: int, recipe: str, root: Path,
            model: str = "ilcm") -> Path:  # fmt: skip
    folder = recipe if model == "ilcm" else f"{model}_{recipe}"
    return root / folder / f"n{n}_data{data_seed}_model{model_seed}"


def run(n: int, data_seed: int, model_seed: int, recipe: str, root: Path,
        model: str = "ilcm") -> dict:  # fmt: skip
    """Fit (unless already done) and return ``results.json`` with the grid coordinates."""
    out = run_dir(n, data_seed, model_seed, recipe, root, model)
    results = out / "results.json"
    if not results.exists():
        command = [
            sys.executable, "-m", "pyrocrl.cli", "fit", "--n", str(n),
            "--data-seed", str(data_seed), "--seed", str(model_seed),
            "--recipe", recipe, "--model", model, "-o", str(out),
        ]  # fmt: skip
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"run n={n} seed={data_seed} failed:\n{done.stderr[-2000:]}")
        (out / "wall_time.txt").write_text(f"{time.perf_counter() - start:.1f}\n")
    data = json.loads(results.read_text())
    wall = out / "wall_time.txt"
    data["process_time"] = float(wall.read_text()) if wall.exists() else float("nan")
    return {"n": n, "data_seed": data_seed, "model_seed": model_seed, **data}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[4, 5])
    parser.add_argument("--data-seeds", type=int, nargs="+", default=[302, 303, 304])
    parser.add_argument("--model-seed", type=int, default=0)
    parser.add_argument("--recipe", default="fast")
    parser.add_argument("--model", choices=("ilcm", "elcm"), default="ilcm")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--root", type=Path, default=Path("runs/benchmarks/scaling_ilcm"))
    args = parser.parse_args()
    grid = [(n, s) for n in args.n for s in args.data_seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(
            pool.map(lambda c: run(*c, args.model_seed, args.recipe, args.root, args.model), grid)
        )
    print(
        f"{args.model.upper()}, recipe {args.recipe!r}, model seed {args.model_seed}, "
        f"{args.jobs} runs at a time\n"
    )
    print(
        "| n | data seed | DCI D | DCI C | interv. acc. | ELBO | steps | train (s) | total (s) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        m = r["metrics"]
        print(
            f"| {r['n']} | {r['data_seed']} | {m['dci_disentanglement']:.3f} | "
            f"{m['dci_completeness']:.3f} | {m['intervention_accuracy']:.3f} | "
            f"{m['elbo']:.2f} | {r['steps']} | {r['train_time']:.0f} | {r['total_time']:.0f} |"
        )
    print()
    for n in args.n:
        sel = [r for r in rows if r["n"] == n]
        d = np.array([r["metrics"]["dci_disentanglement"] for r in sel])
        acc = np.array([r["metrics"]["intervention_accuracy"] for r in sel])
        total = np.array([r["total_time"] for r in sel])
        verdict = ""
        if n in TARGETS:
            verdict = (
                f" (target ≥ {TARGETS[n]:.2f}: {'met' if d.mean() >= TARGETS[n] else 'MISSED'})"
            )
        print(
            f"n = {n}: mean DCI disentanglement {d.mean():.3f} (min {d.min():.3f}){verdict}; "
            f"mean intervention accuracy {acc.mean():.3f}; wall time per run "
            f"{total.mean():.0f} s (max {total.max():.0f} s)"
        )


if __name__ == "__main__":
    main()
