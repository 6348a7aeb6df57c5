"""Queries of a fitted model as datasets: the encodings of observations, the intervention
posterior of pairs, and generated pairs — from the model's prior, observational,
interventional or counterfactual (what ``pyrocrl query`` writes)."""

__all__ = [
    "GENERATED",
    "OBSERVED",
    "QUERIES",
    "encoding_dataset",
    "posterior_dataset",
    "query_dataset",
    "save_query",
]

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import xarray as xr

from pyrocrl.data.dataset import pairs_only
from pyrocrl.inference.guides import ILCMGuide
from pyrocrl.inference.queries import counterfactual, encode, generate, intervention_posterior
from pyrocrl.interventions import target_names
from pyrocrl.io import write_netcdf
from pyrocrl.models.ilcm import ILCM
from pyrocrl.sites import variable_names

QUERIES = ("encode", "posterior", "counterfactual", "interventional", "observational", "pairs")
"""The queries of :func:`query_dataset`."""
OBSERVED = ("encode", "posterior", "counterfactual")
"""The queries that read observed pairs."""
GENERATED = ("counterfactual", "interventional", "observational", "pairs")
"""The queries that generate pairs (:func:`~pyrocrl.inference.queries.generate`)."""


def encoding_dataset(guide: ILCMGuide, x: Any) -> xr.Dataset:
    """The encodings of observations ``x`` ``(N, D)`` — ``noise`` and ``z`` each
    ``(pair, latent)``, with the variables named ``z1 … zn``."""
    out = encode(guide, x)
    names = variable_names(out["z"].shape[-1])
    return xr.Dataset(
        {key: (("pair", "latent"), value.numpy()) for key, value in out.items()},
        coords={"latent": names},
    )


def posterior_dataset(guide: ILCMGuide, x: Any, x_tilde: Any) -> xr.Dataset:
    """The intervention posterior of pairs ``(x, x~)``, each ``(N, D)``: ``probs``
    ``(pair, hypothesis)`` over ``none, z1 … zn`` (and the sets ``z1+z2, …`` of a model
    whose targets are sets), and the most probable ``target``
    ``(pair)`` (0: none)."""
    probs = intervention_posterior(guide, x, x_tilde).numpy()
    hypotheses = target_names(guide.n, guide.model.max_targets)
    return xr.Dataset(
        {"probs": (("pair", "hypothesis"), probs), "target": ("pair", probs.argmax(-1))},
        coords={"hypothesis": hypotheses},
    )


def query_dataset(
    model: ILCM,
    guide: ILCMGuide,
    kind: str,
    *,
    data: xr.Dataset | None = None,
    z: Mapping[int | str, float] | None = None,
    size: int = 10_000,
    samples: int = 0,
    seed: int = 0,
) -> xr.Dataset:
    """Ask a fitted model one of the :data:`QUERIES`.

    ``"encode"`` and ``"posterior"`` read the pairs of ``data`` (:func:`encoding_dataset`
    of the first worlds, :func:`posterior_dataset`) and record the query in ``attrs``;
    the others generate a pyrocrl dataset of pairs
    (:func:`~pyrocrl.inference.queries.generate`): counterfactuals of the first worlds of
    ``data`` under ``do(z)``, or ``size`` new pairs under ``do(z)`` (``"interventional"``),
    without intervention (``"observational"``), or from the model's prior (``"pairs"``).

    :param z: the intervention, e.g. ``{"z2": 0.5}`` (counterfactual, interventional).
    :param samples: counterfactuals only: also draw this many counterfactuals of each pair
        from the noise posterior, as ``x_tilde_samples`` ``(sample, pair, feature)``.
    :raises ValueError: on an unknown query, one of :data:`OBSERVED` without ``data``, or
        ``samples`` with a query other than ``"counterfactual"``.
    """
    if kind not in QUERIES:
        raise ValueError(f"kind must be one of {QUERIES}, got {kind!r}")
    if kind in OBSERVED and data is None:
        raise ValueError(f"a {kind} query needs observations: give data")
    if samples and kind != "counterfactual":
        raise ValueError(f"samples are counterfactual draws: a {kind} query takes none")
    if kind in ("encode", "posterior"):
        x = torch.as_tensor((data if kind == "encode" else pairs_only(data))["x"].values)
        if kind == "encode":
            result = encoding_dataset(guide, x[:, 0])
        else:
            result = posterior_dataset(guide, x[:, 0], x[:, 1])
        result.attrs = {"query": kind}
        return result
    x = data["x"].values[:, 0] if data is not None else None
    with torch.no_grad():
        result = generate(model, kind, size=size, x=x, z=z, guide=guide, seed=seed)
        if samples:
            drawn = counterfactual(model, x, z, guide=guide, seed=seed, num_samples=samples)
            result["x_tilde_samples"] = (
                ("sample", "pair", "feature"),
                drawn["x_tilde_samples"].numpy(),
            )
    return result


def save_query(result: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write the result of :func:`query_dataset` as NetCDF: generated pairs as a pyrocrl
    dataset (:func:`~pyrocrl.data.save`, which checks it), encodings and posteriors as
    they are. Returns the path."""
    from pyrocrl.data import save

    if "x" in result:
        return save(result, path)
    return write_netcdf(result, path)
