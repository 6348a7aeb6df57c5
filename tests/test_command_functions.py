"""The library functions behind the ``pyrocrl`` commands, called from Python: simulating
and drawing a dataset, queries as datasets, the check of a fitted model, and reducing
images to features. (The fit's: tests/test_fit.py; the graph's: tests/test_graph.py.)"""

import numpy as np
import pytest
import torch
import xarray as xr

from pyrocrl.data import load, pairs_dataset
from pyrocrl.data.catalog import simulate_dataset
from pyrocrl.data.preview import plot_dataset
from pyrocrl.inference.guides import ILCMGuide
from pyrocrl.inference.query_data import QUERIES, query_dataset, save_query
from pyrocrl.models.ilcm import ILCM


@pytest.fixture(scope="module")
def pairs():
    return simulate_dataset(pairs=120, n=2, seed=4)


@pytest.fixture
def model_and_guide():
    model = ILCM(2, 2, hidden=(8,))
    return model, ILCMGuide(model, hidden=(8,))


def test_simulate_dataset_by_name():
    scaling = simulate_dataset(pairs=40, seed=5)
    assert scaling.sizes["latent"] == 4 and scaling.attrs["sample_seed"] == 5
    assert scaling.attrs["graph_seed"] == 5
    other = simulate_dataset("scaling", 40, seed=6, graph_seed=5)
    assert (other["mixing"] == scaling["mixing"]).all()
    assert simulate_dataset("toy2d", 30).sizes["latent"] == 2
    with pytest.raises(ValueError, match="exactly 4 causal variables, got n=5"):
        simulate_dataset("causalcircuit", 10, n=5)
    with pytest.raises(ValueError, match="at most 512"):
        simulate_dataset("causalcircuit", 10, resolution=1024)


def test_plot_dataset(pairs, tmp_path):
    assert plot_dataset(pairs, tmp_path / "a.png").stat().st_size > 10_000
    no_graph = pairs.drop_vars(["adjacency", "weights"], errors="ignore")
    assert plot_dataset(no_graph, tmp_path / "b.png").stat().st_size > 5_000
    assert plot_dataset(_squares(6), tmp_path / "c.png", pairs=4).stat().st_size > 2_000


def test_queries_as_datasets(pairs, model_and_guide, tmp_path):
    model, guide = model_and_guide
    encoded = query_dataset(model, guide, "encode", data=pairs)
    assert encoded["z"].dims == ("pair", "latent") and encoded.sizes["pair"] == 120
    assert list(encoded["latent"].values) == ["z1", "z2"] and encoded.attrs == {"query": "encode"}
    posterior = query_dataset(model, guide, "posterior", data=pairs)
    assert list(posterior["hypothesis"].values) == ["none", "z1", "z2"]
    np.testing.assert_allclose(posterior["probs"].sum("hypothesis"), 1.0, rtol=1e-5)
    assert (posterior["target"] == posterior["probs"].argmax("hypothesis")).all()
    cf = query_dataset(model, guide, "counterfactual", data=pairs, z={"z2": 0.5})
    assert (cf["target"].values == 2).all()
    assert torch.allclose(torch.as_tensor(cf["z"].values[:, 1, 1]), torch.tensor(0.5))
    generated = query_dataset(model, guide, "observational", size=30, seed=1)
    assert generated.sizes["pair"] == 30 and (generated["target"].values == 0).all()
    for result, name in ((posterior, "post.nc"), (cf, "cf.nc")):
        path = save_query(result, tmp_path / name)
        assert xr.load_dataset(path, engine="h5netcdf").sizes["pair"] == result.sizes["pair"]
    assert load(tmp_path / "cf.nc").attrs["generated"] == "counterfactual"  # a pyrocrl dataset
    with pytest.raises(ValueError, match="needs observations"):
        query_dataset(model, guide, "encode")
    with pytest.raises(ValueError, match="kind must be one of"):
        query_dataset(model, guide, "explain", data=pairs)
    assert len(QUERIES) == 6


def test_check_model(pairs, model_and_guide, tmp_path):
    pytest.importorskip("arviz_stats")
    from pyrocrl.inference.check_report import check_model

    model, guide = model_and_guide
    report = check_model(
        model, guide, pairs, tmp_path / "check", pairs=60, samples=25, metrics={"elbo": -3.0}
    )
    assert (report.model, report.pairs, report.samples) == ("ILCM", 60, 25)
    assert report.method == "ilcm-h" and report.paths[0].name == "check.nc"
    assert all(p.exists() for p in report.paths)
    assert {"elpd_per_pair", "fit_elbo"} <= set(report.summary())
    text = report.format()
    assert text.startswith("ILCM, 60 pairs, 25 draws") and "graph (ilcm-h)" in text
    assert text.splitlines()[-1].startswith("wrote ") and "scm" not in report.tree.children
    without = check_model(
        model, guide, pairs, tmp_path / "plain", pairs=60, samples=25, graph="none"
    )
    assert without.graph is None and "graph" not in without.tree.children
    with pytest.raises(ValueError, match="needs a graph"):
        check_model(
            model, guide, pairs, tmp_path / "scm", pairs=60, samples=25, graph="none", scm=True
        )


def _squares(pairs: int, resolution: int = 16, seed: int = 0) -> xr.Dataset:
    """Images of a square whose column is the one causal variable, moved (target 1) or not
    (target 0) in the second world; its brightness varies from pair to pair."""
    rng = np.random.default_rng(seed)
    column = rng.integers(0, resolution - 4, size=(pairs, 2))
    target = rng.integers(0, 2, size=pairs)
    column[target == 0, 1] = column[target == 0, 0]
    brightness = rng.integers(30, 256, size=pairs)
    pixels = np.zeros((pairs, 2, resolution, resolution, 3), dtype=np.uint8)
    for i, j in np.ndindex(pairs, 2):
        pixels[i, j, 6:10, column[i, j] : column[i, j] + 4] = brightness[i]
    flat = pixels.reshape(pairs, 2, -1)
    z = column.astype(np.float64)
    return pairs_dataset(
        flat[:, 0],
        flat[:, 1],
        z=z[:, :1],
        z_tilde=z[:, 1:],
        target=target,
        attrs={"image_shape": [resolution, resolution, 3]},
    )


def test_reduce_to_features(tmp_path):
    from pyrocrl.inference.image_features import reduce_to_features

    said = []
    reduction = reduce_to_features(
        _squares(700), tmp_path / "codes.nc", dim=2, epochs=0.3, max_images=200, log=said.append
    )
    assert len(said) == 1 and said[0].startswith("image VAE: ")
    assert reduction.vae_path == tmp_path / "codes.vae.pt" and reduction.vae_path.exists()
    assert not (tmp_path / "codes.vae.pt.training").exists()
    codes = load(reduction.output)
    assert codes.sizes["feature"] == 2 and codes.attrs["reduced_from"] == "images"
    assert reduction.format().endswith(f"wrote {reduction.output} and {reduction.vae_path}")
