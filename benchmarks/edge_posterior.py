"""Calibration of the edge posterior over the learned variables' graph: of the edges given
probability p, how many are true.

Fits the scaling toy (``pyrocrl fit --n N --data-seed S --backend jax``, ``fast`` recipe,
model seed 0) for n = 3, 4, 5 and data seeds 302–304, unless done, under
``ROOT/n{n}_data{seed}_model0``. Each fit's edge posterior
(:mod:`pyrocrl.inference.edge_posterior`) is computed from the first P held-out pairs, for
each P of ``--pairs``; learned variables are matched to true ones by the intervention
labels (Hungarian), and every ordered pair of learned variables is one forecast: its edge
probability against whether the true graph has that edge. Prints one table per P and the
reliability over all fits, and draws the reliability diagrams (``--plot``). The posterior
is the default one, tempered for the leak of the learned variables into each other that it
estimates from the pairs (each fit's leak δ is printed); the exact posterior
(``leakage=0``) is scored beside it.

    python benchmarks/edge_posterior.py [--n 3 4 5] [--data-seeds 302 303 304] [--jobs 2]
        [--pairs 250 1000 4000] [--root runs/benchmarks/edge_posterior] [--plot PNG]

Target (issue: data regimes, item 5): calibrated, "of edges given probability p, about p
are true": an expected calibration error of at most 0.05 over the fits.
"""

from pathlib import Path

import numpy as np
import torch
from _runner import fit_in_process, grid_parser, header, met, run_dir, run_grid, scaling_test_split

from pyrocrl.inference.edge_posterior import fitted_edge_posterior
from pyrocrl.inference.fit import load_ilcm
from pyrocrl.inference.queries import predict_targets
from pyrocrl.metrics import match_interventions, reliability

TARGET_ECE = 0.05


def fit(n: int, seed: int, root: Path) -> Path:
    out = run_dir(root, n, seed, 0)
    options = {"n": n, "data-seed": seed, "backend": "jax"}
    fit_in_process(out, options, f"n={n} data seed {seed}", announce="fitting")
    return out


def forecasts(n: int, seed: int, out: Path, pairs: int) -> dict:
    """The edge probabilities of one fit against the truth, learned variables matched: the
    posterior tempered for the leak it estimates, and the exact one (``exact``)."""
    _, guide = load_ilcm(out / "checkpoint.pt")
    lcm, test = scaling_test_split(n, seed)
    x = test["x"].values[:pairs]
    posterior = fitted_edge_posterior(guide, x[:, 0], x[:, 1], pairs=pairs)
    exact = fitted_edge_posterior(guide, x[:, 0], x[:, 1], pairs=pairs, leakage=0)
    targets = predict_targets(guide, x[:, 0], x[:, 1]).numpy()
    match = match_interventions(targets, test["target"].values[:pairs], n)[1:] - 1
    truth = lcm.scm.adjacency[np.ix_(match, match)]  # in the learned variables' order
    off = ~np.eye(n, dtype=bool)
    mode = posterior.most_probable_edges()
    return {
        "n": n,
        "seed": seed,
        "probs": posterior.probs[off],
        "exact": exact.probs[off],
        "leakage": posterior.leakage,
        "truth": truth[off],
        "wrong": int((mode != truth)[off].sum()),
        "edges": int(truth.sum()),
    }


def main() -> None:
    parser = grid_parser(__doc__, n=[3, 4, 5], root="runs/benchmarks/edge_posterior", jobs=True)
    parser.add_argument("--pairs", type=int, nargs="+", default=[250, 1000, 4000])
    parser.add_argument("--plot", type=Path, help="draw the reliability diagrams here")
    args = parser.parse_args()
    grid = [(n, s, args.root) for n in args.n for s in args.data_seeds]
    outs = run_grid(fit, grid, args.jobs)
    torch.set_num_threads(1)
    tables = {}
    for pairs in args.pairs:
        rows = [forecasts(n, s, out, pairs) for (n, s, _), out in zip(grid, outs, strict=True)]
        print(f"\n## Edge posterior from {pairs} held-out pairs\n")
        print(header("n | data seed | leak δ | true edges | edges the mode gets wrong | mean p "
                     "of true edges | mean p of absent edges"))  # fmt: skip
        for r in rows:
            true, absent = r["probs"][r["truth"] == 1], r["probs"][r["truth"] == 0]
            print(
                f"| {r['n']} | {r['seed']} | {r['leakage']:.4f} | {r['edges']} | {r['wrong']} | "
                f"{true.mean() if len(true) else float('nan'):.3f} | "
                f"{absent.mean() if len(absent) else float('nan'):.3f} |"
            )
        probs = np.concatenate([r["probs"] for r in rows])
        truth = np.concatenate([r["truth"] for r in rows])
        table = reliability(probs, truth, bins=5)
        tables[pairs] = table
        print(f"\nreliability over {len(probs)} ordered pairs of variables:\n")
        print(header("bin | mean p | frequency | count"))
        for b in range(table.sizes["bin"]):
            print(
                f"| {table['bin'].values[b]:.1f} | {table['probability'].values[b]:.3f} | "
                f"{table['frequency'].values[b]:.3f} | {int(table['count'].values[b])} |"
            )
        brier = float(np.mean((probs - truth) ** 2))
        ece = table.attrs["ece"]
        print(
            f"\nECE {ece:.3f} (target ≤ {TARGET_ECE}: {met(ece <= TARGET_ECE)}), Brier {brier:.3f}"
        )
        exact = np.concatenate([r["exact"] for r in rows])
        exact_ece = reliability(exact, truth, bins=5).attrs["ece"]
        print(
            f"the exact posterior (leakage=0): ECE {exact_ece:.3f}, "
            f"Brier {float(np.mean((exact - truth) ** 2)):.3f}"
        )
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from pyrocrl.io import save_figure
        from pyrocrl.plots import plot_reliability

        figure, axes = plt.subplots(1, len(tables), figsize=(4 * len(tables), 3.6))
        for ax, (pairs, table) in zip(np.atleast_1d(axes), tables.items(), strict=True):
            plot_reliability(table, ax=ax, what=f"edges, {pairs} pairs")
        figure.tight_layout()
        save_figure(figure, args.plot)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
