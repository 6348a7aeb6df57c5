"""Queries on a fitted latent causal model: encodings and intervention posteriors."""

__all__ = ["encode", "intervention_posterior"]

import torch

from pyrocrl.inference.guides import ILCMGuide

BATCH = 8192


@torch.no_grad()
def encode(guide: ILCMGuide, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Posterior means of the noise and the causal variables they solve to.

    :param x: observations ``(N, D)``.
    :returns: ``{"noise": (N, n), "noise_scale": (N, n), "z": (N, n)}`` with
        ``z = s(E[e | x])``.
    """
    x = torch.as_tensor(x, dtype=torch.get_default_dtype())
    if x.dim() != 2 or x.shape[-1] != guide.dim_x:
        raise ValueError(f"x must have shape (N, {guide.dim_x}), got {tuple(x.shape)}")
    locs, scales = zip(*(guide.encoder(chunk) for chunk in x.split(BATCH)), strict=True)
    loc, scale = torch.cat(locs), torch.cat(scales)
    return {"noise": loc, "noise_scale": scale, "z": guide.model.solution(loc)}


@torch.no_grad()
def intervention_posterior(
    guide: ILCMGuide, x: torch.Tensor, x_tilde: torch.Tensor
) -> torch.Tensor:
    """``q(I | x, x~)`` for each pair, shape ``(N, n + 1)`` (column 0: no intervention)."""
    x = torch.as_tensor(x, dtype=torch.get_default_dtype())
    x_tilde = torch.as_tensor(x_tilde, dtype=torch.get_default_dtype())
    if x.shape != x_tilde.shape:
        raise ValueError(f"x {tuple(x.shape)} and x_tilde {tuple(x_tilde.shape)} differ")
    return torch.cat(
        [
            guide.intervention_probs(a, b)
            for a, b in zip(x.split(BATCH), x_tilde.split(BATCH), strict=True)
        ]
    )
