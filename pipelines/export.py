"""``sarcube export CUBE --pred NAME --out detections.gpkg``: detections as polygons for a GIS.

The polygons are :func:`sarcube.pipelines.detections.detections`: the
thresholded prediction as 8-connected objects with dates, area, probability
and terrain; this step only writes them in the format of the file suffix.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
from sarcube.datacube import schema
from sarcube.pipelines._storage import storage_options_option
from sarcube.pipelines.detections import MIN_AREA_M2, detections

from sarcube.errors import InputError

log = logging.getLogger(__name__)

#: output formats by file suffix -> OGR driver
DRIVERS = {".geojson": "GeoJSON", ".gpkg": "GPKG"}


def export(
    cube: str | Path,
    pred: str,
    out: str | Path,
    *,
    threshold: float | None = None,
    min_area_m2: float = MIN_AREA_M2,
    storage_options: Mapping[str, Any] | None = None,
) -> Path:
    """Write a prediction's thresholded detections as polygons to ``out`` (.geojson or .gpkg, replaced); returns the path."""
    out = Path(out)
    driver = DRIVERS.get(out.suffix.lower())
    if driver is None:
        raise InputError(f"output {str(out)!r}: use a .geojson or .gpkg file name")
    ds = schema.open_cube(cube, storage_options=storage_options)
    frame = detections(ds, pred, threshold=threshold, min_area_m2=min_area_m2)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        out.unlink()
    frame.to_file(out, driver=driver)
    log.info("wrote %d detections of %s to %s", len(frame), frame.attrs["prediction"], out)
    return out


@click.command("export")
@click.argument("cube", type=click.Path())
@click.option("--pred", "pred", required=True, help="Prediction to export: NAME or pred_NAME.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Output file: .geojson or .gpkg.")
@click.option("--threshold", type=float, default=None, help="Probability threshold (default: the run's, else 0.5).")
@click.option("--min-area", "min_area_m2", type=float, default=MIN_AREA_M2, show_default=True, help="Drop objects smaller than this, m2.")
@storage_options_option
def command(cube: str, pred: str, out: str, threshold: float | None, min_area_m2: float, storage_options: dict[str, Any] | None) -> None:
    """Export the detections of prediction NAME in CUBE as polygons (cube CRS) with dates, area, probability and terrain."""
    path = export(cube, pred, out, threshold=threshold, min_area_m2=min_area_m2)
    click.echo(f"wrote {path}")
