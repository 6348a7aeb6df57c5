"""The ``pyrocrl`` command line: argument parsing, and calls into the library functions
that do each command's work, which Python code can call as well —

==========  =====================================================================
simulate    :func:`pyrocrl.data.catalog.simulate_dataset`, :func:`pyrocrl.data.save`, or for
            images :func:`pyrocrl.data.catalog.write_dataset`;
            :func:`pyrocrl.data.preview.plot_dataset`
fit         :func:`pyrocrl.inference.fit_setup.toy_fit_data` or
            :func:`~pyrocrl.inference.fit_setup.held_out_fit_data`,
            :func:`~pyrocrl.inference.fit_setup.tuned_recipe`,
            :func:`pyrocrl.inference.fit.fit_ilcm`
query       :func:`pyrocrl.inference.query_data.query_dataset`,
            :func:`~pyrocrl.inference.query_data.save_query`
graph       :func:`pyrocrl.inference.graph_report.graph_report`,
            :func:`~pyrocrl.inference.graph_report.write_graph`,
            :func:`~pyrocrl.inference.graph_report.plot_learned_graph`
check       :func:`pyrocrl.inference.check_report.check_model`
reduce      :func:`pyrocrl.inference.image_features.reduce_to_features`
info        :func:`pyrocrl.data.describe` of :func:`pyrocrl.data.load`
==========  =====================================================================

Every subcommand turns bad input into one line on stderr and a non-zero exit status
(2 for bad arguments, 1 for failures while running), never a traceback.
"""

__all__ = ["main"]

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from pyrocrl._version import __version__

DEFAULT_DATA_SEED = 302
MODEL_NAMES = ("ilcm", "elcm", "dvae", "betavae")
"""The keys of :data:`pyrocrl.inference.fit.MODELS` (not imported here: a quick start)."""
MODEL_ARTICLES = {"ilcm": "an ILCM", "elcm": "an ELCM", "dvae": "a dVAE", "betavae": "a β-VAE"}
QUERY_HELP = {
    "encode": "noise and causal variables of each observation",
    "posterior": "intervention posterior q(I | x, x~) of each pair",
    "counterfactual": "x~ had the intervention --do happened to each x",
    "interventional": "--size new pairs under the intervention --do",
    "observational": "--size new pairs without intervention",
    "pairs": "--size new pairs with interventions from the model's prior",
}
"""The queries of :data:`pyrocrl.inference.query_data.QUERIES`, as the help says them."""

Subparsers = Any  # argparse's private _SubParsersAction


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


def _names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected names separated by commas")
    return names


def _n_or_auto(text: str) -> int | str:
    return text if text == "auto" else _positive_int(text)


def _finite_float(positive: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < 0 or (positive and value == 0):
            sign = "> 0" if positive else "≥ 0"
            raise argparse.ArgumentTypeError(f"must be a finite number {sign}, got {text}")
        return value

    return parse


_non_negative_float = _finite_float(positive=False)
_positive_float = _finite_float(positive=True)


# --- the parser: one function per subcommand -----------------------------------------------


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pyrocrl",
        description="Causal representation learning from weakly supervised pairs.",
    )
    parser.add_argument("--version", action="version", version=f"pyrocrl {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    for add in (
        _add_simulate,
        _add_fit,
        _add_query,
        _add_graph,
        _add_check,
        _add_reduce,
        _add_info,
    ):
        add(commands)
    return parser


def _add_simulate(commands: Subparsers) -> None:
    from pyrocrl.data.catalog import SIMULATOR_NAMES

    sim = commands.add_parser(
        "simulate",
        help="simulate weakly supervised pairs from a ground-truth model",
        description=(
            "Simulate pairs (x, x~) before and after a random perfect intervention, with the "
            "ground truth (noise, causal variables, target, graph), and write them as NetCDF "
            "(or a Zarr store, for an output ending in .zarr). Images are written as they are "
            "rendered, a block of pairs at a time. "
            "With no arguments: the scaling toy with 4 variables, 100000 pairs, seed "
            f"{DEFAULT_DATA_SEED}, written to pairs.nc."
        ),
        epilog="example: pyrocrl simulate scaling --n 4 --pairs 100000 --seed 302 -o pairs.nc",
    )
    sim.add_argument(
        "simulator",
        nargs="?",
        default="scaling",
        choices=SIMULATOR_NAMES,
        help=(
            "scaling: random linear SCM + rotation (default); scaling-sensors: the same SCM "
            "read by 8 saturating, noisy sensors; scaling-shift: the same with soft interventions "
            "that shift a mechanism; toy2d: nonlinear 2-D toy; "
            "causalcircuit: a robot finger and three lights, rendered with MuJoCo; "
            "causal3dident: an object under a spotlight before a coloured wall, 9 variables, "
            "rendered with MuJoCo; "
            "chamber: the light tunnel of the causal chambers (needs pyrocrl[chamber])"
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
        help="causalcircuit, causal3dident, chamber --mode images: image size in pixels "
        "(default 64, up to 512)",
    )
    sim.add_argument(
        "--workers",
        type=_positive_int,
        help="causalcircuit, causal3dident: rendering processes (default: CPUs)",
    )
    sim.add_argument(
        "--shape",
        choices=("teapot", "arrow", "blob"),
        help="causal3dident: the object (default teapot)",
    )
    sim.add_argument(
        "--variables",
        type=_names,
        metavar="A,B,…",
        help="causal3dident: the causal variables that vary (default: all nine: pos_x, pos_y, "
        "pos_z, rot_alpha, rot_beta, spot, hue_object, hue_spot, hue_background)",
    )
    sim.add_argument(
        "--mode",
        choices=("sensors", "images"),
        help="chamber: observe the sensor readings (5 variables, default) or camera images (3)",
    )
    sim.add_argument(
        "--noise",
        type=_non_negative_float,
        help="chamber sensors: noise sd as a fraction of each sensor's span (default 0; 0.01 "
        "is the documented noisy level)",
    )
    sim.add_argument(
        "--pair-share",
        type=_positive_float,
        metavar="P",
        help="keep this share (0 < P ≤ 1) of the pairs as pairs; the rest become unpaired "
        "observations of the world before (default 1: all pairs; features only)",
    )
    sim.add_argument(
        "--max-targets",
        type=_positive_int,
        metavar="K",
        help="toys: an intervention hits a set of up to K variables, uniform over the sets "
        "(default 1)",
    )
    sim.add_argument(
        "-o", "--output", type=Path, default=Path("pairs.nc"), help="NetCDF path, or DIR.zarr"
    )
    sim.add_argument("--plot", type=Path, metavar="PNG", help="also draw pairs and graph")
    sim.set_defaults(run=_simulate)


def _add_fit(commands: Subparsers) -> None:
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
        "--max-targets",
        type=_positive_int,
        metavar="K",
        help="an intervention may hit a set of up to K variables (default: the dataset's "
        "max_targets attribute, or 1)",
    )
    fit.add_argument(
        "--intervention",
        choices=("perfect", "shift"),
        help="shift: soft interventions that move the intervened noise (default: the "
        "dataset's intervention attribute, or perfect)",
    )
    fit.add_argument(
        "--noise-transform",
        choices=("identity", "spline"),
        default="identity",
        help="spline: a learned monotone transform of each variable's own noise in its "
        "mechanism (ILCM only; fit it with --recipe fast-settle). Default: identity",
    )
    fit.add_argument(
        "--backend",
        choices=("torch", "jax"),
        default="torch",
        help="train with Pyro (default) or with the compiled NumPyro twin of the model",
    )
    _add_fit_devices(fit)
    _add_fit_data(fit)
    fit.add_argument("--seed", type=_seed, default=0, help="model seed (default: 0)")
    fit.add_argument(
        "--seeds",
        type=_positive_int,
        default=1,
        metavar="K",
        help="fit K model seeds (--seed, --seed+1, …; each in OUTPUT/seed-S) and report how "
        "well they agree: a label-free check of the result",
    )
    _add_fit_recipe(fit)
    fit.add_argument("-o", "--output", type=Path, default=Path("runs/ilcm"), help="directory")
    fit.add_argument(
        "--fresh",
        action="store_true",
        help="start afresh: remove an earlier run's checkpoint and results in OUTPUT",
    )
    fit.add_argument(
        "--checkpoint-every",
        type=_positive_int,
        default=2000,
        metavar="STEPS",
        help="steps between checkpoints (default: 2000)",
    )
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
    fit.set_defaults(run=_fit)


def _add_fit_devices(fit: argparse.ArgumentParser) -> None:
    """Where training runs (see docs/scale.md)."""
    fit.add_argument(
        "--device",
        metavar="DEVICE",
        help="train on cpu (default), cuda, cuda:INDEX or auto (a GPU if there is one)",
    )
    fit.add_argument(
        "--devices",
        type=_positive_int,
        default=1,
        metavar="N",
        help="data-parallel training on N devices, each minibatch split between them "
        "(Pyro: one process a device through Lightning; JAX: sharded batches)",
    )
    fit.add_argument(
        "--num-nodes",
        type=_positive_int,
        default=1,
        metavar="M",
        help="Pyro: nodes of --devices each (run the command on every node; docs/scale.md)",
    )
    fit.add_argument(
        "--accelerator",
        choices=("cpu", "gpu"),
        help="what --devices counts: CPU processes or GPUs (default: as --device says)",
    )


def _add_fit_data(fit: argparse.ArgumentParser) -> None:
    """The pairs to fit: a dataset file, or the scaling toy."""
    fit.add_argument("--data", type=Path, help="a pyrocrl dataset to fit instead of the toy")
    fit.add_argument("--test", type=Path, help="held-out pairs (default: 10%% of --data)")
    fit.add_argument(
        "--n",
        type=_n_or_auto,
        help="causal variables (default: 4), or 'auto': fit n = 1, 2, … and choose n without "
        "labels (each fit in OUTPUT/n-N; see --n-max)",
    )
    fit.add_argument(
        "--n-max",
        type=_positive_int,
        metavar="N",
        help="--n auto: the largest n to try (default: the number of features)",
    )
    fit.add_argument("--data-seed", type=_seed, default=DEFAULT_DATA_SEED, help="toy seed")
    fit.add_argument("--pairs", type=_positive_int, default=100_000, help="toy training pairs")
    fit.add_argument(
        "--test-pairs", type=_positive_int, default=10_000, help="toy test and DCI pairs"
    )


def _add_fit_recipe(fit: argparse.ArgumentParser) -> None:
    """The recipe, its length and its candidates."""
    from pyrocrl.inference.recipes import PRESETS

    fit.add_argument("--recipe", default="fast", help=f"training recipe: {', '.join(PRESETS)}")
    fit.add_argument(
        "--recipe-scale",
        type=_positive_float,
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
        "--candidate-workers",
        type=_positive_int,
        default=1,
        metavar="P",
        help="train P candidates at a time, each in a process of its own (default: 1)",
    )
    fit.add_argument(
        "--select-epoch",
        type=_positive_float,
        metavar="E",
        help="epoch at which candidates are compared (default: 6/7 of the recipe's length)",
    )


def _add_query(commands: Subparsers) -> None:
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
    for kind, text in QUERY_HELP.items():
        kinds.add_argument(f"--{kind}", dest="kind", action="store_const", const=kind, help=text)
    query.add_argument("--data", type=Path, help="a pyrocrl dataset (encode, posterior, cf.)")
    query.add_argument("--do", metavar="zK=VALUE", help="the intervention, e.g. z2=0.5")
    query.add_argument("--size", type=_positive_int, default=10_000, help="pairs to generate")
    query.add_argument(
        "--samples",
        type=_int_at_least(0, "must be ≥ 0"),
        default=0,
        help="counterfactual samples per pair besides the mean",
    )
    query.add_argument("--seed", type=_seed, default=0)
    query.add_argument("-o", "--output", type=Path, required=True, help="NetCDF path")
    query.set_defaults(run=_query)


def _add_graph(commands: Subparsers) -> None:
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
        choices=("ilcm-h", "enco", "elcm", "posterior"),
        default="ilcm-h",
        help="elcm: the graph an ELCM learned (needs a model fitted with --model elcm); "
        "posterior: the edges more probable than not, with their probabilities",
    )
    graph.add_argument("--seed", type=_seed, default=0)
    graph.add_argument("-o", "--output", type=Path, required=True, help="JSON path")
    graph.add_argument("--plot", type=Path, metavar="PNG", help="draw the graph")
    graph.set_defaults(run=_graph)


def _add_check(commands: Subparsers) -> None:
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
    check.add_argument(
        "--samples",
        type=_int_at_least(25, "must be ≥ 25 (PSIS)"),
        default=100,
        help="posterior draws (default: 100)",
    )
    check.add_argument(
        "--graph",
        choices=("ilcm-h", "enco", "elcm", "none"),
        help="how to find the graph (default: elcm for an ELCM, none for a β-VAE, else ilcm-h)",
    )
    check.add_argument("--scm", action="store_true", help="the Bayesian linear SCM (NUTS)")
    check.add_argument("--seed", type=_seed, default=0)
    check.add_argument("-o", "--output", type=Path, required=True, help="a directory")
    check.set_defaults(run=_check)


def _add_reduce(commands: Subparsers) -> None:
    red = commands.add_parser(
        "reduce",
        help="fit an image VAE to an image dataset and write its pairs as features",
        description=(
            "Fit a convolutional VAE to the images of a dataset (the pairing is not used) and "
            "write every pair as the VAE's code means: an ordinary dataset, with the ground "
            "truth carried over, that 'pyrocrl fit --data' reads. The VAE is saved beside it. "
            "VAE training is checkpointed to VAE.training: an interrupted run, started again "
            "with the same arguments, goes on from there. A Zarr store (DATA.zarr), or any "
            "dataset with --stream, is read from disk as needed, never whole: training streams "
            "shuffled minibatches from a bounded buffer, and encoding goes block by block."
        ),
        epilog="example: pyrocrl reduce circuit.nc --dim 8 --epochs 4 -o codes.nc",
    )
    red.add_argument(
        "data", type=Path, help="an image dataset, NetCDF or .zarr (simulate causalcircuit)"
    )
    red.add_argument("--dim", type=_positive_int, default=8, help="features (default 8)")
    red.add_argument("--epochs", type=_positive_float, default=4.0, help="VAE epochs (default 4)")
    red.add_argument(
        "--max-images", type=_positive_int, default=50_000, help="VAE training images"
    )
    red.add_argument("--seed", type=_seed, default=0, help="model seed")
    red.add_argument(
        "--device",
        metavar="DEVICE",
        help="train the VAE on cpu (default), cuda, cuda:INDEX or auto",
    )
    red.add_argument(
        "--stream",
        action="store_true",
        help="read the images from disk as needed, not into memory (the default for .zarr)",
    )
    red.add_argument(
        "-o", "--output", type=Path, default=Path("codes.nc"), help="NetCDF path, or DIR.zarr"
    )
    red.add_argument("--vae", type=Path, help="where to save the VAE (default: OUTPUT.vae.pt)")
    red.set_defaults(run=_reduce)


def _add_info(commands: Subparsers) -> None:
    info = commands.add_parser("info", help="summarize a dataset file")
    info.add_argument("path", type=Path, help="a NetCDF file or Zarr store written by pyrocrl")
    info.set_defaults(run=_info)


# --- the subcommands -----------------------------------------------------------------------


def _headless() -> None:
    """Draw without a display."""
    import matplotlib

    matplotlib.use("Agg")


def _check_outputs(files: Sequence[Path | None] = (), directory: Path | None = None) -> None:
    """Refuse output paths that cannot be written, before any work: files in a directory
    that does not exist, or that are directories; a directory that is a file."""
    from pyrocrl.data.store import is_zarr

    for path in files:
        if path is None:
            continue
        if path.is_dir() and not is_zarr(path):  # a Zarr store is a directory
            raise ValueError(f"cannot write {path}: it is a directory; give a file name")
        if not path.parent.is_dir():
            raise ValueError(f"cannot write {path}: directory {path.parent} does not exist")
    if directory is not None and directory.exists() and not directory.is_dir():
        raise ValueError(f"cannot write into {directory}: it is a file, not a directory")


def _simulate(args: argparse.Namespace) -> None:
    from pyrocrl.data import describe, load, save, unpair
    from pyrocrl.data.catalog import (
        CHAMBER,
        CIRCUIT,
        CIRCUIT_VARIABLES,
        IMAGE_SIMULATORS,
        MAX_RESOLUTION,
        SCENES,
        simulate_dataset,
        write_dataset,
    )
    from pyrocrl.data.store import auto_chunks

    _check_outputs([args.output, args.plot])
    resolution = 64 if args.resolution is None else args.resolution
    if args.simulator == CIRCUIT and args.n not in (None, CIRCUIT_VARIABLES):
        raise ValueError(f"CausalCircuit has exactly 4 causal variables, got --n {args.n}")
    if (args.shape is not None or args.variables is not None) and args.simulator != SCENES:
        raise ValueError(f"--shape and --variables are options of {SCENES}")
    if args.simulator in (*IMAGE_SIMULATORS, CHAMBER) and resolution > MAX_RESOLUTION:
        raise ValueError(f"--resolution must be at most 512, got {resolution}")
    if args.pair_share is not None and args.pair_share > 1:
        raise ValueError(f"--pair-share must lie in (0, 1], got {args.pair_share}")
    images = args.simulator in IMAGE_SIMULATORS or args.mode == "images"
    if args.pair_share is not None and images:
        raise ValueError("--pair-share: image datasets hold pairs only")
    if args.simulator == CHAMBER:
        _check_chamber_flags(args)
    elif args.mode is not None or args.noise is not None:
        raise ValueError(f"--mode and --noise are options of chamber, not {args.simulator}")
    start = time.perf_counter()
    options = dict(n=args.n, seed=args.seed, graph_seed=args.graph_seed, resolution=resolution)
    options.update(workers=args.workers, mode=args.mode, noise=args.noise)
    options.update(max_targets=args.max_targets or 1)
    if args.simulator == SCENES:
        options.update(shape=args.shape, variables=args.variables)
    try:
        if images:  # written block by block as rendered, then read back lazily
            write_dataset(args.output, args.simulator, args.pairs, **options)
            ds = load(args.output, chunks=auto_chunks())
        else:
            ds = simulate_dataset(args.simulator, args.pairs, **options)
    except ImportError as error:  # an optional simulator's package is missing
        raise ValueError(str(error)) from None
    if args.pair_share is not None:
        ds = unpair(ds, args.pair_share, seed=args.seed)
    elapsed = time.perf_counter() - start
    if not images:
        save(ds, args.output)
    print(describe(ds))
    print(f"simulated in {elapsed:.2f} s; wrote {args.output}")
    if args.plot:
        from pyrocrl.data.preview import plot_dataset

        _headless()
        print(f"wrote {plot_dataset(ds, args.plot)}")


def _check_chamber_flags(args: argparse.Namespace) -> None:
    """Flags that mean nothing for the light tunnel, or for its chosen mode."""
    images = args.mode == "images"
    if args.workers is not None:
        raise ValueError(
            "--workers is an option of causalcircuit and causal3dident; chamber renders in-process"
        )
    if args.resolution is not None and not images:
        raise ValueError("--resolution is the size of chamber's images: add --mode images")
    if args.noise and images:
        raise ValueError("--noise is a level of chamber's sensors: images are noise-free")


def _fit(args: argparse.Namespace) -> None:
    import torch

    from pyrocrl.data.dataset import max_targets
    from pyrocrl.inference.fit import fit_ilcm
    from pyrocrl.inference.fit_setup import tuned_recipe
    from pyrocrl.inference.recipes import get_recipe
    from pyrocrl.observations import paired_rows

    start = time.perf_counter()
    _check_outputs(directory=args.output)
    recipe = get_recipe(args.recipe)  # an unknown recipe is the first thing said
    if args.select_epoch is not None and args.candidates == 1:
        raise ValueError("--select-epoch compares candidates: give --candidates K with K ≥ 2")
    recipe = tuned_recipe(
        recipe, scale=args.recipe_scale, candidates=args.candidates, select_epoch=args.select_epoch
    )
    torch.set_num_threads(1)
    if args.backend == "jax":
        _host_devices(args)
        _compilation_cache()
    data = _fit_data(args)
    seeds = [args.seed + k for k in range(args.seeds)]
    options = {
        "test": data.test,
        "dci_train": data.dci,
        "recipe": recipe,
        "dci_pairs": (min(10_000, args.test_pairs), min(5_000, args.test_pairs)),
        "resume": not args.fresh,
        "validate_every": args.validate_every,
        "validate_model": args.validate_model,
        "model": args.model,
        "backend": args.backend,
        "checkpoint_every": args.checkpoint_every,
        "max_targets": args.max_targets,
        "intervention": args.intervention,
        "noise_transform": args.noise_transform,
        **_fit_devices(args),
    }
    if args.n == "auto":
        if (args.max_targets or max_targets(data.train)) > 1:
            raise ValueError("--n auto reads single-variable interventions: --max-targets 1")
        _fit_auto(args, data.train, seeds, options)
        return
    paired = paired_rows(data.train["x"].values)
    unpaired = f" and {(~paired).sum()} unpaired observations" if not paired.all() else ""
    print(
        f"fitting {MODEL_ARTICLES[args.model]} with {data.n} causal variables to "
        f"{paired.sum()} pairs{unpaired} ..."
    )
    fits = []
    for seed in seeds:
        output = args.output if len(seeds) == 1 else args.output / f"seed-{seed}"
        model, guide, report = fit_ilcm(data.train, data.n, seed=seed, output=output, **options)
        report.total_time = time.perf_counter() - start  # with the data and JAX's start-up
        print(report.format())
        fits.append((model, guide))
    if len(fits) > 1:
        _report_agreement(fits, data.test, args.output)


def _fit_devices(args: argparse.Namespace) -> dict[str, Any]:
    """``device``, ``devices`` and ``num_nodes`` of ``fit_ilcm`` from the flags."""
    device = args.device
    if args.accelerator is not None:
        named = "cpu" if device in (None, "cpu") or str(device).startswith("cpu") else "gpu"
        if device is not None and device != "auto" and named != args.accelerator:
            raise ValueError(f"--accelerator {args.accelerator} contradicts --device {device}")
        device = device if device not in (None, "auto") else args.accelerator
        device = "cuda" if device == "gpu" and args.backend == "torch" else device
    return {
        "device": device,
        "devices": args.devices,
        "num_nodes": args.num_nodes,
        "candidate_workers": args.candidate_workers,
    }


def _fit_auto(args: argparse.Namespace, train: Any, seeds: list[int], options: dict) -> None:
    """``pyrocrl fit --n auto``: the scan of :func:`~pyrocrl.inference.choose_n.scan_n`."""
    from pyrocrl.inference.choose_n import scan_n

    if args.model in ("dvae", "betavae"):
        raise ValueError(
            f"--n auto reads the intervention posterior, which {MODEL_ARTICLES[args.model]} "
            "does not have: use --model ilcm or elcm"
        )
    n_max = args.n_max or train.sizes["feature"]
    print(
        f"choosing the number of causal variables of {train.sizes['pair']} pairs: fitting "
        f"{MODEL_ARTICLES[args.model]} with n = 1, 2, … (at most {n_max}), "
        f"{len(seeds)} model seed(s) each ..."
    )

    def log(fit: Any, report: Any) -> None:
        print(
            f"  n = {fit.n}, model seed {fit.seed}: held-out log-likelihood {fit.elpd:.2f} "
            f"(ELBO {fit.elbo:.2f}), smallest intervention share {fit.shares.min():.3f} "
            f"({report.train_time:.0f} s)"
        )

    choice, fits = scan_n(
        train, n_max=n_max, seeds=tuple(seeds), output=args.output, log=log, **options
    )
    print(choice.format())
    print(f"  wrote {args.output / 'n_scan.json'}")
    if choice.n is None:
        raise ValueError(
            f"no fit with n ≤ {n_max} is complete: none has every learned variable as the "
            "inferred target of enough held-out pairs"
        )
    chosen = args.output / f"n-{choice.n}"
    print(fits[choice.n, choice.best.seed][2].format())
    print(f"the chosen fit: {chosen / f'seed-{choice.best.seed}' / 'checkpoint.pt'}")
    if len(seeds) > 1:
        _report_agreement([fits[choice.n, seed][:2] for seed in seeds], options["test"], chosen)


def _report_agreement(fits: list[Any], test: Any, output: Path) -> None:
    """Print and save (``OUTPUT/trust.json``) how well the fits of several seeds agree on
    the test pairs."""
    import torch

    from pyrocrl.inference.trust import trust_report
    from pyrocrl.io import write_json

    x = torch.as_tensor(test["x"].values[:10_000])
    trust = trust_report(fits, x[:, 0], x[:, 1])
    print(trust.format())
    path = write_json(output / "trust.json", trust.to_dict())
    print(f"  wrote {path}")


def _fit_data(args: argparse.Namespace) -> Any:
    """The pairs of ``pyrocrl fit``: the toy, or --data (and --test, or a held-out part)."""
    from pyrocrl.data import load
    from pyrocrl.inference.fit_setup import held_out_fit_data, toy_fit_data

    if args.n_max is not None and args.n != "auto":
        raise ValueError("--n-max bounds the scan of --n auto: give --n auto too")
    auto = args.n == "auto"  # the choice is made later, without the truth
    if args.data is None:
        n = 4 if auto or args.n is None else args.n
        return toy_fit_data(n, seed=args.data_seed, pairs=args.pairs, test_pairs=args.test_pairs)
    train = load(args.data)
    test = load(args.test) if args.test is not None else None
    if auto:  # the scan chooses n later, without the truth: a stand-in for FitData
        return held_out_fit_data(train, test, n=train.sizes["feature"])
    if (args.n or train.sizes.get("latent")) is None:
        raise ValueError(
            f"{args.data} has no ground truth: give the number of variables --n, or --n auto"
        )
    return held_out_fit_data(train, test, n=args.n)


def _host_devices(args: argparse.Namespace) -> None:
    """``--backend jax --devices N`` on the CPU: let JAX split the CPU into ``N`` devices
    (``XLA_FLAGS``, read once, when JAX starts; a count the user set is left alone)."""
    import os

    flags = os.environ.get("XLA_FLAGS", "")
    on_cpu = args.device in (None, "cpu") and args.accelerator in (None, "cpu")
    if args.devices > 1 and on_cpu and "host_platform_device_count" not in flags:
        if "jax" in sys.modules:
            raise ValueError("--devices on the CPU: JAX had started before the flag was read")
        count = f"--xla_force_host_platform_device_count={args.devices}"
        os.environ["XLA_FLAGS"] = f"{flags} {count}".strip()


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
        number = float(value) if sep else None
    except ValueError:
        raise ValueError(f"--do {text!r}: the value must be a number") from None
    if number is not None and not math.isfinite(number):
        raise ValueError(f"--do {text!r}: the value must be a finite number")
    return {name.strip(): number} if sep else {}


def _query(args: argparse.Namespace) -> None:
    from pyrocrl.data import load
    from pyrocrl.inference.fit import load_ilcm
    from pyrocrl.inference.query_data import OBSERVED, query_dataset, save_query

    _check_outputs([args.output])
    model, guide = load_ilcm(args.checkpoint)
    if args.kind in OBSERVED and args.data is None:
        raise ValueError(f"--{args.kind} needs observations: --data FILE")
    data = load(args.data) if args.kind in OBSERVED else None
    z = _parse_do(args.do) if args.kind in ("counterfactual", "interventional") else None
    if z == {}:
        raise ValueError(f"--do {args.do!r}: write it as zK=VALUE, e.g. z2=0.5")
    if args.samples and args.kind != "counterfactual":
        raise ValueError("--samples draws counterfactuals: use it with --counterfactual")
    result = query_dataset(
        model,
        guide,
        args.kind,
        data=data,
        z=z,
        size=args.size,
        samples=args.samples,
        seed=args.seed,
    )
    result.attrs["checkpoint"] = str(args.checkpoint)
    save_query(result, args.output)
    print(f"wrote {args.output}: {args.kind} for {result.sizes['pair']} pairs")


def _graph(args: argparse.Namespace) -> None:
    from pyrocrl.data import load
    from pyrocrl.inference.fit import load_ilcm
    from pyrocrl.inference.graph_report import graph_report, plot_learned_graph, write_graph

    _check_outputs([args.output, args.plot])
    model, guide = load_ilcm(args.checkpoint)
    report = graph_report(model, guide, load(args.data), method=args.method, seed=args.seed)
    write_graph(report, args.output, checkpoint=str(args.checkpoint), data=str(args.data))
    print(report.format())
    print(f"wrote {args.output}")
    if args.plot:
        print(f"wrote {plot_learned_graph(report.graph, args.plot)}")


def _check(args: argparse.Namespace) -> None:
    from pyrocrl.data import load
    from pyrocrl.inference.check_report import check_model
    from pyrocrl.inference.fit import load_ilcm, recorded_metrics
    from pyrocrl.inference.graph import NO_GRAPH, default_method

    _check_outputs(directory=args.output)
    model, guide = load_ilcm(args.checkpoint)
    data = load(args.data)
    if args.scm and (args.graph or default_method(model)) == NO_GRAPH:
        raise ValueError("--scm needs a graph: drop --graph none (a β-VAE has none)")
    report = check_model(
        model,
        guide,
        data,
        args.output,
        pairs=args.pairs,
        samples=args.samples,
        graph=args.graph,
        scm=args.scm,
        seed=args.seed,
        metrics=recorded_metrics(args.checkpoint),
    )
    print(report.format())


def _reduce(args: argparse.Namespace) -> None:
    from pyrocrl.data import load
    from pyrocrl.data.store import is_zarr
    from pyrocrl.inference.image_features import reduce_to_features

    _check_outputs([args.output, args.vae])
    stream = args.stream or is_zarr(args.data)
    reduction = reduce_to_features(
        load(args.data, chunks="auto" if stream else None),
        args.output,
        vae_path=args.vae,
        dim=args.dim,
        epochs=args.epochs,
        max_images=args.max_images,
        seed=args.seed,
        log=print,
        device=args.device,
    )
    print(reduction.format())


def _info(args: argparse.Namespace) -> None:
    from pyrocrl.data import describe, load
    from pyrocrl.data.store import auto_chunks

    print(describe(load(args.path, chunks=auto_chunks())))  # lazily: never whole in memory


def _first_line(error: BaseException) -> str:
    """The message of an error on one line (Pyro appends the shapes of the trace to errors
    raised inside a program: the first line is the message itself)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else repr(error)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pyrocrl`` console script; returns the exit status."""
    from pyrocrl.errors import PyrocrlError

    args = _build_parser().parse_args(argv)
    try:
        args.run(args)
    except ImportError as error:  # an optional extra is missing
        name = getattr(error, "name", None)
        hint = f" ({name} is not installed)" if name and name not in str(error) else ""
        print(f"pyrocrl {args.command}: error: {_first_line(error)}{hint}", file=sys.stderr)
        return 1
    except (PyrocrlError, ValueError, OSError) as error:
        print(f"pyrocrl {args.command}: error: {_first_line(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"pyrocrl {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
