"""Label polygons put onto the cube grid: :func:`rasterize_labels`.

Polygons (.geojson, .gpkg, .shp, any CRS) are burnt onto the grid as ``label``
(uint8: 1 inside a polygon, 0 outside, 255 outside the monitored area). Dated
polygons (avalanche debris) go to the pair(s) whose (reference_time,
activity_time] window holds their date -> (pair, y, x); undated ones
(landslide scars, glacier outlines) -> (y, x). Dated polygons are label
*events*: the ids burnt into each pair are recorded on ``label``
(:mod:`~sarcube.datacube.label_events`) so splits keep each event in one split.
External rasters go onto the grid in :mod:`~sarcube.datacube.rasters`.

Lazy: every (1, 512, 512) output chunk is rasterized on its own, so memory is
bounded by the chunk size, not the cube.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from sarcube.datacube import schema
from sarcube.datacube.dates import parse_time
from sarcube.datacube.grid import cube_box, cube_grid, yx_coords
from sarcube.datacube.label_events import (
    DEFAULT_ID_FIELDS,
    FEATURE_INDEX,
    event_id,
    events_of_polygons,
)
from sarcube.errors import InputError, MissingVariableError

#: vector formats read with geopandas (pyogrio)
VECTOR_SUFFIXES = (".geojson", ".json", ".gpkg", ".shp")


_log = logging.getLogger(__name__)


# --- grid helpers ----------------------------------------------------------------

def _storage_chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The contract's chunks for a (y, x) or (pair, y, x) shape."""
    return schema.chunks_for((schema.PAIR, schema.Y, schema.X)[-len(shape):], shape)


# --- label polygons ----------------------------------------------------------------

def read_polygons(path: str | Path, crs: Any, what: str = "--labels") -> Any:
    """A GeoDataFrame of ``path`` reprojected to ``crs``; InputError naming the file when unusable."""
    import geopandas as gpd

    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} {str(path)!r} does not exist: check the path")
    if path.suffix.lower() not in VECTOR_SUFFIXES:
        raise InputError(
            f"{what} {str(path)!r}: unsupported format {path.suffix!r}, use one of {', '.join(VECTOR_SUFFIXES)}"
        )
    try:
        gdf = gpd.read_file(path)
    except Exception as err:  # pyogrio raises its own DataSourceError family
        raise InputError(
            f"{what} {str(path)!r} cannot be read as vector data ({err}): is it a complete GeoJSON, GeoPackage or "
            "shapefile (with its .shx/.dbf)?"
        ) from err
    if gdf.crs is None:
        raise InputError(
            f"{what} {str(path)!r} has no CRS: add one (e.g. the .prj of a shapefile, or "
            "`ogr2ogr -a_srs EPSG:4326 out.gpkg in.shp`) so it can be placed on the cube grid"
        )
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
    if gdf.empty:
        raise InputError(f"{what} {str(path)!r} holds no geometries: is it the right file (or layer)?")
    invalid = ~gdf.geometry.is_valid.to_numpy()
    if invalid.any():  # self-intersecting rings burn unpredictably: repair them, and say so
        gdf = gdf.copy()
        gdf.loc[invalid, gdf.geometry.name] = gdf.geometry[invalid].make_valid()
        _log.warning(
            "%s %r: repaired %d invalid (self-intersecting) polygon(s), feature(s) %s; fix them at the source "
            "(e.g. QGIS 'Fix geometries') to control how they are split",
            what, str(path), int(invalid.sum()), ", ".join(map(str, np.flatnonzero(invalid)[:10])),
        )
    return gdf.to_crs(crs)


def _date_span(dates: np.ndarray) -> str:
    days = np.asarray(dates).astype("datetime64[D]")
    return f"{days.min()}..{days.max()}" if days.size else "none"


def _dates_of(gdf: Any, path: Path, field: str) -> np.ndarray:
    if field not in gdf.columns:
        fields = [c for c in gdf.columns if c != gdf.geometry.name]
        raise InputError(
            f"--labels {str(path)!r} has no field {field!r} (fields: {', '.join(map(str, fields)) or 'none'}): pass "
            "--date-field NAME"
        )
    out = []
    for i, value in enumerate(gdf[field]):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            raise InputError(f"--labels {str(path)!r}: feature {i} has no {field!r} date: fill it or drop the feature")
        try:
            out.append(parse_time(value, f"field {field!r}"))
        except InputError as err:
            raise InputError(
                f"--labels {str(path)!r}: feature {i} {field!r}={value!r} is not a date (use ISO 8601, e.g. 2020-01-31)"
            ) from err
    return np.asarray(out, dtype="datetime64[ns]")


def _ids_of(gdf: Any, path: Path, id_field: str | None) -> tuple[list[str], str]:
    """Event id per feature and the field they come from (default: ``event_id`` or ``id``, else the feature index)."""
    if id_field is None:
        id_field = next((f for f in DEFAULT_ID_FIELDS if f in gdf.columns), FEATURE_INDEX)
    elif id_field not in gdf.columns:
        fields = [c for c in gdf.columns if c != gdf.geometry.name]
        raise InputError(
            f"--labels {str(path)!r} has no field {id_field!r} (fields: {', '.join(map(str, fields)) or 'none'}): "
            "pass --id-field NAME"
        )
    if id_field == FEATURE_INDEX:
        return [event_id(i) for i in gdf.index], id_field
    values = list(gdf[id_field])
    for i, value in zip(gdf.index, values, strict=True):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            raise InputError(
                f"--labels {str(path)!r}: feature {i} has no {id_field!r} id: fill it or pass another --id-field"
            )
    return [event_id(v) for v in values], id_field


def _burn(
    template: da.Array,
    layers: Sequence[list[Any]],
    monitored: list[Any] | None,
    transform: Any,
    all_touched: bool,
) -> da.Array:
    """Rasterize ``layers[i]`` (geometries in the cube CRS) into layer i of ``template``, block by block."""
    from affine import Affine
    from rasterio.features import rasterize
    from shapely import STRtree
    from shapely.geometry import box

    everything = [g for layer in layers for g in layer]
    owner = (
        np.concatenate([np.full(len(layer), i) for i, layer in enumerate(layers)]) if everything else np.zeros(0, int)
    )
    tree = STRtree(everything) if everything else None
    mon_tree = STRtree(monitored) if monitored else None
    stacked = template.ndim == 3

    def burn_block(block: np.ndarray, block_info: dict | None = None) -> np.ndarray:
        loc = block_info[0]["array-location"]
        (r0, r1), (c0, c1) = loc[-2], loc[-1]
        shape = (r1 - r0, c1 - c0)
        t = transform @ Affine.translation(c0, r0)
        x0, y0 = t @ (0, 0)
        x1, y1 = t @ (shape[1], shape[0])
        bbox = box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        layer_ids = range(*loc[0]) if stacked else [0]
        out = np.zeros((len(layer_ids), *shape), dtype="uint8")
        hits = tree.query(bbox, predicate="intersects") if tree is not None else np.zeros(0, int)
        for j, layer in enumerate(layer_ids):
            geoms = [everything[h] for h in hits if owner[h] == layer]
            if geoms:
                out[j] = rasterize(
                    ((g, schema.LABEL_YES) for g in geoms),
                    out_shape=shape,
                    transform=t,
                    fill=schema.LABEL_NO,
                    all_touched=all_touched,
                    dtype="uint8",
                )
        if mon_tree is not None:
            near = mon_tree.query(bbox, predicate="intersects")
            inside = np.zeros(shape, dtype="uint8")
            if len(near):
                inside = rasterize(
                    ((monitored[h], 1) for h in near),
                    out_shape=shape,
                    transform=t,
                    fill=0,
                    all_touched=all_touched,
                    dtype="uint8",
                )
            out[:, inside == 0] = schema.LABEL_UNKNOWN
        return out if stacked else out[0]

    return template.map_blocks(burn_block, dtype="uint8")


def rasterize_labels(
    cube: xr.Dataset,
    path: str | Path,
    *,
    date_field: str | None = None,
    id_field: str | None = None,
    monitored: str | Path | None = None,
    all_touched: bool = False,
) -> tuple[xr.DataArray, dict[str, Any]]:
    """Burn label polygons onto the cube grid as ``label``; returns (variable, info).

    With ``date_field`` each polygon goes to every pair whose
    (reference_time, activity_time] holds its date (pairs of different orbits
    may overlap in time; each sees the event) -> (pair, y, x); polygons whose
    date falls in no pair are counted in ``info["unassigned"]``. Without it ->
    (y, x). Pixels outside the ``monitored`` polygons are 255 (unknown).
    A pixel is burnt when its centre is inside a polygon (``all_touched``: when
    the polygon touches it at all).
    """
    path = Path(path)
    if id_field is not None and date_field is None:
        raise InputError(
            f"--id-field {id_field!r} names the events of dated labels: add --date-field FIELD "
            "(static labels hold no events)"
        )
    crs, transform, (ny, nx) = cube_grid(cube)
    gdf = read_polygons(path, crs)
    inside = gdf.intersects(cube_box(cube)).to_numpy()
    if not inside.any():
        b = cube.rio.bounds(recalc=True)
        raise InputError(
            f"--labels {str(path)!r}: no feature lies inside the cube (cube bounds {tuple(round(v, 1) for v in b)} in "
            f"{crs.to_string()}): "
            "is it the right file or area?"
        )
    geoms = list(gdf.geometry.to_numpy())
    info: dict[str, Any] = {"file": str(path), "polygons": len(geoms), "outside_cube": int((~inside).sum())}
    mon_geoms = None
    if monitored is not None:
        mon = read_polygons(monitored, crs, what="--monitored")
        if not mon.intersects(cube_box(cube)).any():
            raise InputError(
                f"--monitored {str(monitored)!r}: no polygon lies inside the cube: is it the right file or area?"
            )
        mon_geoms = list(mon.geometry.to_numpy())
    params: dict[str, Any] = {
        "source": path.name,
        "date_field": date_field,
        "monitored": Path(monitored).name if monitored is not None else None,
        "all_touched": bool(all_touched),
        "rule": "pixel centre inside polygon" if not all_touched else "pixel touched by polygon",
    }
    coords = yx_coords(cube)
    attrs: dict[str, Any] = {}
    if date_field is None:
        template = da.zeros((ny, nx), chunks=_storage_chunks((ny, nx)), dtype="uint8")
        data = _burn(template, [geoms], mon_geoms, transform, all_touched)
        dims: tuple[str, ...] = (schema.Y, schema.X)
    else:
        if schema.PAIR not in cube.dims:
            raise MissingVariableError(
                f"--date-field {date_field!r} puts labels on pairs, but the cube has none: run `sarcube features "
                "--pairs` first"
            )
        dates = _dates_of(gdf, path, date_field)
        ref = cube[schema.REFERENCE_TIME].values.astype("datetime64[ns]")
        act = cube[schema.ACTIVITY_TIME].values.astype("datetime64[ns]")
        member = (ref[None, :] < dates[:, None]) & (dates[:, None] <= act[None, :])  # (polygon, pair)
        layers = [[g for g, m in zip(geoms, member[:, p], strict=True) if m] for p in range(ref.size)]
        unassigned = ~member.any(axis=1)
        if not (member & inside[:, None]).any():
            raise InputError(
                f"--labels {str(path)!r}: no {date_field!r} date ({_date_span(dates[inside])}) falls in a pair of "
                f"the cube ({_date_span(ref)} .. {_date_span(act)}): is it the right file or field, "
                "or build the cube over those dates"
            )
        info["unassigned"] = int(unassigned.sum())
        info["unassigned_dates"] = sorted({str(np.datetime_as_string(d, unit="D")) for d in dates[unassigned]})
        info["per_pair"] = [int(member[:, p].sum()) for p in range(ref.size)]
        ids, params["id_field"] = _ids_of(gdf, path, id_field)
        events = events_of_polygons(geoms, ids, member & inside[:, None], transform, (ny, nx), params["id_field"])
        attrs[schema.ATTR_LABEL_EVENTS] = events.to_attr()
        info["events"] = len(events.boxes)
        params["assignment"] = "reference_time < date <= activity_time"
        npair = ref.size
        template = da.zeros((npair, ny, nx), chunks=_storage_chunks((npair, ny, nx)), dtype="uint8")
        data = _burn(template, layers, mon_geoms, transform, all_touched)
        dims = (schema.PAIR, schema.Y, schema.X)
        coords = {**coords, **{name: cube[name] for name in (schema.PAIR, *schema.PAIR_COORDS)}}
    array = xr.DataArray(data, dims=dims, coords=coords)
    label = schema.make_variable(schema.LABEL, array, dims, parameters=params, attrs=attrs)
    return label, info


__all__ = [
    "VECTOR_SUFFIXES",
    "rasterize_labels",
    "read_polygons",
]
