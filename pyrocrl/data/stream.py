"""Reading a dataset larger than memory: shuffled minibatches, and blocks in order.

The data are a ``(pair, world, …)`` array — ``x`` of a lazily opened dataset
(:func:`~pyrocrl.data.load` with ``chunks``), or any ``xarray.DataArray`` — whose *items*
are its ``(pair, world)`` cells, numbered ``pair · worlds + world``: an image dataset's
images. A *block* is ``block_pairs`` consecutive pairs, read from disk in one piece.

:class:`BlockShuffle` yields minibatches of chosen items in an order that depends only on
``(seed, epoch)`` (and the items and sizes), never on what was read before, so that a
resumed run repeats it. Each epoch shuffles the order of the blocks, takes them
``buffer_blocks`` at a time, reads the chosen items of those blocks into a buffer and
shuffles the buffer; the batches are consecutive runs of that order, a batch that a buffer
does not fill being completed from the next one. Every item comes exactly once per epoch.

**Memory bound**: the buffer holds at most ``buffer_blocks · block_pairs · worlds`` items
plus the fewer than ``batch_size`` carried over from the previous buffer
(:attr:`BlockShuffle.buffer_items`), each of ``item_bytes`` bytes (an image's ``H·W·C``
``uint8``); while a buffer fills, one block more is held as read, and briefly its chosen
items (each ``block_pairs · worlds`` items at most); a batch is a copy. Defaults: blocks of
about :data:`BLOCK_BYTES`, buffers of about :data:`BUFFER_BYTES`, so about 300 MiB in all,
whatever the size of the dataset.

:func:`blocks` reads the pairs in order, one block at a time (for encoding every pair).
A damaged chunk surfaces as a :class:`~pyrocrl.errors.DatasetError` naming the pairs.
"""

__all__ = ["BLOCK_BYTES", "BUFFER_BYTES", "BlockShuffle", "block_pairs", "blocks", "read_items"]

from collections.abc import Iterator

import numpy as np
import xarray as xr

from pyrocrl.data.store import chunk_rows
from pyrocrl.errors import DatasetError

BLOCK_BYTES = 16 * 2**20
"""About how many bytes a block holds by default."""
BUFFER_BYTES = 256 * 2**20
"""About how many bytes a buffer of blocks holds by default."""


def block_pairs(data: xr.DataArray, target: int = BLOCK_BYTES) -> int:
    """Pairs per block of ``data`` ``(pair, world, …)``: a whole number of its stored chunks
    (on disk when known, else dask's) of about ``target`` bytes, at least one chunk, at most
    every pair."""
    stored = _stored_rows(data)
    if stored is None:
        return chunk_rows(data, target)
    row = data.dtype.itemsize * int(np.prod(data.shape[1:]))
    return int(min(data.shape[0], stored * max(1, target // max(stored * row, 1))))


def _stored_rows(data: xr.DataArray) -> int | None:
    """Pairs per chunk as stored: on disk (Zarr's ``chunks``, NetCDF's ``chunksizes``),
    else as dask chunks them."""
    for key in ("chunks", "chunksizes"):
        chunks = data.encoding.get(key)
        if chunks:
            return int(chunks[0])
    if data.chunks is not None:
        return int(data.chunks[0][0])
    return None


def _read(data: xr.DataArray, start: int, stop: int) -> np.ndarray:
    """Pairs ``start … stop − 1`` of ``data`` as a NumPy array."""
    try:
        return np.asarray(data.isel({data.dims[0]: slice(start, stop)}).values)
    except Exception as error:
        raise DatasetError(
            f"cannot read pairs {start}…{stop - 1} of the dataset: damaged or missing on "
            f"disk ({type(error).__name__}: {error})"
        ) from error


def blocks(data: xr.DataArray, size: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """``(first pair, values)`` of consecutive blocks of ``size`` pairs of ``data`` (default:
    :func:`block_pairs`), in order: one block in memory at a time."""
    size = block_pairs(data) if size is None else size
    if size < 1:
        raise ValueError(f"blocks must hold at least one pair, got {size}")
    for start in range(0, data.shape[0], size):
        yield start, _read(data, start, min(start + size, data.shape[0]))


def read_items(data: xr.DataArray, items: np.ndarray, size: int | None = None) -> np.ndarray:
    """The items ``items`` (``pair · worlds + world``) of ``data``, in the order given,
    ``(len(items), …)``: each block of ``size`` pairs that holds some is read once. Holds
    the result and one block."""
    items = np.asarray(items, dtype=np.int64)
    out = np.empty((len(items), *data.shape[2:]), dtype=data.dtype)
    _fill(out, data, items, block_pairs(data) if size is None else size)
    return out


def _fill(out: np.ndarray, data: xr.DataArray, items: np.ndarray, size: int) -> None:
    """``out[i] = item items[i] of data``, reading each block of ``size`` pairs once."""
    per_block = size * data.shape[1]
    which = items // per_block
    for b in np.unique(which):
        where = np.flatnonzero(which == b)
        start = int(b) * size
        values = _read(data, start, min(start + size, data.shape[0]))
        out[where] = values.reshape(-1, *data.shape[2:])[items[where] - start * data.shape[1]]


class BlockShuffle:
    """Shuffled minibatches of the items of a large array, read a few blocks at a time.

    :param data: ``(pair, world, …)``, e.g. ``ds["x"]`` of a lazily opened dataset; items are
        ``data[pair, world]``, numbered ``pair · worlds + world``.
    :param items: the items to stream, ``(M,)`` distinct numbers (default: every item).
    :param int batch_size: items per batch.
    :param int seed: with the epoch, the order of the batches.
    :param block_pairs: pairs per block (default :func:`block_pairs`: whole stored chunks).
    :param buffer_blocks: blocks per buffer (default: about :data:`BUFFER_BYTES` of items).
    :param bool drop_last: drop each epoch's last, incomplete batch.

    >>> data = xr.DataArray(np.arange(40).reshape(10, 2, 2), dims=("pair", "world", "feature"))
    >>> stream = BlockShuffle(data, batch_size=4, seed=0, block_pairs=2, buffer_blocks=2)
    >>> epoch = [ids for ids, values in stream.batches(epoch=0)]
    >>> sorted(np.concatenate(epoch).tolist()) == list(range(20))  # each item once
    True
    >>> resumed = [ids for ids, values in stream.batches(epoch=0, start=3)]  # batch 3 on
    >>> all(np.array_equal(a, b) for a, b in zip(resumed, epoch[3:], strict=True))
    True
    """

    def __init__(
        self,
        data: xr.DataArray,
        items: np.ndarray | None = None,
        *,
        batch_size: int,
        seed: int = 0,
        block_pairs: int | None = None,
        buffer_blocks: int | None = None,
        drop_last: bool = False,
    ) -> None:
        if data.ndim < 2:
            raise ValueError(f"data must have dims (pair, world, …), got {data.dims}")
        self.data = data
        self.worlds = data.shape[1]
        total = data.shape[0] * self.worlds
        items = np.arange(total) if items is None else np.unique(np.asarray(items, np.int64))
        if len(items) and (items[0] < 0 or items[-1] >= total):
            raise ValueError(f"items must lie in 0…{total - 1} (pair · worlds + world)")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.items = items
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.drop_last = drop_last
        self.block_pairs = _block_pairs(data) if block_pairs is None else int(block_pairs)
        if self.block_pairs < 1:
            raise ValueError(f"block_pairs must be at least 1, got {block_pairs}")
        if buffer_blocks is None:
            buffer_blocks = max(1, BUFFER_BYTES // max(1, self.block_pairs * self.row_bytes))
        if buffer_blocks < 1:
            raise ValueError(f"buffer_blocks must be at least 1, got {buffer_blocks}")
        self.buffer_blocks = int(buffer_blocks)
        per_block = self.block_pairs * self.worlds
        self._blocks, self._bounds = np.unique(items // per_block, return_index=True)
        self._bounds = np.append(self._bounds, len(items))

    @property
    def item_bytes(self) -> int:
        """Bytes of one item."""
        return self.data.dtype.itemsize * int(np.prod(self.data.shape[2:]))

    @property
    def row_bytes(self) -> int:
        """Bytes of one pair (every world)."""
        return self.item_bytes * self.worlds

    @property
    def buffer_items(self) -> int:
        """The most items the buffer holds: ``buffer_blocks · block_pairs · worlds``, plus a
        batch carried over. Times :attr:`item_bytes`, the memory bound."""
        return self.buffer_blocks * self.block_pairs * self.worlds + self.batch_size - 1

    def __len__(self) -> int:
        """Batches per epoch."""
        full, rest = divmod(len(self.items), self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def _plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """The epoch's items in stream order, and where each buffer's part of it ends."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self._blocks))
        parts, ends = [], []
        for g in range(0, len(order), self.buffer_blocks):
            chosen = np.sort(order[g : g + self.buffer_blocks])
            members = np.concatenate(
                [self.items[self._bounds[b] : self._bounds[b + 1]] for b in chosen]
            )
            parts.append(members[rng.permutation(len(members))])
            ends.append(len(members) + (ends[-1] if ends else 0))
        if not parts:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        return np.concatenate(parts), np.asarray(ends)

    def order(self, epoch: int) -> np.ndarray:
        """Every item in the order epoch ``epoch`` yields them (read nothing)."""
        return self._plan(epoch)[0]

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(items, values)`` of the batches of epoch ``epoch``, from batch ``start`` on:
        ``items`` ``(B,)``, ``values`` ``(B, …)``. The buffers before batch ``start`` are not
        read."""
        if epoch < 0 or start < 0:
            raise ValueError(f"epoch and start must be ≥ 0, got {epoch} and {start}")
        order, ends = self._plan(epoch)
        position, size = start * self.batch_size, self.batch_size
        shape, dtype = self.data.shape[2:], self.data.dtype
        carried_ids, carried = np.empty(0, dtype=np.int64), np.empty((0, *shape), dtype)
        begin = 0
        for end in ends:
            if end > position:
                fresh = order[max(begin, position) : end]
                ids = np.concatenate([carried_ids, fresh])
                buffer = np.empty((len(ids), *shape), dtype)
                buffer[: len(carried)] = carried
                _fill(buffer[len(carried) :], self.data, fresh, self.block_pairs)
                whole = len(ids) // size * size
                for i in range(0, whole, size):
                    yield ids[i : i + size], buffer[i : i + size].copy()
                carried_ids, carried = ids[whole:], buffer[whole:].copy()
                del buffer
            begin = end
        if len(carried_ids) and not self.drop_last:
            yield carried_ids, carried


def _block_pairs(data: xr.DataArray) -> int:
    return block_pairs(data)
