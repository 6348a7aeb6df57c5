import h5py
import numpy as np
import pytest
import xarray as xr

from pyrocrl.data import (
    describe,
    images,
    load,
    pairs_dataset,
    pairs_only,
    save,
    simulate_pairs,
    unpair,
    validate,
)
from pyrocrl.errors import DatasetError
from pyrocrl.observations import paired_rows


@pytest.fixture(scope="module")
def ds():
    return simulate_pairs("scaling", 300, n=3, seed=4)


def test_round_trip_is_exact(ds, tmp_path):
    path = save(ds, tmp_path / "pairs.nc")
    back = load(path)
    xr.testing.assert_identical(ds, back)
    for name in ds.variables:
        assert back[name].dtype == ds[name].dtype, name


def test_minimal_dataset_without_truth(tmp_path):
    x = np.random.default_rng(0).normal(size=(10, 6)).astype(np.float32)
    ds = pairs_dataset(x, x + 1, attrs={"source": "lab", "calibrated": True, "note": None})
    assert set(ds.data_vars) == {"x"}
    assert ds.attrs["calibrated"] == 1 and "note" not in ds.attrs
    xr.testing.assert_identical(load(save(ds, tmp_path / "m.nc")), ds)


def _write(ds: xr.Dataset, path):
    ds.to_netcdf(path, engine="h5netcdf")
    return path


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no dataset file"):
        load(tmp_path / "absent.nc")


def test_not_netcdf(tmp_path):
    path = tmp_path / "junk.nc"
    path.write_bytes(b"not a netcdf file at all" * 10)
    with pytest.raises(DatasetError, match="not a NetCDF-4 file"):
        load(path)


def test_truncated_file(ds, tmp_path):
    path = save(ds, tmp_path / "full.nc")
    blob = path.read_bytes()
    cut = tmp_path / "cut.nc"
    cut.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DatasetError, match="truncated"):
        load(cut)


def test_foreign_netcdf(tmp_path):
    path = _write(xr.Dataset({"temperature": ("time", np.arange(3.0))}), tmp_path / "f.nc")
    with pytest.raises(DatasetError, match="not a pyrocrl dataset"):
        load(path)


def test_hdf5_without_netcdf_structure(tmp_path):
    path = tmp_path / "raw.h5"
    with h5py.File(path, "w") as f:
        f["weird"] = np.arange(3)
    with pytest.raises(DatasetError, match="not a pyrocrl dataset"):
        load(path)


def test_wrong_dims(ds, tmp_path):
    bad = ds.copy()
    bad["z"] = (("pair", "latent", "world"), ds["z"].values.transpose(0, 2, 1))
    with pytest.raises(DatasetError, match=r"'z' has dims \('pair', 'latent', 'world'\)"):
        load(_write(bad, tmp_path / "dims.nc"))


def test_wrong_world_size(ds, tmp_path):
    bad = ds.isel(world=[0])
    with pytest.raises(DatasetError, match="'world' has size 1"):
        load(_write(bad, tmp_path / "world.nc"))


@pytest.mark.parametrize(("value", "counts"), [(np.nan, "1 NaN and 0"), (np.inf, "0 NaN and 1")])
def test_non_finite_values(ds, tmp_path, value, counts):
    bad = ds.copy(deep=True)
    bad["x"][5, 1, 0] = value
    with pytest.raises(DatasetError, match=f"'x' holds {counts} infinite"):
        load(_write(bad, tmp_path / "nan.nc"))
    with pytest.raises(DatasetError, match="'x' holds"):
        save(bad, tmp_path / "never.nc")
    assert not (tmp_path / "never.nc").exists()


def test_missing_observations(ds, tmp_path):
    with pytest.raises(DatasetError, match="'x' is missing"):
        load(_write(ds.drop_vars("x"), tmp_path / "nox.nc"))


def test_target_out_of_range(ds, tmp_path):
    bad = ds.copy(deep=True)
    bad["target"][0] = 7
    with pytest.raises(DatasetError, match=r"0\.\.3"):
        load(_write(bad, tmp_path / "target.nc"))


def test_newer_format(ds, tmp_path):
    bad = ds.copy()
    bad.attrs["format_version"] = 99
    with pytest.raises(DatasetError, match="format version 99"):
        load(_write(bad, tmp_path / "new.nc"))


def test_pairs_dataset_checks_shapes():
    with pytest.raises(DatasetError, match="must both have shape"):
        pairs_dataset(np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(DatasetError, match="both worlds"):
        pairs_dataset(np.zeros((4, 2)), np.zeros((4, 2)), z=np.zeros((4, 2)))
    with pytest.raises(DatasetError, match=r"xarray\.Dataset"):
        validate(np.zeros(3))


def test_save_needs_an_existing_directory(ds, tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        save(ds, tmp_path / "missing" / "pairs.nc")


def test_derived_attrs_never_override_the_format():
    from pyrocrl import __version__

    x = np.zeros((3, 2))
    stale = {"pyrocrl_format": "other", "format_version": 0, "pyrocrl_version": "0.0", "n": 2}
    ds = pairs_dataset(x, x, attrs=stale)
    assert ds.attrs["pyrocrl_format"] == "pyrocrl.pairs" and ds.attrs["format_version"] >= 1
    assert ds.attrs["pyrocrl_version"] == __version__ and ds.attrs["n"] == 2


@pytest.mark.parametrize("shape", [[2, 2, 2], [4, 3], [4, -1, -3]])
def test_image_shape_must_match_the_features(shape):
    pixels = np.zeros((5, 12), np.uint8)
    good = pairs_dataset(pixels, pixels, attrs={"image_shape": [2, 2, 3]})
    assert images(good).shape == (5, 2, 2, 2, 3)
    with pytest.raises(DatasetError, match="image_shape"):
        pairs_dataset(pixels, pixels, attrs={"image_shape": shape})


def test_attributes_netcdf_cannot_store_are_refused_before_saving(tmp_path):
    x = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(DatasetError, match="attribute 'units' of the dataset"):
        pairs_dataset(x, x + 1, attrs={"units": ["V", "mm", "W"]})
    ds = pairs_dataset(x, x + 1, attrs={"units": "V mm W", "scale": [1.0, 2.0, 3.0]})
    ds["x"].attrs["note"] = {"nested": 1}
    with pytest.raises(DatasetError, match="attribute 'note' of variable 'x'"):
        save(ds, tmp_path / "pairs.nc")
    assert not list(tmp_path.iterdir())
    del ds["x"].attrs["note"]
    assert load(save(ds, tmp_path / "pairs.nc")).attrs["units"] == "V mm W"


def test_unpair_keeps_a_share_of_pairs_and_round_trips(ds, tmp_path):
    mixed = unpair(ds, 0.3, seed=1)
    paired = paired_rows(mixed["x"].values)
    assert paired.sum() == 90 and mixed.sizes["pair"] == 300
    for name in ("x", "z", "noise"):  # the first world stays; the second is gone
        np.testing.assert_array_equal(mixed[name].values[:, 0], ds[name].values[:, 0])
        np.testing.assert_array_equal(mixed[name].values[paired], ds[name].values[paired])
        assert np.isnan(mixed[name].values[~paired, 1]).all()
    assert (mixed["target"].values[~paired] == -1).all()
    np.testing.assert_array_equal(mixed["target"].values[paired], ds["target"].values[paired])
    assert mixed.attrs["pair_share"] == 0.3
    xr.testing.assert_identical(load(save(mixed, tmp_path / "mixed.nc")), mixed)
    xr.testing.assert_equal(pairs_only(mixed), ds.isel(pair=np.flatnonzero(paired)))
    assert pairs_only(ds) is ds
    assert describe(mixed).splitlines()[0] == (
        "90 pairs and 210 unpaired observations of 3 features"
    )
    assert unpair(ds, 1.0)["x"].equals(ds["x"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m["z"].values.__setitem__((0, 1, 0), 1.0), "variable 'z' has values in the"),
        (lambda m: m["target"].values.__setitem__(0, 2), "unpaired observation must be -1"),
        (lambda m: m["target"].values.__setitem__(1, -1), "'target' must lie in 0..3"),
        (lambda m: m["x"].values.__setitem__((1, 1, 0), np.nan), "a whole second world"),
        (lambda m: m["x"].values[:, 1].fill(np.nan), "every row is an unpaired observation"),
    ],
)
def test_unpaired_rows_are_checked(ds, change, message):
    mixed = unpair(ds, 0.5, seed=0).copy(deep=True)
    first = int(np.flatnonzero(~paired_rows(mixed["x"].values))[0])
    second = int(np.flatnonzero(paired_rows(mixed["x"].values))[0])
    mixed = mixed.isel(pair=[first, second])  # row 0 is unpaired, row 1 a pair
    change(mixed)
    with pytest.raises(DatasetError, match=message):
        validate(mixed)


def test_unpair_refuses_what_it_cannot_do(ds):
    for share in (0.0, 1.5):
        with pytest.raises(DatasetError, match="pair_share must lie in"):
            unpair(ds, share)
    with pytest.raises(DatasetError, match="keeps none of the 300 pairs"):
        unpair(ds, 0.001)
