"""The zipped store: a finished local Zarr store as ``<name>.zarr.zip``, the same bytes every time.

The zip is written member by member, stored (chunks are already compressed),
root ``zarr.json`` first, with fixed timestamps, so the same cube always gives
the same bytes (and the same md5: uploads can resume). Metadata strings are
sanitized (:func:`~sarcube.datacube.redaction.sanitize`), chunks copied byte for
byte. Nothing here ever extracts an archive.
"""

from __future__ import annotations

import json
import re
import struct
import zipfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from sarcube.datacube import staging
from sarcube.datacube.archive.layout import ZARR_JSON
from sarcube.datacube.redaction import sanitize
from sarcube.errors import InputError, PublishError, VerifyError
from sarcube.progress import bar_disable

#: fixed member timestamp: identical cubes give byte-identical zips
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
COPY_BLOCK_BYTES = 8 * 1024 * 1024


def _sanitized_zarr_json(raw: bytes) -> bytes:
    """Zarr metadata with sanitized attribute strings; the same bytes when nothing changes."""
    meta = json.loads(raw)
    clean = sanitize(meta)
    if clean == meta:
        return raw
    return json.dumps(clean, indent=2).encode()


def archive_name(cube: str | Path) -> str:
    """``tiny`` for ``/data/tiny.zarr`` (the base of ``<name>.zarr.zip``)."""
    name = Path(str(cube).rstrip("/")).name
    for suffix in (".zarr", ".zarr.zip", ".zip"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def local_store(cube: str | Path) -> Path:
    """The directory of a local, finished store; :class:`InputError` for URLs, files or non-stores."""
    text = str(cube)
    if "://" in text and not text.startswith("file://"):
        raise InputError(
            f"cube {text!r} is not on local disk: copy it locally first (publishing zips a finished local store)"
        )
    path = Path(text.removeprefix("file://"))
    if path.is_file():
        raise InputError(f"cube {text!r} is a file: publish the directory store it was made from")
    if not (path / ZARR_JSON).is_file():
        raise InputError(f"cube {text!r} has no root {ZARR_JSON}: build one with `sarcube build` or check the path")
    return path


def store_members(cube: str | Path) -> list[str]:
    """Relative member names of a finished store, root ``zarr.json`` first.

    Leaves out what an interrupted write left behind (staging group, trash) and
    hidden files; refuses a store whose metadata is not consolidated.
    """
    root = local_store(cube)
    meta = json.loads((root / ZARR_JSON).read_bytes())
    if not meta.get("consolidated_metadata"):
        raise PublishError(
            f"cube {str(cube)!r} has no consolidated metadata: "
            "rerun the step that wrote it (sarcube writes cubes consolidated)"
        )
    members = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        first = rel.parts[0]
        if first == staging.STAGING_GROUP or first.startswith(staging.TRASH_PREFIX):
            continue
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        members.append(rel.as_posix())
    members.sort(key=lambda m: (m != ZARR_JSON, m))
    return members


def write_zip(cube: str | Path, zip_path: str | Path, *, progress: bool = True) -> Path:
    """Zip a finished local store into ``zip_path`` (stored, not compressed; root ``zarr.json`` first).

    Written to a temporary name and renamed when complete; metadata strings
    are sanitized, chunks copied byte for byte.
    """
    root = local_store(cube)
    members = store_members(root)
    zip_path = Path(zip_path)
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    partial = zip_path.with_name(zip_path.name + ".partial")
    total = sum((root / m).stat().st_size for m in members)
    bar_off = bar_disable(not progress)
    try:
        with (
            zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf,
            tqdm(total=total, unit="B", unit_scale=True, desc=f"zip {zip_path.name}", disable=bar_off) as bar,
        ):
            for member in members:
                source = root / member
                info = zipfile.ZipInfo(member, date_time=ZIP_DATE_TIME)
                info.compress_type = zipfile.ZIP_STORED
                info.external_attr = 0o644 << 16
                if PurePosixPath(member).name == ZARR_JSON:
                    zf.writestr(info, _sanitized_zarr_json(source.read_bytes()))
                    bar.update(source.stat().st_size)
                    continue
                info.file_size = source.stat().st_size
                with source.open("rb") as src, zf.open(info, "w") as dst:
                    while block := src.read(COPY_BLOCK_BYTES):
                        dst.write(block)
                        bar.update(len(block))
        partial.replace(zip_path)
    finally:
        partial.unlink(missing_ok=True)
    return zip_path


def check_member_names(zip_path: Path, names: Iterable[str]) -> None:
    """Raise :class:`VerifyError` for a member that would land outside the folder if extracted."""
    for name in names:
        pure = PurePosixPath(name)
        if pure.is_absolute() or ".." in pure.parts or "\\" in name or re.match(r"^[A-Za-z]:", name):
            raise VerifyError(
                f"{zip_path.name}: member {name!r} has an unsafe path (absolute or '..'); do not extract this archive"
            )


_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # signature ... file name length, extra field length
_LOCAL_SIGNATURE = b"PK\x03\x04"


def check_member_layout(zip_path: Path, zf: zipfile.ZipFile) -> None:
    """Raise :class:`VerifyError` unless every member is stored and its bytes lie, unshared, inside the file.

    sarcube archives are stored (chunks are compressed already), so a compressed member, one whose
    declared size differs from its stored size, or one that reaches past the end of the file or into
    another member (a zip bomb) is refused before anything is read: what verify reads afterwards is
    bounded by the file's size.
    """
    archive_bytes = zip_path.stat().st_size
    end = 0
    with zip_path.open("rb") as raw:
        for info in sorted(zf.infolist(), key=lambda i: i.header_offset):
            where = f"{zip_path.name}: member {info.filename!r}"
            if info.compress_type != zipfile.ZIP_STORED:
                raise VerifyError(
                    f"{where} is compressed (method {info.compress_type}): sarcube archives are stored, "
                    "so this file was repacked or is not one; download or publish it again"
                )
            if info.file_size != info.compress_size:
                raise VerifyError(
                    f"{where} declares {info.file_size} B but stores {info.compress_size} B: the archive is corrupt"
                )
            raw.seek(info.header_offset)
            header = raw.read(_LOCAL_HEADER.size)
            if info.header_offset < end or len(header) < _LOCAL_HEADER.size or header[:4] != _LOCAL_SIGNATURE:
                raise VerifyError(f"{where} has no sound local header (overlapping members?): the archive is corrupt")
            name_len, extra_len = _LOCAL_HEADER.unpack(header)[-2:]
            end = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len + info.compress_size
            if end > archive_bytes:
                raise VerifyError(
                    f"{where} declares {info.compress_size} B, past the end of the {archive_bytes} B file: "
                    "the archive is truncated or forged; download or publish it again"
                )


__all__ = ["archive_name", "check_member_layout", "check_member_names", "local_store", "store_members", "write_zip"]
