"""Label-free trust checks: the agreement of fits from several model seeds."""

import json

import numpy as np
import pytest

from pyrocrl.cli import main
from pyrocrl.inference.trust import seed_agreement, target_agreement

ORDER = [2, 0, 3, 1]


@pytest.fixture
def z(rng):
    return rng.normal(size=(2000, 4))


def test_the_same_variables_up_to_order_sign_and_monotone_maps_agree_fully(z, rng):
    same = seed_agreement([z, z])
    assert same.mean == pytest.approx(1.0) and np.allclose(same.pairs, 1.0)
    reordered = -(np.sinh(z[:, ORDER]) ** 3)  # permuted, flipped and bent: the same variables
    result = seed_agreement([z, reordered, z + 0.01 * rng.normal(size=z.shape)])
    assert result.mean > 0.999 and (result.variables > 0.999).all()
    np.testing.assert_array_equal(result.matches[0][1], np.argsort(ORDER))
    np.testing.assert_array_equal(result.matches[1][0], ORDER)


def test_unrelated_or_mixed_variables_do_not_agree(z, rng):
    assert seed_agreement([z, rng.normal(size=z.shape)]).mean < 0.1
    rotation = np.linalg.qr(rng.normal(size=(4, 4)))[0]
    mixed = seed_agreement([z, z @ rotation]).mean
    assert 0.2 < mixed < 0.9  # mixtures of the same variables agree in part only


def test_one_variable_agrees_too(z, rng):
    one = z[:, :1]
    assert seed_agreement([one, -np.exp(one)]).mean == pytest.approx(1.0)
    assert seed_agreement([one, rng.normal(size=one.shape)]).mean < 0.1


def test_targets_agree_once_the_variables_are_matched(z, rng):
    matches = seed_agreement([z, z[:, ORDER]]).matches
    targets = rng.integers(0, 5, size=2000)
    renamed = np.concatenate([[0], matches[0][1] + 1])[targets]
    assert target_agreement([targets, renamed], matches) == 1.0
    assert target_agreement([targets, targets], matches) < 0.5  # the names differ


@pytest.mark.parametrize(
    ("encodings", "message"),
    [
        ([np.zeros((10, 2))], "at least 2 fits"),
        ([np.zeros((10, 2)), np.zeros((10, 3))], "shape"),
        ([np.zeros((10, 2)), np.full((10, 2), np.nan)], "NaN"),
    ],
)
def test_bad_encodings_are_refused(encodings, message):
    with pytest.raises(ValueError, match=message):
        seed_agreement(encodings)


def test_fit_with_several_seeds_reports_their_agreement(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["fit", "--n", "2", "--pairs", "400", "--test-pairs", "200"]
    assert main([*argv, "--recipe-scale", "0.05", "--seeds", "2", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "agreement between the 2 model seeds" in printed
    assert (out / "seed-0" / "checkpoint.pt").exists()
    assert (out / "seed-1" / "checkpoint.pt").exists()
    trust = json.loads((out / "trust.json").read_text())
    assert 0 <= trust["seed_agreement"] <= 1 and 0 <= trust["target_agreement"] <= 1
    with pytest.raises(SystemExit) as stop:  # argparse's usage error: one line, status 2
        main([*argv, "--seeds", "0", "-o", str(out)])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "--seeds: must be at least 1" in err and "Traceback" not in err
