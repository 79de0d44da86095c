"""`sarcube export`: thresholded detections as polygons a GIS opens (pipelines/export.py)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest

from conftest import TINY_CRS, make_pair_cube
from sarcube.datacube import schema, store
from sarcube.errors import InputError, MissingVariableError
from sarcube.pipelines.cli import main
from sarcube.pipelines.export import export

PIXEL_M2 = 20.0 * 20.0  # the tiny cube's grid


def _write_pred(path, name: str = "hand", threshold: float = 0.5) -> None:
    ds = schema.open_cube(path)
    prob = np.full((ds.sizes[schema.PAIR], ds.sizes[schema.Y], ds.sizes[schema.X]), 0.1, dtype="float32")
    prob[0, 4:8, 3:8] = 0.9  # 20 pixels
    prob[0, 12:14, 20:22] = 0.7  # 4 pixels
    prob[0, 18, 28] = 0.8  # 1 pixel: below the minimum area
    prob[1, 10:13, 10:13] = 0.6  # 9 pixels
    prob[2] = np.nan  # pair 2 not predicted
    var_name = schema.prediction_name(name)
    var = schema.make_variable(
        var_name,
        prob,
        (schema.PAIR, schema.Y, schema.X),
        spec=schema.prediction_spec(var_name),
        attrs={schema.ATTR_THRESHOLD: threshold},
    )
    store.add_variables(path, {var_name: var})


@pytest.fixture
def pred_cube(tmp_path):
    path = tmp_path / "pairs.zarr"
    store.write_cube(make_pair_cube(), path)
    _write_pred(path)
    return path


def test_polygons_round_trip_with_crs_areas_and_attributes(pred_cube, tmp_path):
    out = export(pred_cube, "hand", tmp_path / "det.gpkg")
    frame = gpd.read_file(out)
    assert frame.crs.to_epsg() == int(TINY_CRS.split(":")[1])
    frame = frame.sort_values("area_m2", ascending=False).reset_index(drop=True)
    assert frame["area_m2"].tolist() == [20 * PIXEL_M2, 9 * PIXEL_M2, 4 * PIXEL_M2]
    np.testing.assert_allclose(frame.geometry.area, frame["area_m2"])
    assert frame["pair_index"].tolist() == [0, 1, 0]
    np.testing.assert_allclose(frame["mean_probability"], [0.9, 0.6, 0.7], rtol=1e-6)
    ds = schema.open_cube(pred_cube)
    assert str(frame["activity_date"][0])[:10] == str(ds[schema.ACTIVITY_TIME].values[0])[:10]
    assert frame["activity_date"].dtype.kind == "M" and frame["reference_date"].dtype.kind == "M"  # dates, not text
    assert set(frame.geom_type) == {"MultiPolygon"}
    # Terrain means under the 4x5 block (rows 4..7, columns 3..7).
    np.testing.assert_allclose(frame["mean_slope_deg"][0], float(ds[schema.SLOPE][4:8, 3:8].mean()), rtol=1e-5)
    np.testing.assert_allclose(frame["mean_elevation_m"][0], float(ds[schema.DEM][4:8, 3:8].mean()), rtol=1e-5)
    np.testing.assert_allclose(frame["mean_aspect_deg"][0], float(ds[schema.ASPECT][4:8, 3:8].mean()), rtol=1e-5)
    # The polygon lies where the pixels are: its bounds are the block's pixel edges.
    x, y = ds[schema.X].values, ds[schema.Y].values
    np.testing.assert_allclose(frame.geometry[0].bounds, (x[3] - 10, y[7] - 10, x[7] + 10, y[4] + 10))


def test_diagonally_touching_pixels_make_one_valid_object(tmp_path):
    ds = make_pair_cube()
    path = tmp_path / "diag.zarr"
    store.write_cube(ds, path)
    prob = np.zeros((3, 24, 32), dtype="float32")
    for i in range(4):  # a staircase: 8-connected, 4 pixels touching at corners
        prob[0, 5 + i, 5 + i] = 0.9
    prob[0, 12:14, 12:14] = 0.9
    prob[0, 14:16, 14:16] = 0.9  # two squares meeting at one corner
    name = schema.prediction_name("diag")
    store.add_variables(
        path,
        {name: schema.make_variable(name, prob, (schema.PAIR, schema.Y, schema.X), spec=schema.prediction_spec(name))},
    )
    frame = gpd.read_file(export(path, "diag", tmp_path / "diag.gpkg", min_area_m2=0))
    assert sorted(frame["area_m2"]) == [4 * PIXEL_M2, 8 * PIXEL_M2]
    assert frame.is_valid.all()
    np.testing.assert_allclose(sorted(frame.geometry.area), sorted(frame["area_m2"]))


def test_threshold_and_minimum_area_options(pred_cube, tmp_path):
    high = gpd.read_file(export(pred_cube, "pred_hand", tmp_path / "high.gpkg", threshold=0.75))
    assert high["area_m2"].tolist() == [20 * PIXEL_M2]
    small = gpd.read_file(export(pred_cube, "hand", tmp_path / "small.gpkg", min_area_m2=0))
    assert sorted(small["area_m2"]) == [PIXEL_M2, 4 * PIXEL_M2, 9 * PIXEL_M2, 20 * PIXEL_M2]


def test_bad_inputs_name_the_fix(pred_cube, tmp_path):
    with pytest.raises(MissingVariableError, match="pred_hand"):
        export(pred_cube, "other", tmp_path / "x.gpkg")
    with pytest.raises(InputError, match=".gpkg"):
        export(pred_cube, "hand", tmp_path / "x.shp")
    with pytest.raises(InputError, match="threshold"):
        export(pred_cube, "hand", tmp_path / "x.gpkg", threshold=1.5)


def test_cli_writes_the_file(pred_cube, tmp_path):
    out = tmp_path / "cli.geojson"
    assert main(["export", str(pred_cube), "--pred", "hand", "--out", str(out)]) == 0
    assert len(gpd.read_file(out)) == 3


def test_geojson_is_rfc7946_lonlat_multipolygons_without_crs_member(pred_cube, tmp_path):
    import json

    out = export(pred_cube, "hand", tmp_path / "det.geojson")
    doc = json.loads(out.read_text())
    assert "crs" not in doc
    assert {f["geometry"]["type"] for f in doc["features"]} == {"MultiPolygon"}
    lon, lat = doc["features"][0]["geometry"]["coordinates"][0][0][0]
    assert 10.0 < lon < 10.5 and 45.5 < lat < 46.5  # the tiny cube: UTM 32N, x 600 km, y 5100 km
    assert doc["features"][0]["properties"]["activity_date"][:4] == "2020"
    gpkg = gpd.read_file(export(pred_cube, "hand", tmp_path / "det.gpkg"))
    back = gpd.read_file(out).to_crs(gpkg.crs).sort_values("area_m2").reset_index(drop=True)
    np.testing.assert_allclose(back.area, gpkg.sort_values("area_m2").reset_index(drop=True).area, rtol=1e-3)


def test_gpkg_crs_option_reprojects_and_geojson_refuses_another_crs(pred_cube, tmp_path):
    frame = gpd.read_file(export(pred_cube, "hand", tmp_path / "det.gpkg", crs="EPSG:3857"))
    assert frame.crs.to_epsg() == 3857
    with pytest.raises(InputError, match="RFC 7946"):
        export(pred_cube, "hand", tmp_path / "det.geojson", crs="EPSG:32632")
    with pytest.raises(InputError, match="not a CRS"):
        export(pred_cube, "hand", tmp_path / "det.gpkg", crs="EPSG:nope")


def test_tiles_give_the_whole_maps_detections_bit_for_bit(tmp_path, monkeypatch):
    """Read in 5 px tiles, objects that cross tile borders (and corners) come out as read whole: same polygons
    (WKB bytes), same stats, same order, on a grid whose coordinates are not round numbers."""
    from scipy import ndimage

    from sarcube.pipelines import detections

    ds = make_pair_cube(ny=23, nx=29)
    ds = ds.assign_coords({schema.X: 600001.123 + 19.8765 * np.arange(29),
                           schema.Y: 5100003.987 - 19.8765 * np.arange(23)})
    path = tmp_path / "odd.zarr"
    store.write_cube(ds, path)
    rng = np.random.default_rng(3)
    shape = (ds.sizes[schema.PAIR], 23, 29)
    blobs = ndimage.binary_dilation(rng.random(shape) < 0.04, structure=np.ones((1, 3, 3)))
    prob = np.where(blobs, 0.5 + 0.5 * rng.random(shape), 0.5 * rng.random(shape)).astype("float32")
    prob[rng.random(shape) < 0.02] = np.nan
    name = schema.prediction_name("blobs")
    store.add_variables(path, {name: schema.make_variable(name, prob, (schema.PAIR, schema.Y, schema.X),
                                                          spec=schema.prediction_spec(name))})
    cube = schema.open_cube(path)
    whole = detections.detections(cube, "blobs", min_area_m2=0.0)
    monkeypatch.setattr(detections, "TILE_PX", 5)
    tiled = detections.detections(cube, "blobs", min_area_m2=0.0)
    assert len(whole) > 10 and (tiled.geometry.to_wkb() == whole.geometry.to_wkb()).all()
    assert tiled.drop(columns="geometry").equals(whole.drop(columns="geometry"))
