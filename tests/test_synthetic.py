"""The embedded demo scene: valid STAC shaped like Planetary Computer's, physics that shows, determinism."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
import shapely
from pyproj import Transformer
from rasterio.features import rasterize
from sarcube.datacube import schema
from sarcube.datacube.composite import change_composite
from sarcube.datacube.synthetic import DemoManifest, read_demo_manifest, write_demo_catalog
from sarcube.pipelines import cli

from sarcube.errors import InputError

SIZE = 128
#: item properties the build step reads, as on PC's sentinel-1-rtc items
S1_PROPERTIES = (
    "datetime",
    schema.PLATFORM,
    "sat:orbit_state",
    "sat:relative_orbit",
    "sar:instrument_mode",
    "sar:polarizations",
    "sar:frequency_band",
    "sar:product_type",
    "proj:code",
    "proj:shape",
    "proj:transform",
    "proj:bbox",
)


@pytest.fixture(scope="module")
def avalanche(tmp_path_factory) -> DemoManifest:
    out = tmp_path_factory.mktemp("demo") / "avalanche"
    catalog = write_demo_catalog(out, seed=0, size=SIZE, dates=8)
    assert catalog == out / "catalog.json"
    return read_demo_manifest(out)


def _stac_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.json") if p.name != "sarcube-demo.json")


def _read_db(path: str) -> np.ndarray:
    with rasterio.open(path) as src:
        lin = src.read(1).astype(np.float64)
    db = np.full(lin.shape, np.nan)
    ok = (lin > 0) & (lin != schema.S1_NODATA)
    db[ok] = 10 * np.log10(lin[ok])
    return db


def _s1_items(manifest: DemoManifest) -> list[pystac.Item]:
    cat = pystac.Catalog.from_file(str(manifest.catalog))
    return sorted(cat.get_child(schema.COLLECTION_S1_RTC).get_items(), key=lambda i: i.datetime)


def _burn(manifest: DemoManifest, geoms: list, value_grid_from: str) -> np.ndarray:
    with rasterio.open(value_grid_from) as src:
        transform, shape = src.transform, src.shape
    tr = Transformer.from_crs(4326, manifest.crs, always_xy=True)
    utm = [shapely.transform(g, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1]))) for g in geoms]
    return rasterize(((g, 1) for g in utm), out_shape=shape, transform=transform, fill=0, dtype="uint8").astype(bool) if utm else np.zeros(shape, bool)


def test_catalog_is_valid_stac_offline(avalanche):
    """Core STAC 1.1 schemas (bundled with pystac, no download) for every object,
    plus the checks the (online) extension schemas would make on the fields we use."""
    from pystac.validation.stac_validator import JsonSchemaSTACValidator

    validator = JsonSchemaSTACValidator()
    kinds = {"Feature": pystac.STACObjectType.ITEM, "Collection": pystac.STACObjectType.COLLECTION, "Catalog": pystac.STACObjectType.CATALOG}
    files = _stac_files(avalanche.catalog.parent)
    assert len(files) == 1 + 2 + 8 + 1  # catalog, 2 collections, 8 S1 items, 1 DEM item
    for path in files:
        doc = json.loads(path.read_text())
        validator.validate_core(doc, kinds[doc["type"]], doc["stac_version"], str(path))
        text = path.read_text()
        assert str(avalanche.catalog.parent) not in text, f"{path} holds an absolute path"
        for link in doc["links"]:
            assert not link["href"].startswith("/"), link
    # rustac (offline it knows the core schemas only): the catalog and an item without its extensions
    rustac = shutil.which("rustac")
    if rustac:
        assert subprocess.run([rustac, "validate", str(avalanche.catalog)], capture_output=True).returncode == 0
        item = json.loads(next(p for p in files if "S1" in p.name).read_text())
        item["stac_extensions"] = []
        stripped = avalanche.catalog.parent / "stripped-item.json.txt"
        stripped.write_text(json.dumps(item))
        try:
            proc = subprocess.run([rustac, "validate", "-i", "json", str(stripped)], capture_output=True, text=True)
        finally:
            stripped.unlink()
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_items_look_like_planetary_computer(avalanche):
    items = _s1_items(avalanche)
    assert len(items) == 8
    orbits = {}
    for item in items:
        for key in S1_PROPERTIES:
            assert key in item.properties, f"{item.id} lacks {key}"
        p = item.properties
        assert p[schema.PLATFORM] in ("SENTINEL-1A", "SENTINEL-1B")
        assert p["sar:instrument_mode"] == "IW" and p["sar:polarizations"] == ["VV", "VH"]
        assert p["proj:code"] == avalanche.crs and p["proj:shape"] == [SIZE, SIZE]
        assert item.id.startswith(p[schema.PLATFORM].replace("SENTINEL-", "S")) and item.id.endswith("_rtc")
        assert any(ext.startswith("https://stac-extensions.github.io/sar/") for ext in item.stac_extensions)
        orbits.setdefault((p["sat:relative_orbit"], p["sat:orbit_state"]), []).append(item.datetime)
        assert shapely.geometry.shape(item.geometry).exterior.is_ccw  # RFC 7946 winding
        assert set(item.assets) == {schema.ASSET_VV, schema.ASSET_VH}
        for asset in item.assets.values():
            assert asset.media_type == "image/tiff; application=geotiff; profile=cloud-optimized"
            assert asset.roles == ["data"]
            assert asset.extra_fields["raster:bands"][0]["nodata"] == schema.S1_NODATA
            assert not Path(asset.href).is_absolute()
    # one ascending and one descending relative orbit on a 6-day repeat
    assert {state for _, state in orbits} == {schema.ORBIT_ASCENDING, schema.ORBIT_DESCENDING}
    for times in orbits.values():
        gaps = {(b - a).days for a, b in zip(times[1:], times[2:], strict=False)}
        assert gaps <= {6}
    # every acquisition inside the manifest's dates, and the summer window holds some
    assert all(avalanche.start <= f"{i.datetime:%Y-%m-%d}" <= avalanche.end for i in items)
    assert any(avalanche.summer[0] <= f"{i.datetime:%Y-%m-%d}" <= avalanche.summer[1] for i in items)


def test_pystac_client_reads_the_catalog(avalanche):
    from pystac_client import Client

    client = Client.from_file(str(avalanche.catalog))
    assert {c.id for c in client.get_collections()} == {schema.COLLECTION_S1_RTC, schema.COLLECTION_DEM}
    dem_items = list(client.get_collection(schema.COLLECTION_DEM).get_items())
    assert len(dem_items) == 1
    dem = dem_items[0]
    assert dem.properties["proj:code"] == "EPSG:4326" and schema.ASSET_DEM in dem.assets
    with rasterio.open(dem.assets[schema.ASSET_DEM].get_absolute_href()) as src:
        assert src.crs.to_epsg() == 4326 and src.dtypes[0] == "float32"
        z = src.read(1)
        # the DEM tile covers the AOI the manifest proposes
        w, s, e, n = avalanche.bbox_lonlat
        left, bottom, right, top = src.bounds
        assert left < w and bottom < s and right > e and top > n
    assert np.isfinite(z).all() and z.max() - z.min() > 200.0
    # the proposed AOI lies inside the scene, and covers nearly all of it
    to_utm = Transformer.from_crs(4326, avalanche.crs, always_xy=True)
    xs, ys = to_utm.transform([w, e, w, e], [s, s, n, n])
    sl, sb, sr, st = avalanche.bbox
    assert min(xs) >= sl and max(xs) <= sr and min(ys) >= sb and max(ys) <= st
    assert (max(xs) - min(xs)) > 0.95 * (sr - sl)
    s1 = list(client.get_collection(schema.COLLECTION_S1_RTC).get_items())
    with rasterio.open(s1[0].assets[schema.ASSET_VV].get_absolute_href()) as src:
        assert src.crs.to_string() == avalanche.crs and src.res == (20.0, 20.0)
        assert src.nodata == schema.S1_NODATA and src.dtypes[0] == "float32"
        assert src.profile["tiled"] and src.compression.name.lower() == "zstd"


def test_terrain_is_alpine():
    """The default scene's DEM: >= 1500 m relief, slopes up to ~60 degrees, release terrain."""
    from sarcube.datacube.synthetic.terrain import alpine_dem, slope_aspect

    x = 500_000 + 20.0 * np.arange(512)
    y = 5_140_000 - 20.0 * np.arange(512)
    z = alpine_dem(x, y, np.random.default_rng([0, 1]))
    slope, _ = slope_aspect(z, 20.0)
    assert z.max() - z.min() > 1500.0
    assert 50.0 < np.percentile(slope, 99.5) < 75.0
    assert 0.1 < ((slope >= 30) & (slope <= 50)).mean() < 0.6


def test_debris_is_brighter_after_the_event(avalanche):
    """Inside debris vs a ring around it: activity minus reference > 2 dB; the
    pair before (reference minus the acquisition before it) shows nothing."""
    items = _s1_items(avalanche)
    feats = json.loads(avalanche.labels.read_text())["features"]
    assert feats and all({"date", "area_m2", "event_id"} <= set(f["properties"]) for f in feats)
    by_orbit: dict[int, list[pystac.Item]] = {}
    for item in items:
        by_orbit.setdefault(item.properties["sat:relative_orbit"], []).append(item)
    contrasts, before = [], []
    for seq in by_orbit.values():
        for prev, ref, act in zip(seq[:-2], seq[1:-1], seq[2:], strict=True):
            lo, hi = np.datetime64(ref.datetime.replace(tzinfo=None)), np.datetime64(act.datetime.replace(tzinfo=None))
            new = [shapely.geometry.shape(f["geometry"]) for f in feats if lo < np.datetime64(f["properties"]["date"]) <= hi]
            # debris of earlier events on the same spot would show in the pair before
            older = [shapely.geometry.shape(f["geometry"]) for f in feats if np.datetime64(f["properties"]["date"]) <= lo]
            new = [g for g in new if not any(g.intersects(o) for o in older)]
            if not new:
                continue
            href = act.assets[schema.ASSET_VV].get_absolute_href()
            inside = _burn(avalanche, new, href)
            ring = _burn(avalanche, [g.buffer(0.004) for g in new], href) & ~_burn(avalanche, [shapely.geometry.shape(f["geometry"]).buffer(0.0005) for f in feats], href)
            d_act = _read_db(href) - _read_db(ref.assets[schema.ASSET_VV].get_absolute_href())
            d_ref = _read_db(ref.assets[schema.ASSET_VV].get_absolute_href()) - _read_db(prev.assets[schema.ASSET_VV].get_absolute_href())
            contrasts.append(np.nanmean(d_act[inside]) - np.nanmean(d_act[ring]))
            before.append(np.nanmean(d_ref[inside]) - np.nanmean(d_ref[ring]))
    assert contrasts, "no pair with new debris"
    assert np.mean(contrasts) > 2.0, contrasts
    assert abs(np.mean(before)) < 1.0, before


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    def digest(folder: Path) -> dict[str, str]:
        return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}

    a = digest(write_demo_catalog(tmp_path / "a", seed=3, size=SIZE, dates=6).parent)
    b = digest(write_demo_catalog(tmp_path / "b", seed=3, size=SIZE, dates=6).parent)
    c = digest(write_demo_catalog(tmp_path / "c", seed=4, size=SIZE, dates=6).parent)
    assert a == b
    assert a["labels.geojson"] != c["labels.geojson"]
    assert {k for k in a if k.endswith("_vv.tif")} == {k for k in c if k.endswith("_vv.tif")}  # same dates and ids
    assert all(a[k] != c[k] for k in a if k.endswith(".tif"))


def test_landslide_scene(tmp_path):
    manifest = read_demo_manifest(write_demo_catalog(tmp_path / "ls", size=SIZE, dates=6, hazard="landslide"))
    assert manifest.hazard == "landslide" and manifest.event_date == "2020-10-02"
    assert manifest.start < manifest.event_date <= manifest.end
    catalog = json.loads(manifest.catalog.read_text())
    assert catalog["sarcube:event_date"] == manifest.event_date
    feats = json.loads(manifest.labels.read_text())["features"]
    assert len(feats) >= 5 and all("date" not in f["properties"] and f["properties"]["area_m2"] > 0 for f in feats)
    # scars change lastingly: |mean after - mean before| is larger inside than outside
    items = [i for i in _s1_items(manifest) if i.properties["sat:relative_orbit"] == 66]
    event = np.datetime64(manifest.event_date)
    stack = {i.datetime: _read_db(i.assets[schema.ASSET_VV].get_absolute_href()) for i in items}
    before = np.nanmean([v for t, v in stack.items() if np.datetime64(t.replace(tzinfo=None)) < event], axis=0)
    after = np.nanmean([v for t, v in stack.items() if np.datetime64(t.replace(tzinfo=None)) > event], axis=0)
    inside = _burn(manifest, [shapely.geometry.shape(f["geometry"]) for f in feats], items[0].assets[schema.ASSET_VV].get_absolute_href())
    change = np.abs(after - before)
    assert np.nanmean(change[inside]) > np.nanmean(change[~inside]) + 1.0


def test_glacier_scene(tmp_path):
    manifest = read_demo_manifest(write_demo_catalog(tmp_path / "gl", size=SIZE, dates=12, hazard="glacier"))
    feats = json.loads(manifest.labels.read_text())["features"]
    assert feats and all("date" not in f["properties"] for f in feats)
    assert manifest.event_date is None
    items = [i for i in _s1_items(manifest) if i.properties["sat:relative_orbit"] == 66]
    assert (items[-1].datetime - items[0].datetime).days > 300  # a year of acquisitions
    inside = _burn(manifest, [shapely.geometry.shape(f["geometry"]) for f in feats], items[0].assets[schema.ASSET_VV].get_absolute_href())
    assert inside.mean() > 0.02
    # ice: bright firn in winter, dark melt in summer; rock varies much less
    winter = np.nanmean([_read_db(i.assets[schema.ASSET_VV].get_absolute_href()) for i in items if i.datetime.month in (12, 1, 2)], axis=0)
    summer = np.nanmean([_read_db(i.assets[schema.ASSET_VV].get_absolute_href()) for i in items if i.datetime.month in (7, 8)], axis=0)
    swing = winter - summer
    assert np.nanmean(swing[inside]) > np.nanmean(swing[~inside]) + 3.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"size": 16}, "--size"),
        ({"hazard": "flood"}, "--hazard"),
        ({"dates": 2}, "--dates"),
        ({"resolution": 0.5}, "--resolution"),
        ({"seed": -1}, "--seed"),
    ],
)
def test_bad_input_is_one_line(tmp_path, kwargs, match):
    with pytest.raises(InputError, match=match) as info:
        write_demo_catalog(tmp_path / "out", **kwargs)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_refuses_non_empty_output(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not an empty folder"):
        write_demo_catalog(tmp_path / "out", size=SIZE)
    assert cli.main(["demo-catalog", str(tmp_path / "out"), "--size", str(SIZE)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "empty folder" in err[0]
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"
    assert cli.main(["demo-catalog", str(tmp_path / "new"), "--hazard", "flood"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "avalanche, landslide, glacier" in err[0]
    with pytest.raises(InputError, match="no sarcube-demo.json"):
        read_demo_manifest(tmp_path / "out")


def test_change_composite():
    ref = np.full((4, 5), -15.0)
    act = ref.copy()
    act[1, 1] = -8.0
    act[2, 2] = np.nan
    rgb = change_composite(ref, act)
    assert rgb.shape == (4, 5, 3) and rgb.min() >= 0.0 and rgb.max() <= 1.0
    assert rgb[1, 1, 1] > rgb[1, 1, 0] == rgb[1, 1, 2]  # debris is green
    assert np.allclose(rgb[0, 0], 0.5)  # -15 dB is mid-grey on [-25, -5]
    assert (rgb[2, 2] == 0).all()  # NaN is black
    with pytest.raises(InputError):
        change_composite(ref, act[:2])


def test_cli_writes_catalog_and_preview(tmp_path, capsys):
    out, png = tmp_path / "cat", tmp_path / "pair.png"
    assert cli.main(["demo-catalog", str(out), "--size", str(SIZE), "--dates", "8", "--seed", "1", "--preview", str(png)]) == 0
    text = capsys.readouterr().out
    assert "catalog.json" in text and "aoi" in text
    import matplotlib.image as mpimg

    img = mpimg.imread(png)
    assert img.shape[0] > 500 and img.shape[1] > 500
    assert read_demo_manifest(out / "catalog.json") == read_demo_manifest(out)
