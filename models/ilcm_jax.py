"""The NumPyro twins of the pair models: the program of :class:`~pyrocrl.models.ilcm.PairModel`
on the NumPyro backend, with the Equinox twins of a Pyro model's networks.

A twin is made from a Pyro model (:meth:`NumPyroILCM.from_torch`) and hands its parameters
back under the Pyro names (:meth:`NumPyroILCM.state_dict`), so a model trained with either
backend is used with the other, and the Pyro tools (queries, graph discovery, metrics)
work on models trained with JAX. To start in JAX, make the twin of a fresh Pyro model:
``NumPyroILCM.from_torch(ILCM(dim_x, n))``.
"""

__all__ = ["NumPyroBetaVAE", "NumPyroELCM", "NumPyroILCM"]

from typing import Any

import jax.numpy as jnp

from pyrocrl import nets_jax
from pyrocrl.backends import numpyro as numpyro_backend
from pyrocrl.models.baselines import IndependentViews
from pyrocrl.models.elcm import GraphPrior
from pyrocrl.models.ilcm import SHIFT_PRIOR_SCALE, PairModel, default_rounds

SOLUTIONS = ("affine", "affine-empty", "graph")
"""The solution functions a twin can have, by the name the Pyro model's config gives it."""


class NumPyroILCM(nets_jax.TwinProgram, PairModel):
    """The pair program on the NumPyro backend (see :class:`~pyrocrl.models.ilcm.PairModel`
    for the generative story; sites and shapes are those of the Pyro model), for a model
    with built-in parts: a Normal likelihood and the solution function ``"affine"`` (the
    ILCM), ``"affine-empty"`` (the dVAE, and the β-VAE as :class:`NumPyroBetaVAE`) or
    ``"graph"`` (:class:`NumPyroELCM`). Build one with :meth:`from_torch`.

    :param likelihood, solution: Equinox twins of the networks (:mod:`pyrocrl.nets_jax`).
    :param intervention_probs: ``π``, shape ``(K,)`` over the target table.
    :param config: the Pyro model's configuration.
    :param features: the twin of its feature transform (``None``: none).
    """

    backend = numpyro_backend
    parts = ("likelihood", "solution", "intervention_probs", "features")

    def __init__(
        self,
        likelihood: Any,
        solution: Any,
        intervention_probs: Any,
        config: dict[str, Any],
        features: Any = None,
    ) -> None:
        self.likelihood, self.solution, self.features = likelihood, solution, features
        self.intervention_probs = jnp.asarray(intervention_probs)
        self.config = dict(config)
        self.dim_x, self.n = int(config["dim_x"]), int(config["n"])
        self.max_targets = int(config.get("max_targets", 1))
        self.solve_rounds = int(config.get("solve_rounds", default_rounds(self.max_targets)))
        self.intervention = config.get("intervention", "perfect")
        self.shift_scale = float(config.get("shift_scale", SHIFT_PRIOR_SCALE))
        self.edge_penalty = float(config.get("edge_penalty", 0.0))

    @classmethod
    def from_torch(cls, model: Any) -> "NumPyroILCM":
        """The twin of a Pyro model with built-in parts (an ILCM, an ELCM, a dVAE or a
        β-VAE with the Normal likelihood), of the matching class."""
        config = dict(getattr(model, "config", {}))
        if config.get("likelihood") != "normal" or config.get("solution") not in SOLUTIONS:
            raise ValueError(
                "only models with the built-in parts (a Normal likelihood and a built-in "
                "solution function) have a JAX twin"
            )
        kind = TWIN_CLASSES.get(config.get("model", "ilcm"), cls)
        probs = model.intervention_probs.detach().cpu().numpy()
        networks = (nets_jax.twin(model.likelihood), nets_jax.twin(model.solution))
        features = None if model.features is None else nets_jax.twin(model.features)
        return kind(*networks, probs, config, features)


class NumPyroELCM(GraphPrior, NumPyroILCM):
    """The twin of an :class:`~pyrocrl.models.elcm.ELCM`: the graph prior is the factor site
    ``graph``."""


class NumPyroBetaVAE(IndependentViews, NumPyroILCM):
    """The twin of a :class:`~pyrocrl.models.baselines.BetaVAE`: trained as a VAE on each
    view."""


TWIN_CLASSES = {"elcm": NumPyroELCM, "betavae": NumPyroBetaVAE}
"""The twin class of each built-in model other than the ILCM and the dVAE, by name."""
