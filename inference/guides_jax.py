"""The NumPyro twin of the amortized guide: the program of
:class:`~pyrocrl.inference.guides.PairGuide` on the NumPyro backend, with the Equinox twins
of a Pyro guide's networks."""

__all__ = ["HeuristicInterventionEncoder", "NumPyroILCMGuide"]

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from pyrocrl import nets_jax
from pyrocrl.backends import numpyro as numpyro_backend
from pyrocrl.inference import guides
from pyrocrl.inference.guides import PairGuide
from pyrocrl.interventions import target_sets
from pyrocrl.models.ilcm_jax import NumPyroILCM

Array = jax.Array


class HeuristicInterventionEncoder(eqx.Module):
    """``q(I | x, x~)`` as :class:`pyrocrl.inference.guides.HeuristicInterventionEncoder`
    (its Equinox twin, registered in :data:`pyrocrl.nets_jax.TWINS`)."""

    alpha: Array
    beta: Array
    gamma: Array
    n: int = eqx.field(static=True)
    max_targets: int = eqx.field(static=True, default=1)

    def __call__(self, loc: Array, loc_tilde: Array) -> Array:
        delta = loc_tilde - loc
        logits = self.alpha + self.beta * jnp.abs(delta) + self.gamma * delta**2
        if self.max_targets > 1:
            table = jnp.asarray(target_sets(self.n, self.max_targets), dtype=logits.dtype)
            return jax.nn.softmax(logits @ table.T, axis=-1)
        logits = jnp.concatenate([jnp.zeros_like(logits[..., :1]), logits], axis=-1)
        return jax.nn.softmax(logits, axis=-1)


nets_jax.TWINS[guides.HeuristicInterventionEncoder] = HeuristicInterventionEncoder


class NumPyroILCMGuide(nets_jax.TwinProgram, PairGuide):
    """``q(I | x, x~) q(e, v | I, x, x~)`` for a :class:`~pyrocrl.models.ilcm_jax.NumPyroILCM`,
    with the heuristic intervention encoder. Build one with :meth:`from_torch`.

    :param model: the twin model whose solution function the guide reads.
    :param encoder, intervention_encoder: Equinox twins of the networks.
    :param config: the Pyro guide's configuration.
    """

    backend = numpyro_backend
    parts = ("encoder", "intervention_encoder")

    def __init__(
        self, model: NumPyroILCM, encoder: Any, intervention_encoder: Any, config: dict[str, Any]
    ) -> None:
        self.model, self.encoder, self.intervention_encoder = model, encoder, intervention_encoder
        self.config = dict(config)
        self.n, self.dim_x, self.tie = model.n, model.dim_x, config["tie"]

    @classmethod
    def from_torch(cls, guide: Any, model: NumPyroILCM) -> "NumPyroILCMGuide":
        """The twin of a Pyro :class:`~pyrocrl.inference.guides.ILCMGuide` with the
        heuristic intervention encoder, serving ``model`` (the twin of its model)."""
        config = dict(getattr(guide, "config", {}))
        if config.get("intervention_encoder") != "heuristic":
            raise ValueError("only guides with the heuristic intervention encoder have a JAX twin")
        encoders = (nets_jax.twin(guide.encoder), nets_jax.twin(guide.intervention_encoder))
        return cls(model, *encoders, config)
