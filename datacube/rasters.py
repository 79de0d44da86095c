"""External rasters put onto the cube grid: :func:`reproject_raster`.

GeoTIFFs (e.g. ISCE2 coherence) are warped onto the grid as an external layer
on (y, x), (time, y, x) or (pair, y, x), matched to acquisitions or pairs by
the date(s) in each file name. Lazy: every (1, 512, 512) output chunk is
warped on its own, so memory is bounded by the chunk size, not the cube.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from sarcube.datacube import schema
from sarcube.datacube.grid import cube_box, cube_grid, yx_coords
from sarcube.errors import InputError, MissingVariableError

#: resampling of external rasters onto the grid (rasterio.enums.Resampling names)
DEFAULT_RESAMPLING = "bilinear"
#: ``--dim`` values of :func:`reproject_raster`
RASTER_DIMS = (schema.TIME, schema.PAIR, "none")
#: a date in a file name: 20200107 or 2020-01-07 (not part of a longer number)
_DATE_IN_NAME = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?!\d)")


def dates_in_name(path: str | Path) -> list[np.datetime64]:
    """Valid calendar dates (YYYYMMDD or YYYY-MM-DD) in a file name, in order."""
    out = []
    for m in _DATE_IN_NAME.finditer(Path(path).name):
        try:
            out.append(np.datetime64(f"{m.group(1)}-{m.group(2)}-{m.group(3)}", "D"))
        except ValueError:
            continue
    return out


def _match_files(cube: xr.Dataset, files: Sequence[Path], dim: str) -> list[int]:
    """Index along ``dim`` of each file, from the date(s) in its name."""
    if dim == schema.TIME:
        keys = [(d,) for d in cube[schema.TIME].values.astype("datetime64[D]")]
        need, example = 1, "coherence_20200107.tif"
        labels = [np.datetime_as_string(t, unit="s") for t in cube[schema.TIME].values]
    else:
        if schema.PAIR not in cube.dims:
            raise MissingVariableError("--dim pair needs the cube's pairs: run `sarcube features --pairs` first")
        keys = list(
            zip(
                cube[schema.REFERENCE_TIME].values.astype("datetime64[D]"),
                cube[schema.ACTIVITY_TIME].values.astype("datetime64[D]"),
                strict=True,
            )
        )
        need, example = 2, "coherence_20200101_20200107.tif (reference, then activity date)"
        labels = [f"{np.datetime_as_string(r, unit='D')}/{np.datetime_as_string(a, unit='D')}" for r, a in keys]
    positions = []
    for path in files:
        dates = dates_in_name(path)
        if len(dates) != need:
            raise InputError(
                f"raster {str(path)!r}: its name must hold exactly {need} date(s) to match --dim {dim}, e.g. {example}"
            )
        hits = [i for i, key in enumerate(keys) if tuple(key) == tuple(dates)]
        if not hits:
            raise InputError(
                f"raster {str(path)!r}: no {dim} of the cube is on {'/'.join(map(str, dates))} (cube has: "
                f"{', '.join(labels)})"
            )
        if len(hits) > 1:
            raise InputError(
                f"raster {str(path)!r}: {'/'.join(map(str, dates))} matches {len(hits)} {dim} steps (several orbits "
                "that day); add them one orbit per cube"
            )
        positions.append(hits[0])
    seen: dict[int, Path] = {}
    for path, pos in zip(files, positions, strict=True):
        if pos in seen:
            raise InputError(
                f"rasters {str(seen[pos])!r} and {str(path)!r} both match {dim} {labels[pos]}: pass one file per step"
            )
        seen[pos] = path
    return positions


def _check_raster(path: Path, crs: Any, cube_box: Any) -> None:
    import rasterio
    from rasterio.warp import transform_bounds
    from shapely.geometry import box

    if not path.exists():
        raise InputError(f"raster {str(path)!r} does not exist: check the path")
    try:
        with rasterio.open(path) as src:
            if src.crs is None:
                raise InputError(
                    f"raster {str(path)!r} has no CRS: georeference it (e.g. `gdal_edit.py -a_srs EPSG:4326`) first"
                )
            bounds = transform_bounds(src.crs, crs, *src.bounds, densify_pts=21)
    except rasterio.errors.RasterioIOError as err:
        raise InputError(f"raster {str(path)!r} cannot be read ({err}): give a GeoTIFF (or any GDAL raster)") from err
    if not box(*bounds).intersects(cube_box) or box(*bounds).intersection(cube_box).area == 0:
        raise InputError(f"raster {str(path)!r} covers another area than the cube: is it the right file or AOI?")


def _warp(path: str, crs_wkt: str, transform: Any, shape: tuple[int, int], resampling: str) -> np.ndarray:
    """Band 1 of ``path`` on the grid window ``transform``/``shape``, float32, NaN where no data."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.warp import reproject

    out = np.full(shape, np.nan, dtype="float32")
    try:
        with rasterio.open(path) as src:
            reproject(
                source=rasterio.band(src, 1),
                destination=out,
                src_nodata=src.nodata,
                dst_transform=transform,
                dst_crs=crs_wkt,
                dst_nodata=np.nan,
                resampling=Resampling[resampling],
            )
    except rasterio.errors.RasterioError as err:
        raise InputError(f"raster {path!r} cannot be read ({err}): is the file complete?") from err
    return out


def _warp_blocks(
    path: str, crs_wkt: str, transform: Any, shape: tuple[int, int], chunks: tuple[int, int], resampling: str
) -> da.Array:
    """``path`` warped onto the grid lazily, one output chunk per task (memory bounded by the chunk)."""
    from affine import Affine

    def warp_block(block: np.ndarray, block_info: dict | None = None) -> np.ndarray:
        (r0, r1), (c0, c1) = block_info[0]["array-location"]
        return _warp(path, crs_wkt, transform @ Affine.translation(c0, r0), (r1 - r0, c1 - c0), resampling)

    template = da.zeros(shape, chunks=chunks, dtype="float32")
    return template.map_blocks(
        warp_block,
        dtype="float32",
        name=f"warp-{dask.base.tokenize(path, crs_wkt, transform, shape, chunks, resampling)}",
    )


def reproject_raster(
    cube: xr.Dataset,
    files: Iterable[str | Path],
    name: str,
    dim: str = "none",
    units: str = "1",
    *,
    resampling: str = DEFAULT_RESAMPLING,
) -> xr.DataArray:
    """External GeoTIFFs (band 1, any CRS) warped onto the cube grid as layer ``name``.

    ``dim="none"``: one file -> (y, x). ``dim="time"``: each file name holds
    one date (``YYYYMMDD`` or ``YYYY-MM-DD``) and goes to the acquisition of
    that day. ``dim="pair"``: each name holds the reference then the activity
    date (ISCE2 style ``20200101_20200107``) and goes to that pair. Steps with
    no file are NaN. Resampling is bilinear by default (``nearest`` for
    categories).
    """
    from rasterio.enums import Resampling

    if dim not in RASTER_DIMS:
        raise InputError(f"--dim {dim!r} must be one of {', '.join(RASTER_DIMS)}")
    if resampling not in Resampling.__members__:
        raise InputError(f"resampling {resampling!r} is not a rasterio method (e.g. bilinear, nearest)")
    dims = (schema.Y, schema.X) if dim == "none" else (dim, schema.Y, schema.X)
    spec = schema.external_spec(name, dims, units)
    paths = [Path(f) for f in files]
    if not paths:
        raise InputError(
            f"--raster {name}: no files given: list the GeoTIFF(s) after the cube, e.g. add-layer CUBE --raster {name} "
            "FILE.tif"
        )
    if dim == "none" and len(paths) != 1:
        raise InputError(
            f"--raster {name} with --dim none takes one file, got {len(paths)}: use --dim time or pair for a series"
        )
    crs, transform, shape = cube_grid(cube)
    box = cube_box(cube)
    for path in paths:
        _check_raster(path, crs, box)
    chunks = schema.chunks_for((schema.Y, schema.X), shape)

    def lazy(path: Path) -> da.Array:
        return _warp_blocks(str(path), crs.to_wkt(), transform, shape, chunks, resampling)

    coords: dict[str, Any] = yx_coords(cube)
    params: dict[str, Any] = {"resampling": resampling, "files": [p.name for p in paths]}
    if dim == "none":
        data = lazy(paths[0])
    else:
        positions = _match_files(cube, paths, dim)
        by_pos = dict(zip(positions, paths, strict=True))
        steps = [
            lazy(by_pos[i]) if i in by_pos else da.full(shape, np.nan, dtype="float32", chunks=chunks)
            for i in range(cube.sizes[dim])
        ]
        data = da.stack(steps).rechunk((1, *chunks))
        index_coords = (schema.TIME, *schema.TIME_COORDS) if dim == schema.TIME else (schema.PAIR, *schema.PAIR_COORDS)
        coords.update({c: cube[c] for c in index_coords if c in cube.coords})
        params["matched_by"] = "date(s) in file name"
    return schema.make_variable(name, xr.DataArray(data, dims=dims, coords=coords), dims, parameters=params, spec=spec)


__all__ = [
    "DEFAULT_RESAMPLING",
    "RASTER_DIMS",
    "dates_in_name",
    "reproject_raster",
]
