"""Inference for latent causal models: guides, training, queries (``import pyrocrl.inference``).

The main names of each module, re-exported here: fitting and loading models
(:func:`fit_ilcm`, :func:`load_ilcm`), the guide (:class:`ILCMGuide`), the objective and
its training loop (:class:`PairELBO`, :class:`ILCMObjective`, :class:`Trainer`, recipes),
causal queries (:func:`do`, :func:`encode`, :func:`counterfactual`, …), graph discovery
(:func:`learn_graph`), evaluation (:func:`evaluate`) and the label-free agreement of
fits from several seeds (:func:`seed_agreement`, :func:`trust_report`). The JAX backend
(``pyrocrl.inference.svi_jax``, ``guides_jax``, ``queries_jax``) needs the optional
``jax`` extra and is not imported here; neither are the posterior checks
(``diagnostics``, ``scm_check``) and the image reduction (``reduce``), which have modules
of their own.
"""

from pyrocrl.inference.elbo import PairELBO, scale_latents
from pyrocrl.inference.evaluate import elbo_per_pair, evaluate
from pyrocrl.inference.fit import FitReport, fit_ilcm, load_ilcm
from pyrocrl.inference.graph import LearnedGraph, learn_graph
from pyrocrl.inference.guides import ILCMGuide
from pyrocrl.inference.objectives import ILCMObjective
from pyrocrl.inference.queries import (
    counterfactual,
    do,
    encode,
    generate,
    intervene,
    intervention_posterior,
    predict_targets,
)
from pyrocrl.inference.recipes import Phase, Recipe, get_recipe
from pyrocrl.inference.svi import Trainer
from pyrocrl.inference.trust import seed_agreement, trust_report

__all__ = [
    "FitReport",
    "ILCMGuide",
    "ILCMObjective",
    "LearnedGraph",
    "PairELBO",
    "Phase",
    "Recipe",
    "Trainer",
    "counterfactual",
    "do",
    "elbo_per_pair",
    "encode",
    "evaluate",
    "fit_ilcm",
    "generate",
    "get_recipe",
    "intervene",
    "intervention_posterior",
    "learn_graph",
    "load_ilcm",
    "predict_targets",
    "scale_latents",
    "seed_agreement",
    "trust_report",
]
