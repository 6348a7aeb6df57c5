"""Posterior checks of a fitted model, the ArviZ way: export to an ``xarray.DataTree``.

:func:`to_datatree` runs the guide and the model on observed pairs and writes what ArviZ
reads (``arviz_stats``, ``arviz_plots``; the ArviZ packages whose data are DataTrees):

========================  ==========================================================
group                     variables (dims)
========================  ==========================================================
``posterior``             ``noise``, ``noise_tilde``, ``z``, ``z_tilde``
                          ``(chain, draw, pair, latent)``; ``target``
                          ``(chain, draw, pair)``
``posterior_predictive``  ``x``, ``x_tilde`` ``(chain, draw, pair, feature)``
``log_likelihood``        ``pairs``: ``log p(x | e) + log p(x~ | e~)``
                          ``(chain, draw, pair)``
``importance``            ``log_weight``: ``log p − log q`` of the draw
                          ``(chain, draw, pair)``
``observed_data``         ``x``, ``x_tilde`` ``(pair, feature)``
``intervention``          ``probs``: ``q(I | x, x~)`` ``(pair, hypothesis)``
``ground_truth``          ``target`` ``(pair)``, ``z`` ``(pair, world, true_latent)`` —
                          when the data have them
``graph``                 ``adjacency``, ``strength`` ``(cause, effect)`` — when given
``metrics``               one scalar per metric — when given
========================  ==========================================================

Draws come from the amortized posterior: one draw is a run of the guide (the target
sampled from ``q(I | x, x~)``, the noise given it) replayed through the model, which
gives the deterministic sites and the likelihood. There is one chain: the draws are
independent, so ``chain`` only keeps ArviZ's conventions. Coordinates are named after the
causal variables: ``latent`` is ``z1 … zn`` (the dim name of pyrocrl's datasets),
``hypothesis`` is ``none, z1 … zn`` (then the sets ``z1+z2, …`` of a model whose targets
are sets, :mod:`pyrocrl.interventions`; the ``intervention`` and ``ground_truth`` groups
record their ``max_targets``).

The ``importance`` group holds ``log w = log p(x, x~, latents) − log q(latents | x, x~)``
of every draw: :func:`loo` turns it into each pair's predictive density and its Pareto
``k``. :func:`calibration` compares the intervention posterior with true targets, and
:func:`write_checks` draws all of it.
"""

__all__ = [
    "GROUPS",
    "PSIS_DRAWS",
    "calibration",
    "check_datatree",
    "importance_elpd",
    "load_datatree",
    "loo",
    "save_datatree",
    "summary",
    "to_datatree",
    "write_checks",
]

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from pyro import poutine

from pyrocrl import sites
from pyrocrl.data.dataset import max_targets, pairs_only
from pyrocrl.interventions import num_targets, target_names, target_sets
from pyrocrl.io import save_figure, write_netcdf
from pyrocrl.metrics import match_interventions, match_sets, reliability
from pyrocrl.observations import check_observations

GROUPS = ("posterior", "posterior_predictive", "log_likelihood", "observed_data")
"""The groups every export has."""
PSIS_DRAWS = 25
"""Fewest draws whose Pareto tail (the largest ``min(S/5, 3√S)`` weights) has 5 points."""


@torch.no_grad()
def _draws(model: Any, guide: Any, x: torch.Tensor, x_tilde: torch.Tensor, num_samples: int):
    """``num_samples`` posterior draws of the pair sites, the per-pair log-likelihood and
    replicated observations, each stacked on a leading draw axis."""
    independent = not model.infers_interventions  # a β-VAE: a VAE on each view
    program, guide_program = model.programs(guide)
    keys = (sites.NOISE, sites.NOISE_TILDE, sites.Z, sites.Z_TILDE, sites.TARGET)
    extra = ("log_lik", "log_weight", "x", "x_tilde")
    out: dict[str, list[torch.Tensor]] = {k: [] for k in (*keys, *extra)}
    for _ in range(num_samples):
        guide_trace = poutine.trace(guide_program).get_trace(x, x_tilde)
        replay = poutine.replay(program, trace=guide_trace)
        trace = poutine.trace(replay).get_trace(x, x_tilde)
        trace.compute_log_prob()
        guide_trace.compute_log_prob()
        out["log_weight"].append(_log_density(trace) - _log_density(guide_trace))
        nodes = trace.nodes
        noise, noise_tilde = nodes[sites.NOISE]["value"], nodes[sites.NOISE_TILDE]["value"]
        if independent:  # a β-VAE's z: its untrained solution function, as encode reports
            z, z_tilde = model.solution(noise), model.solution(noise_tilde)
            target = torch.full(noise.shape[:-1], -1)
        else:
            z, z_tilde = nodes[sites.Z]["value"], nodes[sites.Z_TILDE]["value"]
            target = nodes[sites.TARGET]["value"]
        values = (noise, noise_tilde, z, z_tilde, target)
        for key, value in zip(keys, values, strict=True):
            out[key].append(value)
        out["log_lik"].append(nodes[sites.X]["log_prob"] + nodes[sites.X_TILDE]["log_prob"])
        out["x"].append(model.x_dist(noise).sample())
        out["x_tilde"].append(model.x_dist(noise_tilde).sample())
    return {k: torch.stack(v).numpy() for k, v in out.items()}


def _log_density(trace: Any) -> torch.Tensor:
    """Sum of the per-pair log-densities ``(N,)`` of a trace's sample sites; factors (such
    as an ELCM's graph prior, a term of no pair's density) are left out."""
    return sum(
        site["log_prob"].double()
        for site in trace.nodes.values()
        if site["type"] == "sample"
        and "log_prob" in site
        and not site["infer"].get("is_auxiliary")
    )


def to_datatree(
    model: Any,
    guide: Any,
    data: xr.Dataset | tuple[Any, Any],
    *,
    num_samples: int = 100,
    max_pairs: int | None = 1000,
    seed: int = 0,
    graph: Any = None,
    metrics: Mapping[str, float] | None = None,
) -> xr.DataTree:
    """Export a fitted model and observed pairs to an ArviZ ``DataTree`` (groups in the
    module docstring).

    :param data: a pyrocrl dataset (``x`` of shape ``(pair, world, feature)``; its ground
        truth, if any, goes to ``ground_truth``) or a tuple ``(x, x_tilde)`` of ``(N, D)``.
    :param num_samples: posterior draws.
    :param max_pairs: use the first so many pairs (``None``: all).
    :param seed: seeds the draws.
    :param graph: a :class:`~pyrocrl.inference.graph.LearnedGraph` or an adjacency
        ``(n, n)`` over the learned variables, for the ``graph`` group.
    :param metrics: scalars for the ``metrics`` group (e.g. a fit's test metrics).
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}")
    truth = None
    if isinstance(data, xr.Dataset):
        if "x" not in data or data["x"].ndim != 3 or data.sizes.get("world") != 2:
            raise ValueError("the dataset needs x with dims (pair, world, feature), two worlds")
        data, cut = pairs_only(data), slice(0, max_pairs)
        x_all = np.asarray(data["x"].values[cut], dtype=np.float32)
        x, x_tilde = x_all[:, 0], x_all[:, 1]
        truth = data.isel(pair=cut)
    else:
        x, x_tilde = data
        pairs = check_observations(x, "x", dim_x=model.dim_x, finite=False)  # dtype, shape
        if check_observations(x_tilde, "x_tilde", dim_x=model.dim_x, finite=False) != pairs:
            raise ValueError(f"x holds {len(x)} pairs and x_tilde {len(x_tilde)}")
        x, x_tilde = (np.asarray(v, dtype=np.float32)[:max_pairs] for v in (x, x_tilde))
    check_observations(x, "x", dim_x=model.dim_x)
    check_observations(x_tilde, "x_tilde", dim_x=model.dim_x)
    n, size = model.n, len(x)
    with torch.random.fork_rng(devices=[]), poutine.block():  # the draws' own random stream
        torch.manual_seed(seed)
        xt, xtt = torch.as_tensor(x), torch.as_tensor(x_tilde)
        draws = _draws(model, guide, xt, xtt, num_samples)
        probs = None
        if model.infers_interventions:
            probs = guide.intervention_probs(xt, xtt).detach().numpy()

    coords = {
        "chain": [0],
        "draw": np.arange(num_samples),
        "pair": np.arange(size),
        "latent": sites.variable_names(n),
        "feature": np.arange(model.dim_x),
    }

    def group(variables: dict[str, tuple[tuple[str, ...], np.ndarray]]) -> xr.Dataset:
        used = {d for dims, _ in variables.values() for d in dims}
        return xr.Dataset(variables, coords={k: v for k, v in coords.items() if k in used})

    def sampled(value: np.ndarray, *dims: str) -> tuple[tuple[str, ...], np.ndarray]:
        return ("chain", "draw", *dims), value[None]

    latent = ("pair", "latent")
    posterior = {k: sampled(draws[k], *latent) for k in ("noise", "noise_tilde", "z", "z_tilde")}
    if probs is not None:
        posterior["target"] = sampled(draws["target"], "pair")
    groups: dict[str, xr.Dataset] = {
        "posterior": group(posterior),
        "posterior_predictive": group(
            {k: sampled(draws[k], "pair", "feature") for k in ("x", "x_tilde")}
        ),
        "log_likelihood": group({"pairs": sampled(draws["log_lik"].astype(np.float64), "pair")}),
        "importance": group({"log_weight": sampled(draws["log_weight"], "pair")}),
        "observed_data": group(
            {"x": (("pair", "feature"), x), "x_tilde": (("pair", "feature"), x_tilde)}
        ),
    }
    if probs is not None:
        groups["intervention"] = xr.Dataset(
            {"probs": (("pair", "hypothesis"), probs)},
            coords={
                "pair": coords["pair"],
                "hypothesis": target_names(n, model.max_targets),
            },
            attrs={"max_targets": model.max_targets},
        )
    if truth is not None and ("target" in truth or "z" in truth):
        true_vars = {}
        if "target" in truth:
            true_vars["target"] = ("pair", truth["target"].values)
        if "z" in truth:
            true_vars["z"] = (("pair", "world", "true_latent"), truth["z"].values)
        n_true = truth["z"].shape[-1] if "z" in truth else n
        groups["ground_truth"] = xr.Dataset(
            true_vars,
            coords={"pair": coords["pair"], "true_latent": sites.variable_names(n_true)},
            attrs={"max_targets": max_targets(truth)},
        )
    if graph is not None:
        adjacency = np.asarray(getattr(graph, "adjacency", graph))
        if adjacency.shape != (n, n):
            raise ValueError(f"the graph must be over the {n} learned variables")
        strength = np.asarray(getattr(graph, "strength", adjacency), dtype=float)
        groups["graph"] = xr.Dataset(
            {
                "adjacency": (("cause", "effect"), adjacency.astype(np.int8)),
                "strength": (("cause", "effect"), strength),
            },
            coords={"cause": sites.variable_names(n), "effect": sites.variable_names(n)},
            attrs={"method": getattr(graph, "method", "given")},
        )
    if metrics:
        groups["metrics"] = xr.Dataset({k: float(v) for k, v in metrics.items()})
    tree = xr.DataTree.from_dict(groups)
    tree.attrs.update(
        model=type(model).__name__, n=n, num_samples=num_samples, seed=seed, library="pyrocrl"
    )
    return tree


def check_datatree(tree: xr.DataTree, groups: tuple[str, ...] = GROUPS) -> None:
    """Raise a ``ValueError`` naming what is missing or inconsistent: the ``groups``, the
    sample dims of the sampled groups, and the ``pair`` dim shared by all of them."""
    missing = [g for g in groups if g not in tree.children]
    if missing:
        raise ValueError(
            f"the DataTree has no group {missing[0]!r} (it has {sorted(tree.children)})"
        )
    pairs = None
    for name in groups:
        ds = tree[name].to_dataset()
        sampled = name in ("posterior", "posterior_predictive", "log_likelihood")
        if sampled and not {"chain", "draw"} <= set(ds.dims):
            raise ValueError(f"group {name!r} needs the sample dims (chain, draw)")
        if "pair" in ds.dims:
            if pairs is not None and ds.sizes["pair"] != pairs:
                raise ValueError(
                    f"group {name!r} has {ds.sizes['pair']} pairs, the others {pairs}"
                )
            pairs = ds.sizes["pair"]


def save_datatree(tree: xr.DataTree, path: str | os.PathLike) -> None:
    """Write a DataTree to NetCDF (HDF5 groups, through h5netcdf), atomically."""
    write_netcdf(tree, path)


def load_datatree(path: str | os.PathLike) -> xr.DataTree:
    """Read a DataTree written by :func:`save_datatree`, fully into memory."""
    with xr.open_datatree(path, engine="h5netcdf") as tree:
        return tree.load()


def loo(tree: xr.DataTree) -> xr.Dataset:
    """Pareto-smoothed importance sampling (PSIS) check of each pair's predictive density.

    The networks are point estimates, so the only posterior left is that of each pair's own
    latents: leaving a pair out, the model predicts it from the prior of its latents, and
    the leave-one-out predictive density is the pair's marginal likelihood
    ``p(x, x~) = E_q[p(x, x~, latents) / q(latents | x, x~)]``. It is estimated from the
    exported draws with the guide as the importance proposal (the ``importance`` group:
    ``log w = log p − log q`` per draw). The Pareto ``k`` of the tail of ``w``
    (``arviz_stats``' PSIS) says whether that estimate can be trusted: ``k ≤ 0.7`` is
    reliable, above it the guide's posterior misses where the exact posterior puts its mass
    (too narrow, or misplaced) — the pairs the encoder does not explain.

    The ``log_likelihood`` group (``log p(x, x~ | latents)`` per draw) is there for ArviZ's
    own tools; ``arviz_stats.loo`` on it treats the latents like shared parameters, which
    they are not, and its estimate is degenerate when the data pin the latents down.

    :returns: dims ``pair``: ``elpd`` (log predictive density, plain importance sampling)
        and ``pareto_k``; attrs ``elpd`` (sum), ``elpd_se`` and ``share_k_above_0.7``.
    """
    import arviz_stats  # noqa: F401  (registers the ``.azstats`` accessor)

    elpd = importance_elpd(tree)
    log_w = tree["importance"]["log_weight"].astype(np.float64)
    draws = log_w.sizes["chain"] * log_w.sizes["draw"]
    if draws < PSIS_DRAWS:
        raise ValueError(f"PSIS needs at least {PSIS_DRAWS} draws per pair, the tree has {draws}")
    with np.errstate(divide="ignore", invalid="ignore"):  # flat tails in the Pareto fit
        _, pareto_k = log_w.azstats.psislw(dim=["chain", "draw"])
    size = elpd.sizes["pair"]
    return xr.Dataset(
        {"elpd": elpd, "pareto_k": pareto_k.transpose("pair")},
        attrs={
            "elpd": float(elpd.sum()),
            "elpd_se": float(elpd.std() * np.sqrt(size)),
            "share_k_above_0.7": float((pareto_k > 0.7).mean()),
        },
    )


def importance_elpd(tree: xr.DataTree) -> xr.DataArray:
    """Each pair's log predictive density ``log p(x, x~)`` (dims ``pair``), estimated by
    plain importance sampling from the ``importance`` group: ``log mean_s w_s`` over every
    draw. In expectation a lower bound that tightens with the draws; :func:`loo` adds the
    Pareto ``k`` that says whether to trust it.

    :raises ValueError: if a log-weight is NaN or infinite.
    """
    check_datatree(tree, ("importance",))
    log_w = tree["importance"]["log_weight"].astype(np.float64)
    if not np.isfinite(log_w.values).all():
        raise ValueError("the importance log-weights hold NaN or infinite values")
    draws = log_w.sizes["chain"] * log_w.sizes["draw"]
    return _logsumexp(log_w, ("chain", "draw")) - np.log(draws)


def _logsumexp(a: xr.DataArray, dims: tuple[str, ...]) -> xr.DataArray:
    top = a.max(dims)
    return top + np.log(np.exp(a - top).sum(dims))


def calibration(tree: xr.DataTree, true_target: Any = None, *, bins: int = 10) -> xr.Dataset:
    """Reliability of the intervention posterior against true targets.

    Learned labels are matched to the true ones first (the most probable hypotheses
    against the truth, Hungarian). Then every predicted probability ``q(I = k | x, x~)``
    (all pairs, all hypotheses) is binned, and each bin compares its mean probability with
    how often ``k`` was the true target. A calibrated posterior lies on the diagonal.

    :param true_target: ``(pair,)`` labels in ``0 … n``; default the tree's
        ``ground_truth``.
    :returns: dims ``bin``: ``probability`` (mean predicted), ``frequency`` (observed),
        ``count``; attrs ``ece`` (expected calibration error: the count-weighted mean gap)
        and ``accuracy`` (of the most probable hypothesis).
    """
    check_datatree(tree, ("intervention",))
    probs = tree["intervention"]["probs"].values
    if true_target is None:
        if "ground_truth" not in tree.children or "target" not in tree["ground_truth"]:
            raise ValueError("no true targets: pass true_target or export data with targets")
        true_target = tree["ground_truth"]["target"].values
    true_target = np.asarray(true_target)
    if true_target.shape != probs.shape[:1]:
        raise ValueError(f"need {probs.shape[0]} true targets, got shape {true_target.shape}")
    perm = _matched_hypotheses(tree, probs, true_target)
    hit = perm[None, :] == true_target[:, None]  # hit[p, k]: learned k is the true target
    table = reliability(probs, hit, bins=bins)
    table.attrs["accuracy"] = float(np.mean(perm[probs.argmax(-1)] == true_target))
    return table


def _matched_hypotheses(tree: xr.DataTree, probs: np.ndarray, true: np.ndarray) -> np.ndarray:
    """``perm (K,)``: the true target each learned hypothesis stands for once learned
    variables are matched to true ones (−1 for a set the truth cannot hold). Targets that
    are sets (``max_targets`` of the export's groups) are matched by their members."""
    learned_k = int(tree["intervention"].attrs.get("max_targets", 1))
    true_k = 1
    if "ground_truth" in tree.children:
        true_k = int(tree["ground_truth"].attrs.get("max_targets", 1))
    sets = probs.shape[1]  # K of the learned table, which n and max_targets fix
    n = next(m for m in range(learned_k, sets) if num_targets(m, learned_k) == sets)
    if learned_k == true_k == 1:
        return match_interventions(probs.argmax(-1), true, n)
    learned, truth = target_sets(n, learned_k), target_sets(n, true_k)
    match = match_sets(learned[probs.argmax(-1)], truth[true])
    moved = np.zeros_like(learned)
    moved[:, match] = learned  # each learned set in the true variables
    same = (moved[:, None, :] == truth[None, :, :]).all(-1)  # (K learned, K true)
    return np.where(same.any(-1), same.argmax(-1), -1)


def summary(tree: xr.DataTree) -> dict[str, float]:
    """The numbers of a check: the PSIS-LOO predictive density and its Pareto ``k`` share,
    the calibration of the intervention posterior (when true targets are known) and the
    exported metrics (prefixed ``fit_``)."""
    checked = loo(tree)
    out = {
        "elpd_per_pair": checked.attrs["elpd"] / checked.sizes["pair"],
        "share_k_above_0.7": checked.attrs["share_k_above_0.7"],
    }
    if "intervention" in tree.children and "ground_truth" in tree.children:
        if "target" in tree["ground_truth"]:
            reliability = calibration(tree)
            out["calibration_ece"] = reliability.attrs["ece"]
            out["intervention_accuracy"] = reliability.attrs["accuracy"]
    if "metrics" in tree.children:  # e.g. the fit's test metrics: kept apart
        metrics = tree["metrics"].to_dataset().data_vars.items()
        out.update({f"fit_{k}": float(v) for k, v in metrics if k != "test_pairs"})
    return out


def write_checks(tree: xr.DataTree, directory: str | os.PathLike) -> list[Path]:
    """Draw the checks of an exported tree into PNG files in ``directory``:
    ``ppc.png`` (the observed distribution of x and x~ against ≤ 50 replications,
    ``arviz_plots.plot_ppc_dist``), ``pareto_k.png``, and ``calibration.png`` and
    ``graph.png`` when the tree has what they need. Returns the paths."""
    import arviz_plots
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    from pyrocrl.plots import plot_graph, plot_pareto_k, plot_reliability

    check_datatree(tree)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    with warnings.catch_warnings():  # arviz-plots 0.8 trips over its own xarray usage
        warnings.simplefilter("ignore", FutureWarning)
        draws = (
            tree["posterior_predictive"].sizes["draw"]
            * tree["posterior_predictive"].sizes["chain"]
        )
        plots = arviz_plots.plot_ppc_dist(
            tree, var_names=["x", "x_tilde"], backend="matplotlib", num_samples=min(50, draws)
        )
    try:
        save_figure(plots, directory / "ppc.png", dpi=110)
    finally:  # ArviZ made the figure through pyplot: close it, and only it
        plt.close(plots.viz["figure"].item())
    paths.append(directory / "ppc.png")
    figure = Figure(figsize=(6, 3.5))
    plot_pareto_k(loo(tree)["pareto_k"], ax=figure.subplots())
    figure.tight_layout()
    save_figure(figure, directory / "pareto_k.png", dpi=110)
    paths.append(directory / "pareto_k.png")
    has_targets = "ground_truth" in tree.children and "target" in tree["ground_truth"]
    if "intervention" in tree.children and has_targets:
        figure = Figure(figsize=(4.5, 4.5))
        plot_reliability(calibration(tree), ax=figure.subplots())
        figure.tight_layout()
        save_figure(figure, directory / "calibration.png", dpi=110)
        paths.append(directory / "calibration.png")
    if "graph" in tree.children:
        graph = tree["graph"]
        figure = Figure(figsize=(4, 4))
        plot_graph(
            graph["adjacency"].values, names=list(graph["cause"].values), ax=figure.subplots()
        )
        save_figure(figure, directory / "graph.png", dpi=110)
        paths.append(directory / "graph.png")
    return paths
