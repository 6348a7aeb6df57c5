"""Speed of the ground-truth simulators: wall time to draw weakly supervised pairs.

Target (issue: foundation): 100,000 pairs of the scaling toy with n = 10 in ≤ 5 s.

    python benchmarks/simulate_speed.py [--repeats 3]

Prints a markdown table; times are the best of ``--repeats`` runs, one torch thread.
"""

import argparse
import time

import torch
from _runner import header, met

from pyrocrl.data import make_simulator, simulate

CASES = [
    ("scaling", 4, 100_000),
    ("scaling", 10, 100_000),
    ("scaling", 30, 100_000),
    ("toy2d", 2, 100_000),
    ("scaling", 10, 1_000_000),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(header("simulator | n | pairs | best wall time (s) | pairs / s | target"))
    for name, n, pairs in CASES:
        lcm = make_simulator(name, n, graph_seed=0)
        times = []
        for seed in range(args.repeats):
            start = time.perf_counter()
            simulate(lcm, pairs, seed=seed, progress=False)
            times.append(time.perf_counter() - start)
        best = min(times)
        target = ""
        if (name, n, pairs) == ("scaling", 10, 100_000):
            target = f"≤ 5 s: {met(best <= 5)}"
        print(f"| {name} | {n} | {pairs} | {best:.2f} | {pairs / best:,.0f} | {target} |")


if __name__ == "__main__":
    main()
