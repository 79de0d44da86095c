"""The archive in STAC: one collection and one item pointing at the zip and the datasheet.

The item carries one helper per STAC extension, each reading the cube:
datacube (dimensions, variables), projection (native grid), sar and sat (the
acquisitions), file (checksums and sizes of the assets), the ``sci:`` citation
fields, and ``sarcube:`` lineage (source items, catalog, collections, contract).
:func:`write_stac` saves them self-contained with relative hrefs.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from sarcube.datacube import schema
from sarcube.datacube.archive.checksums import multihash
from sarcube.datacube.archive.citation import Citation
from sarcube.datacube.archive.layout import ARCHIVE_SUFFIX, COLLECTION_JSON, STAC_DIR
from sarcube.datacube.grid import cell_size
from sarcube.datacube.redaction import sanitize, sanitize_text
from sarcube.errors import CubeSchemaError

# Sentinel-1 C-band SAR, interferometric wide swath (what the sar extension describes)
S1_CONSTELLATION = "sentinel-1"
S1_INSTRUMENT = "c-sar"
S1_INSTRUMENT_MODE = "IW"
S1_CENTER_FREQUENCY_GHZ = 5.405
S1_PRODUCT_TYPE = "RTC"
ASSET_ARCHIVE = "zarr-zip"
ASSET_DATASHEET = "datasheet"
#: the archive is a Zarr v3 store in a ZIP file: xpystac and other STAC tools open ``application/vnd+zarr``
#: assets with xarray (engine zarr); ``xarray:open_kwargs`` carries the rest. A plain path to the zip
#: opens with fsspec's zip chaining (``xr.open_dataset("zip::" + href, **open_kwargs)``).
MEDIA_TYPE_ZARR = "application/vnd+zarr"
MEDIA_TYPE_MARKDOWN = "text/markdown"
#: the xarray-assets extension (``xarray:open_kwargs``)
XARRAY_ASSETS_SCHEMA = "https://stac-extensions.github.io/xarray-assets/v1.0.0/schema.json"
#: how xarray opens the archive (xarray-assets ``xarray:open_kwargs``)
XARRAY_OPEN_KWARGS = {"engine": "zarr", "consolidated": True, "zarr_format": 3, "decode_coords": "all"}


# --- what the cube holds ------------------------------------------------------------

def _iso(value: Any) -> str:
    return str(np.datetime_as_string(np.datetime64(value, "s"), unit="s")) + "Z"


def _crs_code(ds: xr.Dataset) -> tuple[int | None, str]:
    crs = ds.rio.crs
    if crs is None:
        raise CubeSchemaError(f"cube has no CRS in {schema.SPATIAL_REF!r}: write it with schema.with_crs()")
    return crs.to_epsg(), crs.to_wkt()


def _geographic_bounds(ds: xr.Dataset, bounds: Sequence[float]) -> list[float]:
    from pyproj import Transformer

    transformer = Transformer.from_crs(ds.rio.crs, "EPSG:4326", always_xy=True)
    west, south, east, north = transformer.transform_bounds(*bounds, densify_pts=21)
    return [float(west), float(south), float(east), float(north)]


def source_items(ds: xr.Dataset) -> list[dict[str, Any]]:
    """The STAC items the cube was built from (ids, collections, hrefs without signing)."""
    raw = schema.decode_json_attr(ds, schema.ATTR_STAC_ITEMS, default=[]) or []
    return [sanitize(entry if isinstance(entry, Mapping) else {"id": str(entry)}) for entry in raw]


def _unique(ds: xr.Dataset, name: str) -> list[Any]:
    if name not in ds.coords:
        return []
    values = [v.item() if hasattr(v, "item") else v for v in np.asarray(ds[name].values).ravel()]
    return sorted(set(values), key=str)


def _time_extent(ds: xr.Dataset) -> tuple[dt.datetime, dt.datetime]:
    def to_dt(value: Any) -> dt.datetime:
        return dt.datetime.fromisoformat(_iso(value).replace("Z", "+00:00"))

    if schema.TIME in ds.dims and ds.sizes[schema.TIME]:
        t = ds[schema.TIME].values
        return to_dt(t.min()), to_dt(t.max())
    times = [ds[c].values for c in (schema.REFERENCE_TIME, schema.ACTIVITY_TIME) if c in ds.coords]
    if times:
        allt = np.concatenate([np.asarray(t).ravel() for t in times])
        return to_dt(allt.min()), to_dt(allt.max())
    try:
        return to_dt(ds.attrs[schema.ATTR_START]), to_dt(ds.attrs[schema.ATTR_END])
    except (KeyError, ValueError) as err:
        raise CubeSchemaError(
            f"cube has no time coordinate and no {schema.ATTR_START!r}/{schema.ATTR_END!r} attrs: "
            "cannot date the archive"
        ) from err


def _polarizations(ds: xr.Dataset) -> list[Any]:
    from pystac.extensions.sar import Polarization

    return [Polarization(str(v).upper()) for v in schema.BACKSCATTER if v in ds.data_vars]


# --- the item, one extension at a time --------------------------------------------------

def _add_common_metadata(item: Any, ds: xr.Dataset, citation: Citation) -> None:
    """Constellation, instrument, licence, platform, creation time; description, keywords, version."""
    common = item.common_metadata
    common.constellation = S1_CONSTELLATION
    common.instruments = [S1_INSTRUMENT]
    common.license = citation.license
    platforms = _unique(ds, schema.PLATFORM)
    if len(platforms) == 1:
        common.platform = str(platforms[0]).lower()
    created = ds.attrs.get(schema.ATTR_CREATED)
    if created:
        try:
            common.created = dt.datetime.fromisoformat(str(created).replace("Z", "+00:00"))
        except ValueError:
            pass
    if citation.description:
        item.properties["description"] = citation.description
    if citation.keywords:
        item.properties["keywords"] = list(citation.keywords)
    if citation.version:
        item.properties["version"] = citation.version


def _add_scientific(item: Any, citation: Citation) -> None:
    """``sci:doi`` and ``sci:citation`` once the DOI is known."""
    if citation.doi:
        item.properties["sci:doi"] = citation.doi
        item.properties["sci:citation"] = citation.text()


def _add_datacube(item: Any, ds: xr.Dataset, reference_system: Any) -> None:
    """Dimensions (signed x/y steps, times, pairs) and variables (units, nodata; per-time coords as auxiliary)."""
    from pystac.extensions.datacube import (
        AdditionalDimension,
        DatacubeExtension,
        HorizontalSpatialDimension,
        TemporalDimension,
        Variable,
    )

    # the extension wants signed steps (y < 0 north-up), null along a dimension of one pixel
    one_pixel = min(ds.sizes[schema.X], ds.sizes[schema.Y]) < 2
    steps = (None, None) if one_pixel else cell_size(ds)
    dims: dict[str, Any] = {}
    for dim, step in zip((schema.X, schema.Y), steps, strict=True):
        values = ds[dim].values
        d = HorizontalSpatialDimension({"type": "spatial", "axis": dim})
        d.extent = [float(values.min()), float(values.max())]
        d.step = step
        d.reference_system = reference_system
        d.description = ds[dim].attrs.get("long_name", f"{dim} coordinate of projection") + " (pixel centres, m)"
        dims[dim] = d
    if schema.TIME in ds.dims:
        d = TemporalDimension({"type": "temporal"})
        d.values = [_iso(t) for t in ds[schema.TIME].values]
        d.extent = [d.values[0], d.values[-1]] if d.values else [None, None]
        d.description = "acquisition start times (UTC)"
        dims[schema.TIME] = d
    if schema.PAIR in ds.dims:
        d = AdditionalDimension({"type": "index"})
        d.values = [int(v) for v in ds[schema.PAIR].values]
        d.extent = [0, int(ds.sizes[schema.PAIR]) - 1]
        d.description = (
            "reference/activity acquisition pairs; times in the reference_time and activity_time coordinates"
        )
        dims[schema.PAIR] = d
    if schema.ORBIT in ds.dims:
        key = schema.orbit_key(ds)
        d = AdditionalDimension({"type": key})
        d.values = [v if isinstance(v, str) else int(v) for v in ds[schema.ORBIT].values.tolist()]
        d.description = f"orbits of the per-orbit layers (event means), by {key}"
        dims[schema.ORBIT] = d
    variables: dict[str, Any] = {}
    for var_name, var in ds.data_vars.items():
        if var_name == schema.SPATIAL_REF:
            continue
        spec = schema.spec_for(str(var_name), ds)
        v = Variable({"type": "data", "dimensions": [str(x) for x in var.dims]})
        v.description = spec.description if spec else str(var.attrs.get("long_name", var_name))
        units = var.attrs.get("units", spec.units if spec else None)
        if units:
            v.unit = str(units)
        if var.dtype.kind == "f":
            v.properties["nodata"] = "nan"
        variables[str(var_name)] = v
    for coord_name in (*schema.TIME_COORDS, *schema.PAIR_COORDS):
        if coord_name in ds.coords:
            coord = ds[coord_name]
            v = Variable({"type": "auxiliary", "dimensions": [str(x) for x in coord.dims]})
            v.description = str(coord.attrs.get("long_name", coord_name))
            variables[coord_name] = v
    DatacubeExtension.ext(item, add_if_missing=True).apply(dimensions=dims, variables=variables)


def _add_projection(item: Any, ds: xr.Dataset, epsg: int | None, wkt: str, bounds: Sequence[float]) -> None:
    """The native grid: CRS code (or WKT2), bounds, shape and affine transform."""
    from pystac.extensions.projection import ProjectionExtension

    t = ds.rio.transform()
    ProjectionExtension.ext(item, add_if_missing=True).apply(
        code=f"EPSG:{epsg}" if epsg is not None else None,
        wkt2=None if epsg is not None else wkt,
        bbox=list(bounds),
        shape=[int(ds.sizes[schema.Y]), int(ds.sizes[schema.X])],
        transform=[t.a, t.b, t.c, t.d, t.e, t.f],
    )


def _add_sar(item: Any, ds: xr.Dataset) -> None:
    """Sentinel-1 IW, C band, the cube's polarizations (when it holds backscatter)."""
    from pystac.extensions.sar import FrequencyBand, SarExtension

    polarizations = _polarizations(ds)
    if polarizations:
        SarExtension.ext(item, add_if_missing=True).apply(
            instrument_mode=S1_INSTRUMENT_MODE,
            frequency_band=FrequencyBand.C,
            polarizations=polarizations,
            product_type=S1_PRODUCT_TYPE,
            center_frequency=S1_CENTER_FREQUENCY_GHZ,
        )


def _add_sat(item: Any, ds: xr.Dataset) -> None:
    """``sat:orbit_state`` / ``sat:relative_orbit`` where the cube has one of each.

    The extension holds one value per item; a cube over several orbits also
    lists them all under ``sarcube:``, and when it has neither single value
    the item does not declare the extension (which requires a field).
    """
    from pystac.extensions.sat import OrbitState, SatExtension

    orbit_states = [str(v) for v in _unique(ds, schema.ORBIT_STATE)]
    orbits = [int(v) for v in _unique(ds, schema.RELATIVE_ORBIT)]
    if len(orbit_states) == 1 or len(orbits) == 1:
        SatExtension.ext(item, add_if_missing=True).apply(
            orbit_state=OrbitState(orbit_states[0]) if len(orbit_states) == 1 else None,
            relative_orbit=orbits[0] if len(orbits) == 1 else None,
        )
    if len(orbit_states) > 1 or len(orbits) > 1:
        item.properties["sarcube:orbit_states"] = orbit_states
        item.properties["sarcube:relative_orbits"] = orbits


def _add_lineage(item: Any, ds: xr.Dataset) -> None:
    """The source STAC items, catalog and collections, and the cube contract version."""
    collections = schema.decode_json_attr(ds, schema.ATTR_COLLECTIONS, default=[]) or []
    item.properties["sarcube:source_items"] = [str(s.get("id")) for s in source_items(ds) if s.get("id")]
    item.properties["sarcube:catalog"] = sanitize_text(str(ds.attrs.get(schema.ATTR_CATALOG, "")))
    item.properties["sarcube:collections"] = [str(c) for c in collections]
    item.properties["sarcube:contract"] = str(ds.attrs.get(schema.ATTR_CONTRACT, schema.CONTRACT_VERSION))


def _add_assets(item: Any, name: str, files: Mapping[str, tuple[str, int]], folder: Path) -> None:
    """The archive and the datasheet as assets, with the file extension's checksum and size."""
    import pystac
    from pystac.extensions.file import FileExtension

    for rel, (md5, size) in files.items():
        is_zip = rel.endswith(ARCHIVE_SUFFIX)
        asset = pystac.Asset(
            href=str((folder / rel).resolve()),
            title=f"{name} cube (zipped Zarr v3 store)" if is_zip else "datasheet",
            media_type=MEDIA_TYPE_ZARR if is_zip else MEDIA_TYPE_MARKDOWN,
            roles=["data"] if is_zip else ["metadata"],
        )
        if is_zip:
            asset.extra_fields["xarray:open_kwargs"] = dict(XARRAY_OPEN_KWARGS)
            if XARRAY_ASSETS_SCHEMA not in item.stac_extensions:
                item.stac_extensions.append(XARRAY_ASSETS_SCHEMA)
        item.add_asset(ASSET_ARCHIVE if is_zip else ASSET_DATASHEET, asset)
        FileExtension.ext(asset, add_if_missing=True).apply(checksum=multihash(md5), size=int(size))


def _summaries(ds: xr.Dataset) -> dict[str, Any]:
    """Collection summaries: constellation, instrument, platforms, orbits, polarizations."""
    platforms = _unique(ds, schema.PLATFORM)
    orbit_states = [str(v) for v in _unique(ds, schema.ORBIT_STATE)]
    orbits = [int(v) for v in _unique(ds, schema.RELATIVE_ORBIT)]
    polarizations = _polarizations(ds)
    summaries: dict[str, Any] = {"constellation": [S1_CONSTELLATION], "instruments": [S1_INSTRUMENT]}
    if platforms:
        summaries[schema.PLATFORM] = sorted(str(p).lower() for p in platforms)
    if orbit_states:
        summaries["sat:orbit_state"] = orbit_states
    if orbits:
        summaries["sat:relative_orbit"] = orbits
    if polarizations:
        summaries["sar:polarizations"] = [p.value for p in polarizations]
    return summaries


# --- the collection ---------------------------------------------------------------------

def _declare_summary_extensions(collection: Any) -> None:
    """Declare the extensions whose fields the collection's summaries use (sat:, sar:)."""
    from pystac.extensions.sar import SarExtension
    from pystac.extensions.sat import SatExtension

    used = {key.split(":")[0] for key in collection.summaries.to_dict() if ":" in key}
    for prefix, ext in (("sat", SatExtension), ("sar", SarExtension)):
        if prefix in used and ext.get_schema_uri() not in collection.stac_extensions:
            collection.stac_extensions.append(ext.get_schema_uri())


def stac_collection(
    ds: xr.Dataset, *, name: str, citation: Citation, files: Mapping[str, tuple[str, int]], folder: Path
) -> Any:
    """A pystac Collection with one Item describing the archive.

    ``files`` maps the archive's and the datasheet's paths (relative to
    ``folder``) to (md5, size); they become assets with file:checksum/size.
    """
    import pystac

    bounds = schema.summarize(ds).bounds
    epsg, wkt = _crs_code(ds)
    bbox = _geographic_bounds(ds, bounds)
    west, south, east, north = bbox
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    start, end = _time_extent(ds)
    item = pystac.Item(
        id=name,
        geometry={"type": "Polygon", "coordinates": [ring]},
        bbox=bbox,
        datetime=None,
        properties={"title": citation.title},
        start_datetime=start,
        end_datetime=end,
    )
    _add_common_metadata(item, ds, citation)
    _add_scientific(item, citation)
    _add_datacube(item, ds, reference_system=epsg if epsg is not None else wkt)
    _add_projection(item, ds, epsg, wkt, bounds)
    _add_sar(item, ds)
    _add_sat(item, ds)
    _add_lineage(item, ds)
    _add_assets(item, name, files, folder)

    collection = pystac.Collection(
        id=name,
        description=citation.description or citation.title,
        title=citation.title,
        license=citation.license,
        keywords=list(citation.keywords) or None,
        extent=pystac.Extent(pystac.SpatialExtent([bbox]), pystac.TemporalExtent([[start, end]])),
    )
    collection.summaries = pystac.Summaries(_summaries(ds))
    _declare_summary_extensions(collection)
    collection.add_item(item)
    return collection


def write_stac(collection: Any, folder: Path, name: str) -> tuple[str, ...]:
    """Save ``stac/collection.json`` and ``stac/<name>.json`` (self-contained, relative hrefs)."""
    import pystac

    stac_dir = folder / STAC_DIR
    if stac_dir.exists():
        shutil.rmtree(stac_dir)
    collection.normalize_hrefs(str(stac_dir.resolve()))
    for item in collection.get_items():
        item.set_self_href(str((stac_dir / f"{name}.json").resolve()))
    collection.make_all_asset_hrefs_relative()
    collection.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return (f"{STAC_DIR}/{COLLECTION_JSON}", f"{STAC_DIR}/{name}.json")


__all__ = ["source_items", "stac_collection", "write_stac"]
