"""Writing a dataset whose observations do not fit in memory, one block of pairs at a time.

:func:`write_pairs` takes a *template* — a pyrocrl dataset complete but for the values of
``x``, which a :func:`placeholder` stands in for — and an iterable of blocks of ``x``, in
order. It creates the store with the full shape (the truth, coordinates and attributes
written at once), writes each block into its region of pairs as it comes, and renames the
store into place when the last one is in: an error or an interruption while the blocks are
made (say, by a renderer) leaves nothing under the path, and a store that was there stays.
Memory holds one block and one chunk of pairs, never all of ``x``.

>>> import tempfile
>>> from pyrocrl.data import load
>>> template = pairs_dataset(placeholder(1000, 6, np.uint8), attrs={"image_shape": [1, 2, 3]})
>>> blocks = (np.full((100, 2, 6), i, np.uint8) for i in range(10))
>>> with tempfile.TemporaryDirectory() as folder:
...     path = write_pairs(f"{folder}/pairs.nc", template, blocks)
...     int(load(path)["x"][550, 1, 0])
5
"""

__all__ = ["placeholder", "write_pairs"]

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from pyrocrl.data.dataset import SCHEMA, pairs_dataset, validate  # noqa: F401 (doctest)
from pyrocrl.data.store import chunk_rows, is_zarr, is_zarr_store, zarr_encoding, zarr_ready
from pyrocrl.errors import DatasetError
from pyrocrl.io import atomic_directory, atomic_write


def placeholder(pairs: int, features: int, dtype: Any = np.uint8) -> np.ndarray:
    """A stand-in for ``x`` of shape ``(pairs, 2, features)`` that takes no memory: a
    read-only view of one zero (``np.broadcast_to``), for ``pairs_dataset(placeholder(…))``
    templates."""
    return np.broadcast_to(np.zeros((), dtype=dtype), (pairs, 2, features))


def write_pairs(
    path: str | os.PathLike,
    template: xr.Dataset,
    blocks: Iterable[Any],
    *,
    chunk_pairs: int | None = None,
    compress: bool = True,
) -> Path:
    """Write ``template`` to ``path`` with ``x`` taken from ``blocks``, block by block.

    :param path: a Zarr store for a name ending in ``.zarr``, else a NetCDF-4 file.
    :param template: a valid pyrocrl dataset; the values of its ``x`` are not read (use a
        :func:`placeholder`), its shape and dtype are those written.
    :param blocks: consecutive blocks of pairs, in order, ``(b, 2, D)`` or ``(b, 2, H, W, C)``
        (any sizes ``b``, ``x``'s dtype, finite) that together cover every pair once.
    :param chunk_pairs: pairs per stored chunk (default: about 16 MiB of ``x`` each).
    :param compress: compress ``x`` (Zarr's zstd, NetCDF's gzip); ``False`` stores it raw.
    :returns: ``path``.
    :raises DatasetError: if the template is not a valid dataset, a block does not fit it,
        or the blocks hold more or fewer pairs than it; nothing is written then.
    """
    validate(template, source="the template")
    path = Path(path)
    if not path.parent.is_dir():
        raise DatasetError(f"cannot write {path}: directory {path.parent} does not exist")
    x = template["x"]
    rows = chunk_rows(x) if chunk_pairs is None else int(chunk_pairs)
    if rows < 1:
        raise ValueError(f"chunk_pairs must be at least 1, got {chunk_pairs}")
    pieces = _pieces(blocks, rows, x.shape[0], x.shape[2], x.dtype)
    if is_zarr(path):
        with atomic_directory(path, is_zarr_store) as tmp:
            _write_zarr(tmp, template, pieces, rows, compress)
    else:
        atomic_write(path, lambda tmp: _write_netcdf(tmp, template, pieces, rows, compress))
    return path


def _pieces(
    blocks: Iterable[Any], rows: int, pairs: int, features: int, dtype: np.dtype
) -> Iterator[tuple[int, np.ndarray]]:
    """``(first pair, values)`` of ``blocks`` cut and joined into whole chunks of ``rows``
    pairs (the last may be shorter), each block checked on the way."""
    start, pending, waiting = 0, [], 0
    for i, block in enumerate(blocks):
        block = _checked(np.asarray(block), i, features, dtype)
        if start + waiting + len(block) > pairs:
            raise DatasetError(f"the blocks hold more than the template's {pairs} pairs")
        if waiting:
            head, block = block[: rows - waiting], block[rows - waiting :]
            pending.append(head)
            waiting += len(head)
            if waiting == rows:
                yield start, np.concatenate(pending)
                start, pending, waiting = start + rows, [], 0
        whole = len(block) // rows * rows
        if whole:
            yield start, block[:whole]
            start += whole
        if len(block) > whole:
            pending, waiting = [block[whole:].copy()], len(block) - whole
    if waiting:
        yield start, np.concatenate(pending)
        start += waiting
    if start != pairs:
        raise DatasetError(f"the blocks hold {start} pairs, the template {pairs}")


def _checked(block: np.ndarray, i: int, features: int, dtype: np.dtype) -> np.ndarray:
    """Block ``i`` as ``(b, 2, features)``, or a :class:`DatasetError` on what is wrong."""
    if block.ndim < 3 or block.shape[1] != 2 or int(np.prod(block.shape[2:])) != features:
        raise DatasetError(
            f"block {i} has shape {block.shape}; blocks of pairs must have shape "
            f"(pairs, 2, {features}) or (pairs, 2, H, W, C) with H·W·C = {features}"
        )
    if block.dtype != dtype:
        raise DatasetError(f"block {i} holds {block.dtype}, the template's x {dtype}")
    if block.dtype.kind == "f" and not np.isfinite(block).all():
        raise DatasetError(f"block {i} holds NaN or infinite values")
    return block.reshape(len(block), 2, features)


def _write_zarr(
    tmp: Path,
    template: xr.Dataset,
    pieces: Iterator[tuple[int, np.ndarray]],
    rows: int,
    compress: bool,
) -> None:
    """The store with everything but ``x``'s values, then ``x`` region by region."""
    import dask.array  # a lazy stand-in that takes no memory, never computed

    x = template["x"]
    encoding = zarr_encoding(template, compress)
    encoding["x"]["chunks"] = (rows, *x.shape[1:])
    empty = dask.array.zeros(x.shape, dtype=x.dtype, chunks=encoding["x"]["chunks"])
    store = zarr_ready(template.assign(x=(x.dims, empty)))
    store.to_zarr(tmp, mode="w", compute=False, consolidated=False, encoding=encoding)
    for start, values in pieces:
        region = {"pair": slice(start, start + len(values))}
        block = xr.Dataset({"x": (SCHEMA["x"], values)})
        block.to_zarr(tmp, region=region, consolidated=False)


def _write_netcdf(
    tmp: str,
    template: xr.Dataset,
    pieces: Iterator[tuple[int, np.ndarray]],
    rows: int,
    compress: bool,
) -> None:
    """The file with everything but ``x``, then ``x`` added and filled region by region."""
    import h5netcdf

    x = template["x"]
    template.drop_vars("x").to_netcdf(tmp, engine="h5netcdf")
    options: dict[str, Any] = {"compression": "gzip", "compression_opts": 1} if compress else {}
    with h5netcdf.File(tmp, "a") as file:
        for dim, size in zip(x.dims, x.shape, strict=True):
            if dim not in file.dimensions:
                file.dimensions[dim] = size
        var = file.create_variable(
            "x", x.dims, dtype=x.dtype, chunks=(min(rows, x.shape[0]), *x.shape[1:]), **options
        )
        for start, values in pieces:
            var[start : start + len(values)] = values
