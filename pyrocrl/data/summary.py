"""Plain-text summaries of pyrocrl datasets."""

__all__ = ["describe"]

import numpy as np
import xarray as xr

from pyrocrl.data.dataset import max_targets, validate
from pyrocrl.interventions import target_names
from pyrocrl.observations import paired_rows
from pyrocrl.sites import variable_names


def describe(ds: xr.Dataset) -> str:
    """A short report: sizes, settings, true graph, intervention targets and what changes."""
    validate(ds)
    pairs, dim_x = ds.sizes["pair"], ds.sizes["feature"]
    lines = [f"{pairs} pairs of {dim_x}-dimensional observations"]
    if "image_shape" in ds.attrs:
        shape = "×".join(str(int(s)) for s in ds.attrs["image_shape"])
        lines = [f"{pairs} pairs of {shape} images ({dim_x} features each)"]
    single = int((~paired_rows(ds["x"].values)).sum())
    if single:
        pairs -= single
        lines = [f"{pairs} pairs and {single} unpaired observations of {dim_x} features"]
    settings = {k: v for k, v in ds.attrs.items() if k not in ("pyrocrl_format",)}
    lines.append("settings: " + ", ".join(f"{k}={_fmt(v)}" for k, v in settings.items()))
    if "adjacency" in ds:
        a = ds["adjacency"]
        edges = [
            f"{c}→{e}"
            for c in a["cause"].values
            for e in a["effect"].values
            if a.sel(cause=c, effect=e)
        ]
        lines.append(f"true graph: {len(edges)} edges: " + (", ".join(edges) or "none"))
    if "target" in ds:
        n = ds.sizes.get("latent", ds.sizes.get("cause"))
        target = ds["target"].values
        k = max_targets(ds)
        if n and k > 1:
            labels = target_names(n, k)
            counts = np.bincount(target[target >= 0], minlength=len(labels))
        else:
            counts = np.bincount(target[target >= 0], minlength=(n or 0) + 1)
            labels = ["none", *variable_names(len(counts) - 1)]
        shares = ", ".join(f"{lab} {c / pairs:.1%}" for lab, c in zip(labels, counts, strict=True))
        lines.append(f"intervention targets: {shares}")
    if "z" in ds:
        z = ds["z"].values[paired_rows(ds["x"].values)]
        changed = (z[:, 0] != z[:, 1]).mean(0)
        names = ds["latent"].values
        lines.append(
            "share of pairs where each variable changes: "
            + ", ".join(f"{v} {c:.1%}" for v, c in zip(names, changed, strict=True))
        )
    x = ds["x"].values
    x = np.concatenate([x[:, 0], x[paired_rows(x), 1]])
    lines.append(
        f"x: mean {x.mean():+.3f}, std {x.std():.3f}, range [{x.min():.3f}, {x.max():.3f}]"
    )
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, np.ndarray):
        return "[" + ", ".join(f"{v:.4g}" for v in value.ravel()) + "]"
    if isinstance(value, float | np.floating):
        return f"{value:.4g}"
    return str(value)
