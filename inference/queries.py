"""Causal queries on latent causal models, through Pyro's effect handlers.

Every query works on any pair program that follows :mod:`pyrocrl.sites` — the ILCM, the
ground-truth simulators — because it only touches the sites ``noise``, ``target`` and
``value``:

- :func:`encode` — observations to noise and causal variables (posterior mean or samples);
- :func:`intervention_posterior` — ``q(I | x, x~)`` of pairs, and hard predictions;
- :func:`do` — the intervention ``do(z_k = v)`` as a handler (context manager, decorator or
  higher-order function) that sets the sites ``target = k`` and ``value = v``;
- :func:`intervene` — samples of the intervened world;
- :func:`counterfactual` — abduction (noise given ``x``), action (:func:`do`) and
  prediction (decode), i.e. ``condition`` on ``noise`` under ``do``;
- :func:`generate` — observational, interventional and counterfactual datasets in the
  pyrocrl format, in batches.
"""

__all__ = [
    "InterventionMessenger",
    "counterfactual",
    "do",
    "encode",
    "generate",
    "intervene",
    "intervention_posterior",
    "predict_targets",
]

import contextlib
import numbers
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import pyro
import pyro.distributions as dist
import torch
import xarray as xr
from pyro import poutine
from pyro.poutine.do_messenger import DoMessenger
from tqdm.auto import tqdm

from pyrocrl import sites
from pyrocrl.data.dataset import pairs_dataset
from pyrocrl.inference.guides import ILCMGuide
from pyrocrl.observations import check_observations

BATCH = 8192
"""Pairs per batch in queries, which bounds their memory. Deterministic answers (posterior
means, intervention posteriors, counterfactual means) do not depend on it. Sampled ones
(:func:`intervene`, :func:`generate`, counterfactual samples) do once a query spans several
batches: the batches draw their sites from one random stream in turn, so the same seed
gives the same samples only with the same ``BATCH``."""

Value = float | torch.Tensor | dist.Distribution


# -- encodings --------------------------------------------------------------------------------
@torch.no_grad()
def encode(guide: ILCMGuide, x: Any, *, num_samples: int = 0) -> dict[str, torch.Tensor]:
    """Posterior of the noise given single observations, and the causal variables.

    :param x: observations ``(N, D)``.
    :param int num_samples: also draw this many samples of ``e ~ q(e | x)`` (and of
        ``z = s(e)``).
    :returns: ``noise (N, n)``, ``noise_scale (N, n)``, ``z = s(E[e | x]) (N, n)``; with
        samples also ``noise_samples`` and ``z_samples`` of shape ``(S, N, n)``.
    """
    x = _as_observations(x, guide.dim_x, "x")
    locs, scales = zip(*(guide.noise_posterior(c) for c in x.split(BATCH)), strict=True)
    loc, scale = torch.cat(locs), torch.cat(scales)
    out = {"noise": loc, "noise_scale": scale, "z": guide.model.solution(loc)}
    if num_samples:
        noise = loc + scale * torch.randn(num_samples, *loc.shape)
        out["noise_samples"] = noise
        out["z_samples"] = guide.model.solution(noise)
    return out


@torch.no_grad()
def intervention_posterior(guide: ILCMGuide, x: Any, x_tilde: Any) -> torch.Tensor:
    """``q(I | x, x~)`` for each pair, shape ``(N, n + 1)`` (column 0: no intervention; for
    a model whose targets are sets, ``(N, K)`` over its target table).

    >>> from pyrocrl.models import ILCM
    >>> guide = ILCMGuide(ILCM(dim_x=3, n=3))  # untrained
    >>> probs = intervention_posterior(guide, torch.zeros(4, 3), torch.ones(4, 3))
    >>> tuple(probs.shape), torch.allclose(probs.sum(-1), torch.ones(4))
    ((4, 4), True)
    """
    if not guide.model.infers_interventions:
        raise ValueError(
            f"a {type(guide.model).__name__} models the two views as independent: it infers "
            "no intervention"
        )
    x = _as_observations(x, guide.dim_x, "x")
    x_tilde = _as_observations(x_tilde, guide.dim_x, "x_tilde")
    if len(x) != len(x_tilde):
        raise ValueError(f"x holds {len(x)} pairs and x_tilde {len(x_tilde)}")
    return torch.cat(
        [
            guide.intervention_probs(a, b)
            for a, b in zip(x.split(BATCH), x_tilde.split(BATCH), strict=True)
        ]
    )


def predict_targets(guide: ILCMGuide, x: Any, x_tilde: Any) -> torch.Tensor:
    """The most probable intervention target of each pair, ``(N,)`` in ``0 … n`` (for a
    model whose targets are sets, an index into its target table,
    :mod:`pyrocrl.interventions`)."""
    return intervention_posterior(guide, x, x_tilde).argmax(-1)


def _as_observations(x: Any, dim_x: int | None, name: str) -> torch.Tensor:
    """Observations ``(N, D)`` as a tensor of the default dtype, checked."""
    check_observations(x, name, dim_x=dim_x, finite=False)  # dtype and shape, as given
    x = torch.as_tensor(x if torch.is_tensor(x) else np.asarray(x))
    x = x.to(torch.get_default_dtype())
    check_observations(x, name, dim_x=dim_x)  # the values, as the model sees them
    return x


# -- interventions ----------------------------------------------------------------------------
def _parse(z: Mapping[int | str, Value]) -> tuple[int, Value]:
    """``{k: v}`` or ``{"zk": v}`` → ``(k, v)`` with ``k ≥ 1``."""
    if not isinstance(z, Mapping) or len(z) != 1:
        raise ValueError(
            "pair programs intervene on one causal variable at a time: give z={k: value} "
            f"with one variable, got {z!r}"
        )
    ((key, value),) = z.items()
    if isinstance(value, np.ndarray):
        value = torch.as_tensor(value, dtype=torch.get_default_dtype())
    if isinstance(key, str):
        if not (key.startswith("z") and key[1:].isdigit()):
            raise ValueError(f"unknown causal variable {key!r}; variables are named z1 … zn")
        key = int(key[1:])
    if not isinstance(key, numbers.Integral) or isinstance(key, bool) or key < 1:
        raise ValueError(f"causal variables are numbered from 1 (z1 … zn), got {key!r}")
    if not isinstance(value, numbers.Real | torch.Tensor | dist.Distribution):
        raise TypeError(
            f"an intervention value is a number, a tensor or a distribution, got {value!r}"
        )
    if isinstance(value, torch.Tensor) and not torch.isfinite(value).all():
        raise ValueError("the intervention value holds NaN or infinite values")
    return int(key), value


class InterventionMessenger(DoMessenger):
    """``do(z_k = v)`` on a pair program: sets ``target = k`` and ``value = v``.

    ``v`` may be a number, a tensor that broadcasts against the pairs (one value per pair),
    or a distribution, from which every pair draws its own value. In a program whose
    targets are sets of variables (:mod:`pyrocrl.interventions`), ``k`` is the set
    ``{z_k}``. Built on Pyro's
    :class:`~pyro.poutine.do_messenger.DoMessenger`, so it composes with ``condition`` and
    ``replay`` as Pyro's ``do`` does. The variable index is checked against the program's
    number of variables when the ``target`` site runs.
    """

    def __init__(self, z: Mapping[int | str, Value]) -> None:
        self.k, value = _parse(z)
        self.value_dist = value if isinstance(value, dist.Distribution) else None
        data = {sites.TARGET: torch.tensor(self.k)}
        self._value = value
        if self.value_dist is None:
            data[sites.VALUE] = torch.as_tensor(value, dtype=torch.get_default_dtype())
        super().__init__(data)

    def _pyro_sample(self, msg: dict[str, Any]) -> None:
        if msg["name"] == sites.TARGET and msg.get("_intervener_id") != self._intervener_id:
            categories = getattr(msg["fn"], "probs", None)
            if categories is not None and self.k > categories.shape[-1] - 1:
                n = categories.shape[-1] - 1
                raise ValueError(f"cannot intervene on z{self.k}: the model has z1 … z{n}")
        if msg["name"] == sites.VALUE and msg["fn"].event_shape:
            self._set_one_of(msg)
        elif msg["name"] == sites.VALUE and self.value_dist is not None:
            msg["fn"] = self.value_dist.expand(msg["fn"].batch_shape)
        super()._pyro_sample(msg)

    def _set_one_of(self, msg: dict[str, Any]) -> None:
        """The site ``value`` of a program whose targets are sets holds a value per
        variable, ``(*, n)``: ``v`` goes to column ``k``, which is the only one read."""
        n = msg["fn"].event_shape[-1]
        if self.k > n:
            raise ValueError(f"cannot intervene on z{self.k}: the model has z1 … z{n}")
        if self.value_dist is not None:
            msg["fn"] = self.value_dist.expand((*msg["fn"].batch_shape, n)).to_event(1)
            return
        value = torch.as_tensor(self._value, dtype=torch.get_default_dtype())
        wide = value.new_zeros((*value.shape, n))
        wide[..., self.k - 1] = value
        self.data[sites.VALUE] = wide


def do(fn: Callable | None = None, *, z: Mapping[int | str, Value]) -> Any:
    """The intervention ``do(z_k = v)`` on a pair program, e.g. ``do(z={2: 0.5})``.

    Use as a context manager (``with do(z={2: 0.5}): lcm.model(size=100)``), a decorator,
    or a higher-order function (``do(lcm.model, z={"z2": 0.5})``). The intervened world
    is the second one (``x_tilde``, ``z_tilde``); the first stays observational.

    >>> from pyrocrl.models import scaling_toy
    >>> lcm = scaling_toy(n=3, graph_seed=0)  # z1 → z2 → z3, z1 → z3
    >>> with do(z={2: 0.5}):
    ...     pairs = lcm.model(size=4)
    >>> pairs["target"].tolist(), pairs["z_tilde"][:, 1].tolist()
    ([2, 2, 2, 2], [0.5, 0.5, 0.5, 0.5])
    >>> torch.equal(pairs["z_tilde"][:, 0], pairs["z"][:, 0])  # z1 is no effect of z2
    True
    """
    messenger = InterventionMessenger(z)
    return messenger(fn) if fn is not None else messenger


def _batches(size: int, progress: bool | None, desc: str) -> tqdm:
    starts = range(0, size, BATCH)
    show = len(starts) > 1 if progress is None else progress
    return tqdm(starts, desc=desc, unit="batch", disable=None if show else True)


def _run(program: Callable, size: int, **kwargs: Any) -> tuple[dict[str, torch.Tensor], Any]:
    """Run a pair program; return its values and the mean of the ``x_tilde`` likelihood."""
    trace = poutine.trace(program).get_trace(size=size, **kwargs)
    values = {k: v for k, v in trace.nodes["_RETURN"]["value"].items()}
    values["x_tilde_mean"] = trace.nodes[sites.X_TILDE]["fn"].mean
    values["x_mean"] = trace.nodes[sites.X]["fn"].mean
    return values, trace


def _concat(parts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


@torch.no_grad()
def intervene(
    lcm: Any,
    z: Mapping[int | str, Value],
    size: int,
    *,
    seed: int | None = None,
    progress: bool | None = None,
) -> dict[str, torch.Tensor]:
    """``size`` samples of the pair program under ``do(z_k = v)``.

    :param lcm: an object with a pair program ``lcm.model`` (an ILCM or a simulator).
    :param z: ``{k: v}``: a number, a tensor of ``size`` values or a distribution.
    :param seed: seed a private random stream (the global one is left alone); ``None``
        uses the global stream.
    :returns: the program's sites (``x_tilde`` and ``z_tilde`` are the intervened world)
        and ``x_tilde_mean``, the mean of the likelihood of ``x_tilde``.
    """
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    k, value = _parse(z)
    per_pair = isinstance(value, torch.Tensor) and value.dim() > 0
    if per_pair and value.shape != (size,):
        raise ValueError(f"a tensor of values needs shape ({size},), got {tuple(value.shape)}")
    with _seeded(seed):
        parts = []
        for start in _batches(size, progress, "intervene"):
            rows = min(BATCH, size - start)
            v = value[start : start + rows] if per_pair else value
            with do(z={k: v}):
                values, _ = _run(lcm.model, rows)
            parts.append(values)
    return _concat(parts)


@torch.no_grad()
def counterfactual(
    lcm: Any,
    x: Any,
    z: Mapping[int | str, Value],
    *,
    guide: ILCMGuide | None = None,
    num_samples: int = 0,
    seed: int | None = None,
    progress: bool | None = None,
) -> dict[str, torch.Tensor]:
    """What ``x`` would have been under ``do(z_k = v)``: abduction, action, prediction.

    Abduction takes the noise from the guide's posterior ``q(e | x)`` — its mean, or
    ``num_samples`` draws — or, without a guide, from the model's exact inversion
    ``lcm.encode(x)`` (the simulators). The pair program then runs with ``noise``
    conditioned (``pyro.condition``) under :func:`do`; its second world is the answer.

    :param x: observed first worlds ``(N, D)``.
    :param z: ``{k: v}`` with a number, ``N`` values, or a distribution.
    :returns: ``x_tilde`` (the mean prediction, ``(N, D)``), ``z``, ``z_tilde``, ``noise``,
        ``noise_tilde`` (``(N, n)``, from the posterior mean), and with samples
        ``x_tilde_samples`` and ``z_tilde_samples`` of shape ``(S, N, ·)``.

    A simulator abducts exactly. In its linear SCM ``z1 → z2`` with weight ``w``, setting
    ``z1`` to 0 moves ``z2`` by ``−w·z1`` and keeps every other noise component:

    >>> from pyrocrl.models import scaling_toy
    >>> lcm = scaling_toy(n=3, graph_seed=0)
    >>> x = lcm.model(size=5)["x"]
    >>> cf = counterfactual(lcm, x, z={1: 0.0})
    >>> w = float(lcm.scm.weights[0, 1])
    >>> torch.allclose(cf["z_tilde"][:, 1], cf["z"][:, 1] - w * cf["z"][:, 0], atol=1e-5)
    True
    >>> torch.equal(cf["noise_tilde"][:, 1:], cf["noise"][:, 1:])
    True
    """
    k, value = _parse(z)
    dim_x = guide.dim_x if guide is not None else getattr(lcm, "dim_x", None)
    x = _as_observations(x, dim_x, "x")
    per_pair = isinstance(value, torch.Tensor) and value.dim() > 0
    if per_pair and value.shape != (len(x),):
        raise ValueError(f"a tensor of values needs shape ({len(x)},), got {tuple(value.shape)}")
    if guide is None and not hasattr(lcm, "encode"):
        raise ValueError("abduction needs a guide, or a model with exact inversion (encode)")
    with _seeded(seed):
        parts = []
        for start in _batches(len(x), progress, "counterfactual"):
            rows = slice(start, start + BATCH)
            v = value[rows] if per_pair else value
            parts.append(_counterfactual_batch(lcm, x[rows], k, v, guide, num_samples))
    return _concat(parts) if num_samples == 0 else _concat_samples(parts)


def _counterfactual_batch(
    lcm: Any,
    x: torch.Tensor,
    k: int,
    value: Value,
    guide: ILCMGuide | None,
    num_samples: int,
) -> dict[str, torch.Tensor]:
    if guide is not None:
        loc, scale = guide.noise_posterior(x)
    else:
        loc, scale = lcm.encode(x), None
    out = _predict(lcm, loc, k, value)
    if num_samples:
        if scale is None:
            raise ValueError("exact inversion gives one noise per observation: num_samples=0")
        noise = loc + scale * torch.randn(num_samples, *loc.shape)
        flat = noise.reshape(-1, noise.shape[-1])
        v = value.repeat(num_samples) if isinstance(value, torch.Tensor) and value.dim() else value
        sampled = _predict(lcm, flat, k, v)
        out["x_tilde_samples"] = sampled["x_tilde"].reshape(num_samples, len(x), -1)
        out["z_tilde_samples"] = sampled["z_tilde"].reshape(num_samples, len(x), -1)
    return out


def _predict(lcm: Any, noise: torch.Tensor, k: int, value: Value) -> dict[str, torch.Tensor]:
    program = pyro.condition(lcm.model, data={sites.NOISE: noise})
    with do(z={k: value}):
        values, _ = _run(program, len(noise))
    keep = (sites.NOISE, sites.NOISE_TILDE, sites.Z, sites.Z_TILDE)
    out = {name: values[name] for name in keep}
    out["x"], out["x_tilde"] = values["x_mean"], values["x_tilde_mean"]
    return out


def _concat_samples(parts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {
        k: torch.cat([p[k] for p in parts], dim=1 if k.endswith("_samples") else 0)
        for k in parts[0]
    }


@contextlib.contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Run on a private random stream seeded with ``seed`` (the global one for ``None``)."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


# -- datasets ---------------------------------------------------------------------------------
def generate(
    lcm: Any,
    kind: str,
    *,
    size: int | None = None,
    x: Any = None,
    z: Mapping[int | str, Value] | None = None,
    guide: ILCMGuide | None = None,
    seed: int = 0,
    progress: bool | None = None,
) -> xr.Dataset:
    """A dataset of pairs in the pyrocrl format, generated by a latent causal model.

    :param kind: ``"pairs"`` (the model's own pairs, interventions from its prior),
        ``"observational"`` (no intervention: both worlds share everything),
        ``"interventional"`` (every pair under ``do(z)``) or ``"counterfactual"``
        (``x`` observed, ``x~`` the counterfactual mean under ``do(z)``).
    :param size: number of pairs (not for counterfactuals, which take ``len(x)``).
    :returns: a dataset whose ``z``, ``noise`` and ``target`` are the model's own latent
        values; ``attrs`` record the kind, the intervention and the seed.
    """
    kinds = ("pairs", "observational", "interventional", "counterfactual")
    if kind not in kinds:
        raise ValueError(f"kind must be one of {kinds}, got {kind!r}")
    if kind in ("interventional", "counterfactual") and z is None:
        raise ValueError(f"a {kind} dataset needs an intervention z={{k: value}}")
    attrs: dict[str, Any] = {"generated": kind, "generator": type(lcm).__name__, "seed": seed}
    if z is not None:
        attrs["intervention"] = _describe(*_parse(z))
    if getattr(lcm, "max_targets", 1) > 1:  # targets index sets of variables
        attrs["max_targets"] = lcm.max_targets
    if kind == "counterfactual":
        if x is None:
            raise ValueError("a counterfactual dataset needs observations x")
        out = counterfactual(lcm, x, z, guide=guide, seed=seed, progress=progress)
        target = torch.full((len(out["x"]),), _parse(z)[0])
        observed = _as_observations(x, out["x"].shape[-1], "x")
        return pairs_dataset(
            observed,
            out["x_tilde"],
            z=out["z"],
            z_tilde=out["z_tilde"],
            noise=out["noise"],
            noise_tilde=out["noise_tilde"],
            target=target,
            attrs=attrs,
        )
    if size is None or size < 1:
        raise ValueError(f"give the number of pairs size ≥ 1, got {size}")
    if kind == "interventional":
        out = intervene(lcm, z, size, seed=seed, progress=progress)
    else:
        handler = poutine.do(data={sites.TARGET: torch.tensor(0)})
        if kind == "pairs":
            handler = contextlib.nullcontext()
        with _seeded(seed), torch.no_grad(), handler:
            batches = _batches(size, progress, kind)
            out = _concat([_run(lcm.model, min(BATCH, size - s))[0] for s in batches])
    return pairs_dataset(
        out["x"],
        out["x_tilde"],
        z=out["z"],
        z_tilde=out["z_tilde"],
        noise=out["noise"],
        noise_tilde=out["noise_tilde"],
        target=out["target"],
        attrs=attrs,
    )


def _describe(k: int, value: Value) -> str:
    if isinstance(value, torch.Tensor) and value.dim() > 0:
        return f"do(z{k} = one value per pair)"
    if isinstance(value, dist.Distribution):
        return f"do(z{k} ~ {type(value).__name__})"
    return f"do(z{k} = {float(value):g})"
