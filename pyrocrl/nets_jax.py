"""Equinox twins of the PyTorch networks of :mod:`pyrocrl.nets` and :mod:`pyrocrl.solution`
(the guide's own are in :mod:`pyrocrl.inference.guides_jax`): the only part of the JAX
backend written twice.

A twin mirrors its PyTorch module field by field: every field is named as the submodule,
parameter or buffer it stands for, and :class:`Sequential` keeps PyTorch's layer indices
(ReLUs included). So the map between the two is the structure itself — :func:`twin` builds
one from a PyTorch module by :data:`TWINS`, and the ``state_dict`` name of every array is its
pytree path with the ``layers`` steps left out (:func:`state_dict`, :func:`load_state_dict`).
The maths of the solution functions is not twinned: both backends run
:class:`~pyrocrl.solution.AffineSolutionMaths` and
:class:`~pyrocrl.solution.GraphSolutionMaths`. Every module works on any leading batch
dims, ``(*, F)``.

Buffers of the PyTorch modules (a preconditioner's input map, the solution masks) are
arrays here too, read through ``stop_gradient`` so that training leaves them alone.
"""

__all__ = [
    "TWINS",
    "FeatureScaling",
    "GaussianEncoder",
    "Linear",
    "ReLU",
    "Sequential",
    "StackedMLP",
    "TwinProgram",
    "load_state_dict",
    "state_dict",
    "twin",
]

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import torch
from torch import nn

from pyrocrl import features, nets, solution
from pyrocrl.backends import numpyro as numpyro_backend

Array = jax.Array
sg = jax.lax.stop_gradient


class Linear(eqx.Module):
    """``x Wᵀ + b``; ``weight (out, in)``, ``bias (out,)`` or ``None``."""

    weight: Array
    bias: Array | None

    def __call__(self, x: Array) -> Array:
        y = x @ self.weight.T
        return y if self.bias is None else y + self.bias


class ReLU(eqx.Module):
    def __call__(self, x: Array) -> Array:
        return jax.nn.relu(x)


class Sequential(eqx.Module):
    """Layers applied in turn; ``layers[i]`` is PyTorch's ``i``-th child."""

    layers: list

    def __call__(self, x: Array) -> Array:
        for layer in self.layers:
            x = layer(x)
        return x


class StackedMLP(eqx.Module):
    """``k`` MLPs at once, ``(*, k, in) → (*, k, out)``; ``weights[i]`` is ``(k, in, out)``."""

    weights: list
    biases: list

    def __call__(self, x: Array) -> Array:
        batch, (k, features) = x.shape[:-2], x.shape[-2:]
        h = jnp.swapaxes(x.reshape(-1, k, features), 0, 1)  # (k, M, in)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = jnp.matmul(h, w) + b[:, None, :]
            if i < last:
                h = jax.nn.relu(h)
        return jnp.swapaxes(h, 0, 1).reshape(*batch, k, -1)


class GaussianEncoder(eqx.Module):
    """``(μ(x), σ(x))`` as :class:`pyrocrl.nets.GaussianEncoder`."""

    trunk: Sequential
    loc: Linear
    raw_scale: Linear
    skip: Linear
    input_mean: Array
    input_transform: Array
    min_std: float = eqx.field(static=True)

    def __call__(self, x: Array) -> tuple[Array, Array]:
        x = (x - sg(self.input_mean)) @ sg(self.input_transform)
        h = self.trunk(x)
        return self.loc(h) + self.skip(x), jax.nn.softplus(self.raw_scale(h)) + self.min_std


class NormalHead(GaussianEncoder):
    """The likelihood ``p(x | e) = N(μ(e), σ(e)²)``, event shape ``(D,)``."""

    def __call__(self, e: Array):  # type: ignore[override]
        loc, scale = super().__call__(e)
        return numpyro_backend.dist.Normal(loc, scale).to_event(1)


class FeatureScaling(eqx.Module):
    """``u = (x − loc) / scale`` as :class:`pyrocrl.features.FeatureScaling` (fixed)."""

    loc: Array
    scale: Array

    def __call__(self, x: Array) -> Array:
        return (x - sg(self.loc)) / sg(self.scale)


class AffineSolution(solution.AffineSolutionMaths, eqx.Module):
    """The implicit solution function of :class:`pyrocrl.solution.AffineSolution`."""

    backend = numpyro_backend
    net: StackedMLP
    masks: Array
    spline: Array | None
    n: int = eqx.field(static=True)
    min_scale: float = eqx.field(static=True)
    bound: float = eqx.field(static=True)

    def __call__(self, e: Array) -> Array:
        return self.causal_variables(e)


class GraphSolution(solution.GraphSolutionMaths, eqx.Module):
    """The explicit solution function of :class:`pyrocrl.solution.GraphSolution`."""

    backend = numpyro_backend
    net: StackedMLP
    edge_logits: Array
    positions: Array
    off_diagonal: Array
    n: int = eqx.field(static=True)
    min_scale: float = eqx.field(static=True)
    hard: bool = eqx.field(static=True)
    order: str = eqx.field(static=True)

    def __call__(self, e: Array) -> Array:
        return self.causal_variables(e)


TWINS: dict[type, type] = {
    nn.Linear: Linear,
    nn.ReLU: ReLU,
    nn.Sequential: Sequential,
    nets.MLP: Sequential,
    nets.StackedMLP: StackedMLP,
    nets.GaussianEncoder: GaussianEncoder,
    nets.NormalHead: NormalHead,
    features.FeatureScaling: FeatureScaling,
    solution.AffineSolution: AffineSolution,
    solution.GraphSolution: GraphSolution,
}
"""The twin of each PyTorch network class (exact classes: a subclass may change the maths);
the guide's networks register theirs in :mod:`pyrocrl.inference.guides_jax`."""


def _convert(value: Any) -> Any:
    if isinstance(value, nn.ParameterList):
        return [_convert(p) for p in value]
    if isinstance(value, nn.Module):
        return twin(value)
    if hasattr(value, "detach"):
        return jnp.asarray(value.detach().cpu().numpy())
    return value


def twin(module: nn.Module) -> eqx.Module:
    """The Equinox twin of a PyTorch network, with the same values.

    :raises TypeError: for a class without a twin (a custom part).
    """
    cls = TWINS.get(type(module))
    if cls is None:
        raise TypeError(f"{type(module).__name__} has no JAX twin (built-in networks only)")
    if cls is Sequential:
        return Sequential([twin(child) for child in module.children()])
    fields = {f.name: _convert(getattr(module, f.name)) for f in dataclasses.fields(cls)}
    return cls(**fields)


def _name(path: tuple, name: str = "") -> str:
    """The ``state_dict`` name of a pytree path below ``name``: attribute names and
    indices, no ``layers``."""
    parts = [name] if name else []
    for key in path:
        part = str(getattr(key, "name", getattr(key, "idx", key)))
        if part != "layers":
            parts.append(part)
    return ".".join(parts)


def state_dict(module: eqx.Module | Array, name: str = "") -> dict[str, torch.Tensor]:
    """The arrays of a twin (or one array) as the ``state_dict`` of its PyTorch module,
    whose attribute ``name`` it is (``""``: the module itself)."""
    leaves = jax.tree_util.tree_flatten_with_path(module)[0]
    return {_name(path, name): torch.as_tensor(np.array(leaf)) for path, leaf in leaves}


def load_state_dict(module: Any, tensors: Mapping[str, Any], name: str = "") -> Any:
    """``module`` (a twin or an array) with every array replaced by the entry of a
    ``state_dict`` (torch tensors or arrays); ``name`` as in :func:`state_dict`.

    :raises KeyError: naming a missing entry; :raises ValueError: on a shape mismatch.
    """
    leaves, treedef = jax.tree_util.tree_flatten_with_path(module)
    values = []
    for path, leaf in leaves:
        key = _name(path, name)
        if key not in tensors:
            raise KeyError(f"the state dict has no {key!r}")
        value = tensors[key]
        value = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value)
        if value.shape != leaf.shape:
            raise ValueError(f"{key}: shape {value.shape} in the state dict, {leaf.shape} here")
        values.append(jnp.asarray(value, dtype=leaf.dtype))
    return jax.tree_util.tree_unflatten(treedef, values)


class TwinProgram:
    """A program whose networks are twins: the attributes named in ``parts`` (networks or
    arrays) make its ``state_dict``, under the names of the PyTorch module it mirrors."""

    parts: tuple[str, ...] = ()

    def replace(self, **parts: Any) -> Any:
        """A copy with other parts (e.g. networks holding the values being trained)."""
        twin = copy.copy(self)
        twin.__dict__.update(parts)
        return twin

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The parameters, to load into the PyTorch module (``load_state_dict``)."""
        return {
            k: v for part in self.parts for k, v in state_dict(getattr(self, part), part).items()
        }

    def load_state_dict(self, tensors: Mapping[str, Any]) -> None:
        """Take the parameters from the PyTorch module's ``state_dict`` (or :meth:`state_dict`)."""
        for part in self.parts:
            setattr(self, part, load_state_dict(getattr(self, part), tensors, part))
