"""Label polygons and external rasters onto the cube grid: right pixels, right pairs, clear errors."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import box

from conftest import TINY_CRS, make_tiny_cube
from sarcube.datacube import labels, rasters, sar, schema, staging, store
from sarcube.datacube.label_events import label_events
from sarcube.errors import CubeExistsError, InputError, MissingVariableError
from sarcube.pipelines.add_layer import add_layer

# tiny cube grid: 20 m cells, corner (600000, 5100000), 24 rows x 32 cols, EPSG:32632
X0, Y0, CELL = 600_000.0, 5_100_000.0, 20.0


def cells(row0: int, row1: int, col0: int, col1: int):
    """The UTM box covering rows row0..row1-1 and cols col0..col1-1."""
    return box(X0 + CELL * col0, Y0 - CELL * row1, X0 + CELL * col1, Y0 - CELL * row0)


def cube_with_pairs(nt: int = 6):
    ds = make_tiny_cube(nt=nt)
    # pairs: (Jan 1, Jan 7] o15, (Jan 4, Jan 10] o66, (Jan 7, Jan 13] o15, (Jan 10, Jan 16] o66
    return ds.assign_coords(sar.make_pairs(ds))


def write_polygons(path, geoms, crs, **fields):
    gdf = (
        gpd.GeoDataFrame(fields, geometry=list(geoms), crs=TINY_CRS).to_crs(crs)
        if crs
        else gpd.GeoDataFrame(fields, geometry=list(geoms))
    )
    gdf.to_file(path)
    return path


def test_dated_polygon_in_wgs84_lands_on_its_cells_and_pairs(tmp_path):
    ds = cube_with_pairs()
    square = cells(2, 6, 3, 8)
    far = cells(10, 12, 20, 25)
    path = write_polygons(
        tmp_path / "debris.geojson", [square, far, square], "EPSG:4326",
        date=["2020-01-03", "2020-01-08", "2019-12-20"],
    )
    label, info = labels.rasterize_labels(ds, path, date_field="date")
    assert label.dims == (schema.PAIR, schema.Y, schema.X) and label.dtype == np.uint8
    v = label.values
    expected0 = np.zeros((24, 32), np.uint8)
    expected0[2:6, 3:8] = 1
    np.testing.assert_array_equal(v[0], expected0)  # Jan 3 only in (Jan 1, Jan 7]
    expected_far = np.zeros((24, 32), np.uint8)
    expected_far[10:12, 20:25] = 1
    np.testing.assert_array_equal(v[1], expected_far)  # Jan 8: both orbits' pairs that hold it
    np.testing.assert_array_equal(v[2], expected_far)
    np.testing.assert_array_equal(v[3], 0)
    assert info["unassigned"] == 1 and info["unassigned_dates"] == ["2019-12-20"]
    assert info["per_pair"] == [1, 1, 1, 0]
    params = json.loads(label.attrs[schema.ATTR_PARAMETERS])
    assert params["source"] == "debris.geojson" and params["date_field"] == "date"


def test_add_layer_records_the_events_burnt_into_each_pair(tmp_path):
    from sarcube.pipelines.cli import main

    cube = tmp_path / "c.zarr"
    store.write_cube(cube_with_pairs(), cube)
    square, far = cells(2, 6, 3, 8), cells(10, 12, 20, 25)
    dates = ["2020-01-03", "2020-01-08", "2019-12-20", "2020-01-09"]
    geoms = [square, far, square, cells(11, 13, 24, 26)]
    ids = ["a1", "a2", "a3", "a2"]
    path = write_polygons(tmp_path / "d.geojson", geoms, TINY_CRS, date=dates, event_id=ids, name=list("pqrs"))
    add_layer(cube, labels=path, date_field="date")
    events = label_events(schema.open_cube(cube)[schema.LABEL])
    # pairs (Jan 1, Jan 7] o15, (Jan 4, Jan 10] o66, (Jan 7, Jan 13] o15, (Jan 10, Jan 16] o66; a3 is in none;
    # the two polygons of a2 are one event, its box covers both
    assert events is not None and events.id_field == "event_id"
    assert events.pairs == (("a1",), ("a2",), ("a2",), ())
    assert events.boxes == {"a1": (2, 6, 3, 8), "a2": (10, 13, 20, 26)}
    # an `id` field, an explicit --id-field, else the feature index
    ds = cube_with_pairs()
    with_id = write_polygons(tmp_path / "i.geojson", geoms, TINY_CRS, date=dates, id=[7, 8, 9, 10])
    assert label_events(labels.rasterize_labels(ds, with_id, date_field="date")[0]).pairs[1] == ("8", "10")
    named = label_events(labels.rasterize_labels(ds, path, date_field="date", id_field="name")[0])
    assert named.id_field == "name" and named.pairs[1] == ("q", "s")
    plain = write_polygons(tmp_path / "p.geojson", geoms, TINY_CRS, date=dates)
    assert label_events(labels.rasterize_labels(ds, plain, date_field="date")[0]).pairs[:2] == (("0",), ("1", "3"))
    with pytest.raises(InputError, match=r"d\.geojson.*no field 'nope'.*--id-field"):
        labels.rasterize_labels(ds, path, date_field="date", id_field="nope")
    with pytest.raises(InputError, match="--id-field.*--date-field"):
        labels.rasterize_labels(ds, path, id_field="name")
    # static labels hold no events; the CLI takes --id-field
    assert label_events(labels.rasterize_labels(make_tiny_cube(), path)[0]) is None
    args = ["add-layer", str(cube), "--labels", str(path), "--date-field", "date", "--id-field", "name", "--overwrite"]
    assert main(args) == 0
    assert label_events(schema.open_cube(cube)[schema.LABEL]).pairs[2] == ("q", "s")


def test_date_on_activity_day_boundary(tmp_path):
    ds = cube_with_pairs()
    path = write_polygons(tmp_path / "a.geojson", [cells(0, 2, 0, 2)], "EPSG:4326", date=["2020-01-07T05:00:00"])
    label, _ = labels.rasterize_labels(ds, path, date_field="date")
    # exactly the activity time of pair 0 -> in (ref, act] of pair 0, not of pair 2 (starts after it)
    assert label.values[:, 0, 0].tolist() == [1, 1, 0, 0]


def test_monitored_area_and_all_touched(tmp_path):
    ds = cube_with_pairs()
    path = write_polygons(tmp_path / "d.gpkg", [cells(2, 6, 3, 8)], "EPSG:3857", date=["2020-01-03"])
    corridor = write_polygons(tmp_path / "corridor.geojson", [cells(0, 24, 0, 10)], "EPSG:4326")
    label, _ = labels.rasterize_labels(ds, path, date_field="date", monitored=corridor)
    v = label.values
    assert (v[:, :, 10:] == schema.LABEL_UNKNOWN).all()
    assert (v[:, :, :10] != schema.LABEL_UNKNOWN).all()
    assert v[0, 2:6, 3:8].min() == 1 and (v[0] == 1).sum() == 20 and (v[1:] == 1).sum() == 0
    # all_touched burns the cells a thin polygon crosses; centre rule burns none of them
    sliver = write_polygons(tmp_path / "s.geojson", [box(X0 + 45, Y0 - 100, X0 + 47, Y0 - 20)], "EPSG:4326")
    thin, _ = labels.rasterize_labels(ds, sliver)
    touched, _ = labels.rasterize_labels(ds, sliver, all_touched=True)
    assert thin.values.sum() == 0
    assert touched.values.sum() == 4 and touched.values[1:5, 2].tolist() == [1, 1, 1, 1]


def test_static_labels_from_shapefile(tmp_path):
    ds = make_tiny_cube()
    path = write_polygons(
        tmp_path / "scars.shp", [cells(0, 3, 0, 4), cells(20, 24, 28, 32)], "EPSG:4326", name=["a", "b"]
    )
    label, info = labels.rasterize_labels(ds, path)
    assert label.dims == (schema.Y, schema.X)
    assert label.values.sum() == 12 + 16 and label.values[21, 30] == 1 and label.values[5, 5] == 0
    assert info == {"file": str(path), "polygons": 2, "outside_cube": 0}
    # chunked like the contract
    assert label.data.chunks == ((24,), (32,))


def test_label_errors_name_the_file(tmp_path):
    ds = cube_with_pairs()
    nocrs = write_polygons(tmp_path / "nocrs.shp", [cells(0, 2, 0, 2)], None, date=["2020-01-03"])
    with pytest.raises(InputError, match=r"nocrs\.shp.*no CRS"):
        labels.rasterize_labels(ds, nocrs)
    away = write_polygons(tmp_path / "away.geojson", [box(7.0, 45.0, 7.01, 45.01)], None)
    gpd.read_file(away).set_crs("EPSG:4326", allow_override=True).to_file(away)
    with pytest.raises(InputError, match=r"away\.geojson.*no feature lies inside the cube"):
        labels.rasterize_labels(ds, away)
    good = write_polygons(
        tmp_path / "good.geojson", [cells(0, 2, 0, 2)], "EPSG:4326", when=["2020-01-03"], bad=["3rd of Jan"]
    )
    with pytest.raises(InputError, match=r"good\.geojson.*no field 'date'.*when"):
        labels.rasterize_labels(ds, good, date_field="date")
    with pytest.raises(InputError, match=r"good\.geojson.*'bad'='3rd of Jan' is not a date"):
        labels.rasterize_labels(ds, good, date_field="bad")
    with pytest.raises(MissingVariableError, match="--pairs"):
        labels.rasterize_labels(make_tiny_cube(), good, date_field="when")
    with pytest.raises(InputError, match="does not exist"):
        labels.rasterize_labels(ds, tmp_path / "nothing.geojson")
    (tmp_path / "table.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="unsupported format"):
        labels.rasterize_labels(ds, tmp_path / "table.csv")
    with pytest.raises(InputError, match=r"--monitored.*away\.geojson"):
        labels.rasterize_labels(ds, good, monitored=away)


# --- external rasters ------------------------------------------------------------------

def write_geotiff(path, crs, west, north, res, values, nodata=None):
    values = np.asarray(values, dtype="float32")
    with rasterio.open(
        path, "w", driver="GTiff", width=values.shape[1], height=values.shape[0], count=1, dtype="float32",
        crs=crs, transform=from_origin(west, north, res, res), nodata=nodata,
    ) as dst:
        dst.write(values, 1)
    return path


def lonlat_ramp(path, scale=1000.0, east_m=900.0, res=2e-5):
    """A WGS84 raster over the tiny cube (to ``east_m`` east of its corner) whose value is ``scale * (lon - 9.0)``."""
    from pyproj import Transformer

    lon, lat = Transformer.from_crs(TINY_CRS, "EPSG:4326", always_xy=True).transform(
        [X0 - 200, X0 + east_m], [Y0 + 200, Y0 - 700]
    )
    west, north = min(lon), max(lat)
    w = int((max(lon) - west) / res) + 1
    h = int((north - min(lat)) / res) + 1
    lon_centres = west + res * (np.arange(w) + 0.5)
    return write_geotiff(path, "EPSG:4326", west, north, res, np.broadcast_to(scale * (lon_centres - 9.0), (h, w)))


def test_raster_reprojected_from_wgs84(tmp_path):
    from pyproj import Transformer

    ds = make_tiny_cube()
    tif = lonlat_ramp(tmp_path / "ramp.tif")
    var = rasters.reproject_raster(ds, [tif], "ramp", "none", units="m")
    assert var.dims == (schema.Y, schema.X) and var.attrs["units"] == "m"
    xx, yy = np.meshgrid(ds[schema.X].values, ds[schema.Y].values)
    lon, _ = Transformer.from_crs(TINY_CRS, "EPSG:4326", always_xy=True).transform(xx, yy)
    np.testing.assert_allclose(var.values, 1000.0 * (lon - 9.0), atol=2e-3)  # bilinear on a ramp: exact up to float32


def test_raster_warped_chunk_by_chunk_joins_without_seams(tmp_path):
    from pyproj import Transformer

    ds = make_tiny_cube(ny=4, nx=schema.CHUNK_YX + 20, nt=1)  # two chunks along x
    tif = lonlat_ramp(tmp_path / "ramp.tif", east_m=CELL * (schema.CHUNK_YX + 30))
    var = rasters.reproject_raster(ds, [tif], "ramp", "none", units="m")
    assert var.data.numblocks == (1, 2)
    xx, yy = np.meshgrid(ds[schema.X].values, ds[schema.Y].values)
    lon, _ = Transformer.from_crs(TINY_CRS, "EPSG:4326", always_xy=True).transform(xx, yy)
    np.testing.assert_allclose(var.values, 1000.0 * (lon - 9.0), atol=2e-3)


def test_rasters_matched_to_times_and_pairs_by_name(tmp_path):
    ds = cube_with_pairs()
    west, north = X0 - 100, Y0 + 100
    a = write_geotiff(tmp_path / "coh_20200104.tif", TINY_CRS, west, north, 10.0, np.full((80, 90), 0.25))
    b = write_geotiff(tmp_path / "coh_2020-01-10.tif", TINY_CRS, west, north, 10.0, np.full((80, 90), 0.75))
    var = rasters.reproject_raster(ds, [b, a], "coherence", schema.TIME)
    assert var.dims == (schema.TIME, schema.Y, schema.X)
    got = var.values[:, 5, 5]
    np.testing.assert_allclose(got[[1, 3]], [0.25, 0.75])
    assert np.isnan(got[[0, 2, 4, 5]]).all()
    p = write_geotiff(tmp_path / "ifg_20200104_20200110.tif", TINY_CRS, west, north, 10.0, np.full((80, 90), 3.0))
    var = rasters.reproject_raster(ds, [p], "ifg", schema.PAIR)
    assert var.values[:, 0, 0].tolist()[1] == 3.0 and np.isnan(var.values[[0, 2, 3], 0, 0]).all()
    with pytest.raises(InputError, match=r"coh_20200104\.tif.*2 date"):
        rasters.reproject_raster(ds, [a], "ifg", schema.PAIR)
    with pytest.raises(InputError, match=r"ifg_20200104_20200110\.tif.*1 date"):
        rasters.reproject_raster(ds, [p], "coherence", schema.TIME)
    c = write_geotiff(tmp_path / "coh_20200105.tif", TINY_CRS, west, north, 10.0, np.ones((80, 90)))
    with pytest.raises(InputError, match=r"coh_20200105\.tif.*no time of the cube"):
        rasters.reproject_raster(ds, [c], "coherence", schema.TIME)
    with pytest.raises(InputError, match="takes one file"):
        rasters.reproject_raster(ds, [a, b], "coherence", "none")
    with pytest.raises(InputError, match="reserved"):
        rasters.reproject_raster(ds, [a], schema.PAR, "none")


def test_raster_of_another_area_or_without_crs(tmp_path):
    ds = make_tiny_cube()
    away = write_geotiff(tmp_path / "alps_east.tif", TINY_CRS, X0 + 50_000, Y0, 10.0, np.ones((10, 10)))
    with pytest.raises(InputError, match=r"alps_east\.tif.*another area"):
        rasters.reproject_raster(ds, [away], "coherence")
    bare = write_geotiff(tmp_path / "bare.tif", None, 0, 10, 1.0, np.ones((10, 10)))
    with pytest.raises(InputError, match=r"bare\.tif.*no CRS"):
        rasters.reproject_raster(ds, [bare], "coherence")


def test_add_layer_writes_refuses_and_failed_write_keeps_the_cube(tiny_cube, tmp_path):
    tif = lonlat_ramp(tmp_path / "ramp.tif")
    assert add_layer(tiny_cube, raster_name="ramp", raster_files=[tif], units="m") == ["ramp"]
    before = schema.open_cube(tiny_cube)["ramp"].values
    with pytest.raises(CubeExistsError, match="--overwrite"):
        add_layer(tiny_cube, raster_name="ramp", raster_files=[tif])
    # a raster whose header reads but whose pixels do not: the failure comes during the write
    broken = tmp_path / "broken.tif"
    with rasterio.open(tif) as src:
        t = src.transform
    write_geotiff(broken, "EPSG:4326", t.c, t.f, t.a, np.ones((600, 700)))
    with open(broken, "r+b") as fh:
        fh.truncate(broken.stat().st_size // 3)
    with pytest.raises(InputError, match=r"broken\.tif.*cannot be read"):
        add_layer(tiny_cube, raster_name="ramp", raster_files=[broken], overwrite=True)
    after = schema.open_cube(tiny_cube)
    np.testing.assert_array_equal(after["ramp"].values, before)
    labels_path = write_polygons(tmp_path / "scar.geojson", [cells(0, 3, 0, 4)], "EPSG:4326")
    assert add_layer(tiny_cube, labels=labels_path) == [schema.LABEL]
    out = schema.open_cube(tiny_cube)
    assert out[schema.LABEL].dims == (schema.Y, schema.X) and int(out[schema.LABEL].sum()) == 12
    assert "add-layer --labels scar.geojson" in out.attrs[schema.ATTR_HISTORY]
    assert not (tiny_cube / staging.STAGING_GROUP).exists()
    with pytest.raises(InputError, match="either --labels"):
        add_layer(tiny_cube)
    with pytest.raises(InputError, match="go with --labels"):
        add_layer(tiny_cube, raster_name="x", raster_files=[tif], date_field="date")
