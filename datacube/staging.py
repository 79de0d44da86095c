"""The staging group of a cube: arrays written beside it, then moved in all at once.

A new or recomputed variable is first written into a staging sub-group of the
store (which no reader of the cube's root group sees, and which leaves the
root metadata untouched); only when every chunk is on disk is each array moved
into place and the metadata reconsolidated. A failure at any point leaves the
cube exactly as it was (a stale staging array is removed on the next write).

Two kinds of staging live there: :func:`store.add_variables` writes whole
variables into its own corner (``ADD_GROUP``) and :func:`promote_added` moves
them in; :func:`stage_array` stages one variable for resumable region writes
(``sarcube predict``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from sarcube.datacube import lock, schema, zarrio
from sarcube.errors import CubeSchemaError, InputError

log = logging.getLogger(__name__)

#: sub-group where new arrays are written before they are moved into the cube
STAGING_GROUP = "sarcube-staging"
#: add_variables' own corner of the staging group; predict stages resumable
#: arrays beside it (``STAGING_GROUP/<name>/<name>``), which it never touches
ADD_GROUP = "_add"
TRASH_PREFIX = "sarcube-trash-"


@lock.locked
def clean_staging(path: str | Path, storage_options: Mapping[str, Any] | None = None) -> list[str]:
    """Remove what an interrupted :func:`store.add_variables` left (its staging, trash); returns what was removed.

    Resumable stagings of :func:`stage_array` (an interrupted predict) are kept.
    """
    fs, root = zarrio.fs_and_root(path, storage_options)
    removed = []
    for entry in fs.ls(root, detail=False):
        name = entry.rstrip("/").rsplit("/", 1)[-1]
        if name.startswith(TRASH_PREFIX):
            live = f"{root}/{name.removeprefix(TRASH_PREFIX)}"
            if fs.isdir(f"{root}/{name}") and not fs.exists(f"{live}/zarr.json"):
                # cut short between setting the old version aside and moving the new one in: roll back
                if fs.exists(live):
                    zarrio.remove_tree(fs, live)
                zarrio.move_tree(fs, f"{root}/{name}", live)
                removed.append(f"{name} (restored)")
                continue
            zarrio.remove_tree(fs, f"{root}/{name}")
            removed.append(name)
    if fs.exists(f"{root}/{STAGING_GROUP}/{ADD_GROUP}"):
        zarrio.remove_tree(fs, f"{root}/{STAGING_GROUP}/{ADD_GROUP}")
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
            zarrio.remove_tree(fs, group)


def _swap_in(fs: Any, root: str, staged: str, name: str) -> None:
    """Move ``staged`` to ``root/name``, the old version (if any) set aside as trash until then."""
    final, trash = f"{root}/{name}", f"{root}/{TRASH_PREFIX}{name}"
    if fs.exists(final):
        zarrio.move_tree(fs, final, trash)
    zarrio.move_tree(fs, staged, final)
    if fs.exists(trash):
        zarrio.remove_tree(fs, trash)


@lock.locked
def promote_added(
    path: str | Path, names: list[str], storage_options: Mapping[str, Any] | None, drop: Iterable[str] = ()
) -> None:
    """Move arrays staged by ``add_variables`` into place (the old version, if any, to trash first),
    remove ``drop``, then the staging group."""
    fs, root = zarrio.fs_and_root(path, storage_options)
    for name in drop:
        zarrio.move_tree(fs, f"{root}/{name}", f"{root}/{TRASH_PREFIX}{name}")
    for name in names:
        _swap_in(fs, root, f"{root}/{STAGING_GROUP}/{ADD_GROUP}/{name}", name)
    for name in drop:
        zarrio.remove_tree(fs, f"{root}/{TRASH_PREFIX}{name}")
    zarrio.remove_tree(fs, f"{root}/{STAGING_GROUP}/{ADD_GROUP}")
    _drop_empty_staging_group(fs, root)


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
# ``add_variables`` clears only its own corner of the staging group, so a
# feature run in between keeps an unfinished staging for the next rerun.

#: attribute of a staged array: its fingerprint and the keys of finished pieces
ATTR_STAGE_STATE = "sarcube_stage_state"


class StagedArray:
    """A variable staged for region writes: ``write`` regions, ``mark_done`` pieces, ``promote`` once."""

    def __init__(
        self,
        path: str | Path,
        name: str,
        fingerprint: str,
        done: Iterable[str],
        storage_options: Mapping[str, Any] | None,
    ) -> None:
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
                raise CubeSchemaError(
                    f"region {region} of {self.name!r} does not start on the chunk grid {self.chunks}"
                )
        with lock.writer(self.path, storage_options=self.storage_options):
            self._array[region] = values

    def read(self, region: tuple[slice | int, ...]) -> np.ndarray:
        """The values staged in ``region`` (what ``write`` put there, before ``promote``)."""
        return np.asarray(self._array[region])

    def mark_done(self, *keys: str) -> None:
        """Record that pieces ``keys`` are completely written (the resume point).

        One process records for all: the record is one attribute, rewritten whole.
        """
        self.done.update(keys)
        with lock.writer(self.path, storage_options=self.storage_options):
            self._array.attrs[ATTR_STAGE_STATE] = {"fingerprint": self.fingerprint, "done": sorted(self.done)}

    def promote(self, attrs: Mapping[str, Any]) -> None:
        """Give the staged array its final ``attrs``, swap it into the cube and reconsolidate."""
        with lock.writer(self.path, storage_options=self.storage_options):
            self._promote(attrs)

    def _promote(self, attrs: Mapping[str, Any]) -> None:
        with zarrio.quiet_zarr_warnings():
            self._array.attrs.put(
                {k: v for k, v in {**self._array.attrs.asdict(), **dict(attrs)}.items() if k != ATTR_STAGE_STATE}
            )
        fs, root = zarrio.fs_and_root(self.path, self.storage_options)
        _swap_in(fs, root, f"{root}/{_staged_path(self.name)}", self.name)
        discard_staged(self.path, self.name, self.storage_options)
        zarrio.consolidate(self.path, self.storage_options)
        log.info("promoted %s into %s", self.name, self.path)


def _staged_path(name: str) -> str:
    return f"{STAGING_GROUP}/{name}/{name}"


def _open_staged(path: str | Path, name: str, storage_options: Mapping[str, Any] | None) -> Any:
    import zarr

    with zarrio.quiet_zarr_warnings():
        zstore = zarrio.zarr_store(path, storage_options)
        return zarr.open_array(zstore, path=_staged_path(name), mode="r+", zarr_format=3)


def staged_state(
    path: str | Path, name: str, storage_options: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    """The fingerprint and finished keys of a staged ``name``, None when nothing is staged."""
    fs, root = zarrio.fs_and_root(path, storage_options)
    if not fs.exists(f"{root}/{_staged_path(name)}/zarr.json"):
        return None
    try:
        return dict(_open_staged(path, name, storage_options).attrs.get(ATTR_STAGE_STATE) or {})
    except (FileNotFoundError, KeyError, ValueError):
        return None


@lock.locked
def discard_staged(path: str | Path, name: str, storage_options: Mapping[str, Any] | None = None) -> None:
    """Remove a staged ``name`` (and the staging group when nothing else is left in it)."""
    fs, root = zarrio.fs_and_root(path, storage_options)
    staged_group = f"{root}/{STAGING_GROUP}/{name}"
    if fs.exists(staged_group):
        zarrio.remove_tree(fs, staged_group)
    _drop_empty_staging_group(fs, root)


@lock.locked
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
    if not zarrio.exists(path, storage_options):
        raise InputError(f"cube {str(path)!r} does not exist: build one with `sarcube build` first")
    state = staged_state(path, name, storage_options)
    if state is not None and state.get("fingerprint") == fingerprint:
        staged = StagedArray(path, name, fingerprint, state.get("done", ()), storage_options)
        if staged.shape == tuple(template.shape):
            log.info("resuming staged %s: %d piece(s) already written", name, len(staged.done))
            return staged
    discard_staged(path, name, storage_options)
    fs, root = zarrio.fs_and_root(path, storage_options)
    live = f"{root}/{name}"
    if keep_existing and fs.exists(f"{live}/zarr.json"):
        with zarrio.quiet_zarr_warnings():
            zstore = zarrio.zarr_store(path, storage_options)
            zarr.open_group(zstore, path=f"{STAGING_GROUP}/{name}", mode="a", zarr_format=3)
        zarrio.copy_tree(fs, live, f"{root}/{_staged_path(name)}")
        array = _open_staged(path, name, storage_options)
        if tuple(array.shape) != tuple(template.shape):
            if tuple(array.shape[1:]) != tuple(template.shape[1:]) or array.shape[0] > template.shape[0]:
                discard_staged(path, name, storage_options)
                raise CubeSchemaError(
                    f"{name!r} has shape {tuple(array.shape)}, the cube needs {tuple(template.shape)}: recompute it "
                    "with --overwrite"
                )
            array.resize(tuple(template.shape))
    else:
        data = dsa.zeros(template.shape, dtype=template.dtype, chunks=schema.chunks_for(template.dims, template.shape))
        var = template.copy(data=data)
        ds = xr.Dataset({name: var}).drop_vars(list(var.coords), errors="ignore")
        ds = zarrio.strip_stale_encoding(ds)
        with zarrio.quiet_zarr_warnings():
            ds.to_zarr(
                str(path),
                group=f"{STAGING_GROUP}/{name}",
                mode="w",
                zarr_format=3,
                consolidated=False,
                compute=False,
                encoding=schema.encoding_for(ds, codec=schema.codec_of(zarrio.root_attrs(path, storage_options))),
                storage_options=dict(storage_options) if storage_options else None,
            )
    staged = StagedArray(path, name, fingerprint, (), storage_options)
    staged._array.attrs[ATTR_STAGE_STATE] = {"fingerprint": fingerprint, "done": []}
    return staged


__all__ = [
    "ADD_GROUP",
    "ATTR_STAGE_STATE",
    "STAGING_GROUP",
    "StagedArray",
    "TRASH_PREFIX",
    "clean_staging",
    "discard_staged",
    "promote_added",
    "stage_array",
    "staged_state",
]
