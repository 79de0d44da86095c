"""``sarcube export CUBE --pred NAME --out detections.gpkg``: detections as polygons for a GIS.

The polygons are :func:`sarcube.pipelines.detections.detections`: the
thresholded prediction as 8-connected objects with dates, area, probability
and terrain; this step only writes them in the format of the file suffix:
GeoPackage in the cube's CRS (or ``--crs``) with typed date fields, GeoJSON
per RFC 7946 (lon/lat WGS 84, no ``crs`` member, every feature a
MultiPolygon, dates as ISO strings since JSON has no date type).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from sarcube.datacube import schema
from sarcube.errors import InputError
from sarcube.pipelines._storage import storage_options_option
from sarcube.pipelines.detections import MIN_AREA_M2, detections

log = logging.getLogger(__name__)

#: output formats by file suffix -> OGR driver
DRIVERS = {".geojson": "GeoJSON", ".gpkg": "GPKG"}
#: RFC 7946: GeoJSON is in WGS 84 longitude/latitude
GEOJSON_CRS = "EPSG:4326"
#: the detections' date columns (ISO day strings), typed as dates in a GeoPackage
DATE_COLUMNS = ("reference_date", "activity_date")


def _as_multipolygons(frame: Any) -> Any:
    """Every geometry a MultiPolygon: one geometry type per layer, as GIS layers and RFC 7946 readers expect."""
    from shapely.geometry import MultiPolygon, Polygon

    return frame.set_geometry(
        [MultiPolygon([g]) if isinstance(g, Polygon) else g for g in frame.geometry], crs=frame.crs
    )


def _target_crs(crs: str | None, driver: str) -> Any:
    from pyproj.exceptions import CRSError

    from sarcube.datacube.grid import pyproj_crs

    if crs is None:
        return GEOJSON_CRS if driver == "GeoJSON" else None
    try:
        target = pyproj_crs(crs)
    except CRSError as err:
        raise InputError(f"--crs {crs!r} is not a CRS: use e.g. EPSG:3857") from err
    if driver == "GeoJSON" and target.to_epsg() != 4326:
        raise InputError(f"--crs {crs}: GeoJSON is always lon/lat WGS 84 (RFC 7946); drop --crs or write a .gpkg")
    return target


def export(
    cube: str | Path,
    pred: str,
    out: str | Path,
    *,
    threshold: float | None = None,
    min_area_m2: float = MIN_AREA_M2,
    crs: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Path:
    """Write a prediction's thresholded detections as polygons to ``out`` (.geojson or .gpkg, replaced); return it.

    A GeoPackage keeps the cube's CRS unless ``crs`` (e.g. ``EPSG:3857``) says
    otherwise; GeoJSON is always EPSG:4326 (RFC 7946).
    """
    import pandas as pd

    out = Path(out)
    driver = DRIVERS.get(out.suffix.lower())
    if driver is None:
        raise InputError(f"output {str(out)!r}: use a .geojson or .gpkg file name")
    target = _target_crs(crs, driver)
    ds = schema.open_cube(cube, storage_options=storage_options)
    frame = _as_multipolygons(detections(ds, pred, threshold=threshold, min_area_m2=min_area_m2))
    if target is not None:
        frame = frame.to_crs(target)
    options: dict[str, Any] = {}
    if driver == "GeoJSON":
        options["RFC7946"] = "YES"  # no legacy crs member, right-hand winding
    else:
        for column in DATE_COLUMNS:
            frame[column] = pd.to_datetime(frame[column])  # GPKG date-time fields, not text
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        out.unlink()
    frame.to_file(out, driver=driver, **options)
    log.info("wrote %d detections of %s to %s", len(frame), frame.attrs["prediction"], out)
    return out


@click.command("export")
@click.argument("cube", type=click.Path())
@click.option("--pred", "pred", required=True, help="Prediction to export: NAME or pred_NAME.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Output file: .geojson or .gpkg.")
@click.option("--threshold", type=float, default=None, help="Probability threshold (default: the run's, else 0.5).")
@click.option(
    "--min-area",
    "min_area_m2",
    type=float,
    default=MIN_AREA_M2,
    show_default=True,
    help="Drop objects smaller than this, m2.",
)
@click.option(
    "--crs", default=None, help="GeoPackage CRS, e.g. EPSG:3857 (default: the cube's; GeoJSON is always EPSG:4326)."
)
@storage_options_option
def command(
    cube: str,
    pred: str,
    out: str,
    threshold: float | None,
    min_area_m2: float,
    crs: str | None,
    storage_options: dict[str, Any] | None,
) -> None:
    """Export the detections of prediction NAME in CUBE as polygons with dates, area, probability and terrain."""
    path = export(
        cube, pred, out, threshold=threshold, min_area_m2=min_area_m2, crs=crs, storage_options=storage_options
    )
    click.echo(f"wrote {path}")
