"""The scaling study: identification against the number of causal variables, per method.

The paper's central experiment (its Fig. 8): DCI disentanglement of the ILCM, the ELCM and
the dVAE and β-VAE baselines on the scaling toy for n causal variables.

    python benchmarks/scaling_study.py [--n 2 3 4 5 6 8 10] [--data-seeds 302 303 304]
                                       [--model-seeds 0] [--methods ilcm elcm dvae betavae]
                                       [--full] [--quick] [--jobs 2]

Each fit is ``pyrocrl fit`` in its own process, with the JAX backend (the fastest one for
every method); ``--jobs`` fits run side by side. Finished
fits are kept under ``--root`` and skipped on a restart, so an interrupted study resumes.
Writes ``results.nc`` (an xarray dataset with dims ``method``, ``n``, ``data_seed``,
``model_seed``), ``dci.png`` (disentanglement against n, mean and seed range) and
``table.md``. ``--full`` runs three model seeds; ``--quick`` is a smoke run (n = 2, 3, one
seed, tiny data and a 20× shorter recipe, Pyro only, no ELCM). The β-VAE infers no interventions:
its intervention accuracy is NaN.
"""

import argparse
import time
from pathlib import Path

import numpy as np
from _runner import fit_in_process, grid_parser, header, run_dir, run_grid

METRICS = ("dci_disentanglement", "dci_completeness", "intervention_accuracy", "elbo")
METHODS = ("ilcm", "elcm", "dvae", "betavae")
LABELS = {"ilcm": "ILCM", "elcm": "ELCM", "dvae": "dVAE", "betavae": "β-VAE"}


def fit(method: str, n: int, data_seed: int, model_seed: int, args: argparse.Namespace) -> dict:
    options = {
        "model": method,
        "backend": "torch" if args.quick else "jax",
        "n": n,
        "data-seed": data_seed,
        "seed": model_seed,
        "fresh": True,
    }
    if args.quick:
        options.update({"pairs": 2000, "test-pairs": 500, "recipe-scale": 0.05})
    out = run_dir(args.root / method, n, data_seed, model_seed)
    data, wall = fit_in_process(out, options, f"{method} n={n} seed={data_seed}")
    wall = 0 if np.isnan(wall) else wall
    return {**{k: data["metrics"].get(k, np.nan) for k in METRICS}, "wall_time": wall}


def main() -> None:
    import xarray as xr

    parser = grid_parser(
        __doc__, n=[2, 3, 4, 5, 6, 8, 10], root="runs/benchmarks/scaling_study", jobs=True
    )
    parser.add_argument("--model-seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--full", action="store_true", help="three model seeds")
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    args = parser.parse_args()
    if args.full:
        args.model_seeds = [0, 1, 2]
    if args.quick:
        args.n, args.data_seeds, args.model_seeds = [2, 3], [302], [0]
        args.methods = [m for m in args.methods if m != "elcm"]
    grid = [
        (m, n, d, s, args)
        for m in args.methods
        for n in args.n
        for d in args.data_seeds
        for s in args.model_seeds
    ]
    start = time.perf_counter()
    rows = run_grid(fit, grid, args.jobs)
    coords = {
        "method": args.methods,
        "n": args.n,
        "data_seed": args.data_seeds,
        "model_seed": args.model_seeds,
    }
    shape = tuple(len(v) for v in coords.values())
    variables = {}
    for key in (*METRICS, "wall_time"):
        values = np.array([r[key] for r in rows], dtype=float).reshape(shape)
        variables[key] = (tuple(coords), values)
    results = xr.Dataset(variables, coords=coords)
    results.attrs["study_wall_time"] = time.perf_counter() - start
    args.root.mkdir(parents=True, exist_ok=True)
    results.to_netcdf(args.root / "results.nc", engine="h5netcdf")
    table = _table(results)
    (args.root / "table.md").write_text(table + "\n")
    _plot(results, args.root / "dci.png")
    print(table)
    wall = results.attrs["study_wall_time"]
    print(
        f"\nwall time of this invocation: {wall:.0f} s ({args.jobs} fits at a time); "
        f"wrote {args.root}/results.nc, table.md, dci.png"
    )


def _table(results) -> str:
    seeds = ("data_seed", "model_seed")
    mean = results.mean(seeds)
    low, high = results.min(seeds), results.max(seeds)
    lines = [header("method | n | DCI D mean (min–max) | interv. acc. | fits | time per fit")]
    count = results.sizes["data_seed"] * results.sizes["model_seed"]
    for method in results["method"].values:
        for n in results["n"].values:
            d = mean["dci_disentanglement"].sel({"method": method, "n": n}).item()
            lo = low["dci_disentanglement"].sel({"method": method, "n": n}).item()
            hi = high["dci_disentanglement"].sel({"method": method, "n": n}).item()
            acc = mean["intervention_accuracy"].sel({"method": method, "n": n}).item()
            acc = f"{acc:.3f}" if np.isfinite(acc) else "–"
            wall = mean["wall_time"].sel({"method": method, "n": n}).item()
            lines.append(
                f"| {LABELS[method]} | {n} | {d:.3f} ({lo:.3f}–{hi:.3f}) | {acc} | "
                f"{count} | {wall:.0f} s |"
            )
    total = results["wall_time"].sum(("n", *seeds)).to_series() / 60
    spent = ", ".join(f"{LABELS[m]} {minutes:.0f} min" for m, minutes in total.items())
    lines.append(f"\nFit wall times summed (one process per fit): {spent}.")
    return "\n".join(lines)


def _plot(results, path: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4))
    ax = figure.subplots()
    d = results["dci_disentanglement"].stack(seed=("data_seed", "model_seed"))
    for method in results["method"].values:
        values = d.sel({"method": method})
        ax.plot(results["n"], values.mean("seed"), marker="o", label=LABELS[method])
        ax.fill_between(results["n"], values.min("seed"), values.max("seed"), alpha=0.2)
    ax.set_xticks(results["n"].values)
    ax.set_xlabel("causal variables n")
    ax.set_ylabel("DCI disentanglement")
    ax.set_ylim(0, 1.02)
    ax.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
