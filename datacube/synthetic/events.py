"""Hazards of the synthetic scene: avalanche corridors and debris, landslide scars, glaciers.

Geometry and the numbers that draw it (map metres, shapely polygons): how
many avalanches, how large, how bright and how long they stay visible, from
avalanche-fcn-bianchi where it gives a number. The backscatter they cause is
composed in :mod:`sarcube.datacube.synthetic.backscatter`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import LineString, Polygon

from sarcube.datacube.synthetic.terrain import (
    fill_depressions,
    slope_aspect,
    steepest_descent_path,
)

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
#: corridors per km2 of scene (default scene: 419 km2), and landslides per km2
CORRIDORS_PER_KM2 = 0.45
LANDSLIDES_PER_KM2 = 1.5
# Avalanche numbers of avalanche-fcn-bianchi II-C / IV-A: 6,345 avalanches, 712,945 debris
# pixels of 3,668,068,419 (0.019 %) in 118 products of 20 m pixels, one 6-day pair each.
BIANCHI_AVALANCHES = 6_345
BIANCHI_DEBRIS_PIXELS = 712_945
BIANCHI_PIXELS = 3_668_068_419
BIANCHI_PIXEL_M = 20.0
#: Bianchi's debris pixel fraction per pair (0.019 %) and mean debris area (~4.5 ha, 112 pixels)
BIANCHI_DEBRIS_FRACTION = BIANCHI_DEBRIS_PIXELS / BIANCHI_PIXELS
BIANCHI_MEAN_DEBRIS_M2 = BIANCHI_DEBRIS_PIXELS * BIANCHI_PIXEL_M**2 / BIANCHI_AVALANCHES
#: our scene is all mountain terrain, Bianchi's products also hold sea, fjords and flat land:
#: we place this many times their avalanches per km2 and pair (a choice: it keeps ~5 events
#: in a held-out window of the default 1024 px scene; the debris fraction stays within ~3x theirs)
DENSITY_OVER_BIANCHI = 3.0
#: events per km2 and day: Bianchi's avalanches per km2 and 6-day pair, times the factor above
EVENTS_PER_KM2_PER_DAY = (
    DENSITY_OVER_BIANCHI * BIANCHI_AVALANCHES / (BIANCHI_PIXELS * BIANCHI_PIXEL_M**2 / 1e6) / 6.0
)
#: a scene gets at least this many events (tiny test scenes are far denser than real ones)
MIN_EVENTS = 12
#: debris area: log-normal with Bianchi's mean and a skewed spread (approx.: many small
#: deposits, a few large ones), clipped to this range, m2
DEBRIS_AREA_SIGMA = 0.8
DEBRIS_AREA_RANGE_M2 = (3_000.0, 250_000.0)
#: deposits are this many times longer than wide (approx.)
DEBRIS_ELONGATION = (2.0, 4.0)
#: area of a debris lobe over its length x width (measured on the lobes drawn here)
LOBE_FILL = 0.94
#: debris brightening right after the event (mean over the polygon), VV, dB: log-normal, median and
#: spread, clipped (Eckerstorfer & Malnes 2015, Vickers et al. 2016, Eckerstorfer et al. 2019 report
#: debris a few dB above the undisturbed snow; approx.: as observed in a pair, after some fading and
#: wet snow, most deposits show 1-3 dB and a tail reaches ~8 dB)
DEBRIS_CONTRAST_MEDIAN_DB = 2.8
DEBRIS_CONTRAST_SIGMA = 0.55
DEBRIS_CONTRAST_RANGE_DB = (0.8, 10.0)
#: VH brightening relative to VV (approx.: similar or somewhat larger)
DEBRIS_VH_FACTOR = (0.9, 1.4)
#: share of the debris contrast left per 6-day revisit in dry snow (approx.: dry debris stays
#: visible for several revisits; storms reset it, see ``snow.KEPT_AFTER_STORM``)
DEBRIS_FADE_PER_REVISIT = (0.8, 0.95)
#: share of the contrast that shows while the snow is wet (approx.)
DEBRIS_WET_VISIBLE = 0.6
#: label noise: this share of the avalanches smaller than SMALL_DEBRIS_M2 are in the backscatter
#: but not in labels.geojson (Bianchi V: some false positives "are actual avalanches that have been
#: overlooked during the manual annotation"; the share is our choice in the issue's 15-25 %)
SMALL_DEBRIS_M2 = 20_000.0
UNLABELLED_SMALL_SHARE = 0.2
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
    #: debris brightening right after the event, dB (VV; VH scales it)
    contrast_db: float
    vh_factor: float
    #: fraction of the contrast left after each 6-day revisit (storms take more, see ``snow``)
    fade: float
    #: in labels.geojson (False: a small avalanche the annotator missed)
    labelled: bool = True


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


def debris_polygon(corridor: Corridor, alpha_deg: float, area_m2: float, rng: np.random.Generator) -> Polygon | None:
    """Debris of an event with angle of reach ``alpha_deg`` on ``corridor``, of about ``area_m2``:
    an elongated lobe ending where the travel angle falls to alpha, widest near the toe."""
    d, zz = corridor.distance_m, corridor.z
    with np.errstate(divide="ignore", invalid="ignore"):
        travel = np.where(d > 0, (zz[0] - zz) / d, np.inf)
    stop = np.flatnonzero((travel < math.tan(math.radians(alpha_deg))) & (d > CORRIDOR_MIN_LENGTH_M / 2))
    end = int(stop[0]) if stop.size else d.size - 1
    total = d[end]
    elongation = rng.uniform(*DEBRIS_ELONGATION)
    # the lobe (with its rounded ends) covers ~0.94 of its length x width (measured)
    deposit_len = float(np.clip(math.sqrt(area_m2 * elongation / LOBE_FILL), 60.0, max(60.0, 0.7 * total)))
    first = int(np.searchsorted(d, total - deposit_len))
    first = min(first, end - 1)
    if first < 0 or end - first < 1:
        return None
    xy = corridor.xy[first : end + 1]
    # densify to ~10 m steps so the lobe is smooth
    line = LineString(xy)
    n = max(4, int(line.length / 10.0))
    pts = np.array([line.interpolate(t, normalized=True).coords[0] for t in np.linspace(0.0, 1.0, n)])
    width = float(np.clip(area_m2 / (LOBE_FILL * deposit_len), 30.0, max(30.0, deposit_len / 1.2)))
    s = np.linspace(0.0, 1.0, n)
    # narrow where the flow enters the runout, widest at 75 % of its length, rounded toe
    phase = np.where(s < 0.75, 0.5 * s / 0.75, 0.5 + 0.4 * (s - 0.75) / 0.25)
    profile = 0.35 + 0.65 * np.sin(np.pi * phase) ** 0.7
    # irregular edges: the lobe meanders sideways and swells and narrows along its length
    k = rng.uniform(0.0, 2.0 * np.pi, 3)
    profile = profile * (
        1.0 + 0.18 * np.sin(2.0 * np.pi * (2.3 * s) + k[0]) + 0.1 * np.sin(2.0 * np.pi * (4.1 * s) + k[1])
    )
    return _tapered_polygon(_meander(pts, 0.12 * width, s, k[2]), 0.5 * width * profile)


def debris_area_m2(rng: np.random.Generator) -> float:
    """A debris area drawn around Bianchi's mean (log-normal, :data:`DEBRIS_AREA_SIGMA`), m2."""
    median = BIANCHI_MEAN_DEBRIS_M2 / math.exp(DEBRIS_AREA_SIGMA**2 / 2.0)
    return float(np.clip(median * math.exp(rng.normal(0.0, DEBRIS_AREA_SIGMA)), *DEBRIS_AREA_RANGE_M2))


def debris_contrast_db(rng: np.random.Generator) -> float:
    """A debris brightening (VV, dB) from the skewed distribution above."""
    draw = DEBRIS_CONTRAST_MEDIAN_DB * math.exp(rng.normal(0.0, DEBRIS_CONTRAST_SIGMA))
    return float(np.clip(draw, *DEBRIS_CONTRAST_RANGE_DB))


def spread_dates(
    first: np.datetime64, last: np.datetime64, count: int, rng: np.random.Generator
) -> list[np.datetime64]:
    """``count`` event days in [first, last], one per equal share of the span in random order
    (stratified: every 6-day window holds about its share, so a held-out window is never empty)."""
    span = int((last - first) / np.timedelta64(1, "D")) + 1
    slots = rng.permutation(count)
    return [first + np.timedelta64(int((k + rng.random()) * span / count), "D") for k in slots]


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
