"""The implicit latent causal model (ILCM) of Brehmer et al. (2022) as a Pyro program."""

__all__ = ["ILCM"]

from collections.abc import Sequence
from typing import Any, ClassVar

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions import constraints
from pyro.distributions.transforms import AffineTransform
from pyro.nn import PyroModule
from torch import nn
from torch.nn import functional as F

from pyrocrl import sites
from pyrocrl.nets import BernoulliHead, LaplaceHead, NormalHead
from pyrocrl.solution import AffineSolution

LIKELIHOODS = {"normal": NormalHead, "laplace": LaplaceHead, "bernoulli": BernoulliHead}


class ILCM(PyroModule):
    """Implicit latent causal model for weakly supervised pairs ``(x, x~)``.

    Generative story of one pair (site names in quotes; ``*`` is the plate ``pair``)::

        e      ~ p(e) = N(0, I_n)                    # "noise"        (*, n)
        I      ~ p(I) = Categorical(π), I ∈ 0 … n    # "target"       (*,)   0 = none
        v      ~ p(v) = N(0, 1)                      # "value"        (*,)   the new z~_I
        e~     = e with e~_I = T_e(v)_I              # "noise_tilde"  (*, n)
        z, z~  = s(e), s(e~)                         # "z", "z_tilde" (*, n)
        x      ~ p(x | e),  x~ ~ p(x | e~)           # "x", "x_tilde" (*, D)

    ``s`` is the solution function (:class:`~pyrocrl.solution.AffineSolution`): ``z = s(e)``
    and ``T_e`` maps an intervention value to the noise that produces it, given the other
    components. The graph stays implicit in ``s``; the decoder reads noise, not causal
    variables. ``value`` only matters when ``I ≥ 1``; its log-density is masked out for
    ``I = 0``.

    Every part can be swapped without touching inference code: pass another ``likelihood``
    module (any ``nn.Module`` mapping noise ``(*, n)`` to a distribution over ``x`` with
    event shape ``(D,)``, e.g. :class:`~pyrocrl.nets.LaplaceHead`) or ``solution``, or
    subclass and override :meth:`noise_dist`, :meth:`target_dist` (e.g. a learned
    intervention prior) or :meth:`value_dist` (the intervention distribution).

    :param int dim_x: observation size ``D``.
    :param int n: number of causal variables.
    :param hidden: hidden layer sizes of the default decoder and solution networks.
    :param likelihood: decoder ``e ↦ p(x | e)``: ``"normal"`` (default, a heteroskedastic
        Gaussian MLP), ``"laplace"``, ``"bernoulli"``, or any module.
    :param solution: solution function; default :class:`~pyrocrl.solution.AffineSolution`.
    :param intervention_probs: ``π``, shape ``(n + 1,)``; uniform over {none, z1 … zn}.
    """

    independent_views: ClassVar[bool] = False
    """``True`` for models of two independent views (the β-VAE baseline): they are trained
    and scored with :meth:`independent_model` and have no intervention posterior."""

    def __init__(
        self,
        dim_x: int,
        n: int,
        *,
        hidden: Sequence[int] = (64, 64),
        likelihood: str | nn.Module = "normal",
        solution: AffineSolution | None = None,
        intervention_probs: Sequence[float] | torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if dim_x < 1 or n < 1:
            raise ValueError(f"need dim_x ≥ 1 and n ≥ 1, got dim_x={dim_x}, n={n}")
        self.dim_x, self.n = dim_x, n
        if isinstance(likelihood, str):
            if likelihood not in LIKELIHOODS:
                raise ValueError(
                    f"likelihood must be one of {sorted(LIKELIHOODS)} or a module, "
                    f"got {likelihood!r}"
                )
            self.likelihood = LIKELIHOODS[likelihood](n, dim_x, hidden)
        else:
            self.likelihood = likelihood
        self.solution = solution if solution is not None else AffineSolution(n, hidden)
        if self.solution.n != n:
            raise ValueError(f"the solution function has {self.solution.n} variables, not {n}")
        probs = (
            torch.full((n + 1,), 1.0 / (n + 1))
            if intervention_probs is None
            else torch.as_tensor(intervention_probs, dtype=torch.get_default_dtype())
        )
        if probs.shape != (n + 1,) or (probs < 0).any() or abs(float(probs.sum()) - 1) > 1e-6:
            raise ValueError(f"intervention_probs must be {n + 1} probabilities summing to 1")
        self.register_buffer("intervention_probs", probs)
        # enough to rebuild the model from a checkpoint, when its parts are the built-in ones
        self.config = {
            "dim_x": dim_x,
            "n": n,
            "hidden": list(hidden),
            "likelihood": likelihood if isinstance(likelihood, str) else None,
            "solution": "affine" if solution is None else None,
        }

    # -- the swappable parts ---------------------------------------------------------------
    def noise_dist(self) -> dist.Distribution:
        """Prior of the exogenous noise, event shape ``(n,)``."""
        return dist.Normal(0.0, 1.0).expand([self.n]).to_event(1)

    def target_dist(self) -> dist.Distribution:
        """Prior of the intervention target over ``0 … n``."""
        return dist.Categorical(self.intervention_probs)

    def value_dist(
        self, shift: torch.Tensor, scale: torch.Tensor, intervention_prior: bool = True
    ) -> dist.Distribution:
        """Intervention distribution of the new value ``v = z~_I``.

        With ``intervention_prior=False`` the intervened *noise* ``e~_I`` gets an improper
        flat prior instead, so the density of ``v`` is ``scale_I`` (the Jacobian of
        ``v ↦ e~_I``). Training recipes use this early on, before the solution function is
        worth fitting.

        :param shift, scale: ``T_e`` of the intervened component, each ``(*,)``.
        """
        if intervention_prior:
            return dist.Normal(torch.zeros_like(shift), torch.ones_like(scale))
        flat = dist.ImproperUniform(constraints.real, shift.shape, ())
        return dist.TransformedDistribution(flat, AffineTransform(shift, scale).inv)

    def x_dist(self, e: torch.Tensor) -> dist.Distribution:
        """Observation likelihood ``p(x | e)``, event shape ``(D,)``."""
        return self.likelihood(e)

    def pair_factors(self, size: int) -> None:
        """Extra log-density terms of each pair (``pyro.factor`` sites), called inside the
        pair plate at the end of :meth:`model`; none here. ``size`` is the plate size."""

    # -- the program -----------------------------------------------------------------------
    def model(
        self,
        x: torch.Tensor | None = None,
        x_tilde: torch.Tensor | None = None,
        *,
        size: int | None = None,
        intervention_prior: bool = True,
        deterministic: bool = False,
    ) -> dict[str, torch.Tensor]:
        """The pair program. ``x, x_tilde``: ``(N, D)`` observations, or ``None`` to sample
        ``size`` pairs. ``deterministic`` is a guide option, accepted for a shared signature.

        :returns: the value of every site as used downstream.
        """
        del deterministic
        size = sites.plate_size(size, x, x_tilde, dim_x=self.dim_x)
        with pyro.plate(sites.PAIR_PLATE, size):
            noise = pyro.sample(sites.NOISE, self.noise_dist())
            target = pyro.sample(sites.TARGET, self.target_dist())
            shift, scale = self.solution.shift_scale(noise)
            onehot, intervened = intervention_mask(target, self.n)
            shift_i = select(shift, onehot, intervened, 0.0)
            scale_i = select(scale, onehot, intervened, 1.0)
            with poutine.mask(mask=intervened):
                value = pyro.sample(
                    sites.VALUE, self.value_dist(shift_i, scale_i, intervention_prior)
                )
            # an intervention by ``do`` may be a scalar: give it the batch shape
            value = torch.broadcast_to(torch.as_tensor(value, dtype=shift_i.dtype), shift_i.shape)
            target = torch.broadcast_to(
                target, torch.broadcast_shapes(target.shape, shift_i.shape)
            )
            noise_tilde = torch.where(onehot, (shift_i + scale_i * value).unsqueeze(-1), noise)
            noise_tilde = pyro.deterministic(sites.NOISE_TILDE, noise_tilde, event_dim=1)
            z = pyro.deterministic(sites.Z, (noise - shift) / scale, event_dim=1)
            z_tilde = pyro.deterministic(sites.Z_TILDE, self.solution(noise_tilde), event_dim=1)
            x = pyro.sample(sites.X, self.x_dist(noise), obs=x)
            x_tilde = pyro.sample(sites.X_TILDE, self.x_dist(noise_tilde), obs=x_tilde)
            self.pair_factors(size)
        values = (noise, target, value, noise_tilde, z, z_tilde, x, x_tilde)
        return dict(zip(sites.PAIR_SITES, values, strict=True))

    def forward(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        return self.model(*args, **kwargs)

    def independent_model(
        self,
        x: torch.Tensor | None = None,
        x_tilde: torch.Tensor | None = None,
        *,
        size: int | None = None,
    ) -> None:
        """Both views with independent noise, ``e, e~ ~ N(0, I)``: a VAE on each view.

        Sites ``noise`` and ``noise_tilde`` are both latent here. Used to pretrain encoder
        and decoder before the causal structure is switched on.
        """
        size = sites.plate_size(size, x, x_tilde, dim_x=self.dim_x)
        with pyro.plate(sites.PAIR_PLATE, size):
            noise = pyro.sample(sites.NOISE, self.noise_dist())
            noise_tilde = pyro.sample(sites.NOISE_TILDE, self.noise_dist())
            pyro.sample(sites.X, self.x_dist(noise), obs=x)
            pyro.sample(sites.X_TILDE, self.x_dist(noise_tilde), obs=x_tilde)


def intervention_mask(target: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(onehot, intervened)``: ``onehot (*, n)`` marks the intervened variable (all False
    for no intervention); ``intervened (*,)`` is ``target ≥ 1``."""
    if target.numel() and (target.min() < 0 or target.max() > n):
        raise ValueError(
            f"intervention target must lie in 0..{n} (0 = none), got values in "
            f"{int(target.min())}..{int(target.max())}"
        )
    onehot = F.one_hot(target, n + 1)[..., 1:].bool()
    return onehot, target > 0


def select(
    values: torch.Tensor, onehot: torch.Tensor, intervened: torch.Tensor, default: float
) -> torch.Tensor:
    """The intervened component of ``values (*, n)``, or ``default`` where none is."""
    picked = (values * onehot).sum(-1)
    return torch.where(intervened, picked, torch.full_like(picked, default))
