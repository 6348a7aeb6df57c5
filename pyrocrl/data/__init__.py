"""Ground-truth simulators and the xarray dataset format of weakly supervised pairs."""

from pyrocrl.data.dataset import (
    FORMAT,
    FORMAT_VERSION,
    SCHEMA,
    images,
    load,
    pairs_dataset,
    pairs_only,
    save,
    unpair,
    validate,
)
from pyrocrl.data.simulators import (
    SIMULATORS,
    make_simulator,
    simulate,
    simulate_pairs,
    simulate_splits,
)
from pyrocrl.data.summary import describe

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "SCHEMA",
    "SIMULATORS",
    "describe",
    "images",
    "load",
    "make_simulator",
    "pairs_dataset",
    "pairs_only",
    "save",
    "simulate",
    "simulate_pairs",
    "simulate_splits",
    "unpair",
    "validate",
]
