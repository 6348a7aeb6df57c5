"""An image dataset reduced to a feature dataset on disk (what ``pyrocrl reduce`` does): an
image VAE fitted to its images — checkpointed, so that an interrupted run goes on — every
pair written as the VAE's code means, and the VAE saved beside them. A lazily opened image
dataset (:func:`pyrocrl.data.load` with ``chunks``) is streamed from disk, never read whole
(:mod:`pyrocrl.inference.reduce`)."""

__all__ = ["Reduction", "reduce_to_features", "training_summary"]

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xarray as xr


@dataclass
class Reduction:
    """The features of an image dataset and where they went."""

    codes: xr.Dataset
    """The feature dataset, with the ground truth carried over."""
    output: Path
    vae_path: Path
    training: dict[str, Any]
    """The VAE's training report (:func:`~pyrocrl.inference.reduce.fit_image_vae`)."""

    def format(self) -> str:
        """What ``pyrocrl reduce`` prints at the end: the feature dataset
        (:func:`~pyrocrl.data.describe`) and the files written."""
        from pyrocrl.data import describe

        return f"{describe(self.codes)}\nwrote {self.output} and {self.vae_path}"


def training_summary(training: dict[str, Any]) -> str:
    """One line on the image VAE's training report: images, steps, seconds, where it was
    resumed, and the reconstruction error."""
    resumed = f" (resumed at step {training['resumed_at']})" if training["resumed_at"] else ""
    return (
        f"image VAE: {training['images']} images, {training['steps']} steps in "
        f"{training['seconds']:.0f} s{resumed}; reconstruction MSE {training['mse']:.5f}"
    )


def reduce_to_features(
    images: xr.Dataset,
    output: str | os.PathLike,
    *,
    vae_path: str | os.PathLike | None = None,
    dim: int = 8,
    epochs: float = 4.0,
    max_images: int = 50_000,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    device: str | None = None,
) -> Reduction:
    """Fit a convolutional VAE with ``dim`` features to (at most ``max_images`` of) the
    images of ``images`` for ``epochs`` epochs, write every pair as its code means to
    ``output`` and the VAE to ``vae_path`` (default: ``output`` with the suffix
    ``.vae.pt``).

    The VAE's training checkpoints to ``vae_path`` + ``.training``, which a call with the
    same arguments resumes, and which is removed once the VAE is saved.

    :param log: called with the :func:`training_summary` as soon as the VAE is trained
        (e.g. ``print``).
    :param device: where the VAE trains and encodes (:func:`~pyrocrl.devices.torch_device`).
    """
    from pyrocrl.data import save
    from pyrocrl.inference.reduce import fit_image_vae, reduce, save_image_vae

    output = Path(output)
    vae_path = Path(vae_path) if vae_path is not None else output.with_suffix(".vae.pt")
    checkpoint = vae_path.with_name(vae_path.name + ".training")
    vae, training = fit_image_vae(
        images,
        dim=dim,
        epochs=epochs,
        max_images=max_images,
        seed=seed,
        checkpoint=checkpoint,
        device=device,
    )
    if log is not None:
        log(training_summary(training))
    codes = reduce(vae, images, device=device)
    save(codes, output)
    save_image_vae(vae, vae_path)
    checkpoint.unlink(missing_ok=True)
    return Reduction(codes, output, vae_path, training)
