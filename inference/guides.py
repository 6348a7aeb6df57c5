"""Amortized guides: the encoder of noise and intervention targets for pair programs."""

__all__ = ["HeuristicInterventionEncoder", "ILCMGuide", "MLPInterventionEncoder"]

from collections.abc import Sequence
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.nn import PyroModule
from torch import nn

from pyrocrl import sites
from pyrocrl.models.ilcm import ILCM, intervention_mask, select
from pyrocrl.nets import MLP, GaussianEncoder


class HeuristicInterventionEncoder(nn.Module):
    """``q(I | x, x~)`` from the change of the noise encodings, with three parameters.

    With ``Δ = μ(x~) − μ(x)``: ``logit(none) = 0`` and ``logit(k) = α + β|Δ_k| + γΔ_k²``
    (initialized ``α = −3, β = γ = 15``), then ``q ← (q + ε) / (1 + (n + 1)ε)``. The offset
    ``ε`` (buffer ``offset``) keeps every hypothesis alive early in training.

    :returns: probabilities ``(*, n + 1)``.
    """

    def __init__(
        self, n: int, offset: float = 1e-4, init: tuple[float, float, float] = (-3.0, 15.0, 15.0)
    ) -> None:
        super().__init__()
        self.n = n
        self.alpha = nn.Parameter(torch.tensor(float(init[0])))
        self.beta = nn.Parameter(torch.tensor(float(init[1])))
        self.gamma = nn.Parameter(torch.tensor(float(init[2])))
        self.register_buffer("offset", torch.tensor(float(offset)))

    def forward(self, loc: torch.Tensor, loc_tilde: torch.Tensor) -> torch.Tensor:
        delta = loc_tilde - loc
        logits = self.alpha + self.beta * delta.abs() + self.gamma * delta**2
        logits = torch.cat([torch.zeros_like(logits[..., :1]), logits], dim=-1)
        return _offset(logits.softmax(-1), self.offset)


class MLPInterventionEncoder(nn.Module):
    """``q(I | x, x~)`` from an MLP on ``[μ(x), μ(x~) − μ(x)]``.

    :returns: probabilities ``(*, n + 1)``.
    """

    def __init__(self, n: int, hidden: Sequence[int] = (64, 64), offset: float = 1e-4):
        super().__init__()
        self.net = MLP(2 * n, n + 1, hidden)
        self.register_buffer("offset", torch.tensor(float(offset)))

    def forward(self, loc: torch.Tensor, loc_tilde: torch.Tensor) -> torch.Tensor:
        logits = self.net(torch.cat([loc, loc_tilde - loc], dim=-1))
        return _offset(logits.softmax(-1), self.offset)


def _offset(probs: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    return (probs + offset) / (1 + probs.shape[-1] * offset)


INTERVENTION_ENCODERS = {"heuristic": HeuristicInterventionEncoder, "mlp": MLPInterventionEncoder}


class ILCMGuide(PyroModule):
    """Amortized guide of :class:`~pyrocrl.models.ilcm.ILCM`.

    One Gaussian encoder ``q(e | x) = N(μ(x), σ(x)²)`` serves both views. The target site
    is enumerated in parallel (``infer={"enumerate": "parallel"}``), so an ELBO can sum
    over all ``n + 1`` hypotheses exactly. Given a hypothesis ``I``, the two views must
    share every noise component but ``e_I``: for ``j ≠ I`` the guide mixes the two
    posteriors, ``N(λμ_j + (1−λ)μ~_j, (λσ_j + (1−λ)σ~_j)²)`` with ``λ ~ U(0, 1)`` drawn per
    hypothesis and component, and both worlds use the same sample. ``λ`` is not a latent
    site: each ``λ`` defines a valid guide, so averaging over it keeps the bound. The new
    noise ``e~_I ~ N(μ~_I, σ~_I²)`` is passed through the model's solution function to the
    site ``value`` (an affine map, so still Gaussian).

    The buffer ``posterior_power`` (default 1) flattens ``q(I | x, x~)`` to
    ``q^power / Σ q^power``; any ``q`` gives a valid bound, and training recipes start
    flat so that every hypothesis shapes the encoder before the posterior sharpens.

    With ``deterministic=True`` only the most probable hypothesis is kept (a ``Delta`` at
    the argmax whose weight carries a straight-through gradient to ``q(I | x, x~)``).

    The guide reads the model's solution function; it does not own it (its state dict holds
    the encoders only).

    :param model: the ILCM this guide serves.
    :param hidden: hidden layer sizes of the noise encoder.
    :param intervention_encoder: ``"heuristic"`` (3 parameters) or ``"mlp"``, or a module
        mapping ``(μ(x), μ(x~))`` to probabilities ``(*, n + 1)``.
    :param str tie: ``"random"`` (``λ ~ U(0, 1)``) or ``"mean"`` (``λ = ½``).
    """

    def __init__(
        self,
        model: ILCM,
        *,
        hidden: Sequence[int] = (64, 64),
        intervention_encoder: str | nn.Module = "heuristic",
        init_std: float = 0.01,
        min_std: float = 1e-4,
        tie: str = "random",
    ) -> None:
        super().__init__()
        object.__setattr__(self, "_model", model)  # a reference, not a submodule
        self.n, self.dim_x = model.n, model.dim_x
        self.encoder = GaussianEncoder(model.dim_x, model.n, hidden, init_std, min_std)
        encoder_name = intervention_encoder if isinstance(intervention_encoder, str) else None
        if isinstance(intervention_encoder, str):
            if intervention_encoder not in INTERVENTION_ENCODERS:
                raise ValueError(
                    f"intervention_encoder must be one of {sorted(INTERVENTION_ENCODERS)} or "
                    f"a module, got {intervention_encoder!r}"
                )
            intervention_encoder = INTERVENTION_ENCODERS[intervention_encoder](model.n)
        self.intervention_encoder = intervention_encoder
        if tie not in ("random", "mean"):
            raise ValueError(f"tie must be 'random' or 'mean', got {tie!r}")
        self.tie = tie
        self.register_buffer("posterior_power", torch.tensor(1.0))
        self.config = {
            "hidden": list(hidden),
            "intervention_encoder": encoder_name,
            "init_std": init_std,
            "min_std": min_std,
            "tie": tie,
        }

    @property
    def model(self) -> ILCM:
        return self._model

    @torch.no_grad()
    def precondition(self, x: torch.Tensor, x_tilde: torch.Tensor, ridge: float = 1e-6) -> None:
        """Start the encoder from the linear solution of the pair statistics.

        Solves ``Cov(x~ − x) v = λ Cov(x) v`` for the ``D`` directions ``v`` (normalized to
        ``vᵀ Cov(x) v = 1``), feeds the encoder ``u = (x − mean) @ V``, and starts its mean
        at ``μ(x) ≈ u_top + MLP(u)`` with the ``n`` directions of largest ``λ``. If the
        noise reached the observations linearly, each intervention would move one noise
        component, so with distinct ``λ`` these directions are the noise components up to
        order and scale; otherwise they are a change-aware whitening that training refines.
        The model class is unchanged: the map is an invertible linear layer.

        :param x, x_tilde: training pairs ``(N, D)`` with ``N`` well above ``D``.
        """
        dim = self.dim_x
        if len(x) <= 2 * dim:
            raise ValueError(f"need more than {2 * dim} pairs to precondition, got {len(x)}")
        x, x_tilde = x.double(), x_tilde.double()
        static = torch.cov(x.T) + ridge * torch.eye(dim, dtype=x.dtype)
        delta = x_tilde - x
        change = delta.T @ delta / len(delta)
        values, vectors = torch.linalg.eigh(static)
        whiten = vectors / values.sqrt()
        _, rotation = torch.linalg.eigh(whiten.T @ change @ whiten)
        transform = (whiten @ rotation).flip(-1)  # largest change first
        encoder = self.encoder
        encoder.input_mean.copy_(x.mean(0))
        encoder.input_transform.copy_(transform)
        skip = torch.zeros_like(encoder.skip.weight)
        top = min(dim, self.n)
        skip[:top, :top] = torch.eye(top)
        encoder.skip.weight.copy_(skip)

    def encode(
        self, x: torch.Tensor, x_tilde: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(μ(x), σ(x), μ(x~), σ(x~))``, each ``(N, n)``, in one encoder pass."""
        loc, scale = self.encoder(torch.cat([x, x_tilde]))
        return loc[: len(x)], scale[: len(x)], loc[len(x) :], scale[len(x) :]

    def intervention_probs(self, x: torch.Tensor, x_tilde: torch.Tensor) -> torch.Tensor:
        """``q(I | x, x~)``, shape ``(N, n + 1)``."""
        loc, _, loc_tilde, _ = self.encode(x, x_tilde)
        return self._target_probs(loc, loc_tilde)

    def _target_probs(self, loc: torch.Tensor, loc_tilde: torch.Tensor) -> torch.Tensor:
        probs = self.intervention_encoder(loc, loc_tilde)
        if self.posterior_power != 1:
            probs = probs.pow(self.posterior_power)
            probs = probs / probs.sum(-1, keepdim=True)
        return probs

    def guide(
        self,
        x: torch.Tensor | None = None,
        x_tilde: torch.Tensor | None = None,
        *,
        size: int | None = None,
        intervention_prior: bool = True,
        deterministic: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Sites ``target``, ``noise`` and ``value`` given observed pairs ``(N, D)``.

        ``size`` and ``intervention_prior`` are model options, accepted for a shared
        signature. Returns the encoder outputs (``loc``, ``scale``, ``loc_tilde``,
        ``scale_tilde``, each ``(N, n)``) and ``probs``, ``q(I | x, x~)`` of shape
        ``(N, n + 1)``, for regularizers and diagnostics.
        """
        del intervention_prior
        if x is None or x_tilde is None:
            raise ValueError("the guide needs observed pairs x and x_tilde")
        size = sites.plate_size(size, x, x_tilde, dim_x=self.dim_x)
        loc, scale, loc_tilde, scale_tilde = self.encode(x, x_tilde)
        probs = self._target_probs(loc, loc_tilde)
        with pyro.plate(sites.PAIR_PLATE, size):
            if deterministic:
                best = probs.argmax(-1)
                weight = probs.gather(-1, best.unsqueeze(-1)).squeeze(-1)
                straight_through = 1.0 + weight - weight.detach()
                target = pyro.sample(
                    sites.TARGET, dist.Delta(best, log_density=straight_through.log())
                )
            else:
                target = pyro.sample(
                    sites.TARGET, dist.Categorical(probs), infer={"enumerate": "parallel"}
                )
            onehot, intervened = intervention_mask(target, self.n)
            shape = torch.broadcast_shapes(onehot.shape, loc.shape)
            lam = torch.rand(shape) if self.tie == "random" else torch.full(shape, 0.5)
            tied_loc = lam * loc + (1 - lam) * loc_tilde
            tied_scale = lam * scale + (1 - lam) * scale_tilde
            noise_loc = torch.where(onehot, loc, tied_loc)
            noise_scale = torch.where(onehot, scale, tied_scale)
            noise = pyro.sample(sites.NOISE, dist.Normal(noise_loc, noise_scale).to_event(1))
            # e~_I ~ N(μ~_I, σ~_I²), mapped to v = (e~_I − shift_I) / scale_I
            shift, sol_scale = self.model.solution.shift_scale(noise)
            shift_i = select(shift, onehot, intervened, 0.0)
            scale_i = select(sol_scale, onehot, intervened, 1.0)
            new_loc = select(loc_tilde, onehot, intervened, 0.0)
            new_scale = select(scale_tilde, onehot, intervened, 1.0)
            with poutine.mask(mask=intervened):
                pyro.sample(
                    sites.VALUE, dist.Normal((new_loc - shift_i) / scale_i, new_scale / scale_i)
                )
        return {
            "probs": probs,
            "loc": loc,
            "scale": scale,
            "loc_tilde": loc_tilde,
            "scale_tilde": scale_tilde,
        }

    def forward(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        return self.guide(*args, **kwargs)

    def independent_guide(
        self,
        x: torch.Tensor | None = None,
        x_tilde: torch.Tensor | None = None,
        *,
        size: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """Guide of :meth:`ILCM.independent_model`: each view encoded on its own."""
        if x is None or x_tilde is None:
            raise ValueError("the guide needs observed pairs x and x_tilde")
        size = sites.plate_size(size, x, x_tilde, dim_x=self.dim_x)
        loc, scale, loc_tilde, scale_tilde = self.encode(x, x_tilde)
        with pyro.plate(sites.PAIR_PLATE, size):
            pyro.sample(sites.NOISE, dist.Normal(loc, scale).to_event(1))
            pyro.sample(sites.NOISE_TILDE, dist.Normal(loc_tilde, scale_tilde).to_event(1))
        return {"loc": loc, "scale": scale, "loc_tilde": loc_tilde, "scale_tilde": scale_tilde}
