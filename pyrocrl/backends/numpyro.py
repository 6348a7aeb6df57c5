"""The NumPyro backend of the pair programs: NumPyro's primitives and handlers, JAX arrays.

Random draws outside ``sample`` sites (:func:`uniform`, :func:`normal`) take their keys from
the enclosing :func:`numpyro.handlers.seed`, as ``sample`` sites do.
"""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro import handlers
from numpyro.distributions import constraints
from numpyro.distributions.distribution import MaskedDistribution
from numpyro.primitives import Messenger

from pyrocrl.backends import INTERFACE

__all__ = list(INTERFACE)

name = "numpyro"
Array = jax.Array

# -- primitives and handlers ------------------------------------------------------------------
sample, plate, factor = numpyro.sample, numpyro.plate, numpyro.factor
mask, replay = handlers.mask, handlers.replay


def deterministic(site: str, value: Array, event_dim: int) -> Array:
    del event_dim  # NumPyro's deterministic sites carry no event shape
    return numpyro.deterministic(site, value)


class _Enumerate(Messenger):
    def __init__(self, fn, first_available_dim: int) -> None:
        super().__init__(fn)
        self.first_available_dim = first_available_dim

    def process_message(self, msg) -> None:
        if (
            msg["type"] == "sample"
            and not msg["is_observed"]
            and msg["value"] is None
            and (msg["infer"] or {}).get("enumerate") == "parallel"
        ):
            support = msg["fn"].enumerate_support(expand=False).reshape(-1)
            msg["value"] = support.reshape((-1,) + (1,) * (-self.first_available_dim - 1))


def enum(fn, first_available_dim: int):
    """Enumerate the sites marked ``infer={"enumerate": "parallel"}``: each takes every
    value of its support along ``first_available_dim`` (NumPyro's own ``enum`` needs
    funsor; a pair program enumerates one site, which needs nothing more)."""
    return _Enumerate(fn, first_available_dim)


def trace(fn, *args, **kwargs) -> dict:
    """The trace of one run of ``fn``: its sites, by name, and its return value as the
    site ``_RETURN`` (as in Pyro)."""
    tracer = handlers.trace(fn)
    value = tracer(*args, **kwargs)
    sites = tracer.trace
    sites["_RETURN"] = {"type": "return", "value": value}
    return sites


def nodes(trace: dict) -> dict:
    return trace


def log_probs(trace: dict) -> None:
    """Give every sample site ``log_prob`` (mask and scale applied) and
    ``unscaled_log_prob`` (neither), as Pyro does: NumPyro keeps a mask in the site's
    distribution, which is unwrapped here."""
    for site in trace.values():
        if site["type"] != "sample":
            continue
        fn, mask = site["fn"], True
        while isinstance(fn, MaskedDistribution):
            mask = fn._mask if mask is True else mask & fn._mask
            fn = fn.base_dist
        log_prob = fn.log_prob(site["value"])
        site["unscaled_log_prob"] = log_prob
        if mask is not True:
            log_prob = jnp.where(mask, log_prob, 0.0)
        scale = site.get("scale")
        site["log_prob"] = log_prob if scale is None else scale * log_prob


def check_traces(model_trace: dict, guide_trace: dict, max_plate_nesting: int) -> None:
    """NumPyro has no trace checks of its own to run."""


def check_targets(target: Array, n: int) -> None:
    """Targets may be traced values here: nothing to check."""


class InterventionValue(dist.Distribution):
    """Density of the new value ``v = z~_I`` (see the Pyro backend's twin): ``N(0, 1)``, or
    with ``prior=False`` the density ``scale`` (over ``g'(e~_I)`` with ``log_slope``) of the
    flat prior on the intervened noise.
    ``prior`` may be a traced boolean, so one compiled program serves both phases."""

    support = constraints.real
    arg_constraints: dict = {}  # noqa: RUF012 (NumPyro's own convention)

    def __init__(self, scale: Array, prior: Array | bool = True, log_slope=None) -> None:
        self.scale, self.prior, self.log_slope = scale, jnp.asarray(prior), log_slope
        super().__init__(batch_shape=jnp.shape(scale))

    def sample(self, key: Array, sample_shape: tuple[int, ...] = ()) -> Array:
        return jax.random.normal(key, sample_shape + self.batch_shape)

    def log_prob(self, value: Array) -> Array:
        normal = -0.5 * value**2 - 0.5 * np.log(2 * np.pi)
        flat = jnp.log(self.scale) + 0.0 * value
        if self.log_slope is not None:
            flat = flat - self.log_slope(value)
        return jnp.where(self.prior, normal, flat)


# -- array operations ---------------------------------------------------------------------------
where, exp, log, sigmoid, isnan = jnp.where, jnp.exp, jnp.log, jax.nn.sigmoid, jnp.isnan
broadcast_to, broadcast_shapes = jnp.broadcast_to, jnp.broadcast_shapes
stop_gradient = jax.lax.stop_gradient


def concat(arrays, axis: int = 0) -> Array:
    return jnp.concatenate(list(arrays), axis=axis)


def arange(start: int, stop: int, like: Array) -> Array:
    return jnp.arange(start, stop, dtype=jnp.asarray(like).dtype)


def as_array(value, like: Array) -> Array:
    return jnp.asarray(value, dtype=like.dtype)


def full(shape, value: float, like: Array) -> Array:
    return jnp.full(shape, value, dtype=like.dtype)


def softmax(x: Array, axis: int = -1) -> Array:
    return jax.nn.softmax(x, axis=axis)


def maximum(x: Array, floor: float) -> Array:
    return jnp.maximum(x, floor)


def std(x: Array, axis: int) -> Array:
    """Standard deviation with Bessel's correction (as torch's)."""
    return x.std(axis, ddof=1)


def norm(x: Array) -> Array:
    """Euclidean norm over the last axis, with gradient 0 at 0 (as torch's) instead of NaN:
    pairs without an intervention often change by exactly 0."""
    squares = (x**2).sum(-1)
    positive = squares > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, squares, 1.0)), 0.0)


def argmax(x: Array, axis: int = -1) -> Array:
    return jnp.argmax(x, axis)


def take_along(x: Array, index: Array) -> Array:
    """``x[..., index]`` per row: ``(*, K), (*,) → (*,)``."""
    return jnp.take_along_axis(x, index[..., None], -1)[..., 0]


def uniform(shape, like: Array) -> Array:
    """``U(0, 1)`` draws, keyed by the enclosing ``seed`` handler."""
    return jax.random.uniform(numpyro.prng_key(), shape, dtype=like.dtype)


def normal(shape, like: Array) -> Array:
    """``N(0, 1)`` draws, keyed by the enclosing ``seed`` handler."""
    return jax.random.normal(numpyro.prng_key(), shape, dtype=like.dtype)


def cast(x: Array, like: Array) -> Array:
    """``x`` in the dtype of ``like``."""
    return jnp.asarray(x).astype(jnp.asarray(like).dtype)


def zeros_like(x: Array) -> Array:
    return jnp.zeros_like(x)


def det(x: Array) -> Array:
    """Determinants of square matrices ``(*, m, m) → (*,)``."""
    return jnp.linalg.det(x)


def jvp(fn, primal: Array, tangent: Array):
    """``(fn(primal), J_fn(primal) · tangent)`` by forward-mode differentiation."""
    return jax.jvp(fn, (primal,), (tangent,))
