"""Zarr stores on local paths and fsspec URLs: open, test, remove, measure, consolidate.

The plumbing under :mod:`~sarcube.datacube.store` (writes) and
:mod:`~sarcube.datacube.staging` (arrays staged before they join a cube), and
what steps need to ask of a store without writing it. Works on local paths and
on fsspec URLs (``s3://``, ``memory://``...).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import xarray as xr
from sarcube.datacube import schema


@contextmanager
def quiet_zarr_warnings() -> Iterator[None]:
    """Silence zarr's notes on consolidated metadata and vlen strings in v3 (both deliberate)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification.*")
        warnings.filterwarnings("ignore", category=UserWarning, module="zarr")
        yield


def fs_and_root(path: str | Path, storage_options: Mapping[str, Any] | None = None) -> tuple[Any, str]:
    """The fsspec filesystem of ``path`` and the store's root on it (no trailing slash)."""
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
    fs, root = fs_and_root(path, storage_options)
    return fs.exists(f"{root}/zarr.json")


def root_attrs(path: str | Path, storage_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The global attributes of the store at ``path`` (its root ``zarr.json``), without opening arrays."""
    import json

    fs, root = fs_and_root(path, storage_options)
    return dict(json.loads(fs.cat_file(f"{root}/zarr.json")).get("attributes", {}))
def remove_tree(fs: Any, path: str) -> None:
    """``fs.rm(path, recursive=True)``; a refusal names ``path`` (local ``rmtree`` names only the bare entry)."""
    try:
        fs.rm(path, recursive=True)
    except OSError as err:
        if err.filename and Path(str(err.filename)).is_absolute():
            raise
        raise type(err)(err.errno, err.strerror, path) from err


def remove(path: str | Path, storage_options: Mapping[str, Any] | None = None) -> None:
    """Delete a whole store."""
    fs, root = fs_and_root(path, storage_options)
    if fs.exists(root):
        remove_tree(fs, root)


def consolidate(path: str | Path, storage_options: Mapping[str, Any] | None = None) -> None:
    """Rewrite the consolidated metadata so readers see the store's current arrays."""
    import zarr

    with quiet_zarr_warnings():
        zarr.consolidate_metadata(zarr_store(path, storage_options), zarr_format=3)


def size_on_disk(path: str | Path, storage_options: Mapping[str, Any] | None = None) -> int:
    """Bytes of all objects in the store (or of the zip file)."""
    fs, root = fs_and_root(path, storage_options)
    if fs.isfile(root):
        return int(fs.size(root))
    return int(sum(fs.du(root, total=False).values())) if fs.exists(root) else 0


def strip_stale_encoding(ds: xr.Dataset) -> xr.Dataset:
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


__all__ = [
    "consolidate",
    "exists",
    "fs_and_root",
    "quiet_zarr_warnings",
    "remove",
    "root_attrs",
    "remove_tree",
    "size_on_disk",
    "strip_stale_encoding",
    "zarr_store",
]
