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
