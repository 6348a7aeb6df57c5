"""Learning from pixels: convolutional blocks, the image VAE, and reduction to features."""

import numpy as np
import pyro
import pytest
import torch
from conftest import svi_interrupted_after

import pyrocrl
from pyrocrl.conv import ConvDecoder, ConvEncoder, to_images, to_pixels
from pyrocrl.data import pairs_dataset, validate
from pyrocrl.errors import CheckpointError, DatasetError, TrainingError
from pyrocrl.inference.reduce import (
    decode_features,
    distinct_images,
    encode_images,
    fit_image_vae,
    intervention_images,
    load_image_vae,
    reduce,
    save_image_vae,
)
from pyrocrl.io import save_checkpoint
from pyrocrl.models.image_vae import ImageVAE


@pytest.mark.parametrize("resolution", [8, 16, 64])
def test_conv_shapes(resolution):
    encoder = ConvEncoder(5, resolution=resolution, channels=(4, 8))
    decoder = ConvDecoder(5, resolution=resolution, channels=(8, 4))
    images = torch.rand(2, 3, 3, resolution, resolution)  # two batch dims
    features = encoder(images)
    assert features.shape == (2, 3, 5)
    assert decoder(features).shape == (2, 3, 3, resolution, resolution)


@pytest.mark.parametrize("resolution", [4, 12, 48])
def test_conv_rejects_sizes_that_do_not_halve_to_four(resolution):
    with pytest.raises(ValueError, match="power of two"):
        ConvEncoder(5, resolution=resolution)


def test_pixels_round_trip():
    pixels = np.random.default_rng(0).integers(0, 256, size=(4, 8, 8, 3), dtype=np.uint8)
    images = to_images(pixels)
    assert images.shape == (4, 3, 8, 8) and 0 <= images.min() and images.max() <= 1
    np.testing.assert_array_equal(to_pixels(images), pixels)


def _blob_pairs(pairs: int, seed: int, resolution: int = 16):
    """Pairs of images of a bright square whose position is the one latent variable;
    the second world moves it (target 1) or not (target 0)."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(0, resolution - 4, size=(pairs, 2))
    target = rng.integers(0, 2, size=pairs)
    z[target == 0, 1] = z[target == 0, 0]
    pixels = np.zeros((pairs, 2, resolution, resolution, 3), dtype=np.uint8)
    for i in range(pairs):
        for w in range(2):
            c = int(z[i, w])
            pixels[i, w, 4:8, c : c + 4] = 255
    flat = pixels.reshape(pairs, 2, -1)
    return pairs_dataset(
        flat[:, 0],
        flat[:, 1],
        z=z[:, :1],
        z_tilde=z[:, 1:],
        target=target,
        attrs={"image_shape": [resolution, resolution, 3]},
    )


@pytest.fixture(scope="module")
def blobs():
    return _blob_pairs(1200, seed=0)


@pytest.fixture(scope="module")
def fitted(blobs):
    return fit_image_vae(blobs, dim=2, epochs=3, batch_size=32, channels=(8, 8), seed=0)


def test_distinct_images_skip_repeated_second_worlds(blobs):
    pixels = distinct_images(blobs)
    assert len(pixels) == 1200 + int((blobs["target"].values > 0).sum())
    assert pixels.shape[1:] == (16, 16, 3)


def test_image_vae_learns(blobs, fitted):
    vae, report = fitted
    assert set(report) == {"elbo", "mse", "seconds", "images", "steps", "resumed_at"}
    untrained = ImageVAE(2, resolution=16, channels=(8, 8))
    check = to_images(distinct_images(blobs)[:256])
    with torch.no_grad():
        before = float(((untrained.decode(untrained.encode(check)[0]) - check) ** 2).mean())
    assert report["mse"] < 0.5 * before
    # the code means carry the square's position: a monotone relation, almost
    codes = encode_images(vae, distinct_images(blobs)[:500])
    z = np.concatenate([blobs["z"].values[:, 0, 0], blobs["z"].values[:, 1, 0]])[:500]
    corr = np.abs(np.corrcoef(np.column_stack([codes, z]).T)[-1, :-1]).max()
    assert corr > 0.8


def test_features_are_standardized_and_decode_back(blobs, fitted):
    vae, _ = fitted
    features = encode_images(vae, distinct_images(blobs))
    np.testing.assert_allclose(features.mean(0), 0.0, atol=0.15)
    np.testing.assert_allclose(features.std(0), 1.0, atol=0.15)
    with torch.no_grad():
        images = to_images(distinct_images(blobs)[:8])
        loc = vae.encode(images)[0]
        torch.testing.assert_close(vae.decode_features(vae.features(images)), vae.decode(loc))


def test_reduce_keeps_the_truth_and_the_pairing(blobs, fitted):
    vae, _ = fitted
    codes = reduce(vae, blobs)
    validate(codes)
    assert codes.sizes["feature"] == 2 and codes.sizes["pair"] == 1200
    np.testing.assert_array_equal(codes["z"].values, blobs["z"].values)
    np.testing.assert_array_equal(codes["target"].values, blobs["target"].values)
    unmoved = blobs["target"].values == 0
    np.testing.assert_array_equal(codes["x"].values[unmoved, 0], codes["x"].values[unmoved, 1])
    assert codes.attrs["reduced_from"] == "images"
    pixels = decode_features(vae, codes["x"].values[:3, 0])
    assert pixels.shape == (3, 16, 16, 3) and pixels.dtype == np.uint8


def test_save_and_load_give_the_same_codes(blobs, fitted, tmp_path):
    vae, _ = fitted
    save_image_vae(vae, tmp_path / "vae.pt")
    back = load_image_vae(tmp_path / "vae.pt")
    pixels = distinct_images(blobs)[:50]
    np.testing.assert_array_equal(encode_images(back, pixels), encode_images(vae, pixels))


def test_reduce_needs_images(blobs, fitted):
    vae, _ = fitted
    with pytest.raises(DatasetError, match="no images"):
        reduce(vae, blobs.drop_attrs())


def test_image_vae_rejects_bad_settings():
    with pytest.raises(ValueError, match="dimension"):
        ImageVAE(0)
    with pytest.raises(ValueError, match="scale"):
        ImageVAE(2, scale=0.0)


def test_interrupted_vae_training_resumes_to_the_same_weights(blobs, tmp_path):
    small = blobs.isel(pair=slice(0, 700))
    settings = dict(dim=2, epochs=1.5, max_images=None, batch_size=32, channels=(8, 8), seed=3)
    mine = pyro.param("mine", torch.ones(2))  # the caller's param store is left as it was
    reference, report = fit_image_vae(small, **settings)
    assert report["resumed_at"] == 0
    assert set(pyro.get_param_store().keys()) == {"mine"} and pyro.param("mine") is mine

    path = tmp_path / "vae.ckpt"
    with svi_interrupted_after(13):
        fit_image_vae(small, checkpoint=path, checkpoint_every=5, **settings)
    assert path.exists()
    resumed, report = fit_image_vae(small, checkpoint=path, checkpoint_every=5, **settings)
    assert report["resumed_at"] == 10
    assert report["steps"] > 13
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=0, atol=0)

    with pytest.raises(TrainingError, match="other settings"):
        fit_image_vae(small, checkpoint=path, **{**settings, "seed": 4})
    with pytest.raises(ValueError, match="checkpoint_every"):
        fit_image_vae(small, checkpoint=path, checkpoint_every=0, **settings)
    with pytest.raises(ValueError, match="epochs must be positive"):
        fit_image_vae(small, **{**settings, "epochs": 0.0})


def test_load_image_vae_refuses_other_files(tmp_path):
    save_checkpoint(tmp_path / "other.pt", {"kind": "something else"})
    with pytest.raises(CheckpointError, match="not an image VAE"):
        load_image_vae(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        load_image_vae(tmp_path / "missing.pt")


def test_intervention_images_shapes_and_bad_input(blobs, fitted):
    vae, _ = fitted
    model = pyrocrl.ILCM(vae.dim, 2)
    guide = pyrocrl.ILCMGuide(model)
    scene = distinct_images(blobs)[0]
    grid = intervention_images(model, guide, vae, scene, np.zeros((2, 3)))
    assert grid.shape == (2, 3, *scene.shape) and grid.dtype == np.uint8
    with pytest.raises(ValueError, match="values must be"):
        intervention_images(model, guide, vae, scene, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="values must be"):
        intervention_images(model, guide, vae, scene, np.full((2, 3), np.nan))
    with pytest.raises(ValueError, match="one image"):
        intervention_images(model, guide, vae, scene[None], np.zeros((2, 3)))
