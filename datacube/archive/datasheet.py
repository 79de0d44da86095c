"""The datasheet: ``README.md`` of an archive, in markdown.

What a reader needs without sarcube: the citation, how to open the zip with
xarray and zarr, every variable with units and meaning, the grid, the dates
(acquisitions and pairs), the lineage (software, catalog, source items,
history), the files and the licence. Local paths and signed URLs are
sanitized out (:func:`~sarcube.datacube.redaction.sanitize_text`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import xarray as xr

from sarcube.datacube import schema
from sarcube.datacube.archive.citation import Citation
from sarcube.datacube.archive.layout import MD5SUMS, METADATA_JSON, STAC_DIR, flat_name
from sarcube.datacube.archive.stac import source_items
from sarcube.datacube.redaction import sanitize_text

#: how the datasheet names each chunk codec
_CODEC_NAMES = {schema.CODEC_ZSTD: "Blosc/zstd", schema.CODEC_GZIP: "gzip"}


def _md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out.extend("| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in rows)
    return out


def _spdx(license_id: str) -> str:
    """SPDX spelling of a lower-case licence id (cc-by-4.0 -> CC-BY-4.0, mit -> MIT)."""
    special = {"0bsd": "0BSD"}
    if license_id in special:
        return special[license_id]
    keep = re.compile(r"\d+(\.\d+)*|only|or|later")
    return "-".join(p if keep.fullmatch(p) else p.upper() for p in license_id.split("-"))


def _opening(ds: xr.Dataset, archive_file: str, citation: Citation) -> list[str]:
    """Title, version, DOI, description, what the file is and how to open it."""
    lines = [f"# {citation.title}", ""]
    if citation.version:
        lines += [f"Version {citation.version}.", ""]
    if citation.doi:
        lines += [f"DOI: [{citation.doi}](https://doi.org/{citation.doi})", ""]
    if citation.description:
        lines += [citation.description.strip(), ""]
    return lines + [
        f"A Sentinel-1 SAR and terrain datacube in one Zarr v3 store, zipped without compression as "
        f"`{archive_file}` (chunks are {_CODEC_NAMES[schema.codec_of(ds.attrs)]} compressed inside). It follows the "
        "sarcube cube "
        f"contract v{ds.attrs.get(schema.ATTR_CONTRACT, schema.CONTRACT_VERSION)} "
        f"({ds.attrs.get(schema.ATTR_CONVENTIONS, schema.CONVENTIONS)} attributes; NaN is nodata for floats).",
        "",
        "## Open it in Python",
        "",
        "With xarray and zarr only (no sarcube needed):",
        "",
        "```python",
        "import xarray as xr, zarr",
        f'store = zarr.storage.ZipStore("{archive_file}", mode="r")',
        'ds = xr.open_zarr(store, decode_coords="all")  # lazy (dask), CRS in ds.spatial_ref',
        "```",
        "",
        "With sarcube (checks the cube contract, CRS through rioxarray):",
        "",
        "```python",
        "from sarcube.datacube import open_cube",
        f'ds = open_cube("{archive_file}")',
        "print(ds.rio.crs, ds.data_vars)",
        "```",
        "",
    ]


def _variables(ds: xr.Dataset, s: schema.CubeSummary) -> list[str]:
    rows = []
    for name, dims, dtype, units, long_name in s.variables:
        spec = schema.spec_for(name, ds)
        meaning = spec.description if spec else long_name
        rows.append((f"`{name}`", long_name, units, f"({', '.join(dims)})", dtype, meaning))
    return ["## Variables", "", *_md_table(("name", "long name", "units", "dims", "dtype", "meaning"), rows)]


def _grid(s: schema.CubeSummary) -> list[str]:
    left, bottom, right, top = s.bounds
    return [
        "",
        "## Grid",
        "",
        f"- CRS: {s.crs} (CF grid mapping in `{schema.SPATIAL_REF}`)",
        f"- resolution: {s.resolution[0]:g} x {s.resolution[1]:g} m, pixel centres in `{schema.X}`/`{schema.Y}`",
        f"- bounds (left, bottom, right, top): {left:.2f}, {bottom:.2f}, {right:.2f}, {top:.2f}",
        "- shape: " + ", ".join(f"{k}={v}" for k, v in s.dims.items()),
        f"- chunks: 1 along {schema.TIME}/{schema.PAIR}, up to {schema.CHUNK_YX}x{schema.CHUNK_YX} in space",
        "",
    ]


def _dates(ds: xr.Dataset, s: schema.CubeSummary) -> list[str]:
    """The acquisitions (or the period) and the reference/activity pairs."""
    lines = ["## Dates", ""]
    if s.time_range:
        lines.append(f"Acquisitions from {s.time_range[0]} to {s.time_range[1]} (UTC), {len(s.acquisitions)} in all:")
        lines.append("")
        lines += _md_table(
            (f"{schema.TIME} (UTC)", schema.PLATFORM, "orbit", "relative orbit"),
            (
                (a[schema.TIME], a.get(schema.PLATFORM, ""), a.get(schema.ORBIT_STATE, ""),
                 a.get(schema.RELATIVE_ORBIT, ""))
                for a in s.acquisitions
            ),
        )
    else:
        lines.append(f"Period {ds.attrs.get(schema.ATTR_START, '?')} to {ds.attrs.get(schema.ATTR_END, '?')}.")
    if s.pairs:
        lines += ["", "Reference/activity pairs:", ""]
        lines += _md_table(
            (schema.PAIR, "reference (UTC)", "activity (UTC)", "relative orbit"),
            (
                (p[schema.PAIR], p.get(schema.REFERENCE_TIME, ""), p.get(schema.ACTIVITY_TIME, ""),
                 p.get(schema.PAIR_RELATIVE_ORBIT, ""))
                for p in s.pairs
            ),
        )
    return lines


def _lineage(ds: xr.Dataset) -> list[str]:
    """Software, catalog, collections, AOI and period, source items, creation, history."""
    collections = schema.decode_json_attr(ds, schema.ATTR_COLLECTIONS, default=[]) or []
    n_sources = len(source_items(ds))
    period = f"{ds.attrs.get(schema.ATTR_START, '?')} to {ds.attrs.get(schema.ATTR_END, '?')}"
    lines = [
        "",
        "## How it was built",
        "",
        f"- software: sarcube {ds.attrs.get(schema.ATTR_VERSION, '?')}",
        f"- STAC catalog: {sanitize_text(str(ds.attrs.get(schema.ATTR_CATALOG, '?')))}",
        f"- collections: {', '.join(map(str, collections)) or '?'}",
        f"- area of interest and period: {period} (GeoJSON in the `{schema.ATTR_AOI}` attribute)",
        f"- source STAC items: {n_sources} (ids in `stac/` and in the `{schema.ATTR_STAC_ITEMS}` attribute)",
        f"- created: {ds.attrs.get(schema.ATTR_CREATED, '?')}",
    ]
    history = sanitize_text(str(ds.attrs.get(schema.ATTR_HISTORY, ""))).strip()
    if history:
        lines += ["", "History:", "", "```text", history, "```"]
    return lines


def _closing(archive_file: str, citation: Citation) -> list[str]:
    """The files, the licence and the citation."""
    lines = [
        "",
        "## Files",
        "",
        f"- `{archive_file}`: the cube",
        f"- `{STAC_DIR}/`: STAC collection and item (datacube, file, sar, sat, projection extensions)",
        f"- `{METADATA_JSON}`: the Zenodo deposition metadata",
        f"- `{MD5SUMS}`: checksums; check with `md5sum -c {MD5SUMS}` or `sarcube verify .`",
        f"- on Zenodo, records have no folders: `{STAC_DIR}/x.json` is named "
        f"`{flat_name(STAC_DIR + '/x.json')}` (`sarcube verify` knows both)",
        "",
        "## Licence",
        "",
        f"{citation.license} (https://spdx.org/licenses/{_spdx(citation.license)}.html)",
        "",
        "## Citation",
        "",
        citation.text(),
        "",
    ]
    if citation.keywords:
        lines += ["Keywords: " + ", ".join(citation.keywords), ""]
    return lines


def datasheet(ds: xr.Dataset, *, archive_file: str, citation: Citation) -> str:
    """README.md text: variables with units, grid, dates, lineage, how to open, licence, citation."""
    s = schema.summarize(ds)
    lines = [
        *_opening(ds, archive_file, citation),
        *_variables(ds, s),
        *_grid(s),
        *_dates(ds, s),
        *_lineage(ds),
        *_closing(archive_file, citation),
    ]
    return sanitize_text("\n".join(lines))


__all__ = ["datasheet"]
