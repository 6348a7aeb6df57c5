"""A picture of a dataset: its pairs beside its true causal graph, or for images a grid of
pairs before and after their intervention (``pyrocrl simulate --plot``)."""

__all__ = ["plot_dataset"]

import os
from pathlib import Path

import xarray as xr

from pyrocrl.data.dataset import max_targets
from pyrocrl.interventions import target_names
from pyrocrl.io import save_figure

IMAGE_PAIRS = 8
"""Pairs an image dataset's picture shows."""


def plot_dataset(ds: xr.Dataset, path: str | os.PathLike, *, pairs: int = IMAGE_PAIRS) -> Path:
    """Draw a pyrocrl dataset into an image file: for features, the pairs in the plane of
    the first two features (:func:`~pyrocrl.plots.plot_pairs`) beside the true graph when
    the dataset has one; for images, the first ``pairs`` pairs, ``x`` above ``x~``, each
    column titled with its intervention.

    :returns: ``path``.
    """
    path = Path(path)
    if "image_shape" in ds.attrs:
        _plot_image_pairs(ds, path, pairs)
    else:
        _plot_pairs_and_graph(ds, path)
    return path


def _plot_pairs_and_graph(ds: xr.Dataset, path: Path) -> None:
    from matplotlib.figure import Figure  # no pyplot: the user's backend stays as it is

    from pyrocrl.plots import plot_graph, plot_pairs

    figure = Figure(figsize=(10, 5))
    axes = figure.subplots(1, 2)
    plot_pairs(ds, ax=axes[0])
    if "adjacency" in ds:
        weights = ds["weights"].values if "weights" in ds else None
        plot_graph(ds["adjacency"].values, weights=weights, ax=axes[1])
        axes[1].set_title("true causal graph")
    else:
        axes[1].axis("off")
    figure.tight_layout()
    save_figure(figure, path, dpi=120)


def _intervention_labels(ds: xr.Dataset, pairs: int) -> list[str]:
    """``do(zk)`` or ``no intervention`` for each of the first ``pairs`` pairs."""
    k, n = max_targets(ds), ds.sizes.get("latent")
    if k > 1 and n:
        names = target_names(n, k)
    else:
        names = ["none", *ds.attrs.get("variables", "").split(",")]
    return [f"do({names[t]})" if t else "no intervention" for t in ds["target"].values[:pairs]]


def _plot_image_pairs(ds: xr.Dataset, path: Path, pairs: int) -> None:
    import matplotlib.pyplot as plt

    from pyrocrl.data import images
    from pyrocrl.plots import plot_image_grid

    shown = images(ds.isel(pair=slice(0, pairs)))  # (pairs, world, H, W, C)
    labels = _intervention_labels(ds, pairs)
    figure = plot_image_grid(shown.swapaxes(0, 1), row_labels=["x", "x~"], column_labels=labels)
    save_figure(figure, path, dpi=120, bbox_inches="tight")
    plt.close(figure)
