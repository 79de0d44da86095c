"""``sarcube build``: local catalog == loopback STAC API, resume after a failure, append, bad inputs."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable

import numpy as np
import pytest
import xarray as xr

from sarcube.datacube import catalog, schema, store
from sarcube.datacube.grid import grid_for, parse_aoi
from sarcube.datacube.retry import RETRY_BACKOFF_ENV
from sarcube.errors import AssetReadError, CubeExistsError, InputError, UnfinishedCubeError
from sarcube.pipelines import build_writes, cli
from sarcube.pipelines.build import build
from stac_server import item_collection_files, serve_stac, write_test_catalog


@pytest.fixture(scope="module")
def test_catalog(tmp_path_factory):
    return write_test_catalog(tmp_path_factory.mktemp("stac") / "catalog")


@pytest.fixture(scope="module")
def clean_cube(test_catalog, tmp_path_factory):
    out = tmp_path_factory.mktemp("cubes") / "clean.zarr"
    return build(test_catalog.aoi, test_catalog.start, test_catalog.end, out, catalog=str(test_catalog.root))


def assert_same_cube(a_path, b_path):
    a, b = schema.open_cube(a_path), schema.open_cube(b_path)
    assert dict(a.sizes) == dict(b.sizes)
    assert sorted(a.data_vars) == sorted(b.data_vars)
    for name in list(a.data_vars) + list(a.coords):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    assert a.rio.crs == b.rio.crs


def test_local_build_follows_contract(clean_cube, test_catalog, capsys):
    import rioxarray  # noqa: F401

    ds = schema.open_cube(clean_cube)
    assert ds.sizes[schema.TIME] == 5
    assert set(ds[schema.ORBIT_STATE].values) == {schema.ORBIT_ASCENDING, schema.ORBIT_DESCENDING}
    assert ds[schema.ITEM_ID].values[0] == "S1_20210103_DES_066_north,S1_20210103_DES_066_south"
    vv, vh = ds[schema.VV].values, ds[schema.VH].values
    assert np.isfinite(vv).all() and np.isfinite(vh).all()  # AOI inside the frames, mosaic fills the seam
    assert -20 < np.mean(vv) < -8 and np.mean(vh) < np.mean(vv)  # dB, VH darker
    assert np.isfinite(ds[schema.DEM].values).all() and 1400 < float(ds[schema.DEM].mean()) < 1800
    assert ds[schema.VV].encoding["chunks"][0] == 1
    # CF georeferencing as rioxarray reads it without sarcube
    raw = xr.open_zarr(clean_cube, decode_coords="all")
    assert raw[schema.DEM].rio.crs.to_epsg() == 32632
    assert raw[schema.DEM].rio.resolution() == (20.0, -20.0)
    # provenance
    assert json.loads(ds.attrs[schema.ATTR_AOI])["type"] == "Polygon"
    assert json.loads(ds.attrs[schema.ATTR_COLLECTIONS]) == [schema.COLLECTION_S1_RTC, schema.COLLECTION_DEM]
    items = json.loads(ds.attrs[schema.ATTR_STAC_ITEMS])
    assert len(items) == 7 and all("?" not in h for i in items for h in i["assets"].values())
    assert schema.ATTR_BUILD_PENDING not in ds.attrs and "sarcube build" in ds.attrs[schema.ATTR_HISTORY]
    schema.validate_cube(ds, require=[schema.VV, schema.VH, schema.DEM])
    assert cli.main(["info", str(clean_cube)]) == 0
    out = capsys.readouterr().out
    assert "ascending   orbit 15" in out and "descending  orbit 66" in out


def test_api_build_is_identical(clean_cube, test_catalog, tmp_path):
    files = item_collection_files(test_catalog.catalog_json, tmp_path / "api")
    with serve_stac(files) as url:
        out = build(test_catalog.aoi, test_catalog.start, test_catalog.end, tmp_path / "api.zarr", catalog=url)
    assert_same_cube(clean_cube, out)
    assert schema.open_cube(out).attrs[schema.ATTR_CATALOG] == url


def test_interrupted_build_resumes_to_the_same_cube(clean_cube, test_catalog, tmp_path, monkeypatch):
    monkeypatch.setenv(RETRY_BACKOFF_ENV, "0")
    monkeypatch.setenv(build_writes.BATCH_ENV, "1")  # one step per batch: a resume point after each
    root = tmp_path / "catalog"
    shutil.copytree(test_catalog.root, root)
    victim = root / "sentinel-1-rtc" / "S1_20210115_DES_066_full" / "vv.tif"
    good = victim.read_bytes()
    victim.write_bytes(b"truncated download")
    out = tmp_path / "resumed.zarr"
    with pytest.raises(AssetReadError, match="'vv' of STAC item 'S1_20210115_DES_066_full'"):
        build(test_catalog.aoi, test_catalog.start, test_catalog.end, out, catalog=str(root))
    pending = json.loads(xr.open_zarr(out).attrs[schema.ATTR_BUILD_PENDING])
    assert pending == ["2021-01-15T05:30:00", "2021-01-18T17:20:00"]
    first_chunk = out / schema.VV / "c" / "0" / "0" / "0"
    stamp = first_chunk.stat().st_mtime_ns
    # a different request does not silently reuse the unfinished cube
    with pytest.raises(CubeExistsError, match="unfinished build with other arguments"):
        build(test_catalog.aoi, test_catalog.start, "2021-01-20", out, catalog=str(root))
    victim.write_bytes(good)
    build(test_catalog.aoi, test_catalog.start, test_catalog.end, out, catalog=str(root))
    assert first_chunk.stat().st_mtime_ns == stamp  # finished steps were not written again
    assert schema.ATTR_BUILD_PENDING not in xr.open_zarr(out).attrs
    assert_same_cube(clean_cube, out)


def kill_build_midway(argv: list[str], read_zarr_json: Callable[[], str | bytes]) -> bool:
    """Run the CLI build ``argv`` one step per batch and SIGKILL it once 1-3 of its steps are still pending, as
    ``read_zarr_json`` (the cube's ``zarr.json``, wherever it is stored) shows; False if it finished first."""
    import os
    import signal
    import subprocess
    import time

    env = {**os.environ, build_writes.BATCH_ENV: "1"}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            attrs = json.loads(read_zarr_json()).get("attributes", {})
            pending = json.loads(attrs.get(schema.ATTR_BUILD_PENDING, "null"))
        except (OSError, ValueError):
            pending = None
        if pending is not None and 0 < len(pending) <= 3:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait(timeout=60)
    return proc.returncode == -signal.SIGKILL


def test_killed_build_resumes_to_the_same_cube(clean_cube, test_catalog, tmp_path):
    """SIGKILL a CLI build once some steps are on disk; the same command finishes it."""
    import os
    import subprocess
    import sys

    for attempt in range(3):
        out = tmp_path / f"killed{attempt}.zarr"
        argv = [
            sys.executable,
            "-m",
            "sarcube.pipelines.cli",
            "build",
            "--aoi",
            ",".join(map(str, test_catalog.aoi)),
            "--start",
            test_catalog.start,
            "--end",
            test_catalog.end,
            "--catalog",
            str(test_catalog.root),
            "--out",
            str(out),
        ]
        if kill_build_midway(argv, (out / "zarr.json").read_text):
            break
    else:
        pytest.skip("the build always finished before it could be killed")
    assert schema.ATTR_BUILD_PENDING in xr.open_zarr(out).attrs
    # unfinished: `info` says so, every downstream step refuses it with one line
    shown = subprocess.run([*argv[:3], "info", str(out)], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and "unfinished: rerun the same build command" in shown.stdout
    assert "  unfinished" in shown.stdout.split("acquisitions", 1)[1]  # the unwritten acquisitions are marked
    for step in (["features", str(out)], ["add-layer", str(out), "--raster", "x", str(out)]):
        refused = subprocess.run([*argv[:3], *step], capture_output=True, text=True, timeout=120)
        lines = refused.stderr.strip().splitlines()
        assert refused.returncode != 0 and len(lines) == 1 and "unfinished" in lines[0], refused.stderr
    env = {**os.environ, build_writes.BATCH_ENV: "1"}
    assert subprocess.run(argv, env=env, capture_output=True, timeout=300).returncode == 0
    assert schema.ATTR_BUILD_PENDING not in xr.open_zarr(out).attrs
    assert_same_cube(clean_cube, out)


def test_build_stopped_inside_its_template_starts_over(clean_cube, test_catalog, tmp_path):
    """A store with the pending marker but no build request never finished its template: the build replaces it."""
    out = tmp_path / "template.zarr"
    build(test_catalog.aoi, test_catalog.start, test_catalog.end, out, catalog=str(test_catalog.root))
    store.update_attrs(out, {schema.ATTR_BUILD_PENDING: json.dumps(["2021-01-03T05:30:00"])})
    with pytest.raises(UnfinishedCubeError, match="rerun the same build command"):
        schema.open_cube(out)
    build(test_catalog.aoi, test_catalog.start, test_catalog.end, out, catalog=str(test_catalog.root))
    assert_same_cube(clean_cube, out)


def test_append_adds_only_new_acquisitions(clean_cube, test_catalog, tmp_path):
    out = tmp_path / "grown.zarr"
    build(test_catalog.aoi, test_catalog.start, "2021-01-09", out, catalog=str(test_catalog.root))
    assert schema.open_cube(out).sizes[schema.TIME] == 3
    build(test_catalog.aoi, "2021-01-05", test_catalog.end, out, catalog=str(test_catalog.root), append=True)
    assert_same_cube(clean_cube, out)
    ds = schema.open_cube(out)
    assert (ds.attrs[schema.ATTR_START], ds.attrs[schema.ATTR_END]) == (test_catalog.start, test_catalog.end)
    assert len(json.loads(ds.attrs[schema.ATTR_STAC_ITEMS])) == 7
    build(test_catalog.aoi, test_catalog.start, test_catalog.end, out, catalog=str(test_catalog.root), append=True)
    assert schema.open_cube(out).sizes[schema.TIME] == 5  # nothing new, no duplicates
    # a layer computed on the old time steps would be left short: refused, cube untouched
    from sarcube.datacube import store

    store.add_variables(out, {schema.VV_RATIO: schema.make_variable(schema.VV_RATIO, ds[schema.VV].values)})
    with pytest.raises(InputError, match=r"--append.*\['vv_ratio'\]"):
        build(test_catalog.aoi, test_catalog.start, "2021-02-01", out, catalog=str(test_catalog.root), append=True)
    build(test_catalog.aoi, test_catalog.start, test_catalog.end, out, catalog=str(test_catalog.root), overwrite=True)
    assert schema.VV_RATIO not in schema.open_cube(out).data_vars
    assert_same_cube(clean_cube, out)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--aoi": "8.1,46,8.0,46.1"}, "is empty: west must be < east"),
        ({"--aoi": "@bowtie"}, "not a valid polygon"),
        ({"--aoi": "@point"}, "not a polygon"),
        ({"--aoi": "2,40,15,50"}, "too large for --resolution 20.*--force"),
        ({"--start": "2021-02-01"}, "--start 2021-02-01 is after --end 2021-01-31"),
        ({"--start": "2030-01-01", "--end": "2030-02-01"}, "outside collection 'sentinel-1-rtc'"),
        ({"--aoi": "20,10,20.01,10.01"}, "no 'sentinel-1-rtc' items in catalog"),
        ({"--relative-orbit": "99"}, "none with sat:relative_orbit=99"),
        ({"--catalog": "no-such-catalog"}, "unknown catalog 'no-such-catalog'"),
        ({"--out": "@existing"}, "exists: pass --overwrite"),
        ({"--append": None}, "--append needs an existing cube"),
        ({"--out": "@existing", "--overwrite": None, "--relative-orbit": "99"}, "none with sat:relative_orbit=99"),
    ],
)
def test_bad_input_gets_one_line(change, message, test_catalog, clean_cube, tmp_path, capsys):
    (tmp_path / "bowtie.geojson").write_text(
        json.dumps({"type": "Polygon", "coordinates": [[[8, 46], [8.1, 46.1], [8.1, 46], [8, 46.1], [8, 46]]]})
    )
    (tmp_path / "point.geojson").write_text(json.dumps({"type": "Point", "coordinates": [8, 46]}))
    args = {
        "--aoi": ",".join(map(str, test_catalog.aoi)),
        "--start": test_catalog.start,
        "--end": test_catalog.end,
        "--out": str(tmp_path / "cube.zarr"),
        "--catalog": str(test_catalog.root),
    }
    args.update(change)
    special = {
        "@bowtie": str(tmp_path / "bowtie.geojson"),
        "@point": str(tmp_path / "point.geojson"),
        "@existing": str(clean_cube),
    }
    argv = ["build"]
    for key, value in args.items():
        argv += [key] if value is None else [key, special.get(value, value)]
    code = cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1 and err.startswith("Error: ") and "Traceback" not in err
    assert __import__("re").search(message, err), err
    assert not (tmp_path / "cube.zarr").exists()
    schema.open_cube(clean_cube)  # a failed --overwrite leaves the old cube in place


def test_build_from_demo_catalog(tmp_path, capsys):
    """The embedded demo catalog (issue "synthetic scene") builds, both orbits, contract-valid."""
    from sarcube.datacube import synthetic

    synthetic.write_demo_catalog(tmp_path / "demo", size=128, dates=6)
    manifest = synthetic.read_demo_manifest(tmp_path / "demo")
    out = build(
        manifest.bbox_lonlat, manifest.start, manifest.end, tmp_path / "demo.zarr", catalog=str(tmp_path / "demo")
    )
    ds = schema.open_cube(out)
    assert ds.sizes[schema.TIME] == 6 and ds.rio.crs.to_string() == manifest.crs
    assert set(ds[schema.ORBIT_STATE].values) == {schema.ORBIT_ASCENDING, schema.ORBIT_DESCENDING}
    assert np.isfinite(ds[schema.DEM].values).all()
    assert np.isfinite(ds[schema.VV].values).mean() > 0.8 and float(ds[schema.VV].mean()) < -5
    assert (
        ds[schema.TIME].values.astype("datetime64[s]").astype("datetime64[ns]").tolist()
        == ds[schema.TIME].values.tolist()
    )


def test_demo_catalog_prints_what_build_takes_and_the_build_lands_on_the_scene_grid(tmp_path, capsys):
    """The printed AOI and --start/--end, pasted into build, give the scene's own size x size grid."""
    from sarcube.pipelines.cli import main

    assert main(["demo-catalog", str(tmp_path / "ls"), "--size", "128", "--dates", "6", "--hazard", "landslide"]) == 0
    out = capsys.readouterr().out
    lines = {line.split(" ")[0]: line for line in out.splitlines()}
    aoi = lines["aoi"].split(" ")[1]
    dates = lines["dates"].split(" ")[1:]
    assert dates[0] == "--start" and dates[2] == "--end"
    manifest = __import__("sarcube.datacube.synthetic", fromlist=["x"]).read_demo_manifest(tmp_path / "ls")
    assert f"event date {manifest.event_date}" in out and "--event-date" in out
    assert f"sarcube build --catalog {tmp_path / 'ls'} --aoi {aoi} --start {dates[1]} --end {dates[3]}" in out
    cube = tmp_path / "ls.zarr"
    assert main(["-q", "build", "--catalog", str(tmp_path / "ls"), "--aoi", aoi, *dates, "--out", str(cube)]) == 0
    ds = schema.open_cube(cube)
    assert (ds.sizes[schema.Y], ds.sizes[schema.X]) == (128, 128)
    assert ds[schema.X].values[0] - 10.0 == pytest.approx(manifest.bbox[0])  # the scene's own pixel edges


def test_assets_are_signed_when_read_not_when_searched(test_catalog, tmp_path, monkeypatch):
    """Signing runs inside the read tasks (tokens expire), and no signed href reaches the cube."""
    from dataclasses import replace

    from sarcube.datacube import load

    signed: list[str] = []

    def sign(href: str) -> str:  # a signer that resolves hrefs only a signed reader can open
        signed.append(href)
        return href.replace("/unsigned", "")

    monkeypatch.setitem(catalog.SIGNERS, "test-signing", sign)
    cat = catalog.open_catalog(str(test_catalog.root))
    cat.source = replace(cat.source, signing="test-signing")
    items = catalog.search_backscatter(
        cat, test_catalog.aoi, dt.datetime(2021, 1, 1, tzinfo=dt.UTC), dt.datetime(2021, 1, 31, tzinfo=dt.UTC)
    )
    for item in items:
        for asset in item.assets.values():
            asset.href = "/unsigned" + asset.href
    acquisition = load.group_acquisitions(items, cat.source.properties, 8.0)[0]
    layers = load.load_backscatter(acquisition, cat, grid_for(parse_aoi(test_catalog.aoi)))
    assert signed == []  # graph built, nothing signed yet
    assert np.isfinite(layers[schema.VV].values).all()
    assert len(signed) == len(acquisition.items)  # one signature per asset read


def test_codec_gzip_builds_a_gzip_cube_that_append_keeps(test_catalog, clean_cube, tmp_path):
    out = tmp_path / "gzip.zarr"
    build(
        test_catalog.aoi, test_catalog.start, "2021-01-09", out, catalog=str(test_catalog.root), codec=schema.CODEC_GZIP
    )
    build(test_catalog.aoi, "2021-01-05", test_catalog.end, out, catalog=str(test_catalog.root), append=True)
    assert schema.open_cube(out).attrs[schema.ATTR_CODEC] == schema.CODEC_GZIP
    for meta in out.glob("*/zarr.json"):
        codecs = [c["name"] for c in json.loads(meta.read_text()).get("codecs", [])]
        assert codecs[-1:] == ["gzip"], (meta, codecs)
    assert_same_cube(out, clean_cube)
    with pytest.raises(InputError, match="--codec"):
        build(
            test_catalog.aoi,
            test_catalog.start,
            test_catalog.end,
            out,
            catalog=str(test_catalog.root),
            append=True,
            codec=schema.CODEC_ZSTD,
        )
