"""Citable archives of a cube: zipped store, checksums, STAC, datasheet, verification, Zenodo.

One home for publishing, one module per job:

- :mod:`.layout`: the files of an archive folder and their flat names on Zenodo;
- :mod:`.zipstore`: a finished local store as ``<name>.zarr.zip``, the same bytes every time;
- :mod:`.checksums`: md5 per file, ``MD5SUMS``, STAC multihashes;
- :mod:`.citation`: who made the dataset and how to cite it (one model for all renderings);
- :mod:`.stac`: the STAC collection and item, one helper per extension;
- :mod:`.datasheet`: ``README.md``;
- :mod:`.zenodo_metadata`: the citation as Zenodo deposition metadata;
- :mod:`.folder`: the whole folder written in one call (:func:`write_archive`);
- :mod:`.verify`: :func:`verify_archive`, as written or as downloaded from Zenodo;
- :mod:`.zenodo`: the Zenodo REST client (an I/O adapter; import it as
  ``from sarcube.datacube.archive import zenodo``).

Metadata text never carries local absolute paths or signed URLs
(:mod:`sarcube.datacube.redaction`). Nothing here ever extracts an archive.
"""

from __future__ import annotations

from sarcube.datacube.archive.checksums import (
    MULTIHASH_MD5,
    MULTIHASH_SHA256,
    md5_file,
    multihash,
    read_md5sums,
    write_md5sums,
)
from sarcube.datacube.archive.citation import (
    DEFAULT_LICENSE,
    LICENSES,
    RELATION_TYPES,
    Citation,
    Creator,
    RelatedIdentifier,
    orcid_is_valid,
)
from sarcube.datacube.archive.datasheet import datasheet
from sarcube.datacube.archive.folder import (
    ArchiveFiles,
    archive_file_list,
    metadata_json,
    write_archive,
)
from sarcube.datacube.archive.layout import (
    ARCHIVE_SUFFIX,
    COLLECTION_JSON,
    MD5SUMS,
    METADATA_JSON,
    README_MD,
    STAC_DIR,
    ZARR_JSON,
    flat_name,
)
from sarcube.datacube.archive.stac import source_items, stac_collection, write_stac
from sarcube.datacube.archive.verify import VerifyReport, verify_archive
from sarcube.datacube.archive.zenodo_metadata import deposition_metadata, markdown_to_html
from sarcube.datacube.archive.zipstore import archive_name, local_store, store_members, write_zip

__all__ = [
    "ARCHIVE_SUFFIX",
    "COLLECTION_JSON",
    "DEFAULT_LICENSE",
    "LICENSES",
    "MD5SUMS",
    "METADATA_JSON",
    "MULTIHASH_MD5",
    "MULTIHASH_SHA256",
    "README_MD",
    "RELATION_TYPES",
    "STAC_DIR",
    "ZARR_JSON",
    "ArchiveFiles",
    "Citation",
    "Creator",
    "RelatedIdentifier",
    "VerifyReport",
    "archive_file_list",
    "archive_name",
    "datasheet",
    "deposition_metadata",
    "flat_name",
    "local_store",
    "markdown_to_html",
    "md5_file",
    "metadata_json",
    "multihash",
    "orcid_is_valid",
    "read_md5sums",
    "source_items",
    "stac_collection",
    "store_members",
    "verify_archive",
    "write_archive",
    "write_md5sums",
    "write_stac",
    "write_zip",
]
