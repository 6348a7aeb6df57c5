"""Baselines: the dVAE has no causal structure between its latent variables."""

import numpy as np
import pytest
import torch

from pyrocrl.data import make_simulator, simulate_splits
from pyrocrl.inference.fit import fit_ilcm, load_ilcm
from pyrocrl.inference.queries import intervene
from pyrocrl.inference.recipes import Recipe
from pyrocrl.models.baselines import DVAE


def test_interventions_change_only_the_target():
    model = DVAE(3, 3, hidden=(8,))
    out = intervene(model, {2: 0.3}, 100, seed=0)
    assert torch.allclose(out["z_tilde"][:, 1], torch.tensor(0.3), atol=1e-5)
    for j in (0, 2):
        assert torch.equal(out["z_tilde"][:, j], out["z"][:, j])


def test_mechanisms_ignore_the_other_noise():
    model = DVAE(3, 3, hidden=(8,))
    e = torch.randn(20, 3)
    moved = e.clone()
    moved[:, 0] += 1.0
    shift, scale = model.solution.shift_scale(e)
    moved_shift, moved_scale = model.solution.shift_scale(moved)
    assert torch.equal(shift, moved_shift) and torch.equal(scale, moved_scale)


def test_fit_and_load(tmp_path):
    splits = simulate_splits(make_simulator("scaling", 2, 3), 5, {"train": 600, "test": 200})
    short = Recipe(name="short", epochs=0.5, pretrain_epochs=0.1, beta_ramp=(0.1, 0.2))
    model, _, report = fit_ilcm(splits["train"], 2, test=splits["test"], recipe=short,
                                model="dvae", hidden=(8, 8), output=tmp_path, progress=False,
                                dci_pairs=(200, 200))  # fmt: skip
    assert report.format().startswith("DVAE fitted")
    loaded, _ = load_ilcm(tmp_path / "checkpoint.pt")
    assert isinstance(loaded, DVAE)
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name


def test_jax_twin_has_the_same_density():
    pytest.importorskip("jax")
    import jax.numpy as jnp
    import pyro
    from numpyro import handlers

    from pyrocrl.models.ilcm_jax import NumPyroILCM

    model = DVAE(4, 3, hidden=(8, 8))
    twin = NumPyroILCM.from_torch(model)
    latents = {"noise": torch.randn(6, 3), "target": torch.arange(6) % 4,
               "value": torch.randn(6)}  # fmt: skip
    x, x_tilde = torch.randn(6, 4), torch.randn(6, 4)
    trace = pyro.poutine.trace(pyro.condition(model.model, data=latents)).get_trace(x, x_tilde)
    trace.compute_log_prob()
    twin_trace = handlers.trace(
        handlers.substitute(
            twin.model, data={k: jnp.asarray(v.numpy()) for k, v in latents.items()}
        )
    ).get_trace(jnp.asarray(x.numpy()), jnp.asarray(x_tilde.numpy()))
    for site in ("value", "x_tilde"):
        ours = twin_trace[site]["fn"].log_prob(twin_trace[site]["value"])
        expected = trace.nodes[site]["log_prob"].detach().numpy()
        np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-4, err_msg=site)
