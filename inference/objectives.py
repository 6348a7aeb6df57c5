"""Training objectives: the ELBO of a pair program plus the recipe's regularizers."""

__all__ = ["ILCMObjective", "change_balance", "change_sparsity"]

import torch
from pyro.poutine.trace_struct import Trace

from pyrocrl.inference.elbo import NonFiniteError, PairELBO, scale_latents
from pyrocrl.inference.guides import ILCMGuide
from pyrocrl.inference.recipes import Phase
from pyrocrl.models.ilcm import ILCM


class ILCMObjective:
    """The loss of one minibatch of pairs for an ILCM and its guide.

    ``loss = −mean ELBO_β + Σ regularizers``, where ``ELBO_β`` weights the KL of the
    latent sites by the phase's ``β`` (:func:`~pyrocrl.inference.elbo.scale_latents`) and
    the regularizers are

    - ``intervention_entropy``: ``−w·H(mean over the batch of q(I | x, x~))``, which keeps
      all hypotheses in use;
    - ``consistency``: ``w·(‖E[x | e] − x‖² + ‖E[x | e~] − x~‖²)`` with each view encoded
      on its own (a plain autoencoder term);
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
      component should change about as much as the others. Without it, two causal variables
      can settle on one component and leave another unused.

    In the pretraining phase the ELBO is that of a VAE on each view (no causal structure).
    """

    def __init__(self, model: ILCM, guide: ILCMGuide) -> None:
        self.model, self.guide = model, guide
        self.elbo = PairELBO()

    def __call__(
        self, x: torch.Tensor, x_tilde: torch.Tensor, phase: Phase
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """``(loss, report)``; the report holds every term as a float (means over pairs).

        :raises NonFiniteError: naming the first term that is NaN or infinite.
        """
        if hasattr(self.guide.intervention_encoder, "offset"):
            self.guide.intervention_encoder.offset.fill_(phase.offset)
        self.guide.posterior_power.fill_(phase.posterior_power)
        if phase.pretrain:
            with scale_latents(scale=phase.beta):
                traces = self.elbo.traces(
                    self.model.independent_model, self.guide.independent_guide, x, x_tilde
                )
        else:
            with scale_latents(scale=phase.beta):
                traces = self.elbo.traces(
                    self.model.model,
                    self.guide.guide,
                    x,
                    x_tilde,
                    intervention_prior=phase.intervention_prior,
                    deterministic=phase.deterministic,
                )
        _check_sites(*traces)
        terms = {k: v.mean() for k, v in self.elbo.terms_from_traces(*traces).items()}
        encoded = traces[1].nodes["_RETURN"]["value"]
        loss = -terms["elbo"]
        regularizers: dict[str, torch.Tensor] = {}
        if phase.entropy_weight and "probs" in encoded:
            aggregate = encoded["probs"].mean(0)
            entropy = -(aggregate * aggregate.clamp_min(1e-30).log()).sum()
            regularizers["intervention_entropy"] = -phase.entropy_weight * entropy
        if phase.consistency_weight or phase.norm_weight:
            e = encoded["loc"] + encoded["scale"] * torch.randn_like(encoded["loc"])
            e_tilde = encoded["loc_tilde"] + encoded["scale_tilde"] * torch.randn_like(e)
            if phase.norm_weight:
                norm = (e.pow(2).sum(-1) + e_tilde.pow(2).sum(-1)).mean()
                regularizers["noise_norm"] = phase.norm_weight * norm
            if phase.consistency_weight:
                mean = self.model.x_dist(torch.cat([e, e_tilde])).mean
                error = (mean - torch.cat([x, x_tilde])).pow(2).sum(-1).mean() * 2
                regularizers["consistency"] = phase.consistency_weight * error
        if phase.sparsity_weight or phase.balance_weight:
            loc = torch.cat([encoded["loc"], encoded["loc_tilde"]])
            delta = (encoded["loc_tilde"] - encoded["loc"]) / loc.std(0).clamp_min(1e-6)
            if phase.sparsity_weight:
                regularizers["change_sparsity"] = phase.sparsity_weight * change_sparsity(delta)
            if phase.balance_weight:
                regularizers["change_balance"] = phase.balance_weight * change_balance(delta)
        for name, value in {**terms, **regularizers}.items():
            if not torch.isfinite(value):
                raise NonFiniteError(f"the term {name!r} is {value.item()}")
        loss = loss + sum(regularizers.values())
        report = {k: float(v.detach()) for k, v in {**terms, **regularizers}.items()}
        report["loss"] = float(loss.detach())
        return loss, report


def change_sparsity(delta: torch.Tensor) -> torch.Tensor:
    """``Σ_b ‖Δ_b‖₁ / Σ_b ‖Δ_b‖₂`` of changes ``Δ (B, n)``: 1 when every change is on one
    component, ``√n`` when every change is spread evenly."""
    return delta.abs().sum() / delta.norm(dim=-1).sum().clamp_min(1e-12)


def change_balance(delta: torch.Tensor) -> torch.Tensor:
    """``KL(s ‖ uniform)`` of the share ``s_j`` of the changes ``Δ (B, n)`` on component ``j``.

    Each pair spreads its size ``‖Δ_b‖`` over components in proportion to ``Δ_bj²``; the
    shares are summed over the batch. 0 when all components change equally, ``log n`` when
    one carries everything.
    """
    size = delta.norm(dim=-1, keepdim=True)
    share = (delta.pow(2) / size.clamp_min(1e-12)).sum(0)
    share = share / share.sum().clamp_min(1e-12)
    return (share * (share * share.numel()).clamp_min(1e-12).log()).sum()


def _check_sites(model_trace: Trace, guide_trace: Trace) -> None:
    """Name the first site whose log-density is NaN or infinite."""
    for role, trace in (("model", model_trace), ("guide", guide_trace)):
        for name, site in trace.nodes.items():
            log_prob = site.get("log_prob")
            if log_prob is not None and not torch.isfinite(log_prob).all():
                bad = int((~torch.isfinite(log_prob)).sum())
                raise NonFiniteError(
                    f"the {role} log-density of site {name!r} is NaN or infinite for {bad} entries"
                )
