"""STAC sources: catalogs as data, search, signing and retries.

A source is a YAML file in ``catalogs/`` parsed once (:mod:`sarcube.config`)
into a frozen :class:`CatalogSource`: where the catalog lives, which collections and asset
keys hold backscatter and elevation, their nodata, how the grid is resampled,
which item properties become the cube's per-time coordinates, and whether
asset hrefs must be signed. ``--catalog`` names one of three things:

- ``planetary-computer`` (or the name of any YAML file in ``catalogs/``);
- an ``http(s)://`` STAC API URL (``catalogs/stac-api.yaml`` with that URL);
- a folder holding ``catalog.json``, or a ``catalog.json`` path
  (``catalogs/local.yaml``), searched in-process.

STAC APIs are searched with pystac-client, whose HTTP session retries with
exponential backoff (``urllib3.Retry`` on connection errors and 429/5xx).
Hrefs are signed by :meth:`Catalog.sign` right before an asset is read, never
at search time: ``Client.open(..., modifier=planetary_computer.sign_inplace)``
would put SAS tokens (about 45 minutes) into the items as they are found, and
a long build would read with expired ones. Query strings are stripped
(:mod:`sarcube.datacube.redaction`) before an href is logged or stored.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from sarcube.config import YAML_KEY, parse, read_yaml
from sarcube.datacube import schema
from sarcube.datacube.redaction import redact, strip_query
from sarcube.datacube.retry import RETRY_STATUSES, retry_backoff_s
from sarcube.errors import AssetReadError, CatalogError, InputError, NoItemsFoundError

log = logging.getLogger(__name__)

DEFAULT_CATALOG = "planetary-computer"
API_SOURCE = "stac-api"
STATIC_SOURCE = "local"
#: STAC API requests: retries of the HTTP session, its first backoff delay, timeout
STAC_RETRIES = 5
STAC_BACKOFF_S = 0.5
STAC_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class CollectionSource:
    """One collection of a catalog and how its assets are read."""

    #: STAC collection id
    collection: str
    #: cube variable -> STAC asset key
    assets: Mapping[str, str]
    #: source nodata value (None: the file's own)
    nodata: float | None = None
    #: resampling onto the cube grid (rasterio names: nearest, bilinear, average...)
    resampling: str = "nearest"


@dataclass(frozen=True)
class CatalogSource:
    """A STAC source as written in ``catalogs/<name>.yaml`` (keys = fields; ``elevation`` holds :attr:`dem`)."""

    #: short name (default: the YAML file's stem)
    name: str
    #: ``api`` (searched with pystac-client) or ``static`` (searched in-process)
    kind: str
    backscatter: CollectionSource
    dem: CollectionSource = field(metadata={YAML_KEY: "elevation"})
    #: cube per-time coordinate (platform, orbit_state, relative_orbit) -> item property
    properties: Mapping[str, str]
    #: API root URL, or the static catalog's ``catalog.json``
    url: str | None = None
    #: ``planetary_computer`` or None
    signing: str | None = None
    #: items per page of an API search
    page_size: int = 100


def load_source(path_or_name: str | Path) -> CatalogSource:
    """Parse a catalog YAML (a path, or the name of a file in ``catalogs/``)."""
    path = Path(path_or_name)
    if path.suffix not in (".yaml", ".yml"):
        path = Path(str(resources.files("sarcube.catalogs").joinpath(f"{path_or_name}.yaml")))
    if not path.is_file():
        raise CatalogError(f"catalog source {str(path_or_name)!r} not found: known sources are {known_sources()}")
    raw = read_yaml(path, "catalog source", CatalogError)
    raw.setdefault("name", path.stem)
    where = f"catalog source {str(path)!r}"
    source = parse(CatalogSource, raw, where, error=CatalogError)
    missing = [c for c in (schema.PLATFORM, schema.ORBIT_STATE, schema.RELATIVE_ORBIT) if c not in source.properties]
    if missing:
        raise CatalogError(f"{where}: properties lacks {missing}; see catalogs/planetary-computer.yaml")
    if source.kind not in ("api", "static"):
        raise CatalogError(f"{where}: kind must be 'api' or 'static', not {source.kind!r}")
    return source


def known_sources() -> list[str]:
    """Names of the YAML sources shipped in ``catalogs/``."""
    return sorted(
        p.name.removesuffix(".yaml") for p in resources.files("sarcube.catalogs").iterdir() if p.name.endswith(".yaml")
    )


# --- signing -----------------------------------------------------------------------

def _sign_planetary_computer(href: str) -> str:
    import planetary_computer

    return planetary_computer.sign_url(href)


SIGNERS: dict[str, Callable[[str], str]] = {"planetary_computer": _sign_planetary_computer}


# --- search -----------------------------------------------------------------------------

@dataclass(frozen=True)
class SearchRequest:
    """What to look for: lon/lat bbox, inclusive UTC dates and exact property values."""

    bbox: tuple[float, float, float, float]
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    #: STAC property -> required value
    properties: Mapping[str, Any] | None = None

    def datetime_range(self) -> str | None:
        if self.start is None and self.end is None:
            return None
        fmt = "%Y-%m-%dT%H:%M:%SZ"
        lo = self.start.strftime(fmt) if self.start else ".."
        hi = self.end.strftime(fmt) if self.end else ".."
        return f"{lo}/{hi}"


def item_datetime(item: Any) -> dt.datetime:
    """An item's acquisition time (``datetime``, else ``start_datetime``), UTC."""
    when = item.datetime or item.common_metadata.start_datetime
    if when is None:
        raise CatalogError(f"STAC item {item.id!r} has neither datetime nor start_datetime")
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _matches(item: Any, request: SearchRequest) -> bool:
    import shapely.geometry

    if request.properties:
        for key, value in request.properties.items():
            if item.properties.get(key) != value:
                return False
    if request.start or request.end:
        when = item_datetime(item)
        if (request.start and when < request.start) or (request.end and when > request.end):
            return False
    geometry = shapely.geometry.shape(item.geometry) if item.geometry else shapely.geometry.box(*item.bbox)
    return bool(geometry.intersects(shapely.geometry.box(*request.bbox)))


class Catalog:
    """An opened STAC source: search collections, sign hrefs for reading."""

    def __init__(self, source: CatalogSource, label: str) -> None:
        self.source = source
        #: what the cube's ``catalog`` attr records (never a token)
        self.label = label
        self._signer = SIGNERS.get(source.signing) if source.signing else None
        if source.signing and self._signer is None:
            raise CatalogError(f"catalog {label!r}: unknown signing {source.signing!r}; known: {sorted(SIGNERS)}")

    def sign(self, href: str) -> str:
        """The href to read now (signed for sources that need it)."""
        return self._signer(href) if self._signer else href

    def search(self, collection: str, request: SearchRequest) -> list[Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def temporal_extent(self, collection: str) -> tuple[dt.datetime | None, dt.datetime | None] | None:
        """The collection's temporal extent when the catalog states one."""
        return None


class ApiCatalog(Catalog):
    """A STAC API searched with pystac-client (retrying HTTP session)."""

    def __init__(self, source: CatalogSource, label: str) -> None:
        super().__init__(source, label)
        from pystac_client import Client
        from pystac_client.stac_api_io import StacApiIO
        from urllib3.util.retry import Retry

        retries = Retry(
            total=STAC_RETRIES,
            backoff_factor=retry_backoff_s(STAC_BACKOFF_S),
            status_forcelist=RETRY_STATUSES,
            allowed_methods=None,  # POST searches are idempotent: retry them too
        )
        stac_io = StacApiIO(max_retries=retries, timeout=STAC_TIMEOUT_S)
        try:
            self.client = Client.open(str(source.url), stac_io=stac_io)
        except Exception as err:  # requests, pystac and API errors alike
            raise CatalogError(
                f"cannot open STAC API {label!r} ({type(err).__name__}: {redact(str(err))[:200]}); check --catalog and "
                "the network"
            ) from err

    def search(self, collection: str, request: SearchRequest) -> list[Any]:
        from pystac_client import ConformanceClasses

        kwargs: dict[str, Any] = {
            "collections": [collection],
            "bbox": list(request.bbox),
            "limit": self.source.page_size,
        }
        if request.datetime_range():
            kwargs["datetime"] = request.datetime_range()
        if request.properties and self.client.conforms_to(ConformanceClasses.FILTER):
            kwargs["filter"] = {
                "op": "and",
                "args": [{"op": "=", "args": [{"property": k}, v]} for k, v in request.properties.items()],
            }
            kwargs["filter_lang"] = "cql2-json"
        try:
            items = list(self.client.search(**kwargs).items())
        except Exception as err:
            raise CatalogError(
                f"STAC search of {collection!r} at {self.label!r} failed ({type(err).__name__}: "
                f"{redact(str(err))[:200]})"
            ) from err
        for item in items:
            _pin_hrefs(item)
        # The same filters in-process: APIs without the filter extension ignore them.
        return [item for item in items if _matches(item, request)]

    def temporal_extent(self, collection: str) -> tuple[dt.datetime | None, dt.datetime | None] | None:
        try:
            interval = self.client.get_collection(collection).extent.temporal.intervals[0]
        except Exception:  # the extent only explains an empty search
            return None
        return interval[0], interval[1]


class StaticCatalog(Catalog):
    """A static catalog on disk, searched in-process by bbox, datetime and properties."""

    def __init__(self, source: CatalogSource, label: str) -> None:
        super().__init__(source, label)
        import pystac

        try:
            self.catalog = pystac.Catalog.from_file(str(source.url))
        except Exception as err:
            raise CatalogError(
                f"cannot read static catalog {label!r} ({type(err).__name__}: {err}); is it a STAC catalog.json?"
            ) from err
        self._items: list[Any] | None = None

    def items(self) -> list[Any]:
        if self._items is None:
            import pystac

            try:
                items = list(self.catalog.get_items(recursive=True))
            except (pystac.STACError, ValueError, KeyError, TypeError, OSError) as err:
                raise CatalogError(
                    f"static catalog {self.label!r} holds an unreadable item or child "
                    f"({type(err).__name__}: {str(err)[:300]}): fix or remove that file, or rewrite the catalog"
                ) from err
            for item in items:
                item.make_asset_hrefs_absolute()
            self._items = items
        return self._items

    def search(self, collection: str, request: SearchRequest) -> list[Any]:
        return [i for i in self.items() if i.collection_id == collection and _matches(i, request)]

    def temporal_extent(self, collection: str) -> tuple[dt.datetime | None, dt.datetime | None] | None:
        found = self.catalog.get_child(collection, recursive=True)
        if found is None or not hasattr(found, "extent"):
            return None
        interval = found.extent.temporal.intervals[0]
        return interval[0], interval[1]


def _pin_hrefs(item: Any) -> None:
    """Make asset hrefs absolute as the API meant them, then drop the self link.

    pystac (and odc-stac through it) resolves a local absolute path such as
    ``/data/vv.tif`` against an API item's ``http://`` self URL.
    """
    for key in list(item.assets):
        item.assets[key].href = asset_href(item, key)
    item.set_self_href(None)


def open_catalog(catalog: str | Path = DEFAULT_CATALOG) -> Catalog:
    """Open ``--catalog``: a source name, an http(s) STAC API URL, or a static catalog folder/``catalog.json``."""
    text = str(catalog).strip()
    if text.startswith(("http://", "https://")):
        source = replace(load_source(API_SOURCE), url=text.rstrip("/"))
        return ApiCatalog(source, strip_query(text))
    if text in known_sources():
        source = load_source(text)
        if source.kind == "api":
            return ApiCatalog(source, text)
        raise CatalogError(f"catalog source {text!r} needs a path: pass the catalog folder or catalog.json")
    path = Path(text).expanduser()
    if path.is_dir():
        path = path / "catalog.json"
    if path.is_file() and path.suffix == ".json":
        source = replace(load_source(STATIC_SOURCE), url=str(path.resolve()))
        return StaticCatalog(source, str(path.resolve()))
    raise CatalogError(
        f"unknown catalog {text!r}: use one of {[s for s in known_sources() if s not in (API_SOURCE, STATIC_SOURCE)]}, "
        "an http(s):// STAC API URL, or a folder holding catalog.json"
    )


def _describe(request: SearchRequest) -> str:
    bbox = ", ".join(f"{v:.4f}" for v in request.bbox)
    when = f" between {request.start:%Y-%m-%d} and {request.end:%Y-%m-%d}" if request.start and request.end else ""
    return f"bbox ({bbox}){when}"


def search_backscatter(
    catalog: Catalog,
    bbox: tuple[float, float, float, float],
    start: dt.datetime,
    end: dt.datetime,
    *,
    orbit_state: str | None = None,
    relative_orbit: int | None = None,
) -> list[Any]:
    """Sentinel-1 items over ``bbox`` in ``[start, end]``, optionally one orbit direction/track.

    Raises :class:`NoItemsFoundError` naming the filters that matched nothing,
    or :class:`InputError` when the dates lie outside the collection.
    """
    src = catalog.source
    props: dict[str, Any] = {}
    if orbit_state:
        props[src.properties[schema.ORBIT_STATE]] = orbit_state
    if relative_orbit is not None:
        props[src.properties[schema.RELATIVE_ORBIT]] = int(relative_orbit)
    request = SearchRequest(bbox, start, end, props or None)
    items = catalog.search(src.backscatter.collection, request)
    if items:
        return sorted(items, key=lambda i: (item_datetime(i), i.id))
    coll = src.backscatter.collection
    if props:
        unfiltered = catalog.search(coll, replace(request, properties=None))
        if unfiltered:
            seen = sorted(
                {
                    (
                        str(i.properties.get(src.properties[schema.ORBIT_STATE])),
                        i.properties.get(src.properties[schema.RELATIVE_ORBIT]),
                    )
                    for i in unfiltered
                },
                key=str,
            )
            wanted = ", ".join(f"{k}={v}" for k, v in props.items())
            have = "; ".join(f"{o} orbit {r}" for o, r in seen)
            raise NoItemsFoundError(
                f"{len(unfiltered)} {coll!r} items cover the AOI and dates in {catalog.label!r}, but none with "
                f"{wanted} "
                f"(available: {have}); change --orbit/--relative-orbit"
            )
    extent = catalog.temporal_extent(coll)
    if extent is not None:
        lo, hi = extent
        if (hi is not None and start > hi) or (lo is not None and end < lo):
            span = f"{lo:%Y-%m-%d} .. {hi:%Y-%m-%d}" if hi else f"{lo:%Y-%m-%d} .. open"
            raise InputError(
                f"dates {start:%Y-%m-%d}..{end:%Y-%m-%d} lie outside collection {coll!r} ({span}): change --start/--end"
            )
    raise NoItemsFoundError(
        f"no {coll!r} items in catalog {catalog.label!r} for {_describe(request)}: check --aoi, --start/--end and "
        "--catalog"
    )


def search_dem(catalog: Catalog, bbox: tuple[float, float, float, float]) -> list[Any]:
    """Elevation tiles covering ``bbox`` (any date)."""
    coll = catalog.source.dem.collection
    items = catalog.search(coll, SearchRequest(bbox))
    if not items:
        raise NoItemsFoundError(
            f"no {coll!r} elevation items in catalog {catalog.label!r} for {_describe(SearchRequest(bbox))}: the AOI "
            "is outside the DEM's coverage"
        )
    return sorted(items, key=lambda i: i.id)


def asset_href(item: Any, key: str) -> str:
    """Absolute href of ``item``'s asset ``key`` (unsigned)."""
    asset = item.assets.get(key)
    if asset is None:
        raise CatalogError(
            f"STAC item {item.id!r} has no asset {key!r} (it has {sorted(item.assets)}); check the catalog's asset keys"
        )
    if "://" in asset.href or Path(asset.href).is_absolute():
        return asset.href  # pystac would resolve a local absolute path against an http item's URL
    return asset.get_absolute_href() or asset.href


def provenance(items: Iterable[Any], asset_keys: Sequence[str]) -> list[dict[str, Any]]:
    """``stac_items`` attr entries: id, collection and unsigned asset hrefs."""
    out = []
    for item in items:
        hrefs = {k: strip_query(asset_href(item, k)) for k in asset_keys if k in item.assets}
        out.append({"id": item.id, "collection": item.collection_id, "assets": hrefs})
    return out


__all__ = [
    "AssetReadError",
    "ApiCatalog",
    "Catalog",
    "CatalogSource",
    "CollectionSource",
    "SearchRequest",
    "StaticCatalog",
    "asset_href",
    "item_datetime",
    "known_sources",
    "load_source",
    "open_catalog",
    "provenance",
    "search_backscatter",
    "search_dem",
]
