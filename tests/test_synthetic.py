"""The embedded demo scene: valid STAC shaped like Planetary Computer's, physics that shows, determinism."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import replace
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
from sarcube.datacube.synthetic import (
    DemoManifest,
    backscatter,
    events,
    read_demo_manifest,
    sar,
    snow,
    write_demo_catalog,
)
from sarcube.datacube.synthetic.hazards import LABEL_EVENT_ID
from sarcube.datacube.synthetic.scene import scene_model
from sarcube.errors import InputError
from sarcube.pipelines import cli

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
    return (
        rasterize(((g, 1) for g in utm), out_shape=shape, transform=transform, fill=0, dtype="uint8").astype(bool)
        if utm
        else np.zeros(shape, bool)
    )


def test_catalog_is_valid_stac_offline(avalanche):
    """Core STAC 1.1 schemas (bundled with pystac, no download) for every object,
    plus the checks the (online) extension schemas would make on the fields we use."""
    from pystac.validation.stac_validator import JsonSchemaSTACValidator

    validator = JsonSchemaSTACValidator()
    kinds = {
        "Feature": pystac.STACObjectType.ITEM,
        "Collection": pystac.STACObjectType.COLLECTION,
        "Catalog": pystac.STACObjectType.CATALOG,
    }
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
            new = [
                shapely.geometry.shape(f["geometry"])
                for f in feats
                if lo < np.datetime64(f["properties"]["date"]) <= hi
            ]
            # debris of earlier events on the same spot would show in the pair before
            older = [
                shapely.geometry.shape(f["geometry"]) for f in feats if np.datetime64(f["properties"]["date"]) <= lo
            ]
            new = [g for g in new if not any(g.intersects(o) for o in older)]
            if not new:
                continue
            href = act.assets[schema.ASSET_VV].get_absolute_href()
            inside = _burn(avalanche, new, href)
            ring = _burn(avalanche, [g.buffer(0.004) for g in new], href) & ~_burn(
                avalanche, [shapely.geometry.shape(f["geometry"]).buffer(0.0005) for f in feats], href
            )
            d_act = _read_db(href) - _read_db(ref.assets[schema.ASSET_VV].get_absolute_href())
            d_ref = _read_db(ref.assets[schema.ASSET_VV].get_absolute_href()) - _read_db(
                prev.assets[schema.ASSET_VV].get_absolute_href()
            )
            contrasts.append(np.nanmean(d_act[inside]) - np.nanmean(d_act[ring]))
            before.append(np.nanmean(d_ref[inside]) - np.nanmean(d_ref[ring]))
    assert contrasts, "no pair with new debris"
    assert np.mean(contrasts) > 2.0, contrasts
    assert abs(np.mean(before)) < 1.0, before


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    def digest(folder: Path) -> dict[str, str]:
        return {
            str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        }

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
    inside = _burn(
        manifest,
        [shapely.geometry.shape(f["geometry"]) for f in feats],
        items[0].assets[schema.ASSET_VV].get_absolute_href(),
    )
    change = np.abs(after - before)
    assert np.nanmean(change[inside]) > np.nanmean(change[~inside]) + 1.0


def test_glacier_scene(tmp_path):
    manifest = read_demo_manifest(write_demo_catalog(tmp_path / "gl", size=SIZE, dates=12, hazard="glacier"))
    feats = json.loads(manifest.labels.read_text())["features"]
    assert feats and all("date" not in f["properties"] for f in feats)
    assert manifest.event_date is None
    items = [i for i in _s1_items(manifest) if i.properties["sat:relative_orbit"] == 66]
    assert (items[-1].datetime - items[0].datetime).days > 300  # a year of acquisitions
    inside = _burn(
        manifest,
        [shapely.geometry.shape(f["geometry"]) for f in feats],
        items[0].assets[schema.ASSET_VV].get_absolute_href(),
    )
    assert inside.mean() > 0.02
    # ice: bright firn in winter, dark melt in summer; rock varies much less
    winter = np.nanmean(
        [_read_db(i.assets[schema.ASSET_VV].get_absolute_href()) for i in items if i.datetime.month in (12, 1, 2)],
        axis=0,
    )
    summer = np.nanmean(
        [_read_db(i.assets[schema.ASSET_VV].get_absolute_href()) for i in items if i.datetime.month in (7, 8)], axis=0
    )
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
    assert (
        cli.main(["demo-catalog", str(out), "--size", str(SIZE), "--dates", "8", "--seed", "1", "--preview", str(png)])
        == 0
    )
    text = capsys.readouterr().out
    assert "catalog.json" in text and "aoi" in text
    import matplotlib.image as mpimg

    img = mpimg.imread(png)
    assert img.shape[0] > 500 and img.shape[1] > 500
    assert read_demo_manifest(out / "catalog.json") == read_demo_manifest(out)


# --- the scene's numbers (issue 14: a scene grounded in published numbers) ------------------------



def _enl_and_lag1(i1: np.ndarray, i2: np.ndarray) -> tuple[float, float, float]:
    """ENL and lag-1 correlations (along rows, along columns) of the speckle of two dates of the same
    surface: for independent unit-mean speckle, E[I1 I2] = mu^2 and E[(I1 - I2)^2] = 2 mu^2 / ENL,
    and I1 - I2 carries the speckle's spatial correlation."""
    ok = np.isfinite(i1) & np.isfinite(i2)
    i1 = np.where(ok, i1 / np.median(i1[ok]), np.nan)  # each date's calibration offset
    i2 = np.where(ok, i2 / np.median(i2[ok]), np.nan)
    enl = 2.0 * np.nansum(i1 * i2) / np.nansum((i1 - i2) ** 2)
    d = i1 - i2

    def lag1(a: np.ndarray, b: np.ndarray) -> float:
        m = np.isfinite(a) & np.isfinite(b)
        return float(np.corrcoef(a[m], b[m])[0, 1])

    return float(enl), lag1(d[:, :-1], d[:, 1:]), lag1(d[:-1], d[1:])


def test_speckle_kernel_gives_the_target_enl_and_correlation():
    """Over a flat homogeneous area: mean^2 / var of linear intensity is the target ENL, and
    neighbours correlate as targeted, along both axes (the diagonal much less)."""
    s = sar.correlated_speckle((512, 512), sar.SPECKLE_ENL_20M, sar.SPECKLE_LAG1_CORRELATION, np.random.default_rng(5))
    assert abs(s.mean() - 1.0) < 0.01
    assert s.mean() ** 2 / s.var() == pytest.approx(sar.SPECKLE_ENL_20M, rel=0.05)
    for a, b in ((s[:, :-1], s[:, 1:]), (s[:-1], s[1:])):
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] == pytest.approx(sar.SPECKLE_LAG1_CORRELATION, abs=0.02)
    assert np.corrcoef(s[:-1, :-1].ravel(), s[1:, 1:].ravel())[0, 1] < 0.15
    # not the white 4.4 x 4 = 17.6 of independent 10 m pixels, and GRDH's ENL for finer cells
    assert sar.speckle_enl(20.0) == sar.SPECKLE_ENL_20M < sar.GRDH_ENL * 4
    assert sar.speckle_enl(10.0) == sar.GRDH_ENL


def test_scene_speckle_measured_from_two_snow_free_dates(tmp_path):
    """The written COGs: two August dates of one orbit differ only by speckle and calibration; their
    ENL and lag-1 correlation match the constants, and the items say the same ENL."""
    manifest = read_demo_manifest(write_demo_catalog(tmp_path / "spk", seed=2, size=SIZE, dates=10))
    items = _s1_items(manifest)
    assert {i.properties["sar:looks_equivalent_number"] for i in items} == {sar.SPECKLE_ENL_20M}
    for orbit in (66, 88):
        a, b = [i for i in items if i.properties["sat:relative_orbit"] == orbit][:2]
        assert manifest.summer[0] <= f"{a.datetime:%Y-%m-%d}" < f"{b.datetime:%Y-%m-%d}" <= manifest.summer[1]
        for key in (schema.ASSET_VV, schema.ASSET_VH):
            lin = [10.0 ** (_read_db(i.assets[key].get_absolute_href()) / 10.0) for i in (a, b)]
            enl, lag_x, lag_y = _enl_and_lag1(*lin)
            assert enl == pytest.approx(sar.SPECKLE_ENL_20M, rel=0.12), (orbit, key, enl)
            assert lag_x == pytest.approx(sar.SPECKLE_LAG1_CORRELATION, abs=0.05), (orbit, key, lag_x)
            assert lag_y == pytest.approx(sar.SPECKLE_LAG1_CORRELATION, abs=0.05), (orbit, key, lag_y)


def test_debris_contrast_is_skewed_like_the_papers():
    rng = np.random.default_rng(0)
    c = np.array([events.debris_contrast_db(rng) for _ in range(4000)])
    assert 0.5 < ((c >= 1.0) & (c <= 3.0)).mean() < 0.75  # many faint deposits
    assert np.quantile(c, 0.99) > 6.5 and c.max() <= events.DEBRIS_CONTRAST_RANGE_DB[1]  # a tail to ~8 dB
    assert np.mean(c) > np.median(c)  # skewed
    lo, hi = events.DEBRIS_VH_FACTOR
    assert 0.8 <= lo < 1.0 < hi <= 1.6  # VH similar or somewhat larger


@pytest.fixture(scope="module")
def default_scene():
    """The default demo scene (1024 px, 20 dates, seed 0) as a model: nothing written."""
    model, tile = scene_model(seed=0, size=1024)
    pairs = []
    for orbit in sar.ORBITS:
        seq = [a for a in model.schedule.acquisitions if a.orbit is orbit]
        pairs += [(r, a) for r, a in zip(seq[:-1], seq[1:], strict=True) if a.time - r.time <= np.timedelta64(12, "D")]
    return model, tile, sorted(pairs, key=lambda p: p[1].time)


def _summer(model, acq) -> bool:
    return model.schedule.summer[0] <= str(acq.time.astype("datetime64[D]")) <= model.schedule.summer[1]


def _grid_burn(tile, shape, polys) -> np.ndarray:
    if not polys:
        return np.zeros(shape, bool)
    burnt = rasterize(((p, 1) for p in polys), out_shape=shape, transform=tile.transform, fill=0, dtype="uint8")
    return burnt.astype(bool)


def _in_pair(event, ref, act) -> bool:
    return ref.time < np.datetime64(event.date, "s") <= act.time


def test_debris_fraction_is_near_bianchis(default_scene):
    """Per winter pair, labelled debris covers ~1-3.5x Bianchi's 0.019 % of the pixels (our scene is all
    mountains, theirs holds sea and flat land), and each pair still holds several labelled events."""
    model, tile, pairs = default_scene
    shape = model.layers.z.shape
    all_events = [e for e, _ in model.hazard.avalanches]
    fractions, counts = [], []
    for ref, act in pairs:
        if _summer(model, ref):  # the snow-free summer pair
            continue
        labelled = [e for e in all_events if e.labelled and _in_pair(e, ref, act)]
        fractions.append(_grid_burn(tile, shape, [e.debris for e in labelled]).mean())
        counts.append(len(labelled))
    ratio = np.mean(fractions) / events.BIANCHI_DEBRIS_FRACTION
    assert events.BIANCHI_DEBRIS_FRACTION == pytest.approx(0.000194, rel=0.01)
    assert 1.0 < ratio < 3.5, ratio
    assert max(fractions) < 10 * events.BIANCHI_DEBRIS_FRACTION
    assert min(counts) >= 3, counts
    # a held-out window (the last pair of each orbit) holds >= 5 events
    last = {r.orbit.relative_orbit: (r, a) for r, a in pairs}
    held = [e for e in all_events if e.labelled and any(_in_pair(e, r, a) for r, a in last.values())]
    assert len(held) >= 5
    areas = np.array([e.debris.area for e in all_events])
    assert 0.5 < areas.mean() / events.BIANCHI_MEAN_DEBRIS_M2 < 2.0 and np.median(areas) < areas.mean()


def _contrast(model, tile, event, ref, act, others) -> float:
    """Noise-free VV change act - ref inside the debris minus in a ring around it (other debris left out)."""
    shape = model.layers.z.shape
    inside = _grid_burn(tile, shape, [event.debris])
    ring = _grid_burn(tile, shape, [event.debris.buffer(300.0)]) & ~others
    d = backscatter.acquisition_db(model, act)[0] - backscatter.acquisition_db(model, ref)[0]
    return float(d[inside].mean() - d[ring].mean())


def test_dry_debris_persists_for_several_revisits_until_a_storm(default_scene):
    model, tile, _ = default_scene
    weather = model.snowpack.weather
    quiet = snow.Weather(weather.first_day, weather.anomaly_c, weather.storm_days[:0], weather.wind_from_deg[:0])
    t0 = np.datetime64("2021-03-01")
    for fade in events.DEBRIS_FADE_PER_REVISIT:
        # dry debris keeps 0.8-0.95 of its contrast per 6-day revisit: > 40 % after 3 revisits
        kept = [snow.surface_memory(quiet, t0, t0 + np.timedelta64(6 * k, "D"), fade) for k in (1, 2, 3)]
        assert kept == pytest.approx([fade, fade**2, fade**3])
        assert kept[-1] > 0.5
    storm = np.array([t0 + np.timedelta64(3, "D")])
    stormy = snow.Weather(weather.first_day, weather.anomaly_c, storm, np.array([280.0]))
    kept = snow.surface_memory(stormy, t0, t0 + np.timedelta64(6, "D"), 0.9)
    assert kept == pytest.approx(0.9 * snow.KEPT_AFTER_STORM)
    # in the scene: debris seen 1 revisit later (no storm in between, morning pass) keeps most of its contrast
    shape = model.layers.z.shape
    others = _grid_burn(tile, shape, [e.debris for e, _ in model.hazard.avalanches])
    morning = [a for a in model.schedule.acquisitions if not a.orbit.afternoon]
    kept = []
    for event, _ in model.hazard.avalanches:
        k = next((i for i, a in enumerate(morning) if a.time > np.datetime64(event.date, "s")), None)
        if k is None or k + 1 >= len(morning) or snow.storms_between(weather, event.date, morning[k + 1].time):
            continue
        first = _contrast(model, tile, event, morning[k - 1], morning[k], others)
        later = _contrast(model, tile, event, morning[k - 1], morning[k + 1], others)
        if first > 1.0:
            kept.append(later / first)
    assert len(kept) >= 3 and np.median(kept) > 0.6, kept


def test_confounders_lie_inside_runout_zones(default_scene):
    """Wind drifts settle where runout masks keep them (slope < 30 deg, PAR >= 20 deg); refreeze and
    drifts brighten more runout-zone pixels than new debris does; they differ from debris in
    polarisation and extent, as in real data."""
    from sarcube.datacube.par import PAR_RADIUS_M, par_fast

    model, tile, pairs = default_scene
    layers = model.layers
    release = (layers.slope >= 30) & (layers.slope <= 50)
    par = par_fast(layers.z.astype(np.float32), release, layers.cell_m, layers.cell_m, PAR_RADIUS_M)
    runout = (layers.slope < 30) & (par >= 20)
    drift = np.zeros(layers.z.shape, bool)
    for p in model.snowpack.drifts:
        drift[p.window] |= p.weight > 0.5
    assert runout[drift].mean() > 0.5
    assert np.mean([p.vh_factor for p in model.snowpack.drifts]) < events.DEBRIS_VH_FACTOR[0]
    debris = _grid_burn(tile, layers.z.shape, [e.debris for e, _ in model.hazard.avalanches])
    confounded, new_debris, broad = 0, 0, []
    for ref, act in pairs:
        if _summer(model, ref):
            continue
        d = backscatter.acquisition_db(model, act)[0] - backscatter.acquisition_db(model, ref)[0]
        bright = runout & ~debris & (d >= 1.5)
        confounded += int(bright.sum())
        new = [e.debris for e, _ in model.hazard.avalanches if _in_pair(e, ref, act)]
        new_debris += int(_grid_burn(tile, layers.z.shape, new).sum())
        broad.append(bright.mean() / runout.mean())
    assert confounded > 3 * new_debris
    # a refreeze after a wet reference date brightens a broad band (>= 10 % of the runout zone) of some pair
    assert max(broad) > 0.10
    # bright patches stay on steep or high terrain
    patches = snow.bright_patches(layers, np.random.default_rng(1))
    rows = [(p.window[0].start + p.window[0].stop) // 2 for p in patches]
    cols = [(p.window[1].start + p.window[1].stop) // 2 for p in patches]
    steep = ((layers.slope > 32) | (layers.z > sar.ROCK_LINE_M))[rows, cols]
    assert steep.mean() > 0.6


def test_small_avalanches_left_unlabelled_are_in_the_backscatter(default_scene, avalanche):
    model, tile, pairs = default_scene
    placed = [e for e, _ in model.hazard.avalanches]
    small = [e for e in placed if e.debris.area < events.SMALL_DEBRIS_M2]
    missed = [e for e in placed if not e.labelled]
    assert missed and all(e in small for e in missed)
    assert 0.1 <= len(missed) / len(small) <= 0.3
    labelled_ids = {props[LABEL_EVENT_ID] for _, props in model.hazard.features}
    assert not labelled_ids & {e.event_id for e in missed}
    # each one's own brightening on the first acquisition after it (a storm in between takes half,
    # wet snow up to 40 %)
    shape = model.layers.z.shape
    for event in missed:
        others = [p for p in model.hazard.avalanches if p[0] is not event]
        without = replace(model, hazard=replace(model.hazard, avalanches=others))
        inside = _grid_burn(tile, shape, [event.debris])
        for _, act in (p for p in pairs if _in_pair(event, *p)):
            own = backscatter.acquisition_db(model, act)[0] - backscatter.acquisition_db(without, act)[0]
            assert own[inside].mean() > 0.2 * event.contrast_db, (event.event_id, act.time)
            assert np.abs(own[~_grid_burn(tile, shape, [event.debris.buffer(100.0)])]).max() < 1e-9
    # the written catalog: labels.geojson lacks exactly the missed events of its scene
    small_model, _ = scene_model(seed=0, size=SIZE, dates=8)
    written = {f["properties"][LABEL_EVENT_ID] for f in json.loads(avalanche.labels.read_text())["features"]}
    assert written == {e.event_id for e, _ in small_model.hazard.avalanches if e.labelled}


def test_glacier_hides_under_dry_winter_snow():
    """A dry winter date does not separate glacier from the snow-covered terrain around it; a summer
    afternoon does (melt), and a single speckled winter date cannot be thresholded into glaciers."""
    model, _ = scene_model(seed=0, size=256, dates=12, hazard="glacier")
    layers, hz = model.layers, model.hazard
    glacier = (hz.glacier > 0.5) & (hz.glacier_debris < 0.5)
    around = (layers.z >= layers.z[glacier].min()) & (layers.slope <= 35) & (hz.glacier < 0.5)
    assert glacier.sum() > 200 and around.sum() > 200
    rng = np.random.default_rng(0)
    contrast = {}
    for acq in model.schedule.acquisitions:
        vv = backscatter.acquisition_db(model, acq)[0]
        contrast[acq] = float(vv[glacier].mean() - vv[around].mean())
        if acq.time.astype(object).month in (12, 1, 2):
            assert abs(contrast[acq]) < 1.5, (acq.time, contrast[acq])
            speckle = sar.correlated_speckle(vv.shape, layers.enl, sar.SPECKLE_LAG1_CORRELATION, rng)
            speckled = vv + 10 * np.log10(speckle)
            valid = ~layers.invalid[acq.orbit.relative_orbit]
            for q in np.quantile(speckled[valid], np.linspace(0.02, 0.98, 49)):
                for pred in (speckled <= q, speckled >= q):
                    p = pred & valid
                    assert (p & glacier).sum() / (p | (glacier & valid)).sum() < 0.4
    summer = [c for a, c in contrast.items() if a.orbit.afternoon and a.time.astype(object).month in (6, 7, 8)]
    assert summer and min(summer) < -3.0


def test_a_two_winter_scene_has_a_spring_before_the_held_out_one():
    one, two = sar.acquisition_schedule("avalanche", 20), sar.acquisition_schedule("avalanche", 36, winters=2)
    after = np.datetime64("2021-01-01")  # the 2021 winter is the one-winter scene's, date for date
    assert [a.time for a in two.acquisitions if a.time > after] == [a.time for a in one.acquisitions if a.time > after]
    # the last winter is the one-winter scene's; the first ends a year earlier, before the summer references
    assert [str(w[1]) for w in two.event_windows] == ["2020-04-12", "2021-04-12"]
    assert two.event_windows[1] == one.event_windows[0]
    assert len(two.acquisitions) == 36 == sar.default_dates("avalanche", 2)
    days = sorted(str(a.time.astype("datetime64[D]")) for a in two.acquisitions)
    assert days[0].startswith("2020-03") and days[-1].startswith("2021-04")
    for orbit in sar.ORBITS:  # positions count each orbit's acquisitions in time order
        assert [a.index for a in two.acquisitions if a.orbit is orbit] == list(range(18))
    model, _ = scene_model(seed=0, size=256, winters=2)
    winter_of = {str(e.date)[:4] for e, _ in model.hazard.avalanches}
    assert winter_of == {"2020", "2021"}  # events in both springs
    with pytest.raises(InputError, match="too few for 2 winters"):
        sar.acquisition_schedule("avalanche", 8, winters=2)
    with pytest.raises(InputError, match="--winters 3"):
        write_demo_catalog(Path("/nonexistent-never-written"), size=SIZE, winters=3)
