"""Plain-text summaries of pyrocrl datasets."""

__all__ = ["describe"]

import numpy as np
import xarray as xr

from pyrocrl.data.dataset import max_targets, paired_mask, validate
from pyrocrl.interventions import target_names
from pyrocrl.sites import variable_names


def describe(ds: xr.Dataset) -> str:
    """A short report: sizes, settings, true graph, intervention targets and what changes.

    A lazily opened dataset is read chunk by chunk, never whole."""
    validate(ds)
    paired = paired_mask(ds)
    pairs, dim_x = ds.sizes["pair"], ds.sizes["feature"]
    lines = [f"{pairs} pairs of {dim_x}-dimensional observations"]
    if "image_shape" in ds.attrs:
        shape = "×".join(str(int(s)) for s in ds.attrs["image_shape"])
        lines = [f"{pairs} pairs of {shape} images ({dim_x} features each)"]
    single = int((~paired).sum())
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
        z = ds["z"].isel(pair=np.flatnonzero(paired))
        changed = (z.isel(world=0) != z.isel(world=1)).mean("pair").values
        names = ds["latent"].values
        lines.append(
            "share of pairs where each variable changes: "
            + ", ".join(f"{v} {c:.1%}" for v, c in zip(names, changed, strict=True))
        )
    mean, std, low, high = _moments(ds["x"], paired)
    lines.append(f"x: mean {mean:+.3f}, std {std:.3f}, range [{low:.3f}, {high:.3f}]")
    return "\n".join(lines)


def _moments(x: xr.DataArray, paired: np.ndarray) -> tuple[float, float, float, float]:
    """Mean, standard deviation, minimum and maximum of the observations ``x`` (every
    first world, the second worlds of pairs); of a lazy ``x`` in one pass over its chunks,
    the mean and variance summed in float64."""
    if x.chunks is None:
        values = x.values
        values = np.concatenate([values[:, 0], values[paired, 1]])
        return values.mean(), values.std(), values.min(), values.max()
    parts = [x.isel(world=0, drop=True), x.isel(world=1, pair=np.flatnonzero(paired), drop=True)]
    stats = xr.Dataset(
        {
            f"{name}{i}": value
            for i, part in enumerate(parts)
            for name, value in (
                ("sum", part.astype(np.float64).sum()),
                ("squares", (part.astype(np.float64) ** 2).sum()),
                ("min", part.min()),
                ("max", part.max()),
            )
        }
    ).compute()
    count = sum(part.size for part in parts)
    mean = sum(float(stats[f"sum{i}"]) for i in range(2)) / count
    var = max(sum(float(stats[f"squares{i}"]) for i in range(2)) / count - mean**2, 0.0)
    low = min(float(stats[f"min{i}"]) for i in range(2))
    high = max(float(stats[f"max{i}"]) for i in range(2))
    return mean, var**0.5, low, high


def _fmt(value: object) -> str:
    if isinstance(value, np.ndarray):
        return "[" + ", ".join(f"{v:.4g}" for v in value.ravel()) + "]"
    if isinstance(value, float | np.floating):
        return f"{value:.4g}"
    return str(value)
