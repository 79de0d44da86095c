"""Writing cubes: whole stores, variables added all or nothing, build templates, region writes, attrs.

Readers see a cube through its consolidated metadata. :func:`add_variables`
writes new or recomputed variables into the store's staging group first (a
dask-backed one region by region, :func:`write_regions`, so memory is bounded by
the chunks and not by the area) and moves them in only once every chunk is on disk (see
:mod:`~sarcube.datacube.staging`), so a failure at any point leaves the cube
exactly as it was. Global attrs are rewritten together with the consolidated
metadata in one write. Every write here holds the cube's writer lock
(:mod:`~sarcube.datacube.lock`), so attribute updates are read-modify-write
under it. Works on local paths and on fsspec URLs (``s3://``,
``memory://``...).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import xarray as xr

from sarcube.datacube import lock, schema, staging, zarrio
from sarcube.errors import CubeExistsError, CubeSchemaError, InputError

log = logging.getLogger(__name__)


@lock.locked
def write_cube(
    ds: xr.Dataset,
    path: str | Path,
    *,
    overwrite: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    compute: bool = True,
) -> Any:
    """Write a whole cube (new store) with the contract's encodings.

    Refuses an existing store unless ``overwrite``. With ``compute=False``
    returns the dask delayed write (for progress bars).
    """
    if zarrio.exists(path, storage_options):
        if not overwrite:
            raise CubeExistsError(
                f"output {str(path)!r} exists: pass --overwrite to replace it or --append to extend it"
            )
        zarrio.remove(path, storage_options)
    ds = zarrio.strip_stale_encoding(ds)
    with zarrio.quiet_zarr_warnings():
        return ds.to_zarr(
            str(path),
            mode="w",
            zarr_format=3,
            consolidated=True,
            encoding=schema.encoding_for(ds),
            compute=compute,
            storage_options=dict(storage_options) if storage_options else None,
        )


def _existing_arrays(path: str | Path, storage_options: Mapping[str, Any] | None) -> set[str]:
    import zarr

    with zarrio.quiet_zarr_warnings():
        zstore = zarrio.zarr_store(path, storage_options, read_only=True)
        group = zarr.open_group(zstore, mode="r", zarr_format=3, use_consolidated=False)
        return set(group.array_keys())


@lock.locked
def add_variables(
    path: str | Path,
    variables: Mapping[str, xr.DataArray] | xr.Dataset,
    *,
    overwrite: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    new_coords: Mapping[str, xr.DataArray] | None = None,
    replace_coords: bool = False,
    drop: Iterable[str] = (),
) -> list[str]:
    """Add (or with ``overwrite`` replace) data variables in an existing cube, all or nothing.

    Each variable must already follow the contract (see
    :func:`schema.make_variable`) and share the cube's grid. ``new_coords``
    are non-spatial coordinates the variables bring along (e.g. the ``pair``
    coordinates); they must agree with any already stored unless
    ``replace_coords``, which replaces them (e.g. recomputed pairs): every
    stored variable on their dimension must then be written too or named in
    ``drop`` (removed in the same promotion step).
    Returns the names written.
    """
    if not zarrio.exists(path, storage_options):
        raise InputError(f"cube {str(path)!r} does not exist: build one with `sarcube build` first")
    variables = dict(variables.data_vars.items()) if isinstance(variables, xr.Dataset) else dict(variables)
    staging.clean_staging(path, storage_options)
    existing = _existing_arrays(path, storage_options)
    clash = sorted(n for n in variables if n in existing)
    if clash and not overwrite:
        raise CubeExistsError(f"cube {str(path)!r} already has {clash}: pass --overwrite to recompute them")

    current = schema.open_cube(path, validate=False, storage_options=storage_options)
    for name, var in variables.items():
        _check_fits(current, name, var)

    ds = xr.Dataset({name: var.rename(name) for name, var in variables.items()})
    ds = ds.drop_vars([c for c in ds.coords if c not in schema.SPATIAL_DIMS], errors="ignore")
    promoted = list(variables)
    drop = [n for n in drop if n in existing and n not in variables]
    replaced_dims: set[str] = set()
    for cname, coord in (new_coords or {}).items():
        if cname in current.coords:
            if not _same_values(coord, current[cname]):
                if not replace_coords:
                    raise CubeSchemaError(
                        f"coordinate {cname!r} differs from the cube's; recompute the layers that use it together"
                    )
                ds = ds.assign_coords({cname: coord})
                promoted.append(cname)
                replaced_dims.update(current[cname].dims)
        else:
            ds = ds.assign_coords({cname: coord})
            promoted.append(cname)
    stranded = sorted(
        str(n) for n, v in current.data_vars.items()
        if replaced_dims & set(v.dims) and n not in variables and n not in drop
    )
    if stranded:
        raise CubeSchemaError(
            f"replacing {sorted(replaced_dims)} would strand {stranded} on the old coordinates: rewrite or drop them "
            "too"
        )
    # x/y already live in the cube: keep them out of the staged arrays.
    ds = ds.drop_vars([d for d in schema.SPATIAL_DIMS if d in ds.variables])
    ds = zarrio.strip_stale_encoding(ds)
    # Each staged variable names the cube's coordinates on its dims (CF `coordinates`),
    # so they stay coordinates when the variables that named them before are replaced.
    for name in variables:
        linked = sorted(
            str(c)
            for c, coord in {**current.coords, **ds.coords}.items()
            if c not in schema.SPATIAL_DIMS
            and c not in coord.dims
            and coord.dims
            and set(coord.dims) <= set(ds[name].dims)
        )
        if linked:
            ds[name].encoding["coordinates"] = " ".join(linked)
    group = f"{staging.STAGING_GROUP}/{staging.ADD_GROUP}"
    with zarrio.quiet_zarr_warnings():
        ds.to_zarr(
            str(path),
            group=group,
            mode="w",
            zarr_format=3,
            consolidated=False,
            compute=False,  # metadata and in-memory arrays now; the dask-backed ones region by region below
            encoding=schema.encoding_for(ds, codec=schema.codec_of(current.attrs)),
            storage_options=dict(storage_options) if storage_options else None,
        )
    for names, region in write_regions(ds):
        write_region(ds[names].isel(region), path, region, group=group, storage_options=storage_options)
    staging.promote_added(path, promoted, storage_options, drop=drop)
    zarrio.consolidate(path, storage_options)
    log.info("wrote %s into %s", ", ".join(variables), path)
    return list(variables)


def _same_values(a: xr.DataArray, b: xr.DataArray) -> bool:
    try:
        return a.shape == b.shape and bool((a.values == b.values).all())
    except (TypeError, ValueError):
        return False


def _check_fits(cube: xr.Dataset, name: str, var: xr.DataArray) -> None:
    for dim in schema.SPATIAL_DIMS:
        if dim not in var.dims:
            raise CubeSchemaError(f"variable {name!r} lacks dimension {dim!r}")
        if var.sizes[dim] != cube.sizes[dim]:
            raise CubeSchemaError(
                f"variable {name!r} has {dim}={var.sizes[dim]}, the cube has {cube.sizes[dim]}: reproject it onto the "
                "cube grid first"
            )
        if dim in var.coords and not _same_values(var[dim], cube[dim]):
            raise CubeSchemaError(f"variable {name!r} is on another {dim!r} grid than the cube")
    if var.attrs.get("grid_mapping") != schema.SPATIAL_REF:
        raise CubeSchemaError(
            f"variable {name!r} has no grid_mapping={schema.SPATIAL_REF!r}: build it with schema.make_variable()"
        )


@lock.locked
def remove_variables(path: str | Path, names: list[str], storage_options: Mapping[str, Any] | None = None) -> None:
    """Delete variables from a cube and reconsolidate."""
    fs, root = zarrio.fs_and_root(path, storage_options)
    existing = _existing_arrays(path, storage_options)
    for name in names:
        if name in existing:
            zarrio.remove_tree(fs, f"{root}/{name}")
    zarrio.consolidate(path, storage_options)


@lock.locked
def _rewrite_root_attrs(path: str | Path, edit: Any, storage_options: Mapping[str, Any] | None) -> None:
    """Apply ``edit(attributes_dict)`` to the root group's attributes in one write.

    The root ``zarr.json`` holds both the global attributes and the
    consolidated metadata; rewriting it whole (a temporary file renamed over
    it locally, one object PUT on object stores) means a reader or a killed
    process never sees attrs without consolidated metadata or the reverse.
    """
    import json

    fs, root = zarrio.fs_and_root(path, storage_options)
    meta_path = f"{root}/zarr.json"
    meta = json.loads(fs.cat_file(meta_path))
    attributes = dict(meta.get("attributes", {}))
    edit(attributes)
    meta["attributes"] = attributes
    payload = json.dumps(meta, indent=2, allow_nan=True).encode()
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    if "file" in protocols:
        tmp = f"{meta_path}.{staging.TRASH_PREFIX}tmp"
        fs.pipe_file(tmp, payload)
        fs.mv(tmp, meta_path)
    else:
        fs.pipe_file(meta_path, payload)


def update_attrs(path: str | Path, attrs: Mapping[str, Any], storage_options: Mapping[str, Any] | None = None) -> None:
    """Merge global attributes (e.g. append to ``history``), keeping the consolidated metadata valid."""
    _rewrite_root_attrs(path, lambda current: current.update(dict(attrs)), storage_options)


@lock.locked
def update_variable_attrs(
    path: str | Path, name: str, attrs: Mapping[str, Any], storage_options: Mapping[str, Any] | None = None
) -> None:
    """Merge ``attrs`` into variable ``name``'s attributes (its values untouched), then reconsolidate."""
    import zarr

    with zarrio.quiet_zarr_warnings():
        array = zarr.open_array(zarrio.zarr_store(path, storage_options), path=name, mode="r+", zarr_format=3)
        array.attrs.update(dict(attrs))
    zarrio.consolidate(path, storage_options)


def remove_attrs(
    path: str | Path, keys: list[str] | tuple[str, ...], storage_options: Mapping[str, Any] | None = None
) -> None:
    """Delete global attributes (absent ones are ignored), keeping the consolidated metadata valid."""

    def drop(current: dict[str, Any]) -> None:
        for key in keys:
            current.pop(key, None)

    _rewrite_root_attrs(path, drop, storage_options)


@lock.locked
def append_history(path: str | Path, line: str, storage_options: Mapping[str, Any] | None = None) -> None:
    """Append a dated line to the cube's ``history`` attribute (CF)."""
    import datetime as _dt

    ds = schema.open_cube(path, validate=False, storage_options=storage_options)
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    history = ds.attrs.get(schema.ATTR_HISTORY, "")
    new = f"{history}\n{stamp} {line}" if history else f"{stamp} {line}"
    update_attrs(path, {schema.ATTR_HISTORY: new}, storage_options)


# --- cubes written time step by time step (``sarcube build``) --------------------
#
# A build first writes the whole store's metadata (every time step, the grid,
# the attrs) with its dask-backed variables left unwritten: their chunks read
# as the fill value (NaN) until a region write fills them. Each finished time
# step is then written by region (whole chunks) and recorded by its caller;
# ``append_template`` grows the ``time`` dimension the same way.


@lock.locked
def create_template(ds: xr.Dataset, path: str | Path, *, storage_options: Mapping[str, Any] | None = None) -> None:
    """Write a new store: coords, attrs, numpy variables and metadata; dask variables stay unwritten (NaN)."""
    if zarrio.exists(path, storage_options):
        raise CubeExistsError(f"output {str(path)!r} exists: pass --overwrite to replace it or --append to extend it")
    ds = zarrio.strip_stale_encoding(ds)
    with zarrio.quiet_zarr_warnings():
        ds.to_zarr(
            str(path),
            mode="w",
            zarr_format=3,
            consolidated=False,
            compute=False,  # only the metadata and non-dask arrays are written
            encoding=schema.encoding_for(ds),
            storage_options=dict(storage_options) if storage_options else None,
        )
    zarrio.consolidate(path, storage_options)


@lock.locked
def append_template(
    ds: xr.Dataset, path: str | Path, *, dim: str = schema.TIME, storage_options: Mapping[str, Any] | None = None
) -> None:
    """Grow ``dim`` of an existing store by ``ds``'s coordinates; its dask variables stay unwritten (NaN)."""
    import numpy as np

    ds = zarrio.strip_stale_encoding(ds)
    encoding = {
        name: enc
        for name, enc in schema.encoding_for(ds).items()
        if np.issubdtype(ds.variables[name].dtype, np.datetime64)
    }
    existing = _existing_arrays(path, storage_options)
    encoding = {name: enc for name, enc in encoding.items() if name not in existing}
    ds.attrs = dict(
        schema.open_cube(path, validate=False, storage_options=storage_options).attrs
    )  # append keeps the cube's attrs
    with zarrio.quiet_zarr_warnings():
        ds.to_zarr(
            str(path),
            mode="a",
            append_dim=dim,
            zarr_format=3,
            consolidated=False,
            compute=False,
            encoding=encoding or None,
            storage_options=dict(storage_options) if storage_options else None,
        )
    zarrio.consolidate(path, storage_options)


#: side (px) of the spatial tiles :func:`add_variables` writes one at a time: whole storage chunks
REGION_YX = 4 * schema.CHUNK_YX


def write_regions(ds: xr.Dataset, tile: int | None = None) -> list[tuple[list[str], dict[str, slice]]]:
    """The pieces :func:`add_variables` computes and writes one after another: memory bounded by ``tile``, not the area.

    Each piece is (names, region): the dask-backed variables of one set of dims at
    one index of every non-spatial dim (one pair, time step, orbit) and one tile
    of at most ``tile`` x ``tile`` px (default :data:`REGION_YX`). Variables of the same dims are computed
    together (they share inputs, e.g. ``vv_diff`` and ``vvvh``), a tile's inputs
    are read for it alone, and region starts lie on the storage chunk grid.
    """
    import itertools

    import dask.array as dsa

    tile = tile or REGION_YX
    by_dims: dict[tuple[str, ...], list[str]] = {}
    for name, var in ds.data_vars.items():
        if isinstance(var.data, dsa.Array):
            by_dims.setdefault(tuple(str(d) for d in var.dims), []).append(str(name))
    pieces = []
    for dims, names in by_dims.items():
        step = [tile if d in schema.SPATIAL_DIMS else 1 for d in dims]
        for starts in itertools.product(*(range(0, ds.sizes[d], k) for d, k in zip(dims, step, strict=True))):
            region = {
                d: slice(s, min(s + k, ds.sizes[d])) for d, s, k in zip(dims, starts, step, strict=True)
            }
            pieces.append((names, region))
    return pieces


@lock.locked
def write_region(
    ds: xr.Dataset,
    path: str | Path,
    region: Mapping[str, slice],
    *,
    group: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    compute: bool = True,
) -> Any:
    """Write the data variables of ``ds`` into ``region`` of an existing store (chunk-aligned; metadata untouched).

    ``group``: a sub-group of the store (a staging group). With ``compute=False``
    returns the dask delayed write.
    """
    ds = ds.drop_vars([c for c in ds.coords])
    for var in ds.variables.values():
        var.encoding = {}
    with zarrio.quiet_zarr_warnings():
        return ds.to_zarr(
            str(path),
            mode="r+",
            group=group,
            region=dict(region),
            zarr_format=3,
            consolidated=False,
            compute=compute,
            storage_options=dict(storage_options) if storage_options else None,
        )



__all__ = [
    "add_variables",
    "append_history",
    "append_template",
    "create_template",
    "remove_attrs",
    "remove_variables",
    "update_attrs",
    "write_cube",
    "write_region",
    "write_regions",
]
