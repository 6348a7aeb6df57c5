import numpy as np
import pytest
import torch

from pyrocrl.mixing import CouplingMixing2D, Rotation, random_rotation


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
