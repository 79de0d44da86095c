"""Checksums of an archive: md5 per file (what Zenodo reports), ``MD5SUMS``, STAC multihashes.

``MD5SUMS`` is in ``md5sum -c`` format; the STAC file extension wants a
multihash (:func:`multihash`); verification also knows sha2-256 multihashes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

from tqdm.auto import tqdm

from sarcube.datacube.archive.layout import MD5SUMS
from sarcube.errors import VerifyError
from sarcube.progress import bar_disable

#: multihash prefix of an md5 digest (code 0xd5, 16 bytes), as the STAC file extension wants
MULTIHASH_MD5 = "d510"
MULTIHASH_SHA256 = "1220"
READ_BLOCK_BYTES = 8 * 1024 * 1024


def file_digest(path: Path, algorithm: str, progress: bool) -> str:
    """Hex digest of a file with ``algorithm`` (a hashlib name), read in blocks."""
    digest = hashlib.new(algorithm, usedforsecurity=False)
    size = path.stat().st_size
    bar_off = bar_disable(not progress)
    with (
        path.open("rb") as f,
        tqdm(total=size, unit="B", unit_scale=True, desc=f"{algorithm} {path.name}", disable=bar_off) as bar,
    ):
        while block := f.read(READ_BLOCK_BYTES):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


def md5_file(path: str | Path, *, progress: bool = False) -> str:
    """Hex md5 of a file (what Zenodo reports for each file)."""
    return file_digest(Path(path), "md5", progress)


def multihash(md5_hex: str) -> str:
    """The STAC ``file:checksum`` (multihash, hex) of an md5 digest."""
    return MULTIHASH_MD5 + md5_hex


def check_multihash(value: str, path: Path, known_md5: str | None = None) -> bool:
    """True when the multihash ``value`` matches the file at ``path`` (``known_md5``: already computed)."""
    if value.startswith(MULTIHASH_MD5):
        return (known_md5 or md5_file(path)) == value[len(MULTIHASH_MD5):]
    if value.startswith(MULTIHASH_SHA256):
        return file_digest(path, "sha256", progress=False) == value[len(MULTIHASH_SHA256):]
    raise VerifyError(
        f"{path.name}: file:checksum {value[:8]}... uses a hash this verifier does not know "
        "(md5 or sha2-256 multihash expected)"
    )


def write_md5sums(folder: str | Path, md5: Mapping[str, str]) -> Path:
    """``MD5SUMS`` in ``md5sum -c`` format (two spaces, relative paths)."""
    path = Path(folder) / MD5SUMS
    path.write_text("".join(f"{digest}  {rel}\n" for rel, digest in sorted(md5.items())))
    return path


def read_md5sums(folder: str | Path) -> dict[str, str]:
    """Relative path -> md5 from ``MD5SUMS``."""
    path = Path(folder) / MD5SUMS
    if not path.is_file():
        raise VerifyError(f"{str(folder)!r} has no {MD5SUMS}: not a folder written by `sarcube publish`")
    out = {}
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        match = re.fullmatch(r"([0-9a-f]{32}) [ *](.+)", line.strip())
        if not match:
            raise VerifyError(f"{MD5SUMS} line {lineno} is not '<md5>  <file>': {line[:60]!r}")
        out[match.group(2)] = match.group(1)
    return out


__all__ = [
    "MULTIHASH_MD5",
    "MULTIHASH_SHA256",
    "check_multihash",
    "file_digest",
    "md5_file",
    "multihash",
    "read_md5sums",
    "write_md5sums",
]
