"""The ``pyrocrl`` command line.

Every subcommand turns bad input into one line on stderr and a non-zero exit status
(2 for bad arguments, 1 for failures while running), never a traceback.
"""

__all__ = ["main"]

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from pyrocrl._version import __version__

if TYPE_CHECKING:
    import xarray as xr

DEFAULT_DATA_SEED = 302


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors fit on one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"seeds are non-negative, got {value}")
    return value


def _build_parser() -> argparse.ArgumentParser:
    from pyrocrl.data.simulators import SIMULATORS

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
        choices=sorted(SIMULATORS),
        help="scaling: random linear SCM + rotation (default); toy2d: nonlinear 2-D toy",
    )
    sim.add_argument("--n", type=_positive_int, help="number of causal variables (scaling: 4)")
    sim.add_argument("--pairs", type=_positive_int, default=100_000, help="default: 100000")
    sim.add_argument("--seed", type=_seed, default=DEFAULT_DATA_SEED, help="sample seed")
    sim.add_argument(
        "--graph-seed", type=_seed, help="seed of graph, weights and mixing (default: --seed)"
    )
    sim.add_argument("-o", "--output", type=Path, default=Path("pairs.nc"), help="NetCDF path")
    sim.add_argument("--plot", type=Path, metavar="PNG", help="also draw pairs and graph")

    info = commands.add_parser("info", help="summarize a dataset file")
    info.add_argument("path", type=Path, help="a NetCDF file written by pyrocrl")
    return parser


def _simulate(args: argparse.Namespace) -> None:
    from pyrocrl.data import describe, save, simulate_pairs

    n = args.n if args.n is not None or args.simulator != "scaling" else 4
    start = time.perf_counter()
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


def _info(args: argparse.Namespace) -> None:
    from pyrocrl.data import describe, load

    print(describe(load(args.path)))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pyrocrl`` console script; returns the exit status."""
    from pyrocrl.errors import PyrocrlError

    args = _build_parser().parse_args(argv)
    handlers = {"simulate": _simulate, "info": _info}
    try:
        handlers[args.command](args)
    except (PyrocrlError, ValueError, OSError) as error:
        print(f"pyrocrl {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"pyrocrl {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
