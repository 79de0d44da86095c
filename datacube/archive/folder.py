"""The whole archive folder, written in one call: zip, datasheet, STAC, Zenodo metadata, MD5SUMS.

:func:`write_archive` composes the parts (:mod:`.zipstore`, :mod:`.datasheet`,
:mod:`.stac`, :mod:`.zenodo_metadata`, :mod:`.checksums`) from one
:class:`~sarcube.datacube.archive.citation.Citation`; every text file is
sanitized of local paths and signed URLs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from sarcube.datacube import schema
from sarcube.datacube.archive.checksums import md5_file, read_md5sums, write_md5sums
from sarcube.datacube.archive.citation import Citation
from sarcube.datacube.archive.datasheet import datasheet
from sarcube.datacube.archive.layout import ARCHIVE_SUFFIX, MD5SUMS, METADATA_JSON, README_MD
from sarcube.datacube.archive.stac import stac_collection, write_stac
from sarcube.datacube.archive.zenodo_metadata import deposition_metadata
from sarcube.datacube.archive.zipstore import archive_name, write_zip
from sarcube.datacube.redaction import sanitize, sanitize_text


@dataclass(frozen=True)
class ArchiveFiles:
    """What :func:`write_archive` wrote, paths relative to the archive folder."""

    folder: Path
    archive: str
    datasheet: str
    stac: tuple[str, ...]
    md5: dict[str, str] = field(default_factory=dict)

    @property
    def zip_path(self) -> Path:
        return self.folder / self.archive


def metadata_json(citation: Citation) -> bytes:
    """``metadata.json``: the Zenodo deposition metadata of ``citation`` (with its DOI once known), sanitized."""
    return (json.dumps(sanitize(deposition_metadata(citation)), indent=2, ensure_ascii=False) + "\n").encode()


def write_archive(
    cube: str | Path,
    out_dir: str | Path,
    *,
    citation: Citation,
    progress: bool = True,
    rezip: bool = True,
) -> ArchiveFiles:
    """Write zip, datasheet, STAC, ``metadata.json`` and MD5SUMS of ``cube`` into ``out_dir``.

    With ``rezip=False`` an existing zip is kept (its md5 read from the
    MD5SUMS written with it), e.g. when only the DOI changes.
    """
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    name = archive_name(cube)
    archive_file = name + ARCHIVE_SUFFIX
    zip_path = folder / archive_file
    known: dict[str, str] = {}
    if rezip or not zip_path.is_file():
        write_zip(cube, zip_path, progress=progress)
    elif (folder / MD5SUMS).is_file():
        known = read_md5sums(folder)  # the zip is unchanged since that MD5SUMS was written
    ds = schema.open_cube(zip_path)
    md5: dict[str, str] = {archive_file: known.get(archive_file) or md5_file(zip_path, progress=progress)}

    text = datasheet(ds, archive_file=archive_file, citation=citation)
    (folder / README_MD).write_text(text)
    md5[README_MD] = md5_file(folder / README_MD)

    files = {rel: (md5[rel], (folder / rel).stat().st_size) for rel in (archive_file, README_MD)}
    collection = stac_collection(ds, name=name, citation=citation, files=files, folder=folder)
    stac_files = write_stac(collection, folder, name)
    for rel in stac_files:
        path = folder / rel
        path.write_text(sanitize_text(path.read_text()))
        md5[rel] = md5_file(path)
    (folder / METADATA_JSON).write_bytes(metadata_json(citation))
    md5[METADATA_JSON] = md5_file(folder / METADATA_JSON)
    write_md5sums(folder, md5)
    return ArchiveFiles(folder=folder, archive=archive_file, datasheet=README_MD, stac=stac_files, md5=md5)


def archive_file_list(folder: str | Path) -> list[str]:
    """The files of an archive folder (from MD5SUMS) plus MD5SUMS itself, zip first."""
    listed = sorted(read_md5sums(folder), key=lambda rel: (not rel.endswith(ARCHIVE_SUFFIX), rel))
    return [*listed, MD5SUMS]


__all__ = ["ArchiveFiles", "archive_file_list", "metadata_json", "write_archive"]
