"""The Pyro backend of the pair programs: Pyro's primitives and handlers, torch arrays."""

import math

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions import constraints
from pyro.infer.util import is_validation_enabled
from pyro.poutine.trace_struct import Trace
from pyro.poutine.util import prune_subsample_sites
from pyro.util import check_model_guide_match, check_site_shape

from pyrocrl.backends import INTERFACE

__all__ = list(INTERFACE)

name = "pyro"
Array = torch.Tensor

# -- primitives and handlers ------------------------------------------------------------------
sample, plate, factor = pyro.sample, pyro.plate, pyro.factor
mask, replay = poutine.mask, poutine.replay


def deterministic(site: str, value: Array, event_dim: int) -> Array:
    return pyro.deterministic(site, value, event_dim=event_dim)


def enum(fn, first_available_dim: int):
    """Enumerate the sites marked ``infer={"enumerate": "parallel"}`` from that dim left."""
    return poutine.enum(fn, first_available_dim=first_available_dim)


def trace(fn, *args, **kwargs) -> Trace:
    """The trace of one run of ``fn``, without the plates' subsample sites."""
    return prune_subsample_sites(poutine.trace(fn).get_trace(*args, **kwargs))


def nodes(trace: Trace) -> dict:
    """The sites of a trace, by name."""
    return trace.nodes


def log_probs(trace: Trace) -> None:
    """Give every sample site (but deterministic ones) ``log_prob`` (mask and scale
    applied) and ``unscaled_log_prob``."""
    trace.compute_log_prob(lambda _, site: not site["infer"].get("_deterministic"))


def check_traces(model_trace: Trace, guide_trace: Trace, max_plate_nesting: int) -> None:
    """Pyro's own checks of a model and guide pair, when validation is on."""
    if not is_validation_enabled():
        return
    check_model_guide_match(model_trace, guide_trace, max_plate_nesting)
    for t in (model_trace, guide_trace):
        for site in t.nodes.values():
            if site["type"] == "sample" and "log_prob" in site:
                check_site_shape(site, max_plate_nesting)


def check_targets(target: Array, n: int) -> None:
    """Refuse intervention targets outside ``0 … n``."""
    if target.numel() and (target.min() < 0 or target.max() > n):
        raise ValueError(
            f"intervention target must lie in 0..{n} (0 = none), got values in "
            f"{int(target.min())}..{int(target.max())}"
        )


class InterventionValue(dist.TorchDistribution):
    """Density of the new value ``v = z~_I`` of an intervened variable: ``N(0, 1)``, or with
    ``prior=False`` the improper flat prior on the intervened noise ``e~_I = shift + scale·v``,
    whose density in ``v`` is ``scale`` (the Jacobian). Samples are ``N(0, 1)``.

    :param scale: ``scale_I``, the solution function's scale of the intervened variable.
    :param prior: whether the intervention prior is on (a bool, or a bool array).
    :param log_slope: ``None``, or ``v ↦ log g'(e~_I)`` for a solution function with a
        transform ``g`` of the own noise, ``e~_I = g⁻¹(shift + scale·v)``: the flat prior's
        density in ``v`` is then ``scale / g'(e~_I)``.
    """

    support = constraints.real
    arg_constraints: dict = {}  # noqa: RUF012 (torch's own convention)
    has_rsample = False

    def __init__(self, scale: Array, prior: bool | Array = True, log_slope=None) -> None:
        self.scale, self.prior, self.log_slope = scale, prior, log_slope
        super().__init__(batch_shape=scale.shape, validate_args=False)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> Array:  # noqa: B008
        with torch.no_grad():
            return torch.randn(sample_shape + self.batch_shape, dtype=self.scale.dtype)

    def log_prob(self, value: Array) -> Array:
        normal = -0.5 * value**2 - 0.5 * math.log(2 * math.pi)
        if isinstance(self.prior, bool) and self.prior:
            return normal
        flat = self.scale.log() + 0.0 * value
        if self.log_slope is not None:
            flat = flat - self.log_slope(value)
        if isinstance(self.prior, bool):
            return flat
        return torch.where(self.prior, normal, flat)


# -- array operations ---------------------------------------------------------------------------
where, exp, log, sigmoid, isnan = torch.where, torch.exp, torch.log, torch.sigmoid, torch.isnan
broadcast_to, broadcast_shapes = torch.broadcast_to, torch.broadcast_shapes


def concat(arrays, axis: int = 0) -> Array:
    return torch.cat(list(arrays), dim=axis)


def arange(start: int, stop: int, like: Array) -> Array:
    return torch.arange(start, stop, dtype=like.dtype, device=like.device)


def as_array(value, like: Array) -> Array:
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


def full(shape, value: float, like: Array) -> Array:
    return torch.full(shape, value, dtype=like.dtype, device=like.device)


def softmax(x: Array, axis: int = -1) -> Array:
    return x.softmax(axis)


def stop_gradient(x: Array) -> Array:
    return x.detach()


def maximum(x: Array, floor: float) -> Array:
    return x.clamp_min(floor)


def std(x: Array, axis: int) -> Array:
    """Standard deviation with Bessel's correction."""
    return x.std(axis)


def norm(x: Array) -> Array:
    """Euclidean norm over the last axis (gradient 0 at 0)."""
    return x.norm(dim=-1)


def argmax(x: Array, axis: int = -1) -> Array:
    return x.argmax(axis)


def take_along(x: Array, index: Array) -> Array:
    """``x[..., index]`` per row: ``(*, K), (*,) → (*,)``."""
    return x.gather(-1, index.unsqueeze(-1)).squeeze(-1)


def uniform(shape, like: Array) -> Array:
    """``U(0, 1)`` draws from torch's generator."""
    return torch.rand(shape, dtype=like.dtype, device=like.device)


def normal(shape, like: Array) -> Array:
    """``N(0, 1)`` draws from torch's generator."""
    return torch.randn(shape, dtype=like.dtype, device=like.device)


def cast(x: Array, like: Array) -> Array:
    """``x`` in the dtype of ``like``."""
    return x.to(like.dtype)


def zeros_like(x: Array) -> Array:
    return torch.zeros_like(x)


def det(x: Array) -> Array:
    """Determinants of square matrices ``(*, m, m) → (*,)``."""
    return torch.linalg.det(x)


def jvp(fn, primal: Array, tangent: Array):
    """``(fn(primal), J_fn(primal) · tangent)`` by forward-mode differentiation (the result
    stays differentiable with respect to ``fn``'s parameters)."""
    return torch.func.jvp(fn, (primal,), (tangent,))
