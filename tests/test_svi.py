"""Training: a short run learns, schedules follow the recipe, runs resume exactly, bad
input and non-finite values stop with clear errors."""

import pickle
from dataclasses import replace

import numpy as np
import pytest
import torch

from pyrocrl.data import simulate_pairs, unpair
from pyrocrl.errors import CheckpointError, TrainingError
from pyrocrl.inference.elbo import PairELBO
from pyrocrl.inference.evaluate import elbo_per_pair
from pyrocrl.inference.guides import ILCMGuide
from pyrocrl.inference.objectives import ILCMObjective
from pyrocrl.inference.queries import intervention_posterior
from pyrocrl.inference.recipes import PRESETS, Recipe
from pyrocrl.inference.svi import Trainer
from pyrocrl.io import load_checkpoint
from pyrocrl.metrics import intervention_accuracy
from pyrocrl.models.ilcm import ILCM
from pyrocrl.observations import paired_rows

SHORT = Recipe(
    name="short",
    epochs=3,
    batch_size=64,
    lr=3e-3,
    pretrain_epochs=0.3,
    beta_ramp=(0.3, 0.8),
    intervention_prior_epoch=1.0,
    deterministic_epoch=2.5,
    consistency_weight=0.01,
    norm_weight=0.01,
    norm_decay=(0.3, 0.8),
)
"""A few hundred steps; the trainer does not precondition (that is the fit pipeline's)."""


@pytest.fixture(scope="module")
def data():
    return simulate_pairs("scaling", 3000, n=2, seed=11, graph_seed=3)


def _setup(seed=0, dim_x=2, n=2):
    torch.manual_seed(seed)
    model = ILCM(dim_x, n, hidden=(32, 32))
    guide = ILCMGuide(model, hidden=(32, 32))
    return model, guide, ILCMObjective(model, guide)


def test_short_run_learns_the_intervention_targets(data):
    model, guide, objective = _setup()
    x = torch.as_tensor(data["x"].values)
    guide.precondition(x[:, 0], x[:, 1])
    before = elbo_per_pair(model, guide, x[:500, 0], x[:500, 1])
    trainer = Trainer(model, guide, objective, SHORT, seed=0, progress=False, log_every=5)
    result = trainer.fit(data)
    after = elbo_per_pair(model, guide, x[:500, 0], x[:500, 1])
    assert after > before + 5
    probs = intervention_posterior(guide, x[:, 0], x[:, 1])
    accuracy = intervention_accuracy(probs.argmax(-1).numpy(), data["target"].values, 2)
    assert accuracy > 0.7  # chance is 1/3
    phases = {h["phase"] for h in result.history if "phase" in h}
    assert phases == {"pretrain", "soft", "deterministic"}


def test_recipe_schedules():
    authors = PRESETS["authors"]
    assert authors.at(5).pretrain and authors.at(5).beta == authors.pretrain_beta
    assert authors.at(10).beta == 0 and authors.at(19).beta == 1
    assert authors.at(14.5).beta == pytest.approx(0.5)
    assert not authors.at(29.9).intervention_prior and authors.at(30).intervention_prior
    assert not authors.at(59).deterministic and authors.at(60).deterministic
    assert authors.at(0).lr == pytest.approx(3e-4) and authors.at(15).lr == pytest.approx(
        1.5e-4, rel=1e-4
    )
    assert authors.at(30, 29.99).restart and not authors.at(31, 30.99).restart
    assert authors.at(19).offset == pytest.approx(1e-4) and authors.at(5).offset == 0.025
    assert authors.at(25).norm_weight == 0 and authors.at(5).norm_weight == 0.01
    assert Recipe.from_dict(authors.to_dict()) == authors
    half = authors.scaled(0.5)
    assert half.epochs == 45 and half.beta_ramp == (5, 9.5) and half.restart_every == 15
    assert half.at(15).intervention_prior and not half.at(14.9).intervention_prior
    assert (
        PRESETS["fast"].scaled(0.5).deterministic_epoch == PRESETS["fast"].deterministic_epoch / 2
    )


def test_recipe_final_kl_weight():
    low = PRESETS["authors"].replace(beta=0.01)
    assert low.at(5).beta == low.pretrain_beta and low.at(10).beta == 0
    assert low.at(14.5).beta == pytest.approx(0.005) and low.at(40).beta == pytest.approx(0.01)
    assert Recipe(name="flat", epochs=1.0, beta=0.1).at(0.5).beta == 0.1
    legacy = PRESETS["authors"].to_dict()
    del legacy["beta"]  # recipes saved before the field existed
    assert Recipe.from_dict(legacy) == PRESETS["authors"]
    with pytest.raises(ValueError, match="beta"):
        Recipe(name="bad", epochs=1.0, beta=0.0)
    with pytest.raises(ValueError, match="beta"):
        Recipe(name="bad", epochs=1.0, beta=float("nan"))


def test_learning_rate_decay():
    anneal = PRESETS["fast-anneal"]
    fast = PRESETS["fast"]
    assert anneal.replace(name="fast", lr_decay=(0.0, 0.0), final_lr_factor=1.0, notes="") == fast
    assert anneal.at(2.0).lr == fast.at(2.0).lr == anneal.at(2.75).lr == 1e-3
    assert anneal.at(3.125).lr == pytest.approx(1e-4)  # geometric: halfway, a factor of 10
    assert anneal.at(3.5).lr == pytest.approx(1e-5) and fast.at(3.5).lr == 1e-3
    assert anneal.scaled(4).lr_decay == (11.0, 14.0)
    assert anneal.scaled(4).at(14).lr == pytest.approx(1e-5)
    assert Recipe.from_dict(anneal.to_dict()) == anneal
    cycles = PRESETS["authors"].replace(lr_decay=(60, 90), final_lr_factor=0.1)
    assert cycles.at(75).lr == pytest.approx(PRESETS["authors"].at(75).lr * 0.1**0.5)
    for bad in (
        {"final_lr_factor": 0.0},
        {"final_lr_factor": 2.0},
        {"lr_decay": (2.0, 1.0)},
        {"final_lr_factor": 0.1},
    ):
        with pytest.raises(ValueError, match=r"final_lr_factor|lr_decay"):
            fast.replace(**bad)


def test_trainer_follows_the_decayed_learning_rate(data):
    recipe = SHORT.replace(epochs=1.5, lr_decay=(0.5, 1.0), final_lr_factor=0.01)
    model, guide, objective = _setup()
    trainer = Trainer(model, guide, objective, recipe, seed=0, progress=False, log_every=5)
    result = trainer.fit(data)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(3e-5)
    for entry in result.history:  # the last step of each entry started one step earlier
        started = entry["epoch"] * (entry["step"] - 1) / entry["step"]
        assert entry["lr"] == pytest.approx(recipe.at(started).lr)
    assert result.history[0]["lr"] == 3e-3 and result.history[-1]["lr"] == pytest.approx(3e-5)


def test_resume_after_a_crash_equals_an_uninterrupted_run(data, tmp_path):
    recipe = SHORT.replace(epochs=1.2)
    model, guide, objective = _setup()
    Trainer(model, guide, objective, recipe, seed=4, progress=False).fit(data)
    uninterrupted = {**model.state_dict(), **guide.state_dict()}

    model, guide, objective = _setup()
    calls = {"n": 0}

    def crashing(x, x_tilde, phase):
        calls["n"] += 1
        if calls["n"] == 40:
            raise KeyboardInterrupt  # killed between checkpoints
        return objective(x, x_tilde, phase)

    path = tmp_path / "run.pt"
    trainer = Trainer(
        model,
        guide,
        crashing,
        recipe,
        seed=4,
        checkpoint=path,
        checkpoint_every=25,
        progress=False,
    )
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(data)
    assert load_checkpoint(path)["step"] == 25

    model, guide, objective = _setup(seed=123)  # fresh modules, other initial weights
    Trainer(model, guide, objective, recipe, seed=4, checkpoint=path, progress=False).fit(data)
    resumed = {**model.state_dict(), **guide.state_dict()}
    assert resumed.keys() == uninterrupted.keys()
    for key, value in uninterrupted.items():
        assert torch.equal(resumed[key], value), key
    assert load_checkpoint(path)["step"] == len(data["pair"]) // 64 * 1.2 // 1 + 1


def test_resume_refuses_other_settings(data, tmp_path):
    model, guide, objective = _setup()
    path = tmp_path / "run.pt"
    Trainer(
        model, guide, objective, SHORT.replace(epochs=0.1), seed=1, checkpoint=path, progress=False
    ).fit(data)
    with pytest.raises(TrainingError, match="another recipe or seed"):
        Trainer(
            model,
            guide,
            objective,
            SHORT.replace(epochs=0.1),
            seed=2,
            checkpoint=path,
            progress=False,
        ).fit(data)


def test_checkpoint_round_trip_and_contents(data, tmp_path):
    model, guide, objective = _setup()
    path = tmp_path / "run.pt"
    Trainer(
        model, guide, objective, SHORT.replace(epochs=0.1), seed=1, checkpoint=path, progress=False
    ).fit(data)
    payload = load_checkpoint(path)
    fresh_model, fresh_guide, _ = _setup(seed=9)
    fresh_model.load_state_dict(payload["model"])
    fresh_guide.load_state_dict(payload["guide"])
    for a, b in zip(fresh_model.parameters(), model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert payload["recipe"]["name"] == "short" and payload["history"]


class _Exploit:
    def __reduce__(self):
        return (exec, ("open('PWNED', 'w').write('x')",))


def test_loading_a_checkpoint_executes_no_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"format": "pyrocrl.checkpoint", "payload": _Exploit()}))
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(path)
    assert not (tmp_path / "PWNED").exists()
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


def test_bad_training_data_is_refused_before_training(data):
    model, guide, objective = _setup()
    trainer = Trainer(model, guide, objective, SHORT, progress=False)
    x = data["x"].values.copy()
    with pytest.raises(ValueError, match="2 features"):
        trainer.fit(np.concatenate([x, x], axis=-1))
    with pytest.raises(ValueError, match=r"shape \(pairs, 2, features\)"):
        trainer.fit(x[:, 0])
    x[7, 1, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite values in 1 pairs"):
        trainer.fit(x)
    with pytest.raises(ValueError, match="fewer than one batch"):
        trainer.fit(data["x"].values[:10])


@pytest.mark.filterwarnings("ignore:Encountered NaN")  # Pyro's own validation warns first
def test_non_finite_loss_names_the_step_and_the_term(data):
    model, guide, objective = _setup()
    original = model.likelihood.forward

    def broken(e):
        distribution = original(e)
        if broken.calls > 3:
            distribution.base_dist.loc[..., 0] = torch.nan
        broken.calls += 1
        return distribution

    broken.calls = 0
    model.likelihood.forward = broken
    trainer = Trainer(model, guide, objective, SHORT, progress=False)
    with pytest.raises(TrainingError, match=r"step 1 \(pretrain phase\).*site 'x_tilde'"):
        trainer.fit(data)


def test_elbo_of_a_pair_program_without_target_has_unit_weights(data):
    model, guide, _ = _setup()
    x = torch.as_tensor(data["x"].values[:8])
    terms = PairELBO().terms(model.independent_model, guide.independent_guide, x[:, 0], x[:, 1])
    assert set(terms) == {"kl_noise", "kl_noise_tilde", "log_likelihood", "elbo"}


def test_stopping_and_continuing_equals_one_call(data):
    recipe = SHORT.replace(epochs=1.0)
    model, guide, objective = _setup()
    Trainer(model, guide, objective, recipe, seed=2, progress=False).fit(data)
    once = [p.detach().clone() for p in model.parameters()]

    model, guide, objective = _setup()
    trainer = Trainer(model, guide, objective, recipe, seed=2, progress=False)
    first = trainer.fit(data, until_epoch=0.4)
    assert first.steps == 19  # ceil(0.4 * 46 steps per epoch)
    second = trainer.fit(data)
    assert second.steps == 46
    for a, b in zip(once, model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_mixed_data_batches_hold_pairs_then_unpaired_observations(data):
    """Each step takes a batch of pairs and one of unpaired observations, every part in
    cycles of its own, and weights an unpaired observation as the recipe says (M / N)."""
    mixed = unpair(data, 0.25, seed=0)  # 750 pairs, 2250 unpaired observations
    paired = paired_rows(mixed["x"].values)
    model, guide, _ = _setup()
    seen = []

    def objective(x, x_tilde, phase):
        seen.append((x, x_tilde, phase))
        loss = sum(p.sum() for p in model.parameters()) * 0.0
        return loss, {"elbo": 0.0, "loss": 0.0}

    recipe = SHORT.replace(epochs=1.0, unpaired_weight=None)  # the bound of the whole data
    trainer = Trainer(model, guide, objective, recipe, seed=0, progress=False)
    assert trainer.fit(mixed).steps == 2250 // 64
    rows = torch.as_tensor(mixed["x"].values)
    pair_rows, single_rows = [], []
    for x, x_tilde, phase in seen:
        assert phase.unpaired_weight == 3.0
        assert torch.isfinite(x_tilde[:64]).all() and torch.isnan(x_tilde[64:]).all()
        index = [int((rows[:, 0] == row).all(-1).nonzero()[0]) for row in x]
        pair_rows += index[:64]
        single_rows += index[64:]
    cycle = 750 // 64  # each pair once per cycle of the pairs
    assert len(set(pair_rows[: cycle * 64])) == cycle * 64
    assert paired[pair_rows].all() and not paired[single_rows].any()
    assert len(set(single_rows)) == len(single_rows) == 2250 // 64 * 64
    with pytest.raises(ValueError, match="30 unpaired observations are fewer than one batch"):
        trainer.fit(np.concatenate([data["x"].values, mixed["x"].values[~paired][:30]]))


def test_an_unpaired_observation_counts_its_weight_in_the_objective(data):
    model, guide, objective = _setup()
    x = torch.as_tensor(data["x"].values[:6]).clone()
    x[3:, 1] = torch.nan
    phase = replace(SHORT.at(2.0), unpaired_weight=2.5, entropy_weight=0.0)
    torch.manual_seed(0)
    _, report = objective(x[:, 0], x[:, 1], phase)
    torch.manual_seed(0)
    terms = PairELBO().terms(model.model, guide.guide, x[:, 0], x[:, 1], beta=phase.beta)
    expected = (terms["elbo"][:3].sum() + 2.5 * terms["elbo"][3:].sum()).detach() / 3
    assert report["elbo"] == pytest.approx(expected.item(), rel=1e-5)


def test_unpaired_weight_is_checked():
    with pytest.raises(ValueError, match="unpaired_weight must be positive or None"):
        SHORT.replace(unpaired_weight=0.0)
