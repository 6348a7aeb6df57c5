"""Checking observations before a model sees them, for every backend.

Observations are arrays of shape ``(N, D)``: ``N`` observations (rows) of ``D`` features,
or, for training pairs, ``(N, 2, D)``: ``N`` pairs of two worlds. :func:`check_observations`
checks such an array — a NumPy array, a torch tensor, a JAX array or anything
``numpy.asarray`` reads — and raises a one-line ``ValueError`` that names the argument, the
expected shape and what is wrong. It converts nothing: each caller makes the array it
needs (``torch.as_tensor``, ``jnp.asarray``), so the same check serves the Pyro and the
NumPyro programs and imports neither torch nor JAX.
"""

__all__ = ["check_observations", "paired_rows"]

import sys
from typing import Any

import numpy as np


def check_observations(
    x: Any,
    name: str = "x",
    *,
    dim_x: int | None = None,
    pairs: bool = False,
    finite: bool = True,
    unpaired: bool = False,
) -> int:
    """Check observations and return their number ``N``.

    :param x: observations ``(N, D)``, or with ``pairs`` pairs ``(N, 2, D)``: a NumPy
        array, a torch tensor, a JAX array (traced ones too, with ``finite=False``) or a
        nested sequence of numbers.
    :param name: the argument's name, for the messages.
    :param dim_x: the number of features ``D`` the model expects (``None``: any).
    :param pairs: expect pairs ``(N, 2, D)`` (the two worlds on axis 1).
    :param finite: also check that every value is finite. This reads the values (a copy to
        the host for arrays on an accelerator); shape-only checks inside programs, which may
        run on traced arrays, pass ``False``.
    :param unpaired: with ``pairs``, allow unpaired observations: rows whose second world
        is all NaN (:func:`paired_rows`); every other value must still be finite.
    :returns: ``N``, the number of observations (or pairs).
    :raises ValueError: on a dtype other than real numbers (complex, or not numeric), a
        wrong number of dimensions or of worlds, a feature count other than ``dim_x``, or
        NaN or infinite values (with the number of rows, or pairs, that hold them).
    """
    expected = "(pairs, 2, features)" if pairs else f"(N, {'D' if dim_x is None else dim_x})"
    if not (hasattr(x, "shape") and hasattr(x, "dtype")):
        try:
            x = np.asarray(x)
        except (TypeError, ValueError) as error:  # e.g. rows of different lengths
            raise ValueError(f"{name} must be an array of shape {expected}: {error}") from None
    shape = tuple(int(s) for s in x.shape)
    kind = _kind(x.dtype)
    if kind == "c":
        raise ValueError(
            f"{name} must be an array of shape {expected} of real numbers, got complex dtype "
            f"{x.dtype}"
        )
    if kind not in ("b", "i", "u", "f"):
        raise ValueError(
            f"{name} must be an array of shape {expected} of real numbers, got dtype {x.dtype}"
        )
    ndim = 3 if pairs else 2
    if len(shape) != ndim:
        hint = ": for one observation, pass x[None]" if len(shape) == 1 and not pairs else ""
        raise ValueError(
            f"{name} must have shape {expected}, got {len(shape)} dimension(s), "
            f"shape {shape}{hint}"
        )
    if pairs and shape[1] != 2:
        raise ValueError(
            f"{name} must have shape {expected}, got {shape[1]} worlds on axis 1, shape {shape}"
        )
    if dim_x is not None and shape[-1] != dim_x:
        raise ValueError(
            f"{name} must have shape {expected}, got shape {shape}: the model expects "
            f"{dim_x} features per observation, not {shape[-1]}"
        )
    if finite and kind == "f":
        bad = _rows_not_finite(x, skip_unpaired=pairs and unpaired)
        if len(bad):
            unit = "pairs" if pairs else "rows"
            raise ValueError(
                f"{name} holds NaN or infinite values in {len(bad)} {unit} of {shape[0]} "
                f"(the first is {unit[:-1]} {bad[0]})"
            )
    return shape[0]


def _kind(dtype: Any) -> str:
    """NumPy's one-letter kind of a NumPy, JAX or torch dtype: ``b i u f c`` are numbers."""
    if hasattr(dtype, "is_floating_point"):  # a torch.dtype, told apart without torch
        return "c" if dtype.is_complex else "f" if dtype.is_floating_point else "i"
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        return "O"
    if dtype.kind == "V" and "float" in dtype.name:  # bfloat16 and float8 (ml_dtypes)
        return "f"
    return dtype.kind


def paired_rows(pairs: Any) -> np.ndarray:
    """Which rows of observations ``(N, 2, D)`` are pairs: ``(N,)`` booleans, ``False`` for
    an unpaired observation, a row whose second world is all NaN (how the pyrocrl format
    stores one, :func:`~pyrocrl.data.dataset.unpair`).

    >>> x = np.zeros((3, 2, 2)); x[1, 1] = np.nan
    >>> paired_rows(x).tolist()
    [True, False, True]
    """
    second = _numpy(pairs)[:, 1]
    if second.dtype.kind != "f":
        return np.ones(len(second), dtype=bool)
    return ~np.isnan(second).all(axis=tuple(range(1, second.ndim)))


def _numpy(x: Any) -> np.ndarray:
    torch = sys.modules.get("torch")  # a torch tensor is only possible once torch is loaded
    if torch is not None and torch.is_tensor(x):
        x = x.detach().cpu()
        return (x.float() if x.dtype == torch.bfloat16 else x).numpy()
    return np.asarray(x)


def _rows_not_finite(x: Any, skip_unpaired: bool = False) -> np.ndarray:
    """Indices of the rows (axis 0) that hold a NaN or an infinite value (with
    ``skip_unpaired``, not counting the NaN second world of an unpaired observation)."""
    values = _numpy(x)
    finite = np.isfinite(values).all(axis=tuple(range(1, values.ndim)))
    if skip_unpaired:
        unpaired = ~paired_rows(values)
        finite[unpaired] = np.isfinite(values[unpaired, 0]).all(axis=-1)
    return np.flatnonzero(~finite)
