"""Hazards of the synthetic scene: avalanche corridors and debris, landslide scars, glaciers.

Geometry only (map metres, shapely polygons); the backscatter they cause is
in :mod:`sarcube.datacube.synthetic.sar`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from sarcube.datacube.synthetic.terrain import (
    fill_depressions,
    slope_aspect,
    steepest_descent_path,
)
from shapely.geometry import LineString, Polygon

#: slope range of avalanche release cells, degrees (avalanche-fcn-bianchi III-B)
RELEASE_SLOPE_MIN_DEG = 30.0
RELEASE_SLOPE_MAX_DEG = 50.0
#: releases start above this elevation (below it, forest anchors the snowpack), m
RELEASE_MIN_ELEVATION_M = 1500.0
#: alpha angle (angle of reach) of single events, degrees (Bianchi III-B: 20-40; the issue: 20-35)
ALPHA_MIN_DEG = 20.0
ALPHA_MAX_DEG = 35.0
#: shortest corridor accepted: horizontal length and drop, m
CORRIDOR_MIN_LENGTH_M = 300.0
CORRIDOR_MIN_DROP_M = 150.0
#: nearest allowed distance between two corridor starts, m
CORRIDOR_SPACING_M = 350.0
#: corridor half-width in monitored.geojson, m
CORRIDOR_HALF_WIDTH_M = 120.0
#: densities per km2 of scene (default scene: 419 km2)
CORRIDORS_PER_KM2 = 0.45
EVENTS_PER_KM2 = 0.35
LANDSLIDES_PER_KM2 = 1.5
#: landslide scars start on these slopes, degrees, below this elevation (vegetated), m
LANDSLIDE_SLOPE_MIN_DEG = 25.0
LANDSLIDE_SLOPE_MAX_DEG = 45.0
LANDSLIDE_MAX_ELEVATION_M = 2300.0
#: glaciers: above this elevation on slopes gentler than this
GLACIER_MIN_ELEVATION_M = 2600.0
GLACIER_MAX_SLOPE_DEG = 35.0
GLACIER_MIN_AREA_M2 = 100_000.0


@dataclass(frozen=True)
class Corridor:
    """An avalanche path: steepest descent from a release cell to the flattest runout."""

    corridor_id: str
    #: map coordinates (x, y) of the path cells, m, from release to the end of the longest runout
    xy: np.ndarray
    #: elevation along the path (depression-filled DEM), m
    z: np.ndarray
    #: horizontal distance along the path from the release, m
    distance_m: np.ndarray
    #: polygon observed by the inventory (monitored.geojson)
    outline: Polygon


@dataclass(frozen=True)
class AvalancheEvent:
    """One avalanche: its corridor, date (midnight UTC), alpha angle and debris polygon."""

    event_id: str
    corridor_id: str
    date: np.datetime64
    alpha_deg: float
    debris: Polygon
    #: debris brightening on the first acquisition after the event, dB (VV; VH scales it)
    contrast_db: float
    vh_factor: float
    #: fraction of the contrast left on each later acquisition of the same orbit
    fade: float


def _grid_xy(x: np.ndarray, y: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    return np.column_stack([x[j], y[i]])


def _tapered_polygon(line_xy: np.ndarray, half_widths: np.ndarray) -> Polygon:
    """Union of the convex hulls of consecutive circles along a line: an elongated lobe."""
    pieces = []
    circles = [shapely.Point(p).buffer(float(r), quad_segs=6) for p, r in zip(line_xy, half_widths, strict=True)]
    if len(circles) == 1:
        return circles[0]
    for a, b in zip(circles[:-1], circles[1:], strict=True):
        pieces.append(shapely.convex_hull(shapely.union(a, b)))
    poly = shapely.union_all(pieces)
    if poly.geom_type != "Polygon":  # keep the largest part
        poly = max(poly.geoms, key=lambda g: g.area)
    return shapely.set_precision(poly.simplify(2.0), 0.01)


def avalanche_corridors(
    z: np.ndarray, x: np.ndarray, y: np.ndarray, cell_m: float, count: int, rng: np.random.Generator
) -> list[Corridor]:
    """Up to ``count`` corridors from release cells (30-50 degrees, above the forest)."""
    slope, _ = slope_aspect(z, cell_m)
    filled = fill_depressions(z)
    # a low window of the landscape releases from its upper half instead
    min_elevation = min(RELEASE_MIN_ELEVATION_M, float(np.quantile(z, 0.5)))
    release = (slope >= RELEASE_SLOPE_MIN_DEG) & (slope <= RELEASE_SLOPE_MAX_DEG) & (z >= min_elevation)
    # not on the outer rim, so paths have room to run
    rim = max(2, int(200.0 / cell_m))
    release[:rim, :] = release[-rim:, :] = False
    release[:, :rim] = release[:, -rim:] = False
    candidates = np.flatnonzero(release)
    corridors: list[Corridor] = []
    if candidates.size == 0:
        return corridors
    order = rng.permutation(candidates)[: max(40 * count, 200)]
    starts: list[tuple[float, float]] = []
    tan_min_alpha = math.tan(math.radians(ALPHA_MIN_DEG))
    for flat in order:
        if len(corridors) >= count:
            break
        i0, j0 = divmod(int(flat), z.shape[1])
        sx, sy = x[j0], y[i0]
        if any((sx - px) ** 2 + (sy - py) ** 2 < CORRIDOR_SPACING_M**2 for px, py in starts):
            continue
        pi, pj = steepest_descent_path(filled, cell_m, (i0, j0))
        if pi.size < 4:
            continue
        xy = _grid_xy(x, y, pi, pj)
        zz = filled[pi, pj]
        dist = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(xy, axis=0).T))])
        with np.errstate(divide="ignore", invalid="ignore"):
            travel = np.where(dist > 0, (zz[0] - zz) / dist, np.inf)
        # the longest possible runout: where the travel angle falls to the smallest alpha
        below = np.flatnonzero((travel < tan_min_alpha) & (dist > CORRIDOR_MIN_LENGTH_M / 2))
        end = int(below[0]) if below.size else pi.size - 1
        if dist[end] < CORRIDOR_MIN_LENGTH_M or zz[0] - zz[end] < CORRIDOR_MIN_DROP_M:
            continue
        xy, zz, dist = xy[: end + 1], zz[: end + 1], dist[: end + 1]
        outline = LineString(xy).buffer(CORRIDOR_HALF_WIDTH_M, quad_segs=4).simplify(5.0)
        outline = shapely.set_precision(outline, 0.01)
        corridors.append(Corridor(f"corridor-{len(corridors) + 1:04d}", xy, zz, dist, outline))
        starts.append((sx, sy))
    return corridors


def debris_polygon(corridor: Corridor, alpha_deg: float, rng: np.random.Generator) -> Polygon | None:
    """Debris of an event with angle of reach ``alpha_deg`` on ``corridor``: an
    elongated lobe over the last part of the runout, widest near the toe."""
    d, zz = corridor.distance_m, corridor.z
    with np.errstate(divide="ignore", invalid="ignore"):
        travel = np.where(d > 0, (zz[0] - zz) / d, np.inf)
    stop = np.flatnonzero((travel < math.tan(math.radians(alpha_deg))) & (d > CORRIDOR_MIN_LENGTH_M / 2))
    end = int(stop[0]) if stop.size else d.size - 1
    total = d[end]
    deposit_len = float(np.clip(0.35 * total * rng.uniform(0.7, 1.3), 150.0, 900.0))
    first = int(np.searchsorted(d, total - deposit_len))
    first = min(first, end - 1)
    if first < 0 or end - first < 1:
        return None
    xy = corridor.xy[first : end + 1]
    # densify to ~10 m steps so the lobe is smooth
    line = LineString(xy)
    n = max(4, int(line.length / 10.0))
    pts = np.array([line.interpolate(t, normalized=True).coords[0] for t in np.linspace(0.0, 1.0, n)])
    width = float(np.clip(0.3 * deposit_len, 40.0, 220.0)) * rng.uniform(0.7, 1.3)
    s = np.linspace(0.0, 1.0, n)
    # narrow where the flow enters the runout, widest at 75 % of its length, rounded toe
    phase = np.where(s < 0.75, 0.5 * s / 0.75, 0.5 + 0.4 * (s - 0.75) / 0.25)
    profile = 0.35 + 0.65 * np.sin(np.pi * phase) ** 0.7
    # irregular edges: the lobe meanders sideways and swells and narrows along its length
    k = rng.uniform(0.0, 2.0 * np.pi, 3)
    profile = profile * (1.0 + 0.18 * np.sin(2.0 * np.pi * (2.3 * s) + k[0]) + 0.1 * np.sin(2.0 * np.pi * (4.1 * s) + k[1]))
    return _tapered_polygon(_meander(pts, 0.12 * width, s, k[2]), 0.5 * width * profile)


def _meander(pts: np.ndarray, amplitude_m: float, s: np.ndarray, phase: float) -> np.ndarray:
    """Shift points of a line sideways by a smooth wave of ``amplitude_m``."""
    tangent = np.gradient(pts, axis=0)
    norm = np.hypot(tangent[:, 0], tangent[:, 1])
    norm[norm == 0] = 1.0
    normal = np.column_stack([-tangent[:, 1], tangent[:, 0]]) / norm[:, None]
    return pts + normal * (amplitude_m * np.sin(2.0 * np.pi * 1.4 * s + phase))[:, None]


def landslide_scars(
    z: np.ndarray, x: np.ndarray, y: np.ndarray, cell_m: float, count: int, rng: np.random.Generator
) -> list[Polygon]:
    """Landslide scars: elongated downslope polygons starting on 25-45 degree vegetated slopes."""
    slope, _ = slope_aspect(z, cell_m)
    filled = fill_depressions(z)
    ok = (slope >= LANDSLIDE_SLOPE_MIN_DEG) & (slope <= LANDSLIDE_SLOPE_MAX_DEG) & (z <= LANDSLIDE_MAX_ELEVATION_M)
    rim = max(2, int(100.0 / cell_m))
    ok[:rim, :] = ok[-rim:, :] = False
    ok[:, :rim] = ok[:, -rim:] = False
    candidates = np.flatnonzero(ok)
    scars: list[Polygon] = []
    if candidates.size == 0:
        return scars
    tree_polys: list[Polygon] = []
    for flat in rng.permutation(candidates)[: 40 * count]:
        if len(scars) >= count:
            break
        i0, j0 = divmod(int(flat), z.shape[1])
        pi, pj = steepest_descent_path(filled, cell_m, (i0, j0), max_steps=200)
        xy = _grid_xy(x, y, pi, pj)
        dist = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(xy, axis=0).T))]) if xy.shape[0] > 1 else np.zeros(1)
        length = rng.uniform(100.0, 600.0)
        keep = dist <= length
        if keep.sum() < 3:
            continue
        line = LineString(xy[keep])
        n = max(4, int(line.length / 10.0))
        pts = np.array([line.interpolate(t, normalized=True).coords[0] for t in np.linspace(0.0, 1.0, n)])
        width = rng.uniform(40.0, 150.0)
        s = np.linspace(0.0, 1.0, n)
        # scarp at the top, narrowing track, a small deposit fan at the foot
        profile = 0.75 + 0.25 * np.cos(np.pi * s) ** 2
        poly = _tapered_polygon(pts, 0.5 * width * profile)
        if tree_polys and any(poly.intersects(tree_polys[k]) for k in shapely.STRtree(tree_polys).query(poly)):
            continue
        scars.append(poly)
        tree_polys.append(poly)
    return scars


def glacier_mask(z: np.ndarray, cell_m: float) -> np.ndarray:
    """Glaciers over high, gentle terrain: smoothed elevation/slope rule, small bits removed."""
    from scipy import ndimage

    slope, _ = slope_aspect(ndimage.gaussian_filter(z, 60.0 / cell_m), cell_m)
    # a scene window without high terrain still gets its highest ground as glaciers
    threshold = min(GLACIER_MIN_ELEVATION_M, float(np.quantile(z, 0.7)))
    mask = (z >= threshold) & (slope <= GLACIER_MAX_SLOPE_DEG)
    mask = ndimage.binary_opening(mask, iterations=1)
    mask = ndimage.binary_closing(mask, iterations=3)
    mask = ndimage.binary_fill_holes(mask)
    labels, n = ndimage.label(mask)
    if n:
        sizes = ndimage.sum(mask, labels, index=np.arange(1, n + 1)) * cell_m * cell_m
        keep = np.concatenate([[False], sizes >= GLACIER_MIN_AREA_M2])
        mask = keep[labels]
    return mask


def event_count(area_km2: float, per_km2: float, minimum: int) -> int:
    """Number of objects for a scene of ``area_km2``: the density, at least ``minimum``."""
    return max(minimum, int(round(per_km2 * area_km2)))
