"""``sarcube export-raster CUBE --var NAME --out FILE.tif``: cube layers as COGs for a GIS.

One Cloud-Optimised GeoTIFF per slice (``datacube.cog``), with the cube's
CRS and transform, NaN (or 255 for ``label``) as nodata, the band named after
the variable and its dates, and the dates, orbit and CF attrs in the file's
metadata. ``--pair N`` or ``--time DATE`` picks one slice of a stacked
variable; without them ``--out`` is a folder that gets one file per slice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
import numpy as np
import xarray as xr

from sarcube.datacube import dates, schema
from sarcube.datacube.cog import write_cog
from sarcube.errors import InputError, UnknownVariableError

log = logging.getLogger(__name__)

#: file suffixes of a single-file ``--out``
TIFF_SUFFIXES = (".tif", ".tiff")
#: per-slice coordinates written into each file's metadata, by stacking dimension
_SLICE_COORDS = {
    schema.TIME: (schema.PLATFORM, schema.ORBIT_STATE, schema.RELATIVE_ORBIT, schema.ITEM_ID),
    schema.PAIR: (schema.REFERENCE_TIME, schema.ACTIVITY_TIME, schema.PAIR_RELATIVE_ORBIT),
}


def _day(value: Any) -> str:
    return str(np.datetime_as_string(np.datetime64(value, "s"), unit="s")) + "Z"


def _compact(value: Any) -> str:
    return str(np.datetime_as_string(np.datetime64(value, "s"), unit="s")).replace("-", "").replace(":", "")


def _stack_dim(arr: xr.DataArray, var: str) -> str | None:
    stacked = [str(d) for d in arr.dims if d not in schema.SPATIAL_DIMS]
    if len(stacked) > 1:
        raise InputError(f"--var {var}: dims {arr.dims} have more than one non-spatial dimension; export a slice")
    return stacked[0] if stacked else None


def _select(ds: xr.Dataset, var: str, dim: str | None, pair: int | None, time: str | None) -> list[int] | None:
    """Indices along ``dim`` to write (None: a 2-D variable)."""
    if pair is not None and time is not None:
        raise InputError("--pair and --time exclude each other: choose one")
    if pair is not None:
        if dim != schema.PAIR:
            raise InputError(f"--pair: {var!r} has dims {ds[var].dims}, not {schema.PAIR!r}; drop --pair")
        if not 0 <= pair < ds.sizes[schema.PAIR]:
            raise InputError(f"--pair {pair} is out of range: the cube has pairs 0..{ds.sizes[schema.PAIR] - 1}")
        return [pair]
    if time is not None:
        if dim != schema.TIME:
            raise InputError(f"--time: {var!r} has dims {ds[var].dims}, not {schema.TIME!r}; use --pair or neither")
        start = dates.parse_time(time, "--time")
        end = dates.parse_time(time, "--time", end_of_day=True)
        times = ds[schema.TIME].values
        hits = [int(i) for i in np.flatnonzero((times >= start) & (times <= end))]
        if not hits:
            listed = ", ".join(_day(t)[:10] for t in times)
            raise InputError(f"--time {time}: no acquisition then; the cube has {listed}")
        if len(hits) > 1:
            listed = ", ".join(_day(times[i]) for i in hits)
            raise InputError(f"--time {time} matches {len(hits)} acquisitions ({listed}): give the time too")
        return hits
    return None if dim is None else list(range(ds.sizes[dim]))


def _slice_label(ds: xr.Dataset, dim: str, index: int) -> tuple[str, str, dict[str, str]]:
    """(file-name part, band-description part, metadata tags) of one slice."""
    tags: dict[str, str] = {dim: str(index)} if dim != schema.TIME else {}
    for cname in _SLICE_COORDS.get(dim, ()):
        if cname in ds.coords:
            value = ds[cname].values[index]
            tags[cname] = _day(value) if np.issubdtype(np.asarray(value).dtype, np.datetime64) else str(value)
    if dim == schema.TIME:
        when = ds[schema.TIME].values[index]
        tags[schema.TIME] = _day(when)
        return _compact(when), _day(when), tags
    if dim == schema.PAIR and schema.REFERENCE_TIME in ds.coords:
        ref, act = ds[schema.REFERENCE_TIME].values[index], ds[schema.ACTIVITY_TIME].values[index]
        return f"{index:03d}_{_compact(ref)[:8]}_{_compact(act)[:8]}", f"{_day(ref)}/{_day(act)}", tags
    value = ds[dim].values[index] if dim in ds.coords else index
    return f"{dim}{value}", f"{dim} {value}", tags


def _nodata(arr: xr.DataArray, name: str) -> float | None:
    if arr.dtype.kind == "f":
        return float("nan")
    return float(schema.LABEL_UNKNOWN) if name == schema.LABEL or schema.is_prediction(name) else None


def export_raster(
    cube: str | Path,
    var: str,
    out: str | Path,
    *,
    pair: int | None = None,
    time: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Write variable ``var`` of ``cube`` as COGs: one file, or a folder of one file per pair/time.

    ``out`` is a ``.tif`` file when ``pair``/``time`` picks one slice (or the
    variable is 2-D, or has one slice); otherwise a folder, which gets
    ``<var>_<index>_<reference>_<activity>.tif`` per pair or
    ``<var>_<time>.tif`` per acquisition. Returns the paths written.
    """
    out = Path(out)
    ds = schema.open_cube(cube, storage_options=storage_options)
    if var not in ds.data_vars or var == schema.SPATIAL_REF:
        names = ", ".join(sorted(str(n) for n in ds.data_vars if n != schema.SPATIAL_REF))
        raise UnknownVariableError(f"--var {var}: cube {str(cube)!r} has no such variable; it has {names}")
    arr = ds[var]
    dim = _stack_dim(arr, var)
    indices = _select(ds, var, dim, pair, time)
    to_file = out.suffix.lower() in TIFF_SUFFIXES
    if indices is not None and len(indices) > 1 and to_file:
        raise InputError(f"--out {out}: {var!r} has {len(indices)} {dim} slices; pass --{dim} to pick one, or a folder")
    if not to_file and (indices is None or pair is not None or time is not None):
        raise InputError(f"--out {out}: one slice goes to a .tif file; name one, e.g. {out}.tif")
    transform, crs = ds.rio.transform(), ds.rio.crs.to_wkt()
    base_tags = {key: str(arr.attrs[key]) for key in ("long_name", "units", "description") if key in arr.attrs}
    base_tags["variable"] = var
    base_tags[schema.ATTR_VERSION] = str(ds.attrs.get(schema.ATTR_VERSION, ""))
    long_name = str(arr.attrs.get("long_name", var))
    written: list[Path] = []
    for index in indices if indices is not None else [None]:
        if index is None or dim is None:
            path, description, tags, data = out, long_name, {}, arr.values
        else:
            part, when, tags = _slice_label(ds, dim, index)
            path = out if to_file else out / f"{var}_{part}.tif"
            description, data = f"{long_name}, {when}", arr.isel({dim: index}).values
        if path.exists():
            path.unlink()
        write_cog(path, data, transform, crs, _nodata(arr, var), description=description,
                  units=arr.attrs.get("units"), tags={**base_tags, **tags})
        written.append(path)
    log.info("wrote %d COG(s) of %s to %s", len(written), var, out)
    return written


@click.command("export-raster")
@click.argument("cube", type=click.Path())
@click.option("--var", "var", required=True, help="Cube variable to export (e.g. vv_diff, dem, pred_NAME).")
@click.option("--pair", type=int, default=None, help="Only this pair index (per-pair variables).")
@click.option("--time", "time", default=None, help="Only the acquisition of this date (per-time variables).")
@click.option("--out", "out", required=True, type=click.Path(), help="FILE.tif for one slice, a folder for all.")
def command(cube: str, var: str, pair: int | None, time: str | None, out: str) -> None:
    """Export cube variable NAME as Cloud-Optimised GeoTIFFs (CRS, nodata, band names and dates)."""
    for path in export_raster(cube, var, out, pair=pair, time=time):
        click.echo(f"wrote {path}")
