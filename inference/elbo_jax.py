"""The pair ELBO and the training objective for the NumPyro programs (the JAX twins of
:mod:`pyrocrl.inference.elbo` and :mod:`pyrocrl.inference.objectives`).

The intervention target is summed out exactly: the guide is run once with all ``n + 1``
hypotheses substituted at ``target`` (shape ``(n + 1, 1)``, as parallel enumeration would
give them), the model replays it, and every per-hypothesis term is weighted by
``q(I | x, x~)``. In the deterministic phase only the most probable hypothesis is
substituted, its weight carrying a straight-through gradient, as in the Pyro guide. All
switches of a recipe (pretraining, the intervention prior, the deterministic phase) are
traced values (the phases are the branches of one ``lax.switch``), so one compiled step
serves a whole run.
"""

__all__ = [
    "Schedule",
    "change_balance",
    "change_sparsity",
    "ilcm_loss",
    "pair_terms",
    "pretrain_terms",
]

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from numpyro import handlers

from pyrocrl import sites
from pyrocrl.inference.guides_jax import NumPyroILCMGuide
from pyrocrl.models.ilcm_jax import NumPyroILCM
from pyrocrl.nets_jax import shared_calls

Array = jax.Array
sg = jax.lax.stop_gradient


class Schedule(NamedTuple):
    """The settings of one step (:class:`~pyrocrl.inference.recipes.Phase` as arrays)."""

    pretrain: Array
    beta: Array
    intervention_prior: Array
    deterministic: Array
    lr: Array
    entropy_weight: Array
    consistency_weight: Array
    norm_weight: Array
    offset: Array
    sparsity_weight: Array
    balance_weight: Array
    posterior_power: Array

    @classmethod
    def from_phases(cls, phases: list[Any]) -> "Schedule":
        """Stack :class:`~pyrocrl.inference.recipes.Phase` objects, one row per step."""
        return cls(*(jnp.asarray([getattr(p, f) for p in phases]) for f in cls._fields))


def _traces(
    model_fn,
    guide_fn,
    params: dict[str, Any],
    key: Array,
    substitutes: dict,
    args: tuple,
    model_kwargs: dict,
    guide_kwargs: dict,
):
    guide = handlers.seed(handlers.substitute(guide_fn, data={**params, **substitutes}), key)
    with shared_calls():  # guide and model read the solution on the same noise: once
        with handlers.trace() as guide_trace:
            encoded = guide(*args, **guide_kwargs)
        model = handlers.replay(handlers.substitute(model_fn, data=params), trace=guide_trace)
        model_trace = handlers.trace(model).get_trace(*args, **model_kwargs)
    return model_trace, guide_trace, encoded


def _log_probs(trace: Any) -> dict[str, tuple[Array, str]]:
    """``name → (log-density, role)`` of every sample site; the role is ``"latent"``,
    ``"observed"`` or ``"factor"`` (a ``numpyro.factor``)."""
    out = {}
    for name, site in trace.items():
        if site["type"] != "sample":
            continue
        role = "observed" if site["is_observed"] else "latent"
        if isinstance(site["fn"], dist.Unit):
            role = "factor"
        out[name] = (site["fn"].log_prob(site["value"]), role)
    return out


def pair_terms(
    model: NumPyroILCM,
    guide: NumPyroILCMGuide,
    params: dict[str, Any],
    x: Array,
    x_tilde: Array,
    key: Array,
    schedule: Schedule,
    substitutes: dict[str, Array] | None = None,
    *,
    deterministic: bool = False,
) -> tuple[dict[str, Array], dict]:
    """Per-pair terms ``(N,)`` of the β-weighted ELBO — ``elbo``, ``log_likelihood`` and
    ``kl_<site>`` (β included) — and the guide's return value.

    :param params: the networks' parameters by NumPyro name (``"encoder$params"``, …).
    :param substitutes: fixed values for guide sites (e.g. ``noise`` and ``value`` for
        a comparison with the Pyro backend).
    :param deterministic: keep the most probable hypothesis only (its weight carries a
        straight-through gradient, as the Pyro guide's), instead of all ``n + 1``.
    """
    if deterministic:  # the argmax of q(I | x, x~), from the guide's own networks
        encoder = _module(params, "encoder", guide.encoder)
        loc, _, loc_tilde, _ = guide.encode(encoder, x, x_tilde)
        probs = guide.target_probs(
            _module(params, "intervention_encoder", guide.intervention_encoder),
            loc, loc_tilde, schedule.offset, schedule.posterior_power,
        )  # fmt: skip
        hypotheses = jnp.argmax(probs, -1)  # (N,)
    else:
        hypotheses = jnp.arange(model.n + 1)[:, None]  # (n + 1, 1), as enumeration gives
    model_trace, guide_trace, encoded = _traces(
        model.model,
        guide.guide,
        params,
        key,
        {sites.TARGET: hypotheses, **(substitutes or {})},
        (x, x_tilde),
        {"intervention_prior": schedule.intervention_prior},
        {"offset": schedule.offset, "posterior_power": schedule.posterior_power},
    )
    q = _log_probs(guide_trace)
    p = _log_probs(model_trace)
    if deterministic:
        chosen = jnp.exp(q[sites.TARGET][0])  # (N,)
        weight = 1.0 + chosen - sg(chosen)
        log_q_target = jnp.log(weight)
        expect = lambda v: weight * v  # noqa: E731
    else:
        weight = jnp.exp(q[sites.TARGET][0])  # (n + 1, N)
        log_q_target = q[sites.TARGET][0]
        expect = lambda v: jnp.sum(weight * v, 0)  # noqa: E731
    return _bound(p, q, schedule.beta, expect, log_q_target), encoded


def pretrain_terms(
    model: NumPyroILCM,
    guide: NumPyroILCMGuide,
    params: dict[str, Any],
    x: Array,
    x_tilde: Array,
    key: Array,
    schedule: Schedule,
) -> tuple[dict[str, Array], dict]:
    """Per-pair terms of the β-weighted ELBO of a VAE on each view (pretraining)."""
    model_trace, guide_trace, encoded = _traces(
        model.independent_model, guide.independent_guide, params, key, {}, (x, x_tilde), {}, {}
    )
    return _bound(_log_probs(model_trace), _log_probs(guide_trace), schedule.beta), encoded


def _bound(
    p: dict[str, tuple[Array, str]],
    q: dict[str, tuple[Array, str]],
    beta: Array,
    expect: Any = lambda v: v,
    log_q_target: Array | None = None,
) -> dict[str, Array]:
    """``log_likelihood``, ``log_<factor>``, ``kl_<site>`` (weighted by ``β``) and ``elbo``
    from the model's and the guide's log-densities; ``expect`` sums over hypotheses,
    ``log_q_target`` replaces the guide's density of the target."""
    terms: dict[str, Array] = {}
    log_likelihood = 0.0
    for name, (log_p, role) in p.items():
        if role == "observed":
            log_likelihood = log_likelihood + log_p
        elif role == "factor":
            terms[f"log_{name}"] = expect(log_p)
        else:
            log_q = log_q_target if name == sites.TARGET else q[name][0]
            terms[f"kl_{name}"] = beta * expect(log_q - log_p)
    terms["log_likelihood"] = expect(log_likelihood)
    factors = sum(v for k, v in terms.items() if k[:4] == "log_" and k != "log_likelihood")
    kl = sum(v for k, v in terms.items() if k[:3] == "kl_")
    terms["elbo"] = terms["log_likelihood"] + factors - kl
    return terms


def _norm(delta: Array) -> Array:
    """``‖Δ_b‖₂`` over the last axis, with gradient 0 at 0 (as PyTorch's) instead of NaN;
    pairs without an intervention often have ``Δ = 0`` exactly."""
    squares = (delta**2).sum(-1)
    positive = squares > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, squares, 1.0)), 0.0)


def change_sparsity(delta: Array) -> Array:
    """``Σ_b ‖Δ_b‖₁ / Σ_b ‖Δ_b‖₂`` (see :func:`pyrocrl.inference.objectives.change_sparsity`)."""
    return jnp.abs(delta).sum() / jnp.maximum(_norm(delta).sum(), 1e-12)


def change_balance(delta: Array) -> Array:
    """``KL(s ‖ uniform)`` of the change shares (see
    :func:`pyrocrl.inference.objectives.change_balance`)."""
    size = _norm(delta)[..., None]
    share = (delta**2 / jnp.maximum(size, 1e-12)).sum(0)
    share = share / jnp.maximum(share.sum(), 1e-12)
    return (share * jnp.log(jnp.maximum(share * share.size, 1e-12))).sum()


TERMS = (
    "elbo",
    "log_likelihood",
    "log_graph",
    "kl_noise",
    "kl_noise_tilde",
    "kl_target",
    "kl_value",
)
REGULARIZERS = (
    "intervention_entropy",
    "consistency",
    "noise_norm",
    "change_sparsity",
    "change_balance",
)


def ilcm_loss(
    params: dict[str, Any],
    model: NumPyroILCM,
    guide: NumPyroILCMGuide,
    x: Array,
    x_tilde: Array,
    key: Array,
    schedule: Schedule,
) -> tuple[Array, dict[str, Array]]:
    """``(loss, report)`` of one minibatch, as :class:`~pyrocrl.inference.objectives.
    ILCMObjective`: ``−mean ELBO_β`` plus the recipe's regularizers. The report holds every
    term of :data:`TERMS` and :data:`REGULARIZERS` (zero where a phase has none) and
    ``loss``."""
    k_elbo, k_reg = jax.random.split(key)

    def causal(deterministic: bool):
        def branch(_):
            terms, encoded = pair_terms(model, guide, params, x, x_tilde, k_elbo, schedule,
                                        deterministic=deterministic)  # fmt: skip
            aggregate = encoded["probs"].mean(0)
            entropy = -(aggregate * jnp.log(jnp.maximum(aggregate, 1e-30))).sum()
            return _complete(terms), encoded_views(encoded), entropy

        return branch

    def pretrain(_):
        terms, encoded = pretrain_terms(model, guide, params, x, x_tilde, k_elbo, schedule)
        return _complete(terms), encoded_views(encoded), jnp.zeros(())

    branch = jnp.where(schedule.pretrain, 0, jnp.where(schedule.deterministic, 2, 1))
    terms, views, entropy = jax.lax.switch(branch, [pretrain, causal(False), causal(True)], None)
    loc, scale, loc_tilde, scale_tilde = views
    report = {k: v.mean() for k, v in terms.items()}
    regularizers = {"intervention_entropy": -schedule.entropy_weight * entropy}
    e = loc + scale * jax.random.normal(k_reg, loc.shape)
    e_tilde = loc_tilde + scale_tilde * jax.random.normal(jax.random.fold_in(k_reg, 1), loc.shape)
    norm = ((e**2).sum(-1) + (e_tilde**2).sum(-1)).mean()
    regularizers["noise_norm"] = schedule.norm_weight * norm
    likelihood = _module(params, "likelihood", model.likelihood)
    mean, _ = likelihood(jnp.concatenate([e, e_tilde]))
    error = ((mean - jnp.concatenate([x, x_tilde])) ** 2).sum(-1).mean() * 2
    regularizers["consistency"] = schedule.consistency_weight * error
    both = jnp.concatenate([loc, loc_tilde])
    delta = (loc_tilde - loc) / jnp.maximum(both.std(0, ddof=1), 1e-6)
    regularizers["change_sparsity"] = schedule.sparsity_weight * change_sparsity(delta)
    regularizers["change_balance"] = schedule.balance_weight * change_balance(delta)
    loss = -report["elbo"] + sum(regularizers.values())
    return loss, {**report, **regularizers, "loss": loss}


def encoded_views(encoded: dict[str, Array]) -> tuple[Array, Array, Array, Array]:
    return encoded["loc"], encoded["scale"], encoded["loc_tilde"], encoded["scale_tilde"]


def _complete(terms: dict[str, Array]) -> dict[str, Array]:
    """Every name of :data:`TERMS`, zeros where a program has no such site."""
    size = terms["elbo"].shape
    return {k: terms.get(k, jnp.zeros(size)) for k in TERMS}


def _module(params: dict[str, Any], name: str, module: Any) -> Any:
    """``module`` with the trainable arrays of ``params[name + "$params"]``, as
    :func:`numpyro.contrib.module.eqx_module` assembles it."""
    _, static = eqx.partition(module, eqx.is_inexact_array)
    return eqx.combine(params[f"{name}$params"], static)
