"""The ``pyrocrl`` command line.

Every subcommand turns bad input into one line on stderr and a non-zero exit status
(2 for bad arguments, 1 for failures while running), never a traceback.
"""

__all__ = ["main"]

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from pyrocrl._version import __version__

if TYPE_CHECKING:
    import xarray as xr

DEFAULT_DATA_SEED = 302
MODEL_NAMES = ("ilcm", "elcm", "dvae", "betavae")
"""The keys of :data:`pyrocrl.inference.fit.MODELS` (not imported here: a quick start)."""
CIRCUIT = "causalcircuit"
"""The image simulator (``pyrocrl.data.causalcircuit``), which renders with MuJoCo."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors fit on one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _int_at_least(minimum: int, what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{what}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1, "must be at least 1")
_seed = _int_at_least(0, "seeds are non-negative")


def _build_parser() -> argparse.ArgumentParser:
    from pyrocrl.data.simulators import SIMULATORS
    from pyrocrl.inference.recipes import PRESETS

    parser = _Parser(
        prog="pyrocrl",
        description="Causal representation learning from weakly supervised pairs.",
    )
    parser.add_argument("--version", action="version", version=f"pyrocrl {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    sim = commands.add_parser(
        "simulate",
        help="simulate weakly supervised pairs from a ground-truth model",
        description=(
            "Simulate pairs (x, x~) before and after a random perfect intervention, with the "
            "ground truth (noise, causal variables, target, graph), and write them as NetCDF. "
            "With no arguments: the scaling toy with 4 variables, 100000 pairs, seed "
            f"{DEFAULT_DATA_SEED}, written to pairs.nc."
        ),
        epilog="example: pyrocrl simulate scaling --n 4 --pairs 100000 --seed 302 -o pairs.nc",
    )
    sim.add_argument(
        "simulator",
        nargs="?",
        default="scaling",
        choices=sorted([*SIMULATORS, CIRCUIT]),
        help=(
            "scaling: random linear SCM + rotation (default); toy2d: nonlinear 2-D toy; "
            "causalcircuit: a robot finger and three lights, rendered with MuJoCo"
        ),
    )
    sim.add_argument("--n", type=_positive_int, help="number of causal variables (scaling: 4)")
    sim.add_argument("--pairs", type=_positive_int, default=100_000, help="default: 100000")
    sim.add_argument("--seed", type=_seed, default=DEFAULT_DATA_SEED, help="sample seed")
    sim.add_argument(
        "--graph-seed", type=_seed, help="seed of graph, weights and mixing (default: --seed)"
    )
    sim.add_argument(
        "--resolution",
        type=_int_at_least(8, "images need at least 8 pixels a side"),
        default=64,
        help="causalcircuit: image size in pixels (default 64, up to 512)",
    )
    sim.add_argument(
        "--workers", type=_positive_int, help="causalcircuit: rendering processes (default: CPUs)"
    )
    sim.add_argument("-o", "--output", type=Path, default=Path("pairs.nc"), help="NetCDF path")
    sim.add_argument("--plot", type=Path, metavar="PNG", help="also draw pairs and graph")

    fit = commands.add_parser(
        "fit",
        help="fit an ILCM to weakly supervised pairs (default: the scaling toy)",
        description=(
            "Fit an implicit latent causal model and report DCI scores, intervention "
            "accuracy and the ELBO on held-out pairs. With no arguments: simulate the scaling "
            f"toy (n=4, data seed {DEFAULT_DATA_SEED}, 100000 training pairs, 10000 test "
            "pairs, 10000 pairs for the DCI regressors) and fit it with the 'fast' recipe. "
            "An existing checkpoint in the output directory is resumed. --model elcm fits the "
            "explicit model, whose causal graph is a learned parameter; dvae and betavae are "
            "the baselines without causal structure."
        ),
        epilog="example: pyrocrl fit --n 5 --data-seed 1 --recipe authors -o runs/n5",
    )
    fit.add_argument("--model", choices=MODEL_NAMES, default="ilcm", help="default: ilcm")
    fit.add_argument(
        "--backend",
        choices=("torch", "jax"),
        default="torch",
        help="train with Pyro (default) or with the compiled NumPyro twin of the model",
    )
    fit.add_argument("--data", type=Path, help="a pyrocrl dataset to fit instead of the toy")
    fit.add_argument("--test", type=Path, help="held-out pairs (default: 10%% of --data)")
    fit.add_argument("--n", type=_positive_int, help="causal variables (default: 4)")
    fit.add_argument("--data-seed", type=_seed, default=DEFAULT_DATA_SEED, help="toy seed")
    fit.add_argument("--pairs", type=_positive_int, default=100_000, help="toy training pairs")
    fit.add_argument(
        "--test-pairs", type=_positive_int, default=10_000, help="toy test and DCI pairs"
    )
    fit.add_argument("--seed", type=_seed, default=0, help="model seed (default: 0)")
    fit.add_argument("--recipe", default="fast", help=f"training recipe: {', '.join(PRESETS)}")
    fit.add_argument(
        "--recipe-scale",
        type=float,
        default=1.0,
        metavar="F",
        help="multiply every time of the recipe by F (e.g. 0.2: a 5× shorter run)",
    )
    fit.add_argument(
        "--candidates",
        type=_positive_int,
        default=1,
        metavar="K",
        help="train K model seeds to --select-epoch and finish the one with the best "
        "training ELBO (no labels used)",
    )
    fit.add_argument(
        "--select-epoch",
        type=float,
        metavar="E",
        help="epoch at which candidates are compared (default: 6/7 of the recipe's length)",
    )
    fit.add_argument("-o", "--output", type=Path, default=Path("runs/ilcm"), help="directory")
    fit.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    fit.add_argument(
        "--validate-every", type=_positive_int, metavar="STEPS", help="evaluate while training"
    )
    fit.add_argument(
        "--pyro-validation",
        dest="validate_model",
        action="store_true",
        default=False,
        help="check distributions and traces while training (slower by about 1/8)",
    )

    query = commands.add_parser(
        "query",
        help="encode, infer interventions, intervene or take counterfactuals with a fitted model",
        description=(
            "Queries on an ILCM checkpoint (written by 'pyrocrl fit'); results are NetCDF. "
            "Counterfactuals and encodings read the first world of each pair of --data."
        ),
        epilog="example: pyrocrl query runs/ilcm/checkpoint.pt --data pairs.nc "
        "--counterfactual --do z2=0.5 -o counterfactual.nc",
    )
    query.add_argument("checkpoint", type=Path, help="a checkpoint written by 'pyrocrl fit'")
    kinds = query.add_mutually_exclusive_group(required=True)
    for kind, text in (
        ("encode", "noise and causal variables of each observation"),
        ("posterior", "intervention posterior q(I | x, x~) of each pair"),
        ("counterfactual", "x~ had the intervention --do happened to each x"),
        ("interventional", "--size new pairs under the intervention --do"),
        ("observational", "--size new pairs without intervention"),
        ("pairs", "--size new pairs with interventions from the model's prior"),
    ):
        kinds.add_argument(f"--{kind}", dest="kind", action="store_const", const=kind, help=text)
    query.add_argument("--data", type=Path, help="a pyrocrl dataset (encode, posterior, cf.)")
    query.add_argument("--do", metavar="zK=VALUE", help="the intervention, e.g. z2=0.5")
    query.add_argument("--size", type=_positive_int, default=10_000, help="pairs to generate")
    query.add_argument("--samples", type=_int_at_least(0, "must be ≥ 0"), default=0,
                       help="counterfactual samples per pair besides the mean")  # fmt: skip
    query.add_argument("--seed", type=_seed, default=0)
    query.add_argument("-o", "--output", type=Path, required=True, help="NetCDF path")

    graph = commands.add_parser(
        "graph",
        help="find the causal graph between the learned variables of a fitted model",
        description=(
            "ILCM-H reads the graph off the model's solution function; ENCO fits it to the "
            "encoded pairs of --data and their inferred intervention targets. Prints the "
            "adjacency, writes it as JSON and draws it with its edge strengths."
        ),
        epilog="example: pyrocrl graph runs/ilcm/checkpoint.pt --data pairs.nc -o graph.json",
    )
    graph.add_argument("checkpoint", type=Path, help="a checkpoint written by 'pyrocrl fit'")
    graph.add_argument("--data", type=Path, required=True, help="a pyrocrl dataset of pairs")
    graph.add_argument(
        "--method",
        choices=("ilcm-h", "enco", "elcm"),
        default="ilcm-h",
        help="elcm: the graph an ELCM learned (needs a model fitted with --model elcm)",
    )
    graph.add_argument("--seed", type=_seed, default=0)
    graph.add_argument("-o", "--output", type=Path, required=True, help="JSON path")
    graph.add_argument("--plot", type=Path, metavar="PNG", help="draw the graph")

    check = commands.add_parser(
        "check",
        help="posterior checks of a fitted model with ArviZ",
        description=(
            "Export a fitted model and the pairs of --data to an ArviZ DataTree (posterior "
            "draws, posterior predictive, log-likelihood, intervention posterior, ground truth "
            "and the learned graph) and check it: posterior predictive plot, PSIS diagnostic "
            "with Pareto k per pair, and the calibration of the intervention posterior when "
            "the data have true targets. --scm also fits a Bayesian linear SCM over the "
            "learned graph with NUTS and prints its edge weights with r_hat, ESS and HDI."
        ),
        epilog="example: pyrocrl check runs/ilcm/checkpoint.pt --data pairs.nc -o runs/check",
    )
    check.add_argument("checkpoint", type=Path, help="a checkpoint written by 'pyrocrl fit'")
    check.add_argument("--data", type=Path, required=True, help="a pyrocrl dataset of pairs")
    check.add_argument("--pairs", type=_positive_int, default=1000, help="pairs to check")
    check.add_argument("--samples", type=_int_at_least(25, "must be ≥ 25 (PSIS)"), default=100,
                       help="posterior draws (default: 100)")  # fmt: skip
    check.add_argument(
        "--graph",
        choices=("ilcm-h", "enco", "elcm", "none"),
        help="how to find the graph (default: elcm for an ELCM, none for a β-VAE, else ilcm-h)",
    )
    check.add_argument("--scm", action="store_true", help="the Bayesian linear SCM (NUTS)")
    check.add_argument("--seed", type=_seed, default=0)
    check.add_argument("-o", "--output", type=Path, required=True, help="a directory")

    red = commands.add_parser(
        "reduce",
        help="fit an image VAE to an image dataset and write its pairs as features",
        description=(
            "Fit a convolutional VAE to the images of a dataset (the pairing is not used) and "
            "write every pair as the VAE's code means: an ordinary dataset, with the ground "
            "truth carried over, that 'pyrocrl fit --data' reads. The VAE is saved beside it. "
            "VAE training is checkpointed to VAE.training: an interrupted run, started again "
            "with the same arguments, goes on from there."
        ),
        epilog="example: pyrocrl reduce circuit.nc --dim 8 --epochs 4 -o codes.nc",
    )
    red.add_argument("data", type=Path, help="an image dataset (pyrocrl simulate causalcircuit)")
    red.add_argument("--dim", type=_positive_int, default=8, help="features (default 8)")
    red.add_argument("--epochs", type=float, default=4.0, help="VAE epochs (default 4)")
    red.add_argument(
        "--max-images", type=_positive_int, default=50_000, help="VAE training images"
    )
    red.add_argument("--seed", type=_seed, default=0, help="model seed")
    red.add_argument("-o", "--output", type=Path, default=Path("codes.nc"), help="NetCDF path")
    red.add_argument("--vae", type=Path, help="where to save the VAE (default: OUTPUT.vae.pt)")

    info = commands.add_parser("info", help="summarize a dataset file")
    info.add_argument("path", type=Path, help="a NetCDF file written by pyrocrl")
    return parser


def _simulate(args: argparse.Namespace) -> None:
    from pyrocrl.data import describe, save, simulate_pairs

    n = args.n if args.n is not None or args.simulator != "scaling" else 4
    start = time.perf_counter()
    if args.simulator == CIRCUIT:
        from pyrocrl.data.causalcircuit import simulate_causalcircuit

        if n not in (None, 4):
            raise ValueError(f"CausalCircuit has exactly 4 causal variables, got --n {n}")
        if args.resolution > 512:
            raise ValueError(f"--resolution must be at most 512, got {args.resolution}")
        ds = simulate_causalcircuit(
            args.pairs, args.seed, resolution=args.resolution, workers=args.workers
        )
    else:
        ds = simulate_pairs(
            args.simulator, args.pairs, n=n, seed=args.seed, graph_seed=args.graph_seed
        )
    elapsed = time.perf_counter() - start
    save(ds, args.output)
    print(describe(ds))
    print(f"simulated in {elapsed:.2f} s; wrote {args.output}")
    if args.plot:
        _plot_dataset(ds, args.plot)
        print(f"wrote {args.plot}")


def _plot_dataset(ds: "xr.Dataset", path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pyrocrl.plots import plot_graph, plot_pairs

    if "image_shape" in ds.attrs:
        _plot_images(ds, path)
        return
    fig, axes = plt.subplots(1, 2, figsize=(10, 5))
    plot_pairs(ds, ax=axes[0])
    if "adjacency" in ds:
        weights = ds["weights"].values if "weights" in ds else None
        plot_graph(ds["adjacency"].values, weights=weights, ax=axes[1])
        axes[1].set_title("true causal graph")
    else:
        axes[1].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_images(ds: "xr.Dataset", path: Path, pairs: int = 8) -> None:
    import matplotlib.pyplot as plt

    from pyrocrl.data import images
    from pyrocrl.plots import plot_image_grid

    shown = images(ds.isel(pair=slice(0, pairs)))  # (pairs, world, H, W, C)
    names = ["none", *ds.attrs.get("variables", "").split(",")]
    labels = [f"do({names[t]})" if t else "no intervention" for t in ds["target"].values[:pairs]]
    fig = plot_image_grid(shown.swapaxes(0, 1), row_labels=["x", "x~"], column_labels=labels)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def _fit(args: argparse.Namespace) -> None:
    import torch

    from pyrocrl.data import load, make_simulator, simulate_splits
    from pyrocrl.inference.fit import fit_ilcm
    from pyrocrl.inference.recipes import get_recipe

    start = time.perf_counter()
    recipe = get_recipe(args.recipe)
    if args.recipe_scale != 1.0:
        recipe = recipe.scaled(args.recipe_scale)
    if args.select_epoch is not None and args.candidates == 1:
        raise ValueError("--select-epoch compares candidates: give --candidates K with K ≥ 2")
    if args.candidates > 1:
        select = recipe.epochs * 6 / 7 if args.select_epoch is None else args.select_epoch
        recipe = recipe.replace(candidates=args.candidates, select_epoch=select)
    torch.set_num_threads(1)
    if args.backend == "jax":
        _compilation_cache()
    dci_train = None
    if args.data is not None:
        train = load(args.data)
        n = args.n or train.sizes.get("latent")
        if n is None:
            raise ValueError(f"{args.data} has no ground truth: give the number of variables --n")
        if args.test is not None:
            test = load(args.test)
        else:
            cut = int(0.9 * train.sizes["pair"])
            train, test = train.isel(pair=slice(0, cut)), train.isel(pair=slice(cut, None))
    else:
        n = args.n or 4
        lcm = make_simulator("scaling", n, args.data_seed)
        sizes = {"train": args.pairs, "test": args.test_pairs, "dci": args.test_pairs}
        splits = simulate_splits(lcm, args.data_seed, sizes)
        train, test, dci_train = splits["train"], splits["test"], splits["dci"]
    name = {"ilcm": "an ILCM", "elcm": "an ELCM", "dvae": "a dVAE", "betavae": "a β-VAE"}
    print(
        f"fitting {name[args.model]} with {n} causal variables to {train.sizes['pair']} pairs ..."
    )
    _, _, report = fit_ilcm(
        train,
        n,
        test=test,
        dci_train=dci_train,
        recipe=recipe,
        seed=args.seed,
        dci_pairs=(min(10_000, args.test_pairs), min(5_000, args.test_pairs)),
        output=args.output,
        resume=not args.fresh,
        validate_every=args.validate_every,
        validate_model=args.validate_model,
        model=args.model,
        backend=args.backend,
    )
    report.total_time = time.perf_counter() - start
    print(report.format())


def _compilation_cache() -> None:
    """Keep compiled JAX programs on disk (``$XDG_CACHE_HOME/pyrocrl/xla``), so that later
    runs of the same model skip compilation; a cache the user configured is left alone."""
    import os

    try:
        import jax
    except ImportError:
        raise ValueError("--backend jax needs JAX: pip install 'pyrocrl[jax]'") from None
    if not jax.config.jax_compilation_cache_dir:
        root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        jax.config.update("jax_compilation_cache_dir", str(root / "pyrocrl" / "xla"))


def _parse_do(text: str | None) -> dict[str, float]:
    if text is None:
        raise ValueError("this query needs an intervention: --do zK=VALUE")
    name, sep, value = text.partition("=")
    try:
        return {name.strip(): float(value)} if sep else {}
    except ValueError:
        raise ValueError(f"--do {text!r}: the value must be a number") from None


def _query(args: argparse.Namespace) -> None:
    import torch
    import xarray as xr

    from pyrocrl.data import load, save
    from pyrocrl.inference import queries
    from pyrocrl.inference.fit import load_ilcm

    model, guide = load_ilcm(args.checkpoint)
    needs_data = args.kind in ("encode", "posterior", "counterfactual")
    if needs_data and args.data is None:
        raise ValueError(f"--{args.kind} needs observations: --data FILE")
    data = load(args.data) if needs_data else None
    z = _parse_do(args.do) if args.kind in ("counterfactual", "interventional") else None
    if z == {}:
        raise ValueError(f"--do {args.do!r}: write it as zK=VALUE, e.g. z2=0.5")
    if args.kind in ("encode", "posterior"):
        x = torch.as_tensor(data["x"].values)
        if args.kind == "encode":
            out = queries.encode(guide, x[:, 0])
            names = [f"z{k}" for k in range(1, model.n + 1)]
            result = xr.Dataset(
                {key: (("pair", "latent"), out[key].numpy()) for key in out},
                coords={"latent": names},
            )
        else:
            probs = queries.intervention_posterior(guide, x[:, 0], x[:, 1]).numpy()
            hypotheses = ["none"] + [f"z{k}" for k in range(1, model.n + 1)]
            result = xr.Dataset(
                {
                    "probs": (("pair", "hypothesis"), probs),
                    "target": ("pair", probs.argmax(-1)),
                },
                coords={"hypothesis": hypotheses},
            )
        result.attrs = {"query": args.kind, "checkpoint": str(args.checkpoint)}
        result.to_netcdf(args.output, engine="h5netcdf")
    else:
        x = data["x"].values[:, 0] if data is not None else None
        with torch.no_grad():
            result = queries.generate(
                model, args.kind, size=args.size, x=x, z=z, guide=guide, seed=args.seed
            )
        result.attrs["checkpoint"] = str(args.checkpoint)
        save(result, args.output)
    print(f"wrote {args.output}: {args.kind} for {result.sizes['pair']} pairs")


def _graph(args: argparse.Namespace) -> None:
    from pyrocrl.data import load
    from pyrocrl.inference.fit import load_ilcm
    from pyrocrl.inference.graph import learn_graph
    from pyrocrl.io import write_json

    model, guide = load_ilcm(args.checkpoint)
    data = load(args.data)
    x = data["x"].values
    start = time.perf_counter()
    found = learn_graph(model, guide, x[:, 0], x[:, 1], method=args.method, seed=args.seed)
    elapsed = time.perf_counter() - start
    names = [f"z{k}" for k in range(1, model.n + 1)]
    edges = [(names[i - 1], names[j - 1]) for i, j in found.edges()]
    write_json(
        args.output,
        {
            "method": found.method,
            "variables": names,
            "adjacency": found.adjacency,
            "strength": found.strength,
            "threshold": found.threshold,
            "order": [names[i] for i in found.order],
            "edges": edges,
            "checkpoint": str(args.checkpoint),
            "data": str(args.data),
        },
    )
    print(f"{found.method} on {min(len(x), 5000)} pairs in {elapsed:.1f} s: {len(edges)} edges")
    print("adjacency (row = cause, column = effect), variables " + " ".join(names))
    for name, row in zip(names, found.adjacency, strict=True):
        print(f"  {name:>4s}  " + " ".join(str(int(v)) for v in row))
    print("edges: " + (", ".join(f"{a}→{b}" for a, b in edges) or "none"))
    print(f"wrote {args.output}")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from pyrocrl.plots import plot_graph

        strength = found.strength * found.adjacency
        ax = plot_graph(found.adjacency, weights=strength, names=names)
        ax.set_title(f"{found.method}: learned causal graph")
        ax.figure.savefig(args.plot, dpi=120, bbox_inches="tight")
        plt.close(ax.figure)
        print(f"wrote {args.plot}")


def _check(args: argparse.Namespace) -> None:
    import json

    from pyrocrl.data import load
    from pyrocrl.inference import diagnostics
    from pyrocrl.inference.fit import load_ilcm
    from pyrocrl.inference.graph import learn_graph

    model, guide = load_ilcm(args.checkpoint)
    data = load(args.data).isel(pair=slice(0, args.pairs))
    method = args.graph or (
        "none"  # a β-VAE has no graph; asked for one, learn_graph says so
        if model.independent_views
        else "elcm"
        if model.config.get("model") == "elcm"
        else "ilcm-h"
    )
    x = data["x"].values
    found = None
    if method != "none":
        found = learn_graph(model, guide, x[:, 0], x[:, 1], method=method, seed=args.seed)
    results = args.checkpoint.parent / "results.json"
    metrics = json.loads(results.read_text()).get("metrics") if results.exists() else None
    start = time.perf_counter()
    tree = diagnostics.to_datatree(model, guide, data, num_samples=args.samples,
                                   seed=args.seed, graph=found, metrics=metrics)  # fmt: skip
    if args.scm:
        tree["scm"] = _scm_check(model, guide, x, found, args.seed)
    args.output.mkdir(parents=True, exist_ok=True)
    diagnostics.save_datatree(tree, args.output / "check.nc")
    paths = diagnostics.write_checks(tree, args.output)
    elapsed = time.perf_counter() - start
    print(f"{type(model).__name__}, {data.sizes['pair']} pairs, {args.samples} draws "
          f"({elapsed:.1f} s)")  # fmt: skip
    for key, value in diagnostics.summary(tree).items():
        print(f"  {key:<28s}{value:10.4f}")
    if found is not None:
        edges = ", ".join(f"z{i}→z{j}" for i, j in found.edges()) or "none"
        print(f"  graph ({method}): {edges}")
    if args.scm:
        from pyrocrl.inference.scm_check import summarize

        print("Bayesian linear SCM over the learned graph (NUTS):")
        print(summarize(tree["scm"]).to_string())
    print("wrote " + ", ".join(str(p) for p in [args.output / "check.nc", *paths]))


def _scm_check(model, guide, x, found, seed: int):
    """The Bayesian linear SCM over the learned graph, fitted to the encoded pairs."""
    from pyrocrl.inference.queries import encode, predict_targets
    from pyrocrl.inference.scm_check import fit_linear_scm

    if found is None:
        raise ValueError("--scm needs a graph: drop --graph none (a β-VAE has none)")
    z = encode(guide, x[:, 0])["z"].numpy()
    z_tilde = encode(guide, x[:, 1])["z"].numpy()
    targets = predict_targets(guide, x[:, 0], x[:, 1]).numpy()
    return fit_linear_scm(z, z_tilde, targets, found.adjacency, seed=seed)


def _reduce(args: argparse.Namespace) -> None:
    from pyrocrl.data import describe, load, save
    from pyrocrl.inference.reduce import fit_image_vae, reduce, save_image_vae

    ds = load(args.data)
    vae_path = args.vae or args.output.with_suffix(".vae.pt")
    checkpoint = vae_path.with_name(vae_path.name + ".training")
    vae, report = fit_image_vae(
        ds,
        dim=args.dim,
        epochs=args.epochs,
        max_images=args.max_images,
        seed=args.seed,
        checkpoint=checkpoint,
    )
    resumed = f" (resumed at step {report['resumed_at']})" if report["resumed_at"] else ""
    print(
        f"image VAE: {report['images']} images, {report['steps']} steps in "
        f"{report['seconds']:.0f} s{resumed}; reconstruction MSE {report['mse']:.5f}"
    )
    codes = reduce(vae, ds)
    save(codes, args.output)
    save_image_vae(vae, vae_path)
    checkpoint.unlink(missing_ok=True)
    print(describe(codes))
    print(f"wrote {args.output} and {vae_path}")


def _info(args: argparse.Namespace) -> None:
    from pyrocrl.data import describe, load

    print(describe(load(args.path)))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pyrocrl`` console script; returns the exit status."""
    from pyrocrl.errors import PyrocrlError

    args = _build_parser().parse_args(argv)
    handlers = {
        "simulate": _simulate,
        "fit": _fit,
        "query": _query,
        "graph": _graph,
        "check": _check,
        "reduce": _reduce,
        "info": _info,
    }
    try:
        handlers[args.command](args)
    except (PyrocrlError, ValueError, TypeError, OSError) as error:
        # Pyro appends the shapes of the trace to errors raised inside a program: keep the
        # first line, the message itself
        message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        print(f"pyrocrl {args.command}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"pyrocrl {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
