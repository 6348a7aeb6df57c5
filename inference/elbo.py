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

__all__ = ["NonFiniteError", "PairELBO", "scale_latents"]

from collections.abc import Callable
from typing import Any

import torch
from pyro import poutine
from pyro.infer.util import is_validation_enabled
from pyro.poutine.messenger import Messenger
from pyro.poutine.trace_struct import Trace
from pyro.poutine.util import prune_subsample_sites
from pyro.util import check_model_guide_match, check_site_shape

from pyrocrl import sites
from pyrocrl.errors import PyrocrlError

ENUM_DIM = -2
"""The dim the target is enumerated in: one left of the ``pair`` plate."""


class NonFiniteError(PyrocrlError, FloatingPointError):
    """A loss term or gradient is NaN or infinite."""


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


def _is_deterministic(site: dict[str, Any]) -> bool:
    return bool(site["infer"].get("_deterministic"))


class PairELBO:
    """Single-sample ELBO of a pair program whose guide may enumerate ``target``.

    :meth:`terms` returns per-pair tensors (shape ``(N,)``) by name:

    - ``elbo``: the bound itself;
    - ``log_likelihood``: ``E_q[log p(x, x~ | …)]`` (all observed sites);
    - ``kl_<site>``: ``E_q[log q − log p]`` of each latent site, ``kl_target`` included;
    - ``log_<site>``: the expected value of each factor site (``pyro.factor``, e.g. the
      prior of a learned graph), counted in the bound. Put factors inside the pair plate:
      a factor outside it would be counted once per pair here, once per batch by Pyro.

    Sites scaled by :func:`scale_latents` enter with their scale, so with ``β ≠ 1`` the
    ``elbo`` term is the β-weighted objective. Without a ``target`` site in the guide every
    weight is one.
    """

    def __init__(self, max_plate_nesting: int = 1) -> None:
        self.max_plate_nesting = max_plate_nesting

    def traces(self, model: Callable, guide: Callable, *args: Any, **kwargs: Any):
        """``(model_trace, guide_trace)`` with log-probabilities computed."""
        enum_guide = poutine.enum(guide, first_available_dim=ENUM_DIM)
        guide_trace = poutine.trace(enum_guide).get_trace(*args, **kwargs)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(
            *args, **kwargs
        )
        if is_validation_enabled():
            check_model_guide_match(model_trace, guide_trace, self.max_plate_nesting)
        model_trace = prune_subsample_sites(model_trace)
        guide_trace = prune_subsample_sites(guide_trace)
        for trace in (model_trace, guide_trace):
            trace.compute_log_prob(lambda name, site: not _is_deterministic(site))
            if is_validation_enabled():
                for site in trace.nodes.values():
                    if site["type"] == "sample" and "log_prob" in site:
                        check_site_shape(site, self.max_plate_nesting)
        return model_trace, guide_trace

    def terms(
        self, model: Callable, guide: Callable, *args: Any, **kwargs: Any
    ) -> dict[str, torch.Tensor]:
        model_trace, guide_trace = self.traces(model, guide, *args, **kwargs)
        return self.terms_from_traces(model_trace, guide_trace)

    def terms_from_traces(self, model_trace: Trace, guide_trace: Trace) -> dict[str, torch.Tensor]:
        """Per-pair terms from traces made by :meth:`traces`."""
        target = guide_trace.nodes.get(sites.TARGET)
        log_q_target = target["log_prob"] if target is not None else torch.zeros(())
        # the weights are probabilities: a KL scale on the target must not reach them
        weight = target["unscaled_log_prob"].exp() if target is not None else torch.ones(())

        def expect(value: torch.Tensor) -> torch.Tensor:
            """Weighted sum over hypotheses, keeping the pair dim."""
            total = weight * value
            return total.sum(tuple(range(total.dim() - 1))) if total.dim() > 1 else total

        terms: dict[str, torch.Tensor] = {}
        log_likelihood = 0.0
        for name, site in model_trace.nodes.items():
            if site["type"] != "sample" or "log_prob" not in site or _is_deterministic(site):
                continue
            if site["infer"].get("is_auxiliary"):  # a pyro.factor
                terms[f"log_{name}"] = expect(site["log_prob"])
                continue
            if site["is_observed"]:
                log_likelihood = log_likelihood + site["log_prob"]
                continue
            guide_site = guide_trace.nodes[name]
            log_q = log_q_target if name == sites.TARGET else guide_site["log_prob"]
            terms[f"kl_{name}"] = expect(log_q - site["log_prob"])
        terms["log_likelihood"] = expect(log_likelihood)
        kl = sum(v for k, v in terms.items() if k.startswith("kl_"))
        factors = sum(
            v for k, v in terms.items() if k.startswith("log_") and k != "log_likelihood"
        )
        terms["elbo"] = terms["log_likelihood"] + factors - kl
        return terms

    def differentiable_loss(
        self, model: Callable, guide: Callable, *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        """``−ELBO`` summed over pairs."""
        return -self.terms(model, guide, *args, **kwargs)["elbo"].sum()
