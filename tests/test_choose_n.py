"""Choosing the number of causal variables without labels (``pyrocrl fit --n auto``)."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pyrocrl.cli import main
from pyrocrl.data import save, simulate_pairs
from pyrocrl.inference import choose_n as choose_n_module
from pyrocrl.inference.choose_n import NFit, choose_n, intervention_shares, scan_n


def nfit(n, elbo, spare=0, seed=0):
    """A fit of ``n`` variables, the last ``spare`` of them never the inferred target."""
    shares = np.full(n, 0.8 / n)
    shares[n - spare :] = 0.0005
    return NFit(n, seed, elbo, shares)


def test_the_best_complete_fit_is_chosen():
    fits = [nfit(2, 5.0), nfit(3, 20.0), nfit(4, 20.4, spare=1), nfit(5, 19.0, spare=2)]
    choice = choose_n(fits)
    assert choice.n == 3 and choice.best is fits[1]
    assert [f.complete() for f in fits] == [True, True, False, False]
    # a spare variable is a spare variable whatever its ELBO: the share decides …
    assert choose_n([nfit(3, 20.0), nfit(4, 25.0, spare=1)]).n == 3
    # … and among complete fits the ELBO, also when a larger n is complete
    assert choose_n([nfit(3, 20.0), nfit(4, 18.0)]).n == 3
    assert choose_n([nfit(3, 20.0, seed=0), nfit(3, 21.0, seed=1)]).best.seed == 1


def test_no_complete_fit_chooses_nothing_and_says_so():
    choice = choose_n([nfit(2, 1.0, spare=1), nfit(3, 2.0, spare=2)])
    assert choice.n is None and choice.best is None
    assert "no fit is complete" in choice.format()
    assert json.loads(json.dumps(choice.to_dict()))["n"] is None


def test_the_threshold_is_a_share():
    with pytest.raises(ValueError, match="min_share"):
        choose_n([nfit(2, 1.0)], min_share=1.5)
    fits = [nfit(2, 1.0), nfit(3, 2.0)]
    fits[1].shares[0] = 0.05
    assert choose_n(fits, min_share=0.01).n == 3
    assert choose_n(fits, min_share=0.1).n == 2


class PosteriorOnly:
    """A guide whose intervention posterior is given: what the shares read."""

    def __init__(self, probs):
        self.probs, self.dim_x = torch.as_tensor(probs), 2
        self.model = SimpleNamespace(infers_interventions=True)

    def intervention_probs(self, x, x_tilde):
        return self.probs[: len(x)]


def test_shares_count_the_most_probable_target_not_the_mean_mass():
    # variable 2 holds 0.04 of the mass of every pair but is never the most probable target
    probs = np.array([[0.6, 0.36, 0.04]] * 7 + [[0.2, 0.76, 0.04]] * 3)
    shares = intervention_shares(PosteriorOnly(probs), torch.zeros(10, 2), torch.zeros(10, 2))
    np.testing.assert_allclose(shares, [0.3, 0.0])


def fake_scan(monkeypatch, *, true_n=3, spare=True):
    """Replace the fits of a scan by stand-ins with ``true_n`` variables: past them a fit
    gains a nat of likelihood per variable less than it pays, and its extra variables are
    spare (never the inferred target) or, with ``spare=False``, split: intervened on, but
    different for every seed. Returns the list the fits are recorded in."""
    fitted, rng = [], np.random.default_rng(0)
    base = rng.normal(size=(50, 8))

    def fake_fit(train, n, *, test, seed, output, **options):
        fitted.append((n, seed))
        elpd = 10.0 * min(n, true_n) - n + seed
        report = SimpleNamespace(metrics={"elbo": elpd - 1}, seed=seed)
        return SimpleNamespace(elpd=elpd), SimpleNamespace(n=n, seed=seed), report

    def fake_shares(guide, x, x_tilde):
        shares = np.full(guide.n, 0.2)
        shares[true_n:] = 0.0 if spare else 0.05
        return shares

    def fake_encode(guide, x):
        z = base[:, : guide.n].copy()
        extra = np.random.default_rng(guide.seed + 1).normal(size=(50, 8))
        z[:, true_n:] = extra[:, true_n : guide.n]  # each seed its own extra variables
        return {"z": torch.as_tensor(z)}

    monkeypatch.setattr("pyrocrl.inference.fit.fit_ilcm", fake_fit)
    monkeypatch.setattr("pyrocrl.inference.queries.encode", fake_encode)
    monkeypatch.setattr(choose_n_module, "intervention_shares", fake_shares)
    monkeypatch.setattr(choose_n_module, "held_out_elpd", lambda model, *_: model.elpd)
    return fitted


def test_scan_stops_after_the_first_n_without_a_complete_fit(monkeypatch, tmp_path):
    fitted = fake_scan(monkeypatch)
    data = simulate_pairs("scaling-sensors", 50, n=3, seed=0)
    choice, fits = scan_n(data, test=data, seeds=(0, 1), output=tmp_path)
    assert fitted == [(n, s) for n in (1, 2, 3, 4) for s in (0, 1)]  # 4 is spare: stop
    assert choice.n == 3 and choice.best.seed == 1 and set(fits) == set(fitted)
    assert json.loads((tmp_path / "n_scan.json").read_text())["n"] == 3
    fitted.clear()
    choice, _ = scan_n(data, test=data, n_min=2, n_max=3)
    assert fitted == [(2, 0), (3, 0)] and choice.n == 3
    with pytest.raises(ValueError, match="n_min ≤ n_max"):
        scan_n(data, test=data, n_min=4, n_max=3)
    with pytest.raises(TypeError, match="chooses n itself"):
        scan_n(data, test=data, n=3)


def test_with_several_seeds_a_variable_they_do_not_share_makes_a_fit_incomplete(monkeypatch):
    fitted = fake_scan(monkeypatch, spare=False)  # the extra variables are intervened on
    data = simulate_pairs("scaling-sensors", 50, n=3, seed=0)
    choice, _ = scan_n(data, test=data, seeds=(0, 1), min_agreement=0.9)
    four = [fit for fit in choice.fits if fit.n == 4]
    assert all(fit.shares.min() >= 0.01 and fit.agreement.min() < 0.5 for fit in four)
    assert choice.n == 3
    assert max(fitted) == (8, 1)  # split variables are used: the scan goes on to n_max
    assert all(fit.agreement.min() > 0.99 for fit in choice.fits if fit.n <= 3)
    # one seed cannot see it: the split fit is complete, and the scan goes on
    fitted.clear()
    alone, _ = scan_n(data, test=data, n_max=5)
    assert alone.fits[-1].agreement is None and len(fitted) == 5


@pytest.fixture
def sensor_pairs(tmp_path):
    path = tmp_path / "pairs.nc"
    save(simulate_pairs("scaling-sensors", 600, n=2, seed=5), path)
    return path


def test_fit_n_auto_scans_chooses_and_writes_every_fit(sensor_pairs, tmp_path, capsys):
    out = tmp_path / "scan"
    argv = ["fit", "--data", str(sensor_pairs), "--n", "auto", "--n-max", "2"]
    assert main([*argv, "--recipe-scale", "0.05", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    scan = json.loads((out / "n_scan.json").read_text())
    assert [fit["n"] for fit in scan["fits"]] == [1, 2][: len(scan["fits"])]
    assert f"chosen: n = {scan['n']}" in text
    assert (out / f"n-{scan['n']}" / f"seed-{scan['seed']}" / "checkpoint.pt").exists()
    assert "the chosen fit:" in text


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--n", "3", "--n-max", "4"], "--n-max bounds the scan"),
        (["--n", "auto", "--model", "betavae"], "intervention posterior"),
    ],
)
def test_fit_n_auto_refuses_what_it_cannot_do(sensor_pairs, tmp_path, capsys, extra, message):
    argv = ["fit", "--data", str(sensor_pairs), *extra, "-o", str(tmp_path / "out")]
    assert main(argv) != 0
    assert message in capsys.readouterr().err


def test_fit_n_must_be_a_number_or_auto(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--n", "many"])
    assert "expected a whole number" in capsys.readouterr().err


def test_the_importance_sampled_likelihood_is_tighter_than_the_elbo():
    from pyrocrl.inference import ILCMGuide, elbo_per_pair
    from pyrocrl.models import ILCM

    model = ILCM(dim_x=3, n=2)  # untrained: a loose guide, so the bounds differ clearly
    guide = ILCMGuide(model)
    x, x_tilde = torch.randn(200, 3), torch.randn(200, 3)
    elbo = elbo_per_pair(model, guide, x, x_tilde)
    few = choose_n_module.held_out_elpd(model, guide, x, x_tilde, draws=2)
    many = choose_n_module.held_out_elpd(model, guide, x, x_tilde, draws=200)
    assert np.isfinite(many) and elbo < few < many
