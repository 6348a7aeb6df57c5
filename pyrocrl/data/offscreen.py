"""Offscreen MuJoCo rendering shared by the image simulators.

Two things every rendered dataset needs: MuJoCo imported with an offscreen OpenGL backend
(EGL unless the user chose one, with errors that name the missing package), and a pool of
rendering processes. A scene turns rows of floats (its state) into images; the pool sends
chunks of rows to workers and reads their images back in order.

Workers are plain subprocesses (``python -m MODULE ARGS…``), each with its own OpenGL
context, fed chunks of rows over a pipe: unlike multiprocessing's spawn they never re-run the
caller's script, so no ``if __name__ == "__main__"`` guard is needed, in scripts or
notebooks. A scene module serves with :func:`serve` from its ``__main__`` block.
"""

__all__ = ["OffscreenScene", "check_states", "import_mujoco", "look_at", "render_rows", "serve"]

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from pyrocrl.errors import RenderingError

GL_HINT = (
    "MuJoCo could not open an offscreen OpenGL context with MUJOCO_GL={backend!r}: for EGL "
    "install Debian's 'libegl1' and 'libgl1-mesa-dri' (the default), for OSMesa install "
    "Debian's 'libosmesa6' and set MUJOCO_GL=osmesa (MUJOCO_GL must be set before mujoco is "
    "first imported)"
)

# MuJoCo reads MUJOCO_GL once, when it is first imported: ask for offscreen EGL unless the
# user chose a backend, and remember whether someone imported it before we could ask.
_GL_CHOSEN_LATE = "mujoco" in sys.modules and "MUJOCO_GL" not in os.environ
os.environ.setdefault("MUJOCO_GL", "egl")


def gl_error() -> RenderingError:
    """The error for a MuJoCo that cannot open an offscreen OpenGL context."""
    if _GL_CHOSEN_LATE:
        return RenderingError(
            "mujoco was imported before pyrocrl's renderers without MUJOCO_GL set, so it has "
            "no offscreen OpenGL backend: set MUJOCO_GL=egl (or osmesa) in the environment, "
            "or import pyrocrl before mujoco"
        )
    return RenderingError(GL_HINT.format(backend=os.environ.get("MUJOCO_GL")))


def import_mujoco(install_hint: str) -> Any:
    """``mujoco``, or a :class:`~pyrocrl.errors.RenderingError` saying what to install."""
    try:
        import mujoco
    except ImportError as error:
        raise RenderingError(install_hint) from error
    except Exception as error:  # the GL backend named by MUJOCO_GL fails to load
        raise gl_error() from error
    return mujoco


def look_at(eye: Sequence[float], aim: Sequence[float]) -> list[float]:
    """MuJoCo ``xyaxes`` of a camera at ``eye`` looking at ``aim``, image x along world x."""
    forward = np.subtract(aim, eye) / np.linalg.norm(np.subtract(aim, eye))
    right = np.array([1.0, 0.0, 0.0])
    up = np.cross(right, forward)
    return [*right, *(up / np.linalg.norm(up))]


def check_states(state: Any, width: int, names: str) -> np.ndarray:
    """States ``(N, width)`` as float64, each entry finite and in ``[0, 1]``; ``names`` says
    what the columns are, for the error."""
    state = np.asarray(state, dtype=np.float64)
    if state.ndim != 2 or state.shape[1] != width:
        raise ValueError(f"states must have shape (N, {width}), got {state.shape}")
    if not np.isfinite(state).all() or state.min(initial=0) < 0 or state.max(initial=0) > 1:
        raise ValueError(f"states must be finite and lie in [0, 1] ({names})")
    return state


class OffscreenScene:
    """What every MuJoCo scene shares: an offscreen renderer of its compiled ``model`` at
    ``resolution`` pixels a side, drawn without skybox, reflections, shadows, haze or fog,
    and freed by ``close()`` (or by leaving the scene as a context manager)."""

    model: Any
    resolution: int
    _renderer: Any = None

    def _open_renderer(self, mujoco: Any) -> None:
        try:
            self._renderer = mujoco.Renderer(self.model, self.resolution, self.resolution)
        except Exception as error:
            raise gl_error() from error
        flags = self._renderer.scene.flags
        for flag in ("SKYBOX", "REFLECTION", "SHADOW", "HAZE", "FOG"):
            flags[getattr(mujoco.mjtRndFlag, f"mjRND_{flag}")] = 0

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the pool of rendering processes ---------------------------------------------------------
_HEADER = 8  # bytes of the row count that precedes each chunk


class _Worker:
    def __init__(self, command: Sequence[str], frame: int) -> None:
        self.frame = frame
        env = {**os.environ, "LP_NUM_THREADS": os.environ.get("LP_NUM_THREADS", "1")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", *command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )

    def send(self, rows: np.ndarray) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(len(rows).to_bytes(_HEADER, "little"))
        self.process.stdin.write(np.ascontiguousarray(rows, dtype=np.float64).tobytes())
        self.process.stdin.flush()

    def receive(self, count: int) -> bytes:
        assert self.process.stdout is not None
        data = self.process.stdout.read(count * self.frame)
        if len(data) != count * self.frame:
            self.process.kill()
            assert self.process.stderr is not None
            detail = self.process.stderr.read().decode(errors="replace").strip()
            lines = detail.splitlines()
            raise RenderingError(
                f"a rendering process failed: {lines[-1] if lines else 'no message'}"
            )
        return data

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


def serve(make_scene: Callable[[], Any], draw: Callable[[Any, np.ndarray], np.ndarray]) -> None:
    """A worker's loop: chunks of rows on stdin, ``draw(scene, rows)``'s images on stdout.

    The row width is the first argument after the module on the command line, the scene's
    own arguments follow (see :func:`render_rows`); ``make_scene`` builds the scene once.
    """
    width = int(sys.argv[1])
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything a library prints goes to stderr, not into the images
    try:
        scene = make_scene()
    except RenderingError as error:
        print(error, file=sys.stderr)
        raise SystemExit(1) from None
    source = sys.stdin.buffer
    while header := source.read(_HEADER):
        count = int.from_bytes(header, "little")
        rows = np.frombuffer(source.read(count * 8 * width), dtype=np.float64)
        channel.write(np.ascontiguousarray(draw(scene, rows.reshape(count, width))).tobytes())
        channel.flush()


def render_rows(
    rows: np.ndarray,
    draw_here: Callable[[np.ndarray], np.ndarray],
    command: Sequence[str],
    image_shape: Sequence[int],
    *,
    workers: int | None,
    chunk: int = 256,
    progress: bool | None = None,
) -> Iterator[np.ndarray]:
    """Images of ``rows`` ``(N, w)`` in parts of ``chunk`` rows, in order.

    With one worker (or one part) each part is ``draw_here(part)`` in this process; else the
    parts go to ``workers`` processes started as ``python -m MODULE w ARGS…`` for
    ``command = (MODULE, *ARGS)``, each with up to two parts in flight.

    :param image_shape: the shape of one image, ``(H, W, 3)``; images are ``uint8``.
    """
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    rows = np.asarray(rows, dtype=np.float64)
    parts = [rows[i : i + chunk] for i in range(0, len(rows), chunk)]
    show = len(parts) > 4 if progress is None else progress
    bar = tqdm(total=len(rows), unit="image", desc="render", disable=None if show else True)
    with bar:
        if workers == 1 or len(parts) <= 1:
            for part in parts:
                yield draw_here(part)
                bar.update(len(part))
            return
        module, *args = command
        command = [module, str(rows.shape[1]), *args]
        workers = min(workers, len(parts))
        frame = int(np.prod(image_shape))
        pool = [_Worker(command, frame) for _ in range(workers)]
        try:
            ahead = 2 * workers
            for i, part in enumerate(parts[:ahead]):
                pool[i % workers].send(part)
            for i, part in enumerate(parts):
                data = pool[i % workers].receive(len(part))
                bar.update(len(part))
                if i + ahead < len(parts):
                    pool[(i + ahead) % workers].send(parts[i + ahead])
                yield np.frombuffer(data, dtype=np.uint8).reshape(len(part), *image_shape)
        finally:
            for worker in pool:
                worker.close()
