"""The ILCM as a NumPyro program: the JAX twin of :mod:`pyrocrl.models.ilcm`.

Same sites, same shapes, same maths, so that a trained model moves between backends
(:meth:`NumPyroILCM.from_torch`, :meth:`NumPyroILCM.to_torch`) and the Pyro tools
(queries, graph discovery, metrics) work on models trained with JAX. Networks are Equinox
modules from :mod:`pyrocrl.nets_jax`, registered with :func:`numpyro.contrib.module.eqx_module`
under the names ``likelihood`` and ``solution``.
"""

__all__ = ["InterventionValue", "NumPyroILCM"]

from collections.abc import Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro import handlers
from numpyro.contrib.module import eqx_module
from numpyro.distributions import constraints

from pyrocrl import sites
from pyrocrl.nets_jax import (
    AffineSolution,
    GraphSolution,
    NormalHead,
    build,
    from_state_dict,
    state_dict,
)

Array = jax.Array


class InterventionValue(dist.Distribution):
    """Density of the new value ``v = z~_I``: ``N(0, 1)``, or with ``prior=False`` the
    improper flat prior on the intervened noise, whose density in ``v`` is ``scale_I``
    (as ``value_dist`` of the Pyro ILCM). ``prior`` may be a traced boolean, so one
    compiled program serves both phases of a recipe. Samples are ``N(0, 1)``."""

    support = constraints.real
    reparametrized_params: ClassVar[list[str]] = ["scale"]

    def __init__(self, scale: Array, prior: Array | bool = True) -> None:
        self.scale, self.prior = scale, jnp.asarray(prior)
        super().__init__(batch_shape=jnp.shape(scale))

    def sample(self, key: Array, sample_shape: tuple[int, ...] = ()) -> Array:
        return jax.random.normal(key, sample_shape + self.batch_shape)

    def log_prob(self, value: Array) -> Array:
        normal = -0.5 * value**2 - 0.5 * np.log(2 * np.pi)
        return jnp.where(self.prior, normal, jnp.log(self.scale) + 0.0 * value)


SOLUTIONS = ("affine", "affine-empty", "graph")
"""The solution functions a twin can have."""


def intervention_mask(target: Array, n: int) -> tuple[Array, Array]:
    """``(onehot (*, n), intervened (*,))`` for targets in ``0 … n`` (0 = none)."""
    onehot = target[..., None] == jnp.arange(1, n + 1)
    return onehot, target > 0


def select(values: Array, onehot: Array, intervened: Array, default: float) -> Array:
    """The intervened component of ``values (*, n)``, or ``default`` where none is."""
    return jnp.where(intervened, jnp.sum(values * onehot, -1), default)


class NumPyroILCM:
    """The implicit latent causal model as a NumPyro program (see
    :class:`pyrocrl.models.ilcm.ILCM` for the generative story; sites and shapes are the
    same). The built-in parts only: a Normal likelihood and a built-in solution function —
    ``"affine"`` (the ILCM), ``"affine-empty"`` (the dVAE and β-VAE baselines: all-zero
    masks) or ``"graph"`` (the ELCM: a learned graph, whose prior is the factor site
    ``graph``, as in :class:`pyrocrl.models.elcm.ELCM`).

    :param dim_x: observation size ``D``.
    :param n: number of causal variables.
    :param hidden: hidden layer sizes of the decoder and the solution networks.
    :param key: a JAX random key (or an integer seed) for the initial networks; ``None``
        gives networks of the right shapes only, to be filled by :meth:`load_state_dict`.
    :param solution: the solution function, by the name the Pyro model's config gives it.
    :param edge_penalty, init_edge_logit, hard_graph, order: options of the ``"graph"``
        solution (see :class:`~pyrocrl.models.elcm.ELCM`).
    """

    def __init__(
        self,
        dim_x: int,
        n: int,
        *,
        hidden: Sequence[int] = (64, 64),
        key: Array | int | None = 0,
        solution: str = "affine",
        edge_penalty: float = 0.01,
        init_edge_logit: float = 4.0,
        hard_graph: bool = True,
        order: str = "learned",
    ) -> None:
        if solution not in SOLUTIONS:
            raise ValueError(f"solution must be one of {SOLUTIONS}, got {solution!r}")
        if dim_x < 1 or n < 1:
            raise ValueError(f"need dim_x ≥ 1 and n ≥ 1, got dim_x={dim_x}, n={n}")
        if isinstance(key, int):
            key = jax.random.PRNGKey(key)
        k_lik, k_sol = jax.random.split(key) if key is not None else (None, None)
        self.dim_x, self.n, self.hidden = dim_x, n, tuple(hidden)
        self.likelihood = build(NormalHead, n, dim_x, hidden, key=k_lik)
        self.edge_penalty = float(edge_penalty)
        if solution == "graph":
            self.solution = build(GraphSolution, n, hidden, key=k_sol, hard=hard_graph,
                                  init_edge_logit=init_edge_logit, order=order)  # fmt: skip
        else:
            context = "empty" if solution == "affine-empty" else "full"
            self.solution = build(AffineSolution, n, hidden, key=k_sol, context=context)
        self.intervention_probs = np.full(n + 1, 1.0 / (n + 1), dtype=np.float32)
        self.config = {
            "dim_x": dim_x,
            "n": n,
            "hidden": list(hidden),
            "likelihood": "normal",
            "solution": solution,
        }
        self.independent_views = False
        """Trained as a VAE on each view (the twin of a β-VAE)."""

    # -- networks, as registered in the program ------------------------------------------------
    def _nets(self) -> tuple[NormalHead, AffineSolution | GraphSolution]:
        return eqx_module("likelihood", self.likelihood), eqx_module("solution", self.solution)

    def x_dist(self, likelihood: NormalHead, e: Array) -> dist.Distribution:
        loc, scale = likelihood(e)
        return dist.Normal(loc, scale).to_event(1)

    # -- the programs -------------------------------------------------------------------------
    def model(
        self,
        x: Array | None = None,
        x_tilde: Array | None = None,
        *,
        size: int | None = None,
        intervention_prior: Array | bool = True,
        **_: Any,
    ) -> dict[str, Array]:
        """The pair program; ``x, x_tilde`` of shape ``(N, D)``, or ``None`` to sample
        ``size`` pairs. Guide-only options are accepted and ignored."""
        size = sites.plate_size(size, x, x_tilde, dim_x=self.dim_x)
        likelihood, solution = self._nets()
        n = self.n
        with numpyro.plate(sites.PAIR_PLATE, size):
            noise = numpyro.sample(sites.NOISE, dist.Normal(0.0, 1.0).expand([n]).to_event(1))
            target = numpyro.sample(sites.TARGET, dist.Categorical(self.intervention_probs))
            shift, scale = solution.shift_scale(noise)
            onehot, intervened = intervention_mask(target, n)
            shift_i = select(shift, onehot, intervened, 0.0)
            scale_i = select(scale, onehot, intervened, 1.0)
            with handlers.mask(mask=intervened):
                value = numpyro.sample(sites.VALUE, InterventionValue(scale_i, intervention_prior))
            value = jnp.broadcast_to(value, shift_i.shape)
            noise_tilde = jnp.where(onehot, (shift_i + scale_i * value)[..., None], noise)
            numpyro.deterministic(sites.NOISE_TILDE, noise_tilde)
            z = numpyro.deterministic(sites.Z, (noise - shift) / scale)
            z_tilde = numpyro.deterministic(sites.Z_TILDE, solution(noise_tilde))
            x = numpyro.sample(sites.X, self.x_dist(likelihood, noise), obs=x)
            x_tilde = numpyro.sample(
                sites.X_TILDE, self.x_dist(likelihood, noise_tilde), obs=x_tilde
            )
            if isinstance(solution, GraphSolution):  # the graph prior, once per pair
                prior = -self.edge_penalty * solution.edge_probs().sum()
                numpyro.factor(sites.GRAPH, jnp.broadcast_to(prior, (size,)))
        values = (noise, target, value, noise_tilde, z, z_tilde, x, x_tilde)
        return dict(zip(sites.PAIR_SITES, values, strict=True))

    def independent_model(
        self, x: Array | None = None, x_tilde: Array | None = None, *, size: int | None = None
    ) -> None:
        """Both views with independent noise: a VAE on each view (pretraining)."""
        size = sites.plate_size(size, x, x_tilde, dim_x=self.dim_x)
        likelihood = eqx_module("likelihood", self.likelihood)
        prior = dist.Normal(0.0, 1.0).expand([self.n]).to_event(1)
        with numpyro.plate(sites.PAIR_PLATE, size):
            noise = numpyro.sample(sites.NOISE, prior)
            noise_tilde = numpyro.sample(sites.NOISE_TILDE, prior)
            numpyro.sample(sites.X, self.x_dist(likelihood, noise), obs=x)
            numpyro.sample(sites.X_TILDE, self.x_dist(likelihood, noise_tilde), obs=x_tilde)

    # -- the other backend --------------------------------------------------------------------
    @classmethod
    def from_torch(cls, model: Any) -> "NumPyroILCM":
        """The twin of a Pyro model with built-in parts: an ILCM, an ELCM, a dVAE or a
        β-VAE with the Normal likelihood."""
        config = getattr(model, "config", {})
        solution = config.get("solution")
        if config.get("likelihood") != "normal" or solution not in SOLUTIONS:
            raise ValueError(
                "only models with the built-in parts (a Normal likelihood and a built-in "
                "solution function) have a JAX twin"
            )
        graph = {}
        if solution == "graph":
            keys = ("edge_penalty", "init_edge_logit", "hard_graph", "order")
            graph = {k: config[k] for k in keys}
        twin = cls(model.dim_x, model.n, hidden=config["hidden"], key=None, solution=solution,
                   **graph)  # fmt: skip
        twin.load_state_dict(model.state_dict())
        twin.independent_views = model.independent_views
        return twin

    def load_state_dict(self, tensors: dict[str, Any]) -> None:
        """Take the parameters from a Pyro model's ``state_dict`` (or :meth:`state_dict`)."""
        self.likelihood = from_state_dict(self.likelihood, tensors, "likelihood.")
        self.solution = from_state_dict(self.solution, tensors, "solution.")
        self.intervention_probs = jnp.asarray(np.asarray(tensors["intervention_probs"]))

    def state_dict(self) -> dict[str, np.ndarray]:
        """The parameters under the names of the Pyro model's ``state_dict``."""
        return {
            **state_dict(self.likelihood, "likelihood."),
            **state_dict(self.solution, "solution."),
            "intervention_probs": np.asarray(self.intervention_probs),
        }
