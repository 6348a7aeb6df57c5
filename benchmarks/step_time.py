"""Time per training step of the Pyro backend, by phase.

    python benchmarks/step_time.py [--n 4 5] [--batch 64] [--steps 200]

One torch thread; random observations (the cost does not depend on the data); the ILCM
objective of the ``fast`` recipe in each phase, with Pyro's validation on and off. Prints
a markdown table of milliseconds per step (forward, backward, clipping and Adam).
"""

import argparse
import time

import pyro
import torch
from _runner import header

from pyrocrl.inference.guides import ILCMGuide
from pyrocrl.inference.objectives import ILCMObjective
from pyrocrl.inference.recipes import get_recipe
from pyrocrl.models.ilcm import ILCM

PHASES = {"pretrain": 0.0, "soft": 2.0, "deterministic": 3.0}


def time_phase(n: int, batch: int, steps: int, epoch: float, validate: bool) -> float:
    torch.manual_seed(0)
    model = ILCM(n, n)
    guide = ILCMGuide(model)
    objective = ILCMObjective(model, guide)
    params = [*model.parameters(), *guide.parameters()]
    optimizer = torch.optim.Adam(params, lr=1e-3, foreach=True)
    phase = get_recipe("fast").at(epoch)
    data = torch.randn(8192, 2, n)

    def step() -> None:
        rows = data[torch.randint(0, len(data), (batch,))]
        loss, _ = objective(rows[:, 0], rows[:, 1], phase)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        optimizer.step()

    with pyro.validation_enabled(validate):
        for _ in range(20):
            step()
        start = time.perf_counter()
        for _ in range(steps):
            step()
    return (time.perf_counter() - start) / steps * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[4, 5])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"batch {args.batch}, {args.steps} timed steps, one thread; milliseconds per step\n")
    print(header("n | validation | " + " | ".join(PHASES)))
    for n in args.n:
        for validate in (True, False):
            times = [time_phase(n, args.batch, args.steps, e, validate) for e in PHASES.values()]
            cells = " | ".join(f"{t:.1f}" for t in times)
            print(f"| {n} | {'on' if validate else 'off'} | {cells} |")


if __name__ == "__main__":
    main()
