"""``sarcube add-layer CUBE``: label polygons or external rasters onto the cube grid.

- ``--labels FILE [--date-field FIELD] [--id-field FIELD] [--monitored FILE]``:
  polygons in any CRS -> ``label`` on (pair, y, x) by date, recording the ids
  of the events burnt into each pair, or on (y, x) without a date field; 255
  outside the monitored area (:func:`labels.rasterize_labels`).
- ``--raster NAME FILES... [--dim time|pair|none]``: GeoTIFFs warped onto the
  grid as a new variable NAME (:func:`rasters.reproject_raster`).

The layer appears only once complete (:func:`store.add_variables`); an existing
one is replaced only with ``--overwrite``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from sarcube.datacube import labels as label_layers
from sarcube.datacube import lock, rasters, schema, store
from sarcube.errors import InputError
from sarcube.pipelines import _dask
from sarcube.pipelines._storage import storage_options_option

log = logging.getLogger(__name__)


@lock.writing_step("sarcube add-layer")
def add_layer(
    cube: str | Path,
    *,
    labels: str | Path | None = None,
    date_field: str | None = None,
    id_field: str | None = None,
    monitored: str | Path | None = None,
    all_touched: bool = False,
    raster_name: str | None = None,
    raster_files: Sequence[str | Path] = (),
    dim: str = "none",
    units: str = "1",
    resampling: str = rasters.DEFAULT_RESAMPLING,
    overwrite: bool = False,
    scheduler: str | None = None,
    wait_s: float = 0.0,
    storage_options: Mapping[str, Any] | None = None,
) -> list[str]:
    """Rasterize ``labels`` or warp ``raster_files`` (as ``raster_name``) into ``cube``; returns the names written.

    ``wait_s``: how long to wait for another writer of the cube (see :mod:`sarcube.datacube.lock`).
    """
    if (labels is None) == (raster_name is None):
        raise InputError("add-layer takes either --labels FILE or --raster NAME FILES..., one of the two")
    if labels is None and (date_field is not None or id_field is not None or monitored is not None or all_touched):
        raise InputError("--date-field, --id-field, --monitored and --all-touched go with --labels, not --raster")
    if labels is not None and raster_files:
        raise InputError(
            f"extra files {[str(f) for f in raster_files]} given with --labels: add rasters with --raster NAME FILES..."
        )
    ds = schema.open_cube(cube, storage_options=storage_options)
    if labels is not None:
        name = schema.LABEL
        var, info = label_layers.rasterize_labels(
            ds, labels, date_field=date_field, id_field=id_field, monitored=monitored, all_touched=all_touched
        )
        if info["outside_cube"]:
            log.warning("%s: %d of %d polygons lie outside the cube", labels, info["outside_cube"], info["polygons"])
        if info.get("unassigned"):
            log.warning(
                "%s: %d polygon(s) dated outside every pair window (dates %s) were left out",
                labels, info["unassigned"], ", ".join(info["unassigned_dates"]),
            )
        what = f"--labels {Path(labels).name}" + (f" --date-field {date_field}" if date_field else "")
        what += f" --id-field {id_field}" if id_field else ""
        what += f" --monitored {Path(monitored).name}" if monitored else ""
    else:
        name = raster_name
        var = rasters.reproject_raster(ds, raster_files, raster_name, dim, units, resampling=resampling)
        what = f"--raster {raster_name} ({len(raster_files)} file(s)) --dim {dim}"
    with _dask.scheduler(scheduler) as client, _dask.progress("add-layer", client):
        written = store.add_variables(cube, {name: var}, overwrite=overwrite, storage_options=storage_options)
    store.append_history(cube, f"sarcube add-layer {what}", storage_options)
    return written


@click.command("add-layer")
@click.argument("cube", type=click.Path())
@click.argument("files", nargs=-1, type=click.Path())
@click.option("--labels", type=click.Path(), help="Label polygons (.geojson, .gpkg, .shp; any CRS).")
@click.option(
    "--date-field", metavar="FIELD", help="Attribute with each polygon's event date: labels go on the pair holding it."
)
@click.option(
    "--id-field", metavar="FIELD",
    help="Attribute with each dated polygon's event id (default: event_id or id if present, else the feature index).",
)
@click.option("--monitored", type=click.Path(), help="Polygons of the monitored area; label is 255 (unknown) outside.")
@click.option("--all-touched", is_flag=True, help="Burn every pixel a polygon touches (default: pixel centres inside).")
@click.option("--raster", "raster_name", metavar="NAME", help="Add FILES (GeoTIFFs) as the new variable NAME.")
@click.option(
    "--dim",
    type=click.Choice(rasters.RASTER_DIMS),
    default="none",
    show_default=True,
    help="Stack rasters on time or pair by the date(s) in their names.",
)
@click.option("--units", default="1", show_default=True, help="Units of the raster layer.")
@click.option(
    "--resampling",
    default=rasters.DEFAULT_RESAMPLING,
    show_default=True,
    help="Raster resampling (rasterio name: bilinear, nearest, ...).",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing layer of that name.")
@click.option("--scheduler", metavar="ADDRESS", help="Dask scheduler address (default: local threads).")
@click.option("--wait", "wait_s", type=float, default=0.0, show_default=True, metavar="SECONDS",
              help="When another process is writing the cube, wait up to SECONDS for it (0: stop at once).")
@storage_options_option
def command(cube: str, files: tuple[str, ...], labels: str | None, date_field: str | None, id_field: str | None,
            monitored: str | None, all_touched: bool, raster_name: str | None, dim: str, units: str, resampling: str,
            overwrite: bool, scheduler: str | None, wait_s: float, storage_options: dict[str, Any] | None) -> None:
    """Add label polygons or external rasters (FILES, with --raster NAME) to CUBE."""
    written = add_layer(
        cube, labels=labels, date_field=date_field, id_field=id_field, monitored=monitored, all_touched=all_touched,
        raster_name=raster_name, raster_files=files, dim=dim, units=units, resampling=resampling,
        overwrite=overwrite, scheduler=scheduler, wait_s=wait_s, storage_options=storage_options,
    )
    click.echo(f"wrote {', '.join(written)} into {cube}")
