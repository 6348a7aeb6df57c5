"""The evidence lower bound of pair programs, with the intervention target summed out.

For a guide that enumerates the target ``I`` in parallel,

.. math::
    \\mathrm{ELBO}(x, \\tilde x) = \\sum_I q(I \\mid x, \\tilde x)\\,
        \\mathbb{E}_{q(e, v \\mid I)}\\big[\\log p(x, \\tilde x, e, v, I)
        - \\log q(e, v \\mid I) - \\log q(I)\\big],

evaluated with one reparameterized sample per hypothesis. This is what Pyro's
``TraceEnum_ELBO`` computes for such a guide; writing the sum out keeps every term by name
(for reports and for errors that say which term failed) and skips the general tensor
contraction.
"""

__all__ = ["PairELBO", "backend_of", "pair_bound", "scale_latents"]

from collections.abc import Callable
from types import ModuleType
from typing import Any

import torch
from pyro.poutine.messenger import Messenger

from pyrocrl import sites
from pyrocrl.backends import pyro as pyro_backend
from pyrocrl.solution import shared_evaluations

ENUM_DIM = -2
"""The dim the target is enumerated in: one left of the ``pair`` plate."""


class _LatentScaleMessenger(Messenger):
    def __init__(self, scale: float | torch.Tensor) -> None:
        super().__init__()
        if isinstance(scale, float | int) and not scale >= 0:
            raise ValueError(f"the KL weight must be ≥ 0, got {scale}")
        self.scale = scale

    def _pyro_sample(self, msg: dict[str, Any]) -> None:
        if not msg["is_observed"]:
            msg["scale"] = self.scale * msg["scale"]


def scale_latents(fn: Callable | None = None, scale: float | torch.Tensor = 1.0) -> Any:
    """Multiply the log-density of every *latent* sample site by ``scale``.

    Applied to both model and guide, this weights the KL part of an ELBO by ``β`` and leaves
    the likelihood alone: a β-VAE objective. Works as a context manager and a decorator,
    like :func:`pyro.poutine.scale` (which scales observed sites too and refuses 0, while a
    KL weight of 0 is the start of a β ramp).
    """
    messenger = _LatentScaleMessenger(scale=scale)
    return messenger(fn) if fn is not None else messenger


def backend_of(program: Callable) -> ModuleType:
    """The backend a program runs on: its owner's ``backend`` (Pyro for plain functions)."""
    return getattr(getattr(program, "__self__", None), "backend", pyro_backend)


def pair_bound(model_sites: dict, guide_sites: dict, backend: ModuleType, beta: Any = 1.0):
    """Per-pair terms ``(N,)`` of the bound from the sites of a guide trace and of the model
    trace that replays it, each sample site with ``log_prob`` and ``unscaled_log_prob``
    (the backend's ``log_probs``). See :class:`PairELBO` for the terms; ``beta`` weights
    every ``kl_<site>``."""
    target = guide_sites.get(sites.TARGET)
    log_q_target = target["log_prob"] if target is not None else 0.0
    # the weights are probabilities: a KL scale on the target must not reach them
    weight = backend.exp(target["unscaled_log_prob"]) if target is not None else 1.0

    def expect(value: Any) -> Any:
        """Weighted sum over hypotheses, keeping the pair dim."""
        total = weight * value
        return total.sum(tuple(range(total.ndim - 1))) if total.ndim > 1 else total

    terms: dict[str, Any] = {}
    log_likelihood = 0.0
    for name, site in model_sites.items():
        if site["type"] != "sample" or "log_prob" not in site:
            continue
        if site["infer"].get("is_auxiliary"):  # a factor
            terms[f"log_{name}"] = expect(site["log_prob"])
        elif site["is_observed"]:
            log_likelihood = log_likelihood + site["log_prob"]
        else:
            log_q = log_q_target if name == sites.TARGET else guide_sites[name]["log_prob"]
            terms[f"kl_{name}"] = beta * expect(log_q - site["log_prob"])
    terms["log_likelihood"] = expect(log_likelihood)
    kl = sum(v for k, v in terms.items() if k.startswith("kl_"))
    factors = sum(v for k, v in terms.items() if k.startswith("log_") and k != "log_likelihood")
    terms["elbo"] = terms["log_likelihood"] + factors - kl
    return terms


class PairELBO:
    """Single-sample ELBO of a pair program whose guide may enumerate ``target``, on the
    programs' own backend (Pyro or NumPyro; run NumPyro programs inside a ``seed``
    handler).

    :meth:`terms` returns per-pair tensors (shape ``(N,)``) by name:

    - ``elbo``: the bound itself;
    - ``log_likelihood``: ``E_q[log p(x, x~ | …)]`` (all observed sites);
    - ``kl_<site>``: ``β · E_q[log q − log p]`` of each latent site, ``kl_target`` included;
    - ``log_<site>``: the expected value of each factor site (e.g. the prior of a learned
      graph), counted in the bound. Put factors inside the pair plate: a factor outside it
      would be counted once per pair here, once per batch by Pyro.

    ``β`` (``beta``, default 1) weights the KL terms, so with ``β ≠ 1`` the ``elbo`` term is
    the β-weighted objective; sites scaled by a handler (e.g. :func:`scale_latents`) enter
    with their scale. Without a ``target`` site in the guide every weight is one.
    """

    def __init__(self, max_plate_nesting: int = 1) -> None:
        self.max_plate_nesting = max_plate_nesting

    def traces(self, model: Callable, guide: Callable, *args: Any, **kwargs: Any):
        """``(model_trace, guide_trace)`` with log-probabilities computed."""
        b = backend_of(model)
        with shared_evaluations():  # guide and model read the solution on the same noise
            guide_trace = b.trace(b.enum(guide, first_available_dim=ENUM_DIM), *args, **kwargs)
            model_trace = b.trace(b.replay(model, trace=guide_trace), *args, **kwargs)
        for trace in (model_trace, guide_trace):
            b.log_probs(trace)
        b.check_traces(model_trace, guide_trace, self.max_plate_nesting)
        return model_trace, guide_trace

    def terms(
        self, model: Callable, guide: Callable, *args: Any, beta: Any = 1.0, **kwargs: Any
    ) -> dict[str, Any]:
        model_trace, guide_trace = self.traces(model, guide, *args, **kwargs)
        return self.terms_from_traces(model_trace, guide_trace, backend_of(model), beta)

    def terms_from_traces(
        self, model_trace: Any, guide_trace: Any, backend: ModuleType = pyro_backend, beta=1.0
    ) -> dict[str, Any]:
        """Per-pair terms from traces made by :meth:`traces`."""
        return pair_bound(backend.nodes(model_trace), backend.nodes(guide_trace), backend, beta)

    def differentiable_loss(
        self, model: Callable, guide: Callable, *args: Any, **kwargs: Any
    ) -> Any:
        """``−ELBO`` summed over pairs."""
        return -self.terms(model, guide, *args, **kwargs)["elbo"].sum()
