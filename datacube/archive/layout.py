"""The files of a published archive folder and their names on a Zenodo record.

A published cube is a folder::

    <name>.zarr.zip      the store, zip without compression (chunks already are),
                         root zarr.json first, opens lazily with zarr's ZipStore
    README.md            datasheet: variables with units, grid, dates, lineage,
                         how to open it, licence, citation
    stac/collection.json STAC collection + item (datacube, file, sar, sat,
    stac/<name>.json     projection extensions) pointing at the zip
    metadata.json        Zenodo deposition metadata
    MD5SUMS              md5 of every other file (what Zenodo reports)

A Zenodo record has no folders: there ``stac/<name>.json`` is ``stac_<name>.json``
(:func:`flat_name`).
"""

from __future__ import annotations

ARCHIVE_SUFFIX = ".zarr.zip"
ZARR_JSON = "zarr.json"
README_MD = "README.md"
METADATA_JSON = "metadata.json"
MD5SUMS = "MD5SUMS"
STAC_DIR = "stac"
COLLECTION_JSON = "collection.json"


def flat_name(rel: str) -> str:
    """A file's name on a Zenodo record, which has no folders: ``stac/a.json`` -> ``stac_a.json``."""
    return rel.replace("/", "_")


__all__ = [
    "ARCHIVE_SUFFIX",
    "COLLECTION_JSON",
    "MD5SUMS",
    "METADATA_JSON",
    "README_MD",
    "STAC_DIR",
    "ZARR_JSON",
    "flat_name",
]
