"""A causal graph learned from a dataset's pairs, as a report: timed, printed as an
adjacency table, written as JSON and drawn (what ``pyrocrl graph`` does)."""

__all__ = ["GraphReport", "graph_report", "plot_learned_graph", "write_graph"]

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xarray as xr

from pyrocrl.data.dataset import pairs_only
from pyrocrl.inference.graph import POSTERIOR_PAIRS, LearnedGraph, learn_graph
from pyrocrl.io import save_figure
from pyrocrl.sites import variable_names


@dataclass
class GraphReport:
    """A learned graph and how it was found."""

    graph: LearnedGraph
    pairs: int
    """Pairs it was learned from (at most ``max_pairs`` of :func:`graph_report`)."""
    seconds: float

    @property
    def names(self) -> list[str]:
        """The learned variables, ``z1 … zn``."""
        return variable_names(len(self.graph.adjacency))

    def edges(self) -> list[tuple[str, str]]:
        """``(cause, effect)`` by name."""
        names = self.names
        return [(names[i - 1], names[j - 1]) for i, j in self.graph.edges()]

    def to_dict(self) -> dict[str, Any]:
        """The graph as written to JSON: ``method``, ``variables``, ``adjacency`` and
        ``strength`` (row: cause, column: effect), ``threshold``, ``order``, ``edges``."""
        names, found = self.names, self.graph
        return {
            "method": found.method,
            "variables": names,
            "adjacency": found.adjacency,
            "strength": found.strength,
            "threshold": found.threshold,
            "order": [names[i] for i in found.order],
            "edges": self.edges(),
        }

    def format(self) -> str:
        """The summary ``pyrocrl graph`` prints: method, pairs, time, the adjacency table
        and the edges."""
        names, edges = self.names, self.edges()
        lines = [
            f"{self.graph.method} on {self.pairs} pairs in {self.seconds:.1f} s: "
            f"{len(edges)} edges",
            "adjacency (row = cause, column = effect), variables " + " ".join(names),
        ]
        for name, row in zip(names, self.graph.adjacency, strict=True):
            lines.append(f"  {name:>4s}  " + " ".join(str(int(v)) for v in row))
        lines.append("edges: " + (", ".join(f"{a}→{b}" for a, b in edges) or "none"))
        return "\n".join(lines)


def graph_report(
    model: Any,
    guide: Any,
    data: xr.Dataset,
    *,
    method: str = "ilcm-h",
    seed: int = 0,
    max_pairs: int = 5000,
) -> GraphReport:
    """Learn the graph of a fitted model from the pairs of ``data``
    (:func:`~pyrocrl.inference.graph.learn_graph` on at most ``max_pairs`` of them), timed.
    """
    x = pairs_only(data)["x"].values
    start = time.perf_counter()
    found = learn_graph(
        model, guide, x[:, 0], x[:, 1], method=method, max_pairs=max_pairs, seed=seed
    )
    read = min(len(x), max_pairs, POSTERIOR_PAIRS if method == "posterior" else max_pairs)
    return GraphReport(found, read, time.perf_counter() - start)


def write_graph(report: GraphReport, path: str | os.PathLike, **sources: str) -> Path:
    """Write :meth:`GraphReport.to_dict` as JSON, followed by ``sources`` (e.g.
    ``checkpoint=…, data=…``). Returns the path."""
    from pyrocrl.io import write_json

    return write_json(path, {**report.to_dict(), **sources})


def plot_learned_graph(
    graph: LearnedGraph, path: str | os.PathLike, names: list[str] | None = None
) -> Path:
    """Draw a learned graph with its edge strengths into an image file (``names``:
    ``z1 … zn`` by default). Returns the path."""
    from matplotlib.figure import Figure  # no pyplot: the user's backend stays as it is

    from pyrocrl.plots import plot_graph

    figure = Figure(figsize=(4, 4))
    ax = figure.subplots()
    names = names or variable_names(len(graph.adjacency))
    plot_graph(graph.adjacency, weights=graph.strength * graph.adjacency, names=names, ax=ax)
    ax.set_title(f"{graph.method}: learned causal graph")
    save_figure(figure, path, dpi=120, bbox_inches="tight")
    return Path(path)
