"""Pyro against JAX: time per training step, and time to a disentangled model.

Targets (issue: NumPyro/JAX backend): a JAX step at least 8× faster than a Pyro step at
the same batch size; DCI disentanglement ≥ 0.95 at n = 4 within one minute of wall time,
compilation included.

    python benchmarks/backends.py [--n 4 5] [--seeds 302 303 304] [--scales 0.1 0.2 0.3]
                                  [--skip-steps] [--skip-fits]

1. Step time, by phase of the ``fast`` recipe (batch 64, random observations): each
   backend in a process of its own (the two slow each other down in one process); Pyro
   with one torch thread and validation off (its fastest setting here), JAX with its
   default threads, steps in compiled chunks of 100.
2. Fits of the scaling toy (n = 4) with ``pyrocrl fit --backend jax`` and the ``fast``
   recipe compressed by each scale, one at a time, each with an empty compilation cache:
   wall time from the start of the process to the trained model (imports, simulating
   the data, compiling and training; evaluation excluded) and the test DCI score.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _runner import DATA_SEEDS, fit_in_process, header, met

PHASES = {"pretrain": 0.0, "soft": 2.0, "deterministic": 3.0}


def pyro_worker(n: int, batch: int, steps: int) -> dict[str, float]:
    import torch
    from step_time import time_phase

    torch.set_num_threads(1)
    return {name: time_phase(n, batch, steps, epoch, False) for name, epoch in PHASES.items()}


def jax_worker(n: int, batch: int, steps: int) -> dict[str, float]:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch

    from pyrocrl.inference.guides import ILCMGuide
    from pyrocrl.inference.guides_jax import NumPyroILCMGuide
    from pyrocrl.inference.recipes import get_recipe
    from pyrocrl.inference.svi_jax import JAXTrainer, Schedule
    from pyrocrl.models.ilcm import ILCM
    from pyrocrl.models.ilcm_jax import NumPyroILCM

    torch.manual_seed(0)
    model = ILCM(n, n)
    twin = NumPyroILCM.from_torch(model)
    chunk = 100
    trainer = JAXTrainer(
        twin, NumPyroILCMGuide.from_torch(ILCMGuide(model), twin), "fast", chunk=chunk
    )
    data = jnp.asarray(np.random.default_rng(0).normal(size=(8192, 2, n)).astype(np.float32))
    rows = jnp.asarray(np.random.default_rng(1).integers(0, 8192, (chunk, batch)))
    out: dict[str, float] = {}
    for name, epoch in PHASES.items():
        schedule = Schedule.from_phases([get_recipe("fast").at(epoch)] * chunk)
        key = jax.random.PRNGKey(0)
        args = (data, rows, schedule, jnp.arange(chunk), jnp.ones(chunk, bool), key)
        start = time.perf_counter()
        state = trainer._run(trainer.params, trainer.opt_state, *args)
        jax.block_until_ready(state)
        out[f"first call ({name})"] = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(max(1, steps // chunk)):
            state = trainer._run(state[0], state[1], *args)
        jax.block_until_ready(state)
        out[name] = (time.perf_counter() - start) / (max(1, steps // chunk) * chunk) * 1000
        trainer.params, trainer.opt_state = state[0], state[1]
    return out


def worker(backend: str, n: int, batch: int, steps: int) -> dict[str, float]:
    options = ["--worker", backend, "--n", str(n), "--batch", str(batch), "--steps", str(steps)]
    done = subprocess.run(
        [sys.executable, __file__, *options], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def fit(seed: int, scale: float, root: Path) -> dict:
    out = root / f"n4_data{seed}_scale{scale:g}"
    options = {"backend": "jax", "n": 4, "data-seed": seed, "recipe-scale": scale, "fresh": True}
    with tempfile.TemporaryDirectory() as cache:  # an empty compilation cache
        env = {**os.environ, "XDG_CACHE_HOME": cache}
        results, wall = fit_in_process(
            out, options, f"fit seed={seed} scale={scale}", reuse=False, env=env
        )
    evaluation = results["total_time"] - results["train_time"]
    return {
        "seed": seed,
        "scale": scale,
        "wall": wall - evaluation,
        "steps": results["steps"],
        "train": results["train_time"],
        **results["metrics"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[4, 5])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--seeds", type=int, nargs="+", default=DATA_SEEDS)
    parser.add_argument("--scales", type=float, nargs="+", default=[0.1, 0.2, 0.3])
    parser.add_argument("--skip-steps", action="store_true")
    parser.add_argument("--skip-fits", action="store_true")
    parser.add_argument("--root", type=Path, default=Path("runs/benchmarks/backends"))
    parser.add_argument("--worker", choices=("pyro", "jax"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run = pyro_worker if args.worker == "pyro" else jax_worker
        print(json.dumps(run(args.n[0], args.batch, args.steps)))
        return
    if not args.skip_steps:
        print(f"Milliseconds per step, batch {args.batch}:\n")
        print(header("n | phase | Pyro | JAX | speed-up"))
        compile_times = []
        for n in args.n:
            pyro = worker("pyro", n, args.batch, args.steps)
            jax = worker("jax", n, args.batch, args.steps)
            compile_times.append(jax["first call (pretrain)"])
            for phase in PHASES:
                print(
                    f"| {n} | {phase} | {pyro[phase]:.1f} | {jax[phase]:.2f} | "
                    f"{pyro[phase] / jax[phase]:.1f}× |"
                )
        print(
            f"\nJAX: first call (compilation and 100 steps) {min(compile_times):.1f}–"
            f"{max(compile_times):.1f} s\n"
        )
    if not args.skip_fits:
        rows = [fit(seed, scale, args.root) for scale in args.scales for seed in args.seeds]
        print("`pyrocrl fit --backend jax --n 4` with the fast recipe compressed, cold cache:\n")
        print(
            header(
                "data seed | recipe scale | steps | wall to trained model (s) | DCI D | "
                "interv. acc."
            )
        )
        for r in rows:
            d, acc = r["dci_disentanglement"], r["intervention_accuracy"]
            print(
                f"| {r['seed']} | {r['scale']:g} | {r['steps']} | {r['wall']:.1f} | "
                f"{d:.3f} | {acc:.3f} |"
            )
        for seed in args.seeds:
            done = [r for r in rows if r["seed"] == seed and r["dci_disentanglement"] >= 0.95]
            best = min(done, key=lambda r: r["wall"]) if done else None
            verdict = (
                f"{best['wall']:.0f} s (scale {best['scale']:g}; target ≤ 60 s: "
                f"{met(best['wall'] <= 60)})"
                if best
                else "not reached at these scales"
            )
            print(f"data seed {seed}: time to DCI disentanglement ≥ 0.95: {verdict}")


if __name__ == "__main__":
    main()
