"""Datasets larger than memory: Zarr beside NetCDF, lazy opening, chunked writing,
streamed minibatches, and image training and reduction that never read a dataset whole."""

import os
from pathlib import Path

import numpy as np
import pyro
import pytest
import torch
from conftest import svi_interrupted_after

from pyrocrl.cli import main
from pyrocrl.data import load, pairs_dataset, save, unpair, validate
from pyrocrl.data import stream as stream_module
from pyrocrl.data.store import is_lazy
from pyrocrl.data.stream import BlockShuffle, blocks, read_items
from pyrocrl.data.writer import placeholder, write_pairs
from pyrocrl.errors import DatasetError, PyrocrlError

dask = pytest.importorskip("dask")
pytest.importorskip("zarr")

RES = 16


def _features(pairs: int = 300, seed: int = 0):
    """A feature dataset with truth, a graph, list and boolean attributes, and some
    unpaired observations."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(pairs, 2, 3))
    ds = pairs_dataset(
        rng.normal(size=(pairs, 4)),
        rng.normal(size=(pairs, 4)),
        z=z[:, 0],
        z_tilde=z[:, 1],
        target=rng.integers(0, 4, pairs),
        adjacency=np.triu(np.ones((3, 3)), 1),
        attrs={"simulator": "test", "buttons": [0.1, 0.5], "one": [7], "flag": True},
    )
    return unpair(ds, 0.8, seed=1)


def _blobs(pairs: int, seed: int = 0):
    """Image pairs of a bright square whose place is the one latent variable; the second
    world moves it (target 1) or not (target 0)."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(0, RES - 4, size=(pairs, 2))
    target = rng.integers(0, 2, size=pairs)
    z[target == 0, 1] = z[target == 0, 0]
    pixels = np.zeros((pairs, 2, RES, RES, 3), dtype=np.uint8)
    for i in range(pairs):
        for w in range(2):
            c = int(z[i, w])
            pixels[i, w, 4:8, c : c + 4] = 255
    return pairs_dataset(
        pixels.reshape(pairs, 2, -1),
        z=z[:, :1],
        z_tilde=z[:, 1:],
        target=target,
        attrs={"image_shape": [RES, RES, 3]},
    )


@pytest.fixture(scope="module")
def blobs():
    return _blobs(800)


@pytest.fixture(scope="module")
def blob_store(blobs, tmp_path_factory):
    """The blobs as a Zarr store in chunks of 50 pairs."""
    path = tmp_path_factory.mktemp("blobs") / "blobs.zarr"
    return write_pairs(path, blobs, [blobs["x"].values], chunk_pairs=50)


# -- Zarr beside NetCDF, lazy opening --------------------------------------------------------
@pytest.mark.parametrize("make", [_features, lambda: _blobs(60)], ids=["features", "images"])
def test_zarr_round_trip_equals_netcdf_round_trip(make, tmp_path):
    ds = make()
    netcdf, zarr = save(ds, tmp_path / "d.nc"), save(ds, tmp_path / "d.zarr")
    assert zarr.is_dir()
    from_netcdf, from_zarr = load(netcdf), load(zarr)
    assert from_zarr.identical(from_netcdf)
    assert from_zarr.equals(ds)
    for path in (netcdf, zarr):  # lazily opened, the same dataset; and converted
        lazy = load(path, chunks="auto")
        assert is_lazy(lazy) and lazy.load().identical(from_netcdf)
        for other in ("e.nc", "e.zarr"):
            assert load(save(load(path, chunks="auto"), tmp_path / other)).identical(from_netcdf)
    save(from_zarr, zarr)  # a store is replaced whole
    assert load(zarr).identical(from_netcdf)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.nc", "d.zarr", "e.nc", "e.zarr"]


def test_lazy_open_keeps_x_on_disk_and_validates_chunk_by_chunk(tmp_path):
    ds = _features()
    path = save(ds, tmp_path / "d.zarr")
    lazy = load(path, chunks="auto")
    assert isinstance(lazy["x"].data, dask.array.Array)
    assert validate(lazy.chunk({"pair": 100})).equals(ds)
    # a value that validation must find, read chunk by chunk
    bad = ds.copy(deep=True)
    bad["x"].values[250, 0, 1] = np.inf
    bad["z"].values[np.flatnonzero(np.isnan(bad["x"].values[:, 1, 0]))[0], 1, 0] = 1.0
    lazily = bad.chunk({"pair": 64})
    with pytest.raises(DatasetError, match="'x' holds 0 NaN and 1 infinite"):
        validate(lazily)
    lazily["x"] = ds["x"].chunk({"pair": 64})
    with pytest.raises(DatasetError, match="'z' has values in the second world of an unpaired"):
        validate(lazily)


def test_validation_of_lazy_images_reads_no_pixels(blobs, tmp_path):
    path = write_pairs(tmp_path / "b.zarr", blobs, [blobs["x"].values], chunk_pairs=100)
    chunk = next(p for p in (path / "x" / "c").rglob("*") if p.is_file())
    chunk.write_bytes(b"garbage")  # one damaged chunk of pixels
    lazy = load(path, chunks="auto")  # validated without reading it
    assert lazy.sizes["pair"] == 800
    with pytest.raises(DatasetError, match="cannot read pairs"):
        list(blocks(lazy["x"], 100))
    with pytest.raises(DatasetError, match="cannot read"):
        load(path)


def test_unreadable_stores_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no dataset store"):
        load(tmp_path / "missing.zarr")
    (tmp_path / "file.zarr").write_text("not a store")
    with pytest.raises(DatasetError, match="a store is a directory"):
        load(tmp_path / "file.zarr")
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(DatasetError, match="not a Zarr store"):
        load(tmp_path / "empty.zarr")
    path = save(_features(), tmp_path / "d.zarr")
    (path / "zarr.json").write_text("{")
    with pytest.raises(DatasetError, match=r"cannot read .*d\.zarr"):
        load(path)
    other = tmp_path / "notes.zarr"  # a directory that is not a store is never replaced
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(PyrocrlError, match="a directory of something else"):
        save(_features(), other)
    assert (other / "notes.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="chunks must be"):
        load(tmp_path / "d.nc", chunks=0)


# -- chunked, atomic writing -----------------------------------------------------------------
class _Interrupt(Exception):
    pass


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_an_interrupted_write_leaves_no_partial_store(blobs, tmp_path, suffix):
    path = tmp_path / f"b{suffix}"
    template = pairs_dataset(placeholder(800, RES * RES * 3), attrs=dict(blobs.attrs))

    def interrupted():
        yield blobs["x"].values[:300]
        raise _Interrupt

    with pytest.raises(_Interrupt):
        write_pairs(path, template, interrupted(), chunk_pairs=64)
    assert list(tmp_path.iterdir()) == []
    # the blocks of any sizes, cut into chunks: the same data
    sizes = [1, 63, 200, 300, 236]
    parts = np.split(blobs["x"].values, np.cumsum(sizes)[:-1])
    write_pairs(path, blobs, parts, chunk_pairs=64)
    before = load(path)
    assert before.identical(load(save(blobs, tmp_path / f"ref{suffix}")))
    with pytest.raises(_Interrupt):  # a store that was there stays as it was
        write_pairs(path, template, interrupted(), chunk_pairs=64)
    assert load(path).identical(before)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, f"ref{suffix}"])
    with pytest.raises(DatasetError, match="the blocks hold 300 pairs, the template 800"):
        write_pairs(path, template, [*parts[:3], parts[3][:36]])
    with pytest.raises(DatasetError, match="holds float64"):
        write_pairs(path, template, [np.zeros((800, 2, RES * RES * 3))])


def test_a_killed_writers_store_is_removed_by_the_next_write(tmp_path):
    dead = tmp_path / f".d.zarr.{2**22 + 12345}.abcd.tmp"  # no such process
    (dead / "x").mkdir(parents=True)
    save(_features(), tmp_path / "d.zarr")
    assert [p.name for p in tmp_path.iterdir()] == ["d.zarr"]


def test_chunked_rendering_writes_the_in_memory_images(tmp_path):
    from pyrocrl.data.causalcircuit import simulate_causalcircuit, write_causalcircuit

    reference = simulate_causalcircuit(150, seed=11, resolution=RES, workers=1)
    for name in ("c.nc", "c.zarr"):
        path = write_causalcircuit(tmp_path / name, 150, 11, resolution=RES, workers=1, block=40)
        assert load(path).identical(reference)


def test_the_chambers_images_are_written_block_by_block(tmp_path):
    pytest.importorskip("causalchamber")
    from pyrocrl.data.catalog import simulate_dataset, write_dataset

    options = dict(mode="images", resolution=RES, seed=3)
    reference = simulate_dataset("chamber", 50, **options)
    path = write_dataset(tmp_path / "c.zarr", "chamber", 50, block=7, **options)
    assert load(path).identical(reference)


# -- streamed minibatches --------------------------------------------------------------------
def _counting(monkeypatch):
    """Record the pairs of every read of the stream module."""
    reads = []
    read = stream_module._read

    def counted(data, start, stop):
        reads.append((start, stop))
        return read(data, start, stop)

    monkeypatch.setattr(stream_module, "_read", counted)
    return reads


def test_the_stream_is_a_function_of_seed_and_epoch(blob_store, monkeypatch):
    data = load(blob_store, chunks="auto")["x"]
    items = np.flatnonzero(np.random.default_rng(0).random(1600) < 0.7)

    def stream(seed):
        return BlockShuffle(data, items, batch_size=48, seed=seed, block_pairs=50, buffer_blocks=3)

    assert stream_module.block_pairs(data, target=120 * data.shape[2] * 2) == 100  # in chunks
    assert BlockShuffle(data, batch_size=48).block_pairs == 800  # about 16 MiB: all
    one, two = stream(5), stream(5)
    epoch0 = [ids for ids, _ in one.batches(0)]
    assert len(epoch0) == len(one)
    for epoch in (0, 1):
        a = np.concatenate([ids for ids, _ in one.batches(epoch)])
        b = np.concatenate([ids for ids, _ in two.batches(epoch)])
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, one.order(epoch))
        np.testing.assert_array_equal(np.sort(a), items)  # every item exactly once
    assert not np.array_equal(one.order(0), one.order(1))
    assert not np.array_equal(one.order(0), stream(6).order(0))
    # the values are those of the items
    ids, values = next(one.batches(1))
    np.testing.assert_array_equal(values, data.values.reshape(1600, -1)[ids])
    # resumed mid-epoch: the same batches, and the buffers before are not read
    reads = _counting(monkeypatch)
    resumed = [ids for ids, _ in one.batches(0, start=20)]
    assert all(np.array_equal(a, b) for a, b in zip(resumed, epoch0[20:], strict=True))
    first = min(start for start, _ in reads)
    assert len(reads) < 32 and first > 0


def test_the_stream_buffer_is_bounded(blob_store, monkeypatch):
    data = load(blob_store, chunks="auto")["x"]
    stream = BlockShuffle(data, batch_size=40, seed=0, block_pairs=50, buffer_blocks=2)
    reads = _counting(monkeypatch)
    buffers = []
    fill = stream_module._fill

    def recorded(out, data, items, size):
        buffers.append(len(out))
        return fill(out, data, items, size)

    monkeypatch.setattr(stream_module, "_fill", recorded)
    seen = sum(len(ids) for ids, _ in stream.batches(0))
    assert seen == 1600
    assert max(buffers) <= 2 * 50 * 2 and len(buffers) == 8
    assert stream.buffer_items == 2 * 50 * 2 + 39
    assert stream.buffer_items * stream.item_bytes < 200 * stream.row_bytes
    assert all(stop - start <= 50 for start, stop in reads) and len(reads) == 16  # each once
    np.testing.assert_array_equal(
        read_items(data, [5, 0, 1599]), data.values.reshape(1600, -1)[[5, 0, 1599]]
    )


# -- image training and reduction, streamed --------------------------------------------------
def test_streamed_training_and_reduction(blobs, blob_store, tmp_path):
    from pyrocrl.inference.reduce import fit_image_vae, reduce

    lazy = load(blob_store, chunks="auto")
    settings = dict(dim=2, epochs=3.0, batch_size=32, channels=(8, 8), seed=0)
    vae, report = fit_image_vae(lazy, buffer_blocks=3, **settings)
    assert is_lazy(lazy) and report["steps"] == 3 * (report["images"] // 32)
    in_memory = fit_image_vae(blobs, **settings)[1]  # learns as well as from memory
    assert report["mse"] < 0.1 and in_memory["mse"] < 0.1
    codes = reduce(vae, lazy)
    eager = reduce(vae, blobs)
    np.testing.assert_allclose(codes["x"].values, eager["x"].values, rtol=1e-5, atol=1e-5)
    assert codes.drop_vars("x").identical(eager.drop_vars("x"))
    again, _ = fit_image_vae(lazy, buffer_blocks=3, **settings)  # the same stream and fit
    for key, value in vae.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value, rtol=0, atol=0)


def test_streamed_training_resumes_to_the_same_weights(blob_store, tmp_path):
    from pyrocrl.inference.reduce import fit_image_vae

    lazy = load(blob_store, chunks="auto")
    settings = dict(dim=2, epochs=1.6, max_images=None, batch_size=32, channels=(4, 4))
    settings.update(seed=3, buffer_blocks=2)
    reference, _ = fit_image_vae(lazy, **settings)
    path = tmp_path / "vae.ckpt"
    with svi_interrupted_after(13):
        fit_image_vae(lazy, checkpoint=path, checkpoint_every=5, **settings)
    pyro.clear_param_store()
    resumed, report = fit_image_vae(lazy, checkpoint=path, checkpoint_every=5, **settings)
    assert report["resumed_at"] == 10 and report["steps"] > 30  # on into the second epoch
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=0, atol=0)


def test_cli_reads_and_writes_zarr(tmp_path, capsys):
    images, codes = tmp_path / "circuit.zarr", tmp_path / "codes.zarr"
    argv = ["simulate", "causalcircuit", "--pairs", "600", "--resolution", "16"]
    assert main([*argv, "--workers", "1", "-o", str(images)]) == 0
    assert "600 pairs of 16×16×3 images" in capsys.readouterr().out
    assert images.is_dir() and load(images).sizes["pair"] == 600
    assert main(["info", str(images)]) == 0
    assert "600 pairs" in capsys.readouterr().out
    argv = ["reduce", str(images), "--dim", "2", "--epochs", "0.1", "-o", str(codes)]
    assert main(argv) == 0
    assert "600 pairs of 2-dimensional observations" in capsys.readouterr().out
    assert load(codes).attrs["reduced_from"] == "images"
    assert main(argv) == 0  # the store is replaced
    capsys.readouterr()
    assert main(["fit", "--data", str(images), "-o", str(tmp_path / "run")]) == 1
    assert "reduce them to features first" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["circuit.zarr", "codes.vae.pt", "codes.zarr"]
    assert Path(codes).is_dir()
