"""The embedded demo: a synthetic alpine scene served as a local STAC catalog (the orchestration).

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
* a manifest ``sarcube-demo.json``
  (:class:`~sarcube.datacube.synthetic.manifest.DemoManifest`) with the AOI,
  dates and windows the later steps need.

The pieces live next door: the DEM in ``terrain``, orbits, dates, land
cover and speckle in ``sar``, the weather and snowpack in ``snow``, the
hazard's objects in ``events`` and ``hazards``, each date's gamma0 in
``backscatter``, the pystac objects in ``stac``; the COGs are written by
:func:`sarcube.datacube.cog.write_cog`. :func:`scene_model` gives the same
scene without writing it (tests and measurements read it).

Grounded in published numbers (each constant says its source): speckle of a
20 m RTC product (ENL 6 with neighbour correlation 0.3, not white ENL 17.6;
the items' ``sar:looks_equivalent_number`` says 6), debris at ~3x Bianchi's
avalanches per km2 and pair (0.019 % of the pixels in their all-terrain
products; ~0.03-0.05 % here, all mountains), a skewed debris contrast, dry
debris visible for several revisits, wet-snow, refreeze and wind-drift
confounders inside the runout zones, small avalanches left unlabelled, and
glaciers hidden under dry winter snow.

Deterministic: the same arguments write the same bytes. Gamma0 is rounded
to 0.01 dB before compression (speckle alone is ~1.7 dB), which halves the
size of the COGs; the default scene (1024 x 1024 at 20 m, 20 dates) takes
about 25 s of CPU (two winters, 36 dates: 45 s).
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
from tqdm.auto import tqdm

from sarcube.datacube import schema
from sarcube.datacube.cog import write_cog
from sarcube.datacube.synthetic import backscatter, hazards, sar, snow, stac
from sarcube.datacube.synthetic.manifest import (
    CATALOG_NAME,
    LABELS_NAME,
    MONITORED_NAME,
    DemoManifest,
    write_demo_manifest,
)
from sarcube.datacube.synthetic.terrain import alpine_dem, radar_geometry, slope_aspect
from sarcube.errors import InputError

log = logging.getLogger(__name__)

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
#: extra fields of catalog.json (STAC allows them on any object)
CATALOG_FIELD_HAZARD = "sarcube:hazard"
CATALOG_FIELD_EVENT_DATE = "sarcube:event_date"
CATALOG_FIELD_SEED = "sarcube:seed"


def _check_inputs(
    out: Path, seed: int, size: int, resolution: float, dates: int | None, hazard: str, winters: int = 1
) -> None:
    if hazard not in hazards.HAZARDS:
        raise InputError(f"--hazard {hazard!r} is unknown: use one of {', '.join(hazards.HAZARDS)}")
    n_winters = len(sar.LAST_WINTER_DAYS)
    if not isinstance(winters, int | np.integer) or not 1 <= winters <= n_winters or (winters > 1 and hazard !=
                                                                                       "avalanche"):
        raise InputError(f"--winters {winters!r}: an avalanche scene holds 1 to {n_winters} winters, others 1")
    if not isinstance(size, int | np.integer) or not MIN_SIZE <= size <= MAX_SIZE:
        raise InputError(f"--size {size!r} is out of range: use {MIN_SIZE} to {MAX_SIZE} pixels (e.g. --size 256)")
    if not (
        isinstance(resolution, int | float)
        and math.isfinite(resolution)
        and MIN_RESOLUTION_M <= resolution <= MAX_RESOLUTION_M
    ):
        raise InputError(
            f"--resolution {resolution!r} is out of range: use {MIN_RESOLUTION_M:g} to {MAX_RESOLUTION_M:g} m (e.g. 20)"
        )
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


def _dem_rasters(
    seed: int, size: int, resolution: float
) -> tuple[np.ndarray, np.ndarray, Affine, tuple[float, float, float, float], np.ndarray, np.ndarray]:
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
        padded.astype(np.float32),
        dem_4326,
        src_transform=padded_transform,
        src_crs=crs_scene,
        dst_transform=dem_transform,
        dst_crs="EPSG:4326",
        resampling=Resampling.bilinear,
        src_nodata=None,
        dst_nodata=np.nan,
    )
    dem_scene = np.full((size, size), np.nan, dtype=np.float32)
    rasterio.warp.reproject(
        dem_4326,
        dem_scene,
        src_transform=dem_transform,
        src_crs="EPSG:4326",
        dst_transform=scene_transform,
        dst_crs=crs_scene,
        resampling=Resampling.bilinear,
        src_nodata=np.nan,
        dst_nodata=np.nan,
    )
    if not np.isfinite(dem_scene).all():  # pragma: no cover - the margin covers the scene
        raise RuntimeError("synthetic DEM tile does not cover the scene")
    return dem_4326, dem_scene.astype(np.float64), dem_transform, (w, s, e, n), x, y


def _write_geojson(path: Path, features: list[hazards.MapFeature]) -> None:
    """A FeatureCollection in lon/lat of (geometry in the scene's CRS, properties) pairs."""
    doc = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": props, "geometry": shapely.geometry.mapping(_to_lonlat(geom))}
            for geom, props in features
        ],
    }
    path.write_text(json.dumps(doc, separators=(",", ":")) + "\n")


@dataclass
class DemTile:
    """The DEM tile as written (EPSG:4326) and the scene's bounds in its CRS."""

    dem_4326: np.ndarray
    transform_4326: Affine
    bounds_lonlat: tuple[float, float, float, float]
    #: scene bounds (left, bottom, right, top), m, and the scene grid's transform
    bounds: tuple[float, float, float, float]
    transform: Affine


def scene_model(
    *, seed: int = 0, size: int = 1024, resolution: float = 20.0, dates: int | None = None, hazard: str = "avalanche",
    winters: int = 1,
) -> tuple[backscatter.SceneModel, DemTile]:
    """The scene :func:`write_demo_catalog` writes, without writing it: its model and DEM tile
    (arguments as there, already checked)."""
    size, resolution, seed = int(size), float(resolution), int(seed)
    n_dates = int(dates) if dates is not None else sar.default_dates(hazard, winters)
    schedule = sar.acquisition_schedule(hazard, n_dates, winters)
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
        terrain_db=terrain_db, invalid=invalid, enl=sar.speckle_enl(resolution),
    )
    if hazard == "avalanche":
        hz = hazards.avalanches(layers, schedule, transform, _rng(seed, 3), scene_poly)
    elif hazard == "landslide":
        hz = hazards.landslides(layers, schedule, transform, _rng(seed, 4), scene_poly)
    else:
        hz = hazards.glaciers(layers, transform, scene_poly)
    pack = None
    if hazard in ("avalanche", "glacier"):
        times = [a.time for a in schedule.acquisitions]
        weather = snow.draw_weather(min(times) - np.timedelta64(30, "D"), max(times), _rng(seed, 5))
        pack = snow.snowpack(layers, weather, resolution, _rng(seed, 6))
    model = backscatter.SceneModel(seed, hazard, layers, schedule, hz, pack)
    return model, DemTile(dem_4326, dem_transform, dem_bounds, bounds, transform)


def write_demo_catalog(
    out: str | Path,
    *,
    seed: int = 0,
    size: int = 1024,
    resolution: float = 20.0,
    dates: int | None = None,
    hazard: str = "avalanche",
    winters: int = 1,
) -> Path:
    """Write the synthetic scene as a static STAC catalog in ``out``; return its ``catalog.json``.

    ``size`` pixels per side at ``resolution`` metres; ``dates`` acquisitions
    in all (both orbits; default 20 avalanche, 16 landslide, 24 glacier). ``winters``: an avalanche scene's
    winters (1, or 2: spring 2020 before the 2021 one, 36 dates by default).
    """
    import pystac

    out = Path(out)
    _check_inputs(out, seed, size, resolution, dates, hazard, winters)
    out = out.resolve()  # asset hrefs are made relative to the items' own absolute paths
    size, resolution, seed = int(size), float(resolution), int(seed)
    model, tile = scene_model(seed=seed, size=size, resolution=resolution, dates=dates, hazard=hazard,
                              winters=int(winters))
    schedule, hz, layers = model.schedule, model.hazard, model.layers
    dem_4326, dem_transform, dem_bounds = tile.dem_4326, tile.transform_4326, tile.bounds_lonlat
    bounds, transform = tile.bounds, tile.transform
    half = size * resolution / 2.0
    scene_poly = shapely.box(*bounds)

    out.mkdir(parents=True, exist_ok=True)
    footprint_ll = _to_lonlat(shapely.segmentize(scene_poly, half / 4))
    footprint = shapely.geometry.mapping(footprint_ll)
    bbox_ll = [round(v, 7) for v in footprint_ll.bounds]
    # the DEM tile
    dem_id = _dem_item_id(dem_bounds)
    dem_dir = out / schema.COLLECTION_DEM / dem_id
    write_cog(dem_dir / f"{dem_id}.tif", dem_4326, dem_transform, "EPSG:4326", None)
    dem_box = shapely.box(*dem_bounds)
    dem_item = stac.dem_item(
        dem_id,
        shapely.geometry.mapping(dem_box),
        [round(v, 9) for v in dem_bounds],
        dem_4326.shape,
        dem_transform,
        dem_dir / f"{dem_id}.tif",
    )
    # the acquisitions
    s1_items = []
    for acq in tqdm(schedule.acquisitions, desc="demo-catalog", unit="acq", leave=False):
        vv_db, vh_db = backscatter.acquisition_db(model, acq)
        rng = backscatter.acquisition_rng(seed, acq, 2000)
        vv = sar.add_speckle_and_mask(vv_db, layers, acq.orbit, rng)
        vh = sar.add_speckle_and_mask(vh_db, layers, acq.orbit, rng)
        if rng.random() < 0.3:
            sar.zero_fill_edge(vv, vh, rng)
        item_id = stac.s1_item_id(acq)
        item_dir = out / schema.COLLECTION_S1_RTC / item_id
        paths = {schema.ASSET_VV: item_dir / f"{item_id}_vv.tif", schema.ASSET_VH: item_dir / f"{item_id}_vh.tif"}
        write_cog(paths[schema.ASSET_VV], vv, transform, f"EPSG:{SCENE_EPSG}", schema.S1_NODATA)
        write_cog(paths[schema.ASSET_VH], vh, transform, f"EPSG:{SCENE_EPSG}", schema.S1_NODATA)
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
    write_demo_manifest(
        DemoManifest(
            catalog=out / CATALOG_NAME,
            bbox_lonlat=_inner_lonlat_box(bounds),
            bbox=tuple(round(v, 3) for v in bounds),
            crs=f"EPSG:{SCENE_EPSG}",
            resolution=resolution,
            size=size,
            seed=seed,
            hazard=hazard,
            start=str(min(times).astype("datetime64[D]")),
            end=str(max(times).astype("datetime64[D]")),
            event_date=str(hz.event_date) if hz.event_date is not None else None,
            summer=schedule.summer,
            labels=out / LABELS_NAME,
            monitored=out / MONITORED_NAME,
            acquisitions=len(times),
            objects=len(hz.features),
        )
    )
    log.info("demo catalog: %d acquisitions, %d %s objects in %s", len(times), len(hz.features), hazard, out)
    return out / CATALOG_NAME


def _dem_item_id(bounds: tuple[float, float, float, float]) -> str:
    west, south = bounds[0], bounds[1]
    ns = "N" if south >= 0 else "S"
    ew = "E" if west >= 0 else "W"
    return f"Copernicus_DSM_COG_10_{ns}{int(abs(math.floor(south))):02d}_00_{ew}{int(abs(math.floor(west))):03d}_00_DEM"

