"""The scatter grid of learned against true variables."""

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from pyrocrl.plots import plot_latents


def test_plot_latents_draws_one_panel_per_pair_of_variables(rng):
    true = rng.normal(size=(200, 3))
    learned = true[:, [2, 0]] * [1.0, -2.0]
    figure = plot_latents(learned, true, true_names=["a", "b", "c"], max_points=50)
    axes = figure.get_axes()
    assert len(axes) == 2 * 3
    first = axes[0].collections[0].get_offsets()  # row ẑ1, column a
    np.testing.assert_allclose(first, np.c_[true[:50, 0], learned[:50, 0]])
    assert axes[3].get_xlabel() == "true a" and axes[3].get_ylabel() == "ẑ2"
    plt.close(figure)


def test_plot_latents_refuses_mismatched_inputs(rng):
    with pytest.raises(ValueError, match="same N"):
        plot_latents(rng.normal(size=(10, 2)), rng.normal(size=(9, 2)))
    with pytest.raises(ValueError, match="names"):
        plot_latents(rng.normal(size=(10, 2)), rng.normal(size=(10, 2)), true_names=["a"])
    with pytest.raises(ValueError, match="NaN"):
        plot_latents(np.array([[np.nan], [0.0]]), rng.normal(size=(2, 1)))
    with pytest.raises(ValueError, match="color_by"):
        plot_latents(rng.normal(size=(10, 2)), rng.normal(size=(10, 2)), color_by=2)
    with pytest.raises(ValueError, match="max_points"):
        plot_latents(rng.normal(size=(10, 2)), rng.normal(size=(10, 2)), max_points=0)


def _tiny_program(data):
    import pyro
    import pyro.distributions as dist

    scale = pyro.sample("scale", dist.LogNormal(0.0, 1.0))
    with pyro.plate("groups", 2):
        loc = pyro.sample("loc", dist.Normal(0.0, scale))
        pyro.deterministic("double", 2 * loc)
        with pyro.plate("points", 3, dim=-2):
            pyro.sample("obs", dist.Normal(loc, scale), obs=data)


def test_plot_model_draws_the_dependencies_of_every_sample_site():
    import torch
    from pyro.infer.inspect import get_model_relations

    from pyrocrl.plots import plot_model

    data = torch.zeros(3, 2)
    relations = get_model_relations(_tiny_program, (data,), include_deterministic=True)
    expected = {(p, c) for c, ps in relations["sample_sample"].items() for p in ps}
    assert expected == {("scale", "loc"), ("scale", "obs"), ("loc", "obs"), ("loc", "double")}
    figure = plot_model(_tiny_program, data)
    texts = figure.axes[0].texts
    drawn = {tuple(t.get_gid().split(" -> ")) for t in texts if " -> " in (t.get_gid() or "")}
    assert drawn == expected
    nodes = {t.get_gid(): t for t in texts if t.get_gid() in relations["sample_sample"]}
    assert set(nodes) == {"scale", "loc", "double", "obs"}
    shade = {name: t.get_bbox_patch().get_facecolor()[0] for name, t in nodes.items()}
    assert shade["obs"] < shade["scale"] == shade["loc"] == 1.0  # observed shaded, latent open
    assert nodes["double"].get_bbox_patch().get_linestyle() == "--"  # deterministic: dashed
    labels = {t.get_text() for t in texts}
    assert {"groups", "points"} <= labels  # one box per plate
    plt.close(figure)


def test_plot_model_draws_the_ilcm_program():
    import torch

    from pyrocrl.models import ILCM
    from pyrocrl.plots import plot_model

    x = torch.zeros(4, 5)
    figure = plot_model(ILCM(dim_x=5, n=3).model, x, x)
    gids = {t.get_gid() for t in figure.axes[0].texts}
    assert {"noise -> noise_tilde", "target -> noise_tilde", "noise_tilde -> x_tilde"} <= gids
    assert {"noise -> x", "noise -> z", "noise_tilde -> z_tilde"} <= gids
    plt.close(figure)


def test_plot_model_refuses_what_is_not_a_program():
    from pyrocrl.plots import plot_model

    with pytest.raises(TypeError, match="callable Pyro program"):
        plot_model("model")
    with pytest.raises(ValueError, match="no sample sites"):
        plot_model(lambda: None)


@pytest.mark.parametrize("truth", [False, True])
def test_history_draws_the_held_out_elbo_and_scores_only_with_ground_truth(truth, recwarn):
    from pyrocrl.plots import plot_history

    history = [{"step": s, "epoch": s / 10, "loss": 5.0 - s, "elbo": s - 5.0} for s in range(4)]
    for step in (1, 3):  # validation entries: the held-out ELBO, and scores given labels
        extra = {"dci_disentanglement": 0.5 + 0.1 * step} if truth else {}
        history.append({"step": step, "epoch": step / 10, "elbo": step - 6.0, **extra})
    figure = plot_history(history)
    assert len(figure.axes) == (2 if truth else 1)
    labels = [line.get_label() for line in figure.axes[0].lines]
    assert "−ELBO, held-out pairs" in labels
    held_out = figure.axes[0].lines[labels.index("−ELBO, held-out pairs")]
    assert held_out.get_ydata().tolist() == [5.0, 3.0]
    assert not [w for w in recwarn if "legend" in str(w.message)]
    plt.close(figure)
