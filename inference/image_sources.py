"""The images an image VAE trains on (:func:`~pyrocrl.inference.reduce.fit_image_vae`): a
dataset's distinct images, split into a held-back set and training images, served batch
by batch — from memory, or streamed from disk for a dataset opened lazily.

Both sources give ``uint8`` pixels ``(B, H, W, C)``, in an order that is a function of the
seed and the step alone, so that a resumed training run sees the same batches.

- :class:`InMemoryImages` holds every distinct image; the held-back set and the training
  images are uniform random subsets, and each epoch a new permutation of the latter.
- :class:`StreamedImages` holds none: the training images are streamed by a
  :class:`~pyrocrl.data.stream.BlockShuffle` (blocks of consecutive pairs, shuffled, read
  a buffer at a time). The held-back set and the training subset are whole blocks taken in
  a random order of the blocks (the pairs of a dataset are exchangeable, so blocks of them
  are random subsets too), so reading them reads few blocks.
"""

__all__ = ["HELD", "InMemoryImages", "StreamedImages", "distinct_items"]

import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import xarray as xr

from pyrocrl.data.stream import BlockShuffle, block_pairs, read_items

HELD = 512
"""Images held back to measure the reconstruction error."""


def distinct_items(ds: xr.Dataset) -> np.ndarray:
    """The distinct images of an image dataset as items ``pair · 2 + world``, ascending: the
    first world of each pair, and the second where a pair was intervened on (or, without
    targets, always). Reads ``target`` only."""
    if "target" not in ds:
        return np.arange(2 * ds.sizes["pair"])
    first = 2 * np.arange(ds.sizes["pair"])
    second = 2 * np.flatnonzero(ds["target"].values > 0) + 1
    return np.sort(np.concatenate([first, second]))


class InMemoryImages:
    """Every distinct image in memory (:func:`~pyrocrl.inference.reduce.distinct_images`).

    :param seed: draws the held-back set, the training subset and each epoch's order.
    :param max_images: training images (all with ``None``).
    """

    def __init__(self, pixels: np.ndarray, seed: int, max_images: int | None) -> None:
        self.pixels = pixels
        self.rng = np.random.default_rng(seed)
        order = self.rng.permutation(len(pixels))
        self.held_out, order = order[:HELD], order[HELD:]
        self.order = order[:max_images] if max_images is not None else order
        self.count = len(pixels)
        self.image_shape = tuple(pixels.shape[1:])
        self.settings: dict[str, Any] = {}

    @property
    def train_size(self) -> int:
        return len(self.order)

    def fingerprint(self) -> int:
        """A checksum of (a sample of) the images, to tell data apart."""
        return zlib.crc32(np.ascontiguousarray(self.pixels[:: max(1, self.count // 64)]))

    def batch(self, step: int, per_epoch: int, batch_size: int) -> np.ndarray:
        """The pixels of batch ``step`` (steps come in order: each epoch's first permutes)."""
        if step % per_epoch == 0:
            self.order = self.rng.permutation(self.order)
        return self.pixels[self.order[(step % per_epoch) * batch_size :][:batch_size]]

    def sample(self, count: int, part: int) -> Iterator[np.ndarray]:
        """Up to ``count`` training images, ``part`` at a time."""
        chosen = np.sort(self.order[:count])
        for i in range(0, len(chosen), part):
            yield self.pixels[chosen[i : i + part]]

    def held(self) -> np.ndarray:
        return self.pixels[self.held_out]


class StreamedImages:
    """The distinct images of a lazily opened dataset, streamed from disk.

    :param seed: draws the order of the blocks the held-back and training images are
        taken from, and (with the epoch) each epoch's order.
    :param max_images: training images (all with ``None``).
    :param batch_size: images per batch.
    :param buffer_blocks: blocks per shuffle buffer (default: see
        :class:`~pyrocrl.data.stream.BlockShuffle`).
    """

    def __init__(
        self,
        ds: xr.Dataset,
        seed: int,
        max_images: int | None,
        batch_size: int,
        buffer_blocks: int | None = None,
    ) -> None:
        self.data = ds["x"]
        self.image_shape = tuple(int(s) for s in ds.attrs["image_shape"])
        items = distinct_items(ds)
        self.count = len(items)
        self.size = block_pairs(self.data)
        self.rng = np.random.default_rng(seed)
        ordered = _by_block(items, 2 * self.size, self.rng)
        self.held_out, train = ordered[:HELD], ordered[HELD:]
        self.train = train[:max_images] if max_images is not None else train
        self.stream = BlockShuffle(
            self.data,
            self.train,
            batch_size=batch_size,
            seed=seed,
            block_pairs=self.size,
            buffer_blocks=buffer_blocks,
            drop_last=True,
        )
        self.order = self.stream.items  # what a checkpoint records
        self._held = self._pixels(read_items(self.data, self.held_out, self.size))
        self.settings = {
            "stream": {"block_pairs": self.size, "buffer_blocks": self.stream.buffer_blocks}
        }
        self._batches: Iterator[Any] | None = None
        self._next = -1

    @property
    def train_size(self) -> int:
        return len(self.train)

    def _pixels(self, values: np.ndarray) -> np.ndarray:
        return values.reshape(-1, *self.image_shape)

    def fingerprint(self) -> int:
        """A checksum of the held-back images and of which images there are."""
        return zlib.crc32(self.train.tobytes(), zlib.crc32(np.ascontiguousarray(self._held)))

    def batch(self, step: int, per_epoch: int, batch_size: int) -> np.ndarray:
        """The pixels of batch ``step``: batch ``step mod per_epoch`` of epoch
        ``step // per_epoch`` of the stream (which reads from there on)."""
        epoch, within = divmod(step, per_epoch)
        if self._batches is None or step != self._next or within == 0:
            self._batches = self.stream.batches(epoch, within)
        self._next = step + 1
        _, values = next(self._batches)
        return self._pixels(values)

    def sample(self, count: int, part: int) -> Iterator[np.ndarray]:
        """Up to ``count`` training images, ``part`` at a time (read a few blocks at a
        time)."""
        chosen = np.sort(self.train[:count])
        for i in range(0, len(chosen), 8 * part):
            pixels = self._pixels(read_items(self.data, chosen[i : i + 8 * part], self.size))
            for j in range(0, len(pixels), part):
                yield pixels[j : j + part]

    def held(self) -> np.ndarray:
        return self._held


def _by_block(items: np.ndarray, per_block: int, rng: np.random.Generator) -> np.ndarray:
    """``items`` (ascending) grouped by block of ``per_block`` items, the blocks in a random
    order."""
    blocks, starts = np.unique(items // per_block, return_index=True)
    bounds = np.append(starts, len(items))
    order = rng.permutation(len(blocks))
    return np.concatenate([items[bounds[b] : bounds[b + 1]] for b in order])
