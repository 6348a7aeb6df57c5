"""Pictures of weakly supervised pairs, causal graphs and Pyro programs (matplotlib)."""

__all__ = [
    "plot_graph",
    "plot_history",
    "plot_image_grid",
    "plot_latents",
    "plot_model",
    "plot_pairs",
    "plot_pareto_k",
    "plot_reliability",
]

from collections.abc import Callable, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from pyro.infer.inspect import get_model_relations

from pyrocrl.data.dataset import validate
from pyrocrl.sites import variable_names


def plot_pairs(
    ds: xr.Dataset,
    *,
    variable: str = "x",
    dims: tuple[int, int] = (0, 1),
    max_pairs: int = 300,
    ax: Axes | None = None,
) -> Axes:
    """Each pair as a segment from its first world (dot) to its second (end), in 2-D.

    Segments are coloured by the true intervention target when the dataset has one;
    pairs without intervention are grey dots (both worlds coincide).

    :param str variable: ``"x"`` (observations), or ``"z"`` / ``"noise"`` (ground truth).
    :param dims: which two components to show.
    :param int max_pairs: draw at most this many pairs (the first ones).
    """
    validate(ds)
    if variable not in ds:
        raise ValueError(f"the dataset has no variable {variable!r}")
    values = ds[variable].values[:max_pairs]
    if values.shape[-1] < 2:
        raise ValueError(f"{variable!r} has a single component; nothing to plot in 2-D")
    i, j = dims
    before, after = values[:, 0], values[:, 1]
    target = ds["target"].values[:max_pairs] if "target" in ds else np.ones(len(values), int)
    n_targets = int(ds["target"].max()) + 1 if "target" in ds else 2
    colors = plt.get_cmap("tab10")(np.arange(max(n_targets, 2)) % 10)
    ax = ax or plt.figure(figsize=(5, 5)).gca()
    coord = ds[variable].dims[-1]
    names = [str(v) for v in ds[coord].values] if coord in ds.coords else None
    for k in range(n_targets):
        sel = target == k
        if not sel.any():
            continue
        label = "no intervention" if k == 0 else f"do on z{k}"
        if k == 0:
            ax.scatter(before[sel, i], before[sel, j], s=6, color="0.6", label=label)
            continue
        ax.scatter(before[sel, i], before[sel, j], s=6, color=colors[k])
        segments = np.stack([before[sel][:, [i, j]], after[sel][:, [i, j]]], axis=1)
        ax.add_collection(LineCollection(segments, colors=[colors[k]], lw=0.6, alpha=0.7))
        ax.plot([], [], color=colors[k], label=label)
    ax.set_xlabel(names[i] if names else f"{variable}[{i}]")
    ax.set_ylabel(names[j] if names else f"{variable}[{j}]")
    ax.set_title(f"{variable}: before (dot) → after (line end)")
    ax.legend(fontsize="small", loc="best")
    return ax


def plot_graph(
    adjacency: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    names: Sequence[str] | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Draw a directed graph with nodes on a circle; edge labels show ``weights`` if given.

    :param adjacency: ``(n, n)``, ``adjacency[i, j] != 0`` for an edge ``i → j``.
    :param weights: optional ``(n, n)`` edge strengths; width and label follow ``|w|``.
    """
    a = np.asarray(adjacency)
    n = len(a)
    names = list(names) if names is not None else variable_names(n)
    angles = np.pi / 2 - 2 * np.pi * np.arange(n) / n
    pos = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    ax = ax or plt.figure(figsize=(4, 4)).gca()
    for src, dst in zip(*np.nonzero(a), strict=True):
        w = None if weights is None else float(weights[src, dst])
        arrow = FancyArrowPatch(
            pos[src],
            pos[dst],
            arrowstyle="-|>",
            mutation_scale=14,
            shrinkA=16,
            shrinkB=16,
            connectionstyle="arc3,rad=0.08",
            lw=1.0 if w is None else 0.5 + 1.5 * min(abs(w), 2.0),
            color="tab:blue" if w is None or w >= 0 else "tab:red",
        )
        ax.add_patch(arrow)
        if w is not None:
            mid = 0.5 * (pos[src] + pos[dst])
            ax.annotate(
                f"{w:+.2f}",
                mid,
                fontsize=8,
                ha="center",
                va="center",
                bbox={"boxstyle": "round", "fc": "white", "ec": "none", "alpha": 0.8},
            )
    ax.scatter(pos[:, 0], pos[:, 1], s=700, color="white", edgecolor="black", zorder=3)
    for p, name in zip(pos, names, strict=True):
        ax.annotate(name, p, ha="center", va="center", zorder=4)
    ax.set_xlim(-1.4, 1.4)
    ax.set_ylim(-1.4, 1.4)
    ax.set_aspect("equal")
    ax.axis("off")
    return ax


# validation metrics that plot_history draws in their own panel (they need ground truth)
_SCORES = ("dci_disentanglement", "dci_completeness", "intervention_accuracy")


def plot_history(history: Sequence[dict], *, figure: Figure | None = None) -> Figure:
    """Training curves from a trainer's history: the loss and the ELBO per phase, the
    held-out ELBO beside them and the validation metrics that need ground truth in a second
    panel, when there are any.

    :param history: entries with ``step`` and report values (``loss``, ``elbo``, …) or
        validation metrics (``dci_disentanglement``, ``intervention_accuracy``, …).
    :param figure: draw into this figure (default: a new pyplot figure).
    """
    train = [h for h in history if "loss" in h]
    valid = [h for h in history if "loss" not in h and len(h) > 2]
    scored = [k for k in _SCORES if valid and k in valid[0]]
    columns = 2 if scored else 1
    figure = figure or plt.figure(figsize=(5.5 * columns, 3.8))
    figure.set_size_inches(5.5 * columns, 3.8)
    axes = np.atleast_1d(figure.subplots(1, columns))
    ax = axes[0]
    steps = np.array([h["step"] for h in train])
    for key in ("loss", "elbo"):
        values = np.array([h.get(key, np.nan) for h in train])
        sign = -1 if key == "elbo" else 1
        ax.plot(
            steps, sign * values, label="−ELBO (KL weighted by β)" if key == "elbo" else "loss"
        )
    for phase in ("soft", "deterministic"):
        first = next((h["step"] for h in train if h.get("phase") == phase), None)
        if first is not None:
            ax.axvline(first, color="0.7", ls=":")
            ax.annotate(
                phase,
                (first, 1),
                xycoords=("data", "axes fraction"),
                fontsize=8,
                ha="left",
                va="top",
            )
    held_out = [h for h in valid if "elbo" in h]
    if held_out:
        ax.plot(
            [h["step"] for h in held_out],
            [-h["elbo"] for h in held_out],
            "o",
            ms=3,
            label="−ELBO, held-out pairs",
        )
    ax.set_yscale("symlog")
    ax.set_xlabel("step")
    ax.set_title("training objective (per pair)")
    ax.legend(fontsize="small")
    if scored:
        ax = axes[1]
        vsteps = [h["step"] for h in valid]
        for key in scored:
            ax.plot(vsteps, [h[key] for h in valid], marker="o", ms=3, label=key)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("step")
        ax.set_title("validation")
        ax.legend(fontsize="small")
    figure.tight_layout()
    return figure


def plot_reliability(
    calibration: xr.Dataset, *, ax: Axes | None = None, what: str = "q(I | x, x~)"
) -> Axes:
    """Reliability diagram of a posterior (by default the intervention posterior):
    observed frequency against mean predicted probability per bin (marker area ∝ count),
    with the diagonal of a calibrated posterior.

    :param calibration: from :func:`pyrocrl.inference.diagnostics.calibration` or
        :func:`pyrocrl.metrics.reliability`; :param what: names the posterior in the title.
    """
    ax = ax or plt.gca()
    count = calibration["count"].values
    keep = count > 0
    ax.plot([0, 1], [0, 1], color="0.6", ls="--", lw=1, label="calibrated")
    probability = calibration["probability"].values[keep]
    frequency = calibration["frequency"].values[keep]
    ax.plot(probability, frequency, color="C0", lw=1)
    size = 20 + 200 * count[keep] / count.max()
    ax.scatter(probability, frequency, s=size, color="C0", zorder=3, label="bins (area ∝ count)")
    ece, accuracy = calibration.attrs.get("ece"), calibration.attrs.get("accuracy")
    title = f"{what}: ECE {ece:.3f}"
    ax.set_title(title if accuracy is None else f"{title}, accuracy {accuracy:.3f}")
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed frequency")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize="small", loc="upper left")
    return ax


def plot_pareto_k(pareto_k: np.ndarray | xr.DataArray, *, ax: Axes | None = None) -> Axes:
    """Pareto ``k`` per pair (PSIS), with the 0.7 threshold above which an importance
    estimate is unreliable."""
    k = np.asarray(pareto_k)
    ax = ax or plt.gca()
    bad = k > 0.7
    ax.scatter(np.flatnonzero(~bad), k[~bad], s=6, color="C0", label="k ≤ 0.7")
    ax.scatter(np.flatnonzero(bad), k[bad], s=6, color="C3", label="k > 0.7")
    ax.axhline(0.7, color="0.5", ls="--", lw=1)
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_xlabel("pair")
    ax.set_ylabel("Pareto k")
    ax.set_title(f"PSIS diagnostic: {bad.mean():.0%} of pairs above 0.7")
    ax.legend(fontsize="small", markerscale=2)
    return ax


def plot_image_grid(
    pixels: np.ndarray,
    *,
    row_labels: Sequence[str] | None = None,
    column_labels: Sequence[str] | None = None,
    figure: Figure | None = None,
) -> Figure:
    """Images in a grid: ``pixels`` of shape ``(rows, columns, H, W, C)``, ``uint8``.

    Used for a learned variable per row and a value set by intervention per column.
    """
    pixels = np.asarray(pixels)
    if pixels.ndim != 5:
        raise ValueError(f"pixels must have shape (rows, columns, H, W, C), got {pixels.shape}")
    rows, columns = pixels.shape[:2]
    figure = figure or plt.figure(figsize=(1.1 * columns + 0.6, 1.1 * rows + 0.3))
    axes = figure.subplots(
        rows, columns, squeeze=False, gridspec_kw={"wspace": 0.04, "hspace": 0.04}
    )
    for i in range(rows):
        for j in range(columns):
            ax = axes[i, j]
            ax.imshow(pixels[i, j], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0 and row_labels is not None:
                ax.set_ylabel(row_labels[i], rotation=0, ha="right", va="center")
            if i == 0 and column_labels is not None:
                ax.set_title(column_labels[j], fontsize=8)
    return figure


def plot_latents(
    learned: np.ndarray,
    true: np.ndarray,
    *,
    learned_names: Sequence[str] | None = None,
    true_names: Sequence[str] | None = None,
    color_by: int = 0,
    max_points: int = 3000,
    figure: Figure | None = None,
) -> Figure:
    """Every learned variable against every true one, as a grid of scatter plots.

    Row ``j``, column ``i`` shows learned ``ẑ_j`` against true ``z_i`` for the same samples,
    coloured by true ``z[:, color_by]``. A learned variable identified up to an invertible
    map is a thin monotone curve against its own true variable; against the others it
    shows only their causal effects on it (or nothing). A curve that turns back (a fold)
    means it is not one-to-one in its true variable.

    :param learned: ``(N, n)`` learned causal variables.
    :param true: ``(N, m)`` true causal variables of the same samples.
    :param max_points: draw at most this many samples (the first ones).
    """
    learned, true = np.asarray(learned, dtype=float), np.asarray(true, dtype=float)
    if learned.ndim != 2 or true.ndim != 2 or len(learned) != len(true):
        raise ValueError(
            f"need learned (N, n) and true (N, m) with the same N, got {learned.shape} and "
            f"{true.shape}"
        )
    if not (np.isfinite(learned).all() and np.isfinite(true).all()):
        raise ValueError("plot_latents: inputs hold NaN or infinite values")
    n, m = learned.shape[1], true.shape[1]
    if learned_names is None:
        learned_names = variable_names(n, "ẑ")
    if true_names is None:
        true_names = variable_names(m)
    learned_names, true_names = [str(a) for a in learned_names], [str(a) for a in true_names]
    if len(learned_names) != n or len(true_names) != m:
        raise ValueError(f"need {n} learned and {m} true names")
    if not 0 <= color_by < m:
        raise ValueError(f"color_by must index a true variable (0..{m - 1}), got {color_by}")
    if max_points < 1:
        raise ValueError(f"max_points must be at least 1, got {max_points}")
    learned, true = learned[:max_points], true[:max_points]
    figure = figure or plt.figure(figsize=(2.2 * m + 0.4, 2.0 * n + 0.4))
    axes = figure.subplots(n, m, squeeze=False, sharex="col", sharey="row")
    for j in range(n):
        for i in range(m):
            ax = axes[j, i]
            ax.scatter(
                true[:, i],
                learned[:, j],
                s=1,
                c=true[:, color_by],
                cmap="viridis",
                rasterized=True,
            )
            if j == n - 1:
                ax.set_xlabel(f"true {true_names[i]}")
            if i == 0:
                ax.set_ylabel(learned_names[j])
    figure.suptitle(
        f"learned (rows) against true (columns) variables; colour: true {true_names[color_by]}"
    )
    return figure


def plot_model(model: Callable[..., Any], *args: Any, **kwargs: Any) -> Figure:
    """Draw a Pyro program as the graph of its sample sites, with matplotlib alone.

    A stand-in for :func:`pyro.render_model` that needs no graphviz. The program runs once,
    ``model(*args, **kwargs)``, under :func:`pyro.infer.inspect.get_model_relations`
    (deterministic sites included); every sample site becomes a node labelled with its
    name and distribution, and every direct dependency an arrow from the upstream site.
    Observed sites are shaded, latent ones open, deterministic ones dashed; a labelled box
    surrounds the sites of each plate. Sites are drawn in layers, each below its deepest
    parent.

    Each arrow's ``gid`` is ``"parent -> child"`` and each node's the site name, so what
    was drawn can be read back:

    >>> import pyro
    >>> import pyro.distributions as dist
    >>> import torch
    >>> def program(data):
    ...     loc = pyro.sample("loc", dist.Normal(0.0, 1.0))
    ...     with pyro.plate("data", len(data)):
    ...         pyro.sample("obs", dist.Normal(loc, 1.0), obs=data)
    >>> figure = plot_model(program, torch.zeros(3))
    >>> [t.get_gid() for t in figure.axes[0].texts if " -> " in (t.get_gid() or "")]
    ['loc -> obs']
    >>> plt.close(figure)

    :param model: a Pyro program (a function or a module's ``model`` method).
    :param args, kwargs: its arguments, e.g. ``size=`` or observed data for the
        observations to show as observed.
    :raises TypeError: if ``model`` is not callable.
    :raises ValueError: if the program has no sample sites.
    """
    if not callable(model):
        raise TypeError(f"plot_model needs a callable Pyro program, got {type(model).__name__}")
    relations = get_model_relations(model, args, kwargs, include_deterministic=True)
    names = list(relations["sample_sample"])
    if not names:
        raise ValueError("the program has no sample sites to draw")
    parents = relations["sample_sample"]
    layer: dict[str, int] = {}
    for name in names:  # trace order: parents come first
        layer[name] = 1 + max((layer[p] for p in parents[name] if p in layer), default=-1)
    plates = relations["plate_sample"]
    outer_first = sorted(plates, key=lambda plate: (-len(plates[plate]), plate))
    groups = {name: tuple(p for p in outer_first if name in plates[p]) for name in names}
    keys = sorted(set(groups.values()))
    layers = max(layer.values()) + 1
    width = {
        k: max(sum(groups[s] == k and layer[s] == i for s in names) for i in range(layers))
        for k in keys
    }
    offset = dict(zip(keys, np.cumsum([0] + [width[k] for k in keys[:-1]]), strict=True))
    dx, dy = 2.4, 1.5
    position = {}
    for key in keys:
        for i in range(layers):
            row = [s for s in names if groups[s] == key and layer[s] == i]
            start = offset[key] + (width[key] - len(row)) / 2
            for j, site in enumerate(row):
                position[site] = np.array([(start + j + 0.5) * dx, -i * dy])
    columns = sum(width.values())
    label = max(max(len(s), len(relations["sample_dist"][s])) for s in names)
    inches = max(1.3, 0.075 * label + 0.5)  # per column, so that labels do not collide
    figure = plt.figure(figsize=(inches * (columns + 0.6), 1.0 * (layers + 0.9)))
    ax = figure.add_axes((0.0, 0.0, 1.0, 1.0))
    deterministic = {s for s in names if relations["sample_dist"][s] == "Deterministic"}
    observed = set(relations["observed"]) - deterministic
    nodes = {}
    for site in names:
        nodes[site] = ax.text(
            *position[site],
            f"{site}\n{relations['sample_dist'][site]}",
            ha="center",
            va="center",
            fontsize=8,
            zorder=3,
            gid=site,
            bbox={
                "boxstyle": "ellipse,pad=0.25",
                "facecolor": "0.8" if site in observed else "white",
                "edgecolor": "black",
                "linestyle": "--" if site in deterministic else "-",
            },
        )
    for site in names:
        for parent in parents[site]:
            ax.annotate(
                "",
                xy=position[site],
                xytext=position[parent],
                gid=f"{parent} -> {site}",
                zorder=4,  # after the nodes, whose outlines then clip the arrow
                arrowprops={
                    "arrowstyle": "-|>",
                    "color": "0.2",
                    "lw": 1.0,
                    "patchA": nodes[parent].get_bbox_patch(),
                    "patchB": nodes[site].get_bbox_patch(),
                    "shrinkA": 1,
                    "shrinkB": 1,
                },
            )
    centres = np.stack(list(position.values()))
    half = np.array([0.5 * dx, 0.4 * dy])  # about half a node
    corners = [centres - half, centres + half]
    for plate in outer_first:
        members = np.stack([position[s] for s in plates[plate]])
        inner = sum(set(plates[q]) < set(plates[plate]) for q in plates)
        pad = 0.3 * inner
        low = members.min(0) - np.array([0.5 * dx + pad, 0.5 * dy + 0.2 + pad])
        high = members.max(0) + np.array([0.5 * dx + pad, 0.45 * dy + pad])
        ax.add_patch(
            FancyBboxPatch(
                low,
                *(high - low),
                boxstyle="round,pad=0,rounding_size=0.15",
                facecolor="none",
                edgecolor="0.4",
                zorder=1,
            )
        )
        ax.annotate(
            plate.split("__CLONE")[0],
            (high[0] - 0.1, low[1] + 0.1),
            ha="right",
            va="bottom",
            fontsize=8,
            color="0.3",
        )
        corners += [low[None], high[None]]
    extent = np.concatenate(corners)
    ax.set_xlim(extent[:, 0].min() - 0.1 * dx, extent[:, 0].max() + 0.1 * dx)
    ax.set_ylim(extent[:, 1].min() - 0.2 * dy, extent[:, 1].max() + 0.2 * dy)
    ax.axis("off")
    return figure
