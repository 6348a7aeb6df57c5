"""Neural building blocks: MLPs, Gaussian encoders and likelihood heads.

Shapes are written ``(*, F)``: any batch dims, then features.
"""

__all__ = [
    "MLP",
    "BernoulliHead",
    "GaussianEncoder",
    "LaplaceHead",
    "NormalHead",
    "StackedMLP",
    "inverse_softplus",
]

import itertools
import math
from collections.abc import Sequence

import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F


def inverse_softplus(y: float) -> float:
    """``x`` with ``softplus(x) = y``, for ``y > 0``."""
    return y + math.log(-math.expm1(-y))


class MLP(nn.Sequential):
    """``in → hidden … → out`` with ReLU between layers (none after the last).

    :param int in_features: input size.
    :param int out_features: output size.
    :param hidden: sizes of the hidden layers.
    """

    def __init__(self, in_features: int, out_features: int, hidden: Sequence[int] = (64, 64)):
        sizes = [in_features, *hidden, out_features]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(itertools.pairwise(sizes)):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        super().__init__(*layers)


class StackedMLP(nn.Module):
    """``k`` independent MLPs evaluated together: input ``(*, k, in)`` → output ``(*, k, out)``.

    Each layer is one batched matrix product against a weight of shape ``(k, in, out)``, so
    ``k`` small networks cost one call instead of ``k``.
    """

    def __init__(self, k: int, in_features: int, out_features: int, hidden: Sequence[int]):
        super().__init__()
        sizes = [in_features, *hidden, out_features]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in itertools.pairwise(sizes):
            layer = [nn.Linear(a, b) for _ in range(k)]  # PyTorch's default initialization
            self.weights.append(nn.Parameter(torch.stack([lin.weight.data.T for lin in layer])))
            self.biases.append(nn.Parameter(torch.stack([lin.bias.data for lin in layer])))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        batch, (k, features) = inputs.shape[:-2], inputs.shape[-2:]
        h = inputs.reshape(-1, k, features).transpose(0, 1)  # (k, M, in)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(b.unsqueeze(1), h, w)
            if i < last:
                h = F.relu(h)
        return h.transpose(0, 1).reshape(*batch, k, -1)


class GaussianEncoder(nn.Module):
    """Diagonal Gaussian ``N(μ(x), σ(x)²)`` from an MLP with a mean and a std head.

    ``σ = softplus(raw) + min_std``; the std head starts with near-zero weights and a bias
    that makes ``σ ≈ init_std`` everywhere.

    :returns: ``(loc, scale)``, each ``(*, out_features)``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: Sequence[int] = (64, 64),
        init_std: float = 0.01,
        min_std: float = 1e-4,
    ):
        super().__init__()
        if init_std <= min_std:
            raise ValueError(f"init_std ({init_std}) must exceed min_std ({min_std})")
        self.trunk = nn.Sequential(MLP(in_features, hidden[-1], hidden[:-1]), nn.ReLU())
        self.loc = nn.Linear(hidden[-1], out_features)
        self.raw_scale = nn.Linear(hidden[-1], out_features)
        self.min_std = min_std
        nn.init.normal_(self.raw_scale.weight, std=1e-3)
        nn.init.constant_(self.raw_scale.bias, inverse_softplus(init_std - min_std))
        # a fixed affine map of the inputs and a linear path to the mean, both inert
        # (identity and zero) unless a preconditioner sets them
        self.register_buffer("input_mean", torch.zeros(in_features))
        self.register_buffer("input_transform", torch.eye(in_features))
        self.skip = nn.Linear(in_features, out_features, bias=False)
        nn.init.zeros_(self.skip.weight)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (x - self.input_mean) @ self.input_transform
        h = self.trunk(x)
        return self.loc(h) + self.skip(x), F.softplus(self.raw_scale(h)) + self.min_std


class NormalHead(GaussianEncoder):
    """Likelihood ``p(x | e) = N(x; μ(e), σ(e)²)``, heteroskedastic, event shape ``(D,)``."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: Sequence[int] = (64, 64),
        init_std: float = 0.1,
        min_std: float = 1e-3,
    ):
        super().__init__(in_features, out_features, hidden, init_std, min_std)

    def forward(self, e: torch.Tensor) -> dist.Distribution:  # type: ignore[override]
        loc, scale = super().forward(e)
        return dist.Normal(loc, scale).to_event(1)


class LaplaceHead(NormalHead):
    """Likelihood ``p(x | e) = Laplace(x; μ(e), b(e))``: heavier tails than the Normal."""

    def forward(self, e: torch.Tensor) -> dist.Distribution:  # type: ignore[override]
        loc, scale = GaussianEncoder.forward(self, e)
        return dist.Laplace(loc, scale).to_event(1)


class BernoulliHead(nn.Module):
    """Likelihood ``p(x | e) = Bernoulli(x; sigmoid(f(e)))`` for binary features."""

    def __init__(self, in_features: int, out_features: int, hidden: Sequence[int] = (64, 64)):
        super().__init__()
        self.net = MLP(in_features, out_features, hidden)

    def forward(self, e: torch.Tensor) -> dist.Distribution:
        return dist.Bernoulli(logits=self.net(e)).to_event(1)
