"""The cube as GDAL reads it: ``--codec gzip`` cubes open in GDAL builds without Blosc/zstd (tests/gdal_probe.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import make_pair_cube
from gdal_probe import LIB, gdalinfo, version
from sarcube.datacube import schema, store

needs_gdal = pytest.mark.skipif(LIB is None, reason="pyogrio's bundled GDAL is not installed")


def _codecs(path) -> dict[str, list[str]]:
    return {
        meta.parent.name: [c["name"] for c in json.loads(meta.read_text())["codecs"]]
        for meta in path.glob("*/zarr.json") if json.loads(meta.read_text()).get("node_type") == "array"
    }


@pytest.fixture
def gzip_cube(tmp_path):
    path = tmp_path / "gzip.zarr"
    ds = make_pair_cube()
    later = ds[schema.PAR]
    ds = ds.drop_vars(schema.PAR)
    ds.attrs[schema.ATTR_CODEC] = schema.CODEC_GZIP
    store.write_cube(ds, path)
    store.add_variables(path, {schema.PAR: later})  # a later writer keeps the cube's codec
    return path


def test_every_array_of_a_gzip_cube_is_gzip(gzip_cube):
    codecs = _codecs(gzip_cube)
    assert schema.PAR in codecs and schema.X in codecs and schema.ITEM_ID in codecs
    assert all(names[-1] == "gzip" for names in codecs.values()), codecs


def test_default_cube_is_blosc_zstd_level_of_the_contract(tmp_path):
    store.write_cube(make_pair_cube(), tmp_path / "z.zarr")
    meta = json.loads((tmp_path / "z.zarr" / schema.VV / "zarr.json").read_text())
    blosc = [c for c in meta["codecs"] if c["name"] == "blosc"][0]["configuration"]
    assert (blosc["cname"], blosc["clevel"], blosc["shuffle"]) == ("zstd", schema.ZSTD_LEVEL, schema.BLOSC_SHUFFLE)


@needs_gdal
def test_newest_gdal_reads_gzip_cube_with_crs_transform_and_values(gzip_cube):
    ds = schema.open_cube(gzip_cube)
    for name in (schema.VV_DIFF, schema.PAR):
        info = gdalinfo(f'ZARR:"{gzip_cube}":/{name}', "-stats")
        assert 'ID["EPSG",32632]' in info["coordinateSystem"]["wkt"], version()
        np.testing.assert_allclose(info["geoTransform"], [600_000.0, 20.0, 0.0, 5_100_000.0, 0.0, -20.0])
        band = info["bands"][0]
        values = ds[name].values[0] if name == schema.VV_DIFF else ds[name].values
        np.testing.assert_allclose(
            [band["minimum"], band["maximum"]], [np.nanmin(values), np.nanmax(values)], atol=1e-3
        )
        assert band["noDataValue"] == "NaN"


@needs_gdal
def test_newest_gdal_lists_the_default_cube_but_lacks_its_blosc(tmp_path):
    """What the README says: the default (Blosc/zstd) cube needs a GDAL built with Blosc, as pyogrio's is not."""
    store.write_cube(make_pair_cube(), tmp_path / "z.zarr")
    try:
        info = gdalinfo(f'ZARR:"{tmp_path / "z.zarr"}":/{schema.VV}', "-stats")
    except OSError as err:
        assert "blosc" in str(err).lower() or "zstd" in str(err).lower()
    else:  # a GDAL with Blosc reads it like the gzip cube
        assert 'ID["EPSG",32632]' in info["coordinateSystem"]["wkt"]
