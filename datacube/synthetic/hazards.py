"""The scene's hazard on its grid: labelled objects, the observed area, and the change they add to the backscatter.

One builder per hazard: avalanche debris in its corridors, landslide scars,
glaciers (their geometry comes from :mod:`sarcube.datacube.synthetic.events`).
Each returns a :class:`Hazard`: the labels and the monitored area as
(geometry in the scene's CRS, properties) pairs, which
:mod:`sarcube.datacube.synthetic.scene` writes as GeoJSON in lon/lat, and the
debris windows and rasters that :mod:`sarcube.datacube.synthetic.backscatter`
adds to each acquisition's backscatter. Some small avalanches are in the
backscatter but not in the labels (label noise, see ``events``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import shapely
from affine import Affine

from sarcube.datacube.synthetic import events
from sarcube.datacube.synthetic.sar import SceneLayers, Schedule
from sarcube.errors import InputError

HAZARDS = ("avalanche", "landslide", "glacier")
#: labels.geojson property names
LABEL_DATE = "date"
LABEL_AREA = "area_m2"
LABEL_EVENT_ID = "event_id"
#: the landslide scars' change (dB) after the trigger, drawn per scar
LANDSLIDE_VV_DB = (2.0, 5.0)
LANDSLIDE_VH_DB = (-3.0, -1.0)

#: share of each glacier's area, from its lowest point up, that is debris-covered (approx.; the glacier
#: paper's models failed on "a considerable debris-like patch at the termini")
GLACIER_DEBRIS_SHARE = 0.15

#: one labelled object or monitored area: its geometry in the scene's CRS and its GeoJSON properties
MapFeature = tuple[Any, dict[str, Any]]
#: where a debris deposit lies on the grid (rows, columns) and its weight there
DebrisWindow = tuple[tuple[slice, slice], np.ndarray]


@dataclass
class Hazard:
    """The hazard's labelled objects and what they add to the backscatter."""

    features: list[MapFeature]
    monitored: list[MapFeature]
    event_date: np.datetime64 | None = None
    avalanches: list[tuple[events.AvalancheEvent, DebrisWindow]] | None = None
    landslide_vv: np.ndarray | None = None
    landslide_vh: np.ndarray | None = None
    glacier: np.ndarray | None = None
    #: debris cover of the glaciers (0..1): debris-covered tongues look like rock
    glacier_debris: np.ndarray | None = None


def _rasterize(
    polys: list[Any], shape: tuple[int, int], transform: Affine, values: list[float] | None = None
) -> np.ndarray:
    from rasterio.features import rasterize

    if not polys:
        return np.zeros(shape, dtype=np.float32)
    vals = values if values is not None else [1.0] * len(polys)
    return rasterize(zip(polys, vals, strict=True), out_shape=shape, transform=transform, fill=0.0, dtype="float32")


def _soft_mask(
    poly: Any, transform: Affine, shape: tuple[int, int], rng: np.random.Generator
) -> DebrisWindow | None:
    """Window and soft-edged, internally varying weight (mean 1 over the polygon) of one polygon on the grid."""
    from rasterio.features import rasterize
    from rasterio.windows import from_bounds
    from scipy import ndimage

    win = from_bounds(*poly.bounds, transform=transform).round_offsets().round_lengths()
    r0, c0 = max(int(win.row_off) - 3, 0), max(int(win.col_off) - 3, 0)
    r1, c1 = min(int(win.row_off + win.height) + 4, shape[0]), min(int(win.col_off + win.width) + 4, shape[1])
    if r1 <= r0 or c1 <= c0:
        return None
    sub = transform @ Affine.translation(c0, r0)
    mask = rasterize(
        [(poly, 1.0)], out_shape=(r1 - r0, c1 - c0), transform=sub, fill=0.0, dtype="float32", all_touched=False
    )
    if not mask.any():
        return None
    soft = ndimage.gaussian_filter(mask, 0.6)
    texture = ndimage.gaussian_filter(rng.normal(0.0, 1.0, mask.shape), 1.5)
    texture = texture / (np.abs(texture).max() + 1e-9)
    weight = soft * (1.0 + 0.25 * texture)
    # the mean over the polygon's own cells is 1: a contrast is the polygon's mean change
    weight = weight / float(weight[mask > 0].mean())
    return (slice(r0, r1), slice(c0, c1)), weight.astype(np.float32)


def _no_terrain(hazard: str) -> InputError:
    return InputError(
        f"the synthetic scene has no {hazard} terrain at this size/seed: use a larger --size or another --seed"
    )


def avalanches(
    layers: SceneLayers, schedule: Schedule, transform: Affine, rng: np.random.Generator, scene_poly: Any
) -> Hazard:
    """Debris of avalanches in the event window, in corridors of the release terrain; every corridor is monitored.

    Events arrive at :data:`~events.EVENTS_PER_KM2_PER_DAY` (at least
    :data:`~events.MIN_EVENTS`), spread evenly over the window; a share of the
    small ones stays out of the labels (label noise) but not out of the backscatter.
    """
    h, w = layers.z.shape
    area_km2 = h * w * layers.cell_m**2 / 1e6
    corridors = events.avalanche_corridors(
        layers.z, layers.x, layers.y, layers.cell_m, events.event_count(area_km2, events.CORRIDORS_PER_KM2, 12), rng
    )
    if not corridors:
        raise _no_terrain("avalanche")
    dates: list[np.datetime64] = []
    for first, last in schedule.event_windows:  # each winter's events at the same rate per day
        span_days = int((last - first) / np.timedelta64(1, "D")) + 1
        n_events = max(events.MIN_EVENTS, int(round(events.EVENTS_PER_KM2_PER_DAY * area_km2 * span_days)))
        dates += events.spread_dates(first, last, n_events, rng)
    # each event in another corridor while there are corridors left (one avalanche per path and cycle)
    order = rng.permutation(len(corridors))
    placed: list[tuple[events.AvalancheEvent, DebrisWindow]] = []
    for k, date in enumerate(dates):
        corridor = corridors[int(order[k % order.size])]
        alpha = float(rng.uniform(events.ALPHA_MIN_DEG, events.ALPHA_MAX_DEG))
        debris = events.debris_polygon(corridor, alpha, events.debris_area_m2(rng), rng)
        contrast, vh_factor = events.debris_contrast_db(rng), float(rng.uniform(*events.DEBRIS_VH_FACTOR))
        fade = float(rng.uniform(*events.DEBRIS_FADE_PER_REVISIT))
        if debris is None:
            continue
        debris = debris.intersection(scene_poly)
        if debris.is_empty or debris.area < 4 * layers.cell_m**2:
            continue
        if debris.geom_type != "Polygon":
            debris = max(debris.geoms, key=lambda g: g.area)
        event = events.AvalancheEvent(
            event_id=f"avalanche-{len(placed) + 1:04d}",
            corridor_id=corridor.corridor_id,
            date=date,
            alpha_deg=alpha,
            debris=debris,
            contrast_db=contrast,
            vh_factor=vh_factor,
            fade=fade,
        )
        soft = _soft_mask(debris, transform, (h, w), rng)
        if soft is not None:
            placed.append((event, soft))
    placed = _miss_small(placed, rng)
    features = []
    for event, _ in placed:
        if not event.labelled:
            continue
        debris, date, alpha = event.debris, event.date, event.alpha_deg
        features.append(
            (
                debris,
                {
                    LABEL_EVENT_ID: event.event_id,
                    LABEL_DATE: str(date),
                    LABEL_AREA: round(float(debris.area), 1),
                    "corridor_id": event.corridor_id,
                    "alpha_deg": round(alpha, 2),
                    "contrast_db": round(event.contrast_db, 2),
                },
            )
        )
    active_ids = {e.corridor_id for e, _ in placed if e.labelled}
    monitored = [
        (c.outline.intersection(scene_poly), {"corridor_id": c.corridor_id, "active": c.corridor_id in active_ids})
        for c in corridors
    ]
    return Hazard(features, monitored, avalanches=placed)


def _miss_small(
    placed: list[tuple[events.AvalancheEvent, DebrisWindow]], rng: np.random.Generator
) -> list[tuple[events.AvalancheEvent, DebrisWindow]]:
    """Leave :data:`~events.UNLABELLED_SMALL_SHARE` of the small avalanches (rounded) out of the labels."""
    small = [k for k, (e, _) in enumerate(placed) if e.debris.area < events.SMALL_DEBRIS_M2]
    missed = set(rng.permutation(small)[: int(round(events.UNLABELLED_SMALL_SHARE * len(small)))].tolist())
    return [(replace(e, labelled=False) if k in missed else e, soft) for k, (e, soft) in enumerate(placed)]


def landslides(
    layers: SceneLayers, schedule: Schedule, transform: Affine, rng: np.random.Generator, scene_poly: Any
) -> Hazard:
    """Scars triggered on the schedule's event date, each with its lasting VV/VH change; the scene is monitored."""
    h, w = layers.z.shape
    area_km2 = h * w * layers.cell_m**2 / 1e6
    count = events.event_count(area_km2, events.LANDSLIDES_PER_KM2, 10)
    scars = events.landslide_scars(layers.z, layers.x, layers.y, layers.cell_m, count, rng)
    if not scars:
        raise _no_terrain("landslide")
    scars = [s.intersection(scene_poly) for s in scars]
    vv = [float(rng.uniform(*LANDSLIDE_VV_DB)) * (1.0 if rng.random() < 0.85 else -0.6) for _ in scars]
    vh = [float(rng.uniform(*LANDSLIDE_VH_DB)) * (1.0 if rng.random() < 0.7 else -0.6) for _ in scars]
    features = [
        (p, {LABEL_EVENT_ID: f"landslide-{i + 1:04d}", LABEL_AREA: round(float(p.area), 1)})
        for i, p in enumerate(scars)
    ]
    from scipy import ndimage

    vv_map = ndimage.gaussian_filter(_rasterize(scars, (h, w), transform, vv), 0.6)
    vh_map = ndimage.gaussian_filter(_rasterize(scars, (h, w), transform, vh), 0.6)
    monitored = [(scene_poly, {"observed": "scene"})]
    return Hazard(features, monitored, event_date=schedule.event_date, landslide_vv=vv_map, landslide_vh=vh_map)


def glaciers(layers: SceneLayers, transform: Affine, scene_poly: Any) -> Hazard:
    """The glacier outlines and their mask on the grid; the scene is monitored."""
    from rasterio.features import shapes

    mask = events.glacier_mask(layers.z, layers.cell_m)
    features = []
    for k, (geom, value) in enumerate(shapes(mask.astype(np.uint8), mask=mask, transform=transform)):
        if value != 1:
            continue
        poly = shapely.geometry.shape(geom).simplify(layers.cell_m / 2)
        poly = shapely.set_precision(poly, 0.01)
        features.append((poly, {"glacier_id": f"glacier-{k + 1:04d}", LABEL_AREA: round(float(poly.area), 1)}))
    if not features:
        raise _no_terrain("glacier")
    monitored = [(scene_poly, {"observed": "scene"})]
    return Hazard(features, monitored, glacier=mask.astype(np.float32), glacier_debris=_debris_tongues(mask, layers.z))


def _debris_tongues(mask: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Soft debris cover (0..1) over the lowest :data:`GLACIER_DEBRIS_SHARE` of each glacier."""
    from scipy import ndimage

    labels, n = ndimage.label(mask)
    debris = np.zeros(mask.shape, dtype=np.float32)
    for k in range(1, n + 1):
        cells = labels == k
        debris[cells & (z <= np.quantile(z[cells], GLACIER_DEBRIS_SHARE))] = 1.0
    return (ndimage.gaussian_filter(debris, 1.0) * mask).astype(np.float32)
