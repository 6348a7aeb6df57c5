"""Causal graphs of trained models on the scaling toy: ILCM-H and ENCO on ILCMs, and the
explicit graph an ELCM learns, against the truth.

Target (issue: graph discovery): SHD = 0 on at least 80 % of runs for both ILCM-H and ENCO,
over n = 3, 4, 5 and three data seeds; and how the ELCM compares.

    python benchmarks/graphs.py [--n 3 4 5] [--data-seeds 302 303 304] [--jobs 2] [--no-elcm]

Models come from ``benchmarks/scaling_ilcm.py``'s run folders (``fast`` recipe, model seed 0;
fitted with ``pyrocrl fit`` where missing, ``--jobs`` at a time). Graphs are learned on 5,000
held-out pairs; learned variables are matched to true ones with the intervention labels
(Hungarian). ILCM-H and ENCO are also run on the ELCM's variables.
"""

import time

import numpy as np
import torch
from _runner import grid_parser, header, met, run_grid, scaling_test_split
from scaling_ilcm import run, run_dir

from pyrocrl.inference.fit import load_ilcm
from pyrocrl.inference.graph import learn_graph
from pyrocrl.inference.queries import predict_targets
from pyrocrl.metrics import graph_scores, match_interventions

METHODS = {"ilcm": ("ilcm-h", "enco"), "elcm": ("elcm", "ilcm-h", "enco")}


def main() -> None:
    parser = grid_parser(__doc__, n=[3, 4, 5], root="runs/benchmarks/scaling_ilcm", jobs=True)
    parser.add_argument("--no-elcm", action="store_true", help="ILCMs only")
    args = parser.parse_args()
    models = ("ilcm",) if args.no_elcm else ("ilcm", "elcm")
    grid = [(n, s, m) for m in models for n in args.n for s in args.data_seeds]
    fits = run_grid(
        lambda n, seed, kind: run(n, seed, 0, "fast", args.root, kind), grid, args.jobs
    )
    torch.set_num_threads(1)
    rows = []
    for (n, seed, kind), fitted in zip(grid, fits, strict=True):
        model, guide = load_ilcm(run_dir(n, seed, 0, "fast", args.root, kind) / "checkpoint.pt")
        lcm, test = scaling_test_split(n, seed)
        x = test["x"].values[:5000]
        targets = predict_targets(guide, x[:, 0], x[:, 1]).numpy()
        match = match_interventions(targets, test["target"].values[:5000], n)[1:] - 1
        for method in METHODS[kind]:
            start = time.perf_counter()
            found = learn_graph(model, guide, x[:, 0], x[:, 1], method=method)
            elapsed = time.perf_counter() - start
            scores = graph_scores(found.adjacency, lcm.scm.adjacency, match)
            rows.append(
                {
                    "n": n,
                    "seed": seed,
                    "model": kind,
                    "method": method,
                    "scores": scores,
                    "time": elapsed,
                    "edges": int(lcm.scm.adjacency.sum()),
                    "dci": fitted["metrics"]["dci_disentanglement"],
                    "accuracy": fitted["metrics"]["intervention_accuracy"],
                }
            )
    print(
        header(
            "n | data seed | true edges | model | DCI D | interv. acc. | method | SHD | "
            "precision | recall | time (s)"
        )
    )
    for r in rows:
        s = r["scores"]
        print(
            f"| {r['n']} | {r['seed']} | {r['edges']} | {r['model'].upper()} | "
            f"{r['dci']:.3f} | {r['accuracy']:.3f} | {r['method']} | {s.shd} | "
            f"{s.precision:.2f} | {s.recall:.2f} | {r['time']:.1f} |"
        )
    print()
    for kind in models:
        for method in METHODS[kind]:
            mine = [r for r in rows if r["model"] == kind and r["method"] == method]
            share = np.mean([r["scores"].shd == 0 for r in mine])
            line = (
                f"{kind.upper()} + {method}: SHD = 0 on {share:.0%} of {len(mine)} runs, "
                f"mean SHD {np.mean([r['scores'].shd for r in mine]):.2f}, "
                f"mean time {np.mean([r['time'] for r in mine]):.1f} s"
            )
            if kind == "ilcm":
                line += f" (target ≥ 80%: {met(share >= 0.8)})"
            print(line)
    for kind in models:
        mine = [r for r in rows if r["model"] == kind and r["method"] == METHODS[kind][0]]
        print(
            f"{kind.upper()}: mean DCI disentanglement "
            f"{np.mean([r['dci'] for r in mine]):.3f}, mean intervention accuracy "
            f"{np.mean([r['accuracy'] for r in mine]):.3f}"
        )


if __name__ == "__main__":
    main()
