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
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from sarcube.datacube import schema
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


def _object_table(
    prob: np.ndarray,
    threshold: float,
    min_pixels: int,
    terrain: Mapping[str, np.ndarray],
) -> tuple[np.ndarray, list[dict[str, float]]]:
    """Connected objects of ``prob >= threshold`` with at least ``min_pixels``: (id image, stats per kept id)."""
    from scipy import ndimage

    from sarcube.models.metrics import connected_components  # imports torch: only when exporting

    positive = np.nan_to_num(prob, nan=0.0) >= threshold
    ids, n = connected_components(positive, CONNECTIVITY)
    if n == 0:
        return ids, []
    flat = ids.ravel()
    counts = np.bincount(flat, minlength=n + 1)
    keep = np.flatnonzero(counts >= min_pixels)
    keep = keep[keep > 0]
    if keep.size < n:  # relabel so ids are 1..len(keep)
        lut = np.zeros(n + 1, dtype=ids.dtype)
        lut[keep] = np.arange(1, keep.size + 1)
        ids = lut[ids]
        flat = ids.ravel()
    m = keep.size
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
    rows = [{k: float(v[i]) for k, v in stats.items()} for i in range(m)]
    return ids, rows


def _polygons(ids: np.ndarray, n: int, transform: Any) -> list[Any]:
    """One valid (multi)polygon per object id 1..n, in map coordinates."""
    import rasterio.features
    import shapely
    from shapely.geometry import shape

    # 4-connected pieces are always valid polygons; an object whose pieces touch only at
    # corners (8-connected) becomes a valid MultiPolygon through the union.
    parts: list[list[Any]] = [[] for _ in range(n)]
    for geom, value in rasterio.features.shapes(
        ids.astype(np.int32), mask=ids > 0, connectivity=4, transform=transform
    ):
        parts[int(value) - 1].append(shape(geom))
    return [p[0] if len(p) == 1 else shapely.union_all(p) for p in parts]


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
    terrain = {
        col: np.asarray(ds[v].values, dtype=np.float32) for col, v in TERRAIN_COLUMNS.items() if v in ds.data_vars
    }
    per_pair = schema.PAIR in var.dims
    todo: list[int | None] = (
        (pairs if pairs is not None else list(range(var.sizes[schema.PAIR]))) if per_pair else [None]
    )
    records: list[dict[str, Any]] = []
    geometries: list[Any] = []
    for p in tqdm(todo, desc=f"export {name}", leave=False, disable=bar_disable(len(todo) < 2)):
        prob = np.asarray((var.isel({schema.PAIR: p}) if p is not None else var).values, dtype=np.float32)
        if not np.isfinite(prob).any():
            continue  # not predicted
        level = prediction_threshold(var, threshold, keys[p]) if p is not None else thr
        lowest = min(lowest, level)
        ids, rows = _object_table(prob, level, min_pixels, terrain)
        if not rows:
            continue
        geometries.extend(_polygons(ids, len(rows), transform))
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
