"""The neural building blocks of :mod:`pyrocrl.nets` and :mod:`pyrocrl.solution` in JAX.

Equinox modules with the same structure, the same maths and the same parameter names as
their PyTorch twins: :func:`from_state_dict` builds one from a PyTorch ``state_dict`` and
:func:`state_dict` gives one back, so a model trained with either backend can be used with
the other. Every module works on any leading batch dims, ``(*, F)``.

Buffers of the PyTorch modules (a preconditioner's input map, the solution masks) are
arrays here too; they are read through ``stop_gradient``, so training leaves them alone.
"""

__all__ = [
    "MLP",
    "AffineSolution",
    "GaussianEncoder",
    "GraphSolution",
    "HeuristicInterventionEncoder",
    "NormalHead",
    "StackedMLP",
    "build",
    "from_state_dict",
    "shared_calls",
    "state_dict",
]

import contextlib
import itertools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from pyrocrl.nets import inverse_softplus

Array = jax.Array
sg = jax.lax.stop_gradient


def _linear(key: Array, a: int, b: int) -> tuple[Array, Array]:
    """PyTorch's default initialization of ``nn.Linear(a, b)``: ``U(±1/√a)``."""
    bound = 1.0 / np.sqrt(a)
    kw, kb = jax.random.split(key)
    weight = jax.random.uniform(kw, (b, a), minval=-bound, maxval=bound)
    return weight, jax.random.uniform(kb, (b,), minval=-bound, maxval=bound)


class MLP(eqx.Module):
    """``in → hidden … → out`` with ReLU between layers; ``weights[i]`` is ``(out, in)``."""

    weights: list[Array]
    biases: list[Array]

    def __init__(self, in_features: int, out_features: int, hidden: Sequence[int], *, key):
        sizes = [in_features, *hidden, out_features]
        keys = jax.random.split(key, len(sizes) - 1)
        layers = [
            _linear(k, a, b) for k, (a, b) in zip(keys, itertools.pairwise(sizes), strict=True)
        ]
        self.weights = [w for w, _ in layers]
        self.biases = [b for _, b in layers]

    def __call__(self, x: Array) -> Array:
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = x @ w.T + b
            if i < last:
                x = jax.nn.relu(x)
        return x


class GaussianEncoder(eqx.Module):
    """``(μ(x), σ(x))`` as :class:`pyrocrl.nets.GaussianEncoder`: an MLP trunk with a
    final ReLU, a mean head plus a linear skip path, and ``σ = softplus(raw) + min_std``."""

    trunk: MLP
    loc: tuple[Array, Array]
    raw_scale: tuple[Array, Array]
    skip: Array
    input_mean: Array
    input_transform: Array
    min_std: float = eqx.field(static=True)

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: Sequence[int] = (64, 64),
        init_std: float = 0.01,
        min_std: float = 1e-4,
        *,
        key,
    ):
        k_trunk, k_loc, k_scale = jax.random.split(key, 3)
        self.trunk = MLP(in_features, hidden[-1], hidden[:-1], key=k_trunk)
        self.loc = _linear(k_loc, hidden[-1], out_features)
        weight = 1e-3 * jax.random.normal(k_scale, (out_features, hidden[-1]))
        bias = jnp.full((out_features,), inverse_softplus(init_std - min_std))
        self.raw_scale = (weight, bias)
        self.skip = jnp.zeros((out_features, in_features))
        self.input_mean = jnp.zeros(in_features)
        self.input_transform = jnp.eye(in_features)
        self.min_std = min_std

    def __call__(self, x: Array) -> tuple[Array, Array]:
        x = (x - sg(self.input_mean)) @ sg(self.input_transform)
        h = jax.nn.relu(self.trunk(x))
        loc = h @ self.loc[0].T + self.loc[1] + x @ self.skip.T
        raw = h @ self.raw_scale[0].T + self.raw_scale[1]
        return loc, jax.nn.softplus(raw) + self.min_std


class NormalHead(GaussianEncoder):
    """The parameters ``(μ(e), σ(e))`` of the likelihood ``p(x | e) = N(μ, σ²)``."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: Sequence[int] = (64, 64),
        init_std: float = 0.1,
        min_std: float = 1e-3,
        *,
        key,
    ):
        super().__init__(in_features, out_features, hidden, init_std, min_std, key=key)


class StackedMLP(eqx.Module):
    """``k`` MLPs at once, ``(*, k, in) → (*, k, out)``; ``weights[i]`` is ``(k, in, out)``."""

    weights: list[Array]
    biases: list[Array]

    def __init__(self, k: int, in_features: int, out_features: int, hidden: Sequence[int], *, key):
        sizes = [in_features, *hidden, out_features]
        self.weights, self.biases = [], []
        for layer_key, (a, b) in zip(
            jax.random.split(key, len(sizes) - 1), itertools.pairwise(sizes), strict=True
        ):
            w, bias = jax.vmap(lambda kk, a=a, b=b: _linear(kk, a, b))(
                jax.random.split(layer_key, k)
            )
            self.weights.append(jnp.swapaxes(w, -1, -2))
            self.biases.append(bias)

    def __call__(self, x: Array) -> Array:
        batch, (k, features) = x.shape[:-2], x.shape[-2:]
        h = jnp.swapaxes(x.reshape(-1, k, features), 0, 1)  # (k, M, in): k leading
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = jnp.matmul(h, w) + b[:, None, :]
            if i < last:
                h = jax.nn.relu(h)
        return jnp.swapaxes(h, 0, 1).reshape(*batch, k, -1)


_SHARED: dict[tuple[int, ...], Any] | None = None


@contextlib.contextmanager
def shared_calls() -> Iterator[None]:
    """Within the block, :meth:`AffineSolution.shift_scale` evaluates each (input,
    parameters) once: a common-subexpression elimination at trace time. Used while
    tracing an ELBO, where the guide and the model read the solution function on the same
    noise; without it, XLA merges the two forward passes but not their gradients."""
    global _SHARED
    previous, _SHARED = _SHARED, {}
    try:
        yield
    finally:
        _SHARED = previous


def _shared(compute: Any, module: eqx.Module, e: Array) -> Any:
    """``compute(e)``; inside :func:`shared_calls`, a second call with the same module and
    the same array returns the first result (one evaluation, one backward pass)."""
    key = (id(e), *map(id, jax.tree.leaves(module)))
    if _SHARED is not None and key in _SHARED:
        return _SHARED[key][1]
    result = compute(e)
    if _SHARED is not None:  # keep the inputs alive, so that their ids stay theirs
        _SHARED[key] = ((e, module), result)
    return result


def _mechanism_net(n: int, hidden: Sequence[int], init_log_scale: float, key: Array):
    """The stacked per-variable MLPs of ``(shift, log scale)`` with the broad start of
    :class:`pyrocrl.solution.AffineSolution` (scale ≈ ``exp(init_log_scale)``)."""
    k_net, k_shift, k_scale = jax.random.split(key, 3)
    net = StackedMLP(n, 2 * n, 2, hidden, key=k_net)
    w, b = net.weights[-1], net.biases[-1]
    w = w.at[..., 0].set(0.1 * jax.random.normal(k_shift, w[..., 0].shape))
    w = w.at[..., 1].set(1e-3 * jax.random.normal(k_scale, w[..., 1].shape))
    b = b.at[..., 0].set(0.0).at[..., 1].set(init_log_scale)
    return eqx.tree_at(lambda m: (m.weights[-1], m.biases[-1]), net, (w, b))


def _mechanisms(net: StackedMLP, u: Array, masks: Array, min_scale: float):
    """``(shift, scale)``, each ``(*, n)``, from inputs ``u (*, n)`` and ``masks (n, n)``."""
    n = u.shape[-1]
    masks = jnp.broadcast_to(masks, (*u.shape[:-1], n, n))
    out = net(jnp.concatenate([u[..., None, :] * masks, masks], axis=-1))
    return out[..., 0], jnp.exp(out[..., 1]) + min_scale


class AffineSolution(eqx.Module):
    """The implicit solution function of :class:`pyrocrl.solution.AffineSolution`:
    ``e_k = shift_k(c_k) + scale_k(c_k) z_k`` with ``c_k = [e ⊙ m_k, m_k]``.
    ``context="empty"`` gives all-zero masks (the dVAE)."""

    net: StackedMLP
    masks: Array
    n: int = eqx.field(static=True)
    min_scale: float = eqx.field(static=True)

    def __init__(
        self,
        n: int,
        hidden: Sequence[int] = (64, 64),
        min_scale: float = 0.2,
        init_log_scale: float = 2.3,
        context: str = "full",
        *,
        key,
    ):
        self.net = _mechanism_net(n, hidden, init_log_scale, key)
        self.masks = 1.0 - jnp.eye(n) if context == "full" else jnp.zeros((n, n))
        self.n, self.min_scale = n, min_scale

    def shift_scale(self, e: Array) -> tuple[Array, Array]:
        """``(shift, scale)``, each ``(*, n)``, from the noise ``(*, n)``.

        Inside :func:`shared_calls`, a second call on the same arrays returns the first
        call's result, so that a guide and a model that both evaluate the solution on the
        same noise share one evaluation — and one backward pass."""
        return _shared(lambda e: _mechanisms(self.net, e, sg(self.masks), self.min_scale), self, e)

    def __call__(self, e: Array) -> Array:
        """Causal variables ``z = s(e)``."""
        shift, scale = self.shift_scale(e)
        return (e - shift) / scale


class GraphSolution(eqx.Module):
    """The explicit solution function of :class:`pyrocrl.solution.GraphSolution`: the
    mechanisms read the parents' causal values through a learned DAG (edge logits and
    variable positions, hard with straight-through gradients, or soft), solved by ``n``
    sweeps."""

    net: StackedMLP
    edge_logits: Array
    positions: Array
    off_diagonal: Array
    n: int = eqx.field(static=True)
    min_scale: float = eqx.field(static=True)
    hard: bool = eqx.field(static=True)
    order: str = eqx.field(static=True)

    def __init__(
        self,
        n: int,
        hidden: Sequence[int] = (64, 64),
        min_scale: float = 0.2,
        init_log_scale: float = 2.3,
        init_edge_logit: float = 4.0,
        hard: bool = True,
        order: str = "learned",
        *,
        key,
    ):
        if order not in ("learned", "fixed"):
            raise ValueError(f"order must be 'learned' or 'fixed', got {order!r}")
        self.net = _mechanism_net(n, hidden, init_log_scale, key)
        self.edge_logits = jnp.full((n, n), float(init_edge_logit))
        self.positions = jnp.zeros(n)
        self.off_diagonal = 1.0 - jnp.eye(n)
        self.n, self.min_scale, self.hard, self.order = n, min_scale, hard, order

    def _before(self) -> tuple[Array, Array]:
        """``(hard, soft)`` orientation ``(n, n)``: ``[i, j]`` for ``i`` before ``j``."""
        index = jnp.arange(self.n, dtype=self.positions.dtype)
        rho = self.positions if self.order == "learned" else index
        key = rho[None, :] - rho[:, None]  # [i, j] = ρ_j − ρ_i
        ties = (key == 0) & (index[None, :] > index[:, None])
        hard = ((key > 0) | ties).astype(rho.dtype)
        if self.order == "fixed":
            return hard, hard
        return hard, jax.nn.sigmoid(key) * sg(self.off_diagonal)

    def edge_probs(self) -> Array:
        """Soft adjacency ``(n, n)``: ``σ(γ_ij)`` times the soft orientation of ``i → j``."""
        return jax.nn.sigmoid(self.edge_logits) * self._before()[1]

    def adjacency(self) -> Array:
        """The adjacency the mechanisms use, ``(n, n)`` (``[i, j]`` for ``z_i → z_j``)."""
        before, soft_before = self._before()
        probs = jax.nn.sigmoid(self.edge_logits) * soft_before
        if not self.hard:
            return probs
        hard = (jax.nn.sigmoid(self.edge_logits) > 0.5).astype(probs.dtype) * before
        return hard + probs - sg(probs)

    def solve(self, e: Array) -> tuple[Array, Array, Array]:
        """``(z, shift, scale)``, each ``(*, n)``, at the solution ``z = s(e)``."""

        def compute(e: Array) -> tuple[Array, Array, Array]:
            masks = self.adjacency().T  # row k: the parents of z_k
            z = jnp.zeros_like(e)
            for _ in range(self.n):
                shift, scale = _mechanisms(self.net, z, masks, self.min_scale)
                z = (e - shift) / scale
            return z, shift, scale

        return _shared(compute, self, e)

    def shift_scale(self, e: Array) -> tuple[Array, Array]:
        """``(shift, scale)`` of every variable, each ``(*, n)``, from the noise ``(*, n)``."""
        _, shift, scale = self.solve(e)
        return shift, scale

    def __call__(self, e: Array) -> Array:
        """Causal variables ``z = s(e)``."""
        return self.solve(e)[0]


class HeuristicInterventionEncoder(eqx.Module):
    """``q(I | x, x~)`` as :class:`pyrocrl.inference.guides.HeuristicInterventionEncoder`;
    the offset is an argument (the recipe schedules it)."""

    alpha: Array
    beta: Array
    gamma: Array

    def __init__(self, init: tuple[float, float, float] = (-3.0, 15.0, 15.0)):
        self.alpha, self.beta, self.gamma = (jnp.asarray(float(v)) for v in init)

    def __call__(self, loc: Array, loc_tilde: Array, offset: Array | float) -> Array:
        delta = loc_tilde - loc
        logits = self.alpha + self.beta * jnp.abs(delta) + self.gamma * delta**2
        logits = jnp.concatenate([jnp.zeros_like(logits[..., :1]), logits], axis=-1)
        probs = jax.nn.softmax(logits, axis=-1)
        return (probs + offset) / (1 + probs.shape[-1] * offset)


def build(cls: type, *args: Any, key: Array | None, **kwargs: Any) -> Any:
    """``cls(*args, key=key, **kwargs)``; with ``key=None`` only the shapes of its arrays
    (no computation), to be filled by :func:`from_state_dict`."""
    if key is None:
        shape = jax.ShapeDtypeStruct((2,), jnp.uint32)
        return eqx.filter_eval_shape(lambda k: cls(*args, key=k, **kwargs), shape)
    return cls(*args, key=key, **kwargs)


# -- conversion to and from PyTorch state dicts ------------------------------------------------
def _mlp_names(prefix: str, layers: int, stride: int = 2) -> list[str]:
    """Names of the ``nn.Linear`` layers of an ``nn.Sequential`` MLP with ReLUs between."""
    return [f"{prefix}{stride * i}" for i in range(layers)]


def _paths(module: eqx.Module, prefix: str = "") -> dict[str, Any]:
    """PyTorch ``state_dict`` name → (getter, transpose) of each parameter of ``module``."""
    if isinstance(module, GaussianEncoder):
        names = _mlp_names(f"{prefix}trunk.0.", len(module.trunk.weights))
        out: dict[str, Any] = {}
        for i, name in enumerate(names):
            out[f"{name}.weight"] = (lambda m, i=i: m.trunk.weights[i], False)
            out[f"{name}.bias"] = (lambda m, i=i: m.trunk.biases[i], False)
        out[f"{prefix}loc.weight"] = (lambda m: m.loc[0], False)
        out[f"{prefix}loc.bias"] = (lambda m: m.loc[1], False)
        out[f"{prefix}raw_scale.weight"] = (lambda m: m.raw_scale[0], False)
        out[f"{prefix}raw_scale.bias"] = (lambda m: m.raw_scale[1], False)
        out[f"{prefix}skip.weight"] = (lambda m: m.skip, False)
        out[f"{prefix}input_mean"] = (lambda m: m.input_mean, False)
        out[f"{prefix}input_transform"] = (lambda m: m.input_transform, False)
        return out
    if isinstance(module, AffineSolution | GraphSolution):
        if isinstance(module, AffineSolution):
            out = {f"{prefix}masks": (lambda m: m.masks, False)}
        else:
            out = {
                f"{prefix}{name}": (lambda m, name=name: getattr(m, name), False)
                for name in ("edge_logits", "positions", "off_diagonal")
            }
        for i in range(len(module.net.weights)):
            out[f"{prefix}net.weights.{i}"] = (lambda m, i=i: m.net.weights[i], False)
            out[f"{prefix}net.biases.{i}"] = (lambda m, i=i: m.net.biases[i], False)
        return out
    if isinstance(module, HeuristicInterventionEncoder):
        return {
            f"{prefix}{name}": (lambda m, name=name: getattr(m, name), False)
            for name in ("alpha", "beta", "gamma")
        }
    raise TypeError(f"no PyTorch twin known for {type(module).__name__}")


def from_state_dict(module: eqx.Module, tensors: Mapping[str, Any], prefix: str = "") -> Any:
    """``module`` with every parameter replaced by the entry of a PyTorch ``state_dict``.

    :param module: a module of this file with the right sizes (its values are ignored).
    :param tensors: the ``state_dict`` (torch tensors or arrays).
    :param prefix: the module's name in ``tensors``, e.g. ``"likelihood."``.
    :raises KeyError: naming a missing parameter; :raises ValueError: on a shape mismatch.
    """
    paths = _paths(module, prefix)
    getters, values = [], []
    for name, (getter, _) in paths.items():
        if name not in tensors:
            raise KeyError(f"the state dict has no {name!r}")
        value = np.asarray(
            tensors[name].detach().cpu().numpy()
            if hasattr(tensors[name], "detach")
            else tensors[name],
            dtype=np.float32,
        )
        if value.shape != getter(module).shape:
            raise ValueError(
                f"{name}: shape {value.shape} in the state dict, {getter(module).shape} here"
            )
        getters.append(getter)
        values.append(jnp.asarray(value))
    return eqx.tree_at(lambda m: [g(m) for g in getters], module, values)


def state_dict(module: eqx.Module, prefix: str = "") -> dict[str, np.ndarray]:
    """The parameters of ``module`` under their PyTorch ``state_dict`` names."""
    return {
        name: np.asarray(getter(module)) for name, (getter, _) in _paths(module, prefix).items()
    }
