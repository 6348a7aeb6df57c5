"""Where training runs, and how fast: a short check of every device path of both backends.

    python benchmarks/gpu_check.py [--steps 300] [--batch 64] [--n 4]

Trains the ILCM of the scaling toy (n = 4, the ``fast`` recipe's first epochs, pretraining
included) for ``--steps`` steps in each configuration this machine offers and prints a
markdown table of seconds and milliseconds per step (start-up, compilation and process
launch included, as a user waits for them):

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


def run(backend: str, device: str | None, devices: int, steps: int, batch: int, n: int) -> dict:
    """Train ``steps`` steps in this process; seconds, and whether the parameters moved."""
    torch.set_num_threads(1 if devices > 1 else max(1, os.cpu_count() or 1))
    data = simulate_pairs("scaling", 20_000, n=n, seed=302)
    recipe = get_recipe("fast").replace(batch_size=batch)
    torch.manual_seed(0)
    model, guide = build_ilcm(n, n)
    before = [p.detach().clone() for p in model.parameters()]
    trainer = make_trainer(
        model, guide, recipe, seed=0, backend=backend, device=device, devices=devices
    )
    steps_per_epoch = 20_000 // batch
    start = time.perf_counter()
    result = trainer.fit(data, until_epoch=steps / steps_per_epoch)
    seconds = time.perf_counter() - start
    moved = any(
        not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters(), strict=True)
    )
    on_cpu = all(p.device.type == "cpu" for p in model.parameters())
    return {"steps": result.steps, "seconds": seconds, "moved": moved, "on_cpu": on_cpu}


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
    parser.add_argument("--steps", type=int, default=300)
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
    print(header("backend | device | devices | seconds | ms/step | moved | model on CPU"))
    for backend, device, devices, here in configs:
        row = f"| {backend} | {device} | {devices} |"
        if not here:
            print(f"{row} no such device here | | | |")
            continue
        out = run_elsewhere(args, backend, device, devices)
        if "error" in out:
            print(f"{row} failed: {out['error']} | | | |")
            continue
        ms = out["seconds"] / out["steps"] * 1000
        print(f"{row} {out['seconds']:.1f} | {ms:.1f} | {out['moved']} | {out['on_cpu']} |")


if __name__ == "__main__":
    main()
