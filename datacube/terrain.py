"""Terrain layers from the DEM: slope, aspect, curvature (Horn 1981), the release mask and a hillshade.

Three layers per feature (``shared/STYLE.md``, after xarray-spatial's
``slope.py``): an ``@njit`` kernel on a numpy array, a numpy runner and a dask
runner (``map_overlap`` with depth 1), and the public xarray function, which
keeps the DEM's coordinates (and its ``spatial_ref``) and returns a contract
variable with units and the parameters it was computed with.

Gradients use Horn's 3x3 weights on the projected grid. The cell size is read
from the x/y coordinates, signed (``x[1] - x[0]``, ``y[1] - y[0]``), so
north-up (y decreasing) and south-up grids and non-square cells all give the
same physical gradients. Edges follow gdaldem without ``-compute_edges`` and
xarray-spatial: the outer ring of cells is NaN, and so is every cell that is
NaN or has a NaN among its 3x3 neighbours. Aspect is the downslope direction, degrees clockwise
from grid north (the projected +y axis), NaN on exactly flat cells. Curvature is
xarray-spatial's ``-2 (d + e) * 100`` (units 0.01 m-1, positive for convex-up),
written with each axis's own cell size so that non-square cells are right too.
"""

from __future__ import annotations

import math

import dask.array as da
import numpy as np
import xarray as xr
from numba import njit

from sarcube.datacube import schema
from sarcube.datacube.grid import as_grid, cell_size
from sarcube.errors import InputError

RADIANS_TO_DEGREES = 180.0 / math.pi
#: default slope range of potential release areas (avalanche-fcn-bianchi III-B), degrees
RELEASE_MIN_DEG = 30.0
RELEASE_MAX_DEG = 50.0
#: reach of the 3x3 kernels, cells
_KERNEL_DEPTH = 1
#: default light of a hillshade: from the north-west, 45 degrees above the horizon (as gdaldem)
HILLSHADE_AZIMUTH_DEG = 315.0
HILLSHADE_ALTITUDE_DEG = 45.0


# --- kernels (numpy arrays; NaN edges) -------------------------------------------

@njit(cache=True, nogil=True)
def _horn_gradient(z: np.ndarray, i: int, j: int, dx: float, dy: float) -> tuple[float, float]:
    """dz/dx and dz/dy (along the coordinates' directions) at interior cell (i, j)."""
    east = z[i - 1, j + 1] + 2.0 * z[i, j + 1] + z[i + 1, j + 1]
    west = z[i - 1, j - 1] + 2.0 * z[i, j - 1] + z[i + 1, j - 1]
    below = z[i + 1, j - 1] + 2.0 * z[i + 1, j] + z[i + 1, j + 1]
    above = z[i - 1, j - 1] + 2.0 * z[i - 1, j] + z[i - 1, j + 1]
    return (east - west) / (8.0 * dx), (below - above) / (8.0 * dy)


@njit(cache=True, nogil=True)
def _slope_kernel(z: np.ndarray, dx: float, dy: float) -> np.ndarray:
    rows, cols = z.shape
    out = np.full((rows, cols), np.nan, dtype=np.float32)
    for i in range(1, rows - 1):
        for j in range(1, cols - 1):
            if math.isnan(z[i, j]):
                continue  # Horn skips the centre; a NaN cell still has no slope (as gdaldem)
            p, q = _horn_gradient(z, i, j, dx, dy)
            out[i, j] = math.atan(math.sqrt(p * p + q * q)) * RADIANS_TO_DEGREES
    return out


@njit(cache=True, nogil=True)
def _aspect_kernel(z: np.ndarray, dx: float, dy: float) -> np.ndarray:
    rows, cols = z.shape
    out = np.full((rows, cols), np.nan, dtype=np.float32)
    for i in range(1, rows - 1):
        for j in range(1, cols - 1):
            if math.isnan(z[i, j]):
                continue
            p, q = _horn_gradient(z, i, j, dx, dy)
            if p == 0.0 and q == 0.0:
                continue  # flat: no aspect
            # downslope vector (-p, -q) in (east, north); azimuth clockwise from north
            azimuth = math.atan2(-p, -q) * RADIANS_TO_DEGREES
            if azimuth < 0.0:
                azimuth += 360.0
            out[i, j] = azimuth
    return out


@njit(cache=True, nogil=True)
def _curvature_kernel(z: np.ndarray, dx: float, dy: float) -> np.ndarray:
    rows, cols = z.shape
    out = np.full((rows, cols), np.nan, dtype=np.float32)
    for i in range(1, rows - 1):
        for j in range(1, cols - 1):
            d = (z[i + 1, j] + z[i - 1, j]) / 2.0 - z[i, j]
            e = (z[i, j + 1] + z[i, j - 1]) / 2.0 - z[i, j]
            out[i, j] = -2.0 * (d / (dy * dy) + e / (dx * dx)) * 100.0
    return out


@njit(cache=True, nogil=True)
def _hillshade_kernel(
    z: np.ndarray, dx: float, dy: float, sun_east: float, sun_north: float, sun_up: float
) -> np.ndarray:
    rows, cols = z.shape
    out = np.full((rows, cols), np.nan, dtype=np.float32)
    for i in range(1, rows - 1):
        for j in range(1, cols - 1):
            if math.isnan(z[i, j]):
                continue
            p, q = _horn_gradient(z, i, j, dx, dy)
            # cosine between the surface normal (-p, -q, 1) and the unit vector towards the sun
            lit = (sun_up - p * sun_east - q * sun_north) / math.sqrt(1.0 + p * p + q * q)
            out[i, j] = max(lit, 0.0)
    return out


# --- runners --------------------------------------------------------------------

def _run_numpy(kernel, z: np.ndarray, dx: float, dy: float) -> np.ndarray:
    return kernel(np.ascontiguousarray(z, dtype=np.float64), dx, dy)


def _run_dask(kernel, z: da.Array, dx: float, dy: float) -> da.Array:
    def block(chunk: np.ndarray) -> np.ndarray:
        return kernel(np.ascontiguousarray(chunk, dtype=np.float64), dx, dy)

    return z.astype(np.float64).map_overlap(
        block,
        depth=_KERNEL_DEPTH,
        boundary=np.nan,
        dtype=np.float32,
        meta=np.array((), dtype=np.float32),
    )


def _apply(kernel, dem: xr.DataArray, name: str, parameters: dict) -> xr.DataArray:
    dem = as_grid(dem, schema.DEM)
    dx, dy = cell_size(dem)
    if isinstance(dem.data, da.Array):
        data = _run_dask(kernel, dem.data, dx, dy)
    else:
        data = _run_numpy(kernel, np.asarray(dem.data), dx, dy)
    out = xr.DataArray(data, dims=schema.SPATIAL_DIMS, coords=dem.coords)
    return schema.make_variable(name, out, parameters=parameters)


# --- public -------------------------------------------------------------------

def slope(dem: xr.DataArray) -> xr.DataArray:
    """Slope angle, degrees from horizontal (Horn 1981); NaN on the outer ring and next to NaN."""
    return _apply(_slope_kernel, dem, schema.SLOPE, {"method": "horn", "edges": "nan"})


def aspect(dem: xr.DataArray) -> xr.DataArray:
    """Downslope direction, degrees clockwise from grid north (Horn 1981); NaN on flat cells and edges."""
    return _apply(_aspect_kernel, dem, schema.ASPECT, {"method": "horn", "edges": "nan", "flat": "nan"})


def curvature(dem: xr.DataArray) -> xr.DataArray:
    """Curvature as gdaldem/xarray-spatial, ``-2 (d + e) * 100`` in 0.01 m-1; NaN edges."""
    return _apply(_curvature_kernel, dem, schema.CURVATURE, {"method": "xarray-spatial", "edges": "nan"})


def hillshade(
    dem: np.ndarray,
    dx: float,
    dy: float,
    *,
    azimuth_deg: float = HILLSHADE_AZIMUTH_DEG,
    altitude_deg: float = HILLSHADE_ALTITUDE_DEG,
    z_factor: float = 1.0,
) -> np.ndarray:
    """Illumination in [0, 1] of a (y, x) DEM in metres lit from ``azimuth_deg`` (clockwise from grid north).

    ``dx``, ``dy`` are the signed cell sizes along x and y (``x[1] - x[0]``,
    ``y[1] - y[0]``); ``z_factor`` exaggerates relief. Horn gradients, so the
    edges are NaN as for :func:`slope`. A display layer, not a contract variable.
    """
    if not 0.0 < altitude_deg <= 90.0:
        raise InputError(f"sun altitude {altitude_deg} degrees must lie in (0, 90] (e.g. 45)")
    azimuth, altitude = math.radians(azimuth_deg), math.radians(altitude_deg)
    sun = (math.sin(azimuth) * math.cos(altitude), math.cos(azimuth) * math.cos(altitude), math.sin(altitude))
    z = np.asarray(dem, dtype=np.float64) * float(z_factor)
    return _hillshade_kernel(np.ascontiguousarray(z), float(dx), float(dy), *sun)


def release_mask(
    slope: xr.DataArray, min_deg: float = RELEASE_MIN_DEG, max_deg: float = RELEASE_MAX_DEG
) -> xr.DataArray:
    """uint8 mask of potential release areas: 1 where ``min_deg <= slope <= max_deg``, else 0 (NaN -> 0)."""
    min_deg, max_deg = float(min_deg), float(max_deg)
    if not (0.0 <= min_deg < max_deg <= 90.0):
        raise InputError(
            f"release slope range {min_deg}-{max_deg} degrees is not valid: need 0 <= min < max <= 90 (e.g. 30-50)"
        )
    slope = as_grid(slope, schema.SLOPE)
    mask = ((slope >= min_deg) & (slope <= max_deg)).astype(np.uint8)
    return schema.make_variable(schema.RELEASE, mask, parameters={"min_deg": min_deg, "max_deg": max_deg})


# slope, aspect and curvature share their names with the contract's variables, which only
# schema may spell: list them by reference
__all__ = [
    "HILLSHADE_ALTITUDE_DEG",
    "HILLSHADE_AZIMUTH_DEG",
    "RELEASE_MAX_DEG",
    "RELEASE_MIN_DEG",
    "hillshade",
    "release_mask",
] + [
    fn.__name__ for fn in (slope, aspect, curvature)
]
