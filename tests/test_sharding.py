"""Data-parallel JAX training and the choice of JAX devices.

The equivalence of a run split over two devices and the same run on one needs two devices
before JAX starts: it runs in a child process with two host CPU devices
(``--xla_force_host_platform_device_count=2``), started by the test, which runs
:func:`train_runs` (this file as a script) and checks what it writes.

The child trains in double precision. Split over devices, a minibatch's sums are taken in
another order; in single precision Adam turns that rounding, in gradients near zero (the
solution network's when it starts training), into differences of a fraction of the
learning rate per step (measured: 6e-8 after the pretraining steps, 6e-3 after 40 steps
over three phases). In double precision the same run agrees to about 1e-11 (with
``jax_threefry_partitionable`` on or off), so a tight tolerance states that sharding
changes nothing but the order of the sums.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

jax = pytest.importorskip("jax")
from conftest import SHORT_RECIPE  # noqa: E402
from jax.sharding import SingleDeviceSharding  # noqa: E402

from pyrocrl.data import make_simulator, simulate_splits  # noqa: E402
from pyrocrl.devices import jax_devices  # noqa: E402
from pyrocrl.inference.candidates import make_trainer  # noqa: E402
from pyrocrl.inference.guides import ILCMGuide  # noqa: E402
from pyrocrl.inference.guides_jax import NumPyroILCMGuide  # noqa: E402
from pyrocrl.inference.recipes import Recipe  # noqa: E402
from pyrocrl.inference.svi_jax import JAXTrainer  # noqa: E402
from pyrocrl.models.ilcm import ILCM  # noqa: E402
from pyrocrl.models.ilcm_jax import NumPyroILCM  # noqa: E402

RUNS = {"one": {"devices": 1}, "two": {"devices": 2}}
"""The child's runs: on JAX's default device, and split over two devices."""
PAIRS, BATCH, PRETRAINED = 640, 32, 0.2
"""Training pairs, the global batch (20 steps an epoch) and the epoch of the snapshot taken
after the pretraining steps."""


def _recipe() -> Recipe:
    """Two epochs (40 steps) through pretraining, soft and deterministic phases, with the
    ramps and regularizers of a real recipe."""
    return SHORT_RECIPE.replace(
        name="sharded", batch_size=BATCH, pretrain_epochs=PRETRAINED, precondition=False
    )


def _trainer(recipe: Recipe | None = None, **options) -> JAXTrainer:
    """A JAX trainer of a small ILCM (2 variables, 2 features, one hidden layer of 8),
    initialized from torch's seed 0, logging every step."""
    torch.manual_seed(0)
    model = ILCM(2, 2, hidden=(8,))
    twin = NumPyroILCM.from_torch(model)
    twin_guide = NumPyroILCMGuide.from_torch(ILCMGuide(model, hidden=(8,)), twin)
    recipe = recipe or _recipe()
    return JAXTrainer(twin, twin_guide, recipe, chunk=20, log_every=1, progress=False, **options)


def _parameters(trainer: JAXTrainer) -> dict[str, np.ndarray]:
    """The trainable arrays by path, as NumPy arrays."""
    leaves = jax.tree_util.tree_leaves_with_path(trainer.params)
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def _spy(trainer: JAXTrainer) -> tuple[list, object]:
    """Record the shapes and shardings of the arguments of every compiled chunk; returns
    the record and the compiled function."""
    calls, run = [], trainer._run

    def spy(*args):
        calls.append(
            jax.tree.map(
                lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding), args
            )
        )
        return run(*args)

    trainer._run = spy
    return calls, run


def _refusal(recipe: Recipe, **options) -> str:
    """The message with which a trainer refuses ``options`` (empty if it does not)."""
    try:
        _trainer(recipe, **options)
    except ValueError as error:
        return str(error)
    return ""


def train_runs(out: Path) -> None:
    """In a process with two devices (and double precision): train the same model with
    the same seed per :data:`RUNS`, and write to ``out`` each run's parameters after the
    pretraining steps and at the end and its per-step losses (``params.npz``), and what
    shows the split (``facts.json``)."""
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    jax.config.update("jax_enable_x64", True)
    data = simulate_splits(make_simulator("scaling", 2, 3), 5, {"train": PAIRS})["train"]
    arrays, facts = {}, {"devices": len(jax.devices())}
    for name, options in RUNS.items():
        trainer = _trainer(**options)
        calls, run = _spy(trainer)
        trainer.fit(data, until_epoch=PRETRAINED)
        arrays.update({f"{name} pretrained {k}": v for k, v in _parameters(trainer).items()})
        result = trainer.fit(data)
        arrays.update({f"{name} end {k}": v for k, v in _parameters(trainer).items()})
        arrays[f"{name} loss"] = np.array([h["loss"] for h in result.history])
        params = jax.tree.leaves(trainer.params)
        compiled = run.lower(*calls[0]).compile().as_text()
        facts[name] = {
            "steps": result.steps,
            "phases": sorted({h["phase"] for h in result.history}),
            "dtype": str(params[0].dtype),
            "param devices": sorted({len(p.sharding.device_set) for p in params}),
            "replicated": all(p.sharding.is_fully_replicated for p in params),
            "rows": str(getattr(calls[0][3].sharding, "spec", "")),
            "all-reduce": compiled.count("all-reduce("),
            "half batch": f"f64[{BATCH // 2},2,2]" in compiled,
        }
    facts["too many"] = _refusal(_recipe(), devices=3)
    facts["indivisible"] = _refusal(_recipe().replace(batch_size=25), devices=2)
    np.savez(out / "params.npz", **arrays)
    (out / "facts.json").write_text(json.dumps(facts))


@pytest.fixture(scope="module")
def two_devices(tmp_path_factory) -> tuple[dict, dict[str, np.ndarray]]:
    """What :func:`train_runs` writes, run in a child process with two host devices."""
    out = tmp_path_factory.mktemp("sharding")
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2"
    env = {**os.environ, "XLA_FLAGS": flags.strip(), "JAX_PLATFORMS": "cpu"}
    child = subprocess.run(
        [sys.executable, __file__, str(out)], env=env, capture_output=True, text=True, timeout=600
    )
    assert child.returncode == 0, child.stderr[-4000:]
    facts = json.loads((out / "facts.json").read_text())
    with np.load(out / "params.npz") as arrays:
        return facts, dict(arrays)


def _difference(arrays: dict[str, np.ndarray], a: str, b: str, when: str) -> float:
    """The largest absolute difference of the parameters of runs ``a`` and ``b``."""
    names = [k.removeprefix(f"{a} {when} ") for k in arrays if k.startswith(f"{a} {when} ")]
    assert names
    return max(
        float(np.max(np.abs(arrays[f"{a} {when} {k}"] - arrays[f"{b} {when} {k}"]), initial=0.0))
        for k in names
    )


# --- two devices -------------------------------------------------------------------------


def test_two_devices_train_what_one_does(two_devices):
    facts, arrays = two_devices
    assert facts["devices"] == 2
    for name in RUNS:
        assert facts[name]["steps"] == 40 and facts[name]["dtype"] == "float64"
        assert facts[name]["phases"] == ["deterministic", "pretrain", "soft"]
    # split over two devices, the sums of a minibatch are taken in another order; nothing
    # else differs (measured in double precision: about 1e-11 after 40 steps)
    assert _difference(arrays, "one", "two", "pretrained") < 1e-12
    assert _difference(arrays, "one", "two", "end") < 1e-9
    np.testing.assert_allclose(arrays["two loss"], arrays["one loss"], rtol=1e-12)


def test_the_split_is_real(two_devices):
    facts, _ = two_devices
    one, two = facts["one"], facts["two"]
    assert two["param devices"] == [2] and two["replicated"]  # parameters on both, whole
    assert two["rows"].endswith("(None, 'batch')")  # each step's rows split
    assert two["half batch"] and two["all-reduce"] > 0  # each device gathers 16 of 32 pairs
    assert one["param devices"] == [1] and one["all-reduce"] == 0 and not one["half batch"]


def test_refusals_on_two_devices(two_devices):
    facts, _ = two_devices
    assert "devices=3 asks for more devices than JAX has" in facts["too many"]
    assert "offers 2" in facts["too many"]
    assert "batch size 25 does not split over 2 devices" in facts["indivisible"]


# --- one device, here ----------------------------------------------------------------------


def test_a_named_cpu_holds_the_parameters():
    cpu = jax.devices("cpu")[0]
    for options in ({"device": "cpu"}, {"device": "cpu:0"}, {"devices": [cpu]}):
        trainer = _trainer(**options)
        assert trainer.placement.devices == (cpu,)
        for leaf in jax.tree.leaves((trainer.params, trainer.opt_state)):
            assert leaf.sharding == SingleDeviceSharding(cpu)
    default = _trainer(device="auto")
    assert default.placement.replicated is None  # the code path of JAX's default placement


def test_refusals():
    count = len(jax.devices())
    with pytest.raises(ValueError, match=f"devices={count + 1} asks for more devices than JAX"):
        _trainer(devices=count + 1)
    with pytest.raises(ValueError, match="unknown device 'quantum'"):
        _trainer(device="quantum")
    with pytest.raises(ValueError, match="unknown device 'cuda:x'"):
        _trainer(device="cuda:x")
    with pytest.raises(ValueError, match="at least one device"):
        _trainer(devices=0)
    with pytest.raises(ValueError, match="names one device"):
        jax_devices("cpu:0", 2)
    with pytest.raises(ValueError, match="give one of them"):
        _trainer(device="cpu", devices=jax.devices("cpu"))


def test_a_missing_platform_names_what_jax_offers():
    try:
        jax.devices("gpu")
    except RuntimeError:
        pass
    else:
        pytest.skip("this JAX has GPUs")
    for device in ("cuda", "gpu", "cuda:1"):
        with pytest.raises(ValueError, match=r"no gpu platform here; jax.devices\(\) offers"):
            jax_devices(device)


def test_make_trainer_passes_the_device_on():
    torch.manual_seed(0)
    model = ILCM(2, 2, hidden=(8,))
    guide = ILCMGuide(model, hidden=(8,))
    trainer = make_trainer(model, guide, _recipe(), seed=0, backend="jax", device="cpu")
    assert trainer.placement.devices == (jax.devices("cpu")[0],)


if __name__ == "__main__":
    train_runs(Path(sys.argv[1]))
