"""The cube contract: round trip through zarr, validation errors, safe variable writes."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from conftest import make_tiny_cube
from sarcube.datacube import schema, staging, store, zarrio
from sarcube.errors import CubeExistsError, CubeSchemaError, InputError, MissingVariableError

REPO = Path(__file__).resolve().parents[1]


def test_roundtrip_keeps_contract(tiny_cube):
    ds = schema.open_cube(tiny_cube)
    src = make_tiny_cube()
    for name in (schema.VV, schema.VH, schema.DEM):
        np.testing.assert_array_equal(ds[name].values, src[name].values)
        assert ds[name].attrs["units"] == schema.VARIABLES[name].units
        assert ds[name].dtype == np.float32
    assert list(ds[schema.PLATFORM].values) == list(src[schema.PLATFORM].values)
    assert ds[schema.RELATIVE_ORBIT].dtype == np.int32
    assert (ds[schema.TIME].values == src[schema.TIME].values).all()
    assert ds.rio.crs.to_epsg() == 32632
    assert ds.rio.resolution() == (20.0, -20.0)
    # contract chunks: 1 along time, 512 (clipped) in space
    assert ds[schema.VV].encoding["chunks"] == (1, 24, 32)


def test_rioxarray_reads_georeferencing(tiny_cube):
    import rioxarray  # noqa: F401

    da = xr.open_zarr(tiny_cube, decode_coords="all")[schema.DEM]
    assert da.rio.crs.to_epsg() == 32632
    left, bottom, right, top = da.rio.bounds()
    assert (left, top) == (600_000.0, 5_100_000.0)


def test_encoding_is_blosc_zstd(tiny_cube):
    meta = json.loads((tiny_cube / schema.VV / "zarr.json").read_text())
    codecs = [c["name"] for c in meta["codecs"]]
    assert "blosc" in codecs
    blosc = next(c for c in meta["codecs"] if c["name"] == "blosc")
    assert blosc["configuration"]["cname"] == "zstd"
    assert meta["dimension_names"] == [schema.TIME, schema.Y, schema.X]


def test_validate_names_offending_variable():
    ds = make_tiny_cube()
    ds[schema.DEM] = ds[schema.DEM].astype("float64")
    with pytest.raises(CubeSchemaError, match=r"'dem'.*dtype float64.*float32"):
        schema.validate_cube(ds)
    ds = make_tiny_cube()
    ds[schema.VV].attrs["units"] = "linear"
    with pytest.raises(CubeSchemaError, match=r"'vv'.*units 'linear'.*'dB'"):
        schema.validate_cube(ds)
    ds = make_tiny_cube()
    ds[schema.SLOPE] = schema.make_variable(schema.SLOPE, ds[schema.VV].isel({schema.TIME: 0}, drop=True))
    schema.validate_cube(ds)  # slope on (y, x) is fine
    ds[schema.VV_DIFF] = ds[schema.VV]  # wrong dims: time instead of pair
    with pytest.raises(CubeSchemaError, match=r"'vv_diff'.*dims"):
        schema.validate_cube(ds)


def test_validate_missing_pieces():
    ds = make_tiny_cube().drop_vars(schema.SPATIAL_REF)
    with pytest.raises(CubeSchemaError, match="spatial_ref"):
        schema.validate_cube(ds)
    ds = make_tiny_cube().drop_vars(schema.PLATFORM)
    with pytest.raises(CubeSchemaError, match="'platform'"):
        schema.validate_cube(ds)
    with pytest.raises(MissingVariableError, match=r"\['par'\].*sarcube features --par"):
        schema.validate_cube(make_tiny_cube(), require=[schema.PAR])


def test_open_cube_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        schema.open_cube(tmp_path / "nope.zarr")
    (tmp_path / "junk.zarr").mkdir()
    with pytest.raises(CubeSchemaError, match="not a readable Zarr v3 cube"):
        schema.open_cube(tmp_path / "junk.zarr")


def test_write_refuses_existing(tiny_cube):
    with pytest.raises(CubeExistsError, match="--overwrite"):
        store.write_cube(make_tiny_cube(), tiny_cube)
    store.write_cube(make_tiny_cube(seed=1), tiny_cube, overwrite=True)
    np.testing.assert_array_equal(
        schema.open_cube(tiny_cube)[schema.VV].values, make_tiny_cube(seed=1)[schema.VV].values
    )


def test_add_variables_and_recompute(tiny_cube):
    ds = schema.open_cube(tiny_cube)
    slope = schema.make_variable(schema.SLOPE, np.full((24, 32), 12.0), parameters={"method": "horn"})
    store.add_variables(tiny_cube, {schema.SLOPE: slope})
    out = schema.open_cube(tiny_cube)
    assert float(out[schema.SLOPE].mean()) == 12.0
    assert json.loads(out[schema.SLOPE].attrs[schema.ATTR_PARAMETERS]) == {"method": "horn"}
    with pytest.raises(CubeExistsError, match="--overwrite"):
        store.add_variables(tiny_cube, {schema.SLOPE: slope})
    store.add_variables(tiny_cube, {schema.SLOPE: slope + 1.0}, overwrite=True)
    out = schema.open_cube(tiny_cube)
    assert float(out[schema.SLOPE].mean()) == 13.0
    np.testing.assert_array_equal(out[schema.VV].values, ds[schema.VV].values)


def test_add_variables_with_new_dimension(tiny_cube):
    coords = schema.pair_coords(
        [np.datetime64("2020-01-01T05:00")], [np.datetime64("2020-01-07T05:00")], [15]
    )
    diff = schema.make_variable(schema.VV_DIFF, np.ones((1, 24, 32)), (schema.PAIR, schema.Y, schema.X))
    store.add_variables(tiny_cube, {schema.VV_DIFF: diff}, new_coords=coords)
    out = schema.open_cube(tiny_cube)
    assert out.sizes[schema.PAIR] == 1
    assert out[schema.ACTIVITY_TIME].values[0] == np.datetime64("2020-01-07T05:00")


def test_failed_write_leaves_cube_unchanged(tiny_cube):
    import dask.array as da

    before = sorted(schema.open_cube(tiny_cube).data_vars)

    def explode(block):
        raise RuntimeError("disk on fire")

    bad = da.zeros((24, 32), chunks=(12, 32), dtype="float32").map_blocks(explode, dtype="float32")
    par = schema.make_variable(schema.PAR, xr.DataArray(bad, dims=(schema.Y, schema.X)))
    with pytest.raises(RuntimeError, match="disk on fire"):
        store.add_variables(tiny_cube, {schema.PAR: par})
    after = schema.open_cube(tiny_cube)
    assert sorted(after.data_vars) == before
    # the next write cleans the staging leftovers and succeeds
    store.add_variables(tiny_cube, {schema.PAR: schema.make_variable(schema.PAR, np.zeros((24, 32)))})
    assert not (tiny_cube / staging.STAGING_GROUP).exists()


def test_add_variable_on_wrong_grid(tiny_cube):
    wrong = schema.make_variable(schema.SLOPE, np.zeros((10, 10)))
    with pytest.raises(CubeSchemaError, match="reproject"):
        store.add_variables(tiny_cube, {schema.SLOPE: wrong})


def test_prediction_and_external_names():
    assert schema.prediction_name("fcn") == schema.PRED_PREFIX + "fcn"
    with pytest.raises(InputError, match="--name"):
        schema.prediction_name("bad name")
    with pytest.raises(InputError, match="reserved"):
        schema.external_spec(schema.PAR, (schema.Y, schema.X))
    spec = schema.external_spec("coherence", (schema.PAIR, schema.Y, schema.X))
    assert spec.dims == ((schema.PAIR, schema.Y, schema.X),)


def _contract_literals() -> set[str]:
    names = set(schema.VARIABLES) | {
        schema.PAIR,
        schema.SPATIAL_REF,
        schema.PLATFORM,
        schema.ORBIT_STATE,
        schema.RELATIVE_ORBIT,
        schema.ITEM_ID,
        schema.REFERENCE_TIME,
        schema.ACTIVITY_TIME,
        schema.PAIR_RELATIVE_ORBIT,
        schema.PRED_PREFIX,
    }
    return names


def test_no_variable_name_literals_outside_schema():
    """`schema` alone spells the contract's names."""
    literals = _contract_literals()
    offenders = []
    for folder in ("sarcube", "datacube", "models", "pipelines", "benchmarks"):
        for path in (REPO / folder).rglob("*.py"):
            if path.parent == REPO / "datacube" / "schema":
                continue
            tree = ast.parse(path.read_text(), filename=str(path))
            docstrings = {
                id(node.body[0].value)
                for node in ast.walk(tree)
                if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                and node.body
                and isinstance(node.body[0], ast.Expr)
                and isinstance(node.body[0].value, ast.Constant)
            }
            # the package's lazy table names its modules, one of which (``par``) shares a contract name
            modules = {m.stem for m in path.parent.iterdir()} if path.name == "__init__.py" else set()
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                    if node.value in literals and node.value not in modules:
                        offenders.append(f"{path.relative_to(REPO)}:{node.lineno} {node.value!r}")
    assert not offenders, "contract names spelled outside schema:\n" + "\n".join(offenders)


def test_update_attrs_keeps_consolidated_metadata(tiny_cube):
    store.update_attrs(tiny_cube, {schema.ATTR_TITLE: "renamed"})
    meta = json.loads((tiny_cube / "zarr.json").read_text())
    assert "consolidated_metadata" in meta and schema.VV in meta["consolidated_metadata"]["metadata"]
    ds = xr.open_zarr(tiny_cube, consolidated=True)
    assert ds.attrs[schema.ATTR_TITLE] == "renamed"
    store.remove_attrs(tiny_cube, [schema.ATTR_TITLE])
    assert schema.ATTR_TITLE not in xr.open_zarr(tiny_cube, consolidated=True).attrs
    store.append_history(tiny_cube, "checked")
    assert schema.open_cube(tiny_cube).attrs[schema.ATTR_HISTORY].endswith("checked")


def test_store_on_fsspec_memory():
    url = "memory://sarcube-test/tiny.zarr"
    store.write_cube(make_tiny_cube(), url, overwrite=True)
    store.add_variables(url, {schema.SLOPE: schema.make_variable(schema.SLOPE, np.full((24, 32), 3.0))})
    store.update_attrs(url, {schema.ATTR_TITLE: "in memory"})
    ds = schema.open_cube(url)
    assert float(ds[schema.SLOPE].mean()) == 3.0 and ds.attrs[schema.ATTR_TITLE] == "in memory"
    zarrio.remove(url)
