"""Zarr store I/O for cubes: create, add variables all-or-nothing, reconsolidate.

Readers see a cube through its consolidated metadata. A new or recomputed
variable is first written into a staging sub-group of the store (which no
reader of the cube's root group sees, and which leaves the root metadata
untouched); only when every chunk is on disk is each array moved into place
and the metadata reconsolidated. A failure at any point leaves
the cube exactly as it was (a stale staging array is removed on the next
write). Works on local paths and on fsspec URLs (``s3://``, ``memory://``...).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import xarray as xr
from sarcube.datacube import schema

from sarcube.errors import CubeExistsError, CubeSchemaError, InputError

log = logging.getLogger(__name__)

#: sub-group where new arrays are written before they are moved into the cube
STAGING_GROUP = "sarcube-staging"
#: add_variables' own corner of the staging group; predict stages resumable
#: arrays beside it (``STAGING_GROUP/<name>/<name>``), which it never touches
ADD_GROUP = "_add"
TRASH_PREFIX = "sarcube-trash-"


@contextmanager
def quiet_zarr_warnings() -> Iterator[None]:
    """Silence zarr's notes on consolidated metadata and vlen strings in v3 (both deliberate)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification.*")
        warnings.filterwarnings("ignore", category=UserWarning, module="zarr")
        yield


def _fs_and_root(path: str | Path, storage_options: Mapping[str, Any] | None = None) -> tuple[Any, str]:
    import fsspec

    fs, root = fsspec.core.url_to_fs(str(path), **dict(storage_options or {}))
    return fs, root.rstrip("/")


def zarr_store(path: str | Path, storage_options: Mapping[str, Any] | None = None, *, read_only: bool = False) -> Any:
    """A zarr store object for a local path or an fsspec URL."""
    from zarr.storage import FsspecStore, LocalStore

    if "://" in str(path) and not str(path).startswith("file://"):
        return FsspecStore.from_url(str(path), storage_options=dict(storage_options or {}), read_only=read_only)
    return LocalStore(str(path).removeprefix("file://"), read_only=read_only)


def exists(path: str | Path, storage_options: Mapping[str, Any] | None = None) -> bool:
    """True when a Zarr store (its root ``zarr.json``) exists at ``path``."""
    fs, root = _fs_and_root(path, storage_options)
    return fs.exists(f"{root}/zarr.json")


def remove(path: str | Path, storage_options: Mapping[str, Any] | None = None) -> None:
    """Delete a whole store."""
    fs, root = _fs_and_root(path, storage_options)
    if fs.exists(root):
        fs.rm(root, recursive=True)


def consolidate(path: str | Path, storage_options: Mapping[str, Any] | None = None) -> None:
    """Rewrite the consolidated metadata so readers see the store's current arrays."""
    import zarr

    with quiet_zarr_warnings():
        zarr.consolidate_metadata(zarr_store(path, storage_options), zarr_format=3)


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
    if exists(path, storage_options):
        if not overwrite:
            raise CubeExistsError(f"output {str(path)!r} exists: pass --overwrite to replace it or --append to extend it")
        remove(path, storage_options)
    ds = _strip_stale_encoding(ds)
    with quiet_zarr_warnings():
        return ds.to_zarr(
            str(path),
            mode="w",
            zarr_format=3,
            consolidated=True,
            encoding=schema.encoding_for(ds),
            compute=compute,
            storage_options=dict(storage_options) if storage_options else None,
        )


def _strip_stale_encoding(ds: xr.Dataset) -> xr.Dataset:
    """Drop encodings inherited from a source store (chunks, codecs) so ours apply,
    and align dask chunks with the storage chunks (each zarr chunk written once)."""
    ds = ds.copy()
    for var in ds.variables.values():
        for key in ("chunks", "preferred_chunks", "compressors", "compressor", "filters", "shards", "serializer", "fill_value", "_FillValue", "dtype", "units", "calendar"):
            var.encoding.pop(key, None)
    for name in list(ds.data_vars):
        var = ds[name]
        if var.chunks is not None:
            storage = schema.chunks_for(var.dims, var.shape)
            if any(any(c % s for c in cs[:-1]) for cs, s in zip(var.chunks, storage, strict=True)):
                ds[name] = var.chunk(dict(zip(var.dims, storage, strict=True)))
    return ds


def _existing_arrays(path: str | Path, storage_options: Mapping[str, Any] | None) -> set[str]:
    import zarr

    with quiet_zarr_warnings():
        group = zarr.open_group(zarr_store(path, storage_options, read_only=True), mode="r", zarr_format=3, use_consolidated=False)
        return set(group.array_keys())


def clean_staging(path: str | Path, storage_options: Mapping[str, Any] | None = None) -> list[str]:
    """Remove what an interrupted :func:`add_variables` left (its staging, trash); returns what was removed.

    Resumable stagings of :func:`stage_array` (an interrupted predict) are kept.
    """
    fs, root = _fs_and_root(path, storage_options)
    removed = []
    for entry in fs.ls(root, detail=False):
        name = entry.rstrip("/").rsplit("/", 1)[-1]
        if name.startswith(TRASH_PREFIX):
            fs.rm(f"{root}/{name}", recursive=True)
            removed.append(name)
    if fs.exists(f"{root}/{STAGING_GROUP}/{ADD_GROUP}"):
        fs.rm(f"{root}/{STAGING_GROUP}/{ADD_GROUP}", recursive=True)
        removed.append(f"{STAGING_GROUP}/{ADD_GROUP}")
    _drop_empty_staging_group(fs, root)
    if removed:
        log.info("removed stale staging data %s from %s", removed, path)
    return removed


def _drop_empty_staging_group(fs: Any, root: str) -> None:
    """Remove the staging group once nothing but its own metadata is left in it."""
    group = f"{root}/{STAGING_GROUP}"
    if fs.exists(group):
        left = [e.rstrip("/").rsplit("/", 1)[-1] for e in fs.ls(group, detail=False)]
        if all(e == "zarr.json" for e in left):
            fs.rm(group, recursive=True)


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
    if not exists(path, storage_options):
        raise InputError(f"cube {str(path)!r} does not exist: build one with `sarcube build` first")
    variables = dict(variables.data_vars.items()) if isinstance(variables, xr.Dataset) else dict(variables)
    clean_staging(path, storage_options)
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
                    raise CubeSchemaError(f"coordinate {cname!r} differs from the cube's; recompute the layers that use it together")
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
        raise CubeSchemaError(f"replacing {sorted(replaced_dims)} would strand {stranded} on the old coordinates: rewrite or drop them too")
    # x/y already live in the cube: keep them out of the staged arrays.
    ds = ds.drop_vars([d for d in schema.SPATIAL_DIMS if d in ds.variables])
    ds = _strip_stale_encoding(ds)
    # Each staged variable names the cube's coordinates on its dims (CF `coordinates`),
    # so they stay coordinates when the variables that named them before are replaced.
    for name in variables:
        linked = sorted(
            str(c) for c, coord in {**current.coords, **ds.coords}.items()
            if c not in schema.SPATIAL_DIMS and c not in coord.dims and coord.dims and set(coord.dims) <= set(ds[name].dims)
        )
        if linked:
            ds[name].encoding["coordinates"] = " ".join(linked)
    with quiet_zarr_warnings():
        ds.to_zarr(
            str(path),
            group=f"{STAGING_GROUP}/{ADD_GROUP}",
            mode="w",
            zarr_format=3,
            consolidated=False,
            encoding=schema.encoding_for(ds),
            storage_options=dict(storage_options) if storage_options else None,
        )
    _promote(path, promoted, storage_options, drop=drop)
    consolidate(path, storage_options)
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
            raise CubeSchemaError(f"variable {name!r} has {dim}={var.sizes[dim]}, the cube has {cube.sizes[dim]}: reproject it onto the cube grid first")
        if dim in var.coords and not _same_values(var[dim], cube[dim]):
            raise CubeSchemaError(f"variable {name!r} is on another {dim!r} grid than the cube")
    if var.attrs.get("grid_mapping") != schema.SPATIAL_REF:
        raise CubeSchemaError(f"variable {name!r} has no grid_mapping={schema.SPATIAL_REF!r}: build it with schema.make_variable()")


def _promote(path: str | Path, names: list[str], storage_options: Mapping[str, Any] | None, drop: Iterable[str] = ()) -> None:
    """Move staged arrays into place (the old version, if any, to trash first), remove ``drop``, then the staging group."""
    fs, root = _fs_and_root(path, storage_options)
    for name in drop:
        fs.mv(f"{root}/{name}", f"{root}/{TRASH_PREFIX}{name}", recursive=True)
    for name in names:
        final = f"{root}/{name}"
        staged = f"{root}/{STAGING_GROUP}/{ADD_GROUP}/{name}"
        trash = f"{root}/{TRASH_PREFIX}{name}"
        if fs.exists(final):
            fs.mv(final, trash, recursive=True)
        fs.mv(staged, final, recursive=True)
        if fs.exists(trash):
            fs.rm(trash, recursive=True)
    for name in drop:
        fs.rm(f"{root}/{TRASH_PREFIX}{name}", recursive=True)
    fs.rm(f"{root}/{STAGING_GROUP}/{ADD_GROUP}", recursive=True)
    _drop_empty_staging_group(fs, root)


def remove_variables(path: str | Path, names: list[str], storage_options: Mapping[str, Any] | None = None) -> None:
    """Delete variables from a cube and reconsolidate."""
    fs, root = _fs_and_root(path, storage_options)
    existing = _existing_arrays(path, storage_options)
    for name in names:
        if name in existing:
            fs.rm(f"{root}/{name}", recursive=True)
    consolidate(path, storage_options)


def _rewrite_root_attrs(path: str | Path, edit: Any, storage_options: Mapping[str, Any] | None) -> None:
    """Apply ``edit(attributes_dict)`` to the root group's attributes in one write.

    The root ``zarr.json`` holds both the global attributes and the
    consolidated metadata; rewriting it whole (a temporary file renamed over
    it locally, one object PUT on object stores) means a reader or a killed
    process never sees attrs without consolidated metadata or the reverse.
    """
    import json

    fs, root = _fs_and_root(path, storage_options)
    meta_path = f"{root}/zarr.json"
    meta = json.loads(fs.cat_file(meta_path))
    attributes = dict(meta.get("attributes", {}))
    edit(attributes)
    meta["attributes"] = attributes
    payload = json.dumps(meta, indent=2, allow_nan=True).encode()
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    if "file" in protocols:
        tmp = f"{meta_path}.{TRASH_PREFIX}tmp"
        fs.pipe_file(tmp, payload)
        fs.mv(tmp, meta_path)
    else:
        fs.pipe_file(meta_path, payload)


def update_attrs(path: str | Path, attrs: Mapping[str, Any], storage_options: Mapping[str, Any] | None = None) -> None:
    """Merge global attributes (e.g. append to ``history``), keeping the consolidated metadata valid."""
    _rewrite_root_attrs(path, lambda current: current.update(dict(attrs)), storage_options)


def append_history(path: str | Path, line: str, storage_options: Mapping[str, Any] | None = None) -> None:
    """Append a dated line to the cube's ``history`` attribute (CF)."""
    import datetime as _dt

    ds = schema.open_cube(path, validate=False, storage_options=storage_options)
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    history = ds.attrs.get(schema.ATTR_HISTORY, "")
    new = f"{history}\n{stamp} {line}" if history else f"{stamp} {line}"
    update_attrs(path, {schema.ATTR_HISTORY: new}, storage_options)


def size_on_disk(path: str | Path, storage_options: Mapping[str, Any] | None = None) -> int:
    """Bytes of all objects in the store (or of the zip file)."""
    fs, root = _fs_and_root(path, storage_options)
    if fs.isfile(root):
        return int(fs.size(root))
    return int(sum(fs.du(root, total=False).values())) if fs.exists(root) else 0


# --- resumable region writes (``sarcube predict``) ------------------------------
#
# A variable written piece by piece (one prediction pair after another) lives in
# its own sub-group ``sarcube-staging/<name>/<name>`` until every piece is on
# disk. Readers of the cube never see it there. Chunk-aligned regions are
# written straight into the staged zarr array; after each finished piece its key
# is added to the staged array's ``sarcube_stage_state`` attribute, together
# with a fingerprint of the settings. A rerun with the same fingerprint resumes
# from those keys; any other fingerprint starts the staging afresh.
# ``keep_existing`` starts the staging from a copy of the live variable, so new
# pieces extend it while readers keep seeing the old version in place; the
# promotion (move into place, reconsolidate) swaps versions at once.
# ``add_variables`` clears the whole staging group first, so a feature run in
# between discards an unfinished staging: the next rerun starts over, never
# half-done.

#: attribute of a staged array: its fingerprint and the keys of finished pieces
ATTR_STAGE_STATE = "sarcube_stage_state"


class StagedArray:
    """A variable staged for region writes: ``write`` regions, ``mark_done`` pieces, ``promote`` once."""

    def __init__(self, path: str | Path, name: str, fingerprint: str, done: Iterable[str], storage_options: Mapping[str, Any] | None) -> None:
        self.path, self.name, self.fingerprint = path, name, fingerprint
        self.storage_options = storage_options
        self.done: set[str] = set(done)
        self._array = _open_staged(path, name, storage_options)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._array.shape)

    @property
    def chunks(self) -> tuple[int, ...]:
        return tuple(self._array.chunks)

    def write(self, values: Any, region: tuple[slice | int, ...]) -> None:
        """Write ``values`` into ``region``; region starts must lie on the stored chunk grid."""
        for sel, chunk in zip(region, self.chunks, strict=False):
            start = sel if isinstance(sel, int) else (sel.start or 0)
            if start % chunk:
                raise CubeSchemaError(f"region {region} of {self.name!r} does not start on the chunk grid {self.chunks}")
        self._array[region] = values

    def mark_done(self, key: str) -> None:
        """Record that piece ``key`` is completely written (the resume point)."""
        self.done.add(key)
        self._array.attrs[ATTR_STAGE_STATE] = {"fingerprint": self.fingerprint, "done": sorted(self.done)}

    def promote(self, attrs: Mapping[str, Any]) -> None:
        """Give the staged array its final ``attrs``, swap it into the cube and reconsolidate."""
        with quiet_zarr_warnings():
            self._array.attrs.put({k: v for k, v in {**self._array.attrs.asdict(), **dict(attrs)}.items() if k != ATTR_STAGE_STATE})
        fs, root = _fs_and_root(self.path, self.storage_options)
        final, trash = f"{root}/{self.name}", f"{root}/{TRASH_PREFIX}{self.name}"
        if fs.exists(final):
            fs.mv(final, trash, recursive=True)
        fs.mv(f"{root}/{_staged_path(self.name)}", final, recursive=True)
        if fs.exists(trash):
            fs.rm(trash, recursive=True)
        discard_staged(self.path, self.name, self.storage_options)
        consolidate(self.path, self.storage_options)
        log.info("promoted %s into %s", self.name, self.path)


def _staged_path(name: str) -> str:
    return f"{STAGING_GROUP}/{name}/{name}"


def _open_staged(path: str | Path, name: str, storage_options: Mapping[str, Any] | None) -> Any:
    import zarr

    with quiet_zarr_warnings():
        return zarr.open_array(zarr_store(path, storage_options), path=_staged_path(name), mode="r+", zarr_format=3)


def staged_state(path: str | Path, name: str, storage_options: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The fingerprint and finished keys of a staged ``name``, None when nothing is staged."""
    fs, root = _fs_and_root(path, storage_options)
    if not fs.exists(f"{root}/{_staged_path(name)}/zarr.json"):
        return None
    try:
        return dict(_open_staged(path, name, storage_options).attrs.get(ATTR_STAGE_STATE) or {})
    except (FileNotFoundError, KeyError, ValueError):
        return None


def discard_staged(path: str | Path, name: str, storage_options: Mapping[str, Any] | None = None) -> None:
    """Remove a staged ``name`` (and the staging group when nothing else is left in it)."""
    fs, root = _fs_and_root(path, storage_options)
    staged_group = f"{root}/{STAGING_GROUP}/{name}"
    if fs.exists(staged_group):
        fs.rm(staged_group, recursive=True)
    _drop_empty_staging_group(fs, root)


def stage_array(
    path: str | Path,
    template: xr.DataArray,
    *,
    fingerprint: str,
    keep_existing: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> StagedArray:
    """Stage ``template.name`` for region writes, resuming an unfinished staging with the same fingerprint.

    ``template`` (made with :func:`schema.make_variable`, lazily backed, on the
    cube grid) gives shape, dims, dtype and attrs; nothing of it is computed.
    Without a resumable staging, a new one starts empty (fill value: NaN), or
    with ``keep_existing`` as a copy of the cube's current variable (grown
    along its first dim to the template's shape).
    """
    import dask.array as dsa
    import zarr

    name = str(template.name)
    if not exists(path, storage_options):
        raise InputError(f"cube {str(path)!r} does not exist: build one with `sarcube build` first")
    state = staged_state(path, name, storage_options)
    if state is not None and state.get("fingerprint") == fingerprint:
        staged = StagedArray(path, name, fingerprint, state.get("done", ()), storage_options)
        if staged.shape == tuple(template.shape):
            log.info("resuming staged %s: %d piece(s) already written", name, len(staged.done))
            return staged
    discard_staged(path, name, storage_options)
    fs, root = _fs_and_root(path, storage_options)
    live = f"{root}/{name}"
    if keep_existing and fs.exists(f"{live}/zarr.json"):
        with quiet_zarr_warnings():
            zarr.open_group(zarr_store(path, storage_options), path=f"{STAGING_GROUP}/{name}", mode="a", zarr_format=3)
        fs.copy(live, f"{root}/{_staged_path(name)}", recursive=True)
        array = _open_staged(path, name, storage_options)
        if tuple(array.shape) != tuple(template.shape):
            if tuple(array.shape[1:]) != tuple(template.shape[1:]) or array.shape[0] > template.shape[0]:
                discard_staged(path, name, storage_options)
                raise CubeSchemaError(f"{name!r} has shape {tuple(array.shape)}, the cube needs {tuple(template.shape)}: recompute it with --overwrite")
            array.resize(tuple(template.shape))
    else:
        data = dsa.zeros(template.shape, dtype=template.dtype, chunks=schema.chunks_for(template.dims, template.shape))
        var = template.copy(data=data)
        ds = xr.Dataset({name: var}).drop_vars(list(var.coords), errors="ignore")
        ds = _strip_stale_encoding(ds)
        with quiet_zarr_warnings():
            ds.to_zarr(
                str(path),
                group=f"{STAGING_GROUP}/{name}",
                mode="w",
                zarr_format=3,
                consolidated=False,
                compute=False,
                encoding=schema.encoding_for(ds),
                storage_options=dict(storage_options) if storage_options else None,
            )
    staged = StagedArray(path, name, fingerprint, (), storage_options)
    staged._array.attrs[ATTR_STAGE_STATE] = {"fingerprint": fingerprint, "done": []}
    return staged


__all__ = [
    "ATTR_STAGE_STATE",
    "STAGING_GROUP",
    "StagedArray",
    "add_variables",
    "append_history",
    "clean_staging",
    "consolidate",
    "exists",
    "quiet_zarr_warnings",
    "remove",
    "remove_variables",
    "size_on_disk",
    "discard_staged",
    "stage_array",
    "staged_state",
    "update_attrs",
    "write_cube",
]


# --- cubes written time step by time step (``sarcube build``) --------------------
#
# A build first writes the whole store's metadata (every time step, the grid,
# the attrs) with its dask-backed variables left unwritten: their chunks read
# as the fill value (NaN) until a region write fills them. Each finished time
# step is then written by region (whole chunks) and recorded by its caller;
# ``append_template`` grows the ``time`` dimension the same way.


def create_template(ds: xr.Dataset, path: str | Path, *, storage_options: Mapping[str, Any] | None = None) -> None:
    """Write a new store: coords, attrs, numpy variables and metadata; dask variables stay unwritten (NaN)."""
    if exists(path, storage_options):
        raise CubeExistsError(f"output {str(path)!r} exists: pass --overwrite to replace it or --append to extend it")
    ds = _strip_stale_encoding(ds)
    with quiet_zarr_warnings():
        ds.to_zarr(
            str(path),
            mode="w",
            zarr_format=3,
            consolidated=False,
            compute=False,  # only the metadata and non-dask arrays are written
            encoding=schema.encoding_for(ds),
            storage_options=dict(storage_options) if storage_options else None,
        )
    consolidate(path, storage_options)


def append_template(ds: xr.Dataset, path: str | Path, *, dim: str = schema.TIME, storage_options: Mapping[str, Any] | None = None) -> None:
    """Grow ``dim`` of an existing store by ``ds``'s coordinates; its dask variables stay unwritten (NaN)."""
    import numpy as np

    ds = _strip_stale_encoding(ds)
    encoding = {name: enc for name, enc in schema.encoding_for(ds).items() if np.issubdtype(ds.variables[name].dtype, np.datetime64)}
    existing = _existing_arrays(path, storage_options)
    encoding = {name: enc for name, enc in encoding.items() if name not in existing}
    ds.attrs = dict(schema.open_cube(path, validate=False, storage_options=storage_options).attrs)  # append keeps the cube's attrs
    with quiet_zarr_warnings():
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
    consolidate(path, storage_options)


def write_region(
    ds: xr.Dataset,
    path: str | Path,
    region: Mapping[str, slice],
    *,
    storage_options: Mapping[str, Any] | None = None,
    compute: bool = True,
) -> Any:
    """Write the data variables of ``ds`` into ``region`` of an existing store (chunk-aligned; metadata untouched).

    With ``compute=False`` returns the dask delayed write.
    """
    ds = ds.drop_vars([c for c in ds.coords])
    for var in ds.variables.values():
        var.encoding = {}
    with quiet_zarr_warnings():
        return ds.to_zarr(
            str(path),
            mode="r+",
            region=dict(region),
            zarr_format=3,
            consolidated=False,
            compute=compute,
            storage_options=dict(storage_options) if storage_options else None,
        )


def remove_attrs(path: str | Path, keys: list[str] | tuple[str, ...], storage_options: Mapping[str, Any] | None = None) -> None:
    """Delete global attributes (absent ones are ignored), keeping the consolidated metadata valid."""

    def drop(current: dict[str, Any]) -> None:
        for key in keys:
            current.pop(key, None)

    _rewrite_root_attrs(path, drop, storage_options)


__all__ += ["append_template", "create_template", "remove_attrs", "write_region"]
