"""From pixels to features: fit an :class:`~pyrocrl.models.image_vae.ImageVAE` to the
images of a dataset and encode every pair to its features (standardized code means).

The result is an ordinary pyrocrl dataset (``x`` of shape ``(pair, world, feature)`` with
``d`` features, ground truth carried over), so the whole ILCM toolbox — ``fit_ilcm``,
queries, graph discovery, diagnostics — works on it unchanged.
"""

__all__ = [
    "decode_features",
    "distinct_images",
    "encode_images",
    "fit_image_vae",
    "intervention_images",
    "load_image_vae",
    "reduce",
    "save_image_vae",
]

import json
import os
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pyro
import torch
import xarray as xr
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam

from pyrocrl.conv import to_images, to_pixels
from pyrocrl.data.dataset import images as pair_images
from pyrocrl.data.dataset import pairs_dataset
from pyrocrl.errors import CheckpointError, TrainingError
from pyrocrl.inference.svi import progress_bar
from pyrocrl.io import check_sizes, check_state_dict, load_checkpoint, save_checkpoint
from pyrocrl.models.image_vae import ImageVAE

MAX_VAE_RESOLUTION = 4096
"""The largest image side a saved VAE may claim (a larger one is a damaged file)."""


def distinct_images(ds: xr.Dataset) -> np.ndarray:
    """Every distinct image of an image dataset, ``(M, H, W, C)`` ``uint8``: the first world of
    each pair, and the second where a pair was intervened on (or, without targets, always)."""
    both = pair_images(ds)
    if "target" in ds:
        return np.concatenate([both[:, 0], both[ds["target"].values > 0, 1]])
    return both.reshape(-1, *both.shape[2:])


def fit_image_vae(
    ds: xr.Dataset,
    *,
    dim: int = 8,
    epochs: float = 4.0,
    max_images: int | None = 50_000,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 500,
    resume: bool = True,
    **vae_kwargs: Any,
) -> tuple[ImageVAE, dict[str, Any]]:
    """Fit an image VAE to the images of ``ds`` (the pairing is not used).

    :param int dim: code size ``d``.
    :param float epochs: passes over the (at most ``max_images``) training images.
    :param max_images: a random subset of that many distinct images, or all with ``None``.
    :param checkpoint: a file the training state (weights, optimizer, data order, random
        states) is written to every ``checkpoint_every`` steps; with ``resume``, an existing
        file is continued from, and the result equals that of an uninterrupted run. The file
        is left in place when training ends (delete it, or keep it to skip a refit).
    :param vae_kwargs: passed to :class:`~pyrocrl.models.image_vae.ImageVAE`.
    :returns: the VAE (in eval mode) and a report ``{"elbo": …, "mse": …, "seconds": …,
        "images": …, "steps": …, "resumed_at": …}`` (ELBO per image over the last epoch, mean
        squared reconstruction error of the code means on a held-back set of 512 images,
        training seconds summed over resumed runs, the step a run resumed at, 0 if none).
    :raises TrainingError: if the ELBO becomes NaN or infinite, or the checkpoint was written
        with other settings or data.
    """
    pixels = distinct_images(ds)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pixels))
    held, order = order[:512], order[512:]
    if max_images is not None:
        order = order[:max_images]
    if len(order) < batch_size:
        raise ValueError(f"need at least {batch_size + 512} distinct images, got {len(pixels)}")
    if not epochs > 0:
        raise ValueError(f"epochs must be positive, got {epochs}")
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be a positive step count, got {checkpoint_every}")
    resolution = int(ds.attrs["image_shape"][0])
    settings = {
        "dim": dim,
        "epochs": float(epochs),
        "max_images": max_images,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "vae": {k: repr(v) for k, v in sorted(vae_kwargs.items())},
        "distinct_images": len(pixels),
        "image_shape": list(pixels.shape[1:]),
        "fingerprint": zlib.crc32(np.ascontiguousarray(pixels[:: max(1, len(pixels) // 64)])),
    }
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    # a fresh param store and a private random stream; both are restored afterwards
    with pyro.get_param_store().scope(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vae = ImageVAE(dim, resolution=resolution, **vae_kwargs)
        svi = SVI(vae.model, vae.guide, Adam({"lr": lr}), Trace_ELBO())
        per_epoch = len(order) // batch_size
        steps = max(1, round(epochs * per_epoch))
        first, recent, spent = 0, [], 0.0
        if resume and checkpoint is not None and checkpoint.exists():
            first, recent, spent, order = _restore_vae(checkpoint, settings, vae, svi, rng)
        bar = progress_bar(steps, first, "image VAE", progress)
        start = time.perf_counter()
        with bar:
            for step in range(first, steps):
                if step % per_epoch == 0:
                    order = rng.permutation(order)
                batch = order[(step % per_epoch) * batch_size :][:batch_size]
                loss = svi.step(to_images(pixels[batch]))
                if not np.isfinite(loss):
                    raise TrainingError(f"the image VAE's ELBO became {loss} at step {step}")
                recent = [*recent[-per_epoch + 1 :], -loss / batch_size]
                bar.update()
                if step % 50 == 0:
                    bar.set_postfix(elbo=f"{np.mean(recent):.4g}")
                done = step + 1
                if checkpoint is not None and (done % checkpoint_every == 0 or done == steps):
                    state = {
                        "settings": settings,
                        "step": done,
                        "recent": recent,
                        "order": order,
                        "seconds": spent + time.perf_counter() - start,
                        "rng": rng,
                    }
                    _save_vae_state(checkpoint, state, vae, svi)
    vae.eval()
    with torch.no_grad():
        # standardize the features with statistics of (up to 10,000) training images
        sample = np.sort(order[:10_000])
        codes = torch.cat(
            [
                vae.encode(to_images(pixels[sample[i : i + 500]]))[0]
                for i in range(0, len(sample), 500)
            ]
        )
        vae.feature_loc.copy_(codes.mean(0))
        vae.feature_scale.copy_(codes.std(0).clamp_min(1e-6))
        check = to_images(pixels[held])
        mse = float(((vae.decode_features(vae.features(check)) - check) ** 2).mean())
    report = {
        "elbo": float(np.mean(recent)),
        "mse": mse,
        "seconds": spent + time.perf_counter() - start,
        "images": len(order),
        "steps": steps,
        "resumed_at": first,
    }
    return vae, report


def _save_vae_state(path: Path, state: dict[str, Any], vae: ImageVAE, svi: SVI) -> None:
    """Everything an interrupted :func:`fit_image_vae` needs to go on exactly."""
    payload = {
        **{k: v for k, v in state.items() if k not in ("order", "rng")},
        "order": torch.as_tensor(state["order"]),
        "numpy_rng": json.dumps(state["rng"].bit_generator.state),
        "torch_rng": torch.random.get_rng_state(),
        "weights": vae.state_dict(),
        "optimizer": svi.optim.get_state(),
    }
    save_checkpoint(path, {"kind": "image_vae_training", **payload})


def _restore_vae(
    path: Path, settings: dict[str, Any], vae: ImageVAE, svi: SVI, rng: np.random.Generator
) -> tuple[int, list[float], float, np.ndarray]:
    payload = load_checkpoint(path)
    if payload.get("kind") != "image_vae_training":
        raise TrainingError(f"{path} is not an image VAE training checkpoint")
    if payload["settings"] != settings:
        raise TrainingError(
            f"checkpoint {path} was written with other settings or data; resume with the same "
            "ones, or choose a new checkpoint path (or pass resume=False)"
        )
    vae.load_state_dict(payload["weights"])
    svi.optim.set_state(payload["optimizer"])
    rng.bit_generator.state = json.loads(payload["numpy_rng"])
    torch.random.set_rng_state(payload["torch_rng"])
    order = payload["order"].numpy()
    return int(payload["step"]), list(payload["recent"]), float(payload["seconds"]), order


@torch.no_grad()
def encode_images(vae: ImageVAE, pixels: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Features (standardized code means) of ``uint8`` pixels ``(N, H, W, C)`` → ``(N, d)``."""
    parts = [
        vae.features(to_images(pixels[i : i + batch_size])).numpy()
        for i in range(0, len(pixels), batch_size)
    ]
    return np.concatenate(parts) if parts else np.empty((0, vae.dim), np.float32)


def reduce(vae: ImageVAE, ds: xr.Dataset, batch_size: int = 1024) -> xr.Dataset:
    """The pairs of ``ds`` with each image replaced by its features: a pyrocrl dataset with
    ``d`` features, the same ground truth and ``attrs``, plus ``reduced_from`` and
    ``source_image_shape``."""
    both = pair_images(ds)
    pairs = len(both)
    codes = encode_images(vae, both.reshape(-1, *both.shape[2:]), batch_size)
    codes = codes.reshape(pairs, 2, -1)
    truth: dict[str, Any] = {}
    for name in ("z", "noise"):
        if name in ds:
            truth[name], truth[f"{name}_tilde"] = ds[name].values[:, 0], ds[name].values[:, 1]
    for name in ("target", "adjacency", "weights"):
        if name in ds:
            truth[name] = ds[name].values
    attrs = {k: v for k, v in ds.attrs.items() if k != "image_shape"}
    attrs.update(reduced_from="images", source_image_shape=list(ds.attrs["image_shape"]))
    return pairs_dataset(codes[:, 0], codes[:, 1], **truth, attrs=attrs)


def decode_features(vae: ImageVAE, features: np.ndarray | torch.Tensor) -> np.ndarray:
    """Images of features ``(*, d)`` → ``uint8`` pixels ``(*, H, W, C)``."""
    with torch.no_grad():
        features = torch.as_tensor(np.asarray(features), dtype=torch.get_default_dtype())
        return to_pixels(vae.decode_features(features))


def save_image_vae(vae: ImageVAE, path: str | os.PathLike) -> Path:
    """Write the VAE's configuration and weights to ``path`` (atomically)."""
    payload = {"kind": "image_vae", "config": vae.config, "state_dict": vae.state_dict()}
    return save_checkpoint(path, payload)


def load_image_vae(path: str | os.PathLike) -> ImageVAE:
    """Read a VAE written by :func:`save_image_vae` (in eval mode).

    :raises FileNotFoundError: if there is no file.
    :raises CheckpointError: if the file is not an image VAE written by pyrocrl.
    """
    payload = load_checkpoint(path)
    if payload.get("kind") != "image_vae":
        raise CheckpointError(f"{path} is not an image VAE (save_image_vae writes those)")
    config, state = payload.get("config"), payload.get("state_dict")
    if not isinstance(config, dict) or not isinstance(state, dict):
        raise CheckpointError(f"{path} holds no image VAE configuration and weights")
    check_sizes(config, ("dim", "channels", "in_channels"), state, path, "VAE")
    resolution = config.get("resolution")
    if not isinstance(resolution, int) or not 8 <= resolution <= MAX_VAE_RESOLUTION:
        raise CheckpointError(
            f"{path}: the VAE's resolution must be a whole number from 8 to "
            f"{MAX_VAE_RESOLUTION}, got {resolution!r}"
        )
    config = dict(config)
    config.pop("model", None)
    try:
        vae = ImageVAE(config.pop("dim"), **config)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: its configuration builds no VAE: {error}") from error
    check_state_dict(vae, state, path, "VAE")
    vae.load_state_dict(state)
    return vae.eval()


def intervention_images(
    model: Any,
    guide: Any,
    vae: ImageVAE,
    pixels: np.ndarray,
    values: np.ndarray,
) -> np.ndarray:
    """Images of one scene under interventions on each learned causal variable.

    The scene's features (the VAE's code mean) are encoded by the ILCM's guide; for each
    learned variable ``k`` and each value ``v`` in ``values[k]``, the counterfactual
    ``do(z_k = v)`` (same noise, so the effects on ``z_k``'s descendants follow) is decoded
    by the ILCM and then by the VAE.

    :param pixels: one image ``(H, W, C)`` ``uint8``.
    :param values: ``(n, K)``: the values to set, per learned variable.
    :returns: ``uint8`` pixels ``(n, K, H, W, C)``.
    """
    from pyrocrl.inference.queries import counterfactual

    values, pixels = np.asarray(values, dtype=np.float64), np.asarray(pixels)
    if values.ndim != 2 or values.shape[0] != model.n or not np.isfinite(values).all():
        raise ValueError(
            f"values must be finite numbers of shape (n, K) = ({model.n}, K), got {values.shape}"
        )
    expected = (vae.resolution, vae.resolution, vae.config["in_channels"])
    if pixels.shape != expected:
        raise ValueError(f"pixels must be one image of shape {expected}, got {pixels.shape}")
    n, columns = values.shape
    features = encode_images(vae, pixels[None])  # (1, d)
    x = torch.as_tensor(np.repeat(features, columns, axis=0))
    rows = []
    for k in range(n):
        setting = torch.as_tensor(values[k], dtype=torch.get_default_dtype())
        out = counterfactual(model, x, {k + 1: setting}, guide=guide, progress=False)
        rows.append(decode_features(vae, out["x_tilde"]))
    return np.stack(rows)
