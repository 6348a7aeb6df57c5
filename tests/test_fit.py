"""The fit pipeline: candidates, selection, reports, results on disk, loading back; its
stages one by one (pyrocrl.inference.candidates among them); and what a fit starts from
(data and recipe)."""

import json
import time
from functools import partial

import numpy as np
import pytest
import torch

from pyrocrl.cli import main
from pyrocrl.data import load, make_simulator, simulate_splits
from pyrocrl.errors import CheckpointError
from pyrocrl.inference.candidates import (
    SELECTION_PAIRS,
    ModelParts,
    build_candidate,
    build_model,
    candidate_seed,
    choose_candidate,
    make_trainer,
    selection_score,
    validation_metrics,
)
from pyrocrl.inference.fit import (
    FitReport,
    check_fit_options,
    fit_ilcm,
    held_out_metrics,
    load_ilcm,
    recorded_metrics,
    write_results,
)
from pyrocrl.inference.fit_setup import held_out_fit_data, toy_fit_data, tuned_recipe
from pyrocrl.inference.guides import ILCMGuide
from pyrocrl.inference.objectives import ILCMObjective
from pyrocrl.inference.queries import encode
from pyrocrl.inference.recipes import Recipe, get_recipe
from pyrocrl.inference.svi import Trainer, pairs_tensor
from pyrocrl.io import save_checkpoint
from pyrocrl.models.baselines import DVAE
from pyrocrl.models.ilcm import ILCM
from pyrocrl.observations import paired_rows
from pyrocrl.solution import AffineSolution

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
        splits["train"],
        2,
        test=splits["test"],
        dci_train=splits["dci"],
        recipe=TINY,
        seed=3,
        output=tmp_path,
        hidden=(16, 16),
        dci_pairs=(400, 400),
        progress=False,
    )
    assert [c["candidate"] for c in report.selection] == [0, 1]
    assert report.selection[0]["seed"] == 3
    best = max(report.selection, key=lambda c: c["elbo"])
    payload = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert payload["seed"] == best["seed"]
    assert not list(tmp_path.glob("candidate*.pt"))
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["metrics"]["dci_disentanglement"] == report.metrics["dci_disentanglement"]
    assert results["recipe_settings"]["candidates"] == 2
    assert report.history and results["history"] == report.history  # returned and kept
    assert report.history[-1]["step"] == report.steps
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
        splits["train"],
        2,
        test=splits["test"],
        dci_train=splits["dci"],
        recipe=TINY,
        seed=3,
        output=tmp_path,
        hidden=(16, 16),
        dci_pairs=(400, 400),
        progress=False,
    )
    assert again.metrics == report.metrics
    assert again.selection == report.selection  # the record is not lost by resuming
    assert again.train_time >= report.train_time
    assert not (tmp_path / "selection.json").exists()
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"results\.json"):
        fit_ilcm(
            splits["train"],
            2,
            recipe=TINY,
            seed=3,
            output=tmp_path,
            hidden=(16, 16),
            progress=False,
        )


def test_extended_models_need_builders_for_several_candidates(splits):
    model = ILCM(2, 2, hidden=(16, 16), likelihood="laplace")
    with pytest.raises(ValueError, match="candidates"):
        fit_ilcm(splits["train"], 2, recipe=TINY, model=model)
    _, _, report = fit_ilcm(
        splits["train"],
        2,
        recipe=TINY,
        progress=False,
        model=lambda: ILCM(2, 2, hidden=(16, 16), likelihood="laplace"),
        guide=lambda m: ILCMGuide(m, hidden=(16, 16)),
    )
    assert len(report.selection) == 2 and not report.metrics


def test_a_model_with_parts_of_its_own_is_loaded_into_the_model_given(splits, tmp_path):
    def own() -> ILCM:  # a solution function passed in: the configuration cannot rebuild it
        return ILCM(2, 2, hidden=(8,), solution=AffineSolution(2, (8,)))

    _, guide, _ = fit_ilcm(
        splits["train"], 2, recipe=TINY.replace(candidates=1), model=own, output=tmp_path
    )
    path = tmp_path / "checkpoint.pt"
    with pytest.raises(CheckpointError, match=r"load_ilcm\(path, model=\.\.\.\)"):
        load_ilcm(path)
    model, loaded = load_ilcm(path, model=own)
    x = torch.as_tensor(splits["test"]["x"].values[:50, 0])
    assert torch.equal(encode(loaded, x)["z"], encode(guide, x)["z"])
    assert isinstance(model.solution, AffineSolution) and not model.training
    with pytest.raises(ValueError, match="unknown model 'nonsense'"):
        load_ilcm(path, model="nonsense")
    with pytest.raises(TypeError, match="guide must be a module or a function"):
        load_ilcm(path, model=own, guide=3)
    with pytest.raises(CheckpointError, match="builds no model"):  # sizes checked too
        load_ilcm(path, model=ILCM(3, 2, hidden=(8,)))
    with pytest.raises(CheckpointError):  # and the tensors
        load_ilcm(path, model=lambda: ILCM(2, 2, hidden=(16,), solution=AffineSolution(2)))


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


# --- the stages of fit_ilcm, one by one ----------------------------------------------------


def test_fit_options_are_refused_before_anything_is_built():
    recipe = TINY.replace(candidates=1)
    with pytest.raises(ValueError, match="n must be at least 1"):
        check_fit_options(0, recipe)
    with pytest.raises(ValueError, match="unknown model 'vae'"):
        check_fit_options(2, recipe, model="vae")
    with pytest.raises(TypeError, match="model must be a name, a module"):
        check_fit_options(2, recipe, model=3)
    with pytest.raises(ValueError, match="backend must be"):
        check_fit_options(2, recipe, backend="tf")
    with pytest.raises(ValueError, match="trains 2 candidates"):
        check_fit_options(2, TINY, guide=ILCMGuide(ILCM(2, 2, hidden=(8,)), hidden=(8,)))
    check_fit_options(2, TINY, model="elcm", guide=lambda m: ILCMGuide(m))


def _same_parameters(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_candidates_are_built_from_their_seed_alone(splits):
    parts = ModelParts(hidden=(8,))
    state = torch.random.get_rng_state()
    model, _ = build_model(parts, 7, 2, 2)
    assert torch.equal(state, torch.random.get_rng_state())  # the global stream is left alone
    again, _ = build_model(parts, 7, 2, 2)
    other, _ = build_model(parts, 8, 2, 2)
    assert _same_parameters(model, again) and not _same_parameters(model, other)
    assert isinstance(build_model(ModelParts("dvae", hidden=(8,)), 0, 2, 2)[0], DVAE)
    with pytest.raises(ValueError, match="the data need n=3"):
        build_model(ModelParts(ILCM(2, 2, hidden=(8,))), 0, 3, 2)
    data = pairs_tensor(splits["train"])
    _, plain = build_candidate(7, parts=parts, data=data, n=2, recipe=TINY)
    _, preconditioned = build_candidate(
        7, parts=parts, data=data, n=2, recipe=TINY.replace(precondition=True)
    )
    transform = preconditioned.encoder.input_transform
    assert not torch.equal(transform, plain.encoder.input_transform)


class _Untrained:
    """A trainer that records its calls and trains nothing."""

    def __init__(self, model, guide, *, seed, checkpoint):
        self.seed, self.checkpoint, self.calls = seed, checkpoint, []

    def fit(self, data, *, resume=True, until_epoch=None):
        self.calls.append(until_epoch)


def test_choosing_selecting_and_resuming_a_candidate(splits, tmp_path):
    data = pairs_tensor(splits["train"])
    build = partial(build_candidate, parts=ModelParts(hidden=(8,)), data=data, n=2, recipe=TINY)
    options = {"seed": 3, "build": build, "trainer_for": _Untrained, "output": tmp_path}
    chosen = choose_candidate(data, TINY, **options, started=time.perf_counter())
    assert [c["seed"] for c in chosen.selection] == [3, candidate_seed(3, 1)]
    assert [c["screen"] for c in chosen.selection] == [True, False]  # candidate_screen
    best = max(chosen.selection, key=lambda c: c["elbo"])
    assert chosen.trainer.seed == best["seed"] and chosen.trainer.calls == [TINY.select_epoch]
    assert chosen.trainer.checkpoint == tmp_path / "checkpoint.pt"
    assert chosen.selection[0]["elbo"] == selection_score(
        build(3)[0], build(3)[1], data[:SELECTION_PAIRS], 3
    )
    record = json.loads((tmp_path / "selection.json").read_text())
    assert record["selection"] == chosen.selection and record["train_time"] >= 0

    # the chosen candidate's checkpoint resumes with the record of the selection
    save_checkpoint(tmp_path / "checkpoint.pt", {"seed": best["seed"]})
    resumed = choose_candidate(data, TINY, **options)
    assert resumed.trainer.seed == best["seed"] and resumed.selection == chosen.selection
    assert resumed.earlier == record["train_time"]
    assert _same_parameters(resumed.model, build(best["seed"])[0])
    assert (
        choose_candidate(data, TINY.replace(candidates=1), **options, resume=False).selection == []
    )
    (tmp_path / "selection.json").write_text("[]")
    with pytest.raises(CheckpointError, match=r"selection\.json is not a record"):
        choose_candidate(data, TINY, **options)


def test_trainers_evaluation_and_results(splits, tmp_path):
    model, guide = build_model(ModelParts(hidden=(8,)), 0, 2, 2)
    trainer = make_trainer(model, guide, TINY, seed=0, test=splits["test"], validate_every=5)
    assert isinstance(trainer, Trainer)
    validation = validation_metrics(model, guide, splits["test"], seed=0)
    assert {"elbo", "intervention_accuracy", "dci_disentanglement"} <= set(validation(0))
    assert held_out_metrics(model, guide, None) == {}
    metrics = held_out_metrics(model, guide, splits["test"], dci_pairs=(200, 100))
    assert metrics["test_pairs"] == 400
    report = FitReport("tiny", 0, 1500, 64, 10, 0.4, 1.0, 2.0, metrics=metrics)
    (tmp_path / "selection.json").write_text("{}")
    history = [{"step": 1, "phase": "pretrain", "loss": 1.0, "elbo": -1.0}]
    files = write_results(report, tmp_path, TINY, history)
    assert files == [str(tmp_path / n) for n in ("checkpoint.pt", "results.json", "training.png")]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["metrics"] == metrics and results["history"] == history
    assert results["recipe_settings"]["name"] == "tiny"
    assert not (tmp_path / "selection.json").exists()
    assert recorded_metrics(tmp_path / "checkpoint.pt") == metrics
    assert recorded_metrics(tmp_path / "elsewhere" / "checkpoint.pt") is None


# --- what a fit starts from ----------------------------------------------------------------


def test_toy_and_dataset_fit_data():
    toy = toy_fit_data(2, seed=1, pairs=100, test_pairs=30)
    assert (toy.n, toy.train.sizes["pair"], toy.test.sizes["pair"]) == (2, 100, 30)
    assert toy.dci.sizes["pair"] == 30 and toy.train.attrs["graph_seed"] == 1
    held = held_out_fit_data(toy.train)
    assert (held.n, held.train.sizes["pair"], held.test.sizes["pair"]) == (2, 90, 10)
    assert held.dci is None
    # a seeded random share, not the tail; the parts are disjoint and cover the dataset
    x, test_x = toy.train["x"].values, held.test["x"].values
    rows = [int(np.flatnonzero((x == row).all((1, 2)))[0]) for row in test_x]
    assert rows == sorted(rows) and rows != list(range(90, 100))
    both = np.concatenate([held.train["x"].values, test_x])
    assert sorted(map(bytes, both)) == sorted(map(bytes, x))
    again = held_out_fit_data(toy.train)
    np.testing.assert_array_equal(again.test["x"].values, test_x)
    other = held_out_fit_data(toy.train, split_seed=1)
    assert not np.array_equal(other.test["x"].values, test_x)
    with pytest.raises(ValueError, match="leaves an empty part"):
        held_out_fit_data(toy.train.isel(pair=slice(0, 1)))
    assert held_out_fit_data(toy.train, toy.test, n=3).test is toy.test
    with pytest.raises(ValueError, match="no ground truth"):
        held_out_fit_data(toy.train.drop_dims("latent"))


def test_tuned_recipe():
    assert tuned_recipe("fast") is get_recipe("fast")
    short = tuned_recipe("fast", scale=0.1, candidates=3)
    assert short.epochs == pytest.approx(0.1 * get_recipe("fast").epochs)
    assert short.candidates == 3 and short.select_epoch == pytest.approx(short.epochs * 6 / 7)
    assert tuned_recipe(TINY, candidates=2, select_epoch=0.3).select_epoch == 0.3
    with pytest.raises(ValueError, match="select_epoch compares candidates"):
        tuned_recipe("fast", select_epoch=1.0)
    with pytest.raises(ValueError, match="unknown recipe"):
        tuned_recipe("slow")


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_cli_fits_pairs_and_unpaired_observations(tmp_path, capsys, backend):
    """simulate --pair-share → fit --data: unpaired observations all train, only pairs are
    held out, the report counts both, and every number is finite."""
    if backend == "jax":
        pytest.importorskip("jax")
    data, out = tmp_path / "mixed.nc", tmp_path / "run"
    argv = ["simulate", "--n", "2", "--pairs", "3000", "--pair-share", "0.3", "-o", str(data)]
    assert main(argv) == 0
    assert "900 pairs and 2100 unpaired observations" in capsys.readouterr().out
    argv = ["fit", "--data", str(data), "--recipe-scale", "0.3", "--backend", backend]
    assert main([*argv, "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "to 810 pairs and 2100 unpaired observations" in text  # 10 % of the pairs held out
    results = json.loads((out / "results.json").read_text())
    assert results["pairs"] == 810 and results["unpaired"] == 2100
    assert results["metrics"]["test_pairs"] == 90
    assert all(np.isfinite(v) for v in results["metrics"].values())
    held_out = held_out_fit_data(load(data))
    assert paired_rows(held_out.test["x"].values).all()
