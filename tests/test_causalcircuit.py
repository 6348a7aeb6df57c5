"""CausalCircuit: the latent SCM, the MuJoCo renderer and the image datasets."""

import ctypes.util
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from pyrocrl.data import images, load, save
from pyrocrl.data.causalcircuit import (
    VARIABLES,
    CircuitScene,
    CircuitState,
    causal_circuit,
    render_states,
    simulate_causalcircuit,
)
from pyrocrl.errors import DatasetError, RenderingError
from pyrocrl.graphs import descendants

RES = 16


@pytest.fixture(scope="module")
def scene():
    with CircuitScene(RES) as s:
        yield s


@pytest.fixture(scope="module")
def pairs():
    return simulate_causalcircuit(300, seed=11, resolution=RES, workers=1)


def test_scm_graph_and_state_ranges():
    lcm = causal_circuit()
    # arm → red, green, blue; green → red
    expected = np.zeros((4, 4), dtype=int)
    expected[0, 1:] = 1
    expected[2, 1] = 1
    np.testing.assert_array_equal(lcm.scm.adjacency, expected)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        out = lcm.model(size=2000)
    state = CircuitState()(out["z"])
    assert ((state > 0) & (state < 1)).all()
    torch.testing.assert_close(CircuitState().inverse(state), out["z"], atol=1e-4, rtol=1e-4)


def test_pressing_a_button_lights_its_light_and_green_lights_red():
    lcm = causal_circuit()
    noise = torch.zeros(3, 4)  # no light noise; arm noise sets the arc position
    arm = {"red": 0.15, "green": 0.5, "blue": 0.85}
    noise[:, 0] = torch.special.ndtri(torch.tensor([arm["red"], arm["green"], arm["blue"]]))
    light = torch.sigmoid(lcm.scm.solve(noise)[:, 1:])  # (press at, light) intensities
    on, off = light > 0.85, light < 0.25  # off lights glow a little: σ(−κ) and a dim green
    assert on[0, 0] and off[0, 1] and off[0, 2]  # the red button
    assert on[1, 1] and light[1, 0] > 0.8 and off[1, 2]  # the green button, and green → red
    assert on[2, 2] and off[2, 0] and off[2, 1]  # the blue button


def test_render_smoke(scene):
    state = np.array([[0.1, 0.2, 0.3, 0.4], [0.9, 0.9, 0.1, 0.5]])
    out = scene.render(state)
    assert out.shape == (2, RES, RES, 3) and out.dtype == np.uint8
    assert out.std() > 5  # a scene, not a blank frame
    assert not np.array_equal(out[0], out[1])
    np.testing.assert_array_equal(scene.render(state), out)  # a pure function of the state


def test_render_rejects_bad_input(scene):
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        scene.render(np.zeros((3, 5)))
    for bad in (np.nan, 1.5, -0.1):
        state = np.full((2, 4), 0.5)
        state[1, 2] = bad
        with pytest.raises(ValueError, match=r"finite and lie in \[0, 1\]"):
            scene.render(state)
    with pytest.raises(ValueError, match="resolution"):
        CircuitScene(4)


def test_same_seed_same_images(pairs):
    again = simulate_causalcircuit(300, seed=11, resolution=RES, workers=1)
    np.testing.assert_array_equal(again["x"].values, pairs["x"].values)
    np.testing.assert_array_equal(again["z"].values, pairs["z"].values)
    other = simulate_causalcircuit(300, seed=12, resolution=RES, workers=1)
    assert not np.array_equal(other["x"].values, pairs["x"].values)


def test_parallel_rendering_matches_one_process(pairs):
    state = pairs["state"].values[:40, 0]
    np.testing.assert_array_equal(
        render_states(state, RES, workers=2, chunk=10), render_states(state, RES, workers=1)
    )


def test_dataset_layout(pairs):
    assert pairs["x"].dtype == np.uint8
    assert pairs.attrs["image_shape"].tolist() == [RES, RES, 3]
    assert pairs.attrs["variables"] == ",".join(VARIABLES)
    pictures = images(pairs)
    assert pictures.shape == (300, 2, RES, RES, 3)
    with pytest.raises(DatasetError, match="no images"):
        images(pairs.drop_attrs())


def test_interventions_change_only_the_target_and_its_descendants(pairs):
    lcm = causal_circuit()
    z, state, target = pairs["z"].values, pairs["state"].values, pairs["target"].values
    pictures = images(pairs)
    assert set(np.unique(target)) == {0, 1, 2, 3, 4}
    for k in range(5):
        rows = target == k
        if k == 0:
            np.testing.assert_array_equal(z[rows, 1], z[rows, 0])
            np.testing.assert_array_equal(pictures[rows, 1], pictures[rows, 0])
            continue
        hit = k - 1
        affected = {hit, *descendants(lcm.scm.adjacency, hit)}
        assert (z[rows, 1, hit] != z[rows, 0, hit]).all()
        for j in range(4):
            if j not in affected:  # neither the target nor one of its descendants
                np.testing.assert_array_equal(z[rows, 1, j], z[rows, 0, j])
            # the rendered state moves with the variable
            np.testing.assert_array_equal(
                state[rows, 1, j] == state[rows, 0, j], z[rows, 1, j] == z[rows, 0, j]
            )
        # and so do the pixels: every intervened pair whose state moved visibly looks different
        moved = np.abs(state[rows, 1] - state[rows, 0]).max(axis=1) > 0.05
        changed = (pictures[rows, 1] != pictures[rows, 0]).any(axis=(1, 2, 3))
        assert changed[moved].all()


def test_each_light_changes_its_own_pixels_only(scene):
    base = np.array([[0.3, 0.2, 0.2, 0.2]])
    picture = scene.render(base)[0].astype(int)
    masks = []
    for j in range(1, 4):
        lit = base.copy()
        lit[0, j] = 0.95
        masks.append((scene.render(lit)[0].astype(int) != picture).any(axis=-1))
    assert all(m.sum() > 0 for m in masks)
    for a in range(3):
        for b in range(a + 1, 3):
            assert not (masks[a] & masks[b]).any(), (VARIABLES[a + 1], VARIABLES[b + 1])
    moved = base.copy()
    moved[0, 0] = 0.8
    arm = (scene.render(moved)[0].astype(int) != picture).any(axis=-1)
    assert arm.sum() > max(m.sum() for m in masks)  # the arm sweeps a large part of the frame


def test_save_load_round_trip(pairs, tmp_path):
    path = save(pairs, tmp_path / "circuit.nc")
    back = load(path)
    np.testing.assert_array_equal(back["x"].values, pairs["x"].values)
    assert back["x"].dtype == np.uint8
    np.testing.assert_array_equal(images(back), images(pairs))
    # images compress: far smaller than the raw pixels
    assert path.stat().st_size < pairs["x"].nbytes / 2


def _run_isolated(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


def test_missing_mujoco_names_the_package():
    code = (
        "import sys; sys.modules['mujoco'] = None\n"
        "from pyrocrl.data.causalcircuit import CircuitScene\n"
        "from pyrocrl.errors import RenderingError\n"
        "try:\n    CircuitScene(16)\nexcept RenderingError as e:\n    print(e)\n"
    )
    out = _run_isolated(code)
    assert "pip install 'pyrocrl[circuit]'" in out.stdout, out.stderr


def test_missing_finger_model_names_the_package(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "robot_properties_fingers" else real(name, *a),
    )
    with pytest.raises(RenderingError, match="robot-properties-fingers"):
        CircuitScene(16)


@pytest.mark.skipif(
    ctypes.util.find_library("OSMesa") is not None, reason="OSMesa is installed here"
)
def test_missing_gl_backend_names_the_debian_package():
    code = (
        "from pyrocrl.data.causalcircuit import CircuitScene\n"
        "from pyrocrl.errors import RenderingError\n"
        "try:\n    CircuitScene(16)\nexcept RenderingError as e:\n    print(e)\n"
    )
    out = _run_isolated(code, MUJOCO_GL="osmesa", PYOPENGL_PLATFORM="osmesa")
    assert "libosmesa6" in out.stdout, out.stderr
