"""Every published STAC object validates offline against the core schemas and each extension it declares.

The extension schemas are vendored in ``tests/data/stac-schemas`` (see its
README); the core ones ship with pystac. xarray-assets' published schema cannot
validate a real item (it still requires its template's placeholder field), so
its two fields are checked directly.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pystac
import pytest
import xarray as xr
from referencing import Registry, Resource

from conftest import make_tiny_cube
from sarcube.datacube import schema, store
from sarcube.datacube.archive.stac import XARRAY_ASSETS_SCHEMA, XARRAY_OPEN_KWARGS
from sarcube.pipelines.publish import publish

SCHEMAS = Path(__file__).parent / "data" / "stac-schemas"
CORE = Path(pystac.__file__).parent / "validation" / "jsonschemas"
CORE_URL = "https://schemas.stacspec.org/v1.1.0"
ITEM_SCHEMA = f"{CORE_URL}/item-spec/json-schema/item.json"
COLLECTION_SCHEMA = f"{CORE_URL}/collection-spec/json-schema/collection.json"


def _registry() -> Registry:
    resources: dict[str, Resource] = {}
    for path in SCHEMAS.glob("*.json"):
        contents = json.loads(path.read_text())
        resources[contents["$id"].rstrip("#")] = Resource.from_contents(contents)
    for path in (CORE / "stac-spec" / "v1.1.0").glob("*.json"):
        spec = (
            "collection-spec"
            if path.stem == "collection"
            else "catalog-spec"
            if path.stem == "catalog"
            else "item-spec"
        )
        resources[f"{CORE_URL}/{spec}/json-schema/{path.name}"] = Resource.from_contents(json.loads(path.read_text()))
    for path in (CORE / "geojson").glob("*.json"):
        resources[f"https://geojson.org/schema/{path.name}"] = Resource.from_contents(json.loads(path.read_text()))
    return Registry().with_resources(resources.items())


REGISTRY = _registry()


def validate(obj: dict, core: str) -> list[str]:
    """Validate ``obj`` against ``core`` and each declared extension; returns the schemas used."""
    used = [core]
    for uri in obj.get("stac_extensions", []):
        if uri == XARRAY_ASSETS_SCHEMA:
            continue
        assert uri.rstrip("#") in REGISTRY, f"no offline schema for declared extension {uri}"
        used.append(uri)
    for uri in used:
        validator = jsonschema.Draft7Validator(
            {"$ref": uri}, registry=REGISTRY, format_checker=jsonschema.FormatChecker()
        )
        errors = sorted(validator.iter_errors(obj), key=str)
        assert not errors, f"{uri}: {errors[0].message}"
    return used


def _published(tmp_path: Path, ds: xr.Dataset) -> tuple[dict, dict, Path]:
    cube = tmp_path / "tiny.zarr"
    store.write_cube(ds, cube)
    out = tmp_path / "pub"
    publish(cube, out, title="Tiny cube", creators=["Doe, Jane"], publication_date="2026-01-15", progress=False)
    item = json.loads((out / "stac" / "tiny.json").read_text())
    collection = json.loads((out / "stac" / "collection.json").read_text())
    return item, collection, out


def test_mixed_orbit_archive_validates_against_every_declared_schema(tmp_path):
    item, collection, out = _published(tmp_path, make_tiny_cube())
    used = validate(item, ITEM_SCHEMA)
    assert (
        any("datacube" in u for u in used) and any("projection" in u for u in used) and any("file" in u for u in used)
    )
    assert not any("/sat/" in u for u in item["stac_extensions"])  # two orbits, two directions: no single sat value
    assert item["properties"]["sarcube:relative_orbits"] == [15, 66]
    used = validate(collection, COLLECTION_SCHEMA)
    assert any("/sat/" in u for u in used) and any("/sar/" in u for u in used)
    assert collection["summaries"]["sat:orbit_state"] == [schema.ORBIT_ASCENDING, schema.ORBIT_DESCENDING]


def test_single_orbit_archive_writes_sat_fields_and_opens_from_its_xarray_kwargs(tmp_path):
    ds = make_tiny_cube()
    one = ds[schema.RELATIVE_ORBIT].values == 15
    ds = ds.isel({schema.TIME: np.flatnonzero(one)})
    item, collection, out = _published(tmp_path, ds)
    validate(item, ITEM_SCHEMA)
    validate(collection, COLLECTION_SCHEMA)
    props = item["properties"]
    assert props["sat:orbit_state"] == schema.ORBIT_ASCENDING and props["sat:relative_orbit"] == 15
    asset = item["assets"]["zarr-zip"]
    assert asset["type"] == pystac.MediaType.ZARR
    kwargs = asset["xarray:open_kwargs"]
    assert isinstance(kwargs, dict) and kwargs == XARRAY_OPEN_KWARGS and XARRAY_ASSETS_SCHEMA in item["stac_extensions"]
    href = (out / "stac" / asset["href"]).resolve()
    opened = xr.open_dataset(f"zip::{href}", **kwargs)
    np.testing.assert_array_equal(opened[schema.VV].values, ds[schema.VV].values)


def test_a_broken_item_fails_validation(tmp_path):
    """The validator is not a no-op: a wrong sat value is caught offline."""
    item, _, _ = _published(tmp_path, make_tiny_cube().isel({schema.TIME: [0, 2]}))
    item["properties"]["sat:orbit_state"] = "sideways"
    with pytest.raises(AssertionError, match="sat"):
        validate(item, ITEM_SCHEMA)
