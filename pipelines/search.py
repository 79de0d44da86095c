"""``sarcube search``: what a ``build`` with the same arguments would use, before it reads any asset.

Searches the catalog (``datacube.catalog``), groups the items into the
cube's time steps (``datacube.load.group_acquisitions``: one orbit pass per
solar day, mosaicked) and lists them with the DEM tiles and the grid, as a
table or as JSON. Only STAC metadata is read; no asset is opened.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import click
import numpy as np

from sarcube.datacube import dates, schema
from sarcube.datacube.catalog import DEFAULT_CATALOG, open_catalog, search_backscatter, search_dem
from sarcube.datacube.grid import DEFAULT_RESOLUTION_M, grid_for, parse_aoi
from sarcube.datacube.load import group_acquisitions
from sarcube.errors import InputError
from sarcube.pipelines._query import query_options


@dataclass(frozen=True)
class SearchResult:
    """The time steps, DEM tiles and grid a build would use."""

    #: one entry per cube time step: time (UTC), platform, orbit_state, relative_orbit, items (STAC ids)
    acquisitions: list[dict[str, Any]]
    #: STAC ids of the elevation tiles
    dem_items: list[str]
    #: grid: crs, resolution (m), shape (y, x)
    grid: dict[str, Any]
    catalog: str


def search(
    aoi: str | tuple[float, float, float, float],
    start: str,
    end: str,
    *,
    catalog: str = DEFAULT_CATALOG,
    resolution: float = DEFAULT_RESOLUTION_M,
    crs: str = "utm",
    orbit: str | None = None,
    relative_orbit: int | None = None,
    force: bool = False,
) -> SearchResult:
    """The acquisitions (cube time steps), DEM items and grid that ``build`` would use with these arguments."""
    geometry = parse_aoi(aoi)
    start_dt = dates.to_datetime(dates.parse_time(start, "--start"))
    end_dt = dates.to_datetime(dates.parse_time(end, "--end", end_of_day=True))
    if start_dt > end_dt:
        raise InputError(f"--start {start} is after --end {end}: swap them")
    if orbit is not None and orbit.lower() not in (schema.ORBIT_ASCENDING, schema.ORBIT_DESCENDING):
        raise InputError(f"--orbit {orbit!r} must be {schema.ORBIT_ASCENDING} or {schema.ORBIT_DESCENDING}")
    grid = grid_for(geometry, crs=crs, resolution=resolution, force=force)
    cat = open_catalog(catalog)
    items = search_backscatter(
        cat,
        geometry.bounds,
        start_dt,
        end_dt,
        orbit_state=orbit.lower() if orbit else None,
        relative_orbit=relative_orbit,
    )
    acquisitions = group_acquisitions(items, cat.source.properties, geometry.centroid.x)
    dem = search_dem(cat, geometry.bounds)
    return SearchResult(
        acquisitions=[
            {
                schema.TIME: str(np.datetime_as_string(a.time, unit="s")) + "Z",
                schema.PLATFORM: a.platform,
                schema.ORBIT_STATE: a.orbit_state,
                schema.RELATIVE_ORBIT: int(a.relative_orbit),
                "items": [i.id for i in a.items],
            }
            for a in acquisitions
        ],
        dem_items=[i.id for i in dem],
        grid={"crs": str(grid.crs), "resolution_m": float(resolution), "shape": [int(n) for n in grid.shape]},
        catalog=cat.label,
    )


def format_table(result: SearchResult) -> str:
    """The result as a plain-text table (one line per time step) with a summary line."""
    header = f"{'time (UTC)':<21} {schema.PLATFORM:<24} {'orbit':<11} {'rel.orbit':>9}  items"
    lines = [header]
    for a in result.acquisitions:
        lines.append(
            f"{a[schema.TIME]:<21} {a[schema.PLATFORM]:<24} {a[schema.ORBIT_STATE]:<11} {a[schema.RELATIVE_ORBIT]:>9}  "
            + ",".join(a["items"])
        )
    ny, nx = result.grid["shape"]
    lines.append(
        f"{len(result.acquisitions)} acquisitions, {len(result.dem_items)} DEM item(s); grid {ny} x {nx} px at "
        f"{result.grid['resolution_m']:g} m in {result.grid['crs']}; catalog {result.catalog}"
    )
    return "\n".join(lines)


@click.command("search")
@query_options
@click.option("--force", is_flag=True, help="Allow an AOI larger than the pixel limit.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def command(aoi: str, start: str, end: str, catalog: str, resolution: float, crs: str, orbit: str | None,
            relative_orbit: int | None, force: bool, as_json: bool) -> None:
    """List the acquisitions and DEM items a build with these arguments would use (reads no asset)."""
    result = search(aoi, start, end, catalog=catalog, resolution=resolution, crs=crs, orbit=orbit,
                    relative_orbit=relative_orbit, force=force)
    click.echo(json.dumps(asdict(result), indent=2) if as_json else format_table(result))
