import numpy as np
import pytest
import torch

from pyrocrl.mixing import CouplingMixing2D, Rotation, Sensors, random_rotation


@pytest.mark.parametrize("n", [2, 3, 5, 10, 30])
def test_random_rotation_is_in_SO_n(n):
    for seed in range(5):
        r = random_rotation(n, np.random.default_rng(seed))
        assert np.allclose(r @ r.T, np.eye(n), atol=1e-10)
        assert np.isclose(np.linalg.det(r), 1.0, atol=1e-10)


def test_rotation_inverse():
    rot = Rotation(random_rotation(4, np.random.default_rng(0)))
    z = torch.randn(10, 4)
    assert torch.allclose(rot.inverse(rot(z)), z, atol=1e-5)


def test_coupling_mixing_is_invertible_and_nonlinear():
    g = CouplingMixing2D()
    z = 2 * torch.randn(1000, 2)
    x = g(z)
    assert torch.allclose(g.inverse(x), z, atol=1e-4)
    # not affine: the map's residual from the best linear fit is substantial
    design = torch.cat([z, torch.ones(1000, 1)], dim=1)
    fit = torch.linalg.lstsq(design, x).solution
    assert (x - design @ fit).pow(2).mean() > 0.1


def test_sensors_invert_on_their_image_and_saturate():
    rng = np.random.default_rng(3)
    g = Sensors(rng.normal(size=(8, 3)) / 3**0.5, 0.5 * rng.normal(size=8))
    z = torch.randn(500, 3, dtype=torch.float64).float()
    x = g(z)
    assert x.shape == (500, 8) and bool((x.abs() <= 1).all())
    inside = (x.abs() < 0.9999).all(-1)  # a reading that rounds to ±1 has lost its value
    assert inside.float().mean() > 0.9
    assert torch.allclose(g.inverse(x[inside]), z[inside], atol=1e-3)
    # far out along a sensor's direction its reading stops changing
    a = torch.as_tensor(g.matrix[0], dtype=torch.float32)
    far = g(torch.stack([10 * a, 20 * a]))[:, 0]
    assert torch.allclose(far[0], far[1], atol=1e-3)


@pytest.mark.parametrize(
    ("matrix", "offset", "message"),
    [
        (np.ones((2, 3)), np.zeros(2), "D ≥ n"),
        (np.ones((4, 2)), np.zeros(4), "full column rank"),
        (np.eye(3), np.zeros(2), "offset must be"),
    ],
)
def test_sensors_refuse_maps_that_lose_variables(matrix, offset, message):
    with pytest.raises(ValueError, match=message):
        Sensors(matrix, offset)
