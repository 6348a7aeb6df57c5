"""Exceptions raised by pyrocrl."""

__all__ = [
    "CheckpointError",
    "DatasetError",
    "NonFiniteError",
    "PyrocrlError",
    "RenderingError",
    "TrainingError",
]


class PyrocrlError(Exception):
    """Base class of the errors pyrocrl raises on bad input or state."""


class DatasetError(PyrocrlError, ValueError):
    """A dataset (in memory or on disk) is not a well-formed pyrocrl dataset."""


class CheckpointError(PyrocrlError, ValueError):
    """A checkpoint file is missing, unreadable or not a pyrocrl checkpoint."""


class RenderingError(PyrocrlError, RuntimeError):
    """The CausalCircuit scene cannot be rendered on this machine (a package is missing)."""


class NonFiniteError(PyrocrlError, FloatingPointError):
    """A loss term or gradient is NaN or infinite."""


class TrainingError(PyrocrlError, RuntimeError):
    """Training cannot go on (a non-finite loss or gradient, or a bad checkpoint)."""
