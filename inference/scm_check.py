"""A Bayesian check of a latent SCM: a linear-Gaussian SCM over a given graph, fitted by NUTS.

Given paired causal variables ``z, z~ (N, n)`` (true ones, or ones a model learned), the
intervention target of each pair and a DAG, :func:`fit_linear_scm` samples the posterior of

.. math:: z_j = b_j + \\sum_{i \\in \\mathrm{pa}(j)} w_{ij} z_i + \\sigma_j \\epsilon_j,
    \\qquad \\epsilon_j \\sim N(0, 1),

with NumPyro's NUTS and returns it as an ArviZ :class:`xarray.DataTree`. Both worlds of a pair
follow the same mechanisms, except the variable intervened on in the second world, whose value
is set from outside: it enters its children's mechanisms but is not itself explained by one.

Learned variables equal the true ones only up to a permutation and a per-variable affine map
``ẑ_j = a_j z_{π(j)} + c_j``; :func:`align_to_truth` estimates ``(π, a, c)`` and
:func:`weight_coverage` maps the posterior weights onto the truth's scale,
``w_{π(i)π(k)} = ŵ_{ik} a_i / a_k``, and checks whether their HDIs cover the true weights.
"""

__all__ = [
    "align_to_truth",
    "coverage_fraction",
    "edge_list",
    "fit_linear_scm",
    "summarize",
    "weight_coverage",
]

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy.optimize import linear_sum_assignment

from pyrocrl.graphs import check_adjacency, is_acyclic
from pyrocrl.sites import variable_names

PRIOR_SCALE = 2.0
"""Scale of the priors: ``w, b ~ N(0, 2²)``, ``σ ~ HalfNormal(2)``."""


def _numpy(a: Any, name: str) -> np.ndarray:
    if hasattr(a, "detach"):  # torch tensor
        a = a.detach().cpu().numpy()
    try:
        return np.asarray(a)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be an array, got {type(a).__name__}") from error


def _check_inputs(
    z: Any, z_tilde: Any, targets: Any, adjacency: Any, names: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    z, z_tilde = _numpy(z, "z"), _numpy(z_tilde, "z_tilde")
    targets = _numpy(targets, "targets")
    adjacency = _numpy(adjacency, "adjacency")
    if z.ndim != 2:
        raise ValueError(f"z must have shape (N, n), got {z.shape}")
    if z_tilde.shape != z.shape:
        raise ValueError(f"z_tilde must have the shape of z {z.shape}, got {z_tilde.shape}")
    size, n = z.shape
    if size < 1 or n < 1:
        raise ValueError(f"need at least one pair and one variable, got z of shape {z.shape}")
    for label, a in (("z", z), ("z_tilde", z_tilde)):
        if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
            raise ValueError(f"{label} must hold real numbers, got dtype {a.dtype}")
        if not np.isfinite(a).all():
            raise ValueError(f"{label} holds NaN or infinite values")
    if targets.shape != (size,):
        raise ValueError(f"targets must have shape ({size},), one per pair, got {targets.shape}")
    if not np.issubdtype(targets.dtype, np.number) or np.issubdtype(targets.dtype, np.bool_):
        raise ValueError(f"targets must hold integers 0..{n}, got dtype {targets.dtype}")
    if not np.isfinite(targets).all() or (targets != np.round(targets)).any():
        raise ValueError(f"targets must hold integers 0..{n} (0 = no intervention)")
    if targets.min() < 0 or targets.max() > n:
        raise ValueError(
            f"targets must lie in 0..{n} (0 = no intervention, k = z_k), "
            f"got values in {targets.min():g}..{targets.max():g}"
        )
    if adjacency.shape != (n, n):
        raise ValueError(f"adjacency must have shape ({n}, {n}), got {adjacency.shape}")
    adjacency = check_adjacency(adjacency)
    if not is_acyclic(adjacency):
        raise ValueError("adjacency has a directed cycle; a linear SCM needs a DAG")
    names = variable_names(n) if names is None else [str(s) for s in names]
    if len(names) != n or len(set(names)) != n:
        raise ValueError(f"names must be {n} distinct labels, got {names}")
    z, z_tilde, targets = z.astype(np.float64), z_tilde.astype(np.float64), targets.astype(int)
    return z, z_tilde, targets, adjacency, names


def _model(z: Any, z_tilde: Any, z_tilde_obs: Any, keep: Any, cause: Any, effect: Any) -> None:
    """The linear SCM over both worlds, as a NumPyro program.

    Shapes: ``z, z_tilde, z_tilde_obs, keep (N, n)``; ``cause, effect (E,)``. ``z_tilde_obs``
    is ``z_tilde`` with the intervened entries zeroed, and ``keep`` is false there.
    """
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    n = z.shape[-1]
    loc, loc_tilde = 0.0, 0.0
    if len(cause):
        with numpyro.plate("edge", len(cause)):
            w = numpyro.sample("weight", dist.Normal(0.0, PRIOR_SCALE))
        weights = jnp.zeros((n, n)).at[cause, effect].set(w)  # [i, j]: effect of z_i on z_j
        loc, loc_tilde = z @ weights, z_tilde @ weights
    with numpyro.plate("latent", n, dim=-1):
        b = numpyro.sample("bias", dist.Normal(0.0, PRIOR_SCALE))
        sigma = numpyro.sample("noise_scale", dist.HalfNormal(PRIOR_SCALE))
    with numpyro.plate("pair", len(z), dim=-2), numpyro.plate("latent", n, dim=-1):
        numpyro.sample("z", dist.Normal(b + loc, sigma), obs=z)
        with numpyro.handlers.mask(mask=keep):
            numpyro.sample("z_tilde", dist.Normal(b + loc_tilde, sigma), obs=z_tilde_obs)


def fit_linear_scm(
    z: Any,
    z_tilde: Any,
    targets: Any,
    adjacency: Any,
    *,
    names: Sequence[str] | None = None,
    num_chains: int = 4,
    num_warmup: int = 500,
    num_samples: int = 500,
    seed: int = 0,
    max_pairs: int = 2000,
    progress: bool = False,
) -> xr.DataTree:
    """Posterior of a linear-Gaussian SCM over a given DAG, from paired causal variables.

    The model, for each pair and each variable ``j``::

        w_ij ~ N(0, 2²)  for each edge i → j      # "weight", dim edge
        b_j  ~ N(0, 2²)                           # "bias", dim latent
        σ_j  ~ HalfNormal(2)                      # "noise_scale", dim latent
        z_j  ~ N(b_j + Σ_{i ∈ pa(j)} w_ij z_i,  σ_j²)      # before the intervention
        z~_j ~ N(b_j + Σ_{i ∈ pa(j)} w_ij z~_i, σ_j²)      # after, unless j is the target

    In the second world the intervened variable (target ``k ≥ 1``: ``z_k``, at index
    ``k − 1``) is masked out of the likelihood; its value still enters its children's
    mechanisms. The two worlds are treated as independent given the parameters. Where they
    share exogenous noise, as in the simulators (an intervention leaves the variables that
    do not descend from its target unchanged), that noise is counted twice and the posterior
    is somewhat too narrow.

    NUTS runs ``num_chains`` chains (vectorized on one device), seeded with ``seed``. Data
    enter the compiled sampler as arguments, so with JAX's persistent compilation cache
    (``jax_compilation_cache_dir``) refits of the same size skip compilation.

    :param z, z_tilde: causal variables before and after the intervention, ``(N, n)``, numpy
        or torch; only the first ``max_pairs`` pairs are used.
    :param targets: intervention target of each pair, ``(N,)`` in ``0 … n`` (0 = none,
        ``k`` = variable ``k``, counted from 1).
    :param adjacency: the DAG, ``(n, n)`` 0/1 with ``[i, j] = 1`` for ``z_i → z_j``. A graph
        without edges is fine: then only biases and noise scales are sampled.
    :param names: variable labels, ``n`` of them; ``z1 … zn`` by default.
    :returns: a DataTree with groups ``posterior`` (``weight (chain, draw, edge)``, the edge
        labelled ``"z1→z2"`` with integer coords ``cause`` and ``effect``, 0-based;
        ``bias`` and ``noise_scale (chain, draw, latent)``), ``sample_stats``,
        ``observed_data`` (``z``, ``z_tilde (pair, latent)``) and ``constant_data``
        (``target (pair)``, ``adjacency (parent, child)``).
    :raises ValueError: on wrong shapes, NaN or infinite values, targets outside ``0 … n``,
        a non-binary or cyclic adjacency, or bad sampler settings.
    """
    z, z_tilde, targets, adjacency, names = _check_inputs(z, z_tilde, targets, adjacency, names)
    for label, value, least in (
        ("num_chains", num_chains, 1),
        ("num_warmup", num_warmup, 0),
        ("num_samples", num_samples, 1),
        ("max_pairs", max_pairs, 1),
    ):
        if int(value) != value or value < least:
            raise ValueError(f"{label} must be an integer ≥ {least}, got {value}")
    import arviz_base
    import jax
    from numpyro.infer import MCMC, NUTS

    z, z_tilde, targets = z[:max_pairs], z_tilde[:max_pairs], targets[:max_pairs]
    size, n = z.shape
    keep = targets[:, None] != np.arange(1, n + 1)  # (N, n): false on the intervened entry
    z_tilde_obs = np.where(keep, z_tilde, 0.0)
    cause, effect = np.nonzero(adjacency)
    mcmc = MCMC(
        NUTS(_model),
        num_warmup=int(num_warmup),
        num_samples=int(num_samples),
        num_chains=int(num_chains),
        chain_method="vectorized",
        progress_bar=progress,
        jit_model_args=True,
    )
    mcmc.run(
        jax.random.PRNGKey(seed),
        *(np.float32(a) for a in (z, z_tilde, z_tilde_obs)),
        keep,
        cause,
        effect,
    )
    labels = [f"{names[i]}→{names[j]}" for i, j in zip(cause, effect, strict=True)]
    dims = {"weight": ["edge"], "bias": ["latent"], "noise_scale": ["latent"]}
    dims |= {"z": ["pair", "latent"], "z_tilde": ["pair", "latent"]}
    coords = {"edge": labels, "latent": names, "pair": np.arange(size)}
    tree = arviz_base.from_numpyro(mcmc, coords=coords, dims=dims, log_likelihood=False)
    posterior = tree["posterior"].to_dataset()
    if "edge" not in posterior.dims:  # no edges: keep an empty edge list all the same
        posterior = posterior.assign_coords(edge=("edge", np.array(labels, dtype=str)))
    tree["posterior"] = posterior.assign_coords(cause=("edge", cause), effect=("edge", effect))
    observed = tree["observed_data"].to_dataset()
    observed["z_tilde"] = (("pair", "latent"), z_tilde)  # the values, masked entries too
    observed["z"] = (("pair", "latent"), z)
    tree["observed_data"] = observed
    tree["constant_data"] = xr.Dataset(
        {
            "target": ("pair", targets),
            "adjacency": (("parent", "child"), adjacency),
        },
        coords={"pair": np.arange(size), "parent": names, "child": names},
    )
    tree["posterior"].attrs.update(
        model="linear-Gaussian SCM", prior_scale=PRIOR_SCALE, pairs=size, seed=seed
    )
    return tree


def _posterior(posterior: xr.DataTree | xr.Dataset) -> xr.Dataset:
    if isinstance(posterior, xr.DataTree):
        if "posterior" not in posterior.children:
            raise ValueError("the DataTree has no posterior group")
        posterior = posterior["posterior"].to_dataset()
    if not isinstance(posterior, xr.Dataset) or "bias" not in posterior:
        raise ValueError("need the result of fit_linear_scm (or its posterior group)")
    return posterior


def edge_list(posterior: xr.DataTree | xr.Dataset) -> pd.DataFrame:
    """The fitted graph's edges: one row per edge with ``label``, ``cause``, ``effect``
    (0-based indices of the fitted variables)."""
    post = _posterior(posterior)
    if "edge" not in post.coords:
        return pd.DataFrame({"label": [], "cause": [], "effect": []})
    return pd.DataFrame(
        {
            "label": post["edge"].values.astype(str),
            "cause": post["cause"].values.astype(np.int64),
            "effect": post["effect"].values.astype(np.int64),
        }
    )


def summarize(posterior: xr.DataTree | xr.Dataset, hdi_prob: float = 0.94) -> pd.DataFrame:
    """Posterior summary: one row per parameter, ``weight[z1→z2]``, ``bias[z1]``,
    ``noise_scale[z1]`` …, with columns ``mean``, ``sd``, ``hdi_low``, ``hdi_high`` (the
    highest-density interval of probability ``hdi_prob``), ``r_hat``, ``ess_bulk`` and
    ``ess_tail`` (ArviZ's rank-normalized diagnostics; ``r_hat`` needs two chains or more)."""
    import arviz_base
    import arviz_stats

    if not 0 < hdi_prob < 1:
        raise ValueError(f"hdi_prob must lie in (0, 1), got {hdi_prob}")
    post = _posterior(posterior)
    names = [v for v in ("weight", "bias", "noise_scale") if v in post and post[v].size]
    # ArviZ needs every coordinate on all parameters: drop the edge index coordinates
    post = post[names].drop_vars(["cause", "effect"], errors="ignore")
    table = arviz_stats.summary(post, kind="all", round_to="none")
    # arviz-stats 0.8 labels summary's interval by ci_kind but always computes an ETI
    hdi = arviz_stats.hdi(post, prob=hdi_prob, dim=["chain", "draw"])
    hdi = hdi.rename(ci_bound="summary").assign_coords(summary=["hdi_low", "hdi_high"])
    bounds = arviz_base.dataset_to_dataframe(hdi, sample_dims=["summary"]).T
    table = table[["mean", "sd"]].join(bounds).join(table[["r_hat", "ess_bulk", "ess_tail"]])
    return table.astype(float)


def align_to_truth(
    z: Any, z_true: Any, *, permutation: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Match learned to true causal variables and fit the affine map between them.

    :param z: learned causal variables ``ẑ``, ``(N, n)``.
    :param z_true: true causal variables of the same samples, ``(N, n)``.
    :param permutation: ``(n,)``, ``permutation[j]`` the true variable of learned ``j``;
        by default the Hungarian assignment maximizing ``Σ_j |corr(ẑ_j, z_{π(j)})|``.
    :returns: ``(permutation, scale, shift)``, each ``(n,)``, with the least-squares fit
        ``ẑ_j ≈ scale_j · z_true[:, permutation[j]] + shift_j``; a negative scale is a sign
        flip.
    """
    z, z_true = _numpy(z, "z").astype(np.float64), _numpy(z_true, "z_true").astype(np.float64)
    if z.ndim != 2 or z.shape != z_true.shape:
        raise ValueError(f"z and z_true must share a shape (N, n), got {z.shape}, {z_true.shape}")
    if len(z) < 2:
        raise ValueError("need at least two samples to align variables")
    if not (np.isfinite(z).all() and np.isfinite(z_true).all()):
        raise ValueError("z or z_true holds NaN or infinite values")
    n = z.shape[1]
    if permutation is None:
        centred, centred_true = z - z.mean(0), z_true - z_true.mean(0)
        norm = np.linalg.norm(centred, axis=0)[:, None] * np.linalg.norm(centred_true, axis=0)
        corr = centred.T @ centred_true / np.where(norm > 0, norm, 1.0)  # (learned, true)
        rows, cols = linear_sum_assignment(-np.abs(corr))
        permutation = cols[np.argsort(rows)]
    permutation = _numpy(permutation, "permutation")
    if permutation.shape != (n,) or sorted(permutation.tolist()) != list(range(n)):
        raise ValueError(f"permutation must be a permutation of 0..{n - 1}, got {permutation}")
    permutation = permutation.astype(np.int64)
    scale, shift = np.empty(n), np.empty(n)
    for j in range(n):
        design = np.stack([z_true[:, permutation[j]], np.ones(len(z))], axis=1)
        (scale[j], shift[j]), *_ = np.linalg.lstsq(design, z[:, j], rcond=None)
    return permutation, scale, shift


def _hdi(draws: np.ndarray, prob: float) -> tuple[float, float]:
    import arviz_stats

    low, high = arviz_stats.hdi(np.asarray(draws).ravel(), prob=prob)
    return float(low), float(high)


def weight_coverage(
    posterior: xr.DataTree | xr.Dataset,
    true_weights: Any,
    permutation: Any,
    scale: Any,
    hdi_prob: float = 0.94,
) -> pd.DataFrame:
    """Posterior weights of the fitted graph on the truth's scale, against the true weights.

    With ``ẑ = a z_π + c`` (:func:`align_to_truth`), the fitted mechanism
    ``ẑ_k = Σ_i ŵ_ik ẑ_i + …`` reads ``z_π(k) = Σ_i (ŵ_ik a_i / a_k) z_π(i) + …``, so each
    draw of the edge ``i → k`` maps to ``ŵ_ik · scale_i / scale_k`` and is compared with
    ``true_weights[permutation[i], permutation[k]]`` (0 where the truth has no such edge).

    :param true_weights: ``(n, n)``, ``[i, j]`` the effect of true ``z_i`` on true ``z_j``.
    :param permutation, scale: from :func:`align_to_truth`, ``(n,)`` each.
    :returns: one row per fitted edge: ``edge`` (label), ``true_edge`` (bool), ``true_weight``,
        ``mean`` (aligned), ``hdi_low``, ``hdi_high`` and ``covered`` (bool: the true weight
        lies in the HDI). :func:`coverage_fraction` gives the share covered over true edges.
    """
    if not 0 < hdi_prob < 1:
        raise ValueError(f"hdi_prob must lie in (0, 1), got {hdi_prob}")
    post = _posterior(posterior)
    n = post.sizes["latent"]
    true_weights = _numpy(true_weights, "true_weights").astype(np.float64)
    permutation = _numpy(permutation, "permutation")
    scale = _numpy(scale, "scale").astype(np.float64)
    if true_weights.shape != (n, n):
        raise ValueError(f"true_weights must have shape ({n}, {n}), got {true_weights.shape}")
    if permutation.shape != (n,) or sorted(permutation.tolist()) != list(range(n)):
        raise ValueError(f"permutation must be a permutation of 0..{n - 1}, got {permutation}")
    if scale.shape != (n,) or not (np.isfinite(scale).all() and (scale != 0).all()):
        raise ValueError(f"scale must be {n} finite non-zero numbers, got {scale}")
    rows = []
    for e, edge in edge_list(post).iterrows():
        i, k = int(edge["cause"]), int(edge["effect"])
        draws = post["weight"].isel(edge=e).values * scale[i] / scale[k]
        low, high = _hdi(draws, hdi_prob)
        truth = float(true_weights[permutation[i], permutation[k]])
        rows.append(
            {
                "edge": edge["label"],
                "true_edge": truth != 0,
                "true_weight": truth,
                "mean": float(draws.mean()),
                "hdi_low": low,
                "hdi_high": high,
                "covered": bool(low <= truth <= high),
            }
        )
    columns = ["edge", "true_edge", "true_weight", "mean", "hdi_low", "hdi_high", "covered"]
    table = pd.DataFrame(rows, columns=columns)
    return table.astype({"true_edge": bool, "covered": bool})


def coverage_fraction(table: pd.DataFrame) -> float:
    """Share of the true edges in a :func:`weight_coverage` table whose HDI covers the true
    weight; NaN when the fitted graph holds no true edge."""
    hits = table.loc[table["true_edge"].astype(bool), "covered"]
    return float(hits.mean()) if len(hits) else float("nan")
