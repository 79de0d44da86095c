"""Building the contract's arrays: variables, coordinates and empty cubes, and the Zarr encoding of each.

:func:`make_variable` gives a DataArray the dtype, CF attrs and grid mapping
of its :class:`~sarcube.datacube.schema.VariableSpec`; ``grid_coords``,
``time_coords``, ``pair_coords`` and ``orbit_coords`` the contract's
coordinates; ``chunks_for``/``encoding_for`` the storage every writer uses.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import xarray as xr

from sarcube.datacube.schema.names import (
    ACTIVITY_TIME,
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
    DEFAULT_CODEC,
    GZIP_LEVEL,
    ITEM_ID,
    ORBIT,
    ORBIT_KEYS,
    ORBIT_STATE,
    PAIR,
    PAIR_RELATIVE_ORBIT,
    PLATFORM,
    REFERENCE_TIME,
    RELATIVE_ORBIT,
    SPATIAL_REF,
    STACK_DIMS,
    TIME,
    TIME_ENCODING,
    ZSTD_LEVEL,
    X,
    Y,
)
from sarcube.datacube.schema.variables import VariableSpec, spec_for
from sarcube.errors import CubeSchemaError, InputError


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
    "chunks_for",
    "codec_of",
    "compressors",
    "empty_cube",
    "encoding_for",
    "grid_coords",
    "make_variable",
    "orbit_coords",
    "pair_coords",
    "time_coords",
    "with_crs",
]
