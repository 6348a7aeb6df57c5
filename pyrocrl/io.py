"""Every file pyrocrl writes, and the checkpoints it reads.

Writing: :func:`atomic_write` is the one way a file comes into being. The content goes to a
temporary file beside the destination, which is renamed into place once complete, so an
interrupted or failed write (a full disk, ``kill -9``) leaves the previous file as it was;
:func:`atomic_directory` does the same for a directory (a Zarr store). The temporaries of
writers that died are removed by the next write into the same directory.
:func:`write_json`, :func:`write_netcdf`, :func:`write_zarr`, :func:`save_figure` and
:func:`save_checkpoint` are their shapes for the kinds of file pyrocrl writes.
:func:`directory_lock` keeps two runs from writing into one directory at once.

Reading: :func:`load_checkpoint` never executes code (``torch.load(weights_only=True)``),
and checks the format, its version and that every tensor in it is finite;
:func:`check_state_dict` compares a checkpoint's tensors with the module they are meant
for, naming every key and shape that differs.
"""

__all__ = [
    "atomic_directory",
    "atomic_write",
    "check_sizes",
    "check_state_dict",
    "directory_lock",
    "load_checkpoint",
    "on_cpu",
    "remove_stale_temporaries",
    "save_checkpoint",
    "save_figure",
    "write_json",
    "write_netcdf",
    "write_zarr",
]

import contextlib
import gc
import json
import os
import pickle
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from pyrocrl.errors import CheckpointError, PyrocrlError

CHECKPOINT_FORMAT = "pyrocrl.checkpoint"
CHECKPOINT_VERSION = 1

_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+\.tmp$")
"""Temporary files of :func:`atomic_write` (and directories of :func:`atomic_directory`):
``.NAME.PID.RANDOM.tmp``."""


def _raise_unchanged(error: BaseException, path: Any) -> None:
    """After a failed atomic write of ``path``: an operating-system error is raised again
    as one that names the path and says it is unchanged (others are left to the caller)."""
    if isinstance(error, OSError) and error.errno is not None:
        reason = error.strerror or str(error)
        raise OSError(error.errno, f"cannot write {path}: {reason}; it is unchanged") from error


def atomic_write(path: str | os.PathLike, write: Callable[[str], Any]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``.

    An interrupted or failed write never leaves a partial file under ``path``: the file
    there before, if any, stays as it was, and the temporary file is removed (or, after a
    ``kill -9``, by the next write into the directory).

    :raises PyrocrlError: if the directory of ``path`` does not exist, or ``path`` is a
        directory.
    :raises OSError: if writing fails (e.g. the disk is full); nothing is changed.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise PyrocrlError(f"cannot write {path}: directory {path.parent} does not exist")
    if path.is_dir():
        raise PyrocrlError(f"cannot write {path}: it is a directory; give a file name")
    remove_stale_temporaries(path.parent)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp"
    )
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException as error:
        gc.collect()  # the writer's half-written file objects close now, not at exit
        Path(tmp).unlink(missing_ok=True)
        _raise_unchanged(error, path)
        raise
    return path


@contextlib.contextmanager
def atomic_directory(
    path: str | os.PathLike, replaceable: Callable[[Path], bool] | None = None
) -> Iterator[Path]:
    """Yield a new empty directory beside ``path``; when the block ends without error it is
    renamed to ``path``, and when it fails (or is interrupted) it is removed.

    So a directory under ``path`` is always complete: one that was there before stays as it
    was until the new one is whole, and is then replaced (two renames; only a ``kill -9``
    between them, microseconds apart, would leave neither under ``path``, and the next
    write into the directory removes both).

    :param replaceable: called with an existing directory ``path`` before anything is
        written: whether it may be replaced (say, only a store of the same kind). ``None``:
        any directory may be.
    :raises PyrocrlError: if the parent of ``path`` does not exist, ``path`` is a file, or
        ``replaceable`` refuses the directory there.
    :raises OSError: if writing fails (e.g. the disk is full); ``path`` is unchanged.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise PyrocrlError(f"cannot write {path}: directory {path.parent} does not exist")
    if path.exists() and not path.is_dir():
        raise PyrocrlError(f"cannot write {path}: it is a file, and this writes a directory")
    if path.is_dir() and replaceable is not None and not replaceable(path):
        raise PyrocrlError(
            f"cannot write {path}: a directory of something else is there; remove it, or "
            "choose another name"
        )
    remove_stale_temporaries(path.parent)
    prefix = f".{path.name}.{os.getpid()}."
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=prefix, suffix=".tmp"))
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        if path.is_dir():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=prefix, suffix=".tmp"))
            os.replace(path, old)  # onto an empty directory: allowed
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException as error:
        gc.collect()  # the writer's half-written stores close now, not at exit
        shutil.rmtree(tmp, ignore_errors=True)
        _raise_unchanged(error, path)
        raise


def remove_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Remove the temporary files (and directories) that writers killed in ``directory``
    left behind (those of live processes stay); returns the removed paths."""
    removed = []
    for entry in Path(directory).iterdir():
        match = _TEMPORARY.match(entry.name)
        if not match or _alive(int(match["pid"])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
        elif entry.is_file():
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


LOCK_FILE = ".lock"
"""The lock file of a directory in use (:func:`directory_lock`)."""
_FRESH_LOCK_SECONDS = 30.0
"""A lock file without its owner's record is taken for one being written this long."""


@contextlib.contextmanager
def directory_lock(directory: str | os.PathLike, what: str = "run") -> Iterator[Path]:
    """Hold ``directory/.lock`` while the block runs: a second holder (another process)
    is refused. A lock left by a process that no longer runs (killed) is taken over.

    :raises PyrocrlError: if a live process holds the lock, naming it.
    """
    path = Path(directory) / LOCK_FILE
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            owner = _lock_owner(path)
            if owner is not None:
                raise PyrocrlError(
                    f"{directory} is in use by another {what} ({owner}); wait for it to end, or "
                    "choose another directory"
                ) from None
            path.unlink(missing_ok=True)  # its process is gone
    else:
        raise PyrocrlError(f"cannot lock {directory}: {path} keeps coming back")
    with os.fdopen(fd, "w") as file:
        json.dump({"pid": os.getpid(), "host": socket.gethostname(), "time": time.time()}, file)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def _lock_owner(path: Path) -> str | None:
    """Who holds the lock ``path`` (``None``: nobody alive)."""
    try:
        record = json.loads(path.read_text())
        pid, host = int(record["pid"]), str(record["host"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):  # being written, or damaged
        try:
            fresh = time.time() - path.stat().st_mtime < _FRESH_LOCK_SECONDS
        except FileNotFoundError:
            return None
        return "a process starting now" if fresh else None
    if host != socket.gethostname():
        return f"process {pid} on {host}; remove {path} if that run is gone"
    return f"process {pid}" if _alive(pid) else None


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    text = json.dumps(data, indent=2, sort_keys=False, default=_jsonable)
    return atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text + "\n"))


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def write_netcdf(data: Any, path: str | os.PathLike, **kwargs: Any) -> Path:
    """Write an xarray ``Dataset`` or ``DataTree`` as NetCDF-4 (h5netcdf), atomically;
    ``kwargs`` go to its ``to_netcdf``.

    The file is made in memory and then written out, so that HDF5 never holds a file that
    a full disk cut short (closing one can crash the interpreter). A dataset backed by dask
    (opened lazily, larger than memory) is instead written into the temporary file chunk by
    chunk.
    """
    if _lazy(data):
        return atomic_write(path, lambda tmp: data.to_netcdf(tmp, engine="h5netcdf", **kwargs))
    blob = data.to_netcdf(engine="h5netcdf", **kwargs)
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(blob))


def _lazy(data: Any) -> bool:
    """Whether an xarray ``Dataset`` or ``DataTree`` holds dask arrays."""
    datasets = [node.dataset for node in data.subtree] if hasattr(data, "subtree") else [data]
    return any(v.chunks is not None for ds in datasets for v in ds.variables.values())


def write_zarr(
    data: Any,
    path: str | os.PathLike,
    replaceable: Callable[[Path], bool] | None = None,
    **kwargs: Any,
) -> Path:
    """Write an xarray ``Dataset`` as a Zarr store (a directory), atomically
    (:func:`atomic_directory`); ``kwargs`` go to its ``to_zarr``. Dask-backed variables are
    written chunk by chunk."""
    with atomic_directory(path, replaceable) as tmp:
        data.to_zarr(tmp, mode="w", consolidated=False, **kwargs)
    return Path(path)


def save_figure(figure: Any, path: str | os.PathLike, **kwargs: Any) -> Path:
    """Save a Matplotlib figure (or anything with its ``savefig``) atomically, in the
    format its file name's suffix says (PNG without one); ``kwargs`` go to ``savefig``."""
    path = Path(path)
    kwargs.setdefault("format", path.suffix[1:].lower() or "png")
    return atomic_write(path, lambda tmp: figure.savefig(tmp, **kwargs))


def on_cpu(value: Any) -> Any:
    """``value`` (tensors in nested dicts, lists and tuples) with every tensor on the CPU,
    as checkpoints hold them."""
    if torch.is_tensor(value):
        return value.cpu()
    if isinstance(value, dict):
        return {k: on_cpu(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(on_cpu(v) for v in value)
    return value


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (tensors, numbers, strings, lists and dicts only) atomically.

    A run killed while saving leaves the previous checkpoint intact.
    """
    payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **payload}
    return atomic_write(Path(path), lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``: no code is executed.

    :raises FileNotFoundError: if there is no file.
    :raises CheckpointError: if the file is not a readable pyrocrl checkpoint (truncated,
        another kind of file, one that holds Python objects, a format version this pyrocrl
        does not read), or if a tensor in it holds NaN or infinite values.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(_unreadable(path, error)) from error
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a pyrocrl checkpoint")
    version = payload.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{path} has an invalid format version {version!r}")
    if version > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path} has format version {version}, written by a newer pyrocrl; this one reads "
            f"versions 1 to {CHECKPOINT_VERSION}"
        )
    for key, value in _tensors(payload):
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{path} holds NaN or infinite values in {key}")
    return payload


_MAGIC = {b"\x89HDF": "an HDF5 or NetCDF-4 file (a dataset?)", b"CDF\x01": "a NetCDF file"}
"""The first bytes of files that are often mistaken for checkpoints."""


def _unreadable(path: Path, error: Exception) -> str:
    """What a file that ``torch.load`` refused is, in one line."""
    with open(path, "rb") as file:
        head = file.read(4)
    if not head:
        return f"{path} is empty: not a checkpoint"
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            return f"{path} is not a checkpoint: it is {kind}"
    if not head.startswith((b"PK\x03\x04", b"\x80")):  # a torch archive, or a pickle
        return f"{path} is not a checkpoint: not a torch archive"
    text = str(error)
    if "Weights only load failed" in text or isinstance(error, pickle.UnpicklingError):
        return (
            f"{path} is not a pyrocrl checkpoint: it holds Python objects, and pyrocrl reads "
            "only tensors and plain data from checkpoints (loading objects could run code)"
        )
    if "zip archive" in text or "central directory" in text or isinstance(error, EOFError):
        return f"{path} is truncated or corrupt: not a complete checkpoint archive"
    first = text.strip().splitlines()[0][:200] if text.strip() else ""
    return f"cannot read checkpoint {path}: {type(error).__name__}: {first}"


def _tensors(value: Any, key: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """``(key path, tensor)`` of every tensor in a nested payload."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _tensors(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _tensors(v, f"{key}[{i}]")
    elif isinstance(value, torch.Tensor):
        yield key, value


def check_state_dict(
    module: torch.nn.Module, state: Any, source: str | os.PathLike, what: str = "model"
) -> None:
    """Check that ``state`` holds exactly the tensors, of the same shapes, that
    ``module.load_state_dict`` needs.

    :param source: the file ``state`` came from; :param what: its part (for the message).
    :raises CheckpointError: naming the missing and unexpected keys and the shapes that
        differ (the first few of each).
    """
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{source}: the {what} state is not a dictionary of tensors")
    expected = module.state_dict()
    problems = []
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    if missing:
        problems.append(f"missing {_few(missing)}")
    if extra:
        problems.append(f"unexpected {_few(extra)}")
    shapes = [
        f"{k} {_shape(state[k])} where {tuple(v.shape)} is needed"
        for k, v in expected.items()
        if k in state and (not torch.is_tensor(state[k]) or state[k].shape != v.shape)
    ]
    if shapes:
        problems.append(f"shape of {_few(shapes)}")
    if problems:
        raise CheckpointError(
            f"{source}: the {what} state does not match its configuration: {'; '.join(problems)}"
        )


def check_sizes(
    config: Mapping[str, Any],
    names: tuple[str, ...],
    state: Any,
    source: str | os.PathLike,
    what: str = "model",
) -> None:
    """Check the sizes a checkpoint's configuration gives (``config[name]``: a whole number
    or a list of them) before anything is built from it: each must be a positive whole
    number that some tensor of ``state`` has as a dimension. A tampered size is refused
    here, instead of allocating a model of that size.

    :raises CheckpointError: naming the size.
    """
    dims = {int(d) for _, tensor in _tensors(state) for d in tensor.shape}
    for name in names:
        value = config.get(name)
        for size in value if isinstance(value, list | tuple) else [value]:
            if not isinstance(size, int) or isinstance(size, bool) or size < 1:
                raise CheckpointError(
                    f"{source}: the {what} configuration's {name} must be a positive whole "
                    f"number (or a list of them), got {value!r}"
                )
            if size not in dims:
                raise CheckpointError(
                    f"{source}: the {what} configuration's {name} = {value!r} does not match "
                    f"its tensors (none has a dimension of {size})"
                )


def _shape(value: Any) -> str:
    return str(tuple(value.shape)) if torch.is_tensor(value) else f"(a {type(value).__name__})"


def _few(items: list[str], count: int = 3) -> str:
    more = f" and {len(items) - count} more" if len(items) > count else ""
    return ", ".join(items[:count]) + more
