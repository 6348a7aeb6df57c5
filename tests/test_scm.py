import numpy as np
import pytest
import torch

from pyrocrl.graphs import descendants, random_dag
from pyrocrl.scm import AdditiveNoiseSCM, LinearSCM, bimodal_weights


def _linear_scm(n=5, seed=1):
    rng = np.random.default_rng(seed)
    return LinearSCM(bimodal_weights(random_dag(n, 0.5, rng), rng))


def test_linear_solution_is_closed_form():
    scm = _linear_scm()
    e = torch.randn(100, scm.n, dtype=torch.float64)
    w = torch.as_tensor(scm.weights)
    # z = e + z W  ⇔  z = e (I − W)⁻¹
    expected = e @ torch.linalg.inv(torch.eye(scm.n, dtype=torch.float64) - w)
    assert torch.allclose(scm.solve(e.float()).double(), expected, atol=1e-4)


def test_abduct_inverts_solve():
    scm = _linear_scm()
    e = torch.randn(100, scm.n)
    assert torch.allclose(scm.abduct(scm.solve(e)), e, atol=1e-5)


def test_intervention_changes_only_descendants():
    scm = _linear_scm(n=6, seed=3)
    e = torch.randn(500, scm.n)
    z = scm.solve(e)
    for k in range(1, scm.n + 1):
        target = torch.full((500,), k)
        value = torch.randn(500)
        noise_tilde, z_tilde = scm.intervene(e, target, value)
        assert torch.equal(z_tilde[:, k - 1], value)
        downstream = set(descendants(scm.adjacency, k - 1).tolist())
        for j in range(scm.n):
            if j == k - 1:
                continue
            if j in downstream:
                assert (z_tilde[:, j] != z[:, j]).all()
            else:
                assert torch.equal(z_tilde[:, j], z[:, j])  # bitwise
            assert torch.equal(noise_tilde[:, j], e[:, j])
        # the abducted noise of the intervened world reproduces it
        assert torch.allclose(scm.solve(noise_tilde), z_tilde, atol=1e-5)


def test_no_intervention_is_identity():
    scm = _linear_scm()
    e = torch.randn(50, scm.n)
    noise_tilde, z_tilde = scm.intervene(e, torch.zeros(50, dtype=torch.long), torch.randn(50))
    assert torch.equal(noise_tilde, e) and torch.equal(z_tilde, scm.solve(e))


@pytest.mark.parametrize("method", ["intervene", "shift"])
def test_intervene_rejects_bad_targets(method):
    scm = _linear_scm(n=3)
    e = torch.randn(4, 3)
    apply = getattr(scm, method)
    with pytest.raises(ValueError, match=r"0\.\.3"):
        apply(e, torch.tensor([0, 1, 4, 2]), torch.zeros(4))
    with pytest.raises(TypeError, match="integers"):
        apply(e, torch.zeros(4), torch.zeros(4))


def test_a_shift_keeps_the_parents_and_moves_one_noise_component():
    scm = _linear_scm(n=6, seed=3)
    e = torch.randn(500, scm.n)
    z = scm.solve(e)
    for k in range(1, scm.n + 1):
        value = torch.randn(500)
        noise_tilde, z_tilde = scm.shift(e, torch.full((500,), k), value)
        expected = e.clone()
        expected[:, k - 1] += value
        assert torch.equal(noise_tilde, expected)
        # the intervened variable moves by σ_k · value, its parents' effect unchanged
        assert torch.allclose(z_tilde[:, k - 1] - z[:, k - 1], value, atol=1e-5)
        upstream = set(range(scm.n)) - {k - 1} - set(descendants(scm.adjacency, k - 1).tolist())
        for j in upstream:
            assert torch.equal(z_tilde[:, j], z[:, j])
    none = scm.shift(e, torch.zeros(500, dtype=torch.long), torch.randn(500))
    assert torch.equal(none[0], e)


def test_bimodal_weights_avoid_zero_and_take_both_signs():
    rng = np.random.default_rng(0)
    full = np.triu(np.ones((10, 10), dtype=np.int8), 1)
    w = np.concatenate([bimodal_weights(full, rng)[full == 1] for _ in range(100)])
    assert w.size == 4500
    assert np.mean(np.abs(w) < 0.1) < 0.002  # needs b < −3: probability 0.0013
    assert np.mean(np.abs(w) < 0.4) < 0.03  # needs b < −2: probability 0.023
    assert 0.45 < np.mean(w > 0) < 0.55
    assert abs(np.median(np.abs(w)) - 1.0) < 0.03


def test_nonlinear_scm_and_validation():
    scm = AdditiveNoiseSCM(
        np.array([[0, 1], [0, 0]]), [None, lambda p: torch.sin(p[..., 0])], [1.0, 0.5]
    )
    e = torch.randn(20, 2)
    z = scm.solve(e)
    assert torch.allclose(z[:, 1], torch.sin(e[:, 0]) + 0.5 * e[:, 1])
    assert torch.allclose(scm.abduct(z), e, atol=1e-6)
    with pytest.raises(ValueError, match="cycle"):
        AdditiveNoiseSCM(np.array([[0, 1], [1, 0]]), [lambda p: p[..., 0]] * 2)
    with pytest.raises(ValueError, match="location function"):
        AdditiveNoiseSCM(np.array([[0, 1], [0, 0]]), [None, None])
    with pytest.raises(ValueError, match="positive"):
        AdditiveNoiseSCM(np.zeros((2, 2)), [None, None], [1.0, 0.0])
