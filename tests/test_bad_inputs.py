"""Bad input across every verb: the exit code, one line naming the input and the fix, and the cube untouched.

One tiny cube (with a prediction), one published archive and one test catalog are built once per module;
each row runs the CLI in-process (``cli.main``, the console script's own error path) on them or on a
damaged copy made by the row's setup. Read-only targets need a process without root's file-permission
override, so they run in one subprocess.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
import torch

from conftest import make_pair_cube
from sarcube.datacube import archive, schema, store
from sarcube.datacube.archive.zipstore import check_member_layout
from sarcube.errors import InputError, SarcubeError, VerifyError
from sarcube.pipelines import cli
from sarcube.pipelines.predict import predict
from sarcube.pipelines.publish import publish
from stac_server import write_test_catalog
from test_predict import make_run

#: exit codes as the error classes define them
INPUT = InputError.exit_code
FAIL = SarcubeError.exit_code
USAGE = click.UsageError.exit_code
CREATOR = "Doe, Jane"
GIB = 1 << 30


@dataclass(frozen=True)
class World:
    """What the rows work on: built once, never changed by a row."""

    root: Path
    cube: Path
    run: Path
    pub: Path
    catalog: Path
    aoi: str
    start: str
    end: str

    def fields(self) -> dict[str, str]:
        return {
            "cube": str(self.cube),
            "run": str(self.run),
            "pub": str(self.pub),
            "cat": str(self.catalog),
            "aoi": self.aoi,
            "start": self.start,
            "end": self.end,
        }


def tree_md5(folder: Path) -> str:
    """One checksum over every file's relative path and bytes."""
    digest = hashlib.md5()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    root = tmp_path_factory.mktemp("bad-inputs")
    cube = root / "c.zarr"
    ds = make_pair_cube()
    vvvh = ds[schema.VV_DIFF].values ** 2 * ds[schema.VH_DIFF].values ** 2  # any finite product will do here
    ds[schema.VVVH] = schema.make_variable(schema.VVVH, vvvh / vvvh.max(), (schema.PAIR, schema.Y, schema.X))
    store.write_cube(ds, cube)
    torch.set_num_threads(1)
    run = make_run(root / "fcn", schema.open_cube(cube))
    predict(cube, run, name="fcn", tta=False)
    pub = root / "pub"
    publish(cube, pub, title="Tiny cube", creators=[CREATOR], version="1.0", progress=False)
    cat = write_test_catalog(root / "catalog")
    return World(root, cube, run, pub, cat.root, ",".join(map(str, cat.aoi)), cat.start, cat.end)


# --- damaged copies made by a row's setup -------------------------------------------------------------


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _reseal(folder: Path) -> None:
    """Recompute the STAC sizes/checksums of the zip and MD5SUMS, as someone forging an archive would."""
    for item_path in (folder / archive.STAC_DIR).glob("*.json"):
        item = json.loads(item_path.read_text())
        for asset in (item.get("assets") or {}).values() if isinstance(item.get("assets"), dict) else ():
            target = (item_path.parent / asset["href"]).resolve()
            if target.suffix == ".zip":
                asset["file:size"] = target.stat().st_size
                asset["file:checksum"] = archive.multihash(archive.md5_file(target))
        item_path.write_text(json.dumps(item))
    listed = archive.read_md5sums(folder)
    archive.write_md5sums(folder, {rel: archive.md5_file(folder / rel) for rel in listed})


def _item(folder: Path) -> Path:
    return next(p for p in (folder / archive.STAC_DIR).glob("*.json") if p.name != "collection.json")


def _edit_item(edit: Callable[[dict], Any]) -> Callable[[World, Path], dict[str, str]]:
    def setup(w: World, tmp: Path) -> dict[str, str]:
        folder = _copy(w.pub, tmp / "pub")
        item_path = _item(folder)
        item = json.loads(item_path.read_text())
        edit(item)
        item_path.write_text(json.dumps(item))
        archive.write_md5sums(folder, {rel: archive.md5_file(folder / rel) for rel in archive.read_md5sums(folder)})
        return {"bad": str(folder)}

    return setup


def _corrupt_item_json(w: World, tmp: Path) -> dict[str, str]:
    folder = _copy(w.pub, tmp / "pub")
    _item(folder).write_text('{"type": "Feature", "assets": {')
    archive.write_md5sums(folder, {rel: archive.md5_file(folder / rel) for rel in archive.read_md5sums(folder)})
    return {"bad": str(folder)}


def _zip_of(folder: Path) -> Path:
    return next(folder.glob("*" + archive.ARCHIVE_SUFFIX))


def _declared_4gib(w: World, tmp: Path) -> dict[str, str]:
    """The central directory says the first chunk member holds 4 GiB; the file holds a few hundred bytes."""
    folder = _copy(w.pub, tmp / "pub")
    zip_path = _zip_of(folder)
    data = bytearray(zip_path.read_bytes())
    with zipfile.ZipFile(zip_path) as zf:
        victim = next(i for i in zf.infolist() if "/c/" in i.filename)
    end = data.rfind(b"PK\x05\x06")
    pos = struct.unpack("<L", data[end + 16 : end + 20])[0]  # start of the central directory
    while True:  # to the victim's entry
        name_len, extra_len, comment_len = struct.unpack("<3H", data[pos + 28 : pos + 34])
        if data[pos + 46 : pos + 46 + name_len].decode() == victim.filename:
            break
        pos += 46 + name_len + extra_len + comment_len
    struct.pack_into("<2L", data, pos + 20, 0xFFFFFFF0, 0xFFFFFFF0)  # compressed and uncompressed size
    zip_path.write_bytes(bytes(data))
    _reseal(folder)
    return {"bad": str(folder)}


@functools.cache
def _bomb_zip() -> bytes:
    """A zip whose root zarr.json is 1 GiB of zeros deflated to about a megabyte (repeated full-flush blocks)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    stream = block * 1024 + b"\x03\x00"  # 1024 self-contained 1 MiB segments, then an empty final block
    crc = 0
    zero_mib = bytes(1 << 20)
    for _ in range(1024):
        crc = zlib.crc32(zero_mib, crc)
    name = archive.ZARR_JSON.encode()
    local = struct.pack(
        "<4s5H3L2H", b"PK\x03\x04", 20, 0, zipfile.ZIP_DEFLATED, 0, 0x21, crc, len(stream), GIB, len(name), 0
    )
    central = struct.pack(
        "<4s6H3L5H2L",
        b"PK\x01\x02",
        20,
        20,
        0,
        zipfile.ZIP_DEFLATED,
        0,
        0x21,
        crc,
        len(stream),
        GIB,
        len(name),
        0,
        0,
        0,
        0,
        0o644 << 16,
        0,
    )
    body = local + name + stream
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central) + len(name), len(body), 0)
    return body + central + name + end


def _deflate_bomb(w: World, tmp: Path) -> dict[str, str]:
    """The archive's zip replaced by the deflate bomb, its checksums resealed."""
    folder = _copy(w.pub, tmp / "pub")
    _zip_of(folder).write_bytes(_bomb_zip())
    _reseal(folder)
    return {"bad": str(folder)}


def _bad_md5(w: World, tmp: Path) -> dict[str, str]:
    folder = _copy(w.pub, tmp / "pub")
    (folder / "README.md").write_text((folder / "README.md").read_text() + "tampered\n")
    return {"bad": str(folder)}


def _no_md5sums(w: World, tmp: Path) -> dict[str, str]:
    folder = _copy(w.pub, tmp / "pub")
    (folder / archive.MD5SUMS).unlink()
    return {"bad": str(folder)}


def _gone_array(w: World, tmp: Path) -> dict[str, str]:
    cube = _copy(w.cube, tmp / "gone.zarr")
    shutil.rmtree(cube / schema.VV)
    return {"bad": str(cube)}


def _files(**contents: str | bytes) -> Callable[[World, Path], dict[str, str]]:
    """Files written into the row's folder; each name becomes a placeholder of its path."""

    def setup(w: World, tmp: Path) -> dict[str, str]:
        out = {}
        for key, text in contents.items():
            name = key.replace("_", ".", 1) if "_" in key else key
            path = tmp / name
            path.write_bytes(text.encode() if isinstance(text, str) else text)
            out[key] = str(path)
        return out

    return setup


def _geojson(features: list[dict]) -> str:
    return json.dumps({"type": "FeatureCollection", "features": features})


def _polygon(ring: list[list[float]], **props: Any) -> dict:
    return {"type": "Feature", "properties": props, "geometry": {"type": "Polygon", "coordinates": [ring]}}


def _cube_ring(w: World) -> list[list[float]]:
    """A small lon/lat square inside the tiny cube (EPSG:32632, near 7.7 E 46.0 N)."""
    from pyproj import Transformer

    ds = schema.open_cube(w.cube)
    x0, y0 = float(ds[schema.X][4]), float(ds[schema.Y][4])
    to_lonlat = Transformer.from_crs(ds.rio.crs, 4326, always_xy=True)
    corners = [(x0, y0), (x0 + 100, y0), (x0 + 100, y0 - 100), (x0, y0 - 100), (x0, y0)]
    return [list(to_lonlat.transform(x, y)) for x, y in corners]


def _labels(dates: list[str], *, field: str = "date", ring: Callable[[World], list] = _cube_ring):
    def setup(w: World, tmp: Path) -> dict[str, str]:
        path = tmp / "labels.geojson"
        path.write_text(_geojson([_polygon(ring(w), **{field: d}) for d in dates]))
        return {"labels": str(path)}

    return setup


def _far_ring(w: World) -> list[list[float]]:
    return [[20.0, 10.0], [20.01, 10.0], [20.01, 10.01], [20.0, 10.01], [20.0, 10.0]]


def _catalog_with(edit: Callable[[Path], None]) -> Callable[[World, Path], dict[str, str]]:
    def setup(w: World, tmp: Path) -> dict[str, str]:
        cat = _copy(w.catalog, tmp / "catalog")
        edit(sorted((cat / "sentinel-1-rtc").glob("*/*.json"))[1])
        return {"badcat": str(cat)}

    return setup


def _rewrite_json(path: Path, edit: Callable[[dict], Any]) -> None:
    item = json.loads(path.read_text())
    edit(item)
    path.write_text(json.dumps(item))


def _run_with_checkpoint(payload: Callable[[Path], None]) -> Callable[[World, Path], dict[str, str]]:
    def setup(w: World, tmp: Path) -> dict[str, str]:
        run = tmp / "run"
        run.mkdir()
        payload(run / "best.pt")
        return {"badrun": str(run)}

    return setup


def _pickled_object(path: Path) -> None:
    torch.save({"info": argparse_namespace()}, path)


def argparse_namespace() -> Any:
    import argparse

    return argparse.Namespace(lr=0.1)


def _existing_file(w: World, tmp: Path) -> dict[str, str]:
    path = tmp / "existing"
    path.write_text("not a folder")
    return {"file": str(path)}


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    code: int
    message: str
    setup: Callable[[World, Path], dict[str, str]] | None = None
    #: also absent from the message (e.g. advice the message must not pass on)
    never: str | None = None


BUILD = ("build", "--aoi", "{aoi}", "--start", "{start}", "--end", "{end}", "--catalog", "{cat}")
BUILD_OUT = (*BUILD, "--out", "{tmp}/new.zarr")
PUBLISH = ("publish", "{cube}", "--out", "{tmp}/pub", "--creator", CREATOR)

CASES = [
    # info
    Case("info-missing", ("info", "{tmp}/missing.zarr"), INPUT, "does not exist"),
    Case(
        "info-garbage-zip",
        ("info", "{g_zarr.zip}"),
        FAIL,
        "not a readable zip.*publish the archive again",
        _files(**{"g_zarr.zip": os.urandom(4096)}),
    ),
    Case(
        "info-pk-garbage-zip",
        ("info", "{g_zarr.zip}"),
        FAIL,
        "not a readable zip",
        _files(**{"g_zarr.zip": b"PK\x03\x04garbage"}),
    ),
    Case("info-empty-folder", ("info", "{tmp}"), FAIL, "not a readable Zarr v3 cube"),
    Case("info-array-gone", ("info", "{bad}"), FAIL, r"lists \['vv'\] but their arrays are gone", _gone_array),
    # demo-catalog
    Case(
        "demo-catalog-hazard",
        ("demo-catalog", "{tmp}/demo", "--hazard", "volcano"),
        INPUT,
        "--hazard 'volcano' is unknown",
    ),
    Case(
        "demo-catalog-out-file",
        ("demo-catalog", "{file}"),
        INPUT,
        "existing' exists and is not an empty folder",
        _existing_file,
    ),
    Case("demo-catalog-size", ("demo-catalog", "{tmp}/demo", "--size", "4"), INPUT, "--size"),
    # build
    Case(
        "build-empty-aoi", (*BUILD_OUT[:2], "8.1,46,8.0,46.1", *BUILD_OUT[3:]), INPUT, "is empty: west must be < east"
    ),
    Case(
        "build-antimeridian-bbox",
        ("build", "--aoi", "179.9,-16,-179.9,-15.9", *BUILD_OUT[3:]),
        INPUT,
        r"crosses the antimeridian.*--aoi 179.9,-16,180,-15.9 and --aoi -180,-16,-179.9,-15.9",
    ),
    Case(
        "build-antimeridian-geojson",
        ("build", "--aoi", "{am_geojson}", *BUILD_OUT[3:]),
        INPUT,
        "crosses the antimeridian.*split",
        _files(
            am_geojson=json.dumps(
                _polygon([[179.9, -16], [180.1, -16], [180.1, -15.9], [179.9, -15.9], [179.9, -16]])["geometry"]
            )
        ),
    ),
    Case("build-aoi-words", ("build", "--aoi", "a,b,c,d", *BUILD_OUT[3:]), INPUT, "not W,S,E,N"),
    Case(
        "build-aoi-missing-file", ("build", "--aoi", "{tmp}/nowhere.geojson", *BUILD_OUT[3:]), INPUT, "nowhere.geojson"
    ),
    Case("build-start-after-end", (*BUILD_OUT[:4], "2021-02-01", *BUILD_OUT[5:]), INPUT, "is after --end"),
    Case("build-bad-date", (*BUILD_OUT[:4], "2021-13-01", *BUILD_OUT[5:]), INPUT, "2021-13-01"),
    Case(
        "build-out-is-file",
        (*BUILD, "--out", "{file}"),
        FAIL,
        "existing.*remove it or choose another path",
        _existing_file,
    ),
    Case(
        "build-out-under-file",
        (*BUILD, "--out", "{file}/c.zarr"),
        FAIL,
        r"a file stands where a folder is needed|a file where a folder goes",
        _existing_file,
    ),
    Case("build-out-exists", (*BUILD, "--out", "{cube}"), FAIL, "exists: pass --overwrite"),
    Case(
        "build-corrupt-item-json",
        (*BUILD_OUT[:8], "{badcat}", *BUILD_OUT[9:]),
        FAIL,
        r"unreadable item.*\.json.*fix or remove that file",
        _catalog_with(lambda p: p.write_text("{not json")),
    ),
    Case(
        "build-item-assets-list",
        (*BUILD_OUT[:8], "{badcat}", *BUILD_OUT[9:]),
        FAIL,
        r"unreadable item.*\.json",
        _catalog_with(lambda p: _rewrite_json(p, lambda d: d.update(assets=[]))),
    ),
    Case(
        "build-item-orbit-text",
        (*BUILD_OUT[:8], "{badcat}", *BUILD_OUT[9:]),
        FAIL,
        "sat:relative_orbit='abc' is not an orbit number",
        _catalog_with(lambda p: _rewrite_json(p, lambda d: d["properties"].update({"sat:relative_orbit": "abc"}))),
    ),
    Case(
        "build-unknown-catalog",
        (*BUILD_OUT[:8], "no-such-catalog", *BUILD_OUT[9:]),
        FAIL,
        "unknown catalog 'no-such-catalog'",
    ),
    Case("build-bad-crs", (*BUILD_OUT, "--crs", "EPSG:99999"), INPUT, "EPSG:99999"),
    Case("build-negative-resolution", (*BUILD_OUT, "--resolution", "-5"), INPUT, "--resolution"),
    Case(
        "build-system-folder", (*BUILD, "--out", "/sys/sarcube-test.zarr"), FAIL, "cannot use '/sys/sarcube-test.zarr'"
    ),
    # features
    Case("features-missing", ("features", "{tmp}/missing.zarr"), INPUT, "does not exist"),
    Case("features-array-gone", ("features", "{bad}"), FAIL, "arrays are gone.*restore the cube", _gone_array),
    Case(
        "features-release-order",
        ("features", "{cube}", "--release-min", "60", "--release-max", "30"),
        INPUT,
        "release slope range 60.0-30.0",
    ),
    Case("features-summer-bad", ("features", "{cube}", "--ratio", "--summer", "July"), INPUT, "--summer"),
    Case("features-max-gap-negative", ("features", "{cube}", "--max-gap", "-1"), INPUT, "--max-gap"),
    Case("features-k-zero", ("features", "{cube}", "--event-date", "2020-01-05", "--k", "0"), INPUT, "--k"),
    Case(
        "features-par-radius", ("features", "{cube}", "--par-radius", "-10"), INPUT, "PAR: radius -10.0 m is not valid"
    ),
    # add-layer
    Case(
        "labels-missing",
        ("add-layer", "{cube}", "--labels", "{tmp}/none.geojson"),
        INPUT,
        "none.geojson' does not exist",
    ),
    Case(
        "labels-suffix",
        ("add-layer", "{cube}", "--labels", "{l_txt}"),
        INPUT,
        "unsupported format '.txt'",
        _files(l_txt="x"),
    ),
    Case(
        "labels-corrupt",
        ("add-layer", "{cube}", "--labels", "{l_geojson}"),
        INPUT,
        "cannot be read as vector data",
        _files(l_geojson='{"type": "FeatureCollection", "features": ['),
    ),
    Case(
        "labels-dates-outside-cube",
        ("add-layer", "{cube}", "--labels", "{labels}", "--date-field", "date"),
        INPUT,
        r"no 'date' date \(2023-03-01\.\.2023-03-02\) falls in a pair of the cube",
        _labels(["2023-03-01", "2023-03-02"]),
    ),
    Case(
        "labels-no-date-field",
        ("add-layer", "{cube}", "--labels", "{labels}", "--date-field", "when"),
        INPUT,
        "has no field 'when'",
        _labels(["2020-01-05"]),
    ),
    Case(
        "labels-bad-date",
        ("add-layer", "{cube}", "--labels", "{labels}", "--date-field", "date"),
        INPUT,
        "is not a date",
        _labels(["yesterday"]),
    ),
    Case(
        "labels-outside-area",
        ("add-layer", "{cube}", "--labels", "{labels}"),
        INPUT,
        "no feature lies inside the cube",
        _labels(["2020-01-05"], ring=_far_ring),
    ),
    Case(
        "labels-id-without-date",
        ("add-layer", "{cube}", "--labels", "{labels}", "--id-field", "id"),
        INPUT,
        "add --date-field",
        _labels(["2020-01-05"]),
    ),
    Case(
        "raster-missing",
        ("add-layer", "{cube}", "--raster", "coh", "{tmp}/coh.tif", "--dim", "none"),
        INPUT,
        "coh.tif' does not exist",
    ),
    Case("raster-no-files", ("add-layer", "{cube}", "--raster", "coh"), INPUT, "no files given"),
    Case(
        "raster-not-tiff",
        ("add-layer", "{cube}", "--raster", "coh", "{r_tif}", "--dim", "none"),
        INPUT,
        "cannot be read",
        _files(r_tif="not a tiff"),
    ),
    Case("add-layer-nothing", ("add-layer", "{cube}"), INPUT, "--labels|--raster"),
    # train
    Case("train-unknown-preset", ("train", "{cube}", "--preset", "nope", "--out", "{tmp}/run"), INPUT, "preset 'nope'"),
    Case(
        "train-unknown-set-key",
        ("train", "{cube}", "--preset", "avalanche-fcn", "--out", "{tmp}/run", "--set", "train.nope=1"),
        INPUT,
        "nope",
    ),
    Case(
        "train-set-not-a-number",
        ("train", "{cube}", "--preset", "avalanche-fcn", "--out", "{tmp}/run", "--set", "train.epochs=many"),
        INPUT,
        "train.epochs",
    ),
    Case(
        "train-unknown-profile",
        ("train", "{cube}", "--preset", "avalanche-fcn", "--out", "{tmp}/run", "--profile", "nope"),
        INPUT,
        "profile 'nope'",
    ),
    Case(
        "train-out-is-file",
        ("train", "{cube}", "--preset", "avalanche-fcn", "--out", "{file}"),
        INPUT,
        "existing' is a file: the run directory is a folder",
        _existing_file,
    ),
    Case(
        "train-missing-cube",
        ("train", "{tmp}/missing.zarr", "--preset", "avalanche-fcn", "--out", "{tmp}/run"),
        INPUT,
        "does not exist",
    ),
    Case(
        "train-resume-nothing",
        ("train", "{cube}", "--preset", "avalanche-fcn", "--out", "{tmp}/run", "--resume"),
        FAIL,
        "last.pt",
    ),
    # predict
    Case(
        "predict-run-missing", ("predict", "{cube}", "--run", "{tmp}/norun"), FAIL, "norun' does not exist: train one"
    ),
    Case("predict-run-empty", ("predict", "{cube}", "--run", "{tmp}"), FAIL, "best.pt' does not exist"),
    Case(
        "predict-checkpoint-junk",
        ("predict", "{cube}", "--run", "{badrun}"),
        FAIL,
        "cannot be read.*retrain or restore",
        _run_with_checkpoint(lambda p: p.write_bytes(b"garbage" * 20)),
        never="weights_only",
    ),
    Case(
        "predict-checkpoint-pickle",
        ("predict", "{cube}", "--run", "{badrun}"),
        FAIL,
        "not a weights-only checkpoint",
        _run_with_checkpoint(_pickled_object),
        never="weights_only=False",
    ),
    Case("predict-pairs-garbage", ("predict", "{cube}", "--run", "{run}", "--pairs", "sometimes"), INPUT, "--pairs"),
    Case(
        "predict-name-exists", ("predict", "{cube}", "--run", "{run}", "--name", "fcn"), FAIL, "pred_fcn.*--overwrite"
    ),
    # evaluate
    Case("evaluate-pred-missing", ("evaluate", "{cube}", "--pred", "nope"), INPUT, "nope"),
    Case(
        "evaluate-split-bogus",
        ("evaluate", "{cube}", "--pred", "fcn", "--split", "bogus"),
        USAGE,
        "Invalid value for '--split'",
    ),
    Case("evaluate-threshold", ("evaluate", "{cube}", "--pred", "fcn", "--threshold", "2"), INPUT, "--threshold"),
    # export
    Case("export-pred-missing", ("export", "{cube}", "--pred", "nope", "--out", "{tmp}/d.geojson"), INPUT, "nope"),
    Case(
        "export-suffix", ("export", "{cube}", "--pred", "fcn", "--out", "{tmp}/d.txt"), INPUT, "use a .geojson or .gpkg"
    ),
    Case(
        "export-threshold",
        ("export", "{cube}", "--pred", "fcn", "--out", "{tmp}/d.geojson", "--threshold", "-1"),
        INPUT,
        "threshold",
    ),
    # quicklook
    Case("quicklook-pair", ("quicklook", "{cube}", "--pair", "99", "--out", "{tmp}/q.png"), INPUT, "--pair 99"),
    Case("quicklook-pred-missing", ("quicklook", "{cube}", "--pred", "nope", "--out", "{tmp}/q.png"), INPUT, "nope"),
    # report
    Case("report-pred-missing", ("report", "{cube}", "--pred", "nope", "--out", "{tmp}/r"), INPUT, "nope"),
    Case(
        "report-evaluation-corrupt",
        ("report", "{cube}", "--pred", "fcn", "--out", "{tmp}/r", "--evaluation", "{e_json}"),
        INPUT,
        "e.json' is not JSON",
        _files(e_json="{oops"),
    ),
    Case(
        "report-out-is-file",
        ("report", "{cube}", "--pred", "fcn", "--out", "{file}"),
        USAGE,
        "existing",
        _existing_file,
    ),
    # publish
    Case(
        "publish-title-control", (*PUBLISH, "--title", "Cube\x1b[31m red"), INPUT, "--title holds the control character"
    ),
    Case(
        "publish-title-newline",
        (*PUBLISH, "--title", "Cube\n# injected heading"),
        INPUT,
        "--title holds the control character",
    ),
    Case(
        "publish-title-markup",
        (*PUBLISH, "--title", "<script>alert(1)</script>"),
        INPUT,
        "--title .* holds HTML/markdown markup",
    ),
    Case("publish-title-huge", (*PUBLISH, "--title", "x" * 100_000), INPUT, "--title is 100000 characters long"),
    Case(
        "publish-version-control",
        (*PUBLISH, "--title", "T", "--version", "1.0\x00"),
        INPUT,
        "--version holds the control character",
    ),
    Case("publish-version-markup", (*PUBLISH, "--title", "T", "--version", "<b>1</b>"), INPUT, "--version .* markup"),
    Case(
        "publish-creator",
        ("publish", "{cube}", "--out", "{tmp}/pub", "--creator", "Jane", "--title", "T"),
        INPUT,
        "Family, Given",
    ),
    Case("publish-license", (*PUBLISH, "--title", "T", "--license", "whatever"), INPUT, "--license 'whatever'"),
    Case("publish-description-missing", (*PUBLISH, "--title", "T", "--description", "{tmp}/none.md"), INPUT, "none.md"),
    Case(
        "publish-out-is-file",
        ("publish", "{cube}", "--out", "{file}", "--creator", CREATOR, "--title", "T"),
        USAGE,
        "existing",
        _existing_file,
    ),
    # verify
    Case("verify-missing", ("verify", "{tmp}/nothing"), INPUT, "does not exist"),
    Case(
        "verify-stac-corrupt",
        ("verify", "{bad}"),
        FAIL,
        r"stac/c\.json: not valid JSON.*publish the archive again",
        _corrupt_item_json,
    ),
    Case(
        "verify-stac-size-text",
        ("verify", "{bad}"),
        FAIL,
        r"file:size 'abc' is not a size in bytes",
        _edit_item(lambda item: next(iter(item["assets"].values())).update({"file:size": "abc"})),
    ),
    Case(
        "verify-stac-assets-list",
        ("verify", "{bad}"),
        FAIL,
        r"'assets' must be a mapping",
        _edit_item(lambda item: item.update(assets=list(item["assets"].values()))),
    ),
    Case(
        "verify-stac-checksum-number",
        ("verify", "{bad}"),
        FAIL,
        r"file:checksum 5 is not a multihash",
        _edit_item(lambda item: next(iter(item["assets"].values())).update({"file:checksum": 5})),
    ),
    Case("verify-declared-4gib", ("verify", "{bad}"), FAIL, r"declares \d+ B.*(past the end|stores)", _declared_4gib),
    Case(
        "verify-deflate-bomb",
        ("verify", "{bad}"),
        FAIL,
        r"zarr\.json' is compressed.*archives are stored",
        _deflate_bomb,
    ),
    Case("verify-md5-mismatch", ("verify", "{bad}"), FAIL, r"README\.md: md5 .* does not match", _bad_md5),
    Case("verify-no-md5sums", ("verify", "{bad}"), FAIL, "has no MD5SUMS", _no_md5sums),
    # search, export-raster, timeseries
    Case(
        "search-aoi-malformed",
        ("search", "--aoi", "1,2,3", "--start", "{start}", "--end", "{end}", "--catalog", "{cat}"),
        INPUT,
        "aoi",
    ),
    Case(
        "search-dates-reversed",
        ("search", "--aoi", "{aoi}", "--start", "{end}", "--end", "{start}", "--catalog", "{cat}"),
        INPUT,
        "start",
    ),
    Case(
        "export-raster-var-missing", ("export-raster", "{cube}", "--var", "nope", "--out", "{tmp}/r.tif"), INPUT, "nope"
    ),
    Case(
        "export-raster-pair",
        ("export-raster", "{cube}", "--var", "vv_diff", "--pair", "99", "--out", "{tmp}/r.tif"),
        INPUT,
        "99",
    ),
    Case(
        "timeseries-point-outside",
        ("timeseries", "{cube}", "--point", "170,-80", "--out", "{tmp}/t.png"),
        INPUT,
        "outside",
    ),
    Case(
        "timeseries-point-malformed",
        ("timeseries", "{cube}", "--point", "abc", "--out", "{tmp}/t.png"),
        INPUT,
        "--point",
    ),
    # demo
    Case("demo-workdir-file", ("demo", "--workdir", "{file}"), USAGE, "existing", _existing_file),
    Case("demo-size", ("demo", "--workdir", "{tmp}/demo", "--size", "8"), INPUT, "--size"),
]


def _fill(argv: tuple[str, ...], fields: dict[str, str]) -> list[str]:
    return [re.sub(r"\{([\w.]+)\}", lambda m: fields.get(m.group(1), m.group(0)), arg) for arg in argv]


def test_table_covers_every_verb_with_enough_rows():
    verbs = {case.argv[0] for case in CASES}
    assert set(cli.COMMANDS) <= verbs, set(cli.COMMANDS) - verbs
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gets_one_line_and_leaves_the_cube(case, world, tmp_path, capsys):
    fields = {**world.fields(), "tmp": str(tmp_path)}
    if case.setup is not None:
        fields.update(case.setup(world, tmp_path))
    before = tree_md5(world.cube), tree_md5(world.pub)
    capsys.readouterr()
    code = cli.main(_fill(case.argv, fields))
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == case.code, (code, err[-2000:])
    assert len(lines) == 1 and "Traceback" not in err + out, err[-2000:]
    assert re.search(case.message, lines[0]), lines[0]
    assert lines[0].startswith("Error") and len(lines[0]) < 1000, lines[0][:300]
    if case.never:
        assert case.never not in lines[0]
    assert (tree_md5(world.cube), tree_md5(world.pub)) == before


def test_invalid_label_polygon_is_repaired_with_a_warning(world, tmp_path, capsys):
    cube = _copy(world.cube, tmp_path / "c.zarr")
    (a, b, c, d, _) = _cube_ring(world)
    bowtie = [a, c, b, d, a]  # self-intersecting
    path = tmp_path / "bowtie.geojson"
    path.write_text(_geojson([_polygon(bowtie, date="2020-01-05")]))
    assert cli.main(["add-layer", str(cube), "--labels", str(path), "--date-field", "date", "--overwrite"]) == 0
    err = capsys.readouterr().err
    assert "repaired 1 invalid (self-intersecting) polygon(s), feature(s) 0" in err
    label = schema.open_cube(cube)[schema.LABEL].values
    assert (label == 1).sum() > 0


def _drop_file_override() -> None:
    """In the child: without CAP_DAC_OVERRIDE/READ_SEARCH/FOWNER even root meets file modes (no-op for others)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2, 3):
        libc.prctl(24, capability, 0, 0, 0)  # PR_CAPBSET_DROP: gone after exec


@pytest.mark.skipif(sys.platform != "linux", reason="capability bounding set is Linux's")
def test_read_only_targets_get_one_line(world, tmp_path):
    """features/add-layer/predict on a read-only cube, build into a read-only folder: one line each, nothing changed."""
    cube = _copy(world.cube, tmp_path / "ro" / "c.zarr")
    labels = tmp_path / "labels.geojson"
    labels.write_text(_geojson([_polygon(_cube_ring(world), date="2020-01-05")]))
    for path in [cube.parent, cube, *cube.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    before = tree_md5(cube)
    runs = [
        ["features", str(cube), "--no-par", "--no-terrain"],
        ["add-layer", str(cube), "--labels", str(labels), "--date-field", "date", "--overwrite"],
        ["predict", str(cube), "--run", str(world.run), "--name", "other", "--no-tta"],
        [*_fill(BUILD, world.fields()), "--out", str(cube.parent / "new.zarr")],
    ]
    driver = textwrap.dedent("""
        import contextlib, io, json, sys, time
        from sarcube.pipelines import cli
        results = []
        for argv in json.loads(sys.argv[1]):
            err = io.StringIO()
            started = time.perf_counter()
            with contextlib.redirect_stderr(err):
                code = cli.main(argv)
            results.append([code, err.getvalue(), time.perf_counter() - started])
        print(json.dumps(results))
    """)
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "TQDM_DISABLE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", driver, json.dumps(runs)],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_drop_file_override,
        env=env,
    )
    try:
        assert proc.returncode == 0, proc.stderr[-3000:]
        results = json.loads(proc.stdout.splitlines()[-1])
        for argv, (code, err, _seconds) in zip(runs, results, strict=True):
            lines = [line for line in err.splitlines() if line.strip()]
            assert code == FAIL and len(lines) == 1 and "Traceback" not in err, (argv[:2], err[-2000:])
            assert re.search(r"cannot use '.*(c|new)\.zarr': permission denied", lines[0]), (
                argv[:2],
                lines[0],
                results,
            )
        assert tree_md5(cube) == before
    finally:
        for path in [cube.parent, cube, *cube.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)


def test_member_checks_refuse_before_reading(world, tmp_path):
    """The bomb is refused from its headers: a file of about a megabyte that declares 1 GiB is never inflated."""
    folder = Path(_deflate_bomb(world, tmp_path)["bad"])
    zip_path = _zip_of(folder)
    assert zip_path.stat().st_size < 4 * (1 << 20)
    with zipfile.ZipFile(zip_path) as zf:
        assert zf.infolist()[0].file_size == GIB and zf.infolist()[0].compress_type == zipfile.ZIP_DEFLATED
        with pytest.raises(VerifyError, match="is compressed"):
            check_member_layout(zip_path, zf)
