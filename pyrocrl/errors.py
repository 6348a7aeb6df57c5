"""Exceptions raised by pyrocrl."""

__all__ = ["DatasetError", "PyrocrlError"]


class PyrocrlError(Exception):
    """Base class of the errors pyrocrl raises on bad input or state."""


class DatasetError(PyrocrlError, ValueError):
    """A dataset (in memory or on disk) is not a well-formed pyrocrl dataset."""
