"""The contract's variables: their specs (the ``VARIABLES`` table, predictions, external layers).

:class:`VariableSpec` says what the contract holds about one variable (dims,
dtype, units, CF attrs); :mod:`~sarcube.datacube.schema.arrays` builds
DataArrays, coordinates and cubes from those specs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from sarcube.datacube.schema.names import (
    ASPECT,
    CURVATURE,
    DEM,
    LABEL,
    LABEL_NO,
    LABEL_UNKNOWN,
    LABEL_YES,
    ORBIT,
    PAIR,
    PAR,
    PRED_PREFIX,
    RELEASE,
    SLOPE,
    TIME,
    UNIT_DB,
    VH,
    VH_AFTER,
    VH_BEFORE,
    VH_DIFF,
    VH_RATIO,
    VV,
    VV_AFTER,
    VV_BEFORE,
    VV_DIFF,
    VV_RATIO,
    VVVH,
    X,
    Y,
)
from sarcube.errors import CubeSchemaError, InputError


@dataclass(frozen=True)
class VariableSpec:
    """What the contract says about one data variable."""

    name: str
    #: allowed dimension tuples (the first is the default)
    dims: tuple[tuple[str, ...], ...]
    dtype: str
    units: str
    long_name: str
    description: str
    standard_name: str | None = None
    #: flag values and meanings for integer masks (CF flag_values/flag_meanings)
    flags: tuple[tuple[int, str], ...] = ()
    #: valid range (CF valid_min/valid_max), None when open
    valid_range: tuple[float, float] | None = None

    @property
    def is_float(self) -> bool:
        return np.dtype(self.dtype).kind == "f"

    def attrs(self) -> dict[str, Any]:
        """CF attributes written on the variable."""
        out: dict[str, Any] = {"long_name": self.long_name, "units": self.units, "description": self.description}
        if self.standard_name:
            out["standard_name"] = self.standard_name
        if self.flags:
            out["flag_values"] = [v for v, _ in self.flags]
            out["flag_meanings"] = " ".join(m for _, m in self.flags)
        if self.valid_range is not None:
            out["valid_min"], out["valid_max"] = self.valid_range
        return out  # plain JSON values: zarr stores attrs as JSON; open_cube types them (typed_cf_attrs)


def typed_cf_attrs(attrs: Mapping[str, Any], dtype: Any) -> dict[str, Any]:
    """``attrs`` with CF's flag_values/valid_min/valid_max/valid_range in the variable's ``dtype``, as CF requires.

    Zarr keeps attributes as JSON, so they read back as Python ints and
    floats; :func:`~sarcube.datacube.schema.open_cube` types them again, so a
    netCDF copy of an opened cube passes ``cf:1.10``.
    """
    out = dict(attrs)
    kind = np.dtype(dtype)
    for key in ("flag_values", "valid_min", "valid_max", "valid_range"):
        if key in out and out[key] is not None:
            out[key] = np.asarray(out[key], dtype=kind) if np.ndim(out[key]) else kind.type(out[key])
    return out


_SAR_TYX = ((TIME, Y, X),)
_PAIR_YX = ((PAIR, Y, X),)
_ORBIT_YX = ((ORBIT, Y, X),)
_YX = ((Y, X),)
_LABEL_DIMS = ((PAIR, Y, X), (Y, X))
_LABEL_FLAGS = ((LABEL_NO, "no"), (LABEL_YES, "yes"), (LABEL_UNKNOWN, "unknown"))

VARIABLES: dict[str, VariableSpec] = {
    spec.name: spec
    for spec in (
        VariableSpec(
            VV,
            _SAR_TYX,
            "float32",
            UNIT_DB,
            "VV backscatter gamma0",
            "Radiometrically terrain-corrected gamma0, VV, 10 log10 of linear power.",
        ),
        VariableSpec(
            VH,
            _SAR_TYX,
            "float32",
            UNIT_DB,
            "VH backscatter gamma0",
            "Radiometrically terrain-corrected gamma0, VH, 10 log10 of linear power.",
        ),
        VariableSpec(
            VV_RATIO,
            _SAR_TYX,
            "float32",
            UNIT_DB,
            "VV relative to snow-free reference",
            "VV minus the median VV of a snow-free summer window (avalanche-cnn-sinha II-A).",
        ),
        VariableSpec(
            VH_RATIO,
            _SAR_TYX,
            "float32",
            UNIT_DB,
            "VH relative to snow-free reference",
            "VH minus the median VH of a snow-free summer window (avalanche-cnn-sinha II-A).",
        ),
        VariableSpec(
            VV_DIFF,
            _PAIR_YX,
            "float32",
            UNIT_DB,
            "VV change, activity minus reference",
            "VV(activity) - VV(reference) after clipping both to [-25, -5] dB (avalanche-fcn-bianchi II-B).",
        ),
        VariableSpec(
            VH_DIFF,
            _PAIR_YX,
            "float32",
            UNIT_DB,
            "VH change, activity minus reference",
            "VH(activity) - VH(reference) after clipping both to [-25, -5] dB (avalanche-fcn-bianchi II-B).",
        ),
        VariableSpec(
            VVVH,
            _PAIR_YX,
            "float32",
            "1",
            "VVVH change product",
            "Product of the squared VV and VH differences, each rescaled to [0, 1] first.",
            valid_range=(0.0, 1.0),
        ),
        VariableSpec(
            VV_BEFORE,
            _ORBIT_YX,
            "float32",
            UNIT_DB,
            "mean VV before event, per orbit",
            "Mean VV of the k acquisitions of one orbit right before the event date (landslide-datacube 3.1).",
        ),
        VariableSpec(
            VH_BEFORE,
            _ORBIT_YX,
            "float32",
            UNIT_DB,
            "mean VH before event, per orbit",
            "Mean VH of the k acquisitions of one orbit right before the event date (landslide-datacube 3.1).",
        ),
        VariableSpec(
            VV_AFTER,
            _ORBIT_YX,
            "float32",
            UNIT_DB,
            "mean VV after event, per orbit",
            "Mean VV of the k acquisitions of one orbit right after the event date (landslide-datacube 3.1).",
        ),
        VariableSpec(
            VH_AFTER,
            _ORBIT_YX,
            "float32",
            UNIT_DB,
            "mean VH after event, per orbit",
            "Mean VH of the k acquisitions of one orbit right after the event date (landslide-datacube 3.1).",
        ),
        VariableSpec(
            DEM,
            _YX,
            "float32",
            "m",
            "elevation",
            "Terrain elevation above the geoid, resampled bilinearly onto the cube grid.",
            standard_name="surface_altitude",
        ),
        VariableSpec(
            SLOPE,
            _YX,
            "float32",
            "degree",
            "slope angle",
            "Terrain slope (Horn 1981), degrees from horizontal.",
            valid_range=(0.0, 90.0),
        ),
        VariableSpec(
            ASPECT,
            _YX,
            "float32",
            "degree",
            "slope aspect",
            "Downslope direction, degrees clockwise from north (Horn); NaN on flat cells.",
            valid_range=(0.0, 360.0),
        ),
        VariableSpec(
            CURVATURE,
            _YX,
            "float32",
            "0.01 m-1",
            "terrain curvature",
            "Curvature as gdaldem/xarray-spatial (-2 (d + e) * 100), positive upward-convex.",
        ),
        VariableSpec(
            RELEASE,
            _YX,
            "uint8",
            "1",
            "potential release area",
            "1 where the slope lies in the release range (default 30-50 degrees).",
            flags=((0, "no"), (1, "yes")),
        ),
        VariableSpec(
            PAR,
            _YX,
            "float32",
            "degree",
            "potential angle of reach",
            "Largest elevation angle from the cell up to any release cell within the radius (avalanche-fcn-bianchi "
            "III-B); NaN where none.",
            valid_range=(-90.0, 90.0),
        ),
        VariableSpec(
            LABEL,
            _LABEL_DIMS,
            "uint8",
            "1",
            "hazard label",
            "1 hazard (avalanche debris, landslide, glacier), 0 none, 255 unknown / not monitored (ignored by losses "
            "and metrics).",
            flags=_LABEL_FLAGS,
        ),
    )
}


def prediction_name(run_name: str) -> str:
    """Variable name of a prediction run: ``pred_<run>``."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", run_name or ""):
        raise InputError(
            f"prediction name {run_name!r} is not valid: use letters, digits, '_' or '-' (e.g. --name fcn)"
        )
    return PRED_PREFIX + run_name


def is_prediction(name: str) -> bool:
    """True for ``pred_<run>`` variables."""
    return name.startswith(PRED_PREFIX) and len(name) > len(PRED_PREFIX)


def prediction_spec(name: str, label_dims: tuple[str, ...] = (PAIR, Y, X)) -> VariableSpec:
    """The spec of a ``pred_<run>`` variable: float32 probability, dims of ``label``."""
    if not is_prediction(name):
        raise CubeSchemaError(f"{name!r} is not a prediction variable (expected a name starting {PRED_PREFIX!r})")
    return VariableSpec(
        name,
        (label_dims,),
        "float32",
        "1",
        f"probability of hazard ({name[len(PRED_PREFIX):]})",
        "Model probability written by `sarcube predict`; threshold in attrs.",
        valid_range=(0.0, 1.0),
    )


def external_spec(name: str, dims: tuple[str, ...], units: str = "1", long_name: str | None = None) -> VariableSpec:
    """Spec of a user layer added with ``sarcube add-layer --raster`` (e.g. InSAR coherence)."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name or ""):
        raise InputError(f"layer name {name!r} is not valid: use lower-case letters, digits and '_' (e.g. coherence)")
    if name in VARIABLES or is_prediction(name):
        raise InputError(f"layer name {name!r} is reserved by the cube contract: choose another --raster NAME")
    allowed = {(Y, X), (TIME, Y, X), (PAIR, Y, X)}
    if tuple(dims) not in allowed:
        raise InputError(f"layer {name!r}: dims {dims} not allowed, use one of {sorted(allowed)}")
    return VariableSpec(
        name, (tuple(dims),), "float32", units, long_name or name, "External layer added by `sarcube add-layer`."
    )


def spec_for(name: str, ds: xr.Dataset | None = None) -> VariableSpec | None:
    """The contract's spec of ``name``, or None for a variable outside it."""
    if name in VARIABLES:
        return VARIABLES[name]
    if is_prediction(name):
        dims = tuple(ds[LABEL].dims) if ds is not None and LABEL in ds else (PAIR, Y, X)
        return prediction_spec(name, dims)
    return None


__all__ = [
    "VARIABLES",
    "VariableSpec",
    "external_spec",
    "is_prediction",
    "prediction_name",
    "prediction_spec",
    "spec_for",
    "typed_cf_attrs",
]
