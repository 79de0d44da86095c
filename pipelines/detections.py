"""Detections of a prediction as polygons: what ``export``, ``report`` and the demo draw.

Not a step (steps never import each other): the prediction is thresholded (its
run's threshold unless given), split into 8-connected objects
(:func:`sarcube.models.metrics.connected_components`, as the object metrics
count them), objects smaller than ``min_area_m2`` are dropped, and each becomes
one (multi)polygon in the cube's CRS with the pair's dates, its area, its mean
probability and the mean elevation, slope and aspect (circular mean) under it
where the cube has them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import xarray as xr

from sarcube.datacube import chips, schema
from sarcube.datacube.grid import pixel_size
from sarcube.datacube.predictions import describe_operating_point, pair_keys, prediction_threshold, resolve_prediction
from sarcube.errors import InputError
from sarcube.progress import bar_disable

#: objects smaller than this are dropped (about 5 pixels of 10 m: speckle, not debris)
MIN_AREA_M2 = 500.0
#: attribute columns of the exported layer
COLUMNS = (
    "detection_id",
    "pair_index",
    "reference_date",
    "activity_date",
    "area_m2",
    "mean_probability",
    "max_probability",
    "mean_elevation_m",
    "mean_slope_deg",
    "mean_aspect_deg",
)
#: terrain means written per polygon: column -> cube variable
TERRAIN_COLUMNS = {"mean_elevation_m": schema.DEM, "mean_slope_deg": schema.SLOPE, "mean_aspect_deg": schema.ASPECT}
#: label connectivity (8: diagonal neighbours join, as in sarcube.models.metrics)
CONNECTIVITY = 8


def pixel_area_m2(ds: xr.Dataset) -> float:
    """Area of one cube pixel, square metres."""
    dx, dy = pixel_size(ds)
    return dx * dy


def _iso_date(value: Any) -> str:
    return str(np.datetime_as_string(np.datetime64(value, "s"), unit="D"))


#: side of the tiles a pair's map is read in (the storage chunk)
TILE_PX = schema.CHUNK_YX
#: reads a window (y0, y1, x0, x1) of a pair's map, or of the terrain (column -> values)
ReadWindow = Callable[[tuple[int, int, int, int]], Any]


def _object_stats(prob: np.ndarray, ids: np.ndarray, m: int, terrain: Mapping[str, np.ndarray]) -> list[dict]:
    """Stats of objects 1..m of ``ids`` (0: none), each summed over its pixels in raster order."""
    from scipy import ndimage

    flat = ids.ravel()
    counts = np.bincount(flat, minlength=m + 1)[1:]
    p = np.nan_to_num(prob, nan=0.0).ravel().astype(np.float64)
    stats: dict[str, np.ndarray] = {
        "pixels": counts,
        "mean_probability": np.bincount(flat, weights=p, minlength=m + 1)[1:] / np.maximum(counts, 1),
        "max_probability": ndimage.maximum(p.reshape(ids.shape), ids, np.arange(1, m + 1)) if m else np.zeros(0),
    }
    for column, values in terrain.items():
        v = values.ravel().astype(np.float64)
        finite = np.isfinite(v)
        n_valid = np.bincount(flat[finite], minlength=m + 1)[1:]
        if column == "mean_aspect_deg":  # circular mean: aspects 359 and 1 average to 0, not 180
            rad = np.deg2rad(v[finite])
            s = np.bincount(flat[finite], weights=np.sin(rad), minlength=m + 1)[1:]
            c = np.bincount(flat[finite], weights=np.cos(rad), minlength=m + 1)[1:]
            mean = np.mod(np.rad2deg(np.arctan2(s, c)), 360.0)
        else:
            mean = np.bincount(flat[finite], weights=v[finite], minlength=m + 1)[1:] / np.maximum(n_valid, 1)
        stats[column] = np.where(n_valid > 0, mean, np.nan)
    return [{k: float(v[i]) for k, v in stats.items()} for i in range(m)]


def _polygons(ids: np.ndarray, n: int, origin: tuple[int, int], transform: Any) -> list[Any]:
    """One valid (multi)polygon per object id 1..n of ``ids`` (a window whose first pixel is ``origin`` (y, x)),
    in map coordinates: traced in scene pixel coordinates (integers, exact), then mapped as GDAL maps them."""
    import rasterio.features
    import shapely
    from affine import Affine
    from shapely.geometry import shape

    a, b, c, d, e, f = transform.a, transform.b, transform.c, transform.d, transform.e, transform.f

    def to_map(xy: np.ndarray) -> np.ndarray:
        x, y = xy[:, 0], xy[:, 1]
        return np.stack([c + x * a + y * b, f + x * d + y * e], axis=1)

    # 4-connected pieces are always valid polygons; an object whose pieces touch only at
    # corners (8-connected) becomes a valid MultiPolygon through the union.
    parts: list[list[Any]] = [[] for _ in range(n)]
    for geom, value in rasterio.features.shapes(
        ids.astype(np.int32), mask=ids > 0, connectivity=4, transform=Affine.translation(origin[1], origin[0])
    ):
        parts[int(value) - 1].append(shapely.transform(shape(geom), to_map))
    return [p[0] if len(p) == 1 else shapely.union_all(p) for p in parts]


def _pair_objects(
    read: ReadWindow, read_terrain: ReadWindow, shape: tuple[int, int], threshold: float, min_pixels: int,
    transform: Any,
) -> tuple[list[dict[str, float]], list[Any]] | None:
    """Connected objects of ``prob >= threshold`` (NaN below) with at least ``min_pixels``: (stats, polygons) per
    object in the order of their first pixel; None when the map holds no finite value (not predicted).

    The map is read one tile at a time: objects are labelled per tile and merged across tile borders
    (:class:`~sarcube.models.components.TiledComponents`), then each object's stats and polygon come from the one
    tile that holds it whole, or from its bounding box read alone: memory for a tile (or the largest object)."""
    from sarcube.models.components import TiledComponents, tile_windows
    from sarcube.models.metrics import connected_components  # imports torch: only when exporting

    windows = tile_windows(*shape, TILE_PX)
    cc, finite = TiledComponents(*shape, CONNECTIVITY), False
    for w in windows:
        prob = read(w)
        finite = finite or bool(np.isfinite(prob).any())
        cc.add(w, np.nan_to_num(prob, nan=0.0) >= threshold)
    if not finite:
        return None
    objects = cc.objects()
    kept = np.flatnonzero(objects["count"] >= min_pixels)
    boxes, firsts = objects["box"][kept], objects["first"][kept]
    tiles = boxes // TILE_PX
    tiles[:, [1, 3]] = (boxes[:, [1, 3]] - 1) // TILE_PX
    whole = (tiles[:, 0] == tiles[:, 1]) & (tiles[:, 2] == tiles[:, 3])
    rows: list[Any] = [None] * kept.size
    polygons: list[Any] = [None] * kept.size

    def collect(window: tuple[int, int, int, int], which: np.ndarray) -> None:
        """Stats and polygons of objects ``which`` (indices into kept), all inside ``window``."""
        y0, y1, x0, x1 = window
        prob = read(window)
        ids, n = connected_components(np.nan_to_num(prob, nan=0.0) >= threshold, CONNECTIVITY)
        lut = np.zeros(n + 1, dtype=ids.dtype)
        at = ids[firsts[which] // shape[1] - y0, firsts[which] % shape[1] - x0]
        lut[at] = np.arange(1, which.size + 1)
        local = lut[ids]
        for i, row, poly in zip(which, _object_stats(prob, local, which.size, read_terrain(window)),
                                _polygons(local, which.size, (y0, x0), transform), strict=True):
            rows[i], polygons[i] = row, poly

    for w in windows:
        inside = np.flatnonzero(whole & (tiles[:, 0] == w[0] // TILE_PX) & (tiles[:, 2] == w[2] // TILE_PX))
        if inside.size:
            collect(w, inside)
    for i in np.flatnonzero(~whole):
        collect(tuple(int(v) for v in boxes[i]), np.array([i]))
    return rows, polygons


def detections(
    ds: xr.Dataset,
    pred: str,
    *,
    threshold: float | None = None,
    min_area_m2: float = MIN_AREA_M2,
    pairs: list[int] | None = None,
) -> Any:
    """Thresholded objects of a prediction as a GeoDataFrame in the cube's CRS (one row per object).

    Each pair is thresholded at ``threshold`` when given, else at its recorded operating point (the run's
    threshold, or the pair's own with ``predict --operating-point rate``)."""
    import geopandas as gpd
    from tqdm.auto import tqdm

    name = resolve_prediction(ds, pred)
    var = ds[name]
    thr = prediction_threshold(var, threshold)
    keys, lowest = pair_keys(ds), thr
    if min_area_m2 < 0:
        raise InputError(f"min_area_m2 {min_area_m2} must be >= 0")
    area = pixel_area_m2(ds)
    min_pixels = max(1, math.ceil(min_area_m2 / area - 1e-9))
    transform = ds.rio.transform()
    shape = (ds.sizes[schema.Y], ds.sizes[schema.X])

    def read_terrain(w: tuple[int, int, int, int]) -> dict[str, np.ndarray]:
        space = chips.window_isel(w)
        return {col: np.asarray(ds.variables[v].isel(space).values, dtype=np.float32)
                for col, v in TERRAIN_COLUMNS.items() if v in ds.data_vars}

    per_pair = schema.PAIR in var.dims
    todo: list[int | None] = (
        (pairs if pairs is not None else list(range(var.sizes[schema.PAIR]))) if per_pair else [None]
    )
    records: list[dict[str, Any]] = []
    geometries: list[Any] = []
    for p in tqdm(todo, desc=f"export {name}", leave=False, disable=bar_disable(len(todo) < 2)):
        sel = {schema.PAIR: p} if p is not None else {}

        def read(w: tuple[int, int, int, int], sel: dict = sel) -> np.ndarray:
            space = chips.window_isel(w)
            return np.asarray(var.variable.isel({**sel, **space}).values, dtype=np.float32)

        missing: InputError | None = None
        try:
            level = prediction_threshold(var, threshold, keys[p]) if p is not None else thr
        except InputError as err:  # no threshold of its own: an error only if the pair was predicted
            level, missing = thr, err
        found = _pair_objects(read, read_terrain, shape, level, min_pixels, transform)
        if found is None:
            continue  # not predicted
        if missing is not None:
            raise missing
        lowest = min(lowest, level)
        rows, polygons = found
        if not rows:
            continue
        geometries.extend(polygons)
        ref = (
            _iso_date(ds[schema.REFERENCE_TIME].values[p])
            if p is not None and schema.REFERENCE_TIME in ds.coords
            else None
        )
        act = (
            _iso_date(ds[schema.ACTIVITY_TIME].values[p])
            if p is not None and schema.ACTIVITY_TIME in ds.coords
            else None
        )
        for row in rows:
            records.append(
                {
                    "detection_id": len(records) + 1,
                    "pair_index": -1 if p is None else int(p),
                    "reference_date": ref,
                    "activity_date": act,
                    "area_m2": row["pixels"] * area,
                    "mean_probability": row["mean_probability"],
                    "max_probability": row["max_probability"],
                    **{col: row.get(col, float("nan")) for col in TERRAIN_COLUMNS},
                }
            )
    frame = gpd.GeoDataFrame(records, columns=list(COLUMNS), geometry=geometries, crs=ds.rio.crs)
    frame.attrs.update(
        {"prediction": name, "threshold": thr, "operating_point": describe_operating_point(var, threshold),
         "lowest_threshold": lowest}
    )
    return frame


__all__ = ["COLUMNS", "CONNECTIVITY", "MIN_AREA_M2", "TERRAIN_COLUMNS", "detections", "pixel_area_m2"]
