"""From pixels to features: fit an :class:`~pyrocrl.models.image_vae.ImageVAE` to the
images of a dataset and encode every pair to its features (standardized code means).

The result is an ordinary pyrocrl dataset (``x`` of shape ``(pair, world, feature)`` with
``d`` features, ground truth carried over), so the whole ILCM toolbox — ``fit_ilcm``,
queries, graph discovery, diagnostics — works on it unchanged.

A dataset opened lazily (:func:`pyrocrl.data.load` with ``chunks``) is never read whole:
:func:`fit_image_vae` streams its images in shuffled minibatches
(:mod:`pyrocrl.inference.image_sources`) and :func:`reduce` encodes it block by block, so
memory holds a bounded buffer of images (and the features, which are small), whatever the
size of the dataset.
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
from pyrocrl.data.store import is_lazy
from pyrocrl.data.stream import blocks
from pyrocrl.devices import torch_device
from pyrocrl.errors import CheckpointError, DatasetError, TrainingError
from pyrocrl.inference.image_sources import InMemoryImages, StreamedImages
from pyrocrl.inference.svi import progress_bar
from pyrocrl.io import (
    check_sizes,
    check_state_dict,
    load_checkpoint,
    on_cpu,
    save_checkpoint,
)
from pyrocrl.models.image_vae import ImageVAE

MAX_VAE_RESOLUTION = 4096
"""The largest image side a saved VAE may claim (a larger one is a damaged file)."""


def distinct_images(ds: xr.Dataset) -> np.ndarray:
    """Every distinct image of an image dataset, ``(M, H, W, C)`` ``uint8``: the first world of
    each pair, and the second where a pair was intervened on (or, without targets, always).
    Reads them all into memory (:func:`~pyrocrl.inference.image_sources.distinct_items`
    names them without reading them)."""
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
    buffer_blocks: int | None = None,
    device: str | torch.device | None = None,
    **vae_kwargs: Any,
) -> tuple[ImageVAE, dict[str, Any]]:
    """Fit an image VAE to the images of ``ds`` (the pairing is not used).

    A lazily opened ``ds`` (:func:`pyrocrl.data.load` with ``chunks``) is streamed from disk
    (:class:`~pyrocrl.inference.image_sources.StreamedImages`): the held-back and training
    images are taken a whole block of pairs at a time, and each epoch's batches come from a
    shuffle buffer of ``buffer_blocks`` blocks (default about 256 MiB), in an order fixed by
    ``(seed, epoch)``. Memory then holds that buffer, not the images; an in-memory ``ds``
    gives other batches (uniform permutations), so the two fit differently.

    :param int dim: code size ``d``.
    :param float epochs: passes over the (at most ``max_images``) training images.
    :param max_images: a random subset of that many distinct images, or all with ``None``.
    :param checkpoint: a file the training state (weights, optimizer, data order, random
        states) is written to every ``checkpoint_every`` steps; with ``resume``, an existing
        file is continued from, and the result equals that of an uninterrupted run. The file
        is left in place when training ends (delete it, or keep it to skip a refit).
    :param device: where the VAE trains: ``None``/``"cpu"``, ``"cuda"``, ``"cuda:1"`` or
        ``"auto"`` (:func:`~pyrocrl.devices.torch_device`); the VAE returned is on the CPU,
        and checkpoints hold CPU tensors.
    :param vae_kwargs: passed to :class:`~pyrocrl.models.image_vae.ImageVAE`.
    :returns: the VAE (in eval mode) and a report ``{"elbo": …, "mse": …, "seconds": …,
        "images": …, "steps": …, "resumed_at": …}`` (ELBO per image over the last epoch, mean
        squared reconstruction error of the code means on a held-back set of 512 images,
        training seconds summed over resumed runs, the step a run resumed at, 0 if none).
    :raises TrainingError: if the ELBO becomes NaN or infinite, or the checkpoint was written
        with other settings or data.
    """
    device = torch_device(device)
    if is_lazy(ds):
        images = StreamedImages(ds, seed, max_images, batch_size, buffer_blocks)
    else:
        images = InMemoryImages(distinct_images(ds), seed, max_images)
    if images.train_size < batch_size:
        raise ValueError(f"need at least {batch_size + 512} distinct images, got {images.count}")
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
        "distinct_images": images.count,
        "image_shape": list(images.image_shape),
        "fingerprint": images.fingerprint(),
        **images.settings,
    }
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    # a fresh param store and a private random stream; both are restored afterwards
    with pyro.get_param_store().scope(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vae = ImageVAE(dim, resolution=resolution, **vae_kwargs).to(device)
        svi = SVI(vae.model, vae.guide, Adam({"lr": lr}), Trace_ELBO())
        per_epoch = images.train_size // batch_size
        steps = max(1, round(epochs * per_epoch))
        first, recent, spent = 0, [], 0.0
        if resume and checkpoint is not None and checkpoint.exists():
            restored = _restore_vae(checkpoint, settings, vae, svi, images.rng)
            first, recent, spent, images.order = restored
        bar = progress_bar(steps, first, "image VAE", progress)
        start = time.perf_counter()
        with bar:
            for step in range(first, steps):
                batch = to_images(images.batch(step, per_epoch, batch_size)).to(device)
                loss = svi.step(batch)
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
                        "order": images.order,
                        "seconds": spent + time.perf_counter() - start,
                        "rng": images.rng,
                    }
                    _save_vae_state(checkpoint, state, vae, svi)
    vae.cpu().eval()
    with torch.no_grad():
        # standardize the features with statistics of (up to 10,000) training images
        codes = torch.cat([vae.encode(to_images(p))[0] for p in images.sample(10_000, 500)])
        vae.feature_loc.copy_(codes.mean(0))
        vae.feature_scale.copy_(codes.std(0).clamp_min(1e-6))
        check = to_images(images.held())
        mse = float(((vae.decode_features(vae.features(check)) - check) ** 2).mean())
    report = {
        "elbo": float(np.mean(recent)),
        "mse": mse,
        "seconds": spent + time.perf_counter() - start,
        "images": images.train_size,
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
        "weights": on_cpu(vae.state_dict()),
        "optimizer": on_cpu(svi.optim.get_state()),
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
def encode_images(
    vae: ImageVAE,
    pixels: np.ndarray,
    batch_size: int = 1024,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Features (standardized code means) of ``uint8`` pixels ``(N, H, W, C)`` → ``(N, d)``,
    computed on ``device`` (:func:`~pyrocrl.devices.torch_device`; the VAE is on the CPU
    again after)."""
    device = torch_device(device)
    try:
        vae.to(device)
        parts = [
            vae.features(to_images(pixels[i : i + batch_size]).to(device)).cpu().numpy()
            for i in range(0, len(pixels), batch_size)
        ]
    finally:
        vae.cpu()
    return np.concatenate(parts) if parts else np.empty((0, vae.dim), np.float32)


def reduce(
    vae: ImageVAE,
    ds: xr.Dataset,
    batch_size: int = 1024,
    device: str | torch.device | None = None,
) -> xr.Dataset:
    """The pairs of ``ds`` with each image replaced by its features: a pyrocrl dataset with
    ``d`` features, the same ground truth and ``attrs``, plus ``reduced_from`` and
    ``source_image_shape``; the images are encoded on ``device`` (:func:`encode_images`).

    A lazily opened ``ds`` is encoded one block of pairs at a time
    (:func:`pyrocrl.data.stream.blocks`): memory holds a block of images and the features.
    """
    if is_lazy(ds):
        codes = _encode_blocks(vae, ds, batch_size, device)
    else:
        both = pair_images(ds)
        codes = encode_images(vae, both.reshape(-1, *both.shape[2:]), batch_size, device)
        codes = codes.reshape(len(both), 2, -1)
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


def _encode_blocks(vae: ImageVAE, ds: xr.Dataset, batch_size: int, device: Any) -> np.ndarray:
    """Features ``(pair, 2, d)`` of a lazily opened image dataset, block by block."""
    shape = ds.attrs.get("image_shape")
    if shape is None:
        raise DatasetError("this dataset holds no images (it has no attribute 'image_shape')")
    codes = None
    for start, values in blocks(ds["x"]):
        pixels = values.reshape(-1, *(int(s) for s in shape))
        features = encode_images(vae, pixels, batch_size, device).reshape(len(values), 2, -1)
        if codes is None:
            codes = np.empty((ds.sizes["pair"], *features.shape[1:]), dtype=features.dtype)
        codes[start : start + len(values)] = features
    assert codes is not None  # a valid dataset holds pairs
    return codes


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
