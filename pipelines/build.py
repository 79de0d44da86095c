"""``sarcube build``: an analysis-ready cube from an AOI and a date range.

Search (``datacube.catalog``) -> group items into acquisitions and load them
onto one grid (``datacube.load``) -> write through ``datacube.store``.

The build is resumable: it first writes the whole store's metadata (all time
steps, the grid, the attrs) with the data still unwritten, and records the
steps left to do in the global attr ``sarcube_build_pending``. Steps are then
written by region a few at a time, each batch crossed off the list once it is
on disk. Run again with the same arguments, an interrupted build writes only
the steps still listed; the finished cube no longer has the attribute.
``--append`` adds the acquisitions that are not in the cube yet the same way.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np
import xarray as xr

from sarcube.datacube import dates, load, lock, schema, store, zarrio
from sarcube.datacube.catalog import (
    DEFAULT_CATALOG,
    Catalog,
    open_catalog,
    provenance,
    search_backscatter,
    search_dem,
)
from sarcube.datacube.grid import DEFAULT_RESOLUTION_M, grid_for, parse_aoi, pyproj_crs
from sarcube.errors import CatalogError, CubeExistsError, InputError
from sarcube.pipelines import _dask
from sarcube.pipelines._query import query_options
from sarcube.pipelines._storage import storage_options_option
from sarcube.pipelines.build_writes import DEM_STEP, lazy_nan, step_key, time_dataset, write_steps

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildRequest:
    """What a build was asked for (recorded while it runs, to resume only the same build)."""

    aoi: str  # GeoJSON
    start: str
    end: str
    catalog: str
    resolution: float
    crs: str
    orbit: str | None
    relative_orbit: int | None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def _check_orbit(orbit: str | None) -> str | None:
    if orbit is None:
        return None
    value = str(orbit).lower()
    if value not in (schema.ORBIT_ASCENDING, schema.ORBIT_DESCENDING):
        raise InputError(f"--orbit {orbit!r} must be {schema.ORBIT_ASCENDING} or {schema.ORBIT_DESCENDING}")
    return value


def _pass_key(time: np.datetime64, orbit_state: str, relative_orbit: int, lon: float) -> tuple[str, int, dt.date]:
    """(orbit, track, solar day) of a stored time step, as :func:`load.group_acquisitions` keys them."""
    when = dt.datetime.fromisoformat(step_key(time)).replace(tzinfo=dt.UTC)
    return str(orbit_state), int(relative_orbit), (when + dt.timedelta(hours=lon / load.DEG_PER_HOUR)).date()


def _provenance(
    acquisitions: Sequence[load.Acquisition], dem_items: Sequence[Any], catalog: Catalog
) -> list[dict[str, Any]]:
    src = catalog.source
    items = [i for a in acquisitions for i in a.items]
    backscatter = provenance(items, list(src.backscatter.assets.values()))
    return backscatter + provenance(dem_items, list(src.dem.assets.values()))


def _history_line(request: BuildRequest, append: bool) -> str:
    parts = [
        f"sarcube build --start {request.start} --end {request.end} --catalog {request.catalog} --resolution "
        f"{request.resolution:g} --crs {request.crs}"
    ]
    if request.orbit:
        parts.append(f"--orbit {request.orbit}")
    if request.relative_orbit is not None:
        parts.append(f"--relative-orbit {request.relative_orbit}")
    if append:
        parts.append("--append")
    return " ".join(parts)


@lock.writing_step("sarcube build", path="out")
def build(
    aoi: str | tuple[float, float, float, float],
    start: str,
    end: str,
    out: str | Path,
    *,
    catalog: str = DEFAULT_CATALOG,
    resolution: float = DEFAULT_RESOLUTION_M,
    crs: str = "utm",
    orbit: str | None = None,
    relative_orbit: int | None = None,
    scheduler: str | None = None,
    append: bool = False,
    overwrite: bool = False,
    force: bool = False,
    codec: str | None = None,
    wait_s: float = 0.0,
    storage_options: Mapping[str, Any] | None = None,
) -> Path | str:
    """Build (or with ``append`` extend, or resume) the cube ``out`` from a STAC catalog.

    ``aoi`` is ``W,S,E,N`` in degrees or a GeoJSON polygon file; ``start``/``end``
    are inclusive UTC dates. The grid is the AOI's UTM zone (or ``crs``) at
    ``resolution`` metres; ``vv``/``vh`` are in dB, ``dem`` in metres.
    ``codec`` (``schema.CODECS``; default ``schema.DEFAULT_CODEC``) compresses
    every chunk of a new cube, and every later layer; an existing cube keeps its own.
    ``wait_s``: how long to wait for another writer of ``out`` (see :mod:`sarcube.datacube.lock`).
    Returns ``out``.
    """
    import shapely.geometry

    if append and overwrite:
        raise InputError("--append and --overwrite exclude each other: choose one")
    geometry = parse_aoi(aoi)
    start_dt = dates.to_datetime(dates.parse_time(start, "--start"))
    end_dt = dates.to_datetime(dates.parse_time(end, "--end", end_of_day=True))
    if start_dt > end_dt:
        raise InputError(f"--start {start} is after --end {end}: swap them")
    orbit = _check_orbit(orbit)
    if codec is not None:
        schema.compressors(codec)  # an unknown codec fails before any search
    grid = grid_for(geometry, crs=crs, resolution=resolution, force=force)
    cat = open_catalog(catalog)
    request = BuildRequest(
        aoi=schema.encode_json_attr(shapely.geometry.mapping(geometry)),
        start=str(start), end=str(end), catalog=cat.label, resolution=float(resolution),
        crs=str(crs), orbit=orbit, relative_orbit=None if relative_orbit is None else int(relative_orbit),
    )
    lon = geometry.centroid.x
    out_is_url = "://" in str(out)
    exists = zarrio.exists(out, storage_options)
    resuming = False
    replace = exists and overwrite  # removed only once the searches found what replaces it
    if replace:
        exists = False
    elif exists:
        current = schema.open_cube(out, validate=False, storage_options=storage_options)
        pending_request = current.attrs.get(schema.ATTR_BUILD_REQUEST)
        if pending_request is None and schema.ATTR_BUILD_PENDING in current.attrs:
            # A build stopped while writing its template: nothing in it is worth keeping.
            log.info("%s: the previous build stopped before its template was complete; starting over", out)
            replace, exists = True, False
        elif pending_request is not None:
            if pending_request != request.to_json():
                raise CubeExistsError(
                    f"{str(out)!r} holds an unfinished build with other arguments: run that build again to finish it, "
                    "or pass --overwrite"
                )
            resuming = True
        elif not append:
            raise CubeExistsError(
                f"output {str(out)!r} exists: pass --overwrite to replace it or --append to extend it"
            )
        if codec is not None and codec != schema.codec_of(current.attrs):
            raise InputError(
                f"--codec {codec}: {str(out)!r} is written with {schema.codec_of(current.attrs)}; drop --codec, or "
                "--overwrite"
            )
    elif append:
        raise InputError(
            f"--append needs an existing cube, and {str(out)!r} does not exist: drop --append to create it"
        )

    items = search_backscatter(
        cat, geometry.bounds, start_dt, end_dt, orbit_state=orbit, relative_orbit=request.relative_orbit
    )
    acquisitions = load.group_acquisitions(items, cat.source.properties, lon)
    by_key = {a.key: a for a in acquisitions}
    dem_items: list[Any] = []

    with _dask.scheduler(scheduler) as client:
        if resuming:
            # A kill between an attribute write and its reconsolidation leaves
            # stale consolidated metadata: rebuild it from the arrays first.
            zarrio.consolidate(out, storage_options)
            current = schema.open_cube(out, validate=False, storage_options=storage_options)
            pending = json.loads(current.attrs.get(schema.ATTR_BUILD_PENDING, "[]"))
            missing = [k for k in pending if k != DEM_STEP and k not in by_key]
            if missing:
                raise CatalogError(
                    f"the catalog no longer lists acquisitions {missing} of the unfinished build in {str(out)!r}: pass "
                    "--overwrite to start over"
                )
            if DEM_STEP in pending:
                dem_items = search_dem(cat, geometry.bounds)
            stored = {step_key(t) for t in current[schema.TIME].values} if schema.TIME in current.dims else set()
            unstored = [by_key[k] for k in pending if k != DEM_STEP and k not in stored]
            if unstored:  # an --append stopped before its time steps were added
                store.append_template(time_dataset(unstored, grid), out, storage_options=storage_options)
            log.info("resuming %s: %d steps left", out, len(pending))
            write_steps(out, pending, by_key, dem_items, cat, grid, storage_options, client)
        elif exists:  # --append
            cube = schema.open_cube(out, storage_options=storage_options)
            if not grid.same_as(cube[schema.X].values, cube[schema.Y].values) or cube.rio.crs != pyproj_crs(grid.crs):
                raise InputError(
                    f"--append: this --aoi/--resolution/--crs gives another grid than {str(out)!r}; use the cube's own "
                    "AOI, resolution and CRS"
                )
            derived = sorted(
                str(n) for n, v in cube.data_vars.items() if schema.TIME in v.dims and n not in schema.BACKSCATTER
            )
            if derived:
                raise InputError(
                    f"--append: {str(out)!r} holds {derived} computed on its current time steps; remove them (or build "
                    "a new cube), append, then recompute them"
                )
            have = {
                _pass_key(t, o, r, lon)
                for t, o, r in zip(
                    cube[schema.TIME].values,
                    cube[schema.ORBIT_STATE].values,
                    cube[schema.RELATIVE_ORBIT].values,
                    strict=True,
                )
            }
            have_times = {step_key(t) for t in cube[schema.TIME].values}
            new = [
                a
                for a in acquisitions
                if a.key not in have_times and _pass_key(a.time, a.orbit_state, a.relative_orbit, lon) not in have
            ]
            if not new:
                log.info("no new acquisitions for %s", out)
                store.append_history(out, _history_line(request, append=True) + " (nothing new)", storage_options)
                return out if out_is_url else Path(out)
            old_items = schema.decode_json_attr(cube, schema.ATTR_STAC_ITEMS, default=[])
            attrs = {
                schema.ATTR_START: min(str(cube.attrs.get(schema.ATTR_START, start)), str(start)),
                schema.ATTR_END: max(str(cube.attrs.get(schema.ATTR_END, end)), str(end)),
                schema.ATTR_STAC_ITEMS: schema.encode_json_attr(old_items + _provenance(new, [], cat)),
                schema.ATTR_BUILD_REQUEST: request.to_json(),
                schema.ATTR_BUILD_PENDING: json.dumps([a.key for a in new]),
            }
            store.update_attrs(out, attrs, storage_options)
            store.append_template(time_dataset(new, grid), out, storage_options=storage_options)
            write_steps(out, [a.key for a in new], by_key, [], cat, grid, storage_options, client)
        else:
            dem_items = search_dem(cat, geometry.bounds)
            w, s, e, n = geometry.bounds
            attrs = {
                schema.ATTR_TITLE: f"Sentinel-1 backscatter and terrain, lon {w:.3f}..{e:.3f}, lat {s:.3f}..{n:.3f}, "
                                   f"{start}..{end}",
                schema.ATTR_AOI: request.aoi,
                schema.ATTR_START: str(start),
                schema.ATTR_END: str(end),
                schema.ATTR_CATALOG: cat.label,
                schema.ATTR_COLLECTIONS: schema.encode_json_attr(
                    [cat.source.backscatter.collection, cat.source.dem.collection]
                ),
                schema.ATTR_STAC_ITEMS: schema.encode_json_attr(_provenance(acquisitions, dem_items, cat)),
                schema.ATTR_HISTORY: "",
                schema.ATTR_CREATED: dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                schema.ATTR_CODEC: codec or schema.DEFAULT_CODEC,
                # every step is unwritten from the first byte of the store on (readers refuse it)
                schema.ATTR_BUILD_PENDING: json.dumps([DEM_STEP, *by_key]),
            }
            ds = schema.empty_cube(grid.x, grid.y, grid.crs, attrs)
            ds = ds.merge(time_dataset(acquisitions, grid))
            ds[schema.DEM] = schema.make_variable(
                schema.DEM, xr.DataArray(lazy_nan(grid.shape, schema.SPATIAL_DIMS), dims=schema.SPATIAL_DIMS)
            )
            ds = schema.with_crs(ds, grid.crs)
            if replace:
                zarrio.remove(out, storage_options)
            store.create_template(ds, out, storage_options=storage_options)
            # Only a complete template is resumable: the request comes last.
            store.update_attrs(out, {schema.ATTR_BUILD_REQUEST: request.to_json()}, storage_options)
            write_steps(out, [DEM_STEP, *by_key], by_key, dem_items, cat, grid, storage_options, client)

    store.remove_attrs(out, (schema.ATTR_BUILD_PENDING, schema.ATTR_BUILD_REQUEST), storage_options)
    store.append_history(out, _history_line(request, append=append), storage_options)
    log.info("built %s", out)
    return out if out_is_url else Path(out)


@click.command("build")
@query_options
@click.option("--out", required=True, help="Output cube (.zarr folder or fsspec URL).")
@click.option(
    "--scheduler", default=None, help="dask scheduler address (default: local threads, or DASK_SCHEDULER_ADDRESS)."
)
@click.option("--append", is_flag=True, help="Add new acquisitions to an existing cube.")
@click.option("--overwrite", is_flag=True, help="Replace an existing cube.")
@click.option("--force", is_flag=True, help="Allow an AOI larger than the pixel limit.")
@click.option(
    "--codec", type=click.Choice(schema.CODECS), default=None,
    help=f"Chunk compression of a new cube (default {schema.DEFAULT_CODEC}); gzip for GDAL builds without Blosc/zstd.",
)
@click.option("--wait", "wait_s", type=float, default=0.0, show_default=True, metavar="SECONDS",
              help="When another process is writing the cube, wait up to SECONDS for it (0: stop at once).")
@storage_options_option
def command(
    aoi: str,
    start: str,
    end: str,
    out: str,
    catalog: str,
    resolution: float,
    crs: str,
    orbit: str | None,
    relative_orbit: int | None,
    scheduler: str | None,
    append: bool,
    overwrite: bool,
    force: bool,
    codec: str | None,
    wait_s: float,
    storage_options: dict[str, Any] | None,
) -> None:
    """Build a Sentinel-1 + DEM cube for an AOI and a date range (resumable; --append to extend)."""
    path = build(
        aoi,
        start,
        end,
        out,
        catalog=catalog,
        resolution=resolution,
        crs=crs,
        orbit=orbit,
        relative_orbit=relative_orbit,
        scheduler=scheduler,
        append=append,
        overwrite=overwrite,
        force=force,
        codec=codec,
        wait_s=wait_s,
        storage_options=storage_options,
    )
    click.echo(f"wrote {path}")
