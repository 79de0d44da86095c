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
  max-elevation pyramid (quadtree) of the release cells. Since dist > 0, the
  angle is monotone in the slope ratio t = (z_r - z_c) / dist, so the search
  maximises t. A block with highest release elevation Z and distance range
  [dmin, dmax] from c bounds t by (Z - z_c) / dmin when Z >= z_c and by
  (Z - z_c) / min(dmax, radius) when Z < z_c (a negative numerator is largest
  over the largest distance). The cells within ``_WINDOW`` cells of c are scanned
  first, directly, so for Z >= z_c dmin is taken over the block's cells outside
  that window (at least ``_WINDOW + 1`` cells away along one axis): the blocks
  around c, which the plain dmin (one cell or zero) never prunes, then are.
  Blocks are visited depth first, the child with the largest bound first, and
  dropped when their bound cannot beat the best t so far, which starts from the
  best release cells of the left and the three upper neighbours (valid lower
  bounds when within reach). Ratios are (z_r - z_c) times a table of 1/distance
  per cell offset; IEEE square root and division are monotone, so a bound is
  never below the t it bounds: the result is the exact maximum of the ratio,
  not an azimuth-sampled approximation.

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
from sarcube.datacube.grid import as_grid, cell_size
from sarcube.errors import InputError

#: avalanche-fcn-bianchi III-B: release cells within 4 km
PAR_RADIUS_M = 4000.0
RADIANS_TO_DEGREES = 180.0 / math.pi
#: pyramid levels at or below this are scanned cell by cell (blocks of 2**level cells a side)
_LEAF_LEVEL = 2
#: cells within this many of the query cell (along both axes) are scanned directly before the search
_WINDOW = 3


# --- shared pieces ------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _dist2(di: int, dj: int, dx: float, dy: float) -> float:
    """Squared horizontal distance, m^2, of a (di, dj) cell offset (one formula for every test of reach)."""
    a = di * dy
    b = dj * dx
    return a * a + b * b


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


# --- branch and bound over a max-elevation pyramid ------------------------------------

@njit(cache=True, nogil=True)
def _release_elevation(z, release):
    """z on release cells with finite z, -inf elsewhere."""
    out = np.full(z.shape, -np.inf)
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            if release[i, j] != 0 and not math.isnan(z[i, j]):
                out[i, j] = z[i, j]
    return out


@njit(cache=True, nogil=True)
def _build_pyramid(top):
    """Max pyramid of ``top`` in one flat array; level k holds blocks of 2**k cells a side."""
    rows, cols = top.shape
    levels = 1
    h, w = rows, cols
    while h > 1 or w > 1:
        h, w = (h + 1) // 2, (w + 1) // 2
        levels += 1
    shape = np.empty((levels, 2), dtype=np.int64)
    offset = np.empty(levels + 1, dtype=np.int64)
    h, w = rows, cols
    offset[0] = 0
    for k in range(levels):
        shape[k, 0], shape[k, 1] = h, w
        offset[k + 1] = offset[k] + h * w
        h, w = (h + 1) // 2, (w + 1) // 2
    flat = np.empty(offset[levels], dtype=np.float64)
    for i in range(rows):
        for j in range(cols):
            flat[i * cols + j] = top[i, j]
    for k in range(1, levels):
        ph, pw = shape[k - 1, 0], shape[k - 1, 1]
        h, w = shape[k, 0], shape[k, 1]
        for bi in range(h):
            for bj in range(w):
                best = -np.inf
                for ci in range(2 * bi, min(2 * bi + 2, ph)):
                    for cj in range(2 * bj, min(2 * bj + 2, pw)):
                        v = flat[offset[k - 1] + ci * pw + cj]
                        if v > best:
                            best = v
                flat[offset[k] + bi * w + bj] = best
    return flat, shape, offset


@njit(cache=True, nogil=True)
def _inverse_distances(dx, dy, r2, ny, nx):
    """1/distance of every cell offset (|di|, |dj|) below (ny, nx); NaN where no candidate lies.

    NaN marks the cell itself and offsets beyond the radius: a ratio times NaN is NaN and never
    beats the best, so the scans need no test of reach. 1/sqrt is monotone in IEEE arithmetic,
    so a weight at a block's nearest offset is never below the weight of any of its cells.
    """
    inv = np.full((ny, nx), np.nan)
    for a in range(ny):
        for b in range(nx):
            d2 = _dist2(a, b, dx, dy)
            if 0.0 < d2 <= r2:
                inv[a, b] = 1.0 / math.sqrt(d2)
    return inv


@njit(cache=True, nogil=True)
def _scan(top, inv, zc, ic, jc, i_start, i_stop, j_start, j_stop, best, best_cell):
    """Best slope ratio (and its flat cell index) over a rectangle of cells, every offset in ``inv``."""
    cols = top.shape[1]
    for i in range(i_start, i_stop):
        a = abs(i - ic)
        for j in range(j_start, j_stop):
            t = (top[i, j] - zc) * inv[a, abs(j - jc)]
            if t > best:
                best = t
                best_cell = i * cols + j
    return best, best_cell


@njit(cache=True, nogil=True)
def _fast_kernel(z, release, dx, dy, radius_m, row_start, row_stop, col_start, col_stop, out):
    """PAR (degrees) of cells [row_start, row_stop) x [col_start, col_stop) into ``out``."""
    rows, cols = z.shape
    r2 = radius_m * radius_m
    reach_y, reach_x = int(math.floor(radius_m / abs(dy))) + 1, int(math.floor(radius_m / abs(dx))) + 1
    # offsets up to a leaf or the window past the reach (or the DEM) are looked up too (NaN beyond reach)
    pad = max(1 << _LEAF_LEVEL, _WINDOW + 1) + 1
    inv = _inverse_distances(dx, dy, r2, min(reach_y, rows) + pad, min(reach_x, cols) + pad)
    inv_radius = 1.0 / math.sqrt(r2)
    top = _release_elevation(z, release)
    flat, shape, offset = _build_pyramid(top)
    levels = shape.shape[0]
    capacity = 4 * levels + 8
    stack_level = np.empty(capacity, dtype=np.int64)
    stack_bi = np.empty(capacity, dtype=np.int64)
    stack_bj = np.empty(capacity, dtype=np.int64)
    stack_bound = np.empty(capacity, dtype=np.float64)
    child_bound = np.empty(4, dtype=np.float64)
    child_bi = np.empty(4, dtype=np.int64)
    child_bj = np.empty(4, dtype=np.int64)
    above = np.full(cols, -1, dtype=np.int64)  # best release cell of each column in the row above
    outside = _WINDOW + 1  # a cell outside the window is this many cells away along one axis at least
    for ic in range(row_start, row_stop):
        left = -1
        for jc in range(col_start, col_stop):
            zc = z[ic, jc]
            if math.isnan(zc):
                above[jc] = -1
                left = -1
                continue
            # warm start: the best release cells of the left neighbour and the three above are candidates
            best, best_cell = -np.inf, -1
            for q in range(4):
                if q == 0:
                    cand = left
                elif col_start <= jc + q - 2 < col_stop:
                    cand = above[jc + q - 2]
                else:
                    continue
                if cand < 0:
                    continue
                a, b = abs(cand // cols - ic), abs(cand % cols - jc)
                if a < inv.shape[0] and b < inv.shape[1]:
                    t = (top[cand // cols, cand % cols] - zc) * inv[a, b]
                    if t > best:
                        best, best_cell = t, cand
            # the window of nearby cells, scanned directly: the search below skips it
            wi0, wi1 = max(0, ic - _WINDOW), min(rows, ic + _WINDOW + 1)
            wj0, wj1 = max(0, jc - _WINDOW), min(cols, jc + _WINDOW + 1)
            best, best_cell = _scan(top, inv, zc, ic, jc, wi0, wi1, wj0, wj1, best, best_cell)
            stack_level[0], stack_bi[0], stack_bj[0], stack_bound[0] = levels - 1, 0, 0, np.inf  # the root
            sp = 1
            while sp > 0:
                sp -= 1
                if stack_bound[sp] <= best:
                    continue
                level, bi, bj = stack_level[sp], stack_bi[sp], stack_bj[sp]
                size = 1 << level
                if level <= _LEAF_LEVEL:
                    i0, j0 = bi * size, bj * size
                    best, best_cell = _scan(top, inv, zc, ic, jc, i0, min(i0 + size, rows), j0, min(j0 + size, cols),
                                            best, best_cell)
                    continue
                child = level - 1
                size >>= 1
                width, base = shape[child, 1], offset[child]
                n = 0
                for ci in range(2 * bi, min(2 * bi + 2, shape[child, 0])):
                    i0 = ci * size
                    i1 = min(i0 + size, rows) - 1
                    a = i0 - ic if ic < i0 else (ic - i1 if ic > i1 else 0)  # nearest row offset
                    if a > reach_y:
                        continue
                    a_far = max(ic - i0, i1 - ic)
                    rows_in_window = wi0 <= i0 and i1 < wi1
                    for cj in range(2 * bj, min(2 * bj + 2, shape[child, 1])):
                        rise = flat[base + ci * width + cj] - zc
                        if rise == -np.inf:
                            continue  # no release cell
                        j0 = cj * size
                        j1 = min(j0 + size, cols) - 1
                        b = j0 - jc if jc < j0 else (jc - j1 if jc > j1 else 0)
                        if b > reach_x:
                            continue
                        if rise >= 0.0:
                            # largest over the nearest cell outside the window: (Z - z_c) / dmin
                            if rows_in_window and wj0 <= j0 and j1 < wj1:
                                continue
                            weight = inv[max(a, outside), b]
                            other = inv[a, max(b, outside)]
                            if other > weight or not weight > 0.0:
                                weight = other
                            if not weight > 0.0:
                                continue  # every cell outside the window is beyond the radius
                            bound = rise * weight
                        else:
                            # all below z_c: largest over the farthest distance within the radius
                            if not (a == 0 and b == 0) and not inv[a, b] > 0.0:
                                continue  # beyond the radius
                            b_far = max(jc - j0, j1 - jc)
                            if a_far == 0 and b_far == 0:
                                continue  # the block is the cell itself
                            weight = inv[a_far, b_far] if a_far < inv.shape[0] and b_far < inv.shape[1] else np.nan
                            bound = rise * (weight if weight > 0.0 else inv_radius)
                        if bound <= best:
                            continue
                        # insertion sort, ascending: the largest bound is pushed last, popped first
                        k = n
                        while k > 0 and child_bound[k - 1] > bound:
                            child_bound[k] = child_bound[k - 1]
                            child_bi[k] = child_bi[k - 1]
                            child_bj[k] = child_bj[k - 1]
                            k -= 1
                        child_bound[k], child_bi[k], child_bj[k] = bound, ci, cj
                        n += 1
                for k in range(n):
                    stack_level[sp], stack_bi[sp], stack_bj[sp] = child, child_bi[k], child_bj[k]
                    stack_bound[sp] = child_bound[k]
                    sp += 1
            if best_cell >= 0:
                out[ic, jc] = math.atan(best) * RADIANS_TO_DEGREES
            above[jc] = best_cell
            left = best_cell


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
