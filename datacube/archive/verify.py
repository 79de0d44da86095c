"""Verification of a published archive folder, as written or as downloaded from Zenodo.

Every ``MD5SUMS`` entry, every STAC ``file:checksum``/``file:size``, and each
zipped cube: member paths safe, root ``zarr.json`` first, CRCs, and the cube
contract (opened straight from the zip, never extracted). The first failure
raises :class:`~sarcube.errors.VerifyError` naming the file.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from sarcube.datacube import schema
from sarcube.datacube.archive.checksums import check_multihash, md5_file, read_md5sums
from sarcube.datacube.archive.layout import (
    ARCHIVE_SUFFIX,
    COLLECTION_JSON,
    MD5SUMS,
    STAC_DIR,
    ZARR_JSON,
    flat_name,
)
from sarcube.datacube.archive.zipstore import check_member_layout, check_member_names
from sarcube.errors import CubeSchemaError, InputError, VerifyError

#: verify shows a checksum progress bar for files larger than this
VERIFY_PROGRESS_MIN_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify_archive` checked (it raises on the first failure)."""

    folder: Path
    #: relative paths whose md5 matched MD5SUMS
    md5_checked: tuple[str, ...]
    #: STAC assets whose file:checksum and file:size matched
    stac_checked: tuple[str, ...]
    #: the zipped cube(s) opened and validated against the contract
    cubes: tuple[str, ...]
    variables: tuple[str, ...]

    def summary(self) -> str:
        return (
            f"{self.folder}: OK: {len(self.md5_checked)} files match {MD5SUMS}, "
            f"{len(self.stac_checked)} STAC checksums match, cube(s) {', '.join(self.cubes)} valid "
            f"({', '.join(self.variables)})"
        )


def _safe_relative(folder: Path, rel: str, what: str) -> Path:
    """``folder/rel``, or its flat name as downloaded from Zenodo when only that exists."""
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts:
        raise VerifyError(f"{what} lists {rel!r}, a path outside the archive folder")
    path = folder / pure
    flat = folder / flat_name(rel)
    return flat if not path.is_file() and flat.is_file() else path


def _check_md5sums(folder: Path, computed: dict[Path, str]) -> list[str]:
    """The MD5SUMS entries that match; fills ``computed`` (resolved path -> md5) for the STAC check."""
    checked = []
    for rel, expected in read_md5sums(folder).items():
        path = _safe_relative(folder, rel, MD5SUMS)
        if not path.is_file():
            raise VerifyError(f"{rel}: listed in {MD5SUMS} but missing from {str(folder)!r}")
        actual = md5_file(path, progress=path.stat().st_size > VERIFY_PROGRESS_MIN_BYTES)
        computed[path.resolve()] = actual
        if actual != expected:
            raise VerifyError(
                f"{rel}: md5 {actual} does not match {MD5SUMS} ({expected}): "
                "the file is corrupt, download or publish it again"
            )
        checked.append(rel)
    return checked


def _stac_items(folder: Path) -> list[Path]:
    """The STAC item files: in ``stac/``, or flat-named when downloaded from Zenodo."""
    stac_dir = folder / STAC_DIR
    if stac_dir.is_dir():
        return [p for p in sorted(stac_dir.glob("*.json")) if p.name != COLLECTION_JSON]
    collection = flat_name(f"{STAC_DIR}/{COLLECTION_JSON}")
    return [p for p in sorted(folder.glob(flat_name(f"{STAC_DIR}/*.json"))) if p.name != collection]


def _check_asset(folder: Path, item_path: Path, key: str, asset: dict[str, Any], computed: dict[Path, str]) -> str:
    """The relative path of a STAC asset whose size and checksum match."""
    where = item_path.relative_to(folder)
    if not isinstance(asset, dict) or not isinstance(asset.get("href"), str):
        raise VerifyError(f"{where}: asset {key!r} is not a mapping with an href: the STAC item is corrupt")
    href = asset["href"]
    if "://" in href or href.startswith("/"):
        raise VerifyError(f"{where}: asset {key!r} href {href!r} is not relative to the archive")
    if item_path.parent == folder:
        target = (folder / PurePosixPath(href).name).resolve()
    else:
        target = (item_path.parent / href).resolve()
    if folder.resolve() not in target.parents:
        raise VerifyError(f"{where}: asset {key!r} points outside the archive folder")
    rel = target.relative_to(folder.resolve()).as_posix()
    if not target.is_file():
        raise VerifyError(f"{rel}: STAC asset {key!r} is missing")
    size = asset.get("file:size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise VerifyError(f"{where}: asset {key!r} file:size {size!r} is not a size in bytes: the STAC item is corrupt")
    if size is not None and size != target.stat().st_size:
        raise VerifyError(
            f"{rel}: size {target.stat().st_size} B does not match STAC file:size {size} B: the file is corrupt"
        )
    checksum = asset.get("file:checksum")
    if checksum is not None and not isinstance(checksum, str):
        raise VerifyError(
            f"{where}: asset {key!r} file:checksum {checksum!r} is not a multihash: the STAC item is corrupt"
        )
    if checksum and not check_multihash(str(checksum), target, computed.get(target)):
        raise VerifyError(f"{rel}: checksum does not match STAC file:checksum: the file is corrupt")
    return rel


def _item_assets(folder: Path, item_path: Path) -> dict[str, Any]:
    """The ``assets`` mapping of a STAC item file; :class:`VerifyError` when the file is not a STAC item."""
    where = item_path.relative_to(folder)
    try:
        item = json.loads(item_path.read_bytes())
    except (ValueError, UnicodeDecodeError) as err:
        raise VerifyError(
            f"{where}: not valid JSON ({err}): the STAC item is corrupt; publish the archive again"
        ) from err
    assets = item.get("assets", {}) if isinstance(item, dict) else None
    if not isinstance(assets, dict):
        raise VerifyError(
            f"{where}: 'assets' must be a mapping of asset keys, got {type(assets).__name__}: "
            "the STAC item is corrupt; publish the archive again"
        )
    return assets


def _check_zip(zip_path: Path) -> tuple[str, ...]:
    """The data variables of a zipped cube whose members, CRCs and contract are sound."""
    try:
        with zipfile.ZipFile(zip_path) as zf:
            names = zf.namelist()
            check_member_names(zip_path, names)
            check_member_layout(zip_path, zf)
            if not names or names[0] != ZARR_JSON:
                raise VerifyError(f"{zip_path.name}: the first member is {names[:1]}, expected the root {ZARR_JSON}")
            bad = zf.testzip()
            if bad is not None:
                raise VerifyError(f"{zip_path.name}: member {bad!r} fails its CRC: the file is corrupt")
    except zipfile.BadZipFile as err:
        raise VerifyError(f"{zip_path.name}: not a readable zip ({err}): the file is corrupt") from err
    try:
        ds = schema.open_cube(zip_path)
    except CubeSchemaError as err:
        raise VerifyError(f"{zip_path.name}: {err}") from err
    return tuple(str(v) for v in ds.data_vars if v != schema.SPATIAL_REF)


def verify_archive(folder: str | Path) -> VerifyReport:
    """Check every MD5SUMS entry, the STAC file checksums and sizes, and each zipped cube's schema.

    Raises :class:`VerifyError` naming the first file that fails.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"archive folder {str(folder)!r} does not exist: pass the --out folder of `sarcube publish`")
    computed: dict[Path, str] = {}
    md5_checked = _check_md5sums(folder, computed)
    stac_checked = [
        _check_asset(folder, item_path, key, asset, computed)
        for item_path in _stac_items(folder)
        for key, asset in _item_assets(folder, item_path).items()
    ]
    zips = sorted(folder.glob("*" + ARCHIVE_SUFFIX))
    if not zips:
        raise VerifyError(f"{str(folder)!r} holds no *{ARCHIVE_SUFFIX} cube")
    variables = [name for zip_path in zips for name in _check_zip(zip_path)]
    return VerifyReport(
        folder=folder,
        md5_checked=tuple(md5_checked),
        stac_checked=tuple(stac_checked),
        cubes=tuple(z.name for z in zips),
        variables=tuple(variables),
    )


__all__ = ["VerifyReport", "verify_archive"]
