"""The amortized guide of the ILCM as a NumPyro program: the JAX twin of
:class:`pyrocrl.inference.guides.ILCMGuide` (same sites, shapes and maths).

The networks are registered with :func:`numpyro.contrib.module.eqx_module` as ``encoder``
and ``intervention_encoder``; the guide reads the model's solution function under the
model's name, ``solution``, so both programs share it.
"""

__all__ = ["NumPyroILCMGuide"]

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro import handlers
from numpyro.contrib.module import eqx_module

from pyrocrl import sites
from pyrocrl.models.ilcm_jax import NumPyroILCM, intervention_mask, select
from pyrocrl.nets_jax import (
    GaussianEncoder,
    HeuristicInterventionEncoder,
    build,
    from_state_dict,
    state_dict,
)

Array = jax.Array


class NumPyroILCMGuide:
    """``q(I | x, x~) q(e, v | I, x, x~)`` for :class:`~pyrocrl.models.ilcm_jax.NumPyroILCM`.

    As in the Pyro guide: one Gaussian encoder for both views; ``target`` marked for
    parallel enumeration (an ELBO substitutes all ``n + 1`` hypotheses, shape
    ``(n + 1, 1)``); the noise of components other than ``I`` tied across the views with
    ``λ ~ U(0, 1)`` (``tie="random"``) or ``λ = ½`` (``"mean"``); the new noise mapped to
    the site ``value`` through the solution function. The intervention encoder is the
    three-parameter heuristic; its offset and the flattening power of ``q(I | x, x~)`` are
    arguments, as the recipe schedules them.

    :param key: a JAX random key (or an integer seed) for the encoder; ``None`` gives its
        shapes only, to be filled by :meth:`load_state_dict`.
    """

    def __init__(
        self,
        model: NumPyroILCM,
        *,
        hidden: Sequence[int] = (64, 64),
        init_std: float = 0.01,
        min_std: float = 1e-4,
        tie: str = "random",
        key: Array | int | None = 1,
    ) -> None:
        if tie not in ("random", "mean"):
            raise ValueError(f"tie must be 'random' or 'mean', got {tie!r}")
        if isinstance(key, int):
            key = jax.random.PRNGKey(key)
        self.model, self.n, self.dim_x, self.tie = model, model.n, model.dim_x, tie
        self.encoder = build(
            GaussianEncoder, model.dim_x, model.n, hidden, init_std, min_std, key=key
        )
        self.intervention_encoder = HeuristicInterventionEncoder()
        self.config = {
            "hidden": list(hidden),
            "intervention_encoder": "heuristic",
            "init_std": init_std,
            "min_std": min_std,
            "tie": tie,
        }

    def encode(self, encoder: GaussianEncoder, x: Array, x_tilde: Array):
        """``(μ(x), σ(x), μ(x~), σ(x~))``, each ``(N, n)``, in one encoder pass."""
        loc, scale = encoder(jnp.concatenate([x, x_tilde]))
        size = x.shape[0]
        return loc[:size], scale[:size], loc[size:], scale[size:]

    def target_probs(
        self,
        intervention_encoder: HeuristicInterventionEncoder,
        loc: Array,
        loc_tilde: Array,
        offset: Array | float,
        power: Array | float,
    ) -> Array:
        """``q(I | x, x~)`` flattened to ``q^power / Σ q^power``, shape ``(N, n + 1)``."""
        probs = intervention_encoder(loc, loc_tilde, offset) ** power
        return probs / probs.sum(-1, keepdims=True)

    def guide(
        self,
        x: Array,
        x_tilde: Array,
        *,
        size: int | None = None,
        offset: Array | float = 1e-4,
        posterior_power: Array | float = 1.0,
        **_: Any,
    ) -> dict[str, Array]:
        """Sites ``target``, ``noise`` and ``value`` given pairs ``(N, D)``. Returns the
        encodings and ``probs``, ``q(I | x, x~)`` of shape ``(N, n + 1)``."""
        size = sites.plate_size(size, x, x_tilde, dim_x=self.dim_x)
        encoder = eqx_module("encoder", self.encoder)
        intervention_encoder = eqx_module("intervention_encoder", self.intervention_encoder)
        solution = eqx_module("solution", self.model.solution)
        loc, scale, loc_tilde, scale_tilde = self.encode(encoder, x, x_tilde)
        probs = self.target_probs(intervention_encoder, loc, loc_tilde, offset, posterior_power)
        with numpyro.plate(sites.PAIR_PLATE, size):
            target = numpyro.sample(
                sites.TARGET, dist.Categorical(probs), infer={"enumerate": "parallel"}
            )
            onehot, intervened = intervention_mask(target, self.n)
            shape = jnp.broadcast_shapes(onehot.shape, loc.shape)
            if self.tie == "random":
                lam = jax.random.uniform(numpyro.prng_key(), shape)
            else:
                lam = jnp.full(shape, 0.5)
            noise_loc = jnp.where(onehot, loc, lam * loc + (1 - lam) * loc_tilde)
            noise_scale = jnp.where(onehot, scale, lam * scale + (1 - lam) * scale_tilde)
            noise = numpyro.sample(sites.NOISE, dist.Normal(noise_loc, noise_scale).to_event(1))
            shift, sol_scale = solution.shift_scale(noise)
            shift_i = select(shift, onehot, intervened, 0.0)
            scale_i = select(sol_scale, onehot, intervened, 1.0)
            new_loc = select(loc_tilde, onehot, intervened, 0.0)
            new_scale = select(scale_tilde, onehot, intervened, 1.0)
            with handlers.mask(mask=intervened):
                numpyro.sample(
                    sites.VALUE, dist.Normal((new_loc - shift_i) / scale_i, new_scale / scale_i)
                )
        return {
            "probs": probs,
            "loc": loc,
            "scale": scale,
            "loc_tilde": loc_tilde,
            "scale_tilde": scale_tilde,
        }

    def independent_guide(
        self, x: Array, x_tilde: Array, *, size: int | None = None, **_: Any
    ) -> dict[str, Array]:
        """Guide of :meth:`NumPyroILCM.independent_model`: each view encoded on its own."""
        size = sites.plate_size(size, x, x_tilde, dim_x=self.dim_x)
        encoder = eqx_module("encoder", self.encoder)
        loc, scale, loc_tilde, scale_tilde = self.encode(encoder, x, x_tilde)
        with numpyro.plate(sites.PAIR_PLATE, size):
            numpyro.sample(sites.NOISE, dist.Normal(loc, scale).to_event(1))
            numpyro.sample(sites.NOISE_TILDE, dist.Normal(loc_tilde, scale_tilde).to_event(1))
        return {"loc": loc, "scale": scale, "loc_tilde": loc_tilde, "scale_tilde": scale_tilde}

    # -- the other backend --------------------------------------------------------------------
    @classmethod
    def from_torch(cls, guide: Any, model: NumPyroILCM) -> "NumPyroILCMGuide":
        """The twin of a Pyro :class:`~pyrocrl.inference.guides.ILCMGuide` with the
        heuristic intervention encoder, serving ``model`` (the twin of its model)."""
        config = dict(getattr(guide, "config", {}))
        if config.get("intervention_encoder") != "heuristic":
            raise ValueError("only guides with the heuristic intervention encoder have a JAX twin")
        twin = cls(
            model,
            key=None,
            hidden=config["hidden"],
            init_std=config["init_std"],
            min_std=config["min_std"],
            tie=config["tie"],
        )
        twin.load_state_dict(guide.state_dict())
        return twin

    def load_state_dict(self, tensors: dict[str, Any]) -> None:
        """Take the parameters from a Pyro guide's ``state_dict`` (or :meth:`state_dict`)."""
        self.encoder = from_state_dict(self.encoder, tensors, "encoder.")
        self.intervention_encoder = from_state_dict(
            self.intervention_encoder, tensors, "intervention_encoder."
        )

    def state_dict(self, offset: float = 1e-4) -> dict[str, np.ndarray]:
        """The parameters under the names of the Pyro guide's ``state_dict``."""
        return {
            **state_dict(self.encoder, "encoder."),
            **state_dict(self.intervention_encoder, "intervention_encoder."),
            "intervention_encoder.offset": np.asarray(offset, dtype=np.float32),
            "posterior_power": np.asarray(1.0, dtype=np.float32),
        }
