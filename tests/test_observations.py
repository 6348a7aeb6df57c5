"""The one check of observations: NumPy, torch and JAX arrays, and one-line messages."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from pyrocrl.observations import check_observations, paired_rows


def _message(x, *args, **kwargs) -> str:
    with pytest.raises(ValueError) as error:
        check_observations(x, *args, **kwargs)
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    "x",
    [
        np.zeros((5, 3)),
        np.zeros((5, 3), dtype=np.float32),
        np.zeros((5, 3), dtype=np.int64),
        np.zeros((5, 3), dtype=bool),
        torch.zeros(5, 3),
        torch.zeros(5, 3, dtype=torch.float64, requires_grad=True),
        torch.zeros(5, 3, dtype=torch.bfloat16),
        [[0.0, 1.0, 2.0]] * 5,
        np.ones((5, 3), dtype=np.float16),
    ],
)
def test_good_observations_give_their_number(x):
    assert check_observations(x, dim_x=3) == 5
    assert check_observations(x) == 5


def test_empty_observations_are_zero_rows():
    assert check_observations(np.zeros((0, 3)), dim_x=3) == 0
    assert check_observations(torch.zeros(0, 2, 3), pairs=True) == 0


def test_wrong_number_of_dimensions():
    message = _message(np.zeros(4), "x", dim_x=4)
    assert message.startswith("x must have shape (N, 4), got 1 dimension(s), shape (4,)")
    assert "x[None]" in message
    message = _message(torch.zeros(2, 3, 4), "x_tilde")
    assert message == "x_tilde must have shape (N, D), got 3 dimension(s), shape (2, 3, 4)"
    assert "shape ()" in _message(3.0)


def test_wrong_feature_count_names_the_expected_number():
    message = _message(np.zeros((3, 5)), "x", dim_x=4)
    assert message == (
        "x must have shape (N, 4), got shape (3, 5): the model expects 4 features per "
        "observation, not 5"
    )


@pytest.mark.parametrize(
    "x", [np.zeros((3, 2), dtype=complex), torch.zeros(3, 2).to(torch.cfloat)]
)
def test_complex_values_are_refused(x):
    message = _message(x, "x")
    assert message.startswith("x must be an array of shape (N, D) of real numbers")
    assert "complex dtype" in message


@pytest.mark.parametrize("x", [np.array([["a", "b"]]), np.array([[1.0, None]], dtype=object)])
def test_non_numeric_values_are_refused(x):
    message = _message(x, "obs", dim_x=2)
    assert message.startswith("obs must be an array of shape (N, 2) of real numbers, got dtype")


def test_ragged_rows_are_refused():
    assert _message([[1.0, 2.0], [3.0]], "x").startswith("x must be an array of shape (N, D):")


@pytest.mark.parametrize("convert", [np.asarray, torch.as_tensor])
def test_non_finite_values_are_counted_by_row(convert):
    x = np.zeros((10, 3))
    x[7, 0], x[7, 2], x[3, 1] = np.nan, np.inf, -np.inf
    message = _message(convert(x), "x", dim_x=3)
    assert message == "x holds NaN or infinite values in 2 rows of 10 (the first is row 3)"
    assert check_observations(convert(x), "x", dim_x=3, finite=False) == 10


def test_pairs():
    pairs = np.zeros((6, 2, 3), dtype=np.float32)
    assert check_observations(pairs, "pairs", dim_x=3, pairs=True) == 6
    message = _message(pairs[:, 0], "pairs", dim_x=3, pairs=True)
    assert message == (
        "pairs must have shape (pairs, 2, features), got 2 dimension(s), shape (6, 3)"
    )
    message = _message(np.zeros((6, 3, 3)), "pairs", pairs=True)
    assert "got 3 worlds on axis 1" in message
    message = _message(pairs, "pairs", dim_x=2, pairs=True)
    assert "the model expects 2 features per observation, not 3" in message
    pairs[4, 1, 2] = np.nan
    message = _message(torch.as_tensor(pairs), "pairs", pairs=True)
    assert message == "pairs holds NaN or infinite values in 1 pairs of 6 (the first is pair 4)"


def test_jax_arrays_and_traced_shapes():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    assert check_observations(jnp.zeros((4, 3)), dim_x=3) == 4
    bad = jnp.zeros((4, 3)).at[2, 1].set(jnp.nan)
    assert "in 1 rows of 4" in _message(bad, "x")
    assert "expects 2 features" in _message(jnp.zeros((4, 3)), "x", dim_x=2)

    @jax.jit
    def program(x):  # inside a program: shapes only, on a traced array
        return x * check_observations(x, "x", dim_x=3, finite=False)

    np.testing.assert_allclose(program(jnp.ones((4, 3))), 4.0)


def test_the_module_imports_no_jax():
    code = (
        "import sys; import pyrocrl.observations; "
        "assert 'jax' not in sys.modules, 'jax was imported'"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("convert", [np.asarray, torch.as_tensor])
def test_unpaired_rows_are_a_whole_missing_second_world(convert):
    pairs = np.zeros((5, 2, 3))
    pairs[1, 1] = np.nan  # an unpaired observation
    assert paired_rows(convert(pairs)).tolist() == [True, False, True, True, True]
    assert check_observations(convert(pairs), "pairs", pairs=True, unpaired=True) == 5
    message = _message(convert(pairs), "pairs", pairs=True)
    assert message.startswith("pairs holds NaN or infinite values in 1 pairs of 5")
    for row, world, feature in ((3, 1, 0), (1, 0, 2)):  # half a world, or the first one
        bad = pairs.copy()
        bad[row, world, feature] = np.nan
        message = _message(convert(bad), "pairs", pairs=True, unpaired=True)
        assert f"(the first is pair {row})" in message
    assert paired_rows(np.zeros((2, 2, 3), dtype=np.uint8)).all()
