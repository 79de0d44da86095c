"""The cube grid: the AOI, its projected grid, and reading a grid back from coordinates.

One module owns every question about pixels and metres: :func:`parse_aoi` turns
``W,S,E,N`` or a GeoJSON file into a lon/lat polygon, :func:`grid_for` picks the
grid (UTM zone of the AOI centre by default, pixel edges snapped to multiples of
the resolution, so a build, its resume and an ``--append`` land on the same
pixels), and :func:`cell_size` / :func:`pixel_size` read the cell size back from a
cube's ``x``/``y`` coordinates for terrain, PAR, chips, exports and quicklooks.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from sarcube.datacube import schema
from sarcube.errors import InputError

DEFAULT_RESOLUTION_M = 20.0
#: cube pixels above which an AOI needs --force (~ 200 x 200 km at 20 m)
MAX_PIXELS = 100_000_000


# --- the area of interest ---------------------------------------------------------

def _antimeridian_message(aoi: object, w: float, s: float, e: float, n: float) -> str:
    return (
        f"--aoi {aoi!s} crosses the antimeridian (west {w:g} > east {e:g}); a cube lies on one side of it: "
        f"build two cubes, --aoi {w:g},{s:g},180,{n:g} and --aoi -180,{s:g},{e:g},{n:g}"
    )


def parse_aoi(aoi: str | Path | Sequence[float]) -> Any:
    """The AOI as a shapely polygon in lon/lat: ``W,S,E,N`` (text or 4 numbers) or a GeoJSON file.

    Raises :class:`InputError` for anything that is not a valid, non-empty polygon.
    """
    import shapely.geometry
    from shapely.validation import explain_validity

    if isinstance(aoi, str | Path) and not _looks_like_bbox(str(aoi)):
        geom = _read_geojson(Path(aoi))
    else:
        values = [v.strip() for v in str(aoi).strip("()[] ").split(",")] if isinstance(aoi, str) else list(aoi)
        try:
            w, s, e, n = (float(v) for v in values)
        except (TypeError, ValueError) as err:
            raise InputError(
                f"--aoi {aoi!r} is not W,S,E,N in degrees (e.g. --aoi 7.9,45.9,8.1,46.1) nor a GeoJSON file"
            ) from err
        if not (-180 <= w <= 180 and -180 <= e <= 180 and -90 <= s <= 90 and -90 <= n <= 90):
            raise InputError(
                f"--aoi {aoi!r}: longitudes must lie in [-180, 180] and latitudes in [-90, 90] (order W,S,E,N)"
            )
        if w > e and s < n and w > 0 > e and (e + 360.0 - w) < 180.0:
            raise InputError(_antimeridian_message(aoi, w, s, e, n))
        if w >= e or s >= n:
            raise InputError(f"--aoi {aoi!r} is empty: west must be < east and south < north (order W,S,E,N)")
        geom = shapely.geometry.box(w, s, e, n)
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise InputError(f"--aoi {aoi!s}: a {geom.geom_type} is not a polygon; give a Polygon or MultiPolygon")
    if geom.is_empty:
        raise InputError(f"--aoi {aoi!s} is empty")
    if not geom.is_valid:
        raise InputError(
            f"--aoi {aoi!s} is not a valid polygon ({explain_validity(geom)}); fix its ring (e.g. shapely make_valid "
            "or QGIS 'Fix geometries')"
        )
    if geom.area == 0:
        raise InputError(f"--aoi {aoi!s} is empty (zero area)")
    w, s, e, n = geom.bounds
    if (e - w > 180.0 and w < -90.0 and e > 90.0) or (w < 180.0 < e) or (w < -180.0 < e):
        raise InputError(
            f"--aoi {aoi!s} spans longitudes {w:g}..{e:g}: it crosses the antimeridian (180 degrees); "
            "a cube lies on one side of it: split the polygon at +-180 degrees and build one cube per part"
        )
    if not (-180 <= w and e <= 180 and -90 <= s and n <= 90):
        raise InputError(f"--aoi {aoi!s}: coordinates must be lon/lat degrees (EPSG:4326)")
    return geom


def _looks_like_bbox(text: str) -> bool:
    return text.count(",") == 3 and not Path(text).exists()


def _read_geojson(path: Path) -> Any:
    import shapely.geometry
    import shapely.ops

    if not path.is_file():
        raise InputError(f"--aoi {str(path)!r} is neither W,S,E,N nor an existing GeoJSON file")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"--aoi {str(path)!r} is not readable GeoJSON ({err})") from err
    if data.get("type") == "FeatureCollection":
        geoms = [f.get("geometry") for f in data.get("features", [])]
    elif data.get("type") == "Feature":
        geoms = [data.get("geometry")]
    else:
        geoms = [data]
    geoms = [g for g in geoms if g]
    if not geoms:
        raise InputError(f"--aoi {str(path)!r} holds no geometry")
    try:
        shapes = [shapely.geometry.shape(g) for g in geoms]
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise InputError(f"--aoi {str(path)!r}: geometry is not valid GeoJSON ({err})") from err
    if any(s.geom_type not in ("Polygon", "MultiPolygon") for s in shapes):
        kinds = sorted({s.geom_type for s in shapes})
        raise InputError(f"--aoi {str(path)!r}: {kinds} is not a polygon; give a Polygon or MultiPolygon")
    if len(shapes) == 1:
        return shapes[0]
    if not all(s.is_valid for s in shapes):
        bad = next(s for s in shapes if not s.is_valid)
        from shapely.validation import explain_validity

        raise InputError(f"--aoi {str(path)!r} is not a valid polygon ({explain_validity(bad)})")
    return shapely.ops.unary_union(shapes)


# --- the grid -------------------------------------------------------------------------

def utm_crs(lon: float, lat: float) -> str:
    """EPSG code of the UTM zone holding (lon, lat)."""
    zone = min(60, int((lon + 180.0) // 6.0) + 1)
    return f"EPSG:{32600 + zone if lat >= 0 else 32700 + zone}"


@dataclass(frozen=True)
class Grid:
    """The cube grid: CRS, pixel size (m) and snapped bounds."""

    crs: str
    resolution: float
    #: left, bottom, right, top (pixel edges, CRS units)
    bounds: tuple[float, float, float, float]

    @property
    def shape(self) -> tuple[int, int]:
        left, bottom, right, top = self.bounds
        return round((top - bottom) / self.resolution), round((right - left) / self.resolution)

    @property
    def x(self) -> np.ndarray:
        return self.bounds[0] + self.resolution * (np.arange(self.shape[1]) + 0.5)

    @property
    def y(self) -> np.ndarray:
        return self.bounds[3] - self.resolution * (np.arange(self.shape[0]) + 0.5)

    def geobox(self) -> Any:
        from affine import Affine
        from odc.geo.geobox import GeoBox

        left, _, _, top = self.bounds
        return GeoBox(self.shape, Affine(self.resolution, 0.0, left, 0.0, -self.resolution, top), self.crs)

    def same_as(self, x: np.ndarray, y: np.ndarray) -> bool:
        return x.shape == self.x.shape and y.shape == self.y.shape and np.allclose(x, self.x) and np.allclose(y, self.y)


def pyproj_crs(crs: str) -> Any:
    """``crs`` as a pyproj CRS (for comparisons with a cube's)."""
    from pyproj import CRS

    return CRS.from_user_input(crs)


def grid_for(aoi: Any, *, crs: str = "utm", resolution: float = DEFAULT_RESOLUTION_M, force: bool = False) -> Grid:
    """The grid covering ``aoi`` (lon/lat polygon); refuses more than :data:`MAX_PIXELS` unless ``force``."""
    from pyproj import CRS, Transformer
    from pyproj.exceptions import CRSError

    if not (resolution > 0 and math.isfinite(resolution)):
        raise InputError(f"--resolution {resolution!r} must be a positive number of metres")
    centre = aoi.centroid
    if str(crs).lower() == "utm":
        crs_code = utm_crs(centre.x, centre.y)
    else:
        try:
            parsed = CRS.from_user_input(crs)
        except CRSError as err:
            raise InputError(f"--crs {crs!r} is not a CRS: use utm or EPSG:<code>") from err
        if not parsed.is_projected:
            raise InputError(f"--crs {crs!r} is not projected (metres): use utm or a projected EPSG code")
        crs_code = parsed.to_string()
    to_grid = Transformer.from_crs("EPSG:4326", crs_code, always_xy=True)
    left, bottom, right, top = to_grid.transform_bounds(*aoi.bounds, densify_pts=21)
    left = math.floor(left / resolution) * resolution
    bottom = math.floor(bottom / resolution) * resolution
    right = math.ceil(right / resolution) * resolution
    top = math.ceil(top / resolution) * resolution
    grid = Grid(crs_code, float(resolution), (left, bottom, right, top))
    ny, nx = grid.shape
    if ny * nx > MAX_PIXELS and not force:
        raise InputError(
            f"--aoi is too large for --resolution {resolution:g}: {nx} x {ny} pixels "
            f"({ny * nx / 1e6:.0f} M > {MAX_PIXELS / 1e6:.0f} M); use a coarser --resolution, a smaller AOI or --force"
        )
    return grid


# --- reading the grid back from coordinates -------------------------------------------

def as_grid(arr: xr.DataArray, what: str) -> xr.DataArray:
    """``arr`` as (y, x), or an InputError saying what is wrong."""
    if not isinstance(arr, xr.DataArray):
        raise InputError(f"{what}: expected an xarray.DataArray on ({schema.Y}, {schema.X}), got {type(arr).__name__}")
    if set(arr.dims) != set(schema.SPATIAL_DIMS):
        raise InputError(f"{what}: dims {arr.dims} are not ({schema.Y}, {schema.X}); select one time/pair step first")
    return arr.transpose(*schema.SPATIAL_DIMS)


def cell_size(arr: xr.DataArray) -> tuple[float, float]:
    """Signed cell size ``(dx, dy)`` in metres from the x/y coordinates (dy < 0 for north-up)."""
    steps = []
    for dim in (schema.X, schema.Y):
        if dim not in arr.coords or arr.sizes[dim] < 2:
            raise InputError(
                f"{arr.name or 'array'}: needs a {dim!r} coordinate with at least 2 values to know the cell size"
            )
        values = np.asarray(arr[dim].values, dtype=np.float64)
        step = np.diff(values)
        if not (np.all(np.isfinite(step)) and np.allclose(step, step[0], rtol=1e-9, atol=1e-6) and step[0] != 0):
            raise InputError(
                f"{arr.name or 'array'}: coordinate {dim!r} is not regularly spaced; terrain needs a regular projected "
                "grid"
            )
        steps.append(float(step[0]))
    return steps[0], steps[1]


def pixel_size(ds: xr.Dataset | xr.DataArray) -> tuple[float, float]:
    """Unsigned pixel size ``(dx, dy)`` in metres; 1 m along x for a 1-pixel-wide cube, dy = dx if 1 pixel high."""
    dx = abs(float(ds[schema.X].values[1] - ds[schema.X].values[0])) if ds.sizes[schema.X] > 1 else 1.0
    dy = abs(float(ds[schema.Y].values[1] - ds[schema.Y].values[0])) if ds.sizes[schema.Y] > 1 else dx
    return dx, dy


def parse_point(text: str) -> tuple[float, float]:
    """``"LON,LAT"`` (degrees) as floats, or an InputError naming the fix."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        lon, lat = (float(p) for p in parts)
    except ValueError:
        raise InputError(f"--point {text!r}: give LON,LAT in degrees, e.g. --point 9.01,46.41") from None
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise InputError(f"--point {text!r}: longitude in [-180, 180] and latitude in [-90, 90] first, e.g. 9.01,46.41")
    return lon, lat


def pixel_at(ds: xr.Dataset, lon: float, lat: float) -> tuple[int, int]:
    """Row and column of the cube pixel holding (lon, lat); InputError when the point lies outside the cube."""
    from pyproj import Transformer

    x, y = Transformer.from_crs("EPSG:4326", ds.rio.crs, always_xy=True).transform(lon, lat)
    dx, dy = pixel_size(ds)
    xs, ys = ds[schema.X].values, ds[schema.Y].values
    col, row = int(np.argmin(np.abs(xs - x))), int(np.argmin(np.abs(ys - y)))
    if abs(xs[col] - x) > dx / 2 or abs(ys[row] - y) > dy / 2:
        to_lonlat = Transformer.from_crs(ds.rio.crs, "EPSG:4326", always_xy=True)
        (w, e), (s, n) = to_lonlat.transform([xs.min(), xs.max()], [ys.min(), ys.max()])
        raise InputError(
            f"--point {lon:g},{lat:g} is outside the cube (about lon {w:.4f}..{e:.4f}, lat {s:.4f}..{n:.4f}): "
            "pick a point inside it (see `sarcube info`)"
        )
    return row, col


# --- a cube's grid ------------------------------------------------------------------

def cube_grid(cube: xr.Dataset) -> tuple[Any, Any, tuple[int, int]]:
    """(CRS, affine transform of the pixel corners, (ny, nx)) of the cube grid."""
    import rioxarray  # noqa: F401  (registers .rio)

    crs = cube.rio.crs
    if crs is None:
        raise InputError("the cube has no CRS (spatial_ref): rebuild it with `sarcube build`")
    return crs, cube.rio.transform(recalc=True), (cube.sizes[schema.Y], cube.sizes[schema.X])


def cube_box(cube: xr.Dataset) -> Any:
    """The cube's bounds as a shapely box in its CRS."""
    from shapely.geometry import box

    return box(*cube.rio.bounds(recalc=True))


def yx_coords(cube: xr.Dataset) -> dict[str, xr.DataArray]:
    """The cube's ``y`` and ``x`` coordinates, for a layer put onto its grid."""
    return {schema.Y: cube[schema.Y], schema.X: cube[schema.X]}


__all__ = [
    "DEFAULT_RESOLUTION_M",
    "MAX_PIXELS",
    "Grid",
    "as_grid",
    "cell_size",
    "cube_box",
    "cube_grid",
    "grid_for",
    "parse_aoi",
    "parse_point",
    "pixel_at",
    "pixel_size",
    "pyproj_crs",
    "utm_crs",
    "yx_coords",
]
