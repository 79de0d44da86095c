"""`sarcube features` end to end on tiny cubes: every layer with units and parameters, safe recomputes, clear errors."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import box

from conftest import TINY_CRS, make_tiny_cube
from sarcube.datacube import grid, sar, schema, store, terrain
from sarcube.datacube.par import par_bruteforce
from sarcube.errors import CubeExistsError, CubeSchemaError, InputError
from sarcube.pipelines.add_layer import add_layer
from sarcube.pipelines.cli import main
from sarcube.pipelines.features import features

PAIR_LAYERS = (schema.VV_DIFF, schema.VH_DIFF, schema.VVVH)
TERRAIN_LAYERS = (schema.SLOPE, schema.ASPECT, schema.CURVATURE, schema.RELEASE)


def params(ds, name):
    return json.loads(ds[name].attrs[schema.ATTR_PARAMETERS])


@pytest.fixture
def alpine_cube(tmp_path):
    """Tiny cube with a bumpy DEM (steep and gentle cells) and one orbit-15 pass removed:
    orbit 15 at days 0 and 12, orbit 66 at days 3, 9, 15."""
    ds = make_tiny_cube(nt=6).drop_isel({schema.TIME: 2})
    yy, xx = np.meshgrid(np.arange(24), np.arange(32), indexing="ij")
    dem = 1500.0 + 300.0 * np.sin(xx / 5.0) * np.cos(yy / 7.0) + 8.0 * yy
    ds[schema.DEM] = schema.make_variable(schema.DEM, dem)
    path = tmp_path / "alpine.zarr"
    store.write_cube(ds, path)
    return path


def test_features_cli_writes_every_layer(alpine_cube, capsys):
    assert main(["features", str(alpine_cube)]) == 0
    assert "wrote" in capsys.readouterr().out
    ds = schema.open_cube(alpine_cube)
    for name in (*PAIR_LAYERS, *TERRAIN_LAYERS, schema.PAR):
        assert name in ds.data_vars, name
        assert ds[name].attrs["units"] == schema.VARIABLES[name].units
        assert schema.ATTR_PARAMETERS in ds[name].attrs
    schema.validate_cube(ds)
    assert ds.sizes[schema.PAIR] == 3
    assert ds[schema.PAIR_RELATIVE_ORBIT].values.tolist() == [66, 15, 66]  # sorted by activity time
    assert params(ds, schema.VV_DIFF)["max_gap_days"] == 12.0
    # the stored layers are the library's numbers
    src = schema.open_cube(alpine_cube)
    expected = sar.change_layers(src, sar.make_pairs(src))
    for name in PAIR_LAYERS:
        np.testing.assert_array_equal(ds[name].values, expected[name].values)
    dem = ds[schema.DEM].compute()
    np.testing.assert_array_equal(ds[schema.SLOPE].values, terrain.slope(dem).values)
    release = terrain.release_mask(terrain.slope(dem))
    assert 0 < int(release.sum()) < release.size  # the DEM has release cells and others
    np.testing.assert_array_equal(ds[schema.RELEASE].values, release.values)
    dx, dy = grid.cell_size(dem)
    reference = par_bruteforce(dem.values.astype("float64"), release.values, dx, dy, 4000.0)
    np.testing.assert_allclose(ds[schema.PAR].values, reference, atol=1e-4, equal_nan=True)
    assert params(ds, schema.PAR)["radius_m"] == 4000.0
    assert "sarcube features --pairs --max-gap 12" in ds.attrs[schema.ATTR_HISTORY]


def test_recompute_with_other_parameters_replaces_and_records(alpine_cube):
    features(alpine_cube)
    before = schema.open_cube(alpine_cube)
    slope_before = before[schema.SLOPE].values
    features(alpine_cube, pairs=False, par=False, release_min=35.0, release_max=45.0)
    ds = schema.open_cube(alpine_cube)
    assert params(ds, schema.RELEASE) == {"min_deg": 35.0, "max_deg": 45.0}
    np.testing.assert_array_equal(
        ds[schema.RELEASE].values, ((slope_before >= 35) & (slope_before <= 45)).astype("uint8")
    )
    # pairs with a 6-day limit: orbit 15's 12-day pair goes, every pair layer follows
    written = features(alpine_cube, max_gap_days=6, terrain=False, par=False)
    assert set(written) == set(PAIR_LAYERS)
    ds = schema.open_cube(alpine_cube)
    assert ds.sizes[schema.PAIR] == 2 and ds[schema.PAIR_RELATIVE_ORBIT].values.tolist() == [66, 66]
    for name in PAIR_LAYERS:
        assert ds[name].shape[0] == 2 and params(ds, name)["max_gap_days"] == 6.0
    np.testing.assert_array_equal(ds[schema.PAR].values, before[schema.PAR].values)  # untouched
    schema.validate_cube(ds)


def test_changed_pairs_refuse_to_orphan_labels(alpine_cube, tmp_path):
    features(alpine_cube, terrain=False, par=False)
    ds = schema.open_cube(alpine_cube)
    # a debris polygon dated on day 10: inside pair 0 (days 3 -> 9]? no; pair 1 (0 -> 12] and pair 2 (9 -> 15]
    square = box(600_060.0, 5_099_880.0, 600_160.0, 5_099_960.0)
    path = tmp_path / "debris.geojson"
    gpd.GeoDataFrame({"date": ["2020-01-11"]}, geometry=[square], crs=TINY_CRS).to_crs("EPSG:4326").to_file(path)
    add_layer(alpine_cube, labels=path, date_field="date")
    label = schema.open_cube(alpine_cube)[schema.LABEL]
    assert label.dims == (schema.PAIR, schema.Y, schema.X)
    assert [int((label[i] == 1).sum()) for i in range(3)] == [0, 20, 20]
    with pytest.raises(CubeExistsError, match=r"\['label'\].*--overwrite"):
        features(alpine_cube, max_gap_days=6, terrain=False, par=False)
    same = schema.open_cube(alpine_cube)
    assert same.sizes[schema.PAIR] == 3 and schema.LABEL in same
    np.testing.assert_array_equal(same[schema.VV_DIFF].values, ds[schema.VV_DIFF].values)
    # same pairs again: labels stay
    features(alpine_cube, terrain=False, par=False)
    assert schema.LABEL in schema.open_cube(alpine_cube)
    features(alpine_cube, max_gap_days=6, terrain=False, par=False, overwrite=True)
    out = schema.open_cube(alpine_cube)
    assert schema.LABEL not in out and out.sizes[schema.PAIR] == 2
    assert "dropped label" in out.attrs[schema.ATTR_HISTORY]
    schema.validate_cube(out)


def test_ratio_and_event_layers_through_the_cli(alpine_cube):
    code = main([
        "features", str(alpine_cube), "--no-pairs", "--no-terrain", "--no-par",
        "--ratio", "--summer", "2020-01-01/2020-01-10", "--event-date", "2020-01-08", "--k", "1",
    ])
    assert code == 0
    ds = schema.open_cube(alpine_cube)
    src = make_tiny_cube(nt=6).drop_isel({schema.TIME: 2})
    assert ds[schema.VV_RATIO].dims == (schema.TIME, schema.Y, schema.X)
    # orbit 15: day 0 only in the window; orbit 66: days 3 and 9 (median = mean of two)
    vv = src[schema.VV].values
    ref15, ref66 = vv[0], (vv[1] + vv[2]) / 2
    np.testing.assert_allclose(ds[schema.VV_RATIO].values[3], vv[3] - ref15, rtol=1e-5)
    np.testing.assert_allclose(ds[schema.VV_RATIO].values[4], vv[4] - ref66, rtol=1e-5)
    # event means per relative orbit, day 7: orbit 15 before day 0, after day 12; orbit 66 before day 3, after day 9
    assert ds[schema.VV_BEFORE].dims == (schema.ORBIT, schema.Y, schema.X)
    assert ds[schema.ORBIT].values.tolist() == [15, 66]
    at = {o: {schema.ORBIT: o} for o in (15, 66)}
    np.testing.assert_allclose(ds[schema.VV_BEFORE].sel(at[15]).values, vv[0], rtol=1e-5)
    np.testing.assert_allclose(ds[schema.VV_AFTER].sel(at[15]).values, vv[3], rtol=1e-5)
    np.testing.assert_allclose(ds[schema.VV_BEFORE].sel(at[66]).values, vv[1], rtol=1e-5)
    np.testing.assert_allclose(ds[schema.VV_AFTER].sel(at[66]).values, vv[2], rtol=1e-5)
    assert params(ds, schema.VH_AFTER)["k"] == 1
    assert "--event-date 2020-01-08 --k 1 --orbit-key relative_orbit" in ds.attrs[schema.ATTR_HISTORY]
    assert params(ds, schema.VH_RATIO)["summer"] == "2020-01-01/2020-01-10"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--summer", "2020-07-01/2020-09-30"], "--summer .* only used with --ratio"),
        (["--ratio"], "--ratio needs"),
        (["--ratio", "--summer", "2020-07-01"], "malformed"),
        (["--ratio", "--summer", "2021-07-01/2021-09-30"], "no acquisition of relative orbit"),
        (["--event-date", "2021-06-01"], "outside the cube"),
        (["--event-date", "2020-01-08", "--k", "3"], "lower --k"),
        (["--k", "2"], "only used with --event-date"),
        (["--orbit-key", "orbit_state"], "--orbit-key orbit_state is only used with --event-date"),
        (["--max-gap", "2"], "raise --max-gap"),
        (["--release-min", "60"], "release slope range"),
    ],
)
def test_bad_options_are_one_line_errors(alpine_cube, capsys, argv, message):
    before = sorted(schema.open_cube(alpine_cube).data_vars)
    assert main(["features", str(alpine_cube), *argv]) == InputError.exit_code
    err = capsys.readouterr().err.strip()
    assert err.startswith("Error:") and len(err.splitlines()) == 1
    assert __import__("re").search(message, err), err
    assert sorted(schema.open_cube(alpine_cube).data_vars) == before


def test_event_means_replace_older_ones_and_switch_orbit_key(tmp_path):
    """(y, x) means of an older sarcube are recomputed per orbit; another --orbit-key replaces the orbits."""
    ds = make_tiny_cube(nt=8)  # orbit 15 (ascending) at days 0, 6, 12, 18; orbit 66 (descending) at 3, 9, 15, 21
    for name in schema.EVENT_MEANS:
        ds[name] = ds[schema.DEM].copy().assign_attrs(units="dB").rename(name)  # mixed orbits, on (y, x)
    path = tmp_path / "old.zarr"
    store.write_cube(ds, path)
    with pytest.raises(CubeSchemaError, match=r"has dims \('y', 'x'\).*sarcube features --event-date"):
        schema.open_cube(path)
    vv = ds[schema.VV].values
    features(path, pairs=False, terrain=False, par=False, event_date="2020-01-11", k=2)
    got = schema.open_cube(path)
    assert got[schema.VV_AFTER].dims == (schema.ORBIT, schema.Y, schema.X)
    np.testing.assert_allclose(got[schema.VV_BEFORE].sel({schema.ORBIT: 15}).values, (vv[0] + vv[2]) / 2, rtol=1e-5)
    np.testing.assert_allclose(got[schema.VV_AFTER].sel({schema.ORBIT: 66}).values, (vv[5] + vv[7]) / 2, rtol=1e-5)
    features(path, terrain=False, par=False, event_date="2020-01-11", k=1, orbit_key=schema.ORBIT_STATE)
    got = schema.open_cube(path)
    assert got[schema.ORBIT].values.tolist() == [schema.ORBIT_ASCENDING, schema.ORBIT_DESCENDING]
    assert got[schema.ORBIT].attrs[schema.ATTR_ORBIT_KEY] == schema.ORBIT_STATE
    descending = got[schema.VV_BEFORE].sel({schema.ORBIT: schema.ORBIT_DESCENDING})
    np.testing.assert_allclose(descending.values, vv[3], rtol=1e-5)
    assert params(got, schema.VV_BEFORE)["orbit_key"] == schema.ORBIT_STATE and schema.PAIR in got.dims
    schema.validate_cube(got)


def test_failed_compute_leaves_the_cube_as_it_was(alpine_cube):
    before = sorted(schema.open_cube(alpine_cube).data_vars)
    chunk = next(p for p in (alpine_cube / schema.VV).rglob("*") if p.is_file() and p.name != "zarr.json")
    chunk.write_bytes(b"not a blosc frame")
    with pytest.raises(Exception):  # noqa: B017 - the codec's error, whichever it is
        features(alpine_cube)
    after = schema.open_cube(alpine_cube)
    assert sorted(after.data_vars) == before
    assert schema.PAIR not in after.dims


def test_store_refuses_to_strand_layers_on_replaced_pairs(alpine_cube):
    features(alpine_cube, terrain=False, par=False)
    ds = schema.open_cube(alpine_cube)
    coherence = schema.make_variable(
        "coherence",
        ds[schema.VV_DIFF] * 0 + 0.5,
        spec=schema.external_spec("coherence", (schema.PAIR, schema.Y, schema.X)),
    )
    store.add_variables(alpine_cube, {"coherence": coherence})
    six = sar.make_pairs(ds, max_gap_days=6)
    layers = sar.change_layers(ds, six)
    with pytest.raises(CubeSchemaError, match=r"strand \['coherence'\]"):
        store.add_variables(alpine_cube, layers, overwrite=True, new_coords=six, replace_coords=True)
    with pytest.raises(CubeSchemaError, match="differs"):
        store.add_variables(alpine_cube, layers, overwrite=True, new_coords=six)
    assert schema.open_cube(alpine_cube).sizes[schema.PAIR] == 3
    store.add_variables(alpine_cube, layers, overwrite=True, new_coords=six, replace_coords=True, drop=["coherence"])
    out = schema.open_cube(alpine_cube)
    assert out.sizes[schema.PAIR] == 2 and "coherence" not in out
    np.testing.assert_array_equal(out[schema.ACTIVITY_TIME].values, six[schema.ACTIVITY_TIME].values)


def test_new_pairs_keep_labels_and_predictions_of_the_old_ones(alpine_cube, tmp_path):
    """Monitoring a season: more pairs later must not throw away labels or predictions."""
    features(alpine_cube, max_gap_days=6, terrain=False, par=False)  # orbit 66 only: (3 -> 9], (9 -> 15]
    square = box(600_060.0, 5_099_880.0, 600_160.0, 5_099_960.0)
    path = tmp_path / "debris.geojson"
    gpd.GeoDataFrame({"date": ["2020-01-11"]}, geometry=[square], crs=TINY_CRS).to_crs("EPSG:4326").to_file(path)
    add_layer(alpine_cube, labels=path, date_field="date")
    before = schema.open_cube(alpine_cube)
    pred_name = schema.prediction_name("fcn")
    pred = schema.make_variable(
        pred_name, np.full((2, 24, 32), 0.25), (schema.PAIR, schema.Y, schema.X), spec=schema.prediction_spec(pred_name)
    )
    store.add_variables(alpine_cube, {pred_name: pred})
    old_keys = list(zip(before[schema.REFERENCE_TIME].values, before[schema.ACTIVITY_TIME].values, strict=True))
    old_label = before[schema.LABEL].values

    features(alpine_cube, terrain=False, par=False)  # 12 days: orbit 15's (0 -> 12] joins
    out = schema.open_cube(alpine_cube)
    schema.validate_cube(out)
    assert out.sizes[schema.PAIR] == 3
    keys = list(zip(out[schema.REFERENCE_TIME].values, out[schema.ACTIVITY_TIME].values, strict=True))
    for i, key in enumerate(keys):
        if key in old_keys:
            j = old_keys.index(key)
            np.testing.assert_array_equal(out[schema.LABEL].values[i], old_label[j])
            assert (out[pred_name].values[i] == 0.25).all()
        else:  # the new pair: nothing known yet
            assert (out[schema.LABEL].values[i] == schema.LABEL_UNKNOWN).all()
            assert np.isnan(out[pred_name].values[i]).all()
    assert int((out[schema.LABEL] == 1).sum()) == int((old_label == 1).sum()) == 20
