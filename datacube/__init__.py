"""The cube: contract, STAC search, loading, features, chips, zarr I/O, archives.

No torch here (see ``shared/STYLE.md``): everything returns numpy, dask or
xarray objects. The contract (:mod:`~sarcube.datacube.schema`) and store I/O
are loaded eagerly; the rest is imported on first use, so importing
``sarcube.datacube`` stays cheap.

Modules: ``schema`` (names, CF attrs, chunks, open/validate), ``store`` (all
writes, all-or-nothing), ``catalog`` (STAC sources, search), ``load`` (onto
one grid, sign-at-read), ``sar`` (pairs, change, ratios, event means),
``terrain`` (slope, aspect, curvature, release), ``par`` (potential angle of
reach), ``labels`` (rasterize polygons, external rasters), ``chips`` (chip
selection, splits, block cutting), ``synthetic`` (the demo scene as a STAC
catalog), ``composite`` (the R/G/B change composite), ``archive`` (zip, STAC,
datasheet, checksums), ``dates`` (ISO date parsing).
"""

from __future__ import annotations

import importlib
from typing import Any

from sarcube.datacube import schema, store
from sarcube.datacube.schema import open_cube, validate_cube
from sarcube.datacube.store import add_variables, write_cube

_MODULES = ("archive", "catalog", "chips", "composite", "dates", "labels", "load", "par", "sar", "synthetic", "terrain")
#: public functions of the lazily imported modules -> their module
_FUNCTIONS = {
    "make_pairs": "sar",
    "change_layers": "sar",
    "ratio_layers": "sar",
    "event_means": "sar",
    "release_mask": "terrain",
    "potential_angle_of_reach": "par",
    "rasterize_labels": "labels",
    "reproject_raster": "labels",
    "write_demo_catalog": "synthetic",
    "read_demo_manifest": "synthetic",
    "change_composite": "composite",
    "open_catalog": "catalog",
}


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _FUNCTIONS:
        return getattr(importlib.import_module(f"{__name__}.{_FUNCTIONS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["add_variables", "open_cube", "schema", "store", "validate_cube", "write_cube", *_MODULES, *_FUNCTIONS]
