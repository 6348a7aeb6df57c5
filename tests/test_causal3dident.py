"""Causal3DIdent-style scenes: the latent SCM, the generated meshes, the MuJoCo renderer and
the image datasets."""

import numpy as np
import pytest
import torch

from pyrocrl.data import images, load, save
from pyrocrl.data.catalog import simulate_dataset
from pyrocrl.data.causal3dident import (
    SHAPES,
    VARIABLES,
    SceneRenderer,
    causal3dident,
    object_meshes,
    render_states,
    simulate_causal3dident,
    write_causal3dident,
)
from pyrocrl.graphs import descendants

RES = 16


@pytest.fixture(scope="module")
def scene():
    with SceneRenderer(RES) as s:
        yield s


@pytest.fixture(scope="module")
def pairs():
    return simulate_causal3dident(300, seed=11, resolution=RES, workers=1)


def test_graph_follows_causal3dident():
    lcm = causal3dident()
    index = {v: i for i, v in enumerate(VARIABLES)}
    edges = {(VARIABLES[i], VARIABLES[j]) for i, j in np.argwhere(lcm.scm.adjacency)}
    assert edges == {
        ("pos_x", "spot"),
        ("pos_y", "spot"),
        ("hue_spot", "hue_object"),
        ("hue_background", "hue_object"),
    }
    assert lcm.scm.adjacency[index["rot_alpha"]].sum() == 0


def test_a_subset_keeps_its_edges_and_holds_the_rest_at_the_middle():
    kept = ["hue_object", "pos_x", "spot", "hue_background"]  # any order: canonical order
    lcm = causal3dident(kept)
    assert lcm.mixing.variables == ("pos_x", "spot", "hue_object", "hue_background")
    np.testing.assert_array_equal(
        lcm.scm.adjacency, [[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0]]
    )
    # spot sees its held parent pos_y at z = 0: 1.5 tanh(z_x) + e
    noise = torch.tensor([[0.7, 0.2, 0.0, 0.0]])
    z = lcm.scm.solve(noise)
    torch.testing.assert_close(z[0, 1], 1.5 * torch.tanh(torch.tensor(0.7)) + 0.2)
    state = lcm.mixing(z)
    assert state.shape == (1, len(VARIABLES))
    held = [VARIABLES.index(v) for v in VARIABLES if v not in kept]
    assert (state[0, held] == 0.5).all()
    torch.testing.assert_close(lcm.mixing.inverse(state), z)


@pytest.mark.parametrize("bad", [["pos_q"], [], ["spot", "spot"]])
def test_bad_variables_are_refused(bad):
    with pytest.raises(ValueError, match="variables"):
        causal3dident(bad)


@pytest.mark.parametrize("shape", SHAPES)
def test_meshes_are_closed_and_face_outward(shape):
    for vertices, faces in object_meshes(shape):
        edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), 1)
        _, counts = np.unique(edges, axis=0, return_counts=True)
        assert (counts == 2).all()  # every edge between exactly two triangles: closed
        directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
        assert len(np.unique(directed, axis=0)) == len(directed)  # consistently wound
        a, b, c = (vertices[faces[:, k]] for k in range(3))
        assert np.einsum("ij,ij->", a, np.cross(b, c)) > 0  # outward: positive volume


def test_render_smoke_and_every_variable_shows(scene):
    state = np.full((1 + len(VARIABLES), len(VARIABLES)), 0.5)
    for k in range(len(VARIABLES)):
        state[1 + k, k] = 0.9
    out = scene.render(state)
    assert out.shape == (len(state), RES, RES, 3) and out.dtype == np.uint8
    for k, name in enumerate(VARIABLES):  # moving any one variable changes the picture
        assert (out[1 + k] != out[0]).any(), name
    np.testing.assert_array_equal(scene.render(state[:1])[0], out[0])  # a pure function


def test_render_rejects_bad_input(scene):
    with pytest.raises(ValueError, match="shape"):
        scene.render(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        scene.render(np.full((1, len(VARIABLES)), 1.5))
    with pytest.raises(ValueError, match="shape must be one of"):
        SceneRenderer(RES, shape="cow")
    with pytest.raises(ValueError, match="resolution"):
        SceneRenderer(4)


def test_same_seed_same_images(pairs):
    again = simulate_causal3dident(300, seed=11, resolution=RES, workers=1)
    np.testing.assert_array_equal(again["x"].values, pairs["x"].values)
    other = simulate_causal3dident(30, seed=12, resolution=RES, workers=1)
    assert (other["x"].values != pairs["x"].values[:30]).any()


def test_parallel_rendering_matches_one_process(pairs):
    state = pairs["state"].values[:600].reshape(-1, len(VARIABLES))
    one = render_states(state, RES, workers=1)
    two = render_states(state, RES, workers=2, progress=False)
    np.testing.assert_array_equal(one, two)


def test_interventions_change_only_the_target_and_its_descendants(pairs):
    adjacency = pairs["adjacency"].values
    z, target = pairs["z"].values, pairs["target"].values
    pictures = images(pairs)
    for t in range(len(VARIABLES) + 1):
        rows = target == t
        assert rows.any()
        changed = np.abs(z[rows, 1] - z[rows, 0]) > 1e-6
        if t == 0:  # no intervention: the same image twice
            assert not changed.any()
            np.testing.assert_array_equal(pictures[rows, 0], pictures[rows, 1])
            continue
        allowed = np.zeros(len(VARIABLES), bool)
        allowed[t - 1] = True
        allowed[list(descendants(adjacency, t - 1))] = True
        assert not changed[:, ~allowed].any()
        assert changed[:, t - 1].all()
        # at 16 pixels a small change can fall within one grey level: nearly all show
        assert (pictures[rows, 0] != pictures[rows, 1]).any(axis=(1, 2, 3)).mean() > 0.9


def test_dataset_layout_and_round_trip(pairs, tmp_path):
    assert pairs.attrs["simulator"] == "causal3dident"
    assert list(pairs.attrs["image_shape"]) == [RES, RES, 3]
    assert pairs["x"].dtype == np.uint8
    assert pairs["state"].shape == (300, 2, len(VARIABLES))
    path = save(pairs, tmp_path / "scenes.nc")
    back = load(path)
    np.testing.assert_array_equal(back["x"].values, pairs["x"].values)
    assert back.attrs["shape"] == "teapot"


def test_written_in_blocks_equals_simulated(tmp_path):
    options = dict(resolution=RES, shape="arrow", variables=["pos_x", "spot", "hue_spot"])
    ds = simulate_causal3dident(50, seed=3, workers=1, **options)
    path = write_causal3dident(tmp_path / "s.zarr", 50, 3, workers=2, block=16, **options)
    back = load(path)
    np.testing.assert_array_equal(back["x"].values, ds["x"].values)
    assert back["z"].shape == (50, 2, 3)


def test_catalog_checks_its_options():
    with pytest.raises(ValueError, match="shape and variables are options of causal3dident"):
        simulate_dataset("scaling", 10, shape="blob")
    with pytest.raises(ValueError, match="has 2 causal variables here"):
        simulate_dataset("causal3dident", 10, n=3, variables=["pos_x", "spot"])
