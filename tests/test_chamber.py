"""The light tunnel of the causal chambers as a ground-truth LCM (``pyrocrl.models.chamber``)."""

import sys
from importlib.util import find_spec

import numpy as np
import pyro
import pytest
import torch

from pyrocrl.cli import main
from pyrocrl.data import images, load, make_simulator, save, simulate
from pyrocrl.data.catalog import simulate_dataset
from pyrocrl.models import chamber
from pyrocrl.models.light_tunnel import DEFAULT_GRAPH, LED_SENSORS, SENSORS, standardized_scm

pytestmark = pytest.mark.skipif(
    find_spec("causalchamber") is None, reason='needs pip install "pyrocrl[chamber]"'
)

LED_COLUMNS = [SENSORS.index(s) for s in LED_SENSORS]


@pytest.fixture(scope="module")
def sensors():
    return chamber(0)


@pytest.fixture(scope="module")
def pairs(sensors):
    return simulate(sensors, 600, seed=3)


def _column(name: str) -> int:
    return SENSORS.index(name)


# -- the model ---------------------------------------------------------------------------------
def test_shapes_dtypes_and_names(sensors, pairs):
    assert (sensors.n, sensors.dim_x) == (5, 9)
    assert pairs["x"].shape == (600, 2, 9) and pairs["x"].dtype == np.float64
    assert pairs["z"].shape == (600, 2, 5)
    assert pairs.attrs["features"].split(",") == list(SENSORS)
    assert pairs.attrs["variables"] == "red,green,blue,pol_1,pol_2"
    assert (pairs["adjacency"].values == DEFAULT_GRAPH).all()
    assert pairs["x"].values.max() > 1e4  # raw readings, not standardized
    z = torch.zeros(2, 3, 5)  # any batch shape
    assert sensors.mixing(z).shape == (2, 3, 9)
    assert sensors.encode(sensors.mixing(z)).shape == (2, 3, 5)


def test_latents_are_standardized():
    w = np.array([[0, 2.0, -1.5], [0, 0, 1.2], [0, 0, 0]])
    scm = standardized_scm(w)
    # z = Bᵀ z + diag(σ) e, so Cov z = A diag(σ²) Aᵀ with A = (I − Bᵀ)⁻¹
    a = np.linalg.inv(np.eye(3) - scm.weights.T)
    cov = a @ np.diag(scm.noise_scale.double().numpy() ** 2) @ a.T
    np.testing.assert_allclose(np.diag(cov), 1.0, rtol=1e-6)
    assert ((scm.weights != 0) == (w != 0)).all()


@pytest.mark.parametrize("ranges", [None, {"red": (10, 20), "pol_2": (-30, 150)}])
def test_actuators_stay_in_range(ranges):
    lcm = chamber(1, ranges=ranges)
    z = torch.cat([torch.randn(500, 5), torch.full((1, 5), 9.0), torch.full((1, 5), -9.0)])
    a = lcm.actuators(z)
    low, high = lcm.mixing.actuators.low, lcm.mixing.actuators.high
    assert ((a >= low) & (a <= high)).all()
    if ranges:
        assert low[0] == 10 and high[4] == 150
    # the inverse of the settings map gives the causal variables back
    torch.testing.assert_close(lcm.mixing.actuators.inverse(a[:500]), z[:500], atol=1e-4, rtol=0)


def test_worlds_agree_where_nothing_was_intervened_on(pairs):
    x, target = pairs["x"].values, pairs["target"].values
    same = target == 0
    assert same.sum() > 50
    assert (x[same, 0] == x[same, 1]).all()
    assert (x[~same, 0] != x[~same, 1]).any(axis=1).all()


def test_exact_inversion(sensors, pairs):
    x = torch.from_numpy(pairs["x"].values)
    noise = sensors.encode(x)
    torch.testing.assert_close(noise, torch.from_numpy(pairs["noise"].values), atol=1e-4, rtol=0)


def test_do_pol_1_leaves_the_light_before_the_second_polarizer(sensors):
    noise = torch.randn(300, 5)
    world = pyro.condition(sensors.world, data={"noise": noise})
    x = world(size=300)["x"]
    x_do = pyro.poutine.do(world, data={"z4": torch.full((300,), 1.5)})(size=300)["x"]
    # sensors 1 and 2 and the current see the LEDs only; angle_1 moves with pol_1
    assert (x_do[:, LED_COLUMNS] == x[:, LED_COLUMNS]).all()
    assert (x_do[:, _column("angle_1")] != x[:, _column("angle_1")]).all()
    assert (x_do[:, _column("ir_3")] != x[:, _column("ir_3")]).float().mean() > 0.99


def test_pairs_intervened_on_pol_1_keep_the_led_readings(pairs):
    x, target = pairs["x"].values, pairs["target"].values
    on_pol_1 = target == 4
    assert on_pol_1.sum() > 50
    assert (x[on_pol_1, 0][:, LED_COLUMNS] == x[on_pol_1, 1][:, LED_COLUMNS]).all()


@pytest.mark.parametrize("pol_1", [0.0, 30.0])
def test_malus_law(sensors, pol_1):
    pol_2 = np.arange(-90.0, 90.5, 5.0)
    a = np.column_stack(
        [np.full((len(pol_2), 3), [200.0, 120.0, 60.0]), np.full_like(pol_2, pol_1), pol_2]
    )
    x = sensors.mixing.readings(a)
    for sensor in ("ir_3", "vis_3"):
        reading = x[:, _column(sensor)]
        assert pol_2[reading.argmax()] == pol_1  # brightest with the polarizers aligned
        assert abs(abs(pol_2[reading.argmin()] - pol_1) - 90) < 1e-9  # darkest when crossed
        assert reading.max() > 5 * reading.min()
    assert np.ptp(x[:, LED_COLUMNS], axis=0).max() == 0  # the light before them does not care


def test_graph_and_weights():
    a, b = chamber(0), chamber(7)
    assert (a.scm.adjacency == b.scm.adjacency).all()
    assert not np.allclose(a.scm.weights, b.scm.weights)
    chain = np.diag(np.ones(4, dtype=int), k=1)
    assert (chamber(0, graph=chain).scm.adjacency == chain).all()
    w = 0.5 * chain
    assert (chamber(0, weights=w).scm.adjacency == chain).all()
    for kwargs, message in [
        ({"graph": chain + chain.T}, "cycle"),
        ({"graph": np.zeros((3, 3))}, "5 × 5"),
        ({"weights": np.ones((2, 2))}, "shape (5, 5)"),
        ({"graph": chain, "weights": w.T}, "exactly on the edges"),
        ({"ranges": {"pol_1": (-200, 0)}}, "-180 ≤ low < high ≤ 180"),
        ({"ranges": {"hue": (0, 1)}}, "not a causal variable"),
        ({"mode": "video"}, "mode must be"),
        ({"noise": -0.1}, "noise must be"),
        ({"mode": "images", "noise": 0.01}, "image mode is noise-free"),
        ({"mode": "images", "ranges": {"pol_1": (0, 10)}}, "not a causal variable"),
        ({"sensor_settings": {"t_ir_9": 1}}, "unknown sensor"),
        ({"sensor_settings": {"v_angle_1": 2}}, "encoders saturate"),
    ]:
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            chamber(0, **kwargs)


def test_sensor_settings_scale_the_readings(sensors):
    brighter = chamber(0, sensor_settings={"t_ir_1": 2})  # exposure one step shorter
    z = torch.randn(10, 5)
    ratio = brighter.mixing(z)[:, 0] / sensors.mixing(z)[:, 0]
    torch.testing.assert_close(ratio, torch.full((10,), 0.5, dtype=torch.float64))


def test_noise_has_the_documented_level(sensors):
    noisy = chamber(0, noise=0.05)
    ds = simulate(noisy, 500, seed=4)
    mean = sensors.mixing(torch.from_numpy(ds["z"].values)).numpy()
    relative = (ds["x"].values - mean) / noisy.mixing.span  # in units of each sensor's span
    assert abs(relative.std() - 0.05) < 0.05 * 0.05
    np.testing.assert_allclose(relative.reshape(-1, 9).std(axis=0), 0.05, rtol=0.1)
    assert abs(relative.mean()) < 0.002
    assert ds.attrs["observation_scale"] == 0.05 and sensors.observation_scale == 0


# -- datasets and the command line -------------------------------------------------------------
def test_registered_simulator():
    lcm = make_simulator("chamber", None, graph_seed=3)
    assert lcm.n == 5 and lcm.settings["graph_seed"] == 3
    with pytest.raises(ValueError, match="exactly 5"):
        make_simulator("chamber", 4)


def test_dataset_saves_and_loads(tmp_path):
    ds = simulate_dataset("chamber", 80, seed=2, noise=0.01)
    assert list(ds["feature"].values) == list(SENSORS)
    assert ds["state"].shape == (80, 2, 5)
    low, high = ds.attrs["range_low"], ds.attrs["range_high"]
    assert ((ds["state"].values >= low) & (ds["state"].values <= high)).all()
    back = load(save(ds, tmp_path / "chamber.nc"))
    assert list(back["feature"].values) == list(SENSORS)
    np.testing.assert_array_equal(back["x"].values, ds["x"].values)
    np.testing.assert_array_equal(back["state"].values, ds["state"].values)
    assert back.attrs["noise"] == 0.01
    with pytest.raises(ValueError, match="options of the chamber"):
        simulate_dataset("scaling", 10, noise=0.1)


def test_cli_simulates_the_chamber(tmp_path, capsys):
    out = tmp_path / "tunnel.nc"
    assert main(["simulate", "chamber", "--pairs", "1000", "--seed", "1", "-o", str(out)]) == 0
    ds = load(out)
    assert ds.sizes["pair"] == 1000 and ds.attrs["mode"] == "sensors"
    assert "1000 pairs" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "status", "message"),
    [
        (["--mode", "video"], 2, "invalid choice"),
        (["--noise", "-1"], 2, "finite number ≥ 0"),
        (["--noise", "lots"], 2, "expected a number"),
        (["--mode", "images", "--noise", "0.01"], 1, "images are noise-free"),
        (["--resolution", "32"], 1, "add --mode images"),
        (["--workers", "2"], 1, "option of causalcircuit"),
        (["--n", "4"], 1, "exactly 5 causal variables"),
        (["--mode", "images", "--n", "5"], 1, "exactly 3 causal variables"),
    ],
)
def test_cli_bad_flags_give_one_line(argv, status, message, capsys, tmp_path):
    try:
        result = main(["simulate", "chamber", "--pairs", "5", "-o", str(tmp_path / "a.nc"), *argv])
    except SystemExit as exit_:
        result = exit_.code
    assert result == status
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_cli_rejects_chamber_flags_elsewhere(capsys, tmp_path):
    assert main(["simulate", "toy2d", "--mode", "images", "-o", str(tmp_path / "a.nc")]) == 1
    assert "options of chamber" in capsys.readouterr().err


def test_missing_package_says_how_to_install(monkeypatch, capsys, tmp_path):
    for name in ("causalchamber", "causalchamber.simulators", "causalchamber.simulators.lt"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r'pip install "pyrocrl\[chamber\]"'):
        chamber(0)
    assert main(["simulate", "chamber", "--pairs", "5", "-o", str(tmp_path / "a.nc")]) == 1
    err = capsys.readouterr().err
    assert 'pip install "pyrocrl[chamber]"' in err and len(err.strip().splitlines()) == 1


# -- images ------------------------------------------------------------------------------------
def test_image_model_round_trip():
    lcm = chamber(0, mode="images", image_size=16)
    assert (lcm.n, lcm.dim_x) == (3, 16 * 16 * 3)
    # the LED block of the sensors' SCM
    np.testing.assert_allclose(lcm.scm.weights, chamber(0).scm.weights[:3, :3])
    ds = simulate(lcm, 40, seed=5)
    assert ds.attrs["image_shape"].tolist() == [16, 16, 3]
    x = torch.from_numpy(ds["x"].values)
    assert 0 <= x.min() and x.max() <= 255
    torch.testing.assert_close(
        lcm.encode(x), torch.from_numpy(ds["noise"].values), atol=1e-4, rtol=0
    )


def test_images_show_the_leds(tmp_path):
    ds = simulate_dataset("chamber", 120, seed=6, mode="images", resolution=16)
    assert ds["x"].dtype == np.uint8 and ds["x"].shape == (120, 2, 16 * 16 * 3)
    pixels = images(ds)  # (pair, world, 16, 16, 3)
    assert pixels.shape == (120, 2, 16, 16, 3)
    state = ds["state"].values  # (pair, world, 3): red, green, blue
    centre = pixels[:, :, 8, 8].astype(float)
    np.testing.assert_allclose(centre, state, atol=0.5)  # ModelF1: the colour is the setting
    assert (pixels[:, :, 0, 0] == 0).all()  # black around the hexagon
    # an intervention on a leaf (blue) changes the blue channel only; on red, the red one
    target = ds["target"].values
    change = (pixels[:, 0] != pixels[:, 1]).any(axis=(1, 2))  # (pair, channel)
    assert (change[target == 3] == [False, False, True]).all()
    assert change[target == 1, 0].all()
    assert not change[target == 0].any()
    back = load(save(ds, tmp_path / "images.nc"))
    np.testing.assert_array_equal(images(back), pixels)
    # the dataset's pixels are the model's observations, rounded
    lcm = chamber(6, mode="images", image_size=16)
    x = lcm.mixing(torch.from_numpy(ds["z"].values)).numpy()
    np.testing.assert_array_equal(np.rint(x).astype(np.uint8), ds["x"].values)
