"""The contract's variables: their specs, and building variables, coordinates and empty cubes.

:class:`VariableSpec` says what the contract holds about one variable (dims,
dtype, units, CF attrs); :func:`make_variable` gives a DataArray those, and
``chunks_for``/``encoding_for`` the storage every writer uses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from sarcube.datacube.schema.names import (
    ACTIVITY_TIME,
    ASPECT,
    ATTR_CODEC,
    ATTR_CONTRACT,
    ATTR_CONVENTIONS,
    ATTR_ORBIT_KEY,
    ATTR_PARAMETERS,
    ATTR_VERSION,
    BLOSC_SHUFFLE,
    CHUNK_STACK,
    CHUNK_YX,
    CODEC_GZIP,
    CODECS,
    CONTRACT_VERSION,
    CONVENTIONS,
    CURVATURE,
    DEFAULT_CODEC,
    DEM,
    GZIP_LEVEL,
    ITEM_ID,
    LABEL,
    LABEL_NO,
    LABEL_UNKNOWN,
    LABEL_YES,
    ORBIT,
    ORBIT_KEYS,
    ORBIT_STATE,
    PAIR,
    PAIR_RELATIVE_ORBIT,
    PAR,
    PLATFORM,
    PRED_PREFIX,
    REFERENCE_TIME,
    RELATIVE_ORBIT,
    RELEASE,
    SLOPE,
    SPATIAL_REF,
    STACK_DIMS,
    TIME,
    TIME_ENCODING,
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
    ZSTD_LEVEL,
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


# --- building variables and cubes --------------------------------------------

def make_variable(
    name: str,
    data: Any,
    dims: Iterable[str] | None = None,
    *,
    coords: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
    parameters: Mapping[str, Any] | None = None,
    spec: VariableSpec | None = None,
) -> xr.DataArray:
    """A DataArray for ``name`` with the contract's dtype, CF attrs and grid mapping.

    ``parameters`` (e.g. ``{"radius_m": 4000}``) are recorded as JSON in the
    ``sarcube_parameters`` attribute, so a recomputed feature says how it was made.
    """
    spec = spec or spec_for(name)
    if spec is None:
        raise CubeSchemaError(
            f"{name!r} is not a cube variable: add it to sarcube.datacube.schema or use external_spec()"
        )
    dims = tuple(dims) if dims is not None else spec.dims[0]
    if dims not in spec.dims:
        raise CubeSchemaError(f"variable {name!r}: dims {dims} not in the contract's {spec.dims}")
    if isinstance(data, xr.DataArray):
        arr = data.transpose(*dims).astype(spec.dtype, copy=False)
    else:
        arr = xr.DataArray(data, dims=dims, coords=coords).astype(spec.dtype, copy=False)
    arr.name = name
    arr.attrs = {**spec.attrs(), **(dict(attrs) if attrs else {}), "grid_mapping": SPATIAL_REF}
    if parameters is not None:
        arr.attrs[ATTR_PARAMETERS] = json.dumps(dict(parameters), sort_keys=True, default=str)
    return arr


def grid_coords(x: np.ndarray, y: np.ndarray) -> dict[str, xr.DataArray]:
    """CF x/y coordinate variables (pixel centres, metres)."""
    return {
        X: xr.DataArray(
            np.asarray(x, dtype="float64"),
            dims=(X,),
            attrs={
                "standard_name": "projection_x_coordinate",
                "long_name": "x coordinate of projection",
                "units": "m",
                "axis": "X",
            },
        ),
        Y: xr.DataArray(
            np.asarray(y, dtype="float64"),
            dims=(Y,),
            attrs={
                "standard_name": "projection_y_coordinate",
                "long_name": "y coordinate of projection",
                "units": "m",
                "axis": "Y",
            },
        ),
    }


def with_crs(ds: xr.Dataset, crs: Any) -> xr.Dataset:
    """Attach the CF grid mapping ``spatial_ref`` (rioxarray convention) and point every variable at it."""
    import rioxarray  # noqa: F401  (registers .rio)

    ds = ds.rio.write_crs(crs, grid_mapping_name=SPATIAL_REF)
    ds = ds.rio.write_transform(ds.rio.transform(recalc=True), grid_mapping_name=SPATIAL_REF)
    ds[SPATIAL_REF].attrs["long_name"] = "CRS definition"  # CF recommends a long_name on every variable
    for name in ds.data_vars:
        ds[name].attrs["grid_mapping"] = SPATIAL_REF
        ds[name].encoding.pop("grid_mapping", None)
    return ds


def empty_cube(x: np.ndarray, y: np.ndarray, crs: Any, attrs: Mapping[str, Any] | None = None) -> xr.Dataset:
    """A cube with its grid, CRS and global attrs and no variables yet."""
    from sarcube import __version__

    ds = xr.Dataset(coords=grid_coords(x, y))
    ds.attrs = {
        ATTR_CONVENTIONS: CONVENTIONS,
        ATTR_CONTRACT: CONTRACT_VERSION,
        ATTR_VERSION: __version__,
        **(dict(attrs) if attrs else {}),
    }
    return with_crs(ds, crs)


def time_coords(
    times: Iterable[Any],
    platform: Iterable[str],
    orbit_state: Iterable[str],
    relative_orbit: Iterable[int],
    item_id: Iterable[str],
) -> dict[str, xr.DataArray]:
    """The ``time`` coordinate and its per-acquisition coordinates."""
    t = np.asarray(list(times), dtype="datetime64[ns]")
    return {
        TIME: xr.DataArray(
            t, dims=(TIME,), attrs={"standard_name": "time", "long_name": "acquisition start time (UTC)"}
        ),
        PLATFORM: xr.DataArray(
            np.asarray(list(platform), dtype=object), dims=(TIME,), attrs={"long_name": "satellite platform"}
        ),
        ORBIT_STATE: xr.DataArray(
            np.asarray(list(orbit_state), dtype=object),
            dims=(TIME,),
            attrs={"long_name": "orbit direction (ascending/descending)"},
        ),
        RELATIVE_ORBIT: xr.DataArray(
            np.asarray(list(relative_orbit), dtype="int32"), dims=(TIME,), attrs={"long_name": "relative orbit number"}
        ),
        ITEM_ID: xr.DataArray(
            np.asarray(list(item_id), dtype=object),
            dims=(TIME,),
            attrs={"long_name": "STAC item ids mosaicked into this time step (comma-separated)"},
        ),
    }


def pair_coords(
    reference_time: Iterable[Any], activity_time: Iterable[Any], relative_orbit: Iterable[int]
) -> dict[str, xr.DataArray]:
    """The ``pair`` index and its reference/activity times and orbit."""
    ref = np.asarray(list(reference_time), dtype="datetime64[ns]")
    act = np.asarray(list(activity_time), dtype="datetime64[ns]")
    if ref.shape != act.shape:
        raise CubeSchemaError("reference_time and activity_time must have one entry per pair")
    return {
        PAIR: xr.DataArray(
            np.arange(ref.size, dtype="int32"), dims=(PAIR,), attrs={"long_name": "reference/activity pair index"}
        ),
        REFERENCE_TIME: xr.DataArray(ref, dims=(PAIR,), attrs={"long_name": "reference acquisition time (UTC)"}),
        ACTIVITY_TIME: xr.DataArray(act, dims=(PAIR,), attrs={"long_name": "activity acquisition time (UTC)"}),
        PAIR_RELATIVE_ORBIT: xr.DataArray(
            np.asarray(list(relative_orbit), dtype="int32"),
            dims=(PAIR,),
            attrs={"long_name": "relative orbit of both acquisitions"},
        ),
    }


def orbit_coords(orbits: Iterable[Any], key: str = RELATIVE_ORBIT) -> dict[str, xr.DataArray]:
    """The ``orbit`` index of per-orbit layers: one value of ``key`` per orbit.

    ``key`` is ``relative_orbit`` (values: relative orbit numbers, int32) or
    ``orbit_state`` (values: pass directions); the coordinate's ``orbit_key``
    attribute names it.
    """
    if key not in ORBIT_KEYS:
        raise InputError(f"orbit key {key!r} unknown: use one of {', '.join(ORBIT_KEYS)}")
    values = list(orbits)
    data = np.asarray(values, dtype="int32") if key == RELATIVE_ORBIT else np.asarray(values, dtype=object)
    if np.unique(data.astype(str)).size != data.size:
        raise CubeSchemaError(f"orbit values {values} repeat: one entry per orbit")
    long_name = "relative orbit number" if key == RELATIVE_ORBIT else "orbit direction (ascending/descending)"
    attrs = {"long_name": f"orbit of per-orbit layers: {long_name}", ATTR_ORBIT_KEY: key}
    return {ORBIT: xr.DataArray(data, dims=(ORBIT,), attrs=attrs)}


def chunks_for(dims: Iterable[str], shape: Iterable[int] | None = None) -> tuple[int, ...]:
    """Storage chunks: 1 along time/pair, 512x512 in space (clipped to the shape)."""
    dims = tuple(dims)
    sizes = tuple(shape) if shape is not None else (None,) * len(dims)
    out = []
    for dim, size in zip(dims, sizes, strict=True):
        c = CHUNK_STACK if dim in STACK_DIMS else CHUNK_YX
        out.append(max(1, min(c, size)) if size else c)
    return tuple(out)


def codec_of(attrs: Mapping[str, Any]) -> str:
    """The codec a cube's global ``attrs`` name (``sarcube_codec``), the default for cubes without one."""
    codec = str(attrs.get(ATTR_CODEC, DEFAULT_CODEC))
    if codec not in CODECS:
        raise CubeSchemaError(f"cube codec {codec!r} unknown: this sarcube writes {', '.join(CODECS)}")
    return codec


def compressors(codec: str = DEFAULT_CODEC) -> tuple[Any, ...]:
    """The chunk compression of ``codec``: Blosc/zstd with byte shuffle (default) or gzip."""
    if codec not in CODECS:
        raise InputError(f"codec {codec!r} unknown: use one of {', '.join(CODECS)}")
    if codec == CODEC_GZIP:
        from zarr.codecs import GzipCodec

        return (GzipCodec(level=GZIP_LEVEL),)
    from zarr.codecs import BloscCodec

    return (BloscCodec(cname="zstd", clevel=ZSTD_LEVEL, shuffle=BLOSC_SHUFFLE),)


def encoding_for(
    ds: xr.Dataset, names: Iterable[str] | None = None, codec: str | None = None
) -> dict[str, dict[str, Any]]:
    """Zarr encodings (chunks, compressors, fill values, time units) for ``names`` (default: all).

    ``codec`` defaults to the one ``ds``'s attrs name (see :func:`codec_of`).
    """
    names = list(ds.variables) if names is None else list(names)
    chunk_codecs = compressors(codec or codec_of(ds.attrs))
    enc: dict[str, dict[str, Any]] = {}
    for name in names:
        var = ds.variables[name]
        # coordinates too: a reader without the default codec (zarr's zstd) must decode them all
        if np.issubdtype(var.dtype, np.datetime64):
            enc[name] = {**TIME_ENCODING, "compressors": chunk_codecs}
            continue
        if name in ds.coords:
            enc[name] = {"compressors": chunk_codecs}
            if var.dtype.kind == "f":
                enc[name]["_FillValue"] = None  # CF: coordinates have no fill value
            continue
        e: dict[str, Any] = {"chunks": chunks_for(var.dims, var.shape), "compressors": chunk_codecs}
        if var.dtype.kind == "f":
            e["_FillValue"] = np.nan
        elif var.dtype.kind in "iu":
            e["_FillValue"] = None  # every integer value is data (label 255 means "unknown")
        enc[name] = e
    return enc


__all__ = [
    "VARIABLES",
    "VariableSpec",
    "chunks_for",
    "codec_of",
    "compressors",
    "empty_cube",
    "encoding_for",
    "external_spec",
    "grid_coords",
    "is_prediction",
    "make_variable",
    "orbit_coords",
    "pair_coords",
    "prediction_name",
    "prediction_spec",
    "spec_for",
    "time_coords",
    "typed_cf_attrs",
    "with_crs",
]
