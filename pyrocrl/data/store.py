"""Datasets on disk: NetCDF-4 files and Zarr stores, eagerly or lazily.

A path whose name ends in ``.zarr`` is a Zarr store (a directory, Zarr format 3); any
other is a NetCDF-4 file written with h5netcdf. Both hold the same dataset:
:func:`open_store` gives back equal datasets from either (Zarr's JSON attributes are
read as NetCDF reads its own: numbers as NumPy scalars, lists as arrays, a one-element
list as its element; string coordinates as NumPy strings).

Opened with ``chunks`` a dataset is lazy: its variables are dask arrays over blocks of
pairs, read from disk only when computed, so that a dataset larger than memory can be
validated (:func:`~pyrocrl.data.dataset.validate` reads it chunk by chunk), streamed
(:mod:`pyrocrl.data.stream`) and reduced block by block. Lazy opening and Zarr need the
extra ``pyrocrl[scale]`` (dask, zarr).

Zarr chunks hold about :data:`CHUNK_BYTES` of a variable each, whole along every
dimension but ``pair``.
"""

__all__ = [
    "CHUNK_BYTES",
    "ZARR_SUFFIX",
    "auto_chunks",
    "chunk_rows",
    "is_lazy",
    "is_zarr",
    "is_zarr_store",
    "open_store",
    "write_store",
    "zarr_encoding",
    "zarr_ready",
]

import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from pyrocrl.errors import DatasetError
from pyrocrl.io import write_netcdf, write_zarr

ENGINE = "h5netcdf"
ZARR_SUFFIX = ".zarr"
"""The suffix that makes a path a Zarr store."""
CHUNK_BYTES = 16 * 2**20
"""About how many bytes of one variable a Zarr chunk holds."""
SCALE_HINT = "install the extra 'pyrocrl[scale]' (dask, zarr)"


def is_zarr(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a Zarr store (its name ends in ``.zarr``)."""
    return Path(path).suffix.lower() == ZARR_SUFFIX


def is_zarr_store(path: str | os.PathLike) -> bool:
    """Whether the directory ``path`` holds a Zarr store (format 3 or 2)."""
    path = Path(path)
    return path.is_dir() and any((path / name).is_file() for name in ("zarr.json", ".zgroup"))


def auto_chunks() -> str | None:
    """``"auto"`` where dask is installed (open lazily), else ``None`` (read into memory)."""
    try:
        import dask  # noqa: F401
    except ImportError:
        return None
    return "auto"


def is_lazy(ds: xr.Dataset) -> bool:
    """Whether any variable of ``ds`` is a dask array (opened with ``chunks``)."""
    return any(var.chunks is not None for var in ds.variables.values())


def chunk_rows(var: xr.Variable | xr.DataArray, target: int = CHUNK_BYTES) -> int:
    """Pairs per chunk of a variable with a leading ``pair`` dim: about ``target`` bytes,
    at least one pair, at most all of them."""
    pairs = var.shape[0]
    row = var.dtype.itemsize * int(np.prod(var.shape[1:]))
    return int(min(max(pairs, 1), max(1, target // max(row, 1))))


def zarr_encoding(ds: xr.Dataset, compress: bool = True) -> dict[str, dict[str, Any]]:
    """Zarr chunks of every variable with a ``pair`` dim (:func:`chunk_rows`, whole along
    the other dims); ``compress=False`` stores ``x`` without compression."""
    encoding: dict[str, dict[str, Any]] = {}
    for name, var in ds.data_vars.items():
        if var.dims[:1] == ("pair",):
            encoding[name] = {"chunks": (chunk_rows(var), *var.shape[1:])}
    if not compress:
        encoding["x"] = {**encoding.get("x", {}), "compressors": None}
    return encoding


def zarr_ready(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` as Zarr format 3 stores it without warnings: string coordinates as
    variable-length strings (fixed-length ones have no Zarr 3 specification yet)."""
    strings = {n: v.astype(object) for n, v in ds.coords.items() if v.dtype.kind == "U"}
    return ds.assign_coords(strings) if strings else ds


def write_store(
    ds: xr.Dataset,
    path: str | os.PathLike,
    encoding: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """Write ``ds`` to ``path`` atomically: a Zarr store for a ``.zarr`` path (chunked by
    :func:`zarr_encoding`), a NetCDF-4 file otherwise (with ``encoding``). A lazy dataset
    is written chunk by chunk.

    :raises PyrocrlError: if a directory other than a Zarr store is at a ``.zarr`` path.
    """
    if not is_zarr(path):
        return write_netcdf(ds, path, encoding=encoding)
    _require("zarr")
    zarr_chunks = zarr_encoding(ds)
    if is_lazy(ds):  # dask chunks must tile the Zarr chunks
        rows = {name: enc["chunks"][0] for name, enc in zarr_chunks.items()}
        ds = ds.assign({name: ds[name].chunk({"pair": r}) for name, r in rows.items()})
    return write_zarr(zarr_ready(ds), path, is_zarr_store, encoding=zarr_chunks)


def _require(module: str) -> None:
    try:
        __import__(module)
    except ImportError as error:
        what = "Zarr stores" if module == "zarr" else "opening datasets lazily"
        raise ImportError(f"{what} need the package {module!r}: {SCALE_HINT}") from error


def _chunks(chunks: str | int | dict[str, Any]) -> Any:
    """``chunks`` as xarray takes them: a whole number is pairs per chunk."""
    if isinstance(chunks, bool) or not isinstance(chunks, str | int | dict):
        raise ValueError(f"chunks must be 'auto', a number of pairs or a dict, got {chunks!r}")
    if isinstance(chunks, int):
        if chunks < 1:
            raise ValueError(f"chunks must be a positive number of pairs, got {chunks}")
        return {"pair": chunks}
    return chunks


def open_store(
    path: str | os.PathLike, chunks: str | int | dict[str, Any] | None = None
) -> xr.Dataset:
    """Open the dataset at ``path`` (not validated): read into memory with
    ``chunks=None``, lazily over dask chunks otherwise (``"auto"``, a number of pairs per
    chunk, or a dict of chunk sizes by dim, as ``xarray.open_dataset`` takes them).

    :raises FileNotFoundError: if nothing is at ``path``.
    :raises DatasetError: if it is not a NetCDF-4 file or Zarr store, or is truncated or
        damaged (in the parts read: a lazy dataset reads its chunks when computed).
    """
    path = Path(path)
    lazy = _chunks(chunks) if chunks is not None else None
    if lazy is not None:
        _require("dask")
    zarr = is_zarr(path)
    if zarr:
        _require("zarr")
        if not path.exists():
            raise FileNotFoundError(f"no dataset store at {path}")
        if not path.is_dir():
            raise DatasetError(f"{path} is not a Zarr store: a store is a directory")
        if not is_zarr_store(path):
            raise DatasetError(f"{path} is not a Zarr store: it holds no zarr.json")
        options: dict[str, Any] = {"engine": "zarr", "consolidated": False}
        what = "a Zarr store"
    else:
        if path.is_dir():
            raise DatasetError(f"{path} is a directory, not a dataset file")
        if not path.is_file():
            raise FileNotFoundError(f"no dataset file at {path}")
        options = {"engine": ENGINE, "phony_dims": "sort"}
        what = "a NetCDF-4 file"
    try:
        if lazy is None:
            with xr.open_dataset(path, **options) as opened:
                ds = opened.load()
        else:
            ds = xr.open_dataset(path, chunks=lazy, **options)
    except Warning:  # a warning made an error (say, chunks that split the stored ones)
        raise
    except Exception as error:
        raise DatasetError(
            f"cannot read {path}: not {what}, or truncated or corrupt "
            f"({type(error).__name__}: {error})"
        ) from error
    return _from_zarr(ds) if zarr else ds


def _from_zarr(ds: xr.Dataset) -> xr.Dataset:
    """A dataset read from Zarr, made equal to the same dataset read from NetCDF."""
    strings = {
        n: (v.dims, np.array(v.values.tolist(), dtype=str))
        for n, v in ds.coords.items()
        if v.dtype.kind in "OT"
    }
    if strings:
        ds = ds.assign_coords(strings)
    ds.attrs = {k: _netcdf_value(v) for k, v in ds.attrs.items()}
    for var in ds.variables.values():
        var.attrs = {k: _netcdf_value(v) for k, v in var.attrs.items()}
    return ds


def _netcdf_value(value: Any) -> Any:
    """A JSON attribute value as h5netcdf reads the same attribute from a NetCDF file."""
    if isinstance(value, list):
        array = np.asarray(value)
        return array[0] if array.shape == (1,) else array
    if isinstance(value, int):  # bools too
        return np.int64(value)
    if isinstance(value, float):
        return np.float64(value)
    return value
