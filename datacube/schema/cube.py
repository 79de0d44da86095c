"""Reading and checking cubes: open, validate against the contract, JSON attrs, summaries.

:func:`open_cube` opens a directory store, an fsspec URL or a ``.zarr.zip``;
:func:`validate_cube` names the first way a cube breaks the contract and, for
a missing variable, the command that makes it (:data:`MAKERS`).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from sarcube.datacube.schema.names import (
    ACTIVITY_TIME,
    ASPECT,
    ATTR_BUILD_PENDING,
    ATTR_CONVENTIONS,
    ATTR_ORBIT_KEY,
    ATTR_VERSION,
    CURVATURE,
    DEM,
    ITEM_ID,
    LABEL,
    ORBIT,
    ORBIT_KEYS,
    ORBIT_STATE,
    PAIR,
    PAIR_COORDS,
    PAIR_RELATIVE_ORBIT,
    PAR,
    PLATFORM,
    REFERENCE_TIME,
    RELATIVE_ORBIT,
    RELEASE,
    SLOPE,
    SPATIAL_DIMS,
    SPATIAL_REF,
    TIME,
    TIME_COORDS,
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
from sarcube.datacube.schema.variables import spec_for, typed_cf_attrs
from sarcube.errors import CubeSchemaError, InputError, MissingVariableError, UnfinishedCubeError

# --- reading and checking ------------------------------------------------------

def _is_zip(path: str) -> bool:
    return str(path).lower().endswith(".zip")


def _check_arrays_present(path: str, ds: xr.Dataset) -> None:
    """Every array the consolidated metadata lists still has its own metadata in a local directory store.

    Consolidated metadata outlives a deleted array folder; reading it then gives fill values (NaN)
    silently, so a step would compute on nothing.
    """
    root = Path(path)
    if "://" in path or not root.is_dir():
        return
    gone = [str(name) for name in ds.variables if not (root / str(name) / "zarr.json").is_file()]
    if gone:
        raise CubeSchemaError(
            f"cube {path!r}: its metadata lists {gone} but their arrays are gone from the store: "
            "restore the cube from a copy or rebuild it (`sarcube build ... --overwrite`)"
        )


def open_cube(
    path: str | Path,
    *,
    chunks: Any = "auto",
    validate: bool = True,
    storage_options: Mapping[str, Any] | None = None,
    allow_unfinished: bool = False,
) -> xr.Dataset:
    """Open a cube lazily (dask), with its CRS, from a directory store, a fsspec URL or a ``.zarr.zip``.

    Raises :class:`CubeSchemaError` when the store is not a sarcube cube, and
    (validating) :class:`UnfinishedCubeError` for an unfinished build unless
    ``allow_unfinished``.
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
    except zipfile.BadZipFile as err:
        raise CubeSchemaError(
            f"{path_str!r} is not a readable zip ({err}): download or publish the archive again"
        ) from err
    except (FileNotFoundError, KeyError, ValueError) as err:
        raise CubeSchemaError(
            f"{path_str!r} is not a readable Zarr v3 cube ({err}); was it written by `sarcube build`?"
        ) from err
    _check_arrays_present(path_str, ds)
    # Per-time and per-pair coordinates are tiny: load them once, so code that
    # walks them never pays one dask compute per element. Strings as Python str.
    small = [name for name in (*TIME_COORDS, *PAIR_COORDS) if name in ds.coords]
    ds = ds.assign_coords({name: ds[name].load() for name in small})
    for name in (PLATFORM, ORBIT_STATE, ITEM_ID):
        if name in ds.coords:
            ds.coords[name] = ds.coords[name].astype(object)
    _restore_cf_types(ds)
    if validate:
        validate_cube(ds, source=path_str, allow_unfinished=allow_unfinished)
    return ds


def _restore_cf_types(ds: xr.Dataset) -> None:
    """In place: CF attrs typed like their variable again (JSON lost it), no fill value on x/y coordinates.

    So ``open_cube(path).to_netcdf(...)`` gives a file that passes ``cf:1.10``.
    """
    for var in ds.data_vars.values():
        var.attrs = typed_cf_attrs(var.attrs, var.dtype)
    for dim in (X, Y):
        if dim in ds.variables:
            ds[dim].encoding["_FillValue"] = None


def pending_steps(ds: xr.Dataset) -> list[str] | None:
    """The steps an unfinished build has still to write (acquisition times, ISO seconds, or the DEM).

    None when the build finished.
    """
    raw = ds.attrs.get(ATTR_BUILD_PENDING)
    if raw is None:
        return None
    try:
        steps = json.loads(raw)
    except (TypeError, ValueError):
        return ["?"]
    return [str(s) for s in steps] if isinstance(steps, list) else ["?"]


def validate_cube(
    ds: xr.Dataset,
    *,
    source: str | None = None,
    require: Iterable[str] = (),
    ignore: Iterable[str] = (),
    allow_unfinished: bool = False,
) -> None:
    """Check ``ds`` against the contract; raise :class:`CubeSchemaError` naming the first problem.

    ``require`` lists variables a step needs (a missing one raises
    :class:`MissingVariableError`); ``ignore`` variables the step is about to
    replace (their dims, dtype and units are not checked, so a layer made by an
    older sarcube can be recomputed). An unfinished build (a cube whose
    acquisitions are not all written yet) raises :class:`UnfinishedCubeError`
    unless ``allow_unfinished``.
    """
    where = f"cube {source!r}" if source else "cube"
    pending = pending_steps(ds)
    if pending is not None and not allow_unfinished:
        raise UnfinishedCubeError(
            f"{where} is unfinished ({len(pending)} step(s) of its build not written): rerun the same build command"
        )
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
    if ORBIT in ds.dims:
        key = ds[ORBIT].attrs.get(ATTR_ORBIT_KEY)
        if key not in ORBIT_KEYS:
            raise CubeSchemaError(
                f"{where}: coordinate {ORBIT!r} has {ATTR_ORBIT_KEY}={key!r}, expected one of {list(ORBIT_KEYS)}"
            )
    for key in (ATTR_CONVENTIONS, ATTR_VERSION):
        if key not in ds.attrs:
            raise CubeSchemaError(f"{where}: global attribute {key!r} is missing")
    ignore = set(ignore)
    for name, var in ds.data_vars.items():
        if name == SPATIAL_REF:
            continue
        spec = None if name in ignore else spec_for(str(name), ds)
        grid_mapping = var.attrs.get("grid_mapping", var.encoding.get("grid_mapping"))
        if grid_mapping != SPATIAL_REF:
            raise CubeSchemaError(
                f"{where}: variable {name!r} has grid_mapping {grid_mapping!r}, expected {SPATIAL_REF!r}"
            )
        if spec is None:
            continue  # external layers: checked for grid mapping only
        if tuple(var.dims) not in spec.dims:
            fix = f": recompute it with `{MAKERS[str(name)]}`" if str(name) in MAKERS else ""
            raise CubeSchemaError(
                f"{where}: variable {name!r} has dims {tuple(var.dims)}, expected one of {list(spec.dims)}{fix}"
            )
        if np.dtype(var.dtype) != np.dtype(spec.dtype):
            raise CubeSchemaError(f"{where}: variable {name!r} has dtype {var.dtype}, expected {spec.dtype}")
        units = var.attrs.get("units")
        if units != spec.units:
            raise CubeSchemaError(f"{where}: variable {name!r} has units {units!r}, expected {spec.units!r}")
    require = list(require)
    absent = [name for name in require if name not in ds.data_vars]
    if absent:
        raise MissingVariableError(f"{where}: lacks variable(s) {absent}; {hint_for(absent)}")


def orbit_key(ds: xr.Dataset) -> str:
    """The key (``relative_orbit`` or ``orbit_state``) the values of the cube's ``orbit`` coordinate are."""
    if ORBIT not in ds.coords:
        raise MissingVariableError(f"the cube has no per-orbit layers; {hint_for([VV_BEFORE])}")
    return str(ds[ORBIT].attrs.get(ATTR_ORBIT_KEY, RELATIVE_ORBIT))


def orbit_members(ds: xr.Dataset, key: str, value: Any) -> np.ndarray:
    """(time,) bool: the acquisitions whose ``key`` coordinate (relative orbit or pass direction) is ``value``."""
    if key not in ORBIT_KEYS:
        raise InputError(f"orbit key {key!r} unknown: use one of {', '.join(ORBIT_KEYS)}")
    return np.asarray([str(v) == str(value) for v in ds[key].values.tolist()], dtype=bool)


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
        variables.append(
            (
                str(name),
                tuple(map(str, var.dims)),
                str(var.dtype),
                str(var.attrs.get("units", "")),
                str(var.attrs.get("long_name", "")),
            )
        )
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


__all__ = [
    "MAKERS",
    "CubeSummary",
    "decode_json_attr",
    "encode_json_attr",
    "hint_for",
    "open_cube",
    "orbit_key",
    "orbit_members",
    "pending_steps",
    "summarize",
    "validate_cube",
]
