"""The fit pipeline: candidates, selection, reports, results on disk, loading back."""

import json

import pytest
import torch

from pyrocrl.cli import main
from pyrocrl.data import make_simulator, simulate_splits
from pyrocrl.inference.fit import fit_ilcm, load_ilcm
from pyrocrl.inference.guides import ILCMGuide
from pyrocrl.inference.objectives import ILCMObjective
from pyrocrl.inference.queries import encode
from pyrocrl.inference.recipes import Recipe
from pyrocrl.inference.svi import Trainer
from pyrocrl.io import CheckpointError
from pyrocrl.models.ilcm import ILCM

TINY = Recipe(
    name="tiny",
    epochs=1.0,
    lr=3e-3,
    pretrain_epochs=0.2,
    beta_ramp=(0.2, 0.5),
    intervention_prior_epoch=0.5,
    deterministic_epoch=0.8,
    sparsity_weight=10.0,
    balance_weight=10.0,
    sparsity_decay=(0.5, 0.7),
    posterior_power=0.1,
    posterior_power_ramp=(0.2, 0.5),
    candidates=2,
    select_epoch=0.4,
)


@pytest.fixture(scope="module")
def splits():
    lcm = make_simulator("scaling", 2, 3)
    return simulate_splits(lcm, 5, {"train": 1500, "test": 400, "dci": 400})


def test_candidates_are_compared_and_the_best_is_finished(splits, tmp_path):
    _, guide, report = fit_ilcm(
        splits["train"], 2, test=splits["test"], dci_train=splits["dci"], recipe=TINY,
        seed=3, output=tmp_path, hidden=(16, 16), dci_pairs=(400, 400), progress=False,
    )  # fmt: skip
    assert [c["candidate"] for c in report.selection] == [0, 1]
    assert report.selection[0]["seed"] == 3
    best = max(report.selection, key=lambda c: c["elbo"])
    payload = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert payload["seed"] == best["seed"]
    assert not list(tmp_path.glob("candidate*.pt"))
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["metrics"]["dci_disentanglement"] == report.metrics["dci_disentanglement"]
    assert results["recipe_settings"]["candidates"] == 2
    assert "kept candidate" in report.format()

    loaded_model, loaded_guide = load_ilcm(tmp_path / "checkpoint.pt")
    x = torch.as_tensor(splits["test"]["x"].values[:50, 0])
    assert torch.allclose(encode(loaded_guide, x)["z"], encode(guide, x)["z"])
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):  # wrong feature size
        encode(loaded_guide, torch.zeros(3, 5))
    trainer = Trainer(loaded_model, loaded_guide, ILCMObjective(loaded_model, loaded_guide), TINY)
    with pytest.raises(ValueError, match="expects 2 features"):
        trainer.fit(torch.zeros(100, 2, 5))

    # a finished run resumes to the same result without training again
    _, _, again = fit_ilcm(
        splits["train"], 2, test=splits["test"], dci_train=splits["dci"], recipe=TINY,
        seed=3, output=tmp_path, hidden=(16, 16), dci_pairs=(400, 400), progress=False,
    )  # fmt: skip
    assert again.metrics == report.metrics
    assert again.selection == report.selection  # the record is not lost by resuming
    assert again.train_time >= report.train_time
    assert not (tmp_path / "selection.json").exists()
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"results\.json"):
        fit_ilcm(splits["train"], 2, recipe=TINY, seed=3, output=tmp_path, hidden=(16, 16),
                 progress=False)  # fmt: skip


def test_extended_models_need_builders_for_several_candidates(splits):
    model = ILCM(2, 2, hidden=(16, 16), likelihood="laplace")
    with pytest.raises(ValueError, match="candidates"):
        fit_ilcm(splits["train"], 2, recipe=TINY, model=model)
    _, _, report = fit_ilcm(
        splits["train"], 2, recipe=TINY, progress=False,
        model=lambda: ILCM(2, 2, hidden=(16, 16), likelihood="laplace"),
        guide=lambda m: ILCMGuide(m, hidden=(16, 16)),
    )  # fmt: skip
    assert len(report.selection) == 2 and not report.metrics


def test_model_must_fit_the_data(splits):
    with pytest.raises(ValueError, match="the data need n=2"):
        fit_ilcm(splits["train"], 2, recipe=TINY.replace(candidates=1), model=ILCM(2, 3))


def test_cli_fit_smoke(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["fit", "--n", "2", "--pairs", "1000", "--test-pairs", "300", "--data-seed", "1"]
    assert main([*argv, "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "DCI disentanglement" in text and "intervention accuracy" in text
    assert (out / "checkpoint.pt").exists() and (out / "results.json").exists()
    assert main([*argv, "--recipe", "nope", "-o", str(out)]) == 1
    assert "unknown recipe" in capsys.readouterr().err
