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
import pkgutil
from typing import Any

from sarcube.datacube import schema, store
from sarcube.datacube.schema import open_cube, validate_cube
from sarcube.datacube.store import add_variables, write_cube

#: every public module of the package (private ones start with "_")
_MODULES = tuple(
    m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_") and m.name not in ("schema", "store")
)
#: public functions of the lazily imported modules -> their module
_FUNCTIONS = {
    "make_pairs": f"{__name__}.sar",
    "change_layers": f"{__name__}.sar",
    "ratio_layers": f"{__name__}.sar",
    "event_means": f"{__name__}.sar",
    "release_mask": f"{__name__}.terrain",
    "potential_angle_of_reach": f"{__name__}.par",
    "rasterize_labels": f"{__name__}.labels",
    "reproject_raster": f"{__name__}.labels",
    "write_demo_catalog": f"{__name__}.synthetic",
    "read_demo_manifest": f"{__name__}.synthetic",
    "change_composite": f"{__name__}.composite",
    "open_catalog": f"{__name__}.catalog",
}


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _FUNCTIONS:
        return getattr(importlib.import_module(_FUNCTIONS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["add_variables", "open_cube", "schema", "store", "validate_cube", "write_cube", *_MODULES, *_FUNCTIONS]
