"""The embedded demo: a synthetic alpine scene served as a local STAC catalog.

:func:`write_demo_catalog` writes a static catalog shaped like Planetary
Computer's ``sentinel-1-rtc`` and ``cop-dem-glo-30`` collections, so that the
very code that reads PC reads it (``sarcube build --catalog OUT``):

* a procedural alpine DEM (ridged multifractal, ~2800 m relief, slopes to
  ~60 degrees) in UTM 32N, written as a float32 COG in EPSG:4326 like the
  Copernicus DEM; the physics uses the same DEM after the round trip through
  EPSG:4326, i.e. what the pipeline sees;
* Sentinel-1 IW dual-pol RTC gamma0 (linear float32 COGs, nodata -32768) of
  two relative orbits (descending 66, ascending 88) on a 6-day repeat;
* the hazard (``avalanche``, ``landslide`` or ``glacier``) with its labels
  (``labels.geojson``) and the observed area (``monitored.geojson``);
* a manifest ``sarcube-demo.json`` (:class:`DemoManifest`) with the AOI,
  dates and windows the later steps need.

Speckle is multiplicative gamma noise with the ENL of Sentinel-1 IW GRD at
its 10 m spacing (4.4) times the number of 10 m pixels a cell averages
(17.6 at 20 m; the items' ``sar:looks_equivalent_number`` says which).

Deterministic: the same arguments write the same bytes. Gamma0 is rounded
to 0.01 dB before compression (speckle alone is ~1 dB), which halves the
size of the COGs; the default scene (1024 x 1024 at 20 m, 20 dates) is
about 86 MB and takes 15-30 s on two cores.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from affine import Affine
from sarcube.datacube import _synthetic_events as events
from sarcube.datacube import _synthetic_sar as sar
from sarcube.datacube import _synthetic_stac as stac
from sarcube.datacube import schema
from sarcube.datacube._synthetic_terrain import (
    alpine_dem,
    fractal_noise,
    radar_geometry,
    slope_aspect,
)
from tqdm.auto import tqdm

from sarcube.errors import InputError

log = logging.getLogger(__name__)

HAZARDS = ("avalanche", "landslide", "glacier")
#: the scene's projected CRS (UTM 32N) and the centre of every scene in it, m:
#: near the zone's central meridian (9 E, 46.4 N, Adula Alps), so the scene is
#: almost north-aligned in longitude/latitude too
SCENE_EPSG = 32632
SCENE_CENTRE_M = (500_000.0, 5_140_000.0)
MIN_SIZE = 128
MAX_SIZE = 8192
MIN_RESOLUTION_M = 5.0
MAX_RESOLUTION_M = 100.0
MAX_DATES = 400
#: Copernicus DEM GLO-30 spacing below 50 degrees latitude
DEM_SPACING_DEG = 1.0 / 3600.0
#: margin of the DEM tile around the scene, m
DEM_MARGIN_M = 300.0
MANIFEST_NAME = "sarcube-demo.json"
LABELS_NAME = "labels.geojson"
MONITORED_NAME = "monitored.geojson"
CATALOG_NAME = "catalog.json"
MANIFEST_VERSION = 1
#: extra fields of catalog.json (STAC allows them on any object)
CATALOG_FIELD_HAZARD = "sarcube:hazard"
CATALOG_FIELD_EVENT_DATE = "sarcube:event_date"
CATALOG_FIELD_SEED = "sarcube:seed"
#: labels.geojson property names
LABEL_DATE = "date"
LABEL_AREA = "area_m2"
LABEL_EVENT_ID = "event_id"
#: the landslide scars' change (dB) after the trigger, drawn per scar
LANDSLIDE_VV_DB = (2.0, 5.0)
LANDSLIDE_VH_DB = (-3.0, -1.0)


@dataclass(frozen=True)
class DemoManifest:
    """What ``sarcube-demo.json`` records about a demo catalog."""

    #: path of the catalog's ``catalog.json``
    catalog: Path
    #: longitude/latitude box (W, S, E, N) inside the scene: pass it as ``--aoi``
    bbox_lonlat: tuple[float, float, float, float]
    #: the scene's bounds in its CRS (left, bottom, right, top), m
    bbox: tuple[float, float, float, float]
    #: the scene's CRS, e.g. "EPSG:32632"
    crs: str
    #: pixel size, m
    resolution: float
    #: pixels per side
    size: int
    seed: int
    hazard: str
    #: ISO dates covering every acquisition (inclusive)
    start: str
    end: str
    #: landslide trigger date (ISO), None for other hazards
    event_date: str | None
    #: snow-free reference window inside the dates (ISO start, end), for the ratio features
    summer: tuple[str, str]
    #: labels.geojson and monitored.geojson
    labels: Path
    monitored: Path
    #: number of acquisitions and of labelled objects
    acquisitions: int
    objects: int


def _check_inputs(out: Path, seed: int, size: int, resolution: float, dates: int | None, hazard: str) -> None:
    if hazard not in HAZARDS:
        raise InputError(f"--hazard {hazard!r} is unknown: use one of {', '.join(HAZARDS)}")
    if not isinstance(size, int | np.integer) or not MIN_SIZE <= size <= MAX_SIZE:
        raise InputError(f"--size {size!r} is out of range: use {MIN_SIZE} to {MAX_SIZE} pixels (e.g. --size 256)")
    if not (isinstance(resolution, int | float) and math.isfinite(resolution) and MIN_RESOLUTION_M <= resolution <= MAX_RESOLUTION_M):
        raise InputError(f"--resolution {resolution!r} is out of range: use {MIN_RESOLUTION_M:g} to {MAX_RESOLUTION_M:g} m (e.g. 20)")
    if dates is not None and (not isinstance(dates, int | np.integer) or not sar.MIN_DATES <= dates <= MAX_DATES):
        raise InputError(f"--dates {dates!r} is out of range: use {sar.MIN_DATES} to {MAX_DATES} acquisitions")
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(f"--seed {seed!r} is not valid: use a non-negative integer")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"output {str(out)!r} exists and is not an empty folder: choose a new folder or delete it")


def _rng(seed: int, *keys: int) -> np.random.Generator:
    """An independent random stream per component (terrain, cover, events, each date)."""
    return np.random.default_rng([int(seed), *keys])


def _to_lonlat(geom: Any) -> Any:
    from pyproj import Transformer

    tr = Transformer.from_crs(SCENE_EPSG, 4326, always_xy=True)
    moved = shapely.transform(geom, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
    # RFC 7946: exterior rings counterclockwise
    return shapely.orient_polygons(shapely.set_precision(moved, 1e-7), exterior_cw=False)


def _inner_lonlat_box(bounds: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """The largest lon/lat box whose corners all fall inside the projected scene."""
    from pyproj import Transformer

    left, bottom, right, top = bounds
    tr = Transformer.from_crs(SCENE_EPSG, 4326, always_xy=True)
    n = 64
    t = np.linspace(0.0, 1.0, n)
    west = tr.transform(np.full(n, left), bottom + t * (top - bottom))[0].max()
    east = tr.transform(np.full(n, right), bottom + t * (top - bottom))[0].min()
    south = tr.transform(left + t * (right - left), np.full(n, bottom))[1].max()
    north = tr.transform(left + t * (right - left), np.full(n, top))[1].min()
    # a hair inside, so the box's own projection stays within the scene
    eps = 1e-6
    return (round(west + eps, 6), round(south + eps, 6), round(east - eps, 6), round(north - eps, 6))


def _dem_rasters(seed: int, size: int, resolution: float) -> tuple[np.ndarray, np.ndarray, Affine, tuple[float, float, float, float], np.ndarray, np.ndarray]:
    """The DEM tile (EPSG:4326, float32) and the scene-grid DEM after the round trip.

    Returns (dem_4326, dem_scene, transform_4326, bounds_lonlat, x, y).
    """
    import rasterio.warp
    from pyproj import Transformer
    from rasterio.enums import Resampling

    half = size * resolution / 2.0
    left, top = SCENE_CENTRE_M[0] - half, SCENE_CENTRE_M[1] + half
    x = left + resolution * (np.arange(size) + 0.5)
    y = top - resolution * (np.arange(size) + 0.5)
    scene_transform = Affine(resolution, 0.0, left, 0.0, -resolution, top)
    # the DEM tile: the scene's lon/lat bounds plus a margin, on the 1 arcsecond grid
    tr = Transformer.from_crs(SCENE_EPSG, 4326, always_xy=True)
    ring = np.linspace(-half - DEM_MARGIN_M, half + DEM_MARGIN_M, 33)
    ex = np.concatenate([ring, ring, np.full(33, ring[0]), np.full(33, ring[-1])]) + SCENE_CENTRE_M[0]
    ey = np.concatenate([np.full(33, ring[0]), np.full(33, ring[-1]), ring, ring]) + SCENE_CENTRE_M[1]
    lon, lat = tr.transform(ex, ey)
    w = math.floor(lon.min() / DEM_SPACING_DEG) * DEM_SPACING_DEG
    e = math.ceil(lon.max() / DEM_SPACING_DEG) * DEM_SPACING_DEG
    s = math.floor(lat.min() / DEM_SPACING_DEG) * DEM_SPACING_DEG
    n = math.ceil(lat.max() / DEM_SPACING_DEG) * DEM_SPACING_DEG
    width, height = round((e - w) / DEM_SPACING_DEG), round((n - s) / DEM_SPACING_DEG)
    dem_transform = Affine(DEM_SPACING_DEG, 0.0, w, 0.0, -DEM_SPACING_DEG, n)
    # the landscape on a padded UTM grid that covers the tile, then warped to it
    pad = int(math.ceil(2 * DEM_MARGIN_M / resolution)) + 2
    px = left - pad * resolution + resolution * (np.arange(size + 2 * pad) + 0.5)
    py = top + pad * resolution - resolution * (np.arange(size + 2 * pad) + 0.5)
    padded = alpine_dem(px, py, _rng(seed, 1))
    padded_transform = Affine(resolution, 0.0, px[0] - resolution / 2, 0.0, -resolution, py[0] + resolution / 2)
    dem_4326 = np.full((height, width), np.nan, dtype=np.float32)
    crs_scene = f"EPSG:{SCENE_EPSG}"
    rasterio.warp.reproject(
        padded.astype(np.float32), dem_4326, src_transform=padded_transform, src_crs=crs_scene,
        dst_transform=dem_transform, dst_crs="EPSG:4326", resampling=Resampling.bilinear, src_nodata=None, dst_nodata=np.nan,
    )
    dem_scene = np.full((size, size), np.nan, dtype=np.float32)
    rasterio.warp.reproject(
        dem_4326, dem_scene, src_transform=dem_transform, src_crs="EPSG:4326",
        dst_transform=scene_transform, dst_crs=crs_scene, resampling=Resampling.bilinear, src_nodata=np.nan, dst_nodata=np.nan,
    )
    if not np.isfinite(dem_scene).all():  # pragma: no cover - the margin covers the scene
        raise RuntimeError("synthetic DEM tile does not cover the scene")
    return dem_4326, dem_scene.astype(np.float64), dem_transform, (w, s, e, n), x, y


def _rasterize(polys: list[Any], shape: tuple[int, int], transform: Affine, values: list[float] | None = None) -> np.ndarray:
    from rasterio.features import rasterize

    if not polys:
        return np.zeros(shape, dtype=np.float32)
    vals = values if values is not None else [1.0] * len(polys)
    return rasterize(zip(polys, vals, strict=True), out_shape=shape, transform=transform, fill=0.0, dtype="float32")


def _soft_mask(poly: Any, transform: Affine, shape: tuple[int, int], rng: np.random.Generator) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """Window and soft-edged, internally varying weight (0..~1.2) of one polygon on the grid."""
    from rasterio.features import rasterize
    from rasterio.windows import from_bounds
    from scipy import ndimage

    win = from_bounds(*poly.bounds, transform=transform).round_offsets().round_lengths()
    r0, c0 = max(int(win.row_off) - 3, 0), max(int(win.col_off) - 3, 0)
    r1, c1 = min(int(win.row_off + win.height) + 4, shape[0]), min(int(win.col_off + win.width) + 4, shape[1])
    if r1 <= r0 or c1 <= c0:
        return None
    sub = transform * Affine.translation(c0, r0)
    mask = rasterize([(poly, 1.0)], out_shape=(r1 - r0, c1 - c0), transform=sub, fill=0.0, dtype="float32", all_touched=False)
    if not mask.any():
        return None
    soft = ndimage.gaussian_filter(mask, 0.6)
    texture = ndimage.gaussian_filter(rng.normal(0.0, 1.0, mask.shape), 1.5)
    texture = texture / (np.abs(texture).max() + 1e-9)
    weight = soft * (1.0 + 0.25 * texture)
    return (slice(r0, r1), slice(c0, c1)), weight.astype(np.float32)


@dataclass
class _Hazard:
    """The hazard's labelled objects and what they add to the backscatter."""

    features: list[dict[str, Any]]
    monitored: list[dict[str, Any]]
    event_date: np.datetime64 | None = None
    avalanches: list[tuple[events.AvalancheEvent, tuple[tuple[slice, slice], np.ndarray]]] | None = None
    landslide_vv: np.ndarray | None = None
    landslide_vh: np.ndarray | None = None
    glacier: np.ndarray | None = None


def _feature(geom_utm: Any, props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "properties": props, "geometry": shapely.geometry.mapping(_to_lonlat(geom_utm))}


def _build_avalanches(layers: sar.SceneLayers, schedule: sar.Schedule, transform: Affine, seed: int, scene_poly: Any) -> _Hazard:
    rng = _rng(seed, 3)
    h, w = layers.z.shape
    area_km2 = h * w * layers.cell_m**2 / 1e6
    corridors = events.avalanche_corridors(
        layers.z, layers.x, layers.y, layers.cell_m, events.event_count(area_km2, events.CORRIDORS_PER_KM2, 12), rng
    )
    if not corridors:
        raise InputError("the synthetic scene has no avalanche terrain at this size/seed: use a larger --size or another --seed")
    n_events = events.event_count(area_km2, events.EVENTS_PER_KM2, 8)
    active = rng.permutation(len(corridors))[: max(1, int(round(0.75 * len(corridors))))]
    first, last = schedule.event_window
    span = int((last - first) / np.timedelta64(1, "D")) + 1
    placed: list[tuple[events.AvalancheEvent, tuple[tuple[slice, slice], np.ndarray]]] = []
    features = []
    for k in range(n_events):
        corridor = corridors[int(active[k % active.size] if k < active.size else rng.choice(active))]
        alpha = float(rng.uniform(events.ALPHA_MIN_DEG, events.ALPHA_MAX_DEG))
        debris = events.debris_polygon(corridor, alpha, rng)
        if debris is None:
            continue
        debris = debris.intersection(scene_poly)
        if debris.is_empty or debris.area < 4 * layers.cell_m**2:
            continue
        if debris.geom_type != "Polygon":
            debris = max(debris.geoms, key=lambda g: g.area)
        date = first + np.timedelta64(int(rng.integers(0, span)), "D")
        event = events.AvalancheEvent(
            event_id=f"avalanche-{len(placed) + 1:04d}",
            corridor_id=corridor.corridor_id,
            date=date,
            alpha_deg=alpha,
            debris=debris,
            contrast_db=float(rng.uniform(2.0, 8.0)),
            vh_factor=float(rng.uniform(0.9, 1.3)),
            fade=float(rng.uniform(0.35, 0.6)),
        )
        soft = _soft_mask(debris, transform, (h, w), rng)
        if soft is None:
            continue
        placed.append((event, soft))
        features.append(
            _feature(
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
    active_ids = {e.corridor_id for e, _ in placed}
    monitored = [
        _feature(c.outline.intersection(scene_poly), {"corridor_id": c.corridor_id, "active": c.corridor_id in active_ids})
        for c in corridors
    ]
    return _Hazard(features, monitored, avalanches=placed)


def _build_landslides(layers: sar.SceneLayers, schedule: sar.Schedule, transform: Affine, seed: int, scene_poly: Any) -> _Hazard:
    rng = _rng(seed, 4)
    h, w = layers.z.shape
    area_km2 = h * w * layers.cell_m**2 / 1e6
    scars = events.landslide_scars(layers.z, layers.x, layers.y, layers.cell_m, events.event_count(area_km2, events.LANDSLIDES_PER_KM2, 10), rng)
    if not scars:
        raise InputError("the synthetic scene has no landslide terrain at this size/seed: use a larger --size or another --seed")
    scars = [s.intersection(scene_poly) for s in scars]
    vv = [float(rng.uniform(*LANDSLIDE_VV_DB)) * (1.0 if rng.random() < 0.85 else -0.6) for _ in scars]
    vh = [float(rng.uniform(*LANDSLIDE_VH_DB)) * (1.0 if rng.random() < 0.7 else -0.6) for _ in scars]
    features = [
        _feature(p, {LABEL_EVENT_ID: f"landslide-{i + 1:04d}", LABEL_AREA: round(float(p.area), 1)})
        for i, p in enumerate(scars)
    ]
    from scipy import ndimage

    vv_map = ndimage.gaussian_filter(_rasterize(scars, (h, w), transform, vv), 0.6)
    vh_map = ndimage.gaussian_filter(_rasterize(scars, (h, w), transform, vh), 0.6)
    monitored = [_feature(scene_poly, {"observed": "scene"})]
    return _Hazard(features, monitored, event_date=schedule.event_date, landslide_vv=vv_map, landslide_vh=vh_map)


def _build_glaciers(layers: sar.SceneLayers, transform: Affine, scene_poly: Any) -> _Hazard:
    from rasterio.features import shapes

    mask = events.glacier_mask(layers.z, layers.cell_m)
    features = []
    for k, (geom, value) in enumerate(shapes(mask.astype(np.uint8), mask=mask, transform=transform)):
        if value != 1:
            continue
        poly = shapely.geometry.shape(geom).simplify(layers.cell_m / 2)
        poly = shapely.set_precision(poly, 0.01)
        features.append(_feature(poly, {"glacier_id": f"glacier-{k + 1:04d}", LABEL_AREA: round(float(poly.area), 1)}))
    if not features:
        raise InputError("the synthetic scene has no glacier terrain at this size/seed: use a larger --size or another --seed")
    monitored = [_feature(scene_poly, {"observed": "scene"})]
    return _Hazard(features, monitored, glacier=mask.astype(np.float32))


def _acquisition_db(layers: sar.SceneLayers, hazard: str, hz: _Hazard, schedule: sar.Schedule, acq: sar.Acquisition, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free VV and VH (dB) of one acquisition."""
    day = int(acq.time.astype("datetime64[D]").astype(np.int64))
    rng = _rng(seed, 1000, day, acq.orbit.relative_orbit)
    orbit = acq.orbit
    terrain = layers.terrain_db[orbit.relative_orbit]
    calibration = rng.normal(0.0, 0.2)
    vv = layers.base_vv + terrain + calibration
    vh = layers.base_vh + terrain + calibration
    summer = schedule.summer[0] <= str(acq.time.astype("datetime64[D]")) <= schedule.summer[1]
    if hazard == "avalanche" and not summer:
        cover, wet = sar.snow_state(layers, acq.time, orbit, rng)
        vv = vv + cover * (sar.DRY_SNOW_VV_DB * (1.0 - wet) + sar.WET_SNOW_VV_DB * wet)
        vh = vh + cover * (sar.DRY_SNOW_VH_DB * (1.0 - wet) + sar.WET_SNOW_VH_DB * wet)
        bright = sar.bright_patches(layers, rng)
        vv = vv + bright
        vh = vh + bright * rng.uniform(0.6, 1.0)
        for event, ((rows, cols), weight) in hz.avalanches or []:
            if _midnight(event.date) >= acq.time:
                continue
            # k-th acquisition of this orbit after the event (0 = the first one)
            k = acq.index - _first_after(schedule, orbit, event.date)
            amp = event.contrast_db * event.fade**k
            if amp < 0.05:
                continue
            vv[rows, cols] += amp * weight
            vh[rows, cols] += amp * event.vh_factor * weight
    elif hazard == "landslide":
        moisture = fractal_noise(layers.x, layers.y, 4000.0, 3, rng)
        vv = vv + 0.8 * moisture + (1.0 if rng.random() < 0.3 else 0.0)
        vh = vh + 1.0 * moisture
        bright = sar.bright_patches(layers, rng)
        vv = vv + bright
        vh = vh + 0.7 * bright
        if hz.event_date is not None and acq.time > _midnight(hz.event_date):
            k = acq.index - _first_after(schedule, orbit, hz.event_date)
            recovery = 0.97**k
            vv = vv + recovery * hz.landslide_vv
            vh = vh + recovery * hz.landslide_vh
    elif hazard == "glacier":
        cover, wet = sar.snow_state(layers, acq.time, orbit, rng)
        month = int(str(acq.time)[5:7])
        snow_season = month in (11, 12, 1, 2, 3, 4, 5, 6)
        # snow-free rock/meadow in late summer; snow with its wetness otherwise
        snow = cover if snow_season else cover * (layers.z > 3200.0)
        vv = vv + snow * (sar.DRY_SNOW_VV_DB * (1.0 - wet) + sar.WET_SNOW_VV_DB * wet)
        vh = vh + snow * (sar.DRY_SNOW_VH_DB * (1.0 - wet) + sar.WET_SNOW_VH_DB * wet)
        g = hz.glacier
        firn_vv = sar.FIRN_DB[0] + terrain + sar.GLACIER_MELT_DB * wet
        firn_vh = sar.FIRN_DB[1] + terrain + sar.GLACIER_MELT_DB * wet
        vv = vv * (1.0 - g) + firn_vv * g
        vh = vh * (1.0 - g) + firn_vh * g
    return vv, vh


def _midnight(date: np.datetime64) -> np.datetime64:
    """An event dated ``date`` happened before any acquisition later than 00:00 UTC that day
    (the label rasterizer's ``reference_time < date <= activity_time``)."""
    return np.datetime64(date, "D").astype("datetime64[s]")


def _first_after(schedule: sar.Schedule, orbit: sar.Orbit, date: np.datetime64) -> int:
    """Position (within the orbit) of the first acquisition after midnight of ``date``."""
    t0 = _midnight(date)
    for acq in schedule.acquisitions:
        if acq.orbit is orbit and acq.time > t0:
            return acq.index
    return 10**9


def _write_geojson(path: Path, features: list[dict[str, Any]]) -> None:
    doc = {"type": "FeatureCollection", "features": features}
    path.write_text(json.dumps(doc, separators=(",", ":")) + "\n")


def write_demo_catalog(
    out: str | Path,
    *,
    seed: int = 0,
    size: int = 1024,
    resolution: float = 20.0,
    dates: int | None = None,
    hazard: str = "avalanche",
) -> Path:
    """Write the synthetic scene as a static STAC catalog in ``out``; return its ``catalog.json``.

    ``size`` pixels per side at ``resolution`` metres; ``dates`` acquisitions
    in all (both orbits; default 20 avalanche, 16 landslide, 24 glacier).
    """
    import pystac

    out = Path(out)
    _check_inputs(out, seed, size, resolution, dates, hazard)
    out = out.resolve()  # asset hrefs are made relative to the items' own absolute paths
    size, resolution, seed = int(size), float(resolution), int(seed)
    n_dates = int(dates) if dates is not None else sar.DEFAULT_DATES[hazard]
    schedule = sar.acquisition_schedule(hazard, n_dates)

    dem_4326, z, dem_transform, dem_bounds, x, y = _dem_rasters(seed, size, resolution)
    half = size * resolution / 2.0
    bounds = (SCENE_CENTRE_M[0] - half, SCENE_CENTRE_M[1] - half, SCENE_CENTRE_M[0] + half, SCENE_CENTRE_M[1] + half)
    transform = Affine(resolution, 0.0, bounds[0], 0.0, -resolution, bounds[3])
    scene_poly = shapely.box(*bounds)
    slope, aspect = slope_aspect(z, resolution)
    base_vv, base_vh = sar.land_cover_base(z, x, y, _rng(seed, 2))
    terrain_db, invalid = {}, {}
    centre = SCENE_CENTRE_M[0]
    for orbit in sar.ORBITS:
        look_east = math.sin(math.radians(orbit.look_azimuth_deg)) > 0
        incidence = orbit.incidence_deg + (x - centre) * sar.INCIDENCE_GRADIENT_DEG_PER_M * (1.0 if look_east else -1.0)
        cos_local, bad = radar_geometry(z, resolution, incidence, orbit.look_azimuth_deg)
        terrain_db[orbit.relative_orbit] = sar.TERRAIN_DB_PER_COS * (cos_local - np.cos(np.radians(incidence))[None, :])
        invalid[orbit.relative_orbit] = bad
    layers = sar.SceneLayers(
        x=x, y=y, cell_m=resolution, z=z, slope=slope, aspect=aspect, base_vv=base_vv, base_vh=base_vh,
        terrain_db=terrain_db, invalid=invalid, enl=sar.ENL_AT_10M * (resolution / sar.PIXEL_SPACING_10M) ** 2,
    )
    if hazard == "avalanche":
        hz = _build_avalanches(layers, schedule, transform, seed, scene_poly)
    elif hazard == "landslide":
        hz = _build_landslides(layers, schedule, transform, seed, scene_poly)
    else:
        hz = _build_glaciers(layers, transform, scene_poly)

    out.mkdir(parents=True, exist_ok=True)
    footprint_ll = _to_lonlat(shapely.segmentize(scene_poly, half / 4))
    footprint = shapely.geometry.mapping(footprint_ll)
    bbox_ll = [round(v, 7) for v in footprint_ll.bounds]
    # the DEM tile
    dem_id = _dem_item_id(dem_bounds)
    dem_dir = out / schema.COLLECTION_DEM / dem_id
    stac.write_cog(dem_dir / f"{dem_id}.tif", dem_4326, dem_transform, "EPSG:4326", None)
    dem_box = shapely.box(*dem_bounds)
    dem_item = stac.dem_item(dem_id, shapely.geometry.mapping(dem_box), [round(v, 9) for v in dem_bounds], dem_4326.shape, dem_transform, dem_dir / f"{dem_id}.tif")
    # the acquisitions
    s1_items = []
    for acq in tqdm(schedule.acquisitions, desc="demo-catalog", unit="acq", leave=False):
        vv_db, vh_db = _acquisition_db(layers, hazard, hz, schedule, acq, seed)
        rng = _rng(seed, 2000, int(acq.time.astype("datetime64[D]").astype(np.int64)), acq.orbit.relative_orbit)
        vv = sar.add_speckle_and_mask(vv_db, layers, acq.orbit, rng)
        vh = sar.add_speckle_and_mask(vh_db, layers, acq.orbit, rng)
        if rng.random() < 0.3:
            sar.zero_fill_edge(vv, vh, rng)
        item_id = stac.s1_item_id(acq)
        item_dir = out / schema.COLLECTION_S1_RTC / item_id
        paths = {schema.ASSET_VV: item_dir / f"{item_id}_vv.tif", schema.ASSET_VH: item_dir / f"{item_id}_vh.tif"}
        stac.write_cog(paths[schema.ASSET_VV], vv, transform, f"EPSG:{SCENE_EPSG}", schema.S1_NODATA)
        stac.write_cog(paths[schema.ASSET_VH], vh, transform, f"EPSG:{SCENE_EPSG}", schema.S1_NODATA)
        s1_items.append(stac.s1_item(acq, footprint, bbox_ll, SCENE_EPSG, (size, size), transform, resolution, paths))

    _write_geojson(out / LABELS_NAME, hz.features)
    _write_geojson(out / MONITORED_NAME, hz.monitored)
    catalog = pystac.Catalog(
        id="sarcube-demo",
        title=f"sarcube demo: synthetic alpine {hazard} scene",
        description=(
            f"Synthetic Sentinel-1 RTC and Copernicus-DEM-like scene ({size} x {size} px at {resolution:g} m, "
            f"seed {seed}) written by `sarcube demo-catalog`; labels in {LABELS_NAME}."
        ),
        catalog_type=pystac.CatalogType.SELF_CONTAINED,
    )
    catalog.extra_fields[CATALOG_FIELD_HAZARD] = hazard
    catalog.extra_fields[CATALOG_FIELD_SEED] = seed
    if hz.event_date is not None:
        catalog.extra_fields[CATALOG_FIELD_EVENT_DATE] = str(hz.event_date)
    s1 = stac.s1_collection(s1_items)
    dem = stac.dem_collection([dem_item])
    s1.add_items(s1_items)
    dem.add_item(dem_item)
    catalog.add_children([s1, dem])
    catalog.normalize_hrefs(str(out))
    catalog.make_all_asset_hrefs_relative()
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)

    times = [a.time for a in schedule.acquisitions]
    manifest = {
        "sarcube_demo": MANIFEST_VERSION,
        "catalog": CATALOG_NAME,
        "bbox_lonlat": list(_inner_lonlat_box(bounds)),
        "bbox": [round(v, 3) for v in bounds],
        "crs": f"EPSG:{SCENE_EPSG}",
        "resolution": resolution,
        "size": size,
        "seed": seed,
        "hazard": hazard,
        "start": str(min(times).astype("datetime64[D]")),
        "end": str(max(times).astype("datetime64[D]")),
        "event_date": str(hz.event_date) if hz.event_date is not None else None,
        "summer": list(schedule.summer),
        "labels": LABELS_NAME,
        "monitored": MONITORED_NAME,
        "acquisitions": len(times),
        "objects": len(hz.features),
    }
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    log.info("demo catalog: %d acquisitions, %d %s objects in %s", len(times), len(hz.features), hazard, out)
    return out / CATALOG_NAME


def _dem_item_id(bounds: tuple[float, float, float, float]) -> str:
    west, south = bounds[0], bounds[1]
    ns = "N" if south >= 0 else "S"
    ew = "E" if west >= 0 else "W"
    return f"Copernicus_DSM_COG_10_{ns}{int(abs(math.floor(south))):02d}_00_{ew}{int(abs(math.floor(west))):03d}_00_DEM"


def read_demo_manifest(path: str | Path) -> DemoManifest:
    """The manifest of a demo catalog: give its folder, its ``catalog.json`` or the manifest file."""
    p = Path(path)
    folder = p if p.is_dir() else p.parent
    manifest_path = folder / MANIFEST_NAME
    if not manifest_path.is_file():
        raise InputError(f"{str(path)!r} is not a demo catalog (no {MANIFEST_NAME} there): write one with `sarcube demo-catalog OUT`")
    try:
        raw = json.loads(manifest_path.read_text())
        return DemoManifest(
            catalog=folder / raw["catalog"],
            bbox_lonlat=tuple(float(v) for v in raw["bbox_lonlat"]),
            bbox=tuple(float(v) for v in raw["bbox"]),
            crs=str(raw["crs"]),
            resolution=float(raw["resolution"]),
            size=int(raw["size"]),
            seed=int(raw["seed"]),
            hazard=str(raw["hazard"]),
            start=str(raw["start"]),
            end=str(raw["end"]),
            event_date=raw["event_date"],
            summer=(str(raw["summer"][0]), str(raw["summer"][1])),
            labels=folder / raw["labels"],
            monitored=folder / raw["monitored"],
            acquisitions=int(raw["acquisitions"]),
            objects=int(raw["objects"]),
        )
    except (KeyError, TypeError, ValueError, IndexError, json.JSONDecodeError) as err:
        raise InputError(f"{str(manifest_path)!r} is not a valid demo manifest ({err}): write the catalog again with `sarcube demo-catalog`") from err


__all__ = ["HAZARDS", "DemoManifest", "read_demo_manifest", "write_demo_catalog"]
