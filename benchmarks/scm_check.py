"""A Bayesian check of fitted ILCMs: the linear SCM over their learned variables and graph,
sampled with NUTS, against the true weights of the scaling toy.

    python benchmarks/scm_check.py [--recipe fast-anneal] [--model-seed 0] [--root DIR]
                                   [--n 3 4 5] [--seeds 302 303 304] [--pairs 2000]
                                   [--chains 4] [--warmup 500] [--samples 500]
                                   [--oracle] [--details]

For each case, the ILCM ``ROOT/n{n}_data{seed}_model{model_seed}/checkpoint.pt`` (ROOT:
``runs/benchmarks/scm_check/{recipe}`` unless ``--root`` is given) is fitted first if it is
missing, as the scaling study fits it: ``pyrocrl fit --backend jax --n N --data-seed S
--seed M --recipe R`` (the JAX backend, 100,000 training pairs; under a minute each; an
interrupted fit resumes from its checkpoint). The
test split is then regenerated exactly as the fit was evaluated (``simulate_splits`` seeds
each split on its own, so the test split does not need the training pairs). Both worlds
of the test pairs are encoded to learned causal variables, the intervention targets
inferred, and the graph found with ILCM-H; NUTS then samples a linear-Gaussian SCM over
that graph (:func:`pyrocrl.inference.scm_check.
fit_linear_scm`) from the first ``--pairs`` pairs. Learned variables are matched to true ones
by correlation and mapped by per-variable affine fits on all test pairs; the posterior
weights of learned edges that are true edges are then checked against the true weights
(coverage by the 94 % HDI).

Columns: SHD of the learned graph after the matching; found/true: learned edges that are
true edges (right direction) / true edges; intervention accuracy of the inferred targets
under the matching; min R²: the worst affine fit of a learned variable to its true one (1 =
exactly affine); mixing, noise / z: the largest weight of other true variables against a
learned variable's own, in a linear regression on all of them scaled to their spread, for
the noise encodings and for the causal variables (0 = no mixing; noise mixing near 0 with z
mixing well above it puts the error in the learned solution functions, not in the encoder);
levels vs. differences: the largest gap between the aligned least-squares weights from the
first world's levels and from the differences between worlds, where the shared noise cancels
(a small gap: the weights' bias is in the learned variables, not in the noise model); σ
aligned: posterior mean noise scales on the truth's scale (true: 1). ``--oracle`` also fits
the true variables, targets and graph of the same pairs (a check of the sampler and model
alone); ``--details`` prints every run's edges.
"""

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _runner import fit_in_process, grid_parser, header, run_dir, scaling_test_split

from pyrocrl.inference.fit import load_ilcm
from pyrocrl.inference.graph import learn_graph
from pyrocrl.inference.queries import encode, predict_targets
from pyrocrl.inference.scm_check import (
    align_to_truth,
    coverage_fraction,
    fit_linear_scm,
    summarize,
    weight_coverage,
)
from pyrocrl.metrics import graph_scores


def contrast_gap(
    z: np.ndarray, targets: np.ndarray, adjacency: np.ndarray, scale: np.ndarray, pairs: int
) -> float:
    """Largest gap, on the truth's scale, between least-squares weights from the levels of the
    first world and from the differences between worlds (``z~_j − z_j = Σ_i w_ij (z~_i − z_i)``
    for ``j`` not intervened on: the shared noise cancels, and with it any bias from noise)."""
    z, targets = z[:pairs], targets[:pairs]
    level, change = z[:, 0], z[:, 1] - z[:, 0]
    gaps = [0.0]
    for j in np.nonzero(adjacency.any(0))[0]:
        parents = np.nonzero(adjacency[:, j])[0]
        design = np.c_[level[:, parents], np.ones(len(level))]
        by_level = np.linalg.lstsq(design, level[:, j], rcond=None)[0][:-1]
        keep = targets != j + 1
        by_change = np.linalg.lstsq(change[keep][:, parents], change[keep, j], rcond=None)[0]
        gaps += list(np.abs(by_level - by_change) * scale[parents] / scale[j])
    return float(max(gaps))


def mixing(learned: np.ndarray, true: np.ndarray, permutation: np.ndarray) -> float:
    """Largest share of the other true variables in a learned one: regress each learned
    variable (matched to true ``permutation[j]``) on all true variables, scale the
    coefficients by the true variables' spread, and return the max over ``j`` of
    ``Σ |other coefficients| / |own coefficient|``."""
    design = np.c_[true, np.ones(len(true))]
    coef = np.linalg.lstsq(design, learned, rcond=None)[0][:-1] * true.std(0)[:, None]
    own = np.abs(coef[permutation, np.arange(len(permutation))])
    other = np.abs(coef).sum(0) - own
    return float(np.max(other / own))


def fitted(n: int, seed: int, args: argparse.Namespace) -> Path:
    """The checkpoint of the case, fitted with ``pyrocrl fit`` if it is not there yet (an
    interrupted fit resumes from its checkpoint)."""
    out = run_dir(args.root, n, seed, args.model_seed)
    options = {
        "backend": "jax",
        "n": n,
        "data-seed": seed,
        "seed": args.model_seed,
        "recipe": args.recipe,
    }
    fit_in_process(
        out,
        options,
        f"the fit of n={n}, seed={seed}",
        announce=f"fitting n = {n}, data seed {seed}",
    )
    return out / "checkpoint.pt"


def check(n: int, seed: int, args: argparse.Namespace) -> dict:
    model, guide = load_ilcm(fitted(n, seed, args))
    lcm, test = scaling_test_split(n, seed)
    x, z_true = test["x"].values, test["z"].values
    encoded = [encode(guide, x[:, w]) for w in (0, 1)]
    z = np.stack([e["z"].numpy() for e in encoded], axis=1)  # (N, 2, n)
    noise = encoded[0]["noise"].numpy()
    targets = predict_targets(guide, x[:, 0], x[:, 1]).numpy()
    found = learn_graph(model, guide, x[:, 0], x[:, 1], method="ilcm-h")
    both, both_true = z.reshape(-1, n), z_true.reshape(-1, n)
    permutation, scale, shift = align_to_truth(both, both_true)
    residual = both - (scale * both_true[:, permutation] + shift)
    r2 = 1.0 - residual.var(0) / both.var(0)
    mixed = (
        mixing(noise, test["noise"].values[:, 0], permutation),
        mixing(z[:, 0], z_true[:, 0], permutation),
    )
    true_targets = test["target"].values
    mapped = np.where(targets > 0, permutation[np.maximum(targets, 1) - 1] + 1, 0)
    start = time.perf_counter()
    tree = fit_linear_scm(
        z[:, 0],
        z[:, 1],
        targets,
        found.adjacency,
        num_chains=args.chains,
        num_warmup=args.warmup,
        num_samples=args.samples,
        seed=0,
        max_pairs=args.pairs,
    )
    elapsed = time.perf_counter() - start
    summary = summarize(tree)
    table = weight_coverage(tree, lcm.ground_truth()["weights"], permutation, scale)
    sigma = tree["posterior"]["noise_scale"].mean(("chain", "draw")).values / np.abs(scale)
    oracle = None
    if args.oracle:  # the same pairs with the true variables, targets and graph
        truth = fit_linear_scm(
            z_true[:, 0],
            z_true[:, 1],
            true_targets,
            lcm.scm.adjacency,
            num_chains=args.chains,
            num_warmup=args.warmup,
            num_samples=args.samples,
            seed=0,
            max_pairs=args.pairs,
        )
        exact = weight_coverage(truth, lcm.ground_truth()["weights"], np.arange(n), np.ones(n))
        oracle = int(exact["covered"].sum())
    return {
        "n": n,
        "seed": seed,
        "learned_edges": int(found.adjacency.sum()),
        "true_edges": int(lcm.scm.adjacency.sum()),
        "found": int(table["true_edge"].sum()),
        "shd": graph_scores(found.adjacency, lcm.scm.adjacency, permutation).shd,
        "accuracy": float(np.mean(mapped == true_targets)),
        "r2": float(r2.min()),
        "mixing": mixed,
        "gap": contrast_gap(z, targets, found.adjacency, scale, args.pairs),
        "covered": int(table.loc[table["true_edge"], "covered"].sum()),
        "coverage": coverage_fraction(table),
        "sigma": (float(sigma.min()), float(sigma.max())),
        "r_hat": float(summary["r_hat"].max()),
        "ess": float(summary["ess_bulk"].min()),
        "time": elapsed,
        "table": table,
        "oracle": oracle,
    }


def main() -> None:
    parser = grid_parser(__doc__, n=[3, 4, 5], root=None, seeds="--seeds")
    parser.add_argument("--pairs", type=int, default=2000, help="pairs NUTS sees")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--details", action="store_true", help="print each run's edges")
    parser.add_argument(
        "--oracle", action="store_true", help="also fit the true z, targets and graph"
    )
    parser.add_argument("--recipe", default="fast-anneal", help="recipe of missing fits")
    parser.add_argument("--model-seed", type=int, default=0)
    parser.add_argument(
        "--root", type=Path, help="fitted ILCMs (default: runs/benchmarks/scm_check/RECIPE)"
    )
    args = parser.parse_args()
    if args.root is None:
        args.root = Path("runs/benchmarks/scm_check") / args.recipe
    import jax

    if not jax.config.jax_compilation_cache_dir:  # refits of equal shapes skip compilation
        cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        jax.config.update("jax_compilation_cache_dir", str(cache / "pyrocrl" / "xla"))
    torch.set_num_threads(1)
    print(f"command: python {' '.join(sys.argv)}")
    print(
        f"machine: {platform.machine()} {platform.system()}, {os.cpu_count()} CPU cores "
        f"(shared with other work: times are inflated), jax {jax.__version__}"
    )
    print(
        f"data seeds {args.seeds}, n {args.n}; ILCMs from {args.root} (model seed "
        f"{args.model_seed}; missing ones fitted with recipe {args.recipe!r}); "
        f"NUTS: {args.chains} chains × ({args.warmup} warmup + {args.samples} draws), "
        f"{args.pairs} test pairs, seed 0; coverage by the 94 % HDI"
    )
    print()
    rows = [check(n, seed, args) for n in args.n for seed in args.seeds]
    extra = " | oracle covered / true" if args.oracle else ""
    print(
        header(
            "n | seed | edges learned | true edges found / true | SHD | interv. acc. | "
            "min R² | mixing: noise / z | levels vs. differences | σ aligned | covered / found | "
            "max r_hat | min ess_bulk | NUTS (s)" + extra
        )
    )
    for r in rows:
        oracle = f" {r['oracle']} / {r['true_edges']} |" if args.oracle else ""
        print(
            f"| {r['n']} | {r['seed']} | {r['learned_edges']} | {r['found']} / "
            f"{r['true_edges']} | {r['shd']} | {r['accuracy']:.3f} | {r['r2']:.4f} | "
            f"{r['mixing'][0]:.3f} / {r['mixing'][1]:.3f} | {r['gap']:.3f} | "
            f"{r['sigma'][0]:.2f}–{r['sigma'][1]:.2f} | {r['covered']} / {r['found']} | "
            f"{r['r_hat']:.3f} | {r['ess']:.0f} | {r['time']:.0f} |{oracle}"
        )
    covered, found = sum(r["covered"] for r in rows), sum(r["found"] for r in rows)
    share = covered / found if found else float("nan")
    print()
    print(
        f"overall: {covered} of {found} true weights on true edges found lie in their 94 % "
        f"HDI ({share:.0%}); mean per-run coverage "
        f"{np.nanmean([r['coverage'] for r in rows]):.0%}"
    )
    if args.oracle:
        hits, total = sum(r["oracle"] for r in rows), sum(r["true_edges"] for r in rows)
        print(
            f"oracle (true z, targets and graph, same pairs): {hits} of {total} true "
            f"weights in their 94 % HDI ({hits / total:.0%})"
        )
    if args.details:
        for r in rows:
            print(f"\nn = {r['n']}, seed {r['seed']}:")
            table = r["table"]
            print(
                table.to_string(index=False, float_format="{:.3f}".format)
                if len(table)
                else "no learned edges"
            )


if __name__ == "__main__":
    main()
