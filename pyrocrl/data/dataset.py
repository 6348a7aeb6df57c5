"""The pyrocrl dataset format: weakly supervised pairs as an ``xarray.Dataset``.

=============  ==============================  =========================================
variable       dims                            meaning
=============  ==============================  =========================================
``x``          ``(pair, world, feature)``      observations; world 0 = before, 1 = after
``target``     ``(pair,)``                     true intervention target, 0 = none (optional)¹
``z``          ``(pair, world, latent)``       true causal variables (optional)
``noise``      ``(pair, world, latent)``       true exogenous noise (optional)
``adjacency``  ``(cause, effect)``             true graph, 1 for ``cause → effect`` (optional)
``weights``    ``(cause, effect)``             true linear effects (optional)
``mixing``     ``(feature, latent)``           true linear mixing matrix (optional)
``state``      ``(pair, world, latent)``       physical state that was rendered (optional)
=============  ==============================  =========================================

¹ With ``attrs["max_targets"] = k ≥ 2`` an intervention may hit a set of up to ``k``
variables and ``target`` is the set's index in the target table of
:mod:`pyrocrl.interventions` (0 = none and ``1 … n`` single variables, as without it).

Only ``x`` is required: real weakly supervised data has no labels. A row may also hold an
**unpaired observation**: one world only, stored as world 0 with world 1 all NaN (in ``x``
and in the truth ``z``, ``noise``, ``state``) and ``target`` −1 (:func:`unpair` makes such
rows; :func:`~pyrocrl.observations.paired_rows` finds them). Models fit them through the
single-world marginal; a dataset needs at least one pair, and image datasets hold pairs
only. Image datasets store each
image flattened into ``x`` (``H·W·C`` features, usually ``uint8``) and its shape ``(H, W, C)``
in ``attrs["image_shape"]``; :func:`images` gives them back as images. Coordinates name the
variables (``latent``, ``cause`` and ``effect`` are ``z1 … zn``; ``feature`` is ``x1 … xD``);
``world`` is ``[0, 1]``. Generator settings live in ``attrs``. Files are NetCDF-4 written with
h5netcdf, or Zarr stores for paths ending in ``.zarr`` (:mod:`pyrocrl.data.store`); :func:`load`
checks everything above and raises :class:`DatasetError` naming the problem. With ``chunks``
it opens a dataset lazily, over dask chunks, for datasets larger than memory: the checks then
read the data chunk by chunk (:func:`validate`), and nothing is held in memory whole.
"""

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "SCHEMA",
    "images",
    "load",
    "max_targets",
    "paired_mask",
    "pairs_dataset",
    "pairs_only",
    "rendered_pairs",
    "save",
    "unpair",
    "validate",
]

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from pyrocrl._version import __version__
from pyrocrl.data.store import open_store, write_store
from pyrocrl.errors import DatasetError
from pyrocrl.interventions import num_targets
from pyrocrl.observations import paired_rows
from pyrocrl.sites import variable_names

FORMAT = "pyrocrl.pairs"
FORMAT_VERSION = 1

SCHEMA: dict[str, tuple[str, ...]] = {
    "x": ("pair", "world", "feature"),
    "target": ("pair",),
    "z": ("pair", "world", "latent"),
    "noise": ("pair", "world", "latent"),
    "adjacency": ("cause", "effect"),
    "weights": ("cause", "effect"),
    "mixing": ("feature", "latent"),
    "state": ("pair", "world", "latent"),
}
"""Known variables and the dims each must have."""


def _numpy(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):  # torch tensor
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def _netcdf_attr(value: Any) -> Any:
    """NetCDF attributes hold strings, numbers and 1-D arrays; map the rest onto those."""
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, list | tuple | np.ndarray):
        return np.asarray(value)
    return value


def pairs_dataset(
    x: Any,
    x_tilde: Any = None,
    *,
    z: Any = None,
    z_tilde: Any = None,
    noise: Any = None,
    noise_tilde: Any = None,
    target: Any = None,
    adjacency: Any = None,
    weights: Any = None,
    mixing: Any = None,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Build and validate a dataset of weakly supervised pairs.

    :param x: observations before the intervention, shape ``(N, D)`` (NumPy or torch); or,
        without ``x_tilde``, both worlds ``(N, 2, D)``, kept as given, not copied (so a
        read-only ``np.broadcast_to`` view can stand for data written elsewhere, as in the
        templates of :func:`~pyrocrl.data.writer.write_pairs`).
    :param x_tilde: observations after, ``(N, D)``.
    :param z, z_tilde, noise, noise_tilde: optional truth, each ``(N, n)``; give both worlds.
    :param target: optional true targets, ``(N,)`` integers in ``0 … n``.
    :param adjacency, weights: optional true graph and linear effects, ``(n, n)``.
    :param mixing: optional true linear mixing matrix, ``(D, n)``.
    :param attrs: generator settings; ``None`` values are dropped, booleans stored as 0/1;
        the format's own attributes are always this pyrocrl's.

    >>> before, after = np.zeros((5, 3)), np.ones((5, 3))
    >>> ds = pairs_dataset(before, after, attrs={"source": "a lab"})
    >>> ds["x"].dims, ds["feature"].values.tolist()
    (('pair', 'world', 'feature'), ['x1', 'x2', 'x3'])
    >>> ds["x"].sel(world=1).values.tolist() == after.tolist()
    True
    """
    if x_tilde is None:
        both = _numpy(x)
        if both.ndim != 3 or both.shape[1] != 2:
            raise DatasetError(
                f"x without x_tilde must have shape (pairs, 2, features), got {both.shape}"
            )
    else:
        x, x_tilde = _numpy(x), _numpy(x_tilde)
        if x.shape != x_tilde.shape or x.ndim != 2:
            raise DatasetError(
                f"x and x_tilde must both have shape (pairs, features), got {x.shape} and "
                f"{x_tilde.shape}"
            )
        both = np.stack([x, x_tilde], axis=1)
    data_vars: dict[str, Any] = {"x": (SCHEMA["x"], both)}
    for name, before, after in (("z", z, z_tilde), ("noise", noise, noise_tilde)):
        if (before is None) != (after is None):
            raise DatasetError(f"give {name} for both worlds or for neither")
        if before is not None:
            stacked = np.stack([_numpy(before), _numpy(after)], axis=1)
            data_vars[name] = (SCHEMA[name], stacked)
    for name, value in (
        ("target", target),
        ("adjacency", adjacency),
        ("weights", weights),
        ("mixing", mixing),
    ):
        if value is not None:
            data_vars[name] = (SCHEMA[name], _numpy(value))
    if "target" in data_vars:
        data_vars["target"] = (SCHEMA["target"], data_vars["target"][1].astype(np.int64))
    if "adjacency" in data_vars:
        data_vars["adjacency"] = (SCHEMA["adjacency"], data_vars["adjacency"][1].astype(np.int8))

    ds = xr.Dataset(data_vars)
    coords: dict[str, Any] = {"world": [0, 1], "feature": variable_names(both.shape[2], "x")}
    n = next((ds.sizes[d] for d in ("latent", "cause") if d in ds.sizes), None)
    if n is not None:
        names = variable_names(n)
        coords.update({d: names for d in ("latent", "cause", "effect") if d in ds.sizes})
    ds = ds.assign_coords(coords)
    # settings first, then the format's own attributes, which a caller's attrs (say, those
    # of another dataset being derived from) never override
    ds.attrs = {k: _netcdf_attr(v) for k, v in (attrs or {}).items() if v is not None}
    ds.attrs.update(
        pyrocrl_format=FORMAT, format_version=FORMAT_VERSION, pyrocrl_version=__version__
    )
    validate(ds)
    return ds


def validate(ds: xr.Dataset, source: str = "dataset") -> xr.Dataset:
    """Check that ``ds`` is a well-formed pyrocrl dataset; return it unchanged.

    A lazily opened dataset (dask-backed, :func:`load` with ``chunks``) stays lazy: its large
    variables are checked chunk by chunk, in one pass that holds per-pair counts only (an
    image dataset's integer ``x`` needs no pass: it cannot hold NaN).

    :raises DatasetError: naming ``source`` and the first problem found.
    """
    if not isinstance(ds, xr.Dataset):
        raise DatasetError(f"{source} is a {type(ds).__name__}, not an xarray.Dataset")
    if ds.attrs.get("pyrocrl_format") != FORMAT:
        raise DatasetError(
            f"{source} is not a pyrocrl dataset (attribute 'pyrocrl_format' is "
            f"{ds.attrs.get('pyrocrl_format')!r}, expected {FORMAT!r})"
        )
    version = ds.attrs.get("format_version", 0)
    if not isinstance(version, int | np.integer) or isinstance(version, bool):
        raise DatasetError(
            f"{source} has an invalid format version {version!r}: expected a whole number"
        )
    if version < 1 or version > FORMAT_VERSION:
        raise DatasetError(
            f"{source} has format version {version}; this pyrocrl (version {__version__}) "
            f"reads versions 1 to {FORMAT_VERSION}"
        )
    if "x" not in ds:
        raise DatasetError(f"{source} has no observations: variable 'x' is missing")
    for name, dims in SCHEMA.items():
        if name in ds and ds[name].dims != dims:
            raise DatasetError(
                f"{source}: variable {name!r} has dims {ds[name].dims}, expected {dims}"
            )
    kind = ds["x"].dtype.kind
    if not (kind == "f" or (kind in "iu" and "image_shape" in ds.attrs)):
        raise DatasetError(
            f"{source}: 'x' must hold real numbers (floats; integers for images), got "
            f"{ds['x'].dtype}"
        )
    if ds.sizes["world"] != 2:
        raise DatasetError(f"{source}: dim 'world' has size {ds.sizes['world']}, expected 2")
    if ds.sizes["pair"] == 0:
        raise DatasetError(f"{source} holds no pairs")
    n = ds.sizes.get("latent", ds.sizes.get("cause"))
    for dim in ("latent", "cause", "effect"):
        if dim in ds.sizes and ds.sizes[dim] != n:
            raise DatasetError(
                f"{source}: dim {dim!r} has size {ds.sizes[dim]} but the dataset has {n} "
                "causal variables"
            )
    counts = _lazy_counts(ds)
    paired = _paired(ds, counts)
    if not paired.any():
        raise DatasetError(f"{source} holds no pairs: every row is an unpaired observation")
    for name, var in ds.data_vars.items():
        if name in counts:
            _check_counts(name, var, counts[name], paired, source)
        elif np.issubdtype(var.dtype, np.floating):
            values = var.values
            if var.dims[:2] == ("pair", "world"):  # an unpaired row's second world is NaN
                unpaired = values[~paired, 1]
                if not np.isnan(unpaired).all():
                    raise DatasetError(
                        f"{source}: variable {name!r} has values in the second world of an "
                        "unpaired observation (where 'x' is NaN): set them to NaN"
                    )
                values = np.concatenate([values[:, 0], values[paired, 1]])
            n_nan = int(np.isnan(values).sum())
            n_inf = int(np.isinf(values).sum())
            if n_nan or n_inf:
                raise DatasetError(
                    f"{source}: variable {name!r} holds {n_nan} NaN and {n_inf} infinite values"
                    + (" (a NaN row of 'x' must be a whole second world)" if name == "x" else "")
                )
    if "target" in ds:
        target = ds["target"].values
        if not np.issubdtype(target.dtype, np.integer):
            raise DatasetError(f"{source}: 'target' must hold integers, got {target.dtype}")
        upper = n if n is not None else np.inf
        what = "0 = no intervention"
        k = max_targets(ds)
        if n is not None and k != 1:
            if not 1 <= k <= n:
                raise DatasetError(
                    f"{source}: attribute 'max_targets' must lie in 1..{n}, got {k}"
                )
            upper = num_targets(n, k) - 1
            what = f"an index into the target sets of pyrocrl.interventions, k={k}"
        if target[paired].min() < 0 or target[paired].max() > upper:
            raise DatasetError(
                f"{source}: 'target' must lie in 0..{n if upper == np.inf else upper} ({what}), "
                "found values "
                f"in {target[paired].min()}..{target[paired].max()}"
            )
        if (target[~paired] != -1).any():
            raise DatasetError(f"{source}: 'target' of an unpaired observation must be -1")
    if "adjacency" in ds and not np.isin(ds["adjacency"].values, (0, 1)).all():
        raise DatasetError(f"{source}: 'adjacency' must hold only 0 and 1")
    if "image_shape" in ds.attrs:
        shape = np.atleast_1d(ds.attrs["image_shape"])
        size = ds.sizes["feature"]
        if shape.shape != (3,) or (shape < 1).any() or int(np.prod(shape)) != size:
            raise DatasetError(
                f"{source}: attribute 'image_shape' {shape.tolist()} must be (H, W, C) with "
                f"H·W·C = {size}, the number of features of 'x'"
            )
    for owner, attrs in [("the dataset", ds.attrs)] + [
        (f"variable {name!r}", ds[name].attrs) for name in ds.variables
    ]:
        for key, value in attrs.items():
            if not _storable(value):
                raise DatasetError(
                    f"{source}: attribute {key!r} of {owner} holds {value!r}, which NetCDF "
                    "cannot store: use a string, a number or a list of numbers (join a list "
                    "of strings into one string)"
                )
    return ds


def pairs_only(ds: xr.Dataset) -> xr.Dataset:
    """The pairs of ``ds``, without its unpaired observations (``ds`` itself when it has
    none): what needs both worlds (intervention posteriors, graphs, held-out tests) reads
    these."""
    paired = paired_mask(ds)
    return ds if paired.all() else ds.isel(pair=np.flatnonzero(paired))


def paired_mask(ds: xr.Dataset) -> np.ndarray:
    """Which rows of ``ds`` are pairs, ``(pair,)`` booleans (:func:`paired_rows` of ``x``);
    a lazy ``x`` is read chunk by chunk (not at all when it holds integers)."""
    return _paired(ds, _lazy_counts(ds, ["x"]))


def _lazy_counts(ds: xr.Dataset, names: Sequence[str] | None = None) -> dict[str, Any]:
    """NaN and infinite values of the lazy floating-point variables of ``ds`` (or of those
    of ``names``), counted chunk by chunk in one pass: ``{name: (nan, inf, size)}``, per
    ``(pair, world)`` with ``size`` values in each for the variables with those leading
    dims, totals (``size`` 0) for the others."""
    summaries: dict[str, Any] = {}
    sizes: dict[str, int] = {}
    for name in ds.data_vars if names is None else names:
        var = ds[name]
        if var.chunks is None or not np.issubdtype(var.dtype, np.floating):
            continue
        per_cell = var.dims[:2] == ("pair", "world")
        rest = [d for d in var.dims if d not in ("pair", "world")] if per_cell else var.dims
        sizes[name] = int(np.prod([ds.sizes[d] for d in rest])) if per_cell else 0
        summaries[f"{name}/nan"] = var.isnull().sum(rest)
        summaries[f"{name}/inf"] = np.isinf(var).sum(rest)
    if not summaries:
        return {}
    computed = xr.Dataset(summaries).compute()
    return {
        name: (computed[f"{name}/nan"].values, computed[f"{name}/inf"].values, size)
        for name, size in sizes.items()
    }


def _paired(ds: xr.Dataset, counts: Mapping[str, Any]) -> np.ndarray:
    """:func:`paired_rows` of ``x``, from the counts of :func:`_lazy_counts` when lazy."""
    x = ds["x"]
    if x.chunks is None:
        return paired_rows(x.values)
    if not np.issubdtype(x.dtype, np.floating):
        return np.ones(ds.sizes["pair"], dtype=bool)
    nan, _, size = counts["x"]
    return nan[:, 1] < size


def _check_counts(
    name: str, var: xr.DataArray, counts: Any, paired: np.ndarray, source: str
) -> None:
    """The finiteness checks of :func:`validate`, on counts of a lazy variable."""
    nan, inf, size = counts
    if var.dims[:2] == ("pair", "world"):
        if (nan[~paired, 1] < size).any():
            raise DatasetError(
                f"{source}: variable {name!r} has values in the second world of an "
                "unpaired observation (where 'x' is NaN): set them to NaN"
            )
        n_nan = int(nan[:, 0].sum() + nan[paired, 1].sum())
        n_inf = int(inf[:, 0].sum() + inf[paired, 1].sum())
    else:
        n_nan, n_inf = int(nan), int(inf)
    if n_nan or n_inf:
        raise DatasetError(
            f"{source}: variable {name!r} holds {n_nan} NaN and {n_inf} infinite values"
            + (" (a NaN row of 'x' must be a whole second world)" if name == "x" else "")
        )


def max_targets(ds: xr.Dataset) -> int:
    """The most variables one intervention of a dataset hits: ``attrs["max_targets"]``, 1
    when absent (see :mod:`pyrocrl.interventions`).

    :raises DatasetError: if the attribute is not a whole number ≥ 1.
    """
    value = np.asarray(ds.attrs.get("max_targets", 1))
    if value.shape or not np.issubdtype(value.dtype, np.integer) or value < 1:
        raise DatasetError(
            f"attribute 'max_targets' must be a whole number ≥ 1, got {value.tolist()!r}"
        )
    return int(value)


def unpair(ds: xr.Dataset, pair_share: float, seed: int = 0) -> xr.Dataset:
    """A copy of ``ds`` in which only ``pair_share`` of the pairs stay pairs: the rest become
    unpaired observations of their first world (the world before any intervention, so an
    observational sample), drawn at random with ``seed``. Their second world is set to NaN
    (``x`` and any truth), their ``target`` to −1.

    >>> ds = pairs_dataset(np.zeros((4, 2)), np.ones((4, 2)), target=[0, 1, 2, 1])
    >>> mixed = unpair(ds, 0.5, seed=0)
    >>> int(paired_rows(mixed["x"].values).sum()), int((mixed["target"] == -1).sum())
    (2, 2)

    :raises DatasetError: unless ``0 < pair_share ≤ 1`` keeps at least one pair, or for an
        image dataset (its integer pixels have no NaN).
    """
    validate(ds)
    if not 0 < pair_share <= 1:
        raise DatasetError(f"pair_share must lie in (0, 1], got {pair_share}")
    if "image_shape" in ds.attrs:
        raise DatasetError("image datasets hold pairs only: unpair their reduced features")
    paired = np.flatnonzero(paired_rows(ds["x"].values))
    keep = round(pair_share * len(paired))
    if keep < 1:
        raise DatasetError(f"a pair share of {pair_share:g} keeps none of the {len(paired)} pairs")
    drop = np.random.default_rng(seed).permutation(paired)[keep:]
    out = ds.copy(deep=True)
    for var in out.data_vars.values():
        if var.dims[:2] == ("pair", "world") and np.issubdtype(var.dtype, np.floating):
            var.values[drop, 1] = np.nan
    if "target" in out:
        out["target"].values[drop] = -1
    out.attrs.update(pair_share=float(pair_share), unpair_seed=int(seed))
    return validate(out)


def _storable(value: object) -> bool:
    """Whether NetCDF can store ``value`` as an attribute: a string, a number, or a flat
    sequence of numbers."""
    if isinstance(value, str | bytes | bool | int | float | np.number):
        return True
    if isinstance(value, list | tuple | np.ndarray):
        array = np.asarray(value)
        return array.ndim == 1 and (
            np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.bool_)
        )
    return False


def save(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Validate ``ds`` and write it to ``path``: a Zarr store (a directory) if the name ends
    in ``.zarr``, else a NetCDF-4 file. A lazily opened ``ds`` is written chunk by chunk.

    The file or store is written next to its destination and renamed into place, so an
    interrupted save never leaves a truncated one under ``path``.

    :raises DatasetError: if ``ds`` is not a well-formed dataset, or the directory of
        ``path`` does not exist.
    :raises PyrocrlError: if ``path`` is a directory other than a Zarr store.
    """
    validate(ds)
    path = Path(path)
    if not path.parent.is_dir():
        raise DatasetError(f"cannot write {path}: directory {path.parent} does not exist")
    # images compress well (a few colours on a plain background)
    encoding = {"x": {"compression": "gzip", "compression_opts": 1}} if _is_images(ds) else None
    return write_store(ds, path, encoding)


def _is_images(ds: xr.Dataset) -> bool:
    return "image_shape" in ds.attrs and np.issubdtype(ds["x"].dtype, np.integer)


def load(path: str | os.PathLike, chunks: str | int | dict[str, Any] | None = None) -> xr.Dataset:
    """Read a dataset written by :func:`save` (a NetCDF-4 file, or a Zarr store for a path
    ending in ``.zarr``) and validate it.

    :param chunks: ``None`` reads it fully into memory. Otherwise it is opened lazily, its
        variables dask arrays over chunks of pairs, read when computed: ``"auto"`` (chunks of
        whole stored chunks), a number of pairs per chunk, or a dict of chunk sizes by dim
        (as ``xarray.open_dataset`` takes them). Validation then reads the data chunk by
        chunk (an image dataset's integer pixels not at all), and a lazy NetCDF file stays
        open until the dataset is closed. Needs ``pyrocrl[scale]`` (dask).
    :raises FileNotFoundError: if ``path`` does not exist.
    :raises DatasetError: if the file is not NetCDF-4 (or the store not Zarr), is truncated,
        or is not a well-formed pyrocrl dataset.
    """
    ds = open_store(path, chunks)
    try:
        return validate(ds, source=str(path))
    except BaseException:
        ds.close()
        raise


def rendered_pairs(
    truth: xr.Dataset,
    pictures: Any,
    image_shape: Sequence[int],
    state: Any,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """The image dataset of pairs simulated as ``truth`` (the ground truth of
    :func:`~pyrocrl.data.simulate`: ``z``, ``noise``, ``target``, the graph) whose images
    were rendered from the states ``state`` ``(pair, world, n)``.

    :param pictures: both worlds' images, flattened: ``(pair, 2, H·W·C)``.
    :param image_shape: ``(H, W, C)``, stored in ``attrs["image_shape"]``.
    :param attrs: attributes beside those of ``truth``.
    """
    ds = pairs_dataset(
        pictures,
        z=truth["z"].values[:, 0],
        z_tilde=truth["z"].values[:, 1],
        noise=truth["noise"].values[:, 0],
        noise_tilde=truth["noise"].values[:, 1],
        target=truth["target"].values,
        adjacency=truth["adjacency"].values,
        weights=truth["weights"].values if "weights" in truth else None,
        attrs={**truth.attrs, "image_shape": [int(k) for k in image_shape], **(attrs or {})},
    )
    return ds.assign(state=(("pair", "world", "latent"), np.asarray(state)))


def images(ds: xr.Dataset, worlds: Sequence[int] = (0, 1)) -> np.ndarray:
    """The images of an image dataset, ``(pair, world, H, W, C)`` (a view of ``x``).

    :raises DatasetError: if ``ds`` holds no images (no attribute ``image_shape``).
    """
    shape = ds.attrs.get("image_shape")
    if shape is None:
        raise DatasetError("this dataset holds no images (it has no attribute 'image_shape')")
    x = ds["x"].values[:, list(worlds)]
    return x.reshape(*x.shape[:2], *(int(s) for s in shape))
