"""Potential angle of reach (PAR), avalanche-fcn-bianchi III-B: exact and fast.

For every cell c, PAR is the largest elevation angle from c up to any release
cell r within the radius (4 km in the paper):

    PAR(c) = max over r in R(c) of atan2(z_r - z_c, dist(c, r)),
    R(c) = release cells r with finite z_r and 0 < dist(c, r) <= radius_m,

``dist`` being the horizontal distance between cell centres on the projected
grid. The cell itself is excluded (distance > 0), so a release cell's PAR comes
from the other release cells around it. The angle is negative where every
release cell in reach lies below c; PAR is NaN where no release cell is in
reach and where z_c is NaN. Release cells outside the DEM are unknown, so within
the radius of the DEM's border PAR sees only the part of the disc inside it
(load the DEM with a margin of the radius where that matters).

Kernels
- :func:`par_bruteforce`: the definition, every release cell within the radius
  (the reference of the tests and the benchmark).
- :func:`par_fast`: the same numbers from a branch-and-bound search over a
  max-elevation pyramid (quadtree) of the release cells (kernels in
  ``_par_search``). Since dist > 0, the angle is monotone in the slope ratio
  t = (z_r - z_c) / dist, so the search maximises t. A block with highest
  release elevation Z and distance range [dmin, dmax] from c bounds t by
  (Z - z_c) / dmin when Z >= z_c and by (Z - z_c) / min(dmax, radius) when
  Z < z_c (a negative numerator is largest over the largest distance). The
  cells within ``_WINDOW`` cells of c are scanned first, directly, so for
  Z >= z_c dmin is taken over the block's cells outside that window: the blocks
  around c, which the plain dmin (one cell or zero) never prunes, then are.
  Cells go in tiles of ``_TILE`` x ``_TILE``: (1) each cell scans its window,
  warm started from the best release cells of every other finished cell
  bordering the tile; (2) one search for the whole tile lists the leaf blocks whose bound for
  the tile (rise from its lowest cell, over the nearest offsets between block and
  tile) beats the smallest of those bests, which is a lower bound of every
  cell's answer, so no unlisted leaf can beat any cell; (3) each cell, warm
  started again from its finished left and upper neighbours, scans the listed
  leaves that neither their bound for the tile nor their own bound for the cell
  rules out. The tile's search replaces a search
  per cell, most of whose bounds (the upper levels) the cells of a tile share.
  Ratios are (z_r - z_c) times a table of 1/distance per cell offset; IEEE
  square root and division are monotone, so a bound is never below the t it
  bounds: the result is the exact maximum of the ratio, not an azimuth-sampled
  approximation.

Threads: all kernels are ``@njit(nogil=True)`` without ``parallel=True``, so dask's
threads run them side by side (numba's default workqueue threading layer aborts
``parallel=True`` code entered from several threads at once). Parallelism comes
from dask: :func:`potential_angle_of_reach` on a dask-backed DEM runs
:func:`dask.array.map_overlap` with a halo of ``floor(radius / cell) + 1`` cells,
and each block computes only its own cells from the halo.
"""

from __future__ import annotations

import math
from functools import partial

import dask.array as da
import numpy as np
import xarray as xr
from numba import njit

from sarcube.datacube import schema
from sarcube.datacube._par_search import RADIANS_TO_DEGREES, _dist2, _fast_kernel
from sarcube.datacube.grid import as_grid, cell_size
from sarcube.errors import InputError

#: avalanche-fcn-bianchi III-B: release cells within 4 km
PAR_RADIUS_M = 4000.0


# --- shared pieces ------------------------------------------------------------------

def reach_cells(radius_m: float, cell_m: float) -> int:
    """Cells along one axis that can hold a release cell within the radius (with one to spare)."""
    return int(math.floor(radius_m / abs(cell_m))) + 1


def _check_inputs(
    z: np.ndarray, release: np.ndarray, dx: float, dy: float, radius_m: float
) -> tuple[np.ndarray, np.ndarray]:
    z = np.asarray(z)
    release = np.asarray(release)
    if z.ndim != 2:
        raise InputError(f"PAR: the DEM must be 2-D (y, x), got shape {z.shape}")
    if release.shape != z.shape:
        raise InputError(
            f"PAR: release mask shape {release.shape} differs from the DEM's {z.shape}; compute it on the same grid"
        )
    for name, value in (("dx", dx), ("dy", dy)):
        if not (math.isfinite(value) and value != 0.0):
            raise InputError(f"PAR: cell size {name}={value} is not valid: give the grid spacing in metres")
    if not (math.isfinite(radius_m) and radius_m > 0.0):
        raise InputError(
            f"PAR: radius {radius_m} m is not valid: give a positive distance in metres (default {PAR_RADIUS_M})"
        )
    return np.ascontiguousarray(z, dtype=np.float64), np.ascontiguousarray(release != 0, dtype=np.uint8)


# --- brute force (reference) -------------------------------------------------------

@njit(cache=True, nogil=True)
def _bruteforce_kernel(z, release, dx, dy, radius_m, row_start, row_stop, out):
    rows, cols = z.shape
    r2 = radius_m * radius_m
    reach_y = int(math.floor(radius_m / abs(dy))) + 1
    reach_x = int(math.floor(radius_m / abs(dx))) + 1
    for i in range(row_start, row_stop):
        for j in range(cols):
            zc = z[i, j]
            if math.isnan(zc):
                continue
            best = -math.inf
            found = False
            for ii in range(max(0, i - reach_y), min(rows, i + reach_y + 1)):
                across = r2 - _dist2(ii - i, 0, dx, dy)
                if across < 0.0:
                    continue
                half = min(reach_x, int(math.sqrt(across) / abs(dx)) + 1)
                for jj in range(max(0, j - half), min(cols, j + half + 1)):
                    if release[ii, jj] == 0:
                        continue
                    zr = z[ii, jj]
                    if math.isnan(zr):
                        continue
                    d2 = _dist2(ii - i, jj - j, dx, dy)
                    if d2 == 0.0 or d2 > r2:
                        continue
                    angle = math.atan2(zr - zc, math.sqrt(d2))
                    if angle > best:
                        best = angle
                        found = True
            if found:
                out[i, j] = best * RADIANS_TO_DEGREES


def par_bruteforce(
    z: np.ndarray,
    release: np.ndarray,
    dx: float,
    dy: float,
    radius_m: float,
    *,
    rows: tuple[int, int] | None = None,
) -> np.ndarray:
    """PAR (degrees, float64) by the definition: every release cell within ``radius_m``.

    ``rows=(start, stop)`` computes only those rows (the others stay NaN), to time
    or check the reference on a sample of a large DEM.
    """
    z, release = _check_inputs(z, release, dx, dy, radius_m)
    start, stop = rows if rows is not None else (0, z.shape[0])
    out = np.full(z.shape, np.nan)
    _bruteforce_kernel(z, release, float(dx), float(dy), float(radius_m), int(start), int(stop), out)
    return out


# --- branch and bound (kernels in _par_search) ----------------------------------------

def par_fast(z: np.ndarray, release: np.ndarray, dx: float, dy: float, radius_m: float) -> np.ndarray:
    """PAR (degrees, float64), equal to :func:`par_bruteforce`, by branch and bound (one thread)."""
    z, release = _check_inputs(z, release, dx, dy, radius_m)
    out = np.full(z.shape, np.nan)
    _fast_kernel(z, release, float(dx), float(dy), float(radius_m), 0, z.shape[0], 0, z.shape[1], out)
    return out


# --- runners --------------------------------------------------------------------

def _par_block(
    z: np.ndarray, release: np.ndarray, *, dx: float, dy: float, radius_m: float, halo_y: int, halo_x: int
) -> np.ndarray:
    """One map_overlap block: PAR of the core cells, from the core plus its halo."""
    z = np.ascontiguousarray(z, dtype=np.float64)
    release = np.ascontiguousarray(release, dtype=np.uint8)
    out = np.full(z.shape, np.nan)
    rows, cols = z.shape
    _fast_kernel(z, release, dx, dy, radius_m, halo_y, rows - halo_y, halo_x, cols - halo_x, out)
    return out.astype(np.float32)


def _run_dask(z: da.Array, release: da.Array, dx: float, dy: float, radius_m: float) -> da.Array:
    # a halo wider than the DEM adds nothing (and dask refuses it): every cell is in it already
    halo_y = min(reach_cells(radius_m, dy), z.shape[0])
    halo_x = min(reach_cells(radius_m, dx), z.shape[1])
    block = partial(_par_block, dx=dx, dy=dy, radius_m=radius_m, halo_y=halo_y, halo_x=halo_x)
    depth = {0: halo_y, 1: halo_x}
    return da.map_overlap(
        block,
        z.astype(np.float64),
        (release != 0).astype(np.uint8),
        depth=[depth, depth],
        boundary=[np.nan, 0],
        trim=True,
        align_arrays=True,
        dtype=np.float32,
        meta=np.array((), dtype=np.float32),
    )


def potential_angle_of_reach(dem: xr.DataArray, release: xr.DataArray, radius_m: float = PAR_RADIUS_M) -> xr.DataArray:
    """PAR in degrees as the contract's ``par`` variable (avalanche-fcn-bianchi III-B).

    ``dem`` and ``release`` (uint8/bool, e.g. :func:`sarcube.datacube.terrain.release_mask`)
    share one (y, x) grid. A dask-backed input is computed lazily block by block
    with a halo of the radius (all dask threads); a numpy input on one thread.
    """
    dem = as_grid(dem, schema.DEM)
    release = as_grid(release, schema.RELEASE)
    if dem.shape != release.shape:
        raise InputError(
            f"PAR: release mask shape {release.shape} differs from the DEM's {dem.shape}; compute it from this DEM"
        )
    radius_m = float(radius_m)
    if not (math.isfinite(radius_m) and radius_m > 0.0):
        raise InputError(
            f"PAR: radius {radius_m} m is not valid: give a positive distance in metres (default {PAR_RADIUS_M})"
        )
    dx, dy = cell_size(dem)
    if isinstance(dem.data, da.Array) or isinstance(release.data, da.Array):
        z = dem.data if isinstance(dem.data, da.Array) else da.from_array(np.asarray(dem.data), chunks=schema.CHUNK_YX)
        rel = (
            release.data
            if isinstance(release.data, da.Array)
            else da.from_array(np.asarray(release.data), chunks=z.chunks)
        )
        data = _run_dask(z, rel, dx, dy, radius_m)
    else:
        data = par_fast(np.asarray(dem.data), np.asarray(release.data), dx, dy, radius_m)
    out = xr.DataArray(data, dims=schema.SPATIAL_DIMS, coords=dem.coords)
    parameters = {"radius_m": radius_m, "method": "exact branch and bound", "cell_itself": "excluded"}
    if release_params := schema.decode_json_attr(release, schema.ATTR_PARAMETERS, {}):
        parameters[schema.RELEASE] = release_params
    return schema.make_variable(schema.PAR, out, parameters=parameters)


__all__ = ["PAR_RADIUS_M", "par_bruteforce", "par_fast", "potential_angle_of_reach", "reach_cells"]
