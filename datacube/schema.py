"""The cube contract (v1): the one place that spells sarcube's names.

Every other module reads and writes cubes through the constants and helpers
here: dimension, coordinate and variable names, dtypes, units, CF attributes,
fill values and chunking (see ``shared/DESIGN.md``, "The cube contract").
A cube is one Zarr v3 store per area of interest.

Dimensions ``time`` (acquisitions), ``pair`` (reference/activity pairs),
``y``, ``x`` (pixel centres in a projected CRS, metres). Coordinates on
``time``: ``platform``, ``orbit_state``, ``relative_orbit``, ``item_id``; on
``pair``: ``reference_time``, ``activity_time`` and ``pair_relative_orbit``
(the pair's orbit; xarray cannot hold two coordinates of one name on two
dimensions, so the pair's copy is prefixed).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from sarcube.errors import CubeSchemaError, InputError, MissingVariableError

CONTRACT_VERSION = "1"
CONVENTIONS = "CF-1.10"

# --- dimensions ---------------------------------------------------------------
TIME = "time"
PAIR = "pair"
Y = "y"
X = "x"
SPATIAL_DIMS = (Y, X)

# --- coordinates -------------------------------------------------------------
SPATIAL_REF = "spatial_ref"
PLATFORM = "platform"
ORBIT_STATE = "orbit_state"
RELATIVE_ORBIT = "relative_orbit"
ITEM_ID = "item_id"
REFERENCE_TIME = "reference_time"
ACTIVITY_TIME = "activity_time"
PAIR_RELATIVE_ORBIT = "pair_relative_orbit"

TIME_COORDS = (PLATFORM, ORBIT_STATE, RELATIVE_ORBIT, ITEM_ID)
PAIR_COORDS = (REFERENCE_TIME, ACTIVITY_TIME, PAIR_RELATIVE_ORBIT)
#: on-disk encoding of every datetime coordinate (fixed, so appends line up)
TIME_ENCODING = {"units": "seconds since 1970-01-01T00:00:00", "calendar": "proleptic_gregorian", "dtype": "int64"}

ORBIT_ASCENDING = "ascending"
ORBIT_DESCENDING = "descending"

# --- variables ---------------------------------------------------------------
VV = "vv"
VH = "vh"
VV_RATIO = "vv_ratio"
VH_RATIO = "vh_ratio"
VV_DIFF = "vv_diff"
VH_DIFF = "vh_diff"
VVVH = "vvvh"
VV_BEFORE = "vv_before"
VH_BEFORE = "vh_before"
VV_AFTER = "vv_after"
VH_AFTER = "vh_after"
DEM = "dem"
SLOPE = "slope"
ASPECT = "aspect"
CURVATURE = "curvature"
RELEASE = "release"
PAR = "par"
LABEL = "label"
PRED_PREFIX = "pred_"

#: label values (uint8)
LABEL_NO = 0
LABEL_YES = 1
LABEL_UNKNOWN = 255

# --- STAC names of the source collections --------------------------------------
# Planetary Computer's collections; the demo catalog mimics them exactly.
COLLECTION_S1_RTC = "sentinel-1-rtc"
COLLECTION_DEM = "cop-dem-glo-30"
ASSET_VV = "vv"
ASSET_VH = "vh"
ASSET_DEM = "data"
#: STAC asset key -> cube variable for the backscatter assets
ASSET_TO_VARIABLE = {ASSET_VV: VV, ASSET_VH: VH}
S1_NODATA = -32768.0

# --- global attributes ---------------------------------------------------------
ATTR_CONVENTIONS = "Conventions"
ATTR_TITLE = "title"
ATTR_VERSION = "sarcube_version"
ATTR_CONTRACT = "sarcube_contract"
ATTR_AOI = "aoi"
ATTR_START = "start"
ATTR_END = "end"
ATTR_CATALOG = "catalog"
ATTR_COLLECTIONS = "collections"
ATTR_STAC_ITEMS = "stac_items"
ATTR_HISTORY = "history"
ATTR_CREATED = "created"
REQUIRED_GLOBAL_ATTRS = (
    ATTR_CONVENTIONS,
    ATTR_TITLE,
    ATTR_VERSION,
    ATTR_AOI,
    ATTR_START,
    ATTR_END,
    ATTR_CATALOG,
    ATTR_COLLECTIONS,
    ATTR_STAC_ITEMS,
    ATTR_HISTORY,
    ATTR_CREATED,
)
#: global attrs stored as JSON text (CF attributes are strings)
JSON_GLOBAL_ATTRS = (ATTR_AOI, ATTR_COLLECTIONS, ATTR_STAC_ITEMS)

#: variable attribute naming the parameters a feature was computed with (JSON)
ATTR_PARAMETERS = "sarcube_parameters"
#: attrs of prediction variables
ATTR_MODEL = "model"
ATTR_CHECKPOINT_SHA256 = "checkpoint_sha256"
ATTR_THRESHOLD = "threshold"
ATTR_RUN = "run"
ATTR_TTA = "tta"
#: JSON list of the pairs a prediction holds ("<reference time>/<activity time>", ISO seconds)
ATTR_PREDICTED_PAIRS = "predicted_pairs"

# --- storage -----------------------------------------------------------------
CHUNK_YX = 512
CHUNK_STACK = 1  # time or pair
ZSTD_LEVEL = 5


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
        return out


_SAR_TYX = ((TIME, Y, X),)
_PAIR_YX = ((PAIR, Y, X),)
_YX = ((Y, X),)
_LABEL_DIMS = ((PAIR, Y, X), (Y, X))
_LABEL_FLAGS = ((LABEL_NO, "no"), (LABEL_YES, "yes"), (LABEL_UNKNOWN, "unknown"))

VARIABLES: dict[str, VariableSpec] = {
    spec.name: spec
    for spec in (
        VariableSpec(VV, _SAR_TYX, "float32", "dB", "VV backscatter gamma0", "Radiometrically terrain-corrected gamma0, VV, 10 log10 of linear power."),
        VariableSpec(VH, _SAR_TYX, "float32", "dB", "VH backscatter gamma0", "Radiometrically terrain-corrected gamma0, VH, 10 log10 of linear power."),
        VariableSpec(VV_RATIO, _SAR_TYX, "float32", "dB", "VV relative to snow-free reference", "VV minus the median VV of a snow-free summer window (avalanche-cnn-sinha II-A)."),
        VariableSpec(VH_RATIO, _SAR_TYX, "float32", "dB", "VH relative to snow-free reference", "VH minus the median VH of a snow-free summer window (avalanche-cnn-sinha II-A)."),
        VariableSpec(VV_DIFF, _PAIR_YX, "float32", "dB", "VV change, activity minus reference", "VV(activity) - VV(reference) after clipping both to [-25, -5] dB (avalanche-fcn-bianchi II-B)."),
        VariableSpec(VH_DIFF, _PAIR_YX, "float32", "dB", "VH change, activity minus reference", "VH(activity) - VH(reference) after clipping both to [-25, -5] dB (avalanche-fcn-bianchi II-B)."),
        VariableSpec(VVVH, _PAIR_YX, "float32", "1", "VVVH change product", "Product of the squared VV and VH differences, each rescaled to [0, 1] first.", valid_range=(0.0, 1.0)),
        VariableSpec(VV_BEFORE, _YX, "float32", "dB", "mean VV before event", "Mean VV of the k acquisitions right before the event date (landslide-datacube 3.1)."),
        VariableSpec(VH_BEFORE, _YX, "float32", "dB", "mean VH before event", "Mean VH of the k acquisitions right before the event date (landslide-datacube 3.1)."),
        VariableSpec(VV_AFTER, _YX, "float32", "dB", "mean VV after event", "Mean VV of the k acquisitions right after the event date (landslide-datacube 3.1)."),
        VariableSpec(VH_AFTER, _YX, "float32", "dB", "mean VH after event", "Mean VH of the k acquisitions right after the event date (landslide-datacube 3.1)."),
        VariableSpec(DEM, _YX, "float32", "m", "elevation", "Terrain elevation above the geoid, resampled bilinearly onto the cube grid.", standard_name="surface_altitude"),
        VariableSpec(SLOPE, _YX, "float32", "degree", "slope angle", "Terrain slope (Horn 1981), degrees from horizontal.", valid_range=(0.0, 90.0)),
        VariableSpec(ASPECT, _YX, "float32", "degree", "slope aspect", "Downslope direction, degrees clockwise from north (Horn); NaN on flat cells.", valid_range=(0.0, 360.0)),
        VariableSpec(CURVATURE, _YX, "float32", "0.01 m-1", "terrain curvature", "Curvature as gdaldem/xarray-spatial (-2 (d + e) * 100), positive upward-convex."),
        VariableSpec(RELEASE, _YX, "uint8", "1", "potential release area", "1 where the slope lies in the release range (default 30-50 degrees).", flags=((0, "no"), (1, "yes"))),
        VariableSpec(PAR, _YX, "float32", "degree", "potential angle of reach", "Largest elevation angle from the cell up to any release cell within the radius (avalanche-fcn-bianchi III-B); NaN where none.", valid_range=(-90.0, 90.0)),
        VariableSpec(LABEL, _LABEL_DIMS, "uint8", "1", "hazard label", "1 hazard (avalanche debris, landslide, glacier), 0 none, 255 unknown / not monitored (ignored by losses and metrics).", flags=_LABEL_FLAGS),
    )
}

#: the time series of backscatter written by ``build``
BACKSCATTER = (VV, VH)
#: where the cube stacks its time series and its pairs
STACK_DIMS = (TIME, PAIR)


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
    return VariableSpec(name, (tuple(dims),), "float32", units, long_name or name, "External layer added by `sarcube add-layer`.")


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
        raise CubeSchemaError(f"{name!r} is not a cube variable: add it to sarcube.datacube.schema or use external_spec()")
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
        X: xr.DataArray(np.asarray(x, dtype="float64"), dims=(X,), attrs={"standard_name": "projection_x_coordinate", "long_name": "x coordinate of projection", "units": "m", "axis": "X"}),
        Y: xr.DataArray(np.asarray(y, dtype="float64"), dims=(Y,), attrs={"standard_name": "projection_y_coordinate", "long_name": "y coordinate of projection", "units": "m", "axis": "Y"}),
    }


def with_crs(ds: xr.Dataset, crs: Any) -> xr.Dataset:
    """Attach the CF grid mapping ``spatial_ref`` (rioxarray convention) and point every variable at it."""
    import rioxarray  # noqa: F401  (registers .rio)

    ds = ds.rio.write_crs(crs, grid_mapping_name=SPATIAL_REF)
    ds = ds.rio.write_transform(ds.rio.transform(recalc=True), grid_mapping_name=SPATIAL_REF)
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
        TIME: xr.DataArray(t, dims=(TIME,), attrs={"standard_name": "time", "long_name": "acquisition start time (UTC)"}),
        PLATFORM: xr.DataArray(np.asarray(list(platform), dtype=object), dims=(TIME,), attrs={"long_name": "satellite platform"}),
        ORBIT_STATE: xr.DataArray(np.asarray(list(orbit_state), dtype=object), dims=(TIME,), attrs={"long_name": "orbit direction (ascending/descending)"}),
        RELATIVE_ORBIT: xr.DataArray(np.asarray(list(relative_orbit), dtype="int32"), dims=(TIME,), attrs={"long_name": "relative orbit number"}),
        ITEM_ID: xr.DataArray(np.asarray(list(item_id), dtype=object), dims=(TIME,), attrs={"long_name": "STAC item ids mosaicked into this time step (comma-separated)"}),
    }


def pair_coords(reference_time: Iterable[Any], activity_time: Iterable[Any], relative_orbit: Iterable[int]) -> dict[str, xr.DataArray]:
    """The ``pair`` index and its reference/activity times and orbit."""
    ref = np.asarray(list(reference_time), dtype="datetime64[ns]")
    act = np.asarray(list(activity_time), dtype="datetime64[ns]")
    if ref.shape != act.shape:
        raise CubeSchemaError("reference_time and activity_time must have one entry per pair")
    return {
        PAIR: xr.DataArray(np.arange(ref.size, dtype="int32"), dims=(PAIR,), attrs={"long_name": "reference/activity pair index"}),
        REFERENCE_TIME: xr.DataArray(ref, dims=(PAIR,), attrs={"long_name": "reference acquisition time (UTC)"}),
        ACTIVITY_TIME: xr.DataArray(act, dims=(PAIR,), attrs={"long_name": "activity acquisition time (UTC)"}),
        PAIR_RELATIVE_ORBIT: xr.DataArray(np.asarray(list(relative_orbit), dtype="int32"), dims=(PAIR,), attrs={"long_name": "relative orbit of both acquisitions"}),
    }


def chunks_for(dims: Iterable[str], shape: Iterable[int] | None = None) -> tuple[int, ...]:
    """Storage chunks: 1 along time/pair, 512x512 in space (clipped to the shape)."""
    dims = tuple(dims)
    sizes = tuple(shape) if shape is not None else (None,) * len(dims)
    out = []
    for dim, size in zip(dims, sizes, strict=True):
        c = CHUNK_STACK if dim in STACK_DIMS else CHUNK_YX
        out.append(max(1, min(c, size)) if size else c)
    return tuple(out)


def compressors() -> tuple[Any, ...]:
    """Blosc/zstd with bit-shuffle: the contract's compression."""
    from zarr.codecs import BloscCodec

    return (BloscCodec(cname="zstd", clevel=ZSTD_LEVEL, shuffle="bitshuffle"),)


def encoding_for(ds: xr.Dataset, names: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    """Zarr encodings (chunks, compressors, fill values, time units) for ``names`` (default: all)."""
    names = list(ds.variables) if names is None else list(names)
    enc: dict[str, dict[str, Any]] = {}
    for name in names:
        var = ds.variables[name]
        if np.issubdtype(var.dtype, np.datetime64):
            enc[name] = dict(TIME_ENCODING)
            continue
        if name in ds.coords:
            continue
        e: dict[str, Any] = {"chunks": chunks_for(var.dims, var.shape), "compressors": compressors()}
        if var.dtype.kind == "f":
            e["_FillValue"] = np.nan
        elif var.dtype.kind in "iu":
            e["_FillValue"] = None  # every integer value is data (label 255 means "unknown")
        enc[name] = e
    return enc


# --- reading and checking ------------------------------------------------------

def _is_zip(path: str) -> bool:
    return str(path).lower().endswith(".zip")


def open_cube(path: str | Path, *, chunks: Any = "auto", validate: bool = True, storage_options: Mapping[str, Any] | None = None) -> xr.Dataset:
    """Open a cube lazily (dask), with its CRS, from a directory store, a fsspec URL or a ``.zarr.zip``.

    Raises :class:`CubeSchemaError` when the store is not a sarcube cube.
    """
    import rioxarray  # noqa: F401

    path_str = str(path)
    if "://" not in path_str and not Path(path_str).exists():
        raise InputError(f"cube {path_str!r} does not exist: build one with `sarcube build` or check the path")
    store: Any = path_str
    if _is_zip(path_str):
        from zarr.storage import ZipStore

        store = ZipStore(path_str, mode="r")
    kwargs: dict[str, Any] = {"decode_coords": "all", "chunks": {} if chunks == "auto" else chunks}
    if storage_options:
        kwargs["storage_options"] = dict(storage_options)
    try:
        ds = xr.open_zarr(store, zarr_format=3, **kwargs)
    except (FileNotFoundError, KeyError, ValueError) as err:
        raise CubeSchemaError(f"{path_str!r} is not a readable Zarr v3 cube ({err}); was it written by `sarcube build`?") from err
    # Per-time and per-pair coordinates are tiny: load them once, so code that
    # walks them never pays one dask compute per element. Strings as Python str.
    small = [name for name in (*TIME_COORDS, *PAIR_COORDS) if name in ds.coords]
    ds = ds.assign_coords({name: ds[name].load() for name in small})
    for name in (PLATFORM, ORBIT_STATE, ITEM_ID):
        if name in ds.coords:
            ds.coords[name] = ds.coords[name].astype(object)
    if validate:
        validate_cube(ds, source=path_str)
    return ds


def validate_cube(ds: xr.Dataset, *, source: str | None = None, require: Iterable[str] = ()) -> None:
    """Check ``ds`` against the contract; raise :class:`CubeSchemaError` naming the first problem.

    ``require`` lists variables a step needs (a missing one raises
    :class:`MissingVariableError`).
    """
    where = f"cube {source!r}" if source else "cube"
    missing_dims = [d for d in SPATIAL_DIMS if d not in ds.dims]
    if missing_dims:
        raise CubeSchemaError(f"{where}: missing dimension(s) {missing_dims}; a cube is gridded on (y, x)")
    if SPATIAL_REF not in ds.variables:
        raise CubeSchemaError(f"{where}: no {SPATIAL_REF!r} grid mapping; write it with schema.with_crs()")
    if "crs_wkt" not in ds[SPATIAL_REF].attrs:
        raise CubeSchemaError(f"{where}: {SPATIAL_REF!r} has no crs_wkt attribute")
    for dim in (X, Y):
        values = np.asarray(ds[dim].values)
        if values.size > 1:
            step = np.diff(values)
            if not np.allclose(step, step[0], rtol=1e-9, atol=1e-6):
                raise CubeSchemaError(f"{where}: coordinate {dim!r} is not regularly spaced")
    if TIME in ds.dims:
        times = ds[TIME].values
        if not np.issubdtype(times.dtype, np.datetime64):
            raise CubeSchemaError(f"{where}: coordinate 'time' must be datetime64, got {times.dtype}")
        if np.unique(times).size != times.size:
            raise CubeSchemaError(f"{where}: duplicate acquisition times on 'time'")
        for name in TIME_COORDS:
            if name not in ds.coords:
                raise CubeSchemaError(f"{where}: per-time coordinate {name!r} is missing")
    if PAIR in ds.dims:
        for name in PAIR_COORDS:
            if name not in ds.coords:
                raise CubeSchemaError(f"{where}: per-pair coordinate {name!r} is missing")
    for key in (ATTR_CONVENTIONS, ATTR_VERSION):
        if key not in ds.attrs:
            raise CubeSchemaError(f"{where}: global attribute {key!r} is missing")
    for name, var in ds.data_vars.items():
        if name == SPATIAL_REF:
            continue
        spec = spec_for(str(name), ds)
        grid_mapping = var.attrs.get("grid_mapping", var.encoding.get("grid_mapping"))
        if grid_mapping != SPATIAL_REF:
            raise CubeSchemaError(f"{where}: variable {name!r} has grid_mapping {grid_mapping!r}, expected {SPATIAL_REF!r}")
        if spec is None:
            continue  # external layers: checked for grid mapping only
        if tuple(var.dims) not in spec.dims:
            raise CubeSchemaError(f"{where}: variable {name!r} has dims {tuple(var.dims)}, expected one of {list(spec.dims)}")
        if np.dtype(var.dtype) != np.dtype(spec.dtype):
            raise CubeSchemaError(f"{where}: variable {name!r} has dtype {var.dtype}, expected {spec.dtype}")
        units = var.attrs.get("units")
        if units != spec.units:
            raise CubeSchemaError(f"{where}: variable {name!r} has units {units!r}, expected {spec.units!r}")
    require = list(require)
    absent = [name for name in require if name not in ds.data_vars]
    if absent:
        raise MissingVariableError(f"{where}: lacks variable(s) {absent}; {hint_for(absent)}")


#: which command makes each variable (used in error messages)
MAKERS: dict[str, str] = {
    VV: "sarcube build",
    VH: "sarcube build",
    DEM: "sarcube build",
    VV_RATIO: "sarcube features --ratio --summer START/END",
    VH_RATIO: "sarcube features --ratio --summer START/END",
    VV_DIFF: "sarcube features --pairs",
    VH_DIFF: "sarcube features --pairs",
    VVVH: "sarcube features --pairs",
    VV_BEFORE: "sarcube features --event-date DATE",
    VH_BEFORE: "sarcube features --event-date DATE",
    VV_AFTER: "sarcube features --event-date DATE",
    VH_AFTER: "sarcube features --event-date DATE",
    SLOPE: "sarcube features --terrain",
    ASPECT: "sarcube features --terrain",
    CURVATURE: "sarcube features --terrain",
    RELEASE: "sarcube features --terrain",
    PAR: "sarcube features --par",
    LABEL: "sarcube add-layer --labels FILE",
}


def hint_for(names: Iterable[str]) -> str:
    """'make them with ...' for missing variables."""
    makers = sorted({MAKERS.get(n, "sarcube add-layer --raster NAME FILES") for n in names})
    return "make them with " + " and ".join(f"`{m}`" for m in makers)


# --- provenance ----------------------------------------------------------------

def encode_json_attr(value: Any) -> str:
    """JSON text for a structured global attribute (aoi, collections, stac_items)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def decode_json_attr(ds: xr.Dataset | xr.DataArray, key: str, default: Any = None) -> Any:
    """The parsed value of a JSON attribute of a cube or a variable, ``default`` when absent.

    E.g. ``decode_json_attr(cube[PAR], ATTR_PARAMETERS, {})`` for the
    parameters a feature was computed with.
    """
    raw = ds.attrs.get(key)
    if raw is None:
        return default
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError as err:
        raise CubeSchemaError(f"attribute {key!r} is not valid JSON: {err}") from err


@dataclass(frozen=True)
class CubeSummary:
    """What ``sarcube info`` prints about a cube."""

    dims: dict[str, int]
    variables: list[tuple[str, tuple[str, ...], str, str, str]]  # name, dims, dtype, units, long_name
    time_range: tuple[str, str] | None
    acquisitions: list[dict[str, Any]] = field(default_factory=list)
    pairs: list[dict[str, Any]] = field(default_factory=list)
    crs: str = ""
    resolution: tuple[float, float] = (0.0, 0.0)
    bounds: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    attrs: dict[str, Any] = field(default_factory=dict)


def summarize(ds: xr.Dataset) -> CubeSummary:
    """Dims, variables with units, acquisitions, pairs, CRS and provenance of a cube."""
    variables = []
    for name, var in ds.data_vars.items():
        if name == SPATIAL_REF:
            continue
        variables.append((str(name), tuple(map(str, var.dims)), str(var.dtype), str(var.attrs.get("units", "")), str(var.attrs.get("long_name", ""))))
    time_range = None
    acquisitions: list[dict[str, Any]] = []
    if TIME in ds.dims and ds.sizes[TIME]:
        t = ds[TIME].values
        time_range = (str(np.datetime_as_string(t.min(), unit="s")), str(np.datetime_as_string(t.max(), unit="s")))
        for i in range(ds.sizes[TIME]):
            row = {TIME: str(np.datetime_as_string(t[i], unit="s"))}
            for name in (PLATFORM, ORBIT_STATE, RELATIVE_ORBIT):
                if name in ds.coords:
                    row[name] = ds[name].values[i].item() if hasattr(ds[name].values[i], "item") else ds[name].values[i]
            acquisitions.append(row)
    pairs: list[dict[str, Any]] = []
    if PAIR in ds.dims:
        for i in range(ds.sizes[PAIR]):
            row = {PAIR: int(ds[PAIR].values[i])}
            for name in (REFERENCE_TIME, ACTIVITY_TIME):
                if name in ds.coords:
                    row[name] = str(np.datetime_as_string(ds[name].values[i], unit="s"))
            if PAIR_RELATIVE_ORBIT in ds.coords:
                row[PAIR_RELATIVE_ORBIT] = int(ds[PAIR_RELATIVE_ORBIT].values[i])
            pairs.append(row)
    crs = ""
    if SPATIAL_REF in ds.variables:
        try:
            crs = ds.rio.crs.to_string() if ds.rio.crs else ""
        except Exception:  # pragma: no cover - rioxarray not registered
            crs = ds[SPATIAL_REF].attrs.get("crs_wkt", "")[:60]
    xs, ys = ds[X].values, ds[Y].values
    rx = float(xs[1] - xs[0]) if xs.size > 1 else 0.0
    ry = float(ys[1] - ys[0]) if ys.size > 1 else 0.0
    bounds = (
        float(xs.min() - abs(rx) / 2), float(ys.min() - abs(ry) / 2),
        float(xs.max() + abs(rx) / 2), float(ys.max() + abs(ry) / 2),
    )
    return CubeSummary(
        dims={str(k): int(v) for k, v in ds.sizes.items()},
        variables=variables,
        time_range=time_range,
        acquisitions=acquisitions,
        pairs=pairs,
        crs=crs,
        resolution=(abs(rx), abs(ry)),
        bounds=bounds,
        attrs=dict(ds.attrs),
    )


__all__ = [name for name in dir() if name.isupper()] + [
    "CubeSummary",
    "VariableSpec",
    "chunks_for",
    "compressors",
    "decode_json_attr",
    "empty_cube",
    "encode_json_attr",
    "encoding_for",
    "external_spec",
    "grid_coords",
    "hint_for",
    "is_prediction",
    "make_variable",
    "open_cube",
    "pair_coords",
    "prediction_name",
    "prediction_spec",
    "spec_for",
    "summarize",
    "time_coords",
    "validate_cube",
    "with_crs",
]
