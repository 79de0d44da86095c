"""The pystac objects of the demo catalog, shaped like Planetary Computer's
``sentinel-1-rtc`` and ``cop-dem-glo-30`` collections (the COGs they point
to are written by :func:`sarcube.datacube.cog.write_cog`).

Item properties, asset keys, roles, media types and extensions follow PC's
items (sar v1.0.0, sat v1.0.0, projection, raster on assets, ``s1:*``
fields); hrefs are local and relative. Nothing here reads a clock, so the
same inputs write the same bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pystac
from affine import Affine
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension, Sampling
from pystac.extensions.sar import FrequencyBand, ObservationDirection, Polarization, SarExtension
from pystac.extensions.sat import OrbitState, SatExtension

from sarcube.datacube import schema
from sarcube.datacube.cog import COG_MEDIA_TYPE
from sarcube.datacube.synthetic.sar import Acquisition, speckle_enl

#: STAC common-metadata property of the satellite (spelled like the cube's coordinate)
STAC_PLATFORM = schema.PLATFORM
DEM_ITEM_DATETIME = datetime(2021, 4, 22, tzinfo=UTC)
S1_TITLES = {
    schema.ASSET_VV: ("VV: vertical transmit, vertical receive", "vertical", "vertical"),
    schema.ASSET_VH: ("VH: vertical transmit, horizontal receive", "vertical", "horizontal"),
}
#: COSPAR designators of the two platforms
INTERNATIONAL_DESIGNATOR = {"SENTINEL-1A": "2014-016A", "SENTINEL-1B": "2016-025A"}
#: absolute orbit of each platform's relative orbit 1 at a reference epoch (175 orbits / 12 days)
_ORBIT_EPOCH = np.datetime64("2020-01-01T00:00:00")
_ORBIT_OFFSET = {"SENTINEL-1A": 30_448, "SENTINEL-1B": 19_321}


def absolute_orbit(acq: Acquisition) -> int:
    """A plausible absolute orbit number consistent with the relative orbit."""
    days = float((acq.time - _ORBIT_EPOCH) / np.timedelta64(1, "D"))
    approx = _ORBIT_OFFSET[acq.platform] + int(days * 175 / 12)
    # relative = (absolute - offset) mod 175 + 1 for the platform's numbering
    base = approx - ((approx - _ORBIT_OFFSET[acq.platform]) % 175)
    return base + acq.orbit.relative_orbit - 1


def s1_item_id(acq: Acquisition) -> str:
    """PC-style id: S1A_IW_GRDH_1SDV_<start>_<stop>_<absolute orbit>_<datatake>_rtc."""
    start = acq.time.astype(datetime).replace(tzinfo=UTC)
    stop = (acq.time + np.timedelta64(25, "s")).astype(datetime)
    orbit = absolute_orbit(acq)
    datatake = _datatake(acq)
    sat = "S1A" if acq.platform.endswith("A") else "S1B"
    return f"{sat}_IW_GRDH_1SDV_{start:%Y%m%dT%H%M%S}_{stop:%Y%m%dT%H%M%S}_{orbit:06d}_{datatake:06X}_rtc"


def _datatake(acq: Acquisition) -> int:
    digest = hashlib.sha256(f"{acq.platform}{absolute_orbit(acq)}".encode()).digest()
    return int.from_bytes(digest[:3], "big")


def _aware(t: np.datetime64) -> datetime:
    return t.astype("datetime64[us]").astype(datetime).replace(tzinfo=UTC)


def s1_item(
    acq: Acquisition,
    footprint: dict[str, Any],
    bbox_lonlat: Sequence[float],
    epsg: int,
    shape: tuple[int, int],
    transform: Affine,
    resolution: float,
    asset_paths: dict[str, Path],
) -> pystac.Item:
    """A ``sentinel-1-rtc`` item with PC's properties and COG assets ``vv``/``vh``."""
    start = _aware(acq.time)
    end = _aware(acq.time + np.timedelta64(25, "s"))
    mid = _aware(acq.time + np.timedelta64(12500, "ms"))
    item = pystac.Item(
        id=s1_item_id(acq),
        geometry=footprint,
        bbox=list(bbox_lonlat),
        datetime=mid,
        properties={},
        start_datetime=start,
        end_datetime=end,
    )
    item.common_metadata.platform = acq.platform
    item.common_metadata.constellation = "Sentinel-1"
    # the ENL the speckle is drawn with (sar.correlated_speckle), not GRDH's 4.4 at 10 m
    enl = speckle_enl(resolution)
    SarExtension.ext(item, add_if_missing=True).apply(
        instrument_mode="IW",
        frequency_band=FrequencyBand.C,
        polarizations=[Polarization.VV, Polarization.VH],
        product_type="GRD",
        center_frequency=5.405,
        resolution_range=20.0,
        resolution_azimuth=22.0,
        pixel_spacing_range=float(resolution),
        pixel_spacing_azimuth=float(resolution),
        looks_range=5,
        looks_azimuth=1,
        looks_equivalent_number=round(enl, 2),
        observation_direction=ObservationDirection.RIGHT,
    )
    SatExtension.ext(item, add_if_missing=True).apply(
        orbit_state=OrbitState(acq.orbit.orbit_state),
        relative_orbit=acq.orbit.relative_orbit,
        absolute_orbit=absolute_orbit(acq),
        platform_international_designator=INTERNATIONAL_DESIGNATOR[acq.platform],
    )
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    height, width = shape
    left, top = transform.c, transform.f
    proj.apply(
        code=f"EPSG:{epsg}",
        shape=[height, width],
        transform=list(transform)[:6],
        bbox=[left, top + transform.e * height, left + transform.a * width, top],
    )
    item.properties.update(
        {
            "s1:instrument_configuration_ID": "6",
            "s1:datatake_id": str(_datatake(acq)),
            "s1:product_timeliness": "Fast-24h",
            "s1:processing_level": "1",
            "s1:resolution": "high",
            "s1:orbit_source": "RESORB",
            "s1:slice_number": "1",
            "s1:total_slices": "1",
            "s1:shape": [height, width],
        }
    )
    for key in (schema.ASSET_VV, schema.ASSET_VH):
        title, tx, rx = S1_TITLES[key]
        asset = pystac.Asset(
            href=str(asset_paths[key]),
            media_type=COG_MEDIA_TYPE,
            roles=["data"],
            title=title,
            description=(
                f"Terrain-corrected gamma naught values of signal transmitted with {tx} polarization "
                f"and received with {rx} polarization with radiometric terrain correction applied (synthetic)."
            ),
        )
        item.add_asset(key, asset)
        RasterExtension.ext(asset, add_if_missing=True).bands = [
            RasterBand.create(nodata=schema.S1_NODATA, data_type=DataType.FLOAT32, spatial_resolution=float(resolution))
        ]
    return item


def dem_item(
    item_id: str,
    footprint: dict[str, Any],
    bbox_lonlat: Sequence[float],
    shape: tuple[int, int],
    transform: Affine,
    asset_path: Path,
) -> pystac.Item:
    """A ``cop-dem-glo-30`` item in EPSG:4326 with the float32 ``data`` asset (metres)."""
    item = pystac.Item(
        id=item_id, geometry=footprint, bbox=list(bbox_lonlat), datetime=DEM_ITEM_DATETIME, properties={"gsd": 30}
    )
    item.common_metadata.platform = "tandem-x"
    height, width = shape
    ProjectionExtension.ext(item, add_if_missing=True).apply(
        code="EPSG:4326", shape=[height, width], transform=list(transform)[:6]
    )
    asset = pystac.Asset(href=str(asset_path), media_type=COG_MEDIA_TYPE, roles=["data"], title="Data")
    item.add_asset(schema.ASSET_DEM, asset)
    RasterExtension.ext(asset, add_if_missing=True).bands = [
        RasterBand.create(sampling=Sampling.POINT, data_type=DataType.FLOAT32, spatial_resolution=30.0, unit="meter")
    ]
    return item


def _extent(items: Sequence[pystac.Item]) -> pystac.Extent:
    bboxes = np.array([i.bbox for i in items])
    times = sorted(i.datetime for i in items if i.datetime is not None)
    return pystac.Extent(
        pystac.SpatialExtent(
            [
                [
                    float(bboxes[:, 0].min()),
                    float(bboxes[:, 1].min()),
                    float(bboxes[:, 2].max()),
                    float(bboxes[:, 3].max()),
                ]
            ]
        ),
        pystac.TemporalExtent([[times[0], times[-1]]]),
    )


def s1_collection(items: Sequence[pystac.Item]) -> pystac.Collection:
    """The ``sentinel-1-rtc`` collection around ``items`` (item_assets, summaries as on PC)."""
    col = pystac.Collection(
        id=schema.COLLECTION_S1_RTC,
        title="Sentinel 1 Radiometrically Terrain Corrected (RTC) - synthetic",
        description=(
            "Synthetic Sentinel-1 IW dual-pol RTC gamma0 (linear power, float32) of a procedural alpine "
            "scene, written by `sarcube demo-catalog`; shaped like Planetary Computer's sentinel-1-rtc."
        ),
        extent=_extent(items),
        license="CC-BY-4.0",
        keywords=["ESA", "Copernicus", "Sentinel", "C-Band", "SAR", "RTC", "synthetic"],
        providers=[pystac.Provider("sarcube", roles=[pystac.ProviderRole.PRODUCER, pystac.ProviderRole.PROCESSOR])],
    )
    col.item_assets = {
        key: pystac.ItemAssetDefinition.create(
            title=S1_TITLES[key][0],
            description=None,
            media_type=COG_MEDIA_TYPE,
            roles=["data"],
            extra_fields={"raster:bands": [{"nodata": schema.S1_NODATA, "data_type": "float32"}]},
        )
        for key in (schema.ASSET_VV, schema.ASSET_VH)
    }
    col.summaries.add(STAC_PLATFORM, sorted({i.common_metadata.platform for i in items}))
    col.summaries.add("constellation", ["Sentinel-1"])
    col.summaries.add("sat:orbit_state", sorted({i.properties["sat:orbit_state"] for i in items}))
    col.summaries.add("sat:relative_orbit", sorted({i.properties["sat:relative_orbit"] for i in items}))
    col.summaries.add("sar:instrument_mode", ["IW"])
    col.summaries.add("sar:frequency_band", ["C"])
    col.summaries.add("sar:polarizations", [["VV", "VH"]])
    col.summaries.add("sar:product_type", ["GRD"])
    for item in items:
        item.collection_id = col.id
    return col


def dem_collection(items: Sequence[pystac.Item]) -> pystac.Collection:
    """The ``cop-dem-glo-30`` collection around ``items``."""
    col = pystac.Collection(
        id=schema.COLLECTION_DEM,
        title="Copernicus DEM GLO-30 - synthetic",
        description="Procedural alpine DEM (float32 metres, EPSG:4326, 1 arcsecond) written by `sarcube demo-catalog`; "
                    "shaped like Planetary Computer's cop-dem-glo-30.",
        extent=_extent(items),
        license="proprietary",
        keywords=["Copernicus", "DEM", "DSM", "Elevation", "synthetic"],
        providers=[pystac.Provider("sarcube", roles=[pystac.ProviderRole.PRODUCER])],
    )
    col.item_assets = {
        schema.ASSET_DEM: pystac.ItemAssetDefinition.create(
            title="Data", description=None, media_type=COG_MEDIA_TYPE, roles=["data"]
        )
    }
    col.summaries.add("gsd", [30])
    col.summaries.add(STAC_PLATFORM, ["tandem-x"])
    return col
