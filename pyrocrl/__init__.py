"""pyrocrl: causal representation learning from weakly supervised pairs, as Pyro programs."""

from pyrocrl._version import __version__
from pyrocrl.data import describe, load, save, simulate, simulate_pairs, simulate_splits
from pyrocrl.errors import (
    CheckpointError,
    DatasetError,
    NonFiniteError,
    PyrocrlError,
    RenderingError,
    TrainingError,
)
from pyrocrl.inference.fit import fit_ilcm, load_ilcm
from pyrocrl.inference.guides import ILCMGuide
from pyrocrl.inference.queries import (
    counterfactual,
    do,
    encode,
    generate,
    intervene,
    intervention_posterior,
)
from pyrocrl.models.elcm import ELCM
from pyrocrl.models.ilcm import ILCM

__all__ = [
    "ELCM",
    "ILCM",
    "CheckpointError",
    "DatasetError",
    "ILCMGuide",
    "NonFiniteError",
    "PyrocrlError",
    "RenderingError",
    "TrainingError",
    "__version__",
    "counterfactual",
    "describe",
    "do",
    "encode",
    "fit_ilcm",
    "generate",
    "intervene",
    "intervention_posterior",
    "load",
    "load_ilcm",
    "save",
    "simulate",
    "simulate_pairs",
    "simulate_splits",
]
