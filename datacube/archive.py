"""Citable archives of a cube: zipped store, STAC, datasheet, checksums, verification.

A published cube is a folder (see ``shared/DESIGN.md``)::

    <name>.zarr.zip      the store, zip without compression (chunks already are),
                         root zarr.json first, opens lazily with zarr's ZipStore
    README.md            datasheet: variables with units, grid, dates, lineage,
                         how to open it, licence, citation
    stac/collection.json STAC collection + item (datacube, file, sar, sat,
    stac/<name>.json     projection extensions) pointing at the zip
    metadata.json        Zenodo deposition metadata (written by sarcube.pipelines)
    MD5SUMS              md5 of every other file (what Zenodo reports)

The zip is written from a finished local store, member by member, with fixed
timestamps, so the same cube always gives the same bytes (and the same md5:
uploads can resume). Metadata text never carries local absolute paths or
signed URLs (:func:`sanitize_text`). Nothing here ever extracts an archive.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import xarray as xr
from sarcube.datacube import schema, store
from sarcube.datacube.redaction import sanitize, sanitize_text
from tqdm.auto import tqdm

from sarcube.errors import CubeSchemaError, InputError, PublishError, VerifyError

ARCHIVE_SUFFIX = ".zarr.zip"
ZARR_JSON = "zarr.json"
README_MD = "README.md"
METADATA_JSON = "metadata.json"
MD5SUMS = "MD5SUMS"
STAC_DIR = "stac"
COLLECTION_JSON = "collection.json"
#: fixed member timestamp: identical cubes give byte-identical zips
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
COPY_BLOCK_BYTES = 8 * 1024 * 1024
#: verify shows a checksum progress bar for files larger than this
VERIFY_PROGRESS_MIN_BYTES = 256 * 1024 * 1024
#: multihash prefix of an md5 digest (code 0xd5, 16 bytes), as the STAC file extension wants
MULTIHASH_MD5 = "d510"
MULTIHASH_SHA256 = "1220"

# Sentinel-1 C-band SAR, interferometric wide swath (what the sar extension describes)
S1_CONSTELLATION = "sentinel-1"
S1_INSTRUMENT = "c-sar"
S1_INSTRUMENT_MODE = "IW"
S1_CENTER_FREQUENCY_GHZ = 5.405
S1_PRODUCT_TYPE = "RTC"
ASSET_ARCHIVE = "zarr-zip"
ASSET_DATASHEET = "datasheet"
MEDIA_TYPE_ZIP = "application/zip"
MEDIA_TYPE_MARKDOWN = "text/markdown"


@dataclass(frozen=True)
class Citation:
    """Who made the archive and how to cite it (for the datasheet and STAC)."""

    #: title of the dataset
    title: str
    #: creators as "Family, Given"
    creators: tuple[str, ...]
    #: licence id (SPDX, lower case, as Zenodo spells it, e.g. "cc-by-4.0")
    license: str
    #: ISO date (YYYY-MM-DD)
    publication_date: str
    version: str | None = None
    #: DOI without the resolver, once known (pre-reserved at deposition)
    doi: str | None = None
    keywords: tuple[str, ...] = ()
    #: free text (markdown) shown at the top of the datasheet
    description: str = ""

    def text(self) -> str:
        """One-line citation, DataCite style."""
        year = self.publication_date[:4]
        names = "; ".join(self.creators)
        version = f" (Version {self.version})" if self.version else ""
        where = f" https://doi.org/{self.doi}" if self.doi else ""
        return f"{names} ({year}). {self.title}{version} [Data set]. Zenodo.{where}".rstrip()


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


# --- the zip -------------------------------------------------------------------

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
        raise InputError(f"cube {text!r} is not on local disk: copy it locally first (publishing zips a finished local store)")
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
        raise PublishError(f"cube {str(cube)!r} has no consolidated metadata: rerun the step that wrote it (sarcube writes cubes consolidated)")
    members = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        first = rel.parts[0]
        if first == store.STAGING_GROUP or first.startswith(store.TRASH_PREFIX):
            continue
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        members.append(rel.as_posix())
    members.sort(key=lambda m: (m != ZARR_JSON, m))
    return members


def write_zip(cube: str | Path, zip_path: str | Path, *, progress: bool = True) -> Path:
    """Zip a finished local store into ``zip_path`` (stored, not compressed; root ``zarr.json`` first).

    Written to a temporary name and renamed when complete; metadata strings
    are sanitized (:func:`sanitize_text`), chunks copied byte for byte.
    """
    root = local_store(cube)
    members = store_members(root)
    zip_path = Path(zip_path)
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    partial = zip_path.with_name(zip_path.name + ".partial")
    total = sum((root / m).stat().st_size for m in members)
    try:
        with (
            zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf,
            tqdm(total=total, unit="B", unit_scale=True, desc=f"zip {zip_path.name}", disable=None if progress else True) as bar,
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


def _check_member_names(zip_path: Path, names: Iterable[str]) -> None:
    for name in names:
        pure = PurePosixPath(name)
        if pure.is_absolute() or ".." in pure.parts or "\\" in name or re.match(r"^[A-Za-z]:", name):
            raise VerifyError(f"{zip_path.name}: member {name!r} has an unsafe path (absolute or '..'); do not extract this archive")


# --- checksums -------------------------------------------------------------------

def _file_digest(path: Path, algorithm: str, progress: bool) -> str:
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with path.open("rb") as f, tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc=f"{algorithm} {path.name}", disable=None if progress else True) as bar:
        while block := f.read(COPY_BLOCK_BYTES):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


def md5_file(path: str | Path, *, progress: bool = False) -> str:
    """Hex md5 of a file (what Zenodo reports for each file)."""
    return _file_digest(Path(path), "md5", progress)


def multihash(md5_hex: str) -> str:
    """The STAC ``file:checksum`` (multihash, hex) of an md5 digest."""
    return MULTIHASH_MD5 + md5_hex


def _check_multihash(value: str, path: Path, known_md5: str | None = None) -> bool:
    """True when the multihash ``value`` matches the file at ``path`` (``known_md5``: already computed)."""
    if value.startswith(MULTIHASH_MD5):
        return (known_md5 or md5_file(path)) == value[len(MULTIHASH_MD5):]
    if value.startswith(MULTIHASH_SHA256):
        return _file_digest(path, "sha256", progress=False) == value[len(MULTIHASH_SHA256):]
    raise VerifyError(f"{path.name}: file:checksum {value[:8]}... uses a hash this verifier does not know (md5 or sha2-256 multihash expected)")


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


# --- what the cube holds ------------------------------------------------------------

def _iso(value: Any) -> str:
    return str(np.datetime_as_string(np.datetime64(value, "s"), unit="s")) + "Z"


def _crs_code(ds: xr.Dataset) -> tuple[int | None, str]:
    crs = ds.rio.crs
    if crs is None:
        raise CubeSchemaError(f"cube has no CRS in {schema.SPATIAL_REF!r}: write it with schema.with_crs()")
    return crs.to_epsg(), crs.to_wkt()


def _geographic_bounds(ds: xr.Dataset, bounds: Sequence[float]) -> list[float]:
    from pyproj import Transformer

    transformer = Transformer.from_crs(ds.rio.crs, "EPSG:4326", always_xy=True)
    west, south, east, north = transformer.transform_bounds(*bounds, densify_pts=21)
    return [float(west), float(south), float(east), float(north)]


def source_items(ds: xr.Dataset) -> list[dict[str, Any]]:
    """The STAC items the cube was built from (ids, collections, hrefs without signing)."""
    raw = schema.decode_json_attr(ds, schema.ATTR_STAC_ITEMS, default=[]) or []
    items = []
    for entry in raw:
        items.append(sanitize(entry if isinstance(entry, Mapping) else {"id": str(entry)}))
    return items


def _nodata(var: xr.DataArray) -> Any:
    if var.dtype.kind == "f":
        return "nan"
    return None


# --- STAC ----------------------------------------------------------------------------

def stac_collection(ds: xr.Dataset, *, name: str, citation: Citation, files: Mapping[str, tuple[str, int]], folder: Path) -> Any:
    """A pystac Collection with one Item describing the archive.

    ``files`` maps the archive's and the datasheet's paths (relative to
    ``folder``) to (md5, size); they become assets with file:checksum/size.
    """
    import pystac
    from pystac.extensions.datacube import (
        AdditionalDimension,
        DatacubeExtension,
        HorizontalSpatialDimension,
        TemporalDimension,
        Variable,
    )
    from pystac.extensions.file import FileExtension
    from pystac.extensions.projection import ProjectionExtension
    from pystac.extensions.sar import FrequencyBand, Polarization, SarExtension
    from pystac.extensions.sat import OrbitState, SatExtension

    summary = schema.summarize(ds)
    epsg, wkt = _crs_code(ds)
    reference_system: Any = epsg if epsg is not None else wkt
    bbox = _geographic_bounds(ds, summary.bounds)
    west, south, east, north = bbox
    geometry = {"type": "Polygon", "coordinates": [[[west, south], [east, south], [east, north], [west, north], [west, south]]]}

    start, end = _time_extent(ds)
    item = pystac.Item(
        id=name,
        geometry=geometry,
        bbox=bbox,
        datetime=None,
        properties={"title": citation.title},
        start_datetime=start,
        end_datetime=end,
    )
    common = item.common_metadata
    common.constellation = S1_CONSTELLATION
    common.instruments = [S1_INSTRUMENT]
    common.license = citation.license
    platforms = _unique(ds, schema.PLATFORM)
    if len(platforms) == 1:
        common.platform = str(platforms[0]).lower()
    created = ds.attrs.get(schema.ATTR_CREATED)
    if created:
        try:
            common.created = dt.datetime.fromisoformat(str(created).replace("Z", "+00:00"))
        except ValueError:
            pass
    if citation.description:
        item.properties["description"] = citation.description
    if citation.keywords:
        item.properties["keywords"] = list(citation.keywords)
    if citation.version:
        item.properties["version"] = citation.version
    if citation.doi:
        item.properties["sci:doi"] = citation.doi
        item.properties["sci:citation"] = citation.text()

    # datacube: dimensions and variables
    dims: dict[str, Any] = {}
    xs, ys = ds[schema.X].values, ds[schema.Y].values
    for dim, values in ((schema.X, xs), (schema.Y, ys)):
        step = float(values[1] - values[0]) if values.size > 1 else None
        d = HorizontalSpatialDimension({"type": "spatial", "axis": dim})
        d.extent = [float(values.min()), float(values.max())]
        d.step = step
        d.reference_system = reference_system
        d.description = ds[dim].attrs.get("long_name", f"{dim} coordinate of projection") + " (pixel centres, m)"
        dims[dim] = d
    if schema.TIME in ds.dims:
        d = TemporalDimension({"type": "temporal"})
        d.values = [_iso(t) for t in ds[schema.TIME].values]
        d.extent = [d.values[0], d.values[-1]] if d.values else [None, None]
        d.description = "acquisition start times (UTC)"
        dims[schema.TIME] = d
    if schema.PAIR in ds.dims:
        n = int(ds.sizes[schema.PAIR])
        d = AdditionalDimension({"type": "index"})
        d.values = [int(v) for v in ds[schema.PAIR].values]
        d.extent = [0, n - 1]
        d.description = "reference/activity acquisition pairs; times in the reference_time and activity_time coordinates"
        dims[schema.PAIR] = d
    variables: dict[str, Any] = {}
    for var_name, var in ds.data_vars.items():
        if var_name == schema.SPATIAL_REF:
            continue
        spec = schema.spec_for(str(var_name), ds)
        v = Variable({"type": "data", "dimensions": [str(x) for x in var.dims]})
        v.description = spec.description if spec else str(var.attrs.get("long_name", var_name))
        units = var.attrs.get("units", spec.units if spec else None)
        if units:
            v.unit = str(units)
        nodata = _nodata(var)
        if nodata is not None:
            v.properties["nodata"] = nodata
        variables[str(var_name)] = v
    for coord_name in (*schema.TIME_COORDS, *schema.PAIR_COORDS):
        if coord_name in ds.coords:
            coord = ds[coord_name]
            v = Variable({"type": "auxiliary", "dimensions": [str(x) for x in coord.dims]})
            v.description = str(coord.attrs.get("long_name", coord_name))
            variables[coord_name] = v
    DatacubeExtension.ext(item, add_if_missing=True).apply(dimensions=dims, variables=variables)

    # projection: native grid
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    transform = ds.rio.transform()
    proj.apply(
        code=f"EPSG:{epsg}" if epsg is not None else None,
        wkt2=None if epsg is not None else wkt,
        bbox=list(summary.bounds),
        shape=[int(ds.sizes[schema.Y]), int(ds.sizes[schema.X])],
        transform=[transform.a, transform.b, transform.c, transform.d, transform.e, transform.f],
    )

    # sar + sat: the acquisitions in the cube
    polarizations = [Polarization(str(v).upper()) for v in schema.BACKSCATTER if v in ds.data_vars]
    if polarizations:
        SarExtension.ext(item, add_if_missing=True).apply(
            instrument_mode=S1_INSTRUMENT_MODE,
            frequency_band=FrequencyBand.C,
            polarizations=polarizations,
            product_type=S1_PRODUCT_TYPE,
            center_frequency=S1_CENTER_FREQUENCY_GHZ,
        )
    orbit_states = [str(v) for v in _unique(ds, schema.ORBIT_STATE)]
    orbits = [int(v) for v in _unique(ds, schema.RELATIVE_ORBIT)]
    if orbit_states or orbits:
        sat = SatExtension.ext(item, add_if_missing=True)
        sat.apply(
            orbit_state=OrbitState(orbit_states[0]) if len(orbit_states) == 1 else None,
            relative_orbit=orbits[0] if len(orbits) == 1 else None,
        )
        if len(orbit_states) > 1 or len(orbits) > 1:  # a cube can mix orbits: list them all
            item.properties["sarcube:orbit_states"] = orbit_states
            item.properties["sarcube:relative_orbits"] = orbits

    # lineage: the source STAC items, catalog and collections
    sources = source_items(ds)
    item.properties["sarcube:source_items"] = [str(s.get("id")) for s in sources if s.get("id")]
    item.properties["sarcube:catalog"] = sanitize_text(str(ds.attrs.get(schema.ATTR_CATALOG, "")))
    item.properties["sarcube:collections"] = [str(c) for c in schema.decode_json_attr(ds, schema.ATTR_COLLECTIONS, default=[]) or []]
    item.properties["sarcube:contract"] = str(ds.attrs.get(schema.ATTR_CONTRACT, schema.CONTRACT_VERSION))

    # assets: the archive and the datasheet, with checksums and sizes
    for rel, (md5, size) in files.items():
        is_zip = rel.endswith(ARCHIVE_SUFFIX)
        asset = pystac.Asset(
            href=str((folder / rel).resolve()),
            title=f"{name} cube (zipped Zarr v3 store)" if is_zip else "datasheet",
            media_type=MEDIA_TYPE_ZIP if is_zip else MEDIA_TYPE_MARKDOWN,
            roles=["data"] if is_zip else ["metadata"],
        )
        item.add_asset(ASSET_ARCHIVE if is_zip else ASSET_DATASHEET, asset)
        FileExtension.ext(asset, add_if_missing=True).apply(checksum=multihash(md5), size=int(size))

    collection = pystac.Collection(
        id=name,
        description=citation.description or citation.title,
        title=citation.title,
        license=citation.license,
        keywords=list(citation.keywords) or None,
        extent=pystac.Extent(
            pystac.SpatialExtent([bbox]),
            pystac.TemporalExtent([[start, end]]),
        ),
    )
    summaries: dict[str, Any] = {"constellation": [S1_CONSTELLATION], "instruments": [S1_INSTRUMENT]}
    if platforms:
        summaries[schema.PLATFORM] = sorted(str(p).lower() for p in platforms)
    if orbit_states:
        summaries["sat:orbit_state"] = orbit_states
    if orbits:
        summaries["sat:relative_orbit"] = orbits
    if polarizations:
        summaries["sar:polarizations"] = [p.value for p in polarizations]
    collection.summaries = pystac.Summaries(summaries)
    collection.add_item(item)
    return collection


def _unique(ds: xr.Dataset, name: str) -> list[Any]:
    if name not in ds.coords:
        return []
    values = [v.item() if hasattr(v, "item") else v for v in np.asarray(ds[name].values).ravel()]
    return sorted(set(values), key=str)


def _time_extent(ds: xr.Dataset) -> tuple[dt.datetime, dt.datetime]:
    def to_dt(value: Any) -> dt.datetime:
        return dt.datetime.fromisoformat(_iso(value).replace("Z", "+00:00"))

    if schema.TIME in ds.dims and ds.sizes[schema.TIME]:
        t = ds[schema.TIME].values
        return to_dt(t.min()), to_dt(t.max())
    times = [ds[c].values for c in (schema.REFERENCE_TIME, schema.ACTIVITY_TIME) if c in ds.coords]
    if times:
        allt = np.concatenate([np.asarray(t).ravel() for t in times])
        return to_dt(allt.min()), to_dt(allt.max())
    try:
        return to_dt(ds.attrs[schema.ATTR_START]), to_dt(ds.attrs[schema.ATTR_END])
    except (KeyError, ValueError) as err:
        raise CubeSchemaError(f"cube has no time coordinate and no {schema.ATTR_START!r}/{schema.ATTR_END!r} attrs: cannot date the archive") from err


def write_stac(collection: Any, folder: Path, name: str) -> tuple[str, ...]:
    """Save ``stac/collection.json`` and ``stac/<name>.json`` (self-contained, relative hrefs)."""
    import pystac

    stac_dir = folder / STAC_DIR
    if stac_dir.exists():
        shutil.rmtree(stac_dir)
    collection.normalize_hrefs(str(stac_dir.resolve()))
    for item in collection.get_items():
        item.set_self_href(str((stac_dir / f"{name}.json").resolve()))
    collection.make_all_asset_hrefs_relative()
    collection.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return (f"{STAC_DIR}/{COLLECTION_JSON}", f"{STAC_DIR}/{name}.json")


# --- the datasheet -----------------------------------------------------------------

def _md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out.extend("| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in rows)
    return out


def datasheet(ds: xr.Dataset, *, archive_file: str, citation: Citation) -> str:
    """README.md text: variables with units, grid, dates, lineage, how to open, licence, citation."""
    s = schema.summarize(ds)
    lines = [f"# {citation.title}", ""]
    if citation.version:
        lines += [f"Version {citation.version}.", ""]
    if citation.doi:
        lines += [f"DOI: [{citation.doi}](https://doi.org/{citation.doi})", ""]
    if citation.description:
        lines += [citation.description.strip(), ""]
    lines += [
        f"A Sentinel-1 SAR and terrain datacube in one Zarr v3 store, zipped without compression as "
        f"`{archive_file}` (chunks are Blosc/zstd compressed inside). It follows the sarcube cube "
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
        "## Variables",
        "",
    ]
    rows = []
    for name, dims, dtype, units, long_name in s.variables:
        spec = schema.spec_for(name, ds)
        meaning = spec.description if spec else long_name
        rows.append((f"`{name}`", long_name, units, f"({', '.join(dims)})", dtype, meaning))
    lines += _md_table(("name", "long name", "units", "dims", "dtype", "meaning"), rows)
    left, bottom, right, top = s.bounds
    lines += [
        "",
        "## Grid",
        "",
        f"- CRS: {s.crs} (CF grid mapping in `{schema.SPATIAL_REF}`)",
        f"- resolution: {s.resolution[0]:g} x {s.resolution[1]:g} m, pixel centres in `{schema.X}`/`{schema.Y}`",
        f"- bounds (left, bottom, right, top): {left:.2f}, {bottom:.2f}, {right:.2f}, {top:.2f}",
        "- shape: " + ", ".join(f"{k}={v}" for k, v in s.dims.items()),
        f"- chunks: 1 along {schema.TIME}/{schema.PAIR}, up to {schema.CHUNK_YX}x{schema.CHUNK_YX} in space",
        "",
        "## Dates",
        "",
    ]
    if s.time_range:
        lines.append(f"Acquisitions from {s.time_range[0]} to {s.time_range[1]} (UTC), {len(s.acquisitions)} in all:")
        lines.append("")
        lines += _md_table(
            (f"{schema.TIME} (UTC)", schema.PLATFORM, "orbit", "relative orbit"),
            ((a[schema.TIME], a.get(schema.PLATFORM, ""), a.get(schema.ORBIT_STATE, ""), a.get(schema.RELATIVE_ORBIT, "")) for a in s.acquisitions),
        )
    else:
        lines.append(f"Period {ds.attrs.get(schema.ATTR_START, '?')} to {ds.attrs.get(schema.ATTR_END, '?')}.")
    if s.pairs:
        lines += ["", "Reference/activity pairs:", ""]
        lines += _md_table(
            (schema.PAIR, "reference (UTC)", "activity (UTC)", "relative orbit"),
            ((p[schema.PAIR], p.get(schema.REFERENCE_TIME, ""), p.get(schema.ACTIVITY_TIME, ""), p.get(schema.PAIR_RELATIVE_ORBIT, "")) for p in s.pairs),
        )
    collections = schema.decode_json_attr(ds, schema.ATTR_COLLECTIONS, default=[]) or []
    sources = source_items(ds)
    lines += [
        "",
        "## How it was built",
        "",
        f"- software: sarcube {ds.attrs.get(schema.ATTR_VERSION, '?')}",
        f"- STAC catalog: {sanitize_text(str(ds.attrs.get(schema.ATTR_CATALOG, '?')))}",
        f"- collections: {', '.join(map(str, collections)) or '?'}",
        f"- area of interest and period: {ds.attrs.get(schema.ATTR_START, '?')} to {ds.attrs.get(schema.ATTR_END, '?')} (GeoJSON in the `{schema.ATTR_AOI}` attribute)",
        f"- source STAC items: {len(sources)} (ids in `stac/` and in the `{schema.ATTR_STAC_ITEMS}` attribute)",
        f"- created: {ds.attrs.get(schema.ATTR_CREATED, '?')}",
    ]
    history = sanitize_text(str(ds.attrs.get(schema.ATTR_HISTORY, ""))).strip()
    if history:
        lines += ["", "History:", "", "```text", history, "```"]
    lines += [
        "",
        "## Files",
        "",
        f"- `{archive_file}`: the cube",
        f"- `{STAC_DIR}/`: STAC collection and item (datacube, file, sar, sat, projection extensions)",
        f"- `{METADATA_JSON}`: the Zenodo deposition metadata",
        f"- `{MD5SUMS}`: checksums; check with `md5sum -c {MD5SUMS}` or `sarcube verify .`",
        f"- on Zenodo, records have no folders: `{STAC_DIR}/x.json` is named `{flat_name(STAC_DIR + '/x.json')}` (`sarcube verify` knows both)",
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
    return sanitize_text("\n".join(lines))


def _spdx(license_id: str) -> str:
    """SPDX spelling of a lower-case licence id (cc-by-4.0 -> CC-BY-4.0, mit -> MIT)."""
    special = {"0bsd": "0BSD"}
    if license_id in special:
        return special[license_id]
    return "-".join(p.upper() if not re.fullmatch(r"\d+(\.\d+)*|only|or|later", p) else p for p in license_id.split("-"))


# --- writing the whole folder -------------------------------------------------------

def write_archive(
    cube: str | Path,
    out_dir: str | Path,
    *,
    citation: Citation,
    extra_files: Mapping[str, bytes] | None = None,
    progress: bool = True,
    rezip: bool = True,
) -> ArchiveFiles:
    """Write zip, STAC, datasheet, ``extra_files`` (e.g. metadata.json) and MD5SUMS into ``out_dir``.

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
    for rel, data in (extra_files or {}).items():
        (folder / rel).write_bytes(data)
        md5[rel] = md5_file(folder / rel)
    write_md5sums(folder, md5)
    return ArchiveFiles(folder=folder, archive=archive_file, datasheet=README_MD, stac=stac_files, md5=md5)


def archive_file_list(folder: str | Path) -> list[str]:
    """The files of an archive folder (from MD5SUMS) plus MD5SUMS itself, zip first."""
    listed = sorted(read_md5sums(folder), key=lambda rel: (not rel.endswith(ARCHIVE_SUFFIX), rel))
    return [*listed, MD5SUMS]


# --- verification --------------------------------------------------------------------

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


def flat_name(rel: str) -> str:
    """A file's name on a Zenodo record, which has no folders: ``stac/a.json`` -> ``stac_a.json``."""
    return rel.replace("/", "_")


def _safe_relative(folder: Path, rel: str, what: str) -> Path:
    """``folder/rel``, or its flat name as downloaded from Zenodo when only that exists."""
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts:
        raise VerifyError(f"{what} lists {rel!r}, a path outside the archive folder")
    path = folder / pure
    flat = folder / flat_name(rel)
    return flat if not path.is_file() and flat.is_file() else path


def verify_archive(folder: str | Path) -> VerifyReport:
    """Check every MD5SUMS entry, the STAC file checksums and sizes, and each zipped cube's schema.

    Raises :class:`VerifyError` naming the first file that fails.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"archive folder {str(folder)!r} does not exist: pass the --out folder of `sarcube publish`")
    md5_checked = []
    computed: dict[Path, str] = {}
    for rel, expected in read_md5sums(folder).items():
        path = _safe_relative(folder, rel, MD5SUMS)
        if not path.is_file():
            raise VerifyError(f"{rel}: listed in {MD5SUMS} but missing from {str(folder)!r}")
        actual = md5_file(path, progress=path.stat().st_size > VERIFY_PROGRESS_MIN_BYTES)
        computed[path.resolve()] = actual
        if actual != expected:
            raise VerifyError(f"{rel}: md5 {actual} does not match {MD5SUMS} ({expected}): the file is corrupt, download or publish it again")
        md5_checked.append(rel)

    stac_checked = []
    stac_dir = folder / STAC_DIR
    if stac_dir.is_dir():
        item_paths = [p for p in sorted(stac_dir.glob("*.json")) if p.name != COLLECTION_JSON]
    else:  # downloaded from Zenodo: flat names, every file in one folder
        item_paths = [p for p in sorted(folder.glob(flat_name(f"{STAC_DIR}/*.json"))) if p.name != flat_name(f"{STAC_DIR}/{COLLECTION_JSON}")]
    for item_path in item_paths:
        doc = json.loads(item_path.read_text())
        for key, asset in doc.get("assets", {}).items():
            href = str(asset.get("href", ""))
            if "://" in href or href.startswith("/"):
                raise VerifyError(f"{item_path.relative_to(folder)}: asset {key!r} href {href!r} is not relative to the archive")
            if item_path.parent == folder:
                target = (folder / PurePosixPath(href).name).resolve()
            else:
                target = (item_path.parent / href).resolve()
            if folder.resolve() not in target.parents:
                raise VerifyError(f"{item_path.relative_to(folder)}: asset {key!r} points outside the archive folder")
            rel = target.relative_to(folder.resolve()).as_posix()
            if not target.is_file():
                raise VerifyError(f"{rel}: STAC asset {key!r} is missing")
            size = asset.get("file:size")
            if size is not None and int(size) != target.stat().st_size:
                raise VerifyError(f"{rel}: size {target.stat().st_size} B does not match STAC file:size {size} B: the file is corrupt")
            checksum = asset.get("file:checksum")
            if checksum and not _check_multihash(str(checksum), target, computed.get(target)):
                raise VerifyError(f"{rel}: checksum does not match STAC file:checksum: the file is corrupt")
            stac_checked.append(rel)

    cubes, variables = [], []
    zips = sorted(folder.glob("*" + ARCHIVE_SUFFIX))
    if not zips:
        raise VerifyError(f"{str(folder)!r} holds no *{ARCHIVE_SUFFIX} cube")
    for zip_path in zips:
        try:
            with zipfile.ZipFile(zip_path) as zf:
                names = zf.namelist()
                _check_member_names(zip_path, names)
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
        cubes.append(zip_path.name)
        variables.extend(str(v) for v in ds.data_vars if v != schema.SPATIAL_REF)
    return VerifyReport(
        folder=folder,
        md5_checked=tuple(md5_checked),
        stac_checked=tuple(stac_checked),
        cubes=tuple(cubes),
        variables=tuple(variables),
    )


__all__ = [
    "ARCHIVE_SUFFIX",
    "MD5SUMS",
    "METADATA_JSON",
    "README_MD",
    "STAC_DIR",
    "ArchiveFiles",
    "Citation",
    "VerifyReport",
    "archive_file_list",
    "archive_name",
    "datasheet",
    "flat_name",
    "local_store",
    "md5_file",
    "multihash",
    "read_md5sums",
    "stac_collection",
    "store_members",
    "verify_archive",
    "write_archive",
    "write_md5sums",
    "write_stac",
    "write_zip",
]
