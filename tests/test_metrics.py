import itertools

import numpy as np
import pytest

from pyrocrl.metrics import dci, intervention_accuracy, match_interventions, monotone_r2


@pytest.fixture
def truth(rng):
    return rng.normal(size=(1500, 3)), rng.normal(size=(500, 3))


def test_dci_of_a_permuted_rescaled_copy_is_perfect(truth):
    train, test = truth
    learned = lambda z: np.stack([3 * z[:, 2], -z[:, 0], np.tanh(z[:, 1])], axis=1)  # noqa: E731
    scores = dci(learned(train), train, learned(test), test, seed=0)
    assert scores.disentanglement > 0.95 and scores.completeness > 0.95
    assert scores.informativeness > 0.95
    assert scores.importance.shape == (3, 3)
    assert np.argmax(scores.importance, axis=1).tolist() == [2, 0, 1]


def test_dci_of_an_equal_mixture_is_poor(rng):
    train, test = rng.normal(size=(1500, 4)), rng.normal(size=(500, 4))
    hadamard = np.array([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]]) / 2
    scores = dci(train @ hadamard, train, test @ hadamard, test, seed=0)
    assert scores.disentanglement < 0.4 and scores.completeness < 0.4
    assert scores.informativeness > 0.5  # informative, only entangled


def test_dci_is_seeded(truth):
    train, test = truth
    a = dci(train[:, ::-1], train, test[:, ::-1], test, seed=3)
    b = dci(train[:, ::-1], train, test[:, ::-1], test, seed=3)
    assert a.disentanglement == b.disentanglement


def test_dci_rejects_bad_inputs(truth):
    train, test = truth
    with pytest.raises(ValueError, match="one row per sample"):
        dci(train[:10], train, test, test)
    bad = train.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        dci(bad, train, test, test)


def test_intervention_accuracy_is_invariant_to_relabelling(rng):
    true = rng.integers(0, 5, size=400)
    perm = np.array([0, 3, 1, 4, 2])  # learned label k means true label perm[k]
    predicted = np.argsort(perm)[true]
    assert intervention_accuracy(predicted, true, 4) == 1.0
    assert match_interventions(predicted, true, 4).tolist() == perm.tolist()


def test_no_intervention_is_never_relabelled():
    true = np.array([0, 0, 1, 1])
    predicted = np.array([1, 1, 0, 0])  # swapping none and z1 must not be allowed
    assert intervention_accuracy(predicted, true, 1) == 0.0


def test_hungarian_matches_brute_force(rng):
    n = 4
    for _ in range(20):
        true = rng.integers(0, n + 1, size=60)
        predicted = np.where(rng.random(60) < 0.5, true, rng.integers(0, n + 1, size=60))
        best = max(
            np.mean(np.array([0, *p])[predicted] == true)
            for p in itertools.permutations(range(1, n + 1))
        )
        assert intervention_accuracy(predicted, true, n) == pytest.approx(best)


def test_intervention_accuracy_rejects_bad_labels():
    with pytest.raises(ValueError, match=r"0\.\.2"):
        intervention_accuracy(np.array([0, 3]), np.array([0, 1]), 2)
    with pytest.raises(ValueError, match="one shape"):
        intervention_accuracy(np.array([0, 1, 2]), np.array([0, 1]), 2)


def test_monotone_r2_is_one_for_any_monotone_map_and_low_for_a_fold(rng):
    z = rng.uniform(-2, 2, size=2000)
    assert monotone_r2(np.exp(z), z) == pytest.approx(1.0)
    assert monotone_r2(-(z**3), z) == pytest.approx(1.0)  # decreasing maps count too
    assert monotone_r2(z**2, z) < 0.5  # a symmetric fold
    assert 0.9 < monotone_r2(np.where(z < 1, z, 2 - z), z) < 0.99  # the last quarter folds
    noisy = monotone_r2(z + rng.normal(scale=0.5, size=z.shape), z)
    assert noisy == pytest.approx(4 / 3 / (4 / 3 + 0.25), abs=0.03)  # Var z / Var ẑ


def test_monotone_r2_rejects_bad_inputs(rng):
    with pytest.raises(ValueError, match="same length"):
        monotone_r2(rng.normal(size=5), rng.normal(size=4))
    with pytest.raises(ValueError, match="NaN"):
        monotone_r2(np.array([0.0, np.nan]), np.zeros(2))
    with pytest.raises(ValueError, match="constant"):
        monotone_r2(np.ones(3), rng.normal(size=3))
