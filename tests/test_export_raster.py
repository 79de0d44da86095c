"""`sarcube export-raster`: cube layers as COGs that GDAL and rasterio open (pipelines/export_raster.py)."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
import rasterio

from conftest import TINY_CRS, make_pair_cube
from sarcube.datacube import schema, store
from sarcube.pipelines.cli import main
from sarcube.pipelines.export_raster import export_raster


@pytest.fixture
def pair_cube(tmp_path):
    path = tmp_path / "pairs.zarr"
    store.write_cube(make_pair_cube(), path)
    return path


def _gdalinfo(path) -> dict:
    out = subprocess.run(
        ["gdalinfo", "-json", "-stats", "-mdd", "all", str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


@pytest.mark.skipif(shutil.which("gdalinfo") is None, reason="Debian's gdal-bin is not installed (.ci/run installs it)")
def test_one_pair_opens_in_debian_gdalinfo_with_crs_nodata_dates_and_values(pair_cube, tmp_path):
    (path,) = export_raster(pair_cube, schema.VV_DIFF, tmp_path / "diff.tif", pair=1)
    info = _gdalinfo(path)
    ds = schema.open_cube(pair_cube)
    assert info["driverShortName"] == "GTiff"
    assert info["metadata"]["IMAGE_STRUCTURE"]["LAYOUT"] == "COG"
    assert 'ID["EPSG",32632]' in info["coordinateSystem"]["wkt"]
    np.testing.assert_allclose(info["geoTransform"], [600_000.0, 20.0, 0.0, 5_100_000.0, 0.0, -20.0])
    band = info["bands"][0]
    assert band["type"] == "Float32" and band["noDataValue"] == "NaN"
    values = ds[schema.VV_DIFF].values[1]
    np.testing.assert_allclose(
        [band["minimum"], band["maximum"]], [values.min(), values.max()], atol=1e-3
    )  # GDAL decoded it (prints 3 decimals)
    ref, act = (str(ds[c].values[1])[:19] for c in (schema.REFERENCE_TIME, schema.ACTIVITY_TIME))
    assert ref in band["description"] and act in band["description"]
    tags = info["metadata"][""]
    assert tags[schema.REFERENCE_TIME].startswith(ref) and tags[schema.ACTIVITY_TIME].startswith(act)
    assert tags["units"] == ds[schema.VV_DIFF].attrs["units"]
    with rasterio.open(path) as src:
        np.testing.assert_array_equal(src.read(1), ds[schema.VV_DIFF].values[1])
        assert src.crs.to_epsg() == int(TINY_CRS.split(":")[1])


def test_folder_form_writes_one_dated_cog_per_acquisition(pair_cube, tmp_path):
    paths = export_raster(pair_cube, schema.VV, tmp_path / "vv")
    ds = schema.open_cube(pair_cube)
    assert len(paths) == ds.sizes[schema.TIME]
    for k, path in enumerate(paths):
        when = str(ds[schema.TIME].values[k])[:19]
        assert when.replace("-", "").replace(":", "") in path.name
        with rasterio.open(path) as src:
            assert src.tags()[schema.TIME].startswith(when)
            assert src.tags()[schema.ORBIT_STATE] == str(ds[schema.ORBIT_STATE].values[k])
            np.testing.assert_array_equal(src.read(1), ds[schema.VV].values[k])
    (one,) = export_raster(pair_cube, schema.VV, tmp_path / "one.tif", time=str(ds[schema.TIME].values[2])[:10])
    with rasterio.open(one) as src:
        np.testing.assert_array_equal(src.read(1), ds[schema.VV].values[2])


def test_label_keeps_uint8_with_unknown_as_nodata(pair_cube, tmp_path):
    (path,) = export_raster(pair_cube, schema.LABEL, tmp_path / "label.tif", pair=0)
    with rasterio.open(path) as src:
        assert src.dtypes[0] == "uint8" and src.nodata == schema.LABEL_UNKNOWN
        np.testing.assert_array_equal(src.read(1), schema.open_cube(pair_cube)[schema.LABEL].values[0])


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--var", "nope", "--out", "x.tif"], "no such variable"),
        (["--var", schema.DEM, "--pair", "0", "--out", "x.tif"], "drop --pair"),
        ([ "--var", schema.VV_DIFF, "--pair", "9", "--out", "x.tif"], "out of range"),
        (["--var", schema.VV_DIFF, "--out", "x.tif"], "pick one"),
        (["--var", schema.VV, "--time", "1999-01-01", "--out", "x.tif"], "no acquisition"),
    ],
)
def test_bad_choices_exit_with_one_line(pair_cube, tmp_path, capsys, args, needle):
    code = main(["export-raster", str(pair_cube), *[a.replace("x.tif", str(tmp_path / "x.tif")) for a in args]])
    err = capsys.readouterr().err
    assert code in (1, 2) and needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.tif").exists()
