"""The cube: contract, STAC search, loading, features, chips, zarr I/O, archives.

No torch here (see ``shared/STYLE.md``): everything returns numpy, dask or
xarray objects. The contract and the write API are imported eagerly; every other
module (and its heavy dependencies: odc-stac, shapely, rasterio) is imported on
first use, so ``import sarcube.datacube`` stays cheap.

Modules, in the order data flows through them:

- the contract: ``schema`` (names, CF attrs, chunks, codecs, open/validate),
  ``grid`` (AOI, grid, cell size), ``dates``
- sources: ``catalog`` (STAC sources and search), ``load`` (onto one grid,
  signed at read time), ``retry``, ``redaction`` (secrets and local paths)
- layers: ``sar`` (pairs, change, ratios, event means), ``terrain`` (slope,
  aspect, curvature, release), ``par`` (potential angle of reach), ``labels``
  (label polygons onto the grid), ``rasters`` (external rasters onto the grid), ``label_events`` (which events each
  pair's labels hold), ``composite`` (the R/G/B change composite)
- storage: ``store`` (every write, all-or-nothing), ``staging`` (staged arrays
  and resume), ``lock`` (one writer per cube), ``zarrio`` (stores on disk or fsspec), ``cog`` (GeoTIFF writer)
- learning and products: ``chips`` (channels, splits, selection, blocks),
  ``predictions`` (the ``pred_*`` contract and the prediction plan), ``archive``
  (zip, checksums, STAC, datasheet, verify, Zenodo client)
- ``synthetic``: the demo scene as a local STAC catalog
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sarcube.datacube import schema, store
from sarcube.datacube.schema import open_cube, validate_cube
from sarcube.datacube.store import add_variables, write_cube

if TYPE_CHECKING:  # what the lazy table below resolves, for readers and type checkers
    from sarcube.datacube import (
        archive,
        catalog,
        chips,
        cog,
        composite,
        dates,
        grid,
        label_events,
        labels,
        load,
        lock,
        par,
        predictions,
        rasters,
        redaction,
        retry,
        sar,
        staging,
        synthetic,
        terrain,
        zarrio,
    )
    from sarcube.datacube.catalog import open_catalog
    from sarcube.datacube.composite import change_composite
    from sarcube.datacube.grid import grid_for, parse_aoi
    from sarcube.datacube.labels import rasterize_labels
    from sarcube.datacube.par import potential_angle_of_reach
    from sarcube.datacube.rasters import reproject_raster
    from sarcube.datacube.sar import change_layers, event_means, make_pairs, ratio_layers
    from sarcube.datacube.synthetic import read_demo_manifest, write_demo_catalog
    from sarcube.datacube.terrain import release_mask

#: the modules imported on first use
_MODULES = (
    "archive",
    "catalog",
    "chips",
    "cog",
    "composite",
    "dates",
    "grid",
    "label_events",
    "labels",
    "load",
    "lock",
    "par",
    "predictions",
    "rasters",
    "redaction",
    "retry",
    "sar",
    "staging",
    "synthetic",
    "terrain",
    "zarrio",
)
#: public functions imported on first use -> their module
_FUNCTIONS = {
    "open_catalog": "catalog",
    "change_composite": "composite",
    "grid_for": "grid",
    "parse_aoi": "grid",
    "rasterize_labels": "labels",
    "reproject_raster": "rasters",
    "potential_angle_of_reach": "par",
    "change_layers": "sar",
    "event_means": "sar",
    "make_pairs": "sar",
    "ratio_layers": "sar",
    "read_demo_manifest": "synthetic",
    "write_demo_catalog": "synthetic",
    "release_mask": "terrain",
}


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _FUNCTIONS:
        return getattr(importlib.import_module(f"{__name__}.{_FUNCTIONS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "add_variables",
    "archive",
    "catalog",
    "change_composite",
    "change_layers",
    "chips",
    "cog",
    "composite",
    "dates",
    "event_means",
    "grid",
    "grid_for",
    "label_events",
    "labels",
    "load",
    "lock",
    "make_pairs",
    "open_catalog",
    "open_cube",
    "par",
    "parse_aoi",
    "potential_angle_of_reach",
    "predictions",
    "rasterize_labels",
    "rasters",
    "ratio_layers",
    "read_demo_manifest",
    "redaction",
    "release_mask",
    "reproject_raster",
    "retry",
    "sar",
    "schema",
    "staging",
    "store",
    "synthetic",
    "terrain",
    "validate_cube",
    "write_cube",
    "write_demo_catalog",
    "zarrio",
]
