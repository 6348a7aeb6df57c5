"""Training objectives: the ELBO of a pair program plus the recipe's regularizers, written
once for both backends (:func:`pair_objective`); :class:`ILCMObjective` is the Pyro
trainer's view of it."""

__all__ = [
    "REGULARIZERS",
    "TERMS",
    "ILCMObjective",
    "change_balance",
    "change_sparsity",
    "pair_objective",
    "regularizers",
    "row_weights",
]

from types import ModuleType
from typing import Any

import torch

from pyrocrl.backends import pyro as pyro_backend
from pyrocrl.errors import NonFiniteError
from pyrocrl.inference.elbo import PairELBO
from pyrocrl.inference.guides import Encoding
from pyrocrl.inference.recipes import Phase
from pyrocrl.models.ilcm import pairing

TERMS = (
    "elbo",
    "log_likelihood",
    "log_graph",
    "kl_noise",
    "kl_noise_tilde",
    "kl_target",
    "kl_value",
)
"""The terms of the bound a pair objective reports (those of every built-in program)."""
REGULARIZERS = (
    "intervention_entropy",
    "consistency",
    "noise_norm",
    "change_sparsity",
    "change_balance",
)
"""The regularizers a pair objective reports."""


def _on(weight: Any) -> bool:
    """``False`` only for a weight known to be 0 (a traced weight is always on)."""
    return not (isinstance(weight, int | float) and weight == 0)


def change_sparsity(delta: Any, backend: ModuleType = pyro_backend) -> Any:
    """``Σ_b ‖Δ_b‖₁ / Σ_b ‖Δ_b‖₂`` of changes ``Δ (B, n)``: 1 when every change is on one
    component, ``√n`` when every change is spread evenly."""
    return abs(delta).sum() / backend.maximum(backend.norm(delta).sum(), 1e-12)


def change_balance(delta: Any, backend: ModuleType = pyro_backend) -> Any:
    """``KL(s ‖ uniform)`` of the share ``s_j`` of the changes ``Δ (B, n)`` on component ``j``.

    Each pair spreads its size ``‖Δ_b‖`` over components in proportion to ``Δ_bj²``; the
    shares are summed over the batch. 0 when all components change equally, ``log n`` when
    one carries everything.
    """
    size = backend.norm(delta)[..., None]
    share = (delta**2 / backend.maximum(size, 1e-12)).sum(0)
    share = share / backend.maximum(share.sum(), 1e-12)
    return (share * backend.log(backend.maximum(share * share.shape[-1], 1e-12))).sum()


def regularizers(model: Any, encoding: Encoding, x: Any, x_tilde: Any, phase: Any) -> dict:
    """The recipe's regularizers of one minibatch (weights from ``phase``; those known to be
    0 are skipped), each a scalar:

    - ``intervention_entropy``: ``−w·H(mean over the batch's pairs of q(I | x, x~))``,
      which keeps all hypotheses in use (unpaired observations have no ``I``);
    - ``consistency``: ``w·(‖E[u | e] − u‖² + ‖E[u | e~] − u~‖²)`` with each view encoded
      on its own (a plain autoencoder term), in the standardized features ``u`` the
      networks see (``model.standardize``), so that its weight does not depend on units;
    - ``noise_norm``: ``w·(‖e‖² + ‖e~‖²)`` of those encodings;
    - ``change_sparsity``: ``w·Σ‖Δ‖₁ / Σ‖Δ‖₂`` over the batch, with ``Δ = μ(x~) − μ(x)``
      standardized per component. It is 1 when every pair changes a single noise
      component, as the model says it should, and up to ``√n`` when changes spread; it
      pushes the encoder towards the right axes before the intervention posterior has
      settled, which keeps short schedules out of local optima where two causal
      variables share one component;
    - ``change_balance``: ``w·KL(s ‖ uniform)`` where ``s_j`` is the share of all changes
      (each pair weighted by its size) that falls on component ``j``; interventions hit
      every variable equally often under the uniform intervention prior, so every
      component should change about as much as the others. Without it, two causal
      variables can settle on one component and leave another unused.

    An unpaired observation counts as the pair ``(x, x)`` (no change) in all of them.
    """
    b = model.backend
    loc, scale, loc_tilde, scale_tilde, probs = encoding
    x_tilde, paired = pairing(b, x, x_tilde)
    out: dict[str, Any] = {}
    if _on(phase.entropy_weight) and probs is not None:
        weight = b.as_array(paired, probs)  # (N,): 1 for a pair
        aggregate = (probs * weight[..., None]).sum(0) / b.maximum(weight.sum(), 1.0)
        entropy = -(aggregate * b.log(b.maximum(aggregate, 1e-30))).sum()
        out["intervention_entropy"] = -phase.entropy_weight * entropy
    if _on(phase.consistency_weight) or _on(phase.norm_weight):
        e = loc + scale * b.normal(loc.shape, like=loc)
        e_tilde = loc_tilde + scale_tilde * b.normal(loc.shape, like=loc)
        if _on(phase.norm_weight):
            norm = ((e**2).sum(-1) + (e_tilde**2).sum(-1)).mean()
            out["noise_norm"] = phase.norm_weight * norm
        if _on(phase.consistency_weight):
            mean = model.likelihood(b.concat([e, e_tilde])).mean  # standardized features
            both = b.concat([b.as_array(x, mean), b.as_array(x_tilde, mean)])
            error = ((mean - model.standardize(both)) ** 2).sum(-1).mean() * 2
            out["consistency"] = phase.consistency_weight * error
    if _on(phase.sparsity_weight) or _on(phase.balance_weight):
        both = b.concat([loc, loc_tilde])
        delta = (loc_tilde - loc) / b.maximum(b.std(both, 0), 1e-6)
        if _on(phase.sparsity_weight):
            out["change_sparsity"] = phase.sparsity_weight * change_sparsity(delta, b)
        if _on(phase.balance_weight):
            out["change_balance"] = phase.balance_weight * change_balance(delta, b)
    return out


def row_weights(backend: ModuleType, paired: Any, unpaired_weight: Any) -> Any:
    """``(N,)`` weights that turn a mean over rows into a sum per pair of the batch: ``R / P``
    for each of its ``P`` pairs (``paired``, :func:`~pyrocrl.models.ilcm.pairing`) and
    ``w R / P`` for each unpaired observation, ``R`` rows in all (``w = unpaired_weight``).
    All ones for a batch of pairs."""
    per_pair = paired.shape[0] / backend.maximum(paired.sum(), 1.0)
    return backend.where(paired, 1.0, unpaired_weight) * per_pair


def pair_objective(
    model: Any,
    guide: Any,
    x: Any,
    x_tilde: Any,
    phase: Any,
    *,
    pretrain: bool,
    deterministic: bool,
    elbo: PairELBO | None = None,
) -> tuple[Any, dict[str, Any], tuple[Any, Any]]:
    """``(loss, report, (model_trace, guide_trace))`` of one minibatch on the programs'
    backend: ``loss = −mean ELBO_β + Σ regularizers``, where ``ELBO_β`` weights the KL of
    the latent sites by ``phase.beta`` and the regularizers are those of
    :func:`regularizers`. The report holds every term (means over pairs) and every
    regularizer by name.

    With ``pretrain`` the ELBO is that of a VAE on each view (the independent programs, no
    causal structure); otherwise the pair programs run with the phase's intervention prior,
    offset and posterior power, and ``deterministic`` keeps the most probable hypothesis.
    ``phase`` is a :class:`~pyrocrl.inference.recipes.Phase` or its array form.

    Terms are per pair of the batch: with unpaired observations among the rows (see
    :func:`row_weights`) each counts ``phase.unpaired_weight`` times a pair, so that a batch
    of ``B`` pairs and ``B`` unpaired observations with weight ``M / N`` estimates the
    bound of the whole data (``N`` pairs, ``M`` unpaired) per pair.
    """
    elbo = elbo if elbo is not None else PairELBO()
    b = model.backend
    if pretrain:
        traces = elbo.traces(model.independent_model, guide.independent_guide, x, x_tilde)
    else:
        options = {
            "intervention_prior": phase.intervention_prior,
            "deterministic": deterministic,
            "offset": phase.offset,
            "posterior_power": phase.posterior_power,
        }
        traces = elbo.traces(model.model, guide.guide, x, x_tilde, **options)
    terms = elbo.terms_from_traces(*traces, b, phase.beta)
    weight = row_weights(b, pairing(b, x, x_tilde)[1], phase.unpaired_weight)
    report = {k: (v * weight).mean() for k, v in terms.items()}
    encoding = b.nodes(traces[1])["_RETURN"]["value"]
    report.update(regularizers(model, encoding, x, x_tilde, phase))
    loss = -report["elbo"] + sum(v for k, v in report.items() if k in REGULARIZERS)
    return loss, report, traces


class ILCMObjective:
    """The loss of one minibatch of pairs for a Pyro model and its guide
    (:func:`pair_objective`), with every non-finite value named."""

    def __init__(self, model: Any, guide: Any) -> None:
        self.model, self.guide = model, guide
        self.elbo = PairELBO()

    def __call__(
        self, x: torch.Tensor, x_tilde: torch.Tensor, phase: Phase
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """``(loss, report)``; the report holds every term as a float (means over pairs).

        :raises NonFiniteError: naming the first site or term that is NaN or infinite.
        """
        loss, report, traces = pair_objective(
            self.model,
            self.guide,
            x,
            x_tilde,
            phase,
            pretrain=phase.pretrain,
            deterministic=phase.deterministic,
            elbo=self.elbo,
        )
        _check_sites(*traces)
        for name, value in report.items():
            if not torch.isfinite(value):
                raise NonFiniteError(f"the term {name!r} is {value.item()}")
        report = {k: float(v.detach()) for k, v in report.items()}
        report["loss"] = float(loss.detach())
        return loss, report


def _check_sites(model_trace: Any, guide_trace: Any) -> None:
    """Name the first site whose log-density is NaN or infinite."""
    for role, trace in (("model", model_trace), ("guide", guide_trace)):
        for name, site in trace.nodes.items():
            log_prob = site.get("log_prob")
            if log_prob is not None and not torch.isfinite(log_prob).all():
                bad = int((~torch.isfinite(log_prob)).sum())
                raise NonFiniteError(
                    f"the {role} log-density of site {name!r} is NaN or infinite for {bad} entries"
                )
