"""Data-parallel training of the Pyro backend: two CPU processes (gloo, through Lightning
Fabric) take the steps one process takes over the same global batch split into two shards,
their checkpoints resume in one process, and failures and mixed runs stop clearly."""

from dataclasses import replace

import pytest
import torch
from test_svi import SHORT, _setup

from pyrocrl.data import make_simulator, simulate_pairs, simulate_splits
from pyrocrl.errors import NonFiniteError, TrainingError
from pyrocrl.inference.distributed import DistributedTrainer
from pyrocrl.inference.fit import fit_ilcm
from pyrocrl.inference.objectives import ILCMObjective
from pyrocrl.inference.svi import Trainer

pytest.importorskip("lightning")

RECIPE = replace(SHORT, epochs=2.0, deterministic_epoch=1.6, batch_size=32)
"""Every phase in a few dozen steps of 32 pairs (16 a process)."""


@pytest.fixture(scope="module")
def pairs():
    return torch.as_tensor(
        simulate_pairs("scaling", 640, n=2, seed=11, graph_seed=3)["x"].values,
        dtype=torch.float32,
    )


def _parameters(*modules):
    return {
        f"{i}.{name}": value.detach().clone()
        for i, module in enumerate(modules)
        for name, value in module.state_dict().items()
    }


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)


def test_two_processes_take_the_steps_of_one_process_with_two_shards(pairs, tmp_path):
    path = tmp_path / "ddp.pt"
    model, guide, objective = _setup()
    start = _parameters(model, guide)
    ddp = DistributedTrainer(
        model, guide, objective, RECIPE, seed=5, devices=2, checkpoint=path, progress=False
    )
    half = ddp.fit(pairs, until_epoch=1.2)  # into the phase with the intervention prior
    assert half.steps == 24 and path.exists()

    one_model, one_guide, one_objective = _setup()
    one = Trainer(one_model, one_guide, one_objective, RECIPE, seed=5, shards=2, progress=False)
    one.fit(pairs, until_epoch=1.2)
    moved = max(float((v - start[k]).abs().max()) for k, v in _parameters(model, guide).items())
    assert moved > 1e-3  # it trained
    _assert_same(_parameters(model, guide), _parameters(one_model, one_guide))
    for a, b in zip(half.history, one._progress[1], strict=True):
        assert a["step"] == b["step"] and a["loss"] == pytest.approx(b["loss"], rel=1e-5)

    # the checkpoint of two processes resumes in one process with two shards, exactly
    resumed_model, resumed_guide, resumed_objective = _setup(seed=9)  # other initial values
    resumed = Trainer(
        resumed_model,
        resumed_guide,
        resumed_objective,
        RECIPE,
        seed=5,
        shards=2,
        checkpoint=path,
        progress=False,
    )
    resumed.fit(pairs)
    one.fit(pairs)
    _assert_same(_parameters(resumed_model, resumed_guide), _parameters(one_model, one_guide))


class FailingObjective(ILCMObjective):
    """The ILCM objective, failing on the shard of the second process at step 3."""

    calls = 0

    def __call__(self, x, x_tilde, phase):
        self.calls += 1
        if self.calls == 3 and torch.distributed.get_rank() == 1:
            raise NonFiniteError("the term 'elbo' is nan")
        return super().__call__(x, x_tilde, phase)


def test_a_failure_on_one_process_stops_every_process(pairs):
    model, guide, _ = _setup()
    trainer = DistributedTrainer(
        model, guide, FailingObjective(model, guide), RECIPE, devices=2, progress=False
    )
    with pytest.raises(TrainingError, match=r"step 2 .*shard 1: the term 'elbo' is nan"):
        trainer.fit(pairs)


def test_shards_in_one_process_resume_exactly(pairs, tmp_path):
    path = tmp_path / "sharded.pt"
    model, guide, objective = _setup()
    Trainer(model, guide, objective, RECIPE, seed=2, shards=4, progress=False).fit(pairs)
    parted = _setup()
    trainer = Trainer(*parted, RECIPE, seed=2, shards=4, checkpoint=path, progress=False)
    trainer.fit(pairs, until_epoch=0.5)
    again = _setup(seed=3)
    Trainer(*again, RECIPE, seed=2, shards=4, checkpoint=path, progress=False).fit(pairs)
    _assert_same(_parameters(model, guide), _parameters(*again[:2]))


def test_mixed_runs_and_bad_settings_are_refused(pairs, tmp_path, monkeypatch):
    path = tmp_path / "two.pt"
    model, guide, objective = _setup()
    Trainer(model, guide, objective, RECIPE, shards=2, checkpoint=path, progress=False).fit(
        pairs, until_epoch=0.2
    )
    other = _setup()
    with pytest.raises(TrainingError, match="over 2 shard"):
        Trainer(*other, RECIPE, checkpoint=path, progress=False).fit(pairs)
    with pytest.raises(ValueError, match="shards=0"):
        Trainer(*other, RECIPE, shards=0)
    with pytest.raises(ValueError, match="shards=33"):
        Trainer(*other, RECIPE, shards=33)
    with pytest.raises(ValueError, match="at least two processes"):
        DistributedTrainer(*other, RECIPE, devices=1)
    with pytest.raises(ValueError, match="'validation' is not an option"):
        DistributedTrainer(*other, RECIPE, validation=lambda step: {})
    with pytest.raises(ValueError, match="accelerator 'tpu'"):
        DistributedTrainer(*other, RECIPE, accelerator="tpu")
    for name in ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK"):
        monkeypatch.delenv(name, raising=False)
    nodes = DistributedTrainer(*other, RECIPE, devices=1, num_nodes=2)
    with pytest.raises(ValueError, match="set MASTER_ADDR, MASTER_PORT, NODE_RANK on every"):
        nodes.fit(pairs)


def test_device_strings():
    from pyrocrl.devices import torch_device

    assert torch_device(None) == torch_device("cpu") == torch.device("cpu")
    assert torch_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device 'gpu0'"):
        torch_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="PyTorch sees 0 GPU"):
            torch_device("cuda:1")


def test_fits_on_two_devices_and_candidates_in_processes(tmp_path):
    from test_fit import TINY

    splits = simulate_splits(make_simulator("scaling", 2, 3), 5, {"train": 1500, "test": 300})
    options = {"test": splits["test"], "recipe": TINY, "seed": 3, "progress": False}
    _, _, alone = fit_ilcm(splits["train"], 2, **options)
    _, _, apart = fit_ilcm(splits["train"], 2, candidate_workers=2, **options)
    assert apart.selection == alone.selection  # the same candidates, scored the same
    assert apart.metrics == alone.metrics

    # two processes: a run of its own, which a resume on one device refuses
    one = TINY.replace(candidates=1)
    _, _, report = fit_ilcm(
        splits["train"], 2, **{**options, "recipe": one}, devices=2, output=tmp_path
    )
    assert report.steps > 0 and (tmp_path / "checkpoint.pt").exists()
    with pytest.raises(TrainingError, match="holds another run"):
        fit_ilcm(splits["train"], 2, **{**options, "recipe": one}, output=tmp_path)
    with pytest.raises(ValueError, match="not with several devices"):
        fit_ilcm(splits["train"], 2, **options, devices=2, candidate_workers=2)
