"""Loading STAC assets onto one cube grid.

The AOI (lon/lat) picks the grid: its UTM zone by default, pixel edges
snapped to multiples of the resolution. Backscatter assets are read with
odc-stac onto that grid, converted from linear gamma0 to dB, with nodata and
zero-filled scene borders set to NaN; items of the same orbit direction,
relative orbit and solar day are mosaicked into one time step. The DEM is
reprojected bilinearly onto the same grid.

Why odc-stac and not stackstac: odc-stac fuses several items into one time
step with a nodata-aware first-valid mosaic, reads a plain window when the
source grid already matches (no warp), picks overviews when shrinking, and
takes a *reader driver* (``odc.stac.load(driver=...)``): our
:class:`SigningDriver` wraps odc's ``RioReader`` so each asset is signed right
before rasterio opens it (``patch_url`` signs while the graph is built, and SAS
tokens expire after about 45 minutes), retried with backoff, and a final
failure names the STAC item and asset. stackstac takes signed hrefs up
front and has no hook at read time.

How the odc-stac options are used:

- ``groupby``: ``"solar_day"`` would mosaic the ascending and descending
  passes of one day (different viewing geometry) into one image; we group
  ourselves by (orbit direction, relative orbit, solar day) and hand odc a
  callable that returns each item's position in our list of acquisitions.
- ``geobox`` instead of ``bbox``/``geopolygon`` + ``crs``/``resolution``: the
  grid (UTM zone, edges snapped to the resolution) is decided once by
  :func:`sarcube.datacube.grid.grid_for`, so a build, its resume and an ``--append`` all land on
  exactly the same pixels whatever items they read.
- ``resampling`` per collection from the catalog YAML: ``average`` for
  backscatter (10 m -> 20 m multilooking), ``bilinear`` for the DEM;
  ``use_overviews=False`` because many COGs' overviews are resampled without
  regard to nodata and bleed scene borders into the mosaic.
- ``nodata``: the source nodata comes from the YAML through ``stac_cfg``;
  the output fill is NaN (``nodata=np.nan``), and exact zeros of backscatter
  (zero-filled borders) become NaN in :class:`SigningReader` before the
  NaN-aware first-valid fuser (:func:`fill_missing`) mosaics the items.
- ``dtype="float32"``; ``chunks``: :data:`READ_CHUNK` (:data:`DEM_READ_CHUNK`
  for the DEM), a multiple of the storage chunk so region writes line up,
  small enough to bound memory.
- ``fail_on_error=True``: with False a failed asset silently becomes a NaN
  hole that looks like nodata; we retry, then stop naming the item.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import warnings
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from sarcube.datacube import schema
from sarcube.datacube.catalog import (
    SIGNERS,
    Catalog,
    CollectionSource,
    asset_href,
    item_datetime,
)
from sarcube.datacube.grid import Grid
from sarcube.datacube.redaction import RedactQueries, redact
from sarcube.datacube.retry import READ_ATTEMPTS, retry, retry_backoff_s
from sarcube.errors import AssetReadError, CatalogError

log = logging.getLogger(__name__)

#: pixels per side of one backscatter read task: whole storage chunks (so region
#: writes line up), several at once so each asset is opened a few times, not per
#: chunk, and few enough that the tasks of a batch in flight stay small whatever
#: the scene (1024 px: a 2048 px build peaked at 538 MiB with 2048 px tasks, 307 with these)
READ_CHUNK = 2 * schema.CHUNK_YX
#: pixels per side of one DEM read task: the DEM is warped onto the grid and odc warps
#: each task on its own, so its chunking is part of the result. The backscatter's size:
#: with 2048 px tasks two concurrent warps made the DEM step the build's peak (a 4096 px
#: build peaked at 447 MiB, 325 with these; 308 at 1024 px). Scenes up to 1024 px are one
#: task either way (the same DEM as before); larger ones differ by at most ~4 cm at task borders
DEM_READ_CHUNK = READ_CHUNK
#: degrees of longitude per hour of solar time
DEG_PER_HOUR = 15.0


# --- acquisitions -------------------------------------------------------------------

@dataclass(frozen=True)
class Acquisition:
    """One cube time step: the items of one orbit pass on one solar day."""

    time: np.datetime64
    platform: str
    orbit_state: str
    relative_orbit: int
    items: tuple[Any, ...] = field(repr=False)

    @property
    def item_ids(self) -> str:
        return ",".join(i.id for i in self.items)

    @property
    def key(self) -> str:
        """Stable name of the time step (used as resume marker)."""
        return str(np.datetime_as_string(self.time, unit="s"))


def _naive_utc(when: dt.datetime) -> np.datetime64:
    """UTC, floored to whole seconds (the contract stores times as int64 seconds)."""
    return np.datetime64(when.astimezone(dt.UTC).replace(tzinfo=None, microsecond=0), "s").astype("datetime64[ns]")


def group_acquisitions(items: Sequence[Any], properties: Mapping[str, str], lon: float) -> list[Acquisition]:
    """Mosaic groups keyed by (orbit direction, relative orbit, solar day at ``lon``), sorted by time."""
    groups: dict[tuple[str, int, dt.date], list[Any]] = {}
    for item in items:
        when = item_datetime(item)
        solar_day = (when + dt.timedelta(hours=lon / DEG_PER_HOUR)).date()
        orbit = str(item.properties.get(properties[schema.ORBIT_STATE], ""))
        raw = item.properties.get(properties[schema.RELATIVE_ORBIT], -1)
        if isinstance(raw, bool) or not isinstance(raw, int | float) or raw != int(raw):
            raise CatalogError(
                f"STAC item {item.id!r}: {properties[schema.RELATIVE_ORBIT]}={raw!r} is not an orbit number: "
                "fix the item in the catalog or leave it out"
            )
        rel = int(raw)
        groups.setdefault((orbit, rel, solar_day), []).append(item)
    out = []
    for (orbit, rel, _), members in groups.items():
        members = sorted(members, key=lambda i: (item_datetime(i), i.id))
        first = members[0]
        platforms = sorted({str(i.properties.get(properties[schema.PLATFORM], "")) for i in members})
        out.append(Acquisition(_naive_utc(item_datetime(first)), "+".join(platforms), orbit, rel, tuple(members)))
    out.sort(key=lambda a: a.time)
    return out


# --- reading with signing and retries ---------------------------------------------

for _name in ("odc.loader._rio", "odc.loader", "odc.stac", "rasterio"):
    logging.getLogger(_name).addFilter(RedactQueries())

# rasterio wraps odc's numpy destination in an in-memory dataset before giving
# it the transform, and warns about the moment in between (the result is right).
warnings.filterwarnings("ignore", message="Dataset has no geotransform", module=r"rasterio\.warp")


@dataclass(frozen=True)
class ReadPlan:
    """What a reader needs to know about the assets of one load (picklable)."""

    signing: str | None
    #: unsigned href -> (item id, asset key)
    origins: Mapping[str, tuple[str, str]]
    #: exact zeros are missing data (zero-filled scene borders of backscatter)
    zero_is_nodata: bool = False
    attempts: int = READ_ATTEMPTS
    backoff_s: float = 0.5


class SigningReader:
    """odc's ``RioReader`` behind signing at read time, retries and named failures."""

    def __init__(self, src: Any, ctx: Any, plan: ReadPlan) -> None:
        self._src = src
        self._ctx = ctx
        self._plan = plan

    def read(
        self, cfg: Any, dst_geobox: Any, *, dst: np.ndarray | None = None, selection: Any = None
    ) -> tuple[Any, np.ndarray]:
        import rasterio.errors
        from odc.loader import RioReader

        href = self._src.uri
        signer = SIGNERS[self._plan.signing] if self._plan.signing else None

        def attempt() -> tuple[Any, np.ndarray]:
            src = self._src.patch(uri=signer(href)) if signer else self._src
            return RioReader(src, self._ctx).read(cfg, dst_geobox, dst=dst, selection=selection)

        item_id, asset = self._plan.origins.get(href, ("?", href))
        try:
            roi, pix = retry(
                attempt,
                retry_on=(rasterio.errors.RasterioError, OSError),
                attempts=self._plan.attempts,
                backoff_s=self._plan.backoff_s,
                what=f"reading asset {asset!r} of item {item_id!r}",
            )
        except (rasterio.errors.RasterioError, OSError) as err:
            raise AssetReadError(
                f"asset {asset!r} of STAC item {item_id!r} could not be read after {self._plan.attempts} tries "
                f"({redact(str(err))[:300]}); check the catalog or the network and run the same command again to resume"
            ) from None
        if self._plan.zero_is_nodata and pix.dtype.kind == "f":
            np.copyto(pix, np.float32(np.nan), where=pix == 0)
        return roi, pix


class SigningDriver:
    """An odc-loader reader driver: ``RioDriver`` with :class:`SigningReader` readers."""

    def __init__(self, plan: ReadPlan) -> None:
        from odc.loader import RioDriver

        self._rio = RioDriver()
        self.plan = plan

    def new_load(self, geobox: Any, *, chunks: Any = None) -> Any:
        return self._rio.new_load(geobox, chunks=chunks)

    def finalise_load(self, load_state: Any) -> Any:
        return self._rio.finalise_load(load_state)

    def capture_env(self) -> dict[str, Any]:
        return self._rio.capture_env()

    @contextmanager
    def restore_env(self, env: dict[str, Any], load_state: Any):  # type: ignore[no-untyped-def]
        with self._rio.restore_env(env, load_state) as ctx:
            yield ctx

    def open(self, src: Any, ctx: Any) -> SigningReader:
        return SigningReader(src, ctx, self.plan)

    @property
    def md_parser(self) -> Any:
        return None

    @property
    def dask_reader(self) -> Any:
        return None

    @property
    def aux_reader(self) -> Any:
        return None


def to_db(linear: np.ndarray) -> np.ndarray:
    """10 log10 of linear power, float32; zero, negative and missing values -> NaN."""
    linear = np.asarray(linear, dtype="float32")
    out = np.full(linear.shape, np.nan, dtype="float32")
    valid = linear > 0
    np.log10(linear, out=out, where=valid)
    out *= np.float32(10.0)
    return out


def _load(
    groups: Sequence[Sequence[Any]],
    catalog: Catalog,
    coll: CollectionSource,
    variables: Sequence[str],
    grid: Grid,
    *,
    zero_is_nodata: bool,
    fail_on_error: bool = True,
    read_chunk: int = READ_CHUNK,
) -> xr.Dataset:
    """odc-stac load of ``variables`` onto ``grid``.

    One time step per group of items, each group mosaicked (dask, lazy).
    """
    import odc.stac

    _configure_gdal()
    keys = [coll.assets[v] for v in variables]
    items = [item for group in groups for item in group]
    position = {item.id: k for k, group in enumerate(groups) for item in group}
    origins = {asset_href(item, k): (item.id, k) for item in items for k in keys}
    stac_cfg = {coll.collection: {"assets": {k: {"data_type": "float32", "nodata": coll.nodata} for k in keys}}}
    chunks = {schema.Y: read_chunk, schema.X: read_chunk}
    # Item hrefs stay unsigned here; SigningReader signs each one as it is opened.
    loaded = odc.stac.load(
        items,
        bands=keys,
        geobox=grid.geobox(),
        groupby=functools.partial(_group_position, position),  # odc sorts groups by key: our order
        resampling=coll.resampling,
        dtype="float32",
        chunks=chunks,
        stac_cfg=stac_cfg,
        driver=SigningDriver(ReadPlan(catalog.source.signing, origins, zero_is_nodata, backoff_s=retry_backoff_s())),
        fail_on_error=fail_on_error,
        nodata=np.nan,  # the mosaic's fill: NaN marks pixels the next item may fill
        fuse_func=f"{__name__}.fill_missing",
        # Full-resolution reads: overviews are resampled without regard to
        # nodata in many COGs (values bleed from scene borders into the mosaic).
        use_overviews=False,
    )
    loaded = loaded.rename({k: v for k, v in zip(keys, variables, strict=True)})
    return loaded.drop_vars([c for c in loaded.coords if c not in schema.SPATIAL_DIMS])


@functools.cache
def _configure_gdal() -> None:
    """odc's cloud defaults for GDAL, once: no directory listing on open (signed
    URLs cannot list), and GDAL's own HTTP retries under our retries. odc's
    driver carries them into every read task, on a cluster too."""
    from odc.stac import configure_rio

    configure_rio(cloud_defaults=True)


def fill_missing(dst: np.ndarray, src: np.ndarray) -> None:
    """Mosaic fuser: copy ``src`` where ``dst`` is still NaN (first valid item wins)."""
    np.copyto(dst, src, where=np.isnan(dst))


def _group_position(position: Mapping[str, int], item: Any, parsed: Any, idx: int) -> int:
    return position[item.id]


def load_backscatter(
    acquisitions: Acquisition | Sequence[Acquisition],
    catalog: Catalog,
    grid: Grid,
    variables: Sequence[str] = schema.BACKSCATTER,
) -> dict[str, xr.DataArray]:
    """Backscatter in dB on ``grid`` for one or several acquisitions.

    Lazy (time, y, x) arrays chunked (1, READ_CHUNK, READ_CHUNK).
    """
    if isinstance(acquisitions, Acquisition):
        acquisitions = [acquisitions]
    coll = catalog.source.backscatter
    linear = _load([a.items for a in acquisitions], catalog, coll, variables, grid, zero_is_nodata=True)
    out = {}
    for name in variables:
        db = linear[name].data.map_blocks(to_db, dtype="float32")
        out[name] = schema.make_variable(name, xr.DataArray(db, dims=(schema.TIME, *schema.SPATIAL_DIMS)))
    return out


def load_dem(items: Sequence[Any], catalog: Catalog, grid: Grid) -> xr.DataArray:
    """The elevation tiles mosaicked and resampled (bilinear by default) onto ``grid``: lazy (y, x)."""
    coll = catalog.source.dem
    loaded = _load([items], catalog, coll, (schema.DEM,), grid, zero_is_nodata=False, read_chunk=DEM_READ_CHUNK)
    return schema.make_variable(schema.DEM, xr.DataArray(loaded[schema.DEM].data[0], dims=schema.SPATIAL_DIMS))


__all__ = [
    "Acquisition",
    "DEM_READ_CHUNK",
    "READ_CHUNK",
    "ReadPlan",
    "SigningDriver",
    "SigningReader",
    "group_acquisitions",
    "load_backscatter",
    "load_dem",
    "to_db",
]
