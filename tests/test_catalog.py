"""STAC sources, search (static in-process and a real STAC API on 127.0.0.1), AOI and grid, reading."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from importlib import resources

import numpy as np
import pytest

from sarcube.datacube import catalog, load, schema
from sarcube.datacube.grid import grid_for, parse_aoi
from sarcube.datacube.redaction import redact, strip_query
from sarcube.datacube.retry import RETRY_BACKOFF_ENV, retry
from sarcube.errors import AssetReadError, CatalogError, InputError, NoItemsFoundError
from stac_server import item_collection_files, serve_stac, write_test_catalog

START = dt.datetime(2021, 1, 1, tzinfo=dt.UTC)
END = dt.datetime(2021, 1, 31, 23, 59, 59, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def test_catalog(tmp_path_factory):
    return write_test_catalog(tmp_path_factory.mktemp("stac") / "catalog")


@pytest.fixture(scope="module")
def api_url(test_catalog, tmp_path_factory):
    files = item_collection_files(test_catalog.catalog_json, tmp_path_factory.mktemp("api"))
    with serve_stac(files) as url:
        yield url


def test_planetary_computer_source_is_data():
    src = catalog.load_source("planetary-computer")
    assert src.kind == "api" and src.signing == "planetary_computer"
    assert src.url.startswith("https://planetarycomputer.microsoft.com")
    assert src.backscatter.collection == schema.COLLECTION_S1_RTC
    assert src.backscatter.assets == {schema.VV: schema.ASSET_VV, schema.VH: schema.ASSET_VH}
    assert src.backscatter.nodata == schema.S1_NODATA
    assert src.dem.collection == schema.COLLECTION_DEM and src.dem.assets[schema.DEM] == schema.ASSET_DEM
    assert src.dem.resampling == "bilinear"
    assert "planetary-computer" in catalog.known_sources()


def test_open_catalog_forms(test_catalog, monkeypatch):
    monkeypatch.setenv(RETRY_BACKOFF_ENV, "0")
    by_folder = catalog.open_catalog(str(test_catalog.root))
    by_file = catalog.open_catalog(str(test_catalog.catalog_json))
    assert isinstance(by_folder, catalog.StaticCatalog) and by_folder.label == by_file.label
    with pytest.raises(CatalogError, match="unknown catalog 'nowhere'.*planetary-computer"):
        catalog.open_catalog("nowhere")
    with pytest.raises(CatalogError, match="cannot open STAC API"):
        catalog.open_catalog("http://127.0.0.1:9")  # closed port: retried, then one clear error


def test_hrefs_never_keep_tokens():
    signed = "https://acct.blob.core.windows.net/c/a/vv.tif?st=2021&se=2021&sig=SECRET%3D"
    assert strip_query(signed) == "https://acct.blob.core.windows.net/c/a/vv.tif"
    assert "SECRET" not in redact(f"'/vsicurl/{signed}' not recognized as a supported file format")
    assert strip_query("/data/x.tif?sig=1") == "/data/x.tif"


def test_static_search_filters(test_catalog):
    cat = catalog.open_catalog(str(test_catalog.root))
    items = catalog.search_backscatter(cat, test_catalog.aoi, START, END)
    assert len(items) == 6
    asc = catalog.search_backscatter(cat, test_catalog.aoi, START, END, orbit_state=schema.ORBIT_ASCENDING)
    assert {i.properties["sat:orbit_state"] for i in asc} == {schema.ORBIT_ASCENDING} and len(asc) == 2
    few = catalog.search_backscatter(cat, test_catalog.aoi, START, dt.datetime(2021, 1, 7, tzinfo=dt.UTC))
    assert len(few) == 3
    with pytest.raises(
        NoItemsFoundError,
        match=r"none with sat:relative_orbit=99 \(available: ascending orbit 15; descending orbit 66\)",
    ):
        catalog.search_backscatter(cat, test_catalog.aoi, START, END, relative_orbit=99)
    with pytest.raises(NoItemsFoundError, match="no 'sentinel-1-rtc' items.*bbox"):
        catalog.search_backscatter(cat, (10.0, 10.0, 10.1, 10.1), START, END)
    with pytest.raises(InputError, match="outside collection 'sentinel-1-rtc'"):
        catalog.search_backscatter(
            cat, test_catalog.aoi, dt.datetime(2030, 1, 1, tzinfo=dt.UTC), dt.datetime(2030, 2, 1, tzinfo=dt.UTC)
        )
    assert [i.id for i in catalog.search_dem(cat, test_catalog.aoi)] == ["dem_tile"]


def test_api_search_equals_static_search(test_catalog, api_url):
    static = catalog.open_catalog(str(test_catalog.root))
    api = catalog.open_catalog(api_url)
    assert isinstance(api, catalog.ApiCatalog)
    api.source = replace(api.source, page_size=2)  # several pages: pystac-client follows "next" links
    ids = [i.id for i in catalog.search_backscatter(api, test_catalog.aoi, START, END)]
    assert ids == [i.id for i in catalog.search_backscatter(static, test_catalog.aoi, START, END)]
    desc = catalog.search_backscatter(
        api, test_catalog.aoi, START, END, orbit_state=schema.ORBIT_DESCENDING, relative_orbit=66
    )
    assert len(desc) == 4
    item = desc[0]
    first_static = catalog.search_backscatter(static, test_catalog.aoi, START, END)[0]
    assert catalog.asset_href(item, schema.ASSET_VV) == catalog.asset_href(first_static, schema.ASSET_VV)
    with pytest.raises(InputError, match="outside collection"):
        catalog.search_backscatter(
            api, test_catalog.aoi, dt.datetime(2030, 1, 1, tzinfo=dt.UTC), dt.datetime(2030, 2, 1, tzinfo=dt.UTC)
        )


def test_retry_backs_off_then_gives_up():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise OSError("connection reset")
        return "ok"

    assert retry(flaky, retry_on=(OSError,), attempts=4, backoff_s=0.0) == "ok" and len(calls) == 3
    calls.clear()
    with pytest.raises(OSError):
        retry(
            lambda: flaky() if False else (_ for _ in ()).throw(OSError("down")),
            retry_on=(OSError,),
            attempts=2,
            backoff_s=0.0,
        )


def test_grouping_mosaics_one_pass_per_day(test_catalog):
    cat = catalog.open_catalog(str(test_catalog.root))
    items = catalog.search_backscatter(cat, test_catalog.aoi, START, END)
    groups = load.group_acquisitions(items, cat.source.properties, lon=8.0)
    assert len(groups) == 5
    first = groups[0]
    assert (
        first.item_ids.count(",") == 1 and first.orbit_state == schema.ORBIT_DESCENDING and first.relative_orbit == 66
    )
    assert len({g.time for g in groups}) == 5


def test_aoi_parsing_and_grid(tmp_path):
    geom = parse_aoi("7.99,45.99,8.01,46.01")
    grid = grid_for(geom)
    assert grid.crs == "EPSG:32632" and grid.resolution == 20.0
    assert all(b % 20.0 == 0 for b in grid.bounds)
    assert grid_for(geom, crs="EPSG:2056", resolution=10).crs == "EPSG:2056"
    for bad, match in (
        ("8,46,7,47", "empty"),
        ("a,b,c,d", "not W,S,E,N"),
        ("7,46,8,95", "latitudes"),
    ):
        with pytest.raises(InputError, match=match):
            parse_aoi(bad)
    bowtie = tmp_path / "bowtie.geojson"
    bowtie.write_text(
        json.dumps({"type": "Polygon", "coordinates": [[[8, 46], [8.1, 46.1], [8.1, 46], [8, 46.1], [8, 46]]]})
    )
    with pytest.raises(InputError, match="not a valid polygon.*Self-intersection"):
        parse_aoi(str(bowtie))
    point = tmp_path / "point.geojson"
    point.write_text(
        json.dumps({"type": "Feature", "geometry": {"type": "Point", "coordinates": [8, 46]}, "properties": {}})
    )
    with pytest.raises(InputError, match="not a polygon"):
        parse_aoi(str(point))
    with pytest.raises(InputError, match="too large.*--force"):
        grid_for(parse_aoi("5,44,12,48"), resolution=10)
    with pytest.raises(InputError, match="--crs"):
        grid_for(geom, crs="EPSG:4326")


def test_to_db():
    out = load.to_db(np.array([1.0, 0.1, 0.0, -1.0, np.nan], dtype="float32"))
    np.testing.assert_allclose(out[:2], [0.0, -10.0], atol=1e-6)
    assert np.isnan(out[2:]).all() and out.dtype == np.float32


def test_load_masks_borders_and_mosaics(test_catalog):
    cat = catalog.open_catalog(str(test_catalog.root))
    items = catalog.search_backscatter(cat, test_catalog.aoi, START, END)
    first = load.group_acquisitions(items, cat.source.properties, lon=8.0)[0]
    # a grid over the whole frames: zero-filled columns and nodata rows become NaN
    grid = grid_for(parse_aoi("7.99,45.99,8.03,46.02"))
    vv = load.load_backscatter(first, cat, grid)[schema.VV].values[0]
    assert np.isfinite(vv).any() and np.nanmax(vv) < 0 and np.nanmin(vv) > -30
    inner = load.load_backscatter(first, cat, grid_for(parse_aoi(test_catalog.aoi)))[schema.VV].values
    assert np.isfinite(inner).all()  # the two frames' nodata edges are filled by each other


def test_unreadable_asset_is_named(test_catalog, tmp_path, monkeypatch):
    import shutil

    monkeypatch.setenv(RETRY_BACKOFF_ENV, "0")
    root = tmp_path / "copy"
    shutil.copytree(test_catalog.root, root)
    cat = catalog.open_catalog(str(root))
    items = catalog.search_backscatter(cat, test_catalog.aoi, START, END)
    victim = items[2]
    (root / "sentinel-1-rtc" / victim.id / "vh.tif").write_bytes(b"not a tiff")
    acq = next(a for a in load.group_acquisitions(items, cat.source.properties, 8.0) if victim in a.items)
    layers = load.load_backscatter(acq, cat, grid_for(parse_aoi(test_catalog.aoi)))
    assert np.isfinite(layers[schema.VV].values).all()  # the good asset reads
    with pytest.raises(AssetReadError, match=rf"asset 'vh' of STAC item '{victim.id}'.*after 4 tries"):
        layers[schema.VH].compute()


def test_third_party_logs_lose_query_strings(caplog):
    """odc-loader logs the href of a failed read: a signed one must not reach the log."""
    import logging

    signed = "https://acct.blob.core.windows.net/c/vv.tif?st=2021&sig=SECRET"
    with caplog.at_level(logging.WARNING, logger="odc.loader._rio"):
        logging.getLogger("odc.loader._rio").error(
            "Failed to load %s:%d due to rasterio error: '%s'", signed, 1, f"'{signed}' not recognized"
        )
    assert "SECRET" not in caplog.text and "vv.tif" in caplog.text


def test_catalog_yaml_is_checked_key_by_key(tmp_path):
    text = resources.files("sarcube.catalogs").joinpath("local.yaml").read_text()
    path = tmp_path / "mine.yaml"
    path.write_text(text.replace("page_size: 100", "page_size: 100\npagesize: 5"))
    with pytest.raises(CatalogError, match=r"mine.yaml.*unknown key\(s\) \['pagesize'\]"):
        catalog.load_source(path)
    path.write_text(text.replace("resampling: bilinear", "resampling: 3"))
    with pytest.raises(CatalogError, match=r"mine.yaml.*elevation.resampling: expected text"):
        catalog.load_source(path)
    path.write_text(text.replace("kind: static\n", ""))
    with pytest.raises(CatalogError, match=r"missing key\(s\) \['kind'\]"):
        catalog.load_source(path)
    path.write_text(text)
    assert catalog.load_source(path) == catalog.load_source("local")
