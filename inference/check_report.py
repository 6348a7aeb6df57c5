"""Checking a fitted model on observed pairs, end to end (what ``pyrocrl check`` does): its
causal graph, the ArviZ export of model and pairs with the fit's recorded metrics,
optionally the Bayesian linear SCM over the graph, all written to a directory with the
plots of the checks."""

__all__ = ["CHECK_FILE", "CheckReport", "check_model", "linear_scm_over_graph"]

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from pyrocrl.data.dataset import pairs_only
from pyrocrl.inference.graph import NO_GRAPH, LearnedGraph, default_method, learn_graph

CHECK_FILE = "check.nc"
"""The exported tree, in the output directory."""


def linear_scm_over_graph(
    guide: Any, x: np.ndarray, graph: LearnedGraph | None, *, seed: int = 0
) -> xr.DataTree:
    """The Bayesian linear-Gaussian SCM over a learned graph
    (:func:`~pyrocrl.inference.scm_check.fit_linear_scm`, NUTS), fitted to the encoded
    pairs and their most probable intervention targets (for a model whose targets are
    sets, the pairs whose target is none or one variable).

    :param x: observed pairs ``(N, 2, D)``.
    :raises ValueError: without a graph (a model that infers no interventions has none).
    """
    from pyrocrl.inference.queries import encode, predict_targets
    from pyrocrl.inference.scm_check import fit_linear_scm

    if graph is None:
        raise ValueError("the SCM check needs a graph (a β-VAE has none)")
    targets = predict_targets(guide, x[:, 0], x[:, 1]).numpy()
    single = targets <= guide.n  # none or one variable (a set's pairs are left out)
    x, targets = x[single], targets[single]
    z = encode(guide, x[:, 0])["z"].numpy()
    z_tilde = encode(guide, x[:, 1])["z"].numpy()
    return fit_linear_scm(z, z_tilde, targets, graph.adjacency, seed=seed)


@dataclass
class CheckReport:
    """What :func:`check_model` found and wrote."""

    tree: xr.DataTree
    """The export (:func:`~pyrocrl.inference.diagnostics.to_datatree`), with ``scm``."""
    model: str
    """Class name of the checked model."""
    pairs: int
    """Pairs of the data checked."""
    samples: int
    seconds: float
    """Seconds to export, check and write (finding the graph not included)."""
    method: str = NO_GRAPH
    graph: LearnedGraph | None = None
    paths: list[Path] = field(default_factory=list)
    """``check.nc`` and the plots."""

    def summary(self) -> dict[str, float]:
        """The numbers of the check (:func:`~pyrocrl.inference.diagnostics.summary`)."""
        from pyrocrl.inference.diagnostics import summary

        return summary(self.tree)

    def format(self) -> str:
        """The report ``pyrocrl check`` prints."""
        lines = [f"{self.model}, {self.pairs} pairs, {self.samples} draws ({self.seconds:.1f} s)"]
        lines += [f"  {key:<28s}{value:10.4f}" for key, value in self.summary().items()]
        if self.graph is not None:
            edges = ", ".join(f"z{i}→z{j}" for i, j in self.graph.edges()) or "none"
            lines.append(f"  graph ({self.method}): {edges}")
        if "scm" in self.tree.children:
            from pyrocrl.inference.scm_check import summarize

            lines.append("Bayesian linear SCM over the learned graph (NUTS):")
            lines.append(summarize(self.tree["scm"]).to_string())
        lines.append("wrote " + ", ".join(str(p) for p in self.paths))
        return "\n".join(lines)


def check_model(
    model: Any,
    guide: Any,
    data: xr.Dataset,
    output: str | os.PathLike,
    *,
    pairs: int = 1000,
    samples: int = 100,
    graph: str | None = None,
    scm: bool = False,
    seed: int = 0,
    metrics: Mapping[str, float] | None = None,
) -> CheckReport:
    """Check a fitted model on the first ``pairs`` pairs of ``data`` and write the result
    into the directory ``output``: ``check.nc`` (the ArviZ ``DataTree``) and the plots of
    :func:`~pyrocrl.inference.diagnostics.write_checks`.

    :param samples: posterior draws.
    :param graph: how to find the graph: a method of
        :func:`~pyrocrl.inference.graph.learn_graph` or ``"none"`` (default:
        :func:`~pyrocrl.inference.graph.default_method` of the model).
    :param scm: also fit the Bayesian linear SCM over the graph
        (:func:`linear_scm_over_graph`), as the tree's ``scm`` group.
    :param metrics: the fit's test metrics for the tree's ``metrics`` group (e.g.
        :func:`~pyrocrl.inference.fit.recorded_metrics` of the checkpoint).
    """
    from pyrocrl.inference import diagnostics

    data = pairs_only(data).isel(pair=slice(0, pairs))
    method = graph or default_method(model)
    x = data["x"].values
    found = None
    if method != NO_GRAPH:
        found = learn_graph(model, guide, x[:, 0], x[:, 1], method=method, seed=seed)
    start = time.perf_counter()
    tree = diagnostics.to_datatree(
        model,
        guide,
        data,
        num_samples=samples,
        max_pairs=None,
        seed=seed,
        graph=found,
        metrics=metrics,
    )
    if scm:
        tree["scm"] = linear_scm_over_graph(guide, x, found, seed=seed)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    diagnostics.save_datatree(tree, output / CHECK_FILE)
    paths = [output / CHECK_FILE, *diagnostics.write_checks(tree, output)]
    seconds = time.perf_counter() - start
    return CheckReport(
        tree, type(model).__name__, data.sizes["pair"], samples, seconds, method, found, paths
    )
