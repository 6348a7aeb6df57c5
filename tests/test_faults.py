"""Fault injection through every command of the CLI: bad files, bad flags, damaged and
hostile checkpoints, runs that do not match, a full disk.

Each case of :data:`CASES` runs ``pyrocrl`` in-process and asserts the exit status, one
line on stderr that names the problem, no traceback, and that no file that was there before
changed (nor any new one appeared). Killed runs are in ``test_kills.py``.
"""

import contextlib
import errno
import hashlib
import io
import os
import re
import shlex
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from pyrocrl.cli import main
from pyrocrl.data import load, pairs_dataset, save
from pyrocrl.io import load_checkpoint


def _raw(ds: xr.Dataset, path: Path) -> None:
    """Write ``ds`` as it is, without pyrocrl's checks (complex numbers are an HDF5
    extension of NetCDF-4)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ds.to_netcdf(path, engine="h5netcdf", invalid_netcdf=True)


def _tamper(source: dict, path: Path, change) -> None:
    payload = {k: dict(v) if isinstance(v, dict) else v for k, v in source.items()}
    change(payload)
    torch.save(payload, path)


class _Hostile:
    """Unpickling it would create a file: loading must never do so."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """Datasets, a briefly fitted run, and damaged copies of both."""
    root = tmp_path_factory.mktemp("world")
    quiet = contextlib.redirect_stdout(io.StringIO())
    with quiet, contextlib.redirect_stderr(io.StringIO()):
        assert main(["simulate", "--n", "2", "--pairs", "300", "-o", str(root / "pairs.nc")]) == 0
        assert main(["simulate", "--n", "3", "--pairs", "300", "-o", str(root / "pairs3.nc")]) == 0
        fit = ["fit", "--data", str(root / "pairs.nc"), "--recipe-scale", "0.05"]
        assert main([*fit, "-o", str(root / "run")]) == 0
    ds = load(root / "pairs.nc")
    x = ds["x"].values
    bad = {
        "complex.nc": ds.assign(x=ds["x"].astype(complex)),
        "badversion.nc": ds.assign_attrs(format_version="abc"),
        "nan.nc": ds.assign(
            x=(ds["x"].dims, np.where(np.arange(x.size).reshape(x.shape) == 7, np.nan, x))
        ),
        "noformat.nc": ds.assign_attrs(pyrocrl_format="other"),
        "target.nc": ds.assign(target=ds["target"] + 5),
        "intx.nc": ds.assign(x=(ds["x"] * 100).astype(np.int64)),
        "flat.nc": ds.assign(x=(ds["x"].dims, np.stack([x[..., 0], np.ones_like(x[..., 1])], -1))),
    }
    for name, value in bad.items():
        _raw(value, root / name)
    save(ds.isel(pair=slice(0, 1)), root / "onepair.nc")
    save(ds.isel(pair=slice(0, 9)), root / "ninepairs.nc")
    save(pairs_dataset(x[:, 0], x[:, 1]), root / "bare.nc")
    (root / "text.nc").write_text("not a dataset\n")
    (root / "empty.nc").write_bytes(b"")
    whole = (root / "pairs.nc").read_bytes()
    (root / "trunc.nc").write_bytes(whole[: len(whole) // 2])

    ck = load_checkpoint(root / "run" / "checkpoint.pt")
    key = "likelihood.input_transform"
    changes = {
        "shape.pt": lambda p: p["model"].__setitem__(key, torch.zeros(3, 3)),
        "dimx.pt": lambda p: p["model_config"].__setitem__("dim_x", 7),
        "n.pt": lambda p: p["model_config"].__setitem__("n", 5),
        "missing.pt": lambda p: p["model"].pop(key),
        "extra.pt": lambda p: p["model"].__setitem__("bogus", torch.zeros(1)),
        "hidden.pt": lambda p: p["model_config"].__setitem__("hidden", [10**9, 10**9]),
        "guidehidden.pt": lambda p: p["guide_config"].__setitem__("hidden", [-4]),
        "nan.pt": lambda p: p["model"].__setitem__(key, p["model"][key] * float("nan")),
        "inf.pt": lambda p: p["guide"].update(
            {k: v * float("inf") for k, v in p["guide"].items() if v.is_floating_point()}
        ),
        "version.pt": lambda p: p.__setitem__("version", 99),
        "strversion.pt": lambda p: p.__setitem__("version", "abc"),
        "noconfig.pt": lambda p: p.pop("model_config"),
        "strdim.pt": lambda p: p["model_config"].__setitem__("dim_x", "ten"),
        "likelihood.pt": lambda p: p["model_config"].__setitem__("likelihood", "cauchy"),
        "noguide.pt": lambda p: p.pop("guide"),
    }
    for name, change in changes.items():
        _tamper(ck, root / name, change)
    torch.save({"format": "pyrocrl.checkpoint", "x": _Hostile(root / "pwned")}, root / "evil.pt")
    torch.save([1, 2, 3], root / "list.pt")
    torch.save(
        {"format": "pyrocrl.checkpoint", "version": 1, "kind": "image_vae"}, root / "vae.pt"
    )
    whole = (root / "run" / "checkpoint.pt").read_bytes()
    (root / "trunc.pt").write_bytes(whole[: len(whole) // 2])
    (root / "empty.pt").write_bytes(b"")
    return root


# (arguments, exit status, what the message must say); {w}: the world, {o}: the outputs,
# where existing.nc, existing.json and run/ (the world's run) are already
CASES = [
    # simulate
    ("simulate --n 0", 2, "--n: must be at least 1"),
    ("simulate --pairs 0", 2, "--pairs: must be at least 1"),
    ("simulate --pairs many", 2, "expected a whole number"),
    ("simulate toy2d --n 3", 1, "exactly 2 causal variables"),
    ("simulate --pairs 10 -o {o}/nodir/x.nc", 1, "does not exist"),
    ("simulate --pairs 10 -o {o}", 1, "is a directory"),
    ("simulate --pairs 10 -o {o}/new.nc --plot {o}/nodir/p.png", 1, "does not exist"),
    ("simulate chamber --noise nan -o {o}/new.nc", 2, "--noise: must be a finite number"),
    ("simulate chamber --noise -1 -o {o}/new.nc", 2, "--noise: must be a finite number"),
    ("simulate scaling --mode images -o {o}/new.nc", 1, "options of chamber"),
    # fit: data
    ("fit --data {w}/complex.nc --n 2 -o {o}/new", 1, "got complex128"),
    ("fit --data {w}/badversion.nc -o {o}/new", 1, "invalid format version 'abc'"),
    ("fit --data {w}/nan.nc -o {o}/new", 1, "1 NaN"),
    ("fit --data {w}/noformat.nc -o {o}/new", 1, "not a pyrocrl dataset"),
    ("fit --data {w}/target.nc -o {o}/new", 1, "'target' must lie in 0..2"),
    ("fit --data {w}/flat.nc -o {o}/new", 1, "constant"),
    ("fit --data {w}/onepair.nc -o {o}/new", 1, "leaves an empty part"),
    ("fit --data {w}/ninepairs.nc -o {o}/new", 1, "fewer than one batch"),
    ("fit --data {w}/bare.nc -o {o}/new", 1, "no ground truth: give the number"),
    ("fit --data {w}/text.nc -o {o}/new", 1, "not a NetCDF-4 file"),
    ("fit --data {w}/empty.nc -o {o}/new", 1, "not a NetCDF-4 file"),
    ("fit --data {w}/trunc.nc -o {o}/new", 1, "truncated"),
    ("fit --data {w}/absent.nc -o {o}/new", 1, "no dataset file"),
    ("fit --data {w} -o {o}/new", 1, "is a directory"),
    ("fit --data {w}/pairs.nc --test {w}/pairs3.nc -o {o}/new", 1, "test pairs"),
    ("fit --data {w}/pairs.nc --test {w}/nan.nc -o {o}/new", 1, "NaN"),
    ("fit --data {w}/pairs.nc --n 20 -o {o}/new", 1, "cannot be identified from 2 features"),
    ("fit --pairs 10 -o {o}/new", 1, "fewer than one batch"),
    # fit: flags
    ("fit --recipe-scale nan -o {o}/new", 2, "--recipe-scale: must be a finite number > 0"),
    ("fit --recipe-scale inf -o {o}/new", 2, "--recipe-scale: must be a finite number > 0"),
    ("fit --recipe-scale 0 -o {o}/new", 2, "--recipe-scale: must be a finite number > 0"),
    ("fit --recipe-scale -1 -o {o}/new", 2, "--recipe-scale: must be a finite number > 0"),
    ("fit --candidates 2 --select-epoch nan -o {o}/new", 2, "--select-epoch: must be a finite"),
    ("fit --candidates 2 --select-epoch 9 -o {o}/new", 1, "select_epoch < epochs"),
    ("fit --checkpoint-every 0 -o {o}/new", 2, "--checkpoint-every: must be at least 1"),
    ("fit --recipe slow -o {o}/new", 1, "unknown recipe 'slow'"),
    ("fit --seeds 0 -o {o}/new", 2, "--seeds: must be at least 1"),
    ("fit -o {o}/existing.json", 1, "it is a file, not a directory"),
    # fit: resuming another run, or a run in use
    ("fit --data {w}/pairs.nc --recipe-scale 0.05 --seed 1 -o {o}/run", 1, "seed 0 there, 1 here"),
    ("fit --data {w}/pairs3.nc --recipe-scale 0.05 -o {o}/run", 1, "other training pairs"),
    ("fit --data {w}/pairs.nc --recipe-scale 0.05 --backend jax -o {o}/run", 1, "backend 'torch'"),
    ("fit --data {w}/pairs.nc --recipe-scale 0.05 --model elcm -o {o}/run", 1, "model 'ilcm'"),
    ("fit --data {w}/pairs.nc --recipe-scale 0.1 -o {o}/run", 1, "another recipe: name, epochs"),
    ("fit --data {w}/pairs.nc --recipe-scale 0.05 -o {o}/locked", 1, "in use by another fit"),
    # query
    (
        "query {w}/run/checkpoint.pt --counterfactual --data {w}/pairs.nc --do z2=nan -o {o}/q.nc",
        1,
        "finite number",
    ),
    (
        "query {w}/run/checkpoint.pt --counterfactual --data {w}/pairs.nc --do z2=inf -o {o}/q.nc",
        1,
        "finite number",
    ),
    (
        "query {w}/run/checkpoint.pt --counterfactual --data {w}/pairs.nc --do z9=1 -o {o}/q.nc",
        1,
        "cannot intervene on z9",
    ),
    (
        "query {w}/run/checkpoint.pt --counterfactual --data {w}/pairs.nc --do z2 -o {o}/q.nc",
        1,
        "write it as zK=VALUE",
    ),
    (
        "query {w}/run/checkpoint.pt --counterfactual --data {w}/pairs.nc -o {o}/q.nc",
        1,
        "needs an intervention",
    ),
    (
        "query {w}/run/checkpoint.pt --encode --data {w}/pairs3.nc -o {o}/q.nc",
        1,
        "expects 2 features",
    ),
    ("query {w}/run/checkpoint.pt --encode -o {o}/q.nc", 1, "needs observations"),
    (
        "query {w}/run/checkpoint.pt --encode --data {w}/pairs.nc -o {o}/nodir/q.nc",
        1,
        "does not exist",
    ),
    ("query {w}/run/checkpoint.pt --encode --data {w}/pairs.nc -o {o}", 1, "is a directory"),
    (
        "query {w}/run/checkpoint.pt --encode --samples 3 --data {w}/pairs.nc -o {o}/q.nc",
        1,
        "--samples draws counterfactuals",
    ),
    ("query {w}/run/checkpoint.pt --pairs --size 0 -o {o}/q.nc", 2, "--size: must be at least 1"),
    ("query {w}/run/checkpoint.pt -o {o}/q.nc", 2, "one of the arguments"),
    # query: damaged, tampered and hostile checkpoints
    ("query {w}/shape.pt --pairs -o {o}/q.nc", 1, "shape of likelihood.input_transform (3, 3)"),
    ("query {w}/dimx.pt --pairs -o {o}/q.nc", 1, "dim_x = 7 does not match its tensors"),
    ("query {w}/n.pt --pairs -o {o}/q.nc", 1, "n = 5 does not match its tensors"),
    ("query {w}/missing.pt --pairs -o {o}/q.nc", 1, "missing likelihood.input_transform"),
    ("query {w}/extra.pt --pairs -o {o}/q.nc", 1, "unexpected bogus"),
    ("query {w}/hidden.pt --pairs -o {o}/q.nc", 1, "hidden = [1000000000, 1000000000] does not"),
    ("query {w}/guidehidden.pt --pairs -o {o}/q.nc", 1, "guide configuration's hidden must be"),
    ("query {w}/nan.pt --pairs -o {o}/q.nc", 1, "NaN or infinite values in model.likelihood"),
    ("query {w}/inf.pt --pairs -o {o}/q.nc", 1, "NaN or infinite values in guide."),
    ("query {w}/version.pt --pairs -o {o}/q.nc", 1, "format version 99, written by a newer"),
    ("query {w}/strversion.pt --pairs -o {o}/q.nc", 1, "invalid format version 'abc'"),
    ("query {w}/noconfig.pt --pairs -o {o}/q.nc", 1, "holds no model configuration"),
    ("query {w}/strdim.pt --pairs -o {o}/q.nc", 1, "dim_x must be a positive whole number"),
    ("query {w}/likelihood.pt --pairs -o {o}/q.nc", 1, "builds no model"),
    ("query {w}/noguide.pt --pairs -o {o}/q.nc", 1, "holds no guide state"),
    ("query {w}/evil.pt --pairs -o {o}/q.nc", 1, "holds Python objects"),
    ("query {w}/list.pt --pairs -o {o}/q.nc", 1, "is not a pyrocrl checkpoint"),
    ("query {w}/vae.pt --pairs -o {o}/q.nc", 1, "holds no model configuration"),
    ("query {w}/trunc.pt --pairs -o {o}/q.nc", 1, "truncated or corrupt"),
    ("query {w}/empty.pt --pairs -o {o}/q.nc", 1, "is empty"),
    ("query {w}/pairs.nc --pairs -o {o}/q.nc", 1, "an HDF5 or NetCDF-4 file"),
    ("query {w}/absent.pt --pairs -o {o}/q.nc", 1, "no checkpoint at"),
    # graph
    ("graph {w}/run/checkpoint.pt --data {w}/pairs3.nc -o {o}/g.json", 1, "expects 2 features"),
    (
        "graph {w}/run/checkpoint.pt --data {w}/pairs.nc --method elcm -o {o}/g.json",
        1,
        "no explicit graph",
    ),
    ("graph {w}/run/checkpoint.pt --data {w}/pairs.nc -o {o}/nodir/g.json", 1, "does not exist"),
    (
        "graph {w}/run/checkpoint.pt --data {w}/pairs.nc -o {o}/g.json --plot {o}",
        1,
        "is a directory",
    ),
    ("graph {w}/nan.pt --data {w}/pairs.nc -o {o}/g.json", 1, "NaN or infinite"),
    # check
    ("check {w}/run/checkpoint.pt --data {w}/pairs3.nc -o {o}/check", 1, "expects 2 features"),
    (
        "check {w}/run/checkpoint.pt --data {w}/pairs.nc --samples 10 -o {o}/check",
        2,
        "must be ≥ 25",
    ),
    (
        "check {w}/run/checkpoint.pt --data {w}/pairs.nc --scm --graph none -o {o}/check",
        1,
        "--scm needs a graph",
    ),
    ("check {w}/run/checkpoint.pt --data {w}/pairs.nc -o {o}/existing.nc", 1, "it is a file"),
    ("check {w}/evil.pt --data {w}/pairs.nc -o {o}/check", 1, "holds Python objects"),
    # reduce
    ("reduce {w}/pairs.nc -o {o}/codes.nc", 1, "holds no images"),
    (
        "reduce {w}/pairs.nc --epochs nan -o {o}/codes.nc",
        2,
        "--epochs: must be a finite number > 0",
    ),
    ("reduce {w}/pairs.nc --dim 0 -o {o}/codes.nc", 2, "--dim: must be at least 1"),
    ("reduce {w}/absent.nc -o {o}/codes.nc", 1, "no dataset file"),
    ("reduce {w}/pairs.nc -o {o}/nodir/codes.nc", 1, "does not exist"),
    # info
    ("info {w}", 1, "is a directory, not a dataset file"),
    ("info {w}/run/checkpoint.pt", 1, "not a NetCDF-4 file"),
    ("info {w}/noformat.nc", 1, "not a pyrocrl dataset"),
    ("info {w}/target.nc", 1, "'target' must lie in"),
    ("info {w}/badversion.nc", 1, "invalid format version"),
    ("info {w}/complex.nc", 1, "'x' must hold real numbers"),
    ("info {w}/intx.nc", 1, "'x' must hold real numbers"),
]


def _snapshot(root: Path) -> dict[str, str]:
    """Every file and directory under ``root``, with the hash of each file's content."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        if path.is_file()
        else "dir"
        for path in sorted(root.rglob("*"))
    }


@pytest.fixture
def outputs(tmp_path, world) -> Path:
    """A directory of earlier outputs, which no failing command may touch; ``locked`` is
    a run directory that a live process (this one) holds."""
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(world / "pairs.nc", out / "existing.nc")
    (out / "existing.json").write_text('{"kept": true}\n')
    shutil.copytree(world / "run", out / "run")
    (out / "locked").mkdir()
    (out / "locked" / ".lock").write_text(f'{{"pid": {os.getpid()}, "host": "{os.uname()[1]}"}}')
    return out


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    try:
        status = main(argv)
    except SystemExit as exit_:
        status = exit_.code
    return status, capsys.readouterr().err


def test_the_corpus_is_large_and_reaches_every_command():
    assert len(CASES) >= 50
    assert {case[0].split()[0] for case in CASES} == {
        "simulate",
        "fit",
        "query",
        "graph",
        "check",
        "reduce",
        "info",
    }


@pytest.mark.parametrize(("command", "status", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line_and_changes_nothing(
    command, status, message, world, outputs, capsys
):
    before, world_before = _snapshot(outputs), _snapshot(world)
    argv = shlex.split(command.format(w=world, o=outputs))
    result, err = run_cli(argv, capsys)
    assert result == status, err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert message in err, err
    assert _snapshot(outputs) == before
    assert _snapshot(world) == world_before  # the hostile pickle created nothing


# --- a full disk: a writer that fails half-way ----------------------------------------------


def _full_disk(monkeypatch, module, name):
    """Make ``module.name`` (a function writing to a path) write half a file, then fail as
    a full disk does."""

    def failing(*args, **kwargs):
        path = next(a for a in args if isinstance(a, str | os.PathLike))
        with open(path, "wb") as file:
            file.write(b"\0" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(module, name, failing)


@pytest.mark.parametrize(
    ("command", "writer"),
    [
        ("simulate --pairs 50 -o {o}/existing.nc", "bytes"),
        ("query {w}/run/checkpoint.pt --encode --data {w}/pairs.nc -o {o}/existing.nc", "bytes"),
        ("query {w}/run/checkpoint.pt --pairs --size 20 -o {o}/existing.nc", "bytes"),
        ("graph {w}/run/checkpoint.pt --data {w}/pairs.nc -o {o}/existing.json", "text"),
        (
            "graph {w}/run/checkpoint.pt --data {w}/pairs.nc -o {o}/g.json --plot {o}/existing.nc",
            "figure",
        ),
        ("fit --data {w}/pairs.nc --recipe-scale 0.05 -o {o}/run --fresh", "torch"),
        (
            "check {w}/run/checkpoint.pt --data {w}/pairs.nc --pairs 50 --samples 25 -o {o}/check",
            "bytes",
        ),
    ],
)
def test_a_full_disk_leaves_earlier_outputs_intact(
    command, writer, world, outputs, monkeypatch, capsys
):
    import matplotlib.figure

    if command.startswith("check"):
        (outputs / "check").mkdir()
        (outputs / "check" / "check.nc").write_bytes(b"an earlier check")
    if writer == "bytes":
        _full_disk(monkeypatch, Path, "write_bytes")
    elif writer == "text":
        _full_disk(monkeypatch, Path, "write_text")
    elif writer == "figure":
        _full_disk(monkeypatch, matplotlib.figure.Figure, "savefig")
    else:
        _full_disk(monkeypatch, torch, "save")
    before = _snapshot(outputs)
    result, err = run_cli(shlex.split(command.format(w=world, o=outputs)), capsys)
    assert result == 1, err
    assert "No space left on device" in err and "unchanged" in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    after = _snapshot(outputs)
    changed = {k for k in before if before[k] != after.get(k)}
    if command.startswith("fit"):  # --fresh removed the old results: the fit said so
        assert changed <= {
            "run/checkpoint.pt",
            "run/results.json",
            "run/training.png",
            "run/run.json",
        }
        assert not list((outputs / "run").glob(".*.tmp"))
    else:
        assert not changed
    assert not [k for k in after if k.endswith(".tmp")]


def test_writes_are_atomic_and_clean_up_after_killed_writers(tmp_path):
    from pyrocrl.io import atomic_write

    target = tmp_path / "result.json"
    target.write_text("old")
    dead = tmp_path / f".result.json.{2**22 + 12345}.abcd.tmp"  # no such process
    live = tmp_path / f".result.json.{os.getpid()}.efgh.tmp"  # a write under way
    dead.write_text("partial")
    live.write_text("partial")

    def interrupted(tmp):
        Path(tmp).write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, interrupted)
    assert target.read_text() == "old"
    assert not dead.exists() and live.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, live.name])
    atomic_write(target, lambda tmp: Path(tmp).write_text("new"))
    assert target.read_text() == "new"


def test_a_lock_of_a_dead_process_is_taken_over(tmp_path):
    from pyrocrl.errors import PyrocrlError
    from pyrocrl.io import LOCK_FILE, directory_lock

    (tmp_path / LOCK_FILE).write_text(f'{{"pid": {2**22 + 12345}, "host": "{os.uname()[1]}"}}')
    with directory_lock(tmp_path):
        with pytest.raises(PyrocrlError, match="in use by another run"):
            with directory_lock(tmp_path):
                pass
    assert not (tmp_path / LOCK_FILE).exists()


def test_check_exports_the_pairs_it_was_asked_for(world, tmp_path, capsys):
    from pyrocrl.inference.diagnostics import load_datatree

    argv = ["check", str(world / "run" / "checkpoint.pt"), "--data", str(world / "pairs.nc")]
    assert main([*argv, "--pairs", "200", "--samples", "25", "-o", str(tmp_path / "c")]) == 0
    assert load_datatree(tmp_path / "c" / "check.nc")["observed_data"].sizes["pair"] == 200


def test_counterfactual_samples_are_written(world, tmp_path):
    out = tmp_path / "cf.nc"
    argv = ["query", str(world / "run" / "checkpoint.pt"), "--counterfactual", "--do", "z1=0.5"]
    assert main([*argv, "--data", str(world / "pairs.nc"), "--samples", "4", "-o", str(out)]) == 0
    samples = load(out)["x_tilde_samples"]
    assert samples.dims == ("sample", "pair", "feature") and samples.shape == (4, 300, 2)
    assert np.isfinite(samples.values).all() and samples.std("sample").mean() > 0


@pytest.mark.parametrize(
    ("command", "missing", "message"),
    [
        ("fit --backend jax -o {o}/new", "numpyro", "pip install 'pyrocrl[jax]'"),
        ("fit --backend jax -o {o}/new", "jax", "pip install 'pyrocrl[jax]'"),
        ("simulate chamber --pairs 10 -o {o}/new.nc", "causalchamber", "pyrocrl[chamber]"),
    ],
)
def test_a_missing_extra_is_one_line(command, missing, message, outputs, monkeypatch, capsys):
    import sys

    for name in [m for m in sys.modules if m.split(".")[0] == missing] or [missing]:
        monkeypatch.setitem(sys.modules, name, None)  # import fails as if not installed
    before = _snapshot(outputs)
    result, err = run_cli(shlex.split(command.format(o=outputs)), capsys)
    assert result == 1 and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert _snapshot(outputs) == before


def test_a_file_size_limit_is_a_clean_failure(world, tmp_path):
    """Beyond ``ulimit -f`` a write fails (EFBIG); the command says so and exits 1, and
    the earlier file stays (HDF5 never holds the cut file, so nothing crashes at exit)."""
    import subprocess
    import sys

    existing = tmp_path / "pairs.nc"
    shutil.copy(world / "pairs.nc", existing)
    before = existing.read_bytes()

    argv = ["simulate", "--pairs", "20000", "-o", str(existing)]
    run = subprocess.run(  # at most 20 blocks of 1 KiB per file
        [
            "bash",
            "-c",
            'ulimit -f 20 && exec "$@"',
            "-",
            sys.executable,
            "-m",
            "pyrocrl.cli",
            *argv,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 1, run.stderr
    assert "File too large" in run.stderr and "unchanged" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert existing.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["pairs.nc"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p["state_dict"].pop("feature_loc"), "missing feature_loc"),
        (lambda p: p["config"].__setitem__("dim", 9), "dim = 9 does not match"),
        (lambda p: p["config"].__setitem__("resolution", 10**6), "resolution must be"),
        (lambda p: p["config"].__setitem__("channels", [10**9]), "channels = [1000000000]"),
        (lambda p: p["state_dict"]["feature_scale"].fill_(float("nan")), "NaN or infinite"),
        (lambda p: p.__setitem__("kind", "other"), "is not an image VAE"),
    ],
)
def test_a_tampered_image_vae_is_refused(change, message, tmp_path):
    from pyrocrl.errors import CheckpointError
    from pyrocrl.inference.reduce import load_image_vae, save_image_vae
    from pyrocrl.models.image_vae import ImageVAE

    path = tmp_path / "vae.pt"
    save_image_vae(ImageVAE(4, resolution=16, channels=(8, 8)), path)
    assert load_image_vae(path).dim == 4
    payload = load_checkpoint(path)
    change(payload)
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=re.escape(message)):
        load_image_vae(path)
