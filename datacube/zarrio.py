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
    if not is_local(fs):
        # fsspec shares one instance per URL and options; zarr writes through its own, so listings
        # cached by an earlier call can miss what zarr wrote since.
        fs.invalidate_cache()
    return fs, root.rstrip("/")


def is_local(fs: Any) -> bool:
    """True for the local filesystem (renames are atomic there), False for object stores and the rest."""
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocols or "local" in protocols


def _tree_keys(fs: Any, src: str) -> tuple[list[str], list[str]]:
    """The objects under ``src``: chunks and other data, then the ``zarr.json`` files (what zarr sees)."""
    keys = sorted(k for k in fs.find(src, withdirs=False) if k.rstrip("/") != src)
    meta = [k for k in keys if k.rsplit("/", 1)[-1] == "zarr.json"]
    return [k for k in keys if k not in set(meta)], meta


def copy_tree(fs: Any, src: str, dst: str) -> None:
    """Copy the zarr node ``src`` (an array or group folder) to ``dst``.

    On object stores key by key (concurrent server-side copies), the
    ``zarr.json`` files after the chunks they describe, so a copy cut short is
    no array at ``dst``.
    """
    if is_local(fs):
        fs.copy(src, dst, recursive=True)
        return
    for batch in _tree_keys(fs, src):
        if batch:
            fs.copy(batch, [dst + k[len(src):] for k in batch])
    fs.invalidate_cache()


def remove_tree(fs: Any, src: str) -> None:
    """Delete the zarr node ``src``; on object stores its ``zarr.json`` files first, so a cut-short
    delete leaves chunks no reader sees rather than an array with holes. A local refusal names
    ``src`` (``rmtree`` names only the bare entry)."""
    if is_local(fs):
        try:
            fs.rm(src, recursive=True)
        except OSError as err:
            if err.filename and Path(str(err.filename)).is_absolute():
                raise
            raise type(err)(err.errno, err.strerror, src) from err
        return
    for batch in reversed(_tree_keys(fs, src)):
        if batch:
            fs.rm(batch)
    fs.invalidate_cache()


def move_tree(fs: Any, src: str, dst: str) -> None:
    """Move the zarr node ``src`` to ``dst``: a rename on local disk; copy, then delete, on object
    stores, which have no rename (see :func:`copy_tree`, :func:`remove_tree`)."""
    if is_local(fs):
        fs.mv(src, dst, recursive=True)
        return
    copy_tree(fs, src, dst)
    remove_tree(fs, src)


def zarr_store(path: str | Path, storage_options: Mapping[str, Any] | None = None, *, read_only: bool = False) -> Any:
    """A zarr store object for a local path or an fsspec URL."""
    from zarr.storage import FsspecStore, LocalStore

    if "://" in str(path) and not str(path).startswith("file://"):
        zstore = FsspecStore.from_url(str(path), storage_options=dict(storage_options or {}), read_only=read_only)
        zstore.fs.invalidate_cache()  # a shared instance: drop listings from before other writers' changes
        return zstore
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


def remove(path: str | Path, storage_options: Mapping[str, Any] | None = None) -> None:
    """Delete a whole store."""
    fs, root = fs_and_root(path, storage_options)
    if fs.exists(root):
        if fs.isfile(root):  # a zip archive
            fs.rm(root)
        else:
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
        for key in (
            "chunks",
            "preferred_chunks",
            "compressors",
            "compressor",
            "filters",
            "shards",
            "serializer",
            "fill_value",
            "_FillValue",
            "dtype",
            "units",
            "calendar",
        ):
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
    "copy_tree",
    "exists",
    "fs_and_root",
    "is_local",
    "move_tree",
    "quiet_zarr_warnings",
    "remove",
    "root_attrs",
    "remove_tree",
    "size_on_disk",
    "strip_stale_encoding",
    "zarr_store",
]
