"""pyrocrl: causal representation learning from weakly supervised pairs, as Pyro programs."""

from pyrocrl._version import __version__
from pyrocrl.data import describe, load, save, simulate, simulate_pairs
from pyrocrl.errors import DatasetError, PyrocrlError

__all__ = [
    "DatasetError",
    "PyrocrlError",
    "__version__",
    "describe",
    "load",
    "save",
    "simulate",
    "simulate_pairs",
]
