"""Where training runs, and how fast: a short check of every device path of both backends.

    python benchmarks/gpu_check.py [--steps 200] [--batch 64] [--n 4]

Trains the ILCM of the scaling toy (n = 4, 100,000 pairs, the ``fast`` recipe's first
epochs, pretraining included) in each configuration this machine offers, each in a process
of its own, and prints a markdown table: the seconds of a first call of ``--steps`` steps
(start-up, compilation and process launch included, as a user waits for them), and the
milliseconds a step of a second call of ``9 × --steps`` steps takes in the training loop:

- Pyro on the CPU; Pyro on 2 CPU processes (Lightning's DDP, gloo);
- JAX on the CPU; JAX sharded over 2 host devices
  (``XLA_FLAGS=--xla_force_host_platform_device_count=2``, in a process of its own);
- with a GPU: Pyro on ``cuda``, Pyro's DDP over every GPU (NCCL), JAX on ``gpu`` and
  sharded over every GPU (needs a CUDA build of jaxlib, e.g. ``pip install 'jax[cuda12]'``).

Each configuration also checks that training moved the parameters and that the returned
model is on the CPU. Without a GPU the GPU rows say so and the script still exits 0.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import torch
from _runner import header

from pyrocrl.data import simulate_pairs
from pyrocrl.inference.candidates import make_trainer
from pyrocrl.inference.fit import build_ilcm
from pyrocrl.inference.recipes import get_recipe

HOST_DEVICES = "--xla_force_host_platform_device_count=2"
PAIRS = 100_000
"""Training pairs (the recipe is long enough for ``10 × --steps`` steps)."""


def run(backend: str, device: str | None, devices: int, steps: int, batch: int, n: int) -> dict:
    """Train ``steps`` steps, then ``9 × steps`` more in a second call, in this process:
    the seconds of the first call (start-up included), the milliseconds a step of the
    second call's training loop takes, and whether the parameters moved and came back to
    the CPU."""
    torch.set_num_threads(1 if devices > 1 else max(1, os.cpu_count() or 1))
    data = simulate_pairs("scaling", PAIRS, n=n, seed=302)
    recipe = get_recipe("fast").replace(batch_size=batch)
    torch.manual_seed(0)
    model, guide = build_ilcm(n, n)
    before = [p.detach().clone() for p in model.parameters()]
    trainer = make_trainer(
        model, guide, recipe, seed=0, backend=backend, device=device, devices=devices
    )
    steps_per_epoch = PAIRS // batch
    start = time.perf_counter()
    first = trainer.fit(data, until_epoch=steps / steps_per_epoch)
    seconds = time.perf_counter() - start
    then = trainer.fit(data, until_epoch=10 * steps / steps_per_epoch)
    moved = any(
        not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters(), strict=True)
    )
    on_cpu = all(p.device.type == "cpu" for p in model.parameters())
    ms = then.wall_time / (then.steps - first.steps) * 1000
    return {"seconds": seconds, "ms": ms, "moved": moved, "on_cpu": on_cpu}


def run_elsewhere(args: argparse.Namespace, backend: str, device: str | None, devices: int):
    """:func:`run` in a fresh process (JAX reads ``XLA_FLAGS`` once, at import)."""
    env = dict(os.environ)
    if backend == "jax" and (device in (None, "cpu")) and devices > 1:
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {HOST_DEVICES}".strip()
    command = [sys.executable, __file__, "--one", json.dumps([backend, device, devices])]
    command += ["--steps", str(args.steps), "--batch", str(args.batch), "--n", str(args.n)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def gpus() -> tuple[int, int]:
    """GPUs that PyTorch and JAX see."""
    torch_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    try:
        import jax

        jax_count = len(jax.devices("gpu"))
    except Exception:  # no CUDA jaxlib, or no GPU
        jax_count = 0
    return torch_count, jax_count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run(*json.loads(args.one), args.steps, args.batch, args.n)))
        return
    torch_gpus, jax_gpus = gpus()
    configs = [
        ("torch", "cpu", 1, True),
        ("torch", "cpu", 2, True),
        ("jax", "cpu", 1, True),
        ("jax", "cpu", 2, True),
        ("torch", "cuda", 1, torch_gpus > 0),
        ("torch", "cuda", max(torch_gpus, 2), torch_gpus > 1),
        ("jax", "gpu", 1, jax_gpus > 0),
        ("jax", "gpu", max(jax_gpus, 2), jax_gpus > 1),
    ]
    print(f"{args.steps} steps of {args.batch} pairs, n = {args.n}; {os.cpu_count()} CPU cores")
    print(f"GPUs seen: PyTorch {torch_gpus}, JAX {jax_gpus}\n")
    columns = f"first {args.steps} steps (s) | ms a step after | moved | model on CPU"
    print(header(f"backend | device | devices | {columns}"))
    for backend, device, devices, here in configs:
        row = f"| {backend} | {device} | {devices} |"
        if not here:
            print(f"{row} no such device here | | | |")
            continue
        out = run_elsewhere(args, backend, device, devices)
        if "error" in out:
            print(f"{row} failed: {out['error']} | | | |")
            continue
        checks = f"{out['moved']} | {out['on_cpu']}"
        print(f"{row} {out['seconds']:.1f} | {out['ms']:.2f} | {checks} |")


if __name__ == "__main__":
    main()
