"""Causal queries on the NumPyro twin of an ILCM, through NumPyro's effect handlers.

The JAX counterparts of :mod:`pyrocrl.inference.queries` for a model trained (or kept)
in JAX, without a trip through PyTorch:

- :func:`encode` — observations to noise and causal variables (posterior mean);
- :func:`intervention_posterior` — ``q(I | x, x~)`` of pairs;
- :func:`counterfactual` — abduction (``condition`` on the encoded noise), action
  (:func:`numpyro.handlers.do` on ``target`` and ``value``) and prediction (the mean of
  the intervened world's likelihood).

Models trained with ``backend="jax"`` are also handed back to Pyro (see
:class:`~pyrocrl.inference.svi_jax.TwinTrainer`), where every query of the Pyro backend
applies; these functions give the same numbers.
"""

__all__ = ["counterfactual", "encode", "intervention_posterior"]

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from numpyro import handlers

from pyrocrl import sites
from pyrocrl.inference.guides_jax import NumPyroILCMGuide
from pyrocrl.models.ilcm_jax import NumPyroILCM
from pyrocrl.observations import check_observations

Array = jax.Array


def _observations(x: Any, dim_x: int, name: str) -> Array:
    check_observations(x, name, dim_x=dim_x, finite=False)  # dtype and shape, as given
    x = np.asarray(x, dtype=np.float32)
    check_observations(x, name, dim_x=dim_x)  # the values, as the model sees them
    return jnp.asarray(x)


def encode(guide: NumPyroILCMGuide, x: Any) -> dict[str, Array]:
    """``noise`` (the posterior mean ``μ(x)``), ``noise_scale`` and ``z = s(μ(x))``, each
    ``(N, n)``."""
    x = _observations(x, guide.dim_x, "x")
    loc, scale = guide.noise_posterior(x)
    return {"noise": loc, "noise_scale": scale, "z": guide.model.solution(loc)}


def intervention_posterior(guide: NumPyroILCMGuide, x: Any, x_tilde: Any) -> Array:
    """``q(I | x, x~)`` of pairs, ``(N, n + 1)``; column 0 is "no intervention"."""
    x = _observations(x, guide.dim_x, "x")
    x_tilde = _observations(x_tilde, guide.dim_x, "x_tilde")
    return guide.intervention_probs(x, x_tilde)


def counterfactual(
    model: NumPyroILCM,
    guide: NumPyroILCMGuide,
    x: Any,
    k: int,
    value: float | Any,
    *,
    key: Array | None = None,
) -> dict[str, Array]:
    """What ``x`` would have been under ``do(z_k = v)``.

    :param x: observed first worlds ``(N, D)``.
    :param k: the intervened variable, ``1 … n``.
    :param value: ``v``: a number or ``N`` values.
    :param key: random key of the program's other draws (none reach the answer).
    :returns: ``x_tilde`` (the mean of ``p(x~ | e~)``, ``(N, D)``), ``z``, ``z_tilde``,
        ``noise`` and ``noise_tilde`` (``(N, n)``).
    """
    if not 1 <= k <= model.n:
        raise ValueError(f"cannot intervene on z{k}: the model has z1 … z{model.n}")
    noise = encode(guide, x)["noise"]
    size = noise.shape[0]
    value = jnp.broadcast_to(jnp.asarray(value, dtype=noise.dtype), (size,))
    intervention = {sites.TARGET: jnp.full((size,), k), sites.VALUE: value}
    program = handlers.do(handlers.condition(model.model, {sites.NOISE: noise}), intervention)
    key = jax.random.PRNGKey(0) if key is None else key
    trace = handlers.trace(handlers.seed(program, key)).get_trace(size=size)
    out = {name: trace[name]["value"] for name in (sites.Z, sites.Z_TILDE, sites.NOISE_TILDE)}
    out[sites.NOISE] = noise
    out[sites.X_TILDE] = trace[sites.X_TILDE]["fn"].mean
    return out
