"""``sarcube-demo.json``: what a demo catalog holds (AOI, dates, windows), for the steps that read it.

:func:`write_demo_manifest` and :func:`read_demo_manifest` are each other's
inverse: paths are stored relative to the catalog's folder, so a catalog can
be moved as a whole.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sarcube.errors import InputError

MANIFEST_NAME = "sarcube-demo.json"
LABELS_NAME = "labels.geojson"
MONITORED_NAME = "monitored.geojson"
CATALOG_NAME = "catalog.json"
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class DemoManifest:
    """What ``sarcube-demo.json`` records about a demo catalog."""

    #: path of the catalog's ``catalog.json``
    catalog: Path
    #: longitude/latitude box (W, S, E, N) inside the scene: pass it as ``--aoi``
    bbox_lonlat: tuple[float, float, float, float]
    #: the scene's bounds in its CRS (left, bottom, right, top), m
    bbox: tuple[float, float, float, float]
    #: the scene's CRS, e.g. "EPSG:32632"
    crs: str
    #: pixel size, m
    resolution: float
    #: pixels per side
    size: int
    seed: int
    hazard: str
    #: ISO dates covering every acquisition (inclusive)
    start: str
    end: str
    #: landslide trigger date (ISO), None for other hazards
    event_date: str | None
    #: snow-free reference window inside the dates (ISO start, end), for the ratio features
    summer: tuple[str, str]
    #: labels.geojson and monitored.geojson
    labels: Path
    monitored: Path
    #: number of acquisitions and of labelled objects
    acquisitions: int
    objects: int


def write_demo_manifest(manifest: DemoManifest) -> Path:
    """Write ``manifest`` as ``sarcube-demo.json`` next to its ``catalog.json``; return the file's path."""
    folder = manifest.catalog.parent
    doc = {
        "sarcube_demo": MANIFEST_VERSION,
        "catalog": manifest.catalog.relative_to(folder).as_posix(),
        "bbox_lonlat": list(manifest.bbox_lonlat),
        "bbox": list(manifest.bbox),
        "crs": manifest.crs,
        "resolution": manifest.resolution,
        "size": manifest.size,
        "seed": manifest.seed,
        "hazard": manifest.hazard,
        "start": manifest.start,
        "end": manifest.end,
        "event_date": manifest.event_date,
        "summer": list(manifest.summer),
        "labels": manifest.labels.relative_to(folder).as_posix(),
        "monitored": manifest.monitored.relative_to(folder).as_posix(),
        "acquisitions": manifest.acquisitions,
        "objects": manifest.objects,
    }
    path = folder / MANIFEST_NAME
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def read_demo_manifest(path: str | Path) -> DemoManifest:
    """The manifest of a demo catalog: give its folder, its ``catalog.json`` or the manifest file."""
    p = Path(path)
    folder = p if p.is_dir() else p.parent
    manifest_path = folder / MANIFEST_NAME
    if not manifest_path.is_file():
        raise InputError(
            f"{str(path)!r} is not a demo catalog (no {MANIFEST_NAME} there): write one with `sarcube demo-catalog OUT`"
        )
    try:
        raw = json.loads(manifest_path.read_text())
        return DemoManifest(
            catalog=folder / raw["catalog"],
            bbox_lonlat=tuple(float(v) for v in raw["bbox_lonlat"]),
            bbox=tuple(float(v) for v in raw["bbox"]),
            crs=str(raw["crs"]),
            resolution=float(raw["resolution"]),
            size=int(raw["size"]),
            seed=int(raw["seed"]),
            hazard=str(raw["hazard"]),
            start=str(raw["start"]),
            end=str(raw["end"]),
            event_date=raw["event_date"],
            summer=(str(raw["summer"][0]), str(raw["summer"][1])),
            labels=folder / raw["labels"],
            monitored=folder / raw["monitored"],
            acquisitions=int(raw["acquisitions"]),
            objects=int(raw["objects"]),
        )
    except (KeyError, TypeError, ValueError, IndexError, json.JSONDecodeError) as err:
        raise InputError(
            f"{str(manifest_path)!r} is not a valid demo manifest ({err}): "
            "write the catalog again with `sarcube demo-catalog`"
        ) from err
