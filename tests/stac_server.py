"""Test helpers for STAC: a tiny Planetary Computer-shaped catalog, and ``rustac serve`` on 127.0.0.1.

``write_test_catalog`` writes a static catalog of a few small COGs shaped like
Planetary Computer's ``sentinel-1-rtc`` (assets ``vv``/``vh``: linear gamma0
float32, nodata -32768, zero-filled borders, UTM, 10 m) and
``cop-dem-glo-30`` (asset ``data``: EPSG:4326), written by the project's one
COG writer (:func:`sarcube.datacube.cog.write_cog`). One date has two frames
of the same orbit that overlap (a mosaic), and both orbit directions appear.

``serve_stac`` starts ``rustac serve`` with those items (absolute hrefs) on
a free loopback port, waits until it answers, and stops it on exit. The
server is also started under ``timeout`` so it dies by itself if the test
process is killed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sarcube.datacube.cog import write_cog

UTM_EPSG = 32632
#: top-left of the S1 raster grid (UTM 32N, near lon 8.0, lat 46.0)
ORIGIN_X, ORIGIN_Y = 422_000.0, 5_096_000.0
PIXEL_M = 10.0
SIZE = 200  # pixels of each S1 frame side
S1_NODATA = -32768.0
SERVER_LIFETIME_S = 300

#: (datetime, platform, orbit_state, relative_orbit, frames)
ACQUISITIONS = (
    ("2021-01-03T05:30:00Z", "SENTINEL-1A", "descending", 66, ("north", "south")),
    ("2021-01-06T17:20:00Z", "SENTINEL-1B", "ascending", 15, ("full",)),
    ("2021-01-09T05:30:00Z", "SENTINEL-1B", "descending", 66, ("full",)),
    ("2021-01-15T05:30:00Z", "SENTINEL-1A", "descending", 66, ("full",)),
    ("2021-01-18T17:20:00Z", "SENTINEL-1A", "ascending", 15, ("full",)),
)


@dataclass(frozen=True)
class TestCatalog:
    """Where the test catalog lies and an AOI inside it."""

    root: Path
    #: lon/lat bbox well inside the rasters
    aoi: tuple[float, float, float, float]
    start: str
    end: str

    @property
    def catalog_json(self) -> Path:
        return self.root / "catalog.json"


def _frame_rows(frame: str) -> tuple[int, int]:
    return {"north": (0, 120), "south": (90, SIZE), "full": (0, SIZE)}[frame]


def write_test_catalog(root: str | Path, *, seed: int = 0, size: int = SIZE) -> TestCatalog:
    """Write the catalog into ``root`` (created); returns its paths and AOI."""
    import pystac
    import rasterio.transform
    from pyproj import Transformer

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    catalog = pystac.Catalog("sarcube-test", "tiny Planetary Computer-shaped catalog for tests")
    s1 = pystac.Collection(
        "sentinel-1-rtc",
        "test S1 RTC",
        pystac.Extent(
            pystac.SpatialExtent([[7.9, 45.9, 8.2, 46.1]]),
            pystac.TemporalExtent([[dt.datetime(2021, 1, 1, tzinfo=dt.UTC), dt.datetime(2021, 1, 31, tzinfo=dt.UTC)]]),
        ),
    )
    dem = pystac.Collection(
        "cop-dem-glo-30",
        "test DEM",
        pystac.Extent(
            pystac.SpatialExtent([[7.9, 45.9, 8.2, 46.1]]),
            pystac.TemporalExtent([[dt.datetime(2021, 4, 22, tzinfo=dt.UTC), None]]),
        ),
    )
    catalog.add_children([s1, dem])
    to_lonlat = Transformer.from_crs(UTM_EPSG, 4326, always_xy=True)
    base_db = rng.normal(-12.0, 2.0, (size, size)).astype("float32")
    for k, (when, platform, orbit, rel, frames) in enumerate(ACQUISITIONS):
        for frame in frames:
            r0, r1 = _frame_rows(frame) if size == SIZE else (0, size)
            rows = r1 - r0
            transform = rasterio.transform.from_origin(ORIGIN_X, ORIGIN_Y - r0 * PIXEL_M, PIXEL_M, PIXEL_M)
            item_id = f"S1_{when[:10].replace('-', '')}_{orbit[:3].upper()}_{rel:03d}_{frame}"
            folder = root / "sentinel-1-rtc" / item_id
            folder.mkdir(parents=True, exist_ok=True)
            assets = {}
            for key, offset in (("vv", 0.0), ("vh", -7.0)):
                db = base_db[r0:r1] + offset + 0.5 * k + rng.normal(0, 0.3, (rows, size)).astype("float32")
                linear = (10.0 ** (db / 10.0)).astype("float32")
                linear[:, :3] = 0.0  # zero-filled border, as in real RTC scenes
                linear[-2:, :] = S1_NODATA
                write_cog(folder / f"{key}.tif", linear, transform, f"EPSG:{UTM_EPSG}", S1_NODATA)
                assets[key] = pystac.Asset(
                    f"./{key}.tif",
                    media_type=pystac.MediaType.COG,
                    roles=["data"],
                    extra_fields={"raster:bands": [{"nodata": S1_NODATA, "data_type": "float32"}]},
                )
            x0, y1 = ORIGIN_X, ORIGIN_Y - r0 * PIXEL_M
            x1, y0 = ORIGIN_X + size * PIXEL_M, ORIGIN_Y - r1 * PIXEL_M
            ring = [to_lonlat.transform(x, y) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))]
            lons, lats = zip(*ring, strict=True)
            item = pystac.Item(
                item_id,
                {"type": "Polygon", "coordinates": [[list(p) for p in ring]]},
                [min(lons), min(lats), max(lons), max(lats)],
                dt.datetime.fromisoformat(when.replace("Z", "+00:00")),
                {
                    "platform": platform,
                    "sat:orbit_state": orbit,
                    "sat:relative_orbit": rel,
                    "proj:epsg": UTM_EPSG,
                    "proj:shape": [rows, size],
                    "proj:transform": list(transform)[:6],
                },
                collection=s1.id,
            )
            for key, asset in assets.items():
                item.add_asset(key, asset)
            s1.add_item(item)
    # DEM: one EPSG:4326 tile, 1 arc-second, a tilted plane with a bump.
    step = 1.0 / 3600.0
    lon0, lat1 = 7.95, 46.05
    n = int(round(0.1 / step))
    lon = lon0 + (np.arange(n) + 0.5) * step
    lat = lat1 - (np.arange(n) + 0.5) * step
    lo, la = np.meshgrid(lon, lat)
    elevation = (
        1500.0
        + 4000.0 * (la - 46.0)
        + 2000.0 * (lo - 8.0)
        + 200.0 * np.exp(-(((lo - 8.02) / 0.01) ** 2 + ((la - 46.0) / 0.01) ** 2))
    ).astype("float32")
    folder = root / "cop-dem-glo-30" / "dem_tile"
    folder.mkdir(parents=True, exist_ok=True)
    write_cog(folder / "data.tif", elevation, rasterio.transform.from_origin(lon0, lat1, step, step), "EPSG:4326", None)
    ring = [
        [lon0, lat1 - n * step],
        [lon0 + n * step, lat1 - n * step],
        [lon0 + n * step, lat1],
        [lon0, lat1],
        [lon0, lat1 - n * step],
    ]
    item = pystac.Item(
        "dem_tile", {"type": "Polygon", "coordinates": [ring]}, [lon0, lat1 - n * step, lon0 + n * step, lat1],
        dt.datetime(2021, 4, 22, tzinfo=dt.UTC),
        {"proj:epsg": 4326, "proj:shape": [n, n], "proj:transform": [step, 0.0, lon0, 0.0, -step, lat1]},
        collection=dem.id,
    )
    item.add_asset("data", pystac.Asset("./data.tif", media_type=pystac.MediaType.COG, roles=["data"]))
    dem.add_item(item)
    catalog.normalize_hrefs(str(root))
    catalog.make_all_asset_hrefs_relative()
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    # AOI: the middle of the frames, away from the borders
    (w, s), (e, n_) = (
        to_lonlat.transform(ORIGIN_X + 400, ORIGIN_Y - size * PIXEL_M + 400),
        to_lonlat.transform(ORIGIN_X + size * PIXEL_M - 400, ORIGIN_Y - 400),
    )
    return TestCatalog(root, (round(w, 5), round(s, 5), round(e, 5), round(n_, 5)), "2021-01-01", "2021-01-31")


def item_collection_files(catalog_json: str | Path, out_dir: str | Path) -> list[Path]:
    """The catalog's collections (without links) and one ItemCollection per collection, for ``rustac serve``.

    Hrefs are absolute.
    """
    import pystac

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cat = pystac.Catalog.from_file(str(catalog_json))
    files = []
    for coll in cat.get_children():
        items = []
        for item in coll.get_items():
            item.make_asset_hrefs_absolute()
            d = item.to_dict(include_self_link=False)
            d["links"] = []
            items.append(d)
        cd = coll.to_dict(include_self_link=False)
        cd["links"] = []
        cpath = out_dir / f"{coll.id}.collection.json"
        cpath.write_text(json.dumps(cd))
        ipath = out_dir / f"{coll.id}.items.json"
        ipath.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
        files += [cpath, ipath]
    return files


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rustac() -> str:
    exe = shutil.which("rustac") or str(Path(sys.executable).with_name("rustac"))
    if not Path(exe).exists():
        raise FileNotFoundError("rustac CLI not found: pip install rustac")
    return exe


@contextlib.contextmanager
def serve_stac(files: list[Path], *, lifetime_s: int = SERVER_LIFETIME_S) -> Iterator[str]:
    """Run ``rustac serve FILES`` on 127.0.0.1:<free port>; yields the API root URL."""
    port = _free_port()
    addr = f"127.0.0.1:{port}"
    cmd = [_rustac(), "serve", "--addr", addr, *map(str, files)]
    timeout = shutil.which("timeout")
    if timeout:  # the server dies by itself even if this process is killed
        cmd = [timeout, "-s", "KILL", str(lifetime_s), *cmd]
    # Own process group: killing it stops both `timeout` and the server under it.
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    url = f"http://{addr}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"rustac serve exited: {proc.stderr.read().decode()[-500:]}")
            try:
                with urllib.request.urlopen(url + "/", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
