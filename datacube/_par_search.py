"""PAR's exact branch and bound over tiles of cells (the algorithm: :mod:`sarcube.datacube.par`).

Every kernel is ``@njit(nogil=True)`` without ``parallel=True`` (see ``par``: dask's threads run
blocks side by side). Slope ratios are (z_r - z_c) times a table of 1/distance per cell offset;
IEEE square root, division and products are monotone, so a bound is never below a ratio it bounds.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

RADIANS_TO_DEGREES = 180.0 / math.pi
#: pyramid levels at or below this are scanned cell by cell (blocks of 2**level cells a side)
_LEAF_LEVEL = 2
#: cells within this many of the query cell (along both axes) are scanned directly before the search
_WINDOW = 3
#: cells a side of a tile: its cells share one list of the leaves that may hold their maxima
_TILE = 4


@njit(cache=True, nogil=True)
def _dist2(di: int, dj: int, dx: float, dy: float) -> float:
    """Squared horizontal distance, m^2, of a (di, dj) cell offset (one formula for every test of reach)."""
    a = di * dy
    b = dj * dx
    return a * a + b * b


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
def _tables(dx, dy, r2, ny, nx):
    """Weights per cell offset (|di|, |dj|) below (ny, nx): ``inv``, ``near``, ``far``, ``signed``.

    - ``inv``: 1/distance; NaN at the cell itself and beyond the radius (a ratio times NaN is NaN
      and never beats the best, so no scan tests reach).
    - ``near``: the largest 1/distance of a candidate outside the window at an offset >= (a, b) on
      both axes (NaN if none): the weight of a block whose nearest offsets are (a, b) and whose
      highest release cell is above z_c. Monotone: never below ``near`` of a larger offset.
    - ``far``: 1/min(distance, radius): the weight of a block all below z_c whose farthest offset
      is (a, b) (a negative rise is largest over the largest distance).
    - ``signed``: ``inv`` with signed column offsets (column ``nx - 1 + dj``), so a row of cells
      reads a row of weights in the same order.
    """
    outside = _WINDOW + 1  # a cell outside the window is this many cells away along one axis at least
    inv = np.full((ny, nx), np.nan)
    far = np.full((ny, nx), 1.0 / math.sqrt(r2))
    for a in range(ny):
        for b in range(nx):
            d2 = _dist2(a, b, dx, dy)
            if 0.0 < d2 <= r2:
                inv[a, b] = far[a, b] = 1.0 / math.sqrt(d2)
    near = np.full((ny, nx), np.nan)
    signed = np.full((ny, 2 * nx - 1), np.nan)
    for a in range(ny):
        for b in range(nx):
            w = inv[max(a, outside), b] if max(a, outside) < ny else np.nan
            other = inv[a, max(b, outside)] if max(b, outside) < nx else np.nan
            near[a, b] = other if other > w or not w > 0.0 else w
            signed[a, nx - 1 + b] = signed[a, nx - 1 - b] = inv[a, b]
    return inv, near, far, signed


@njit(cache=True, nogil=True, inline='always')
def _window_max(top, inv, zc, ic, jc, i0, i1, j0, j1):
    """Best slope ratio over cells [i0, i1) x [j0, j1), no branch per cell."""
    best = -np.inf
    for i in range(i0, i1):
        a = abs(i - ic)
        for j in range(j0, j1):
            t = (top[i, j] - zc) * inv[a, abs(j - jc)]
            best = t if t > best else best
    return best


@njit(cache=True, nogil=True, inline='always')
def _leaf_max(top, signed, zc, ic, jc, i0, i1, j0, j1):
    """:func:`_window_max` of a leaf; a full leaf row in four independent lanes, weights read in order."""
    if j1 - j0 != 4:  # the lanes below are four columns wide
        m = -np.inf
        for i in range(i0, i1):
            a = abs(i - ic)
            for j in range(j0, j1):
                t = (top[i, j] - zc) * signed[a, (signed.shape[1] >> 1) + j - jc]
                m = t if t > m else m
        return m
    m0 = m1 = m2 = m3 = -np.inf
    o = (signed.shape[1] >> 1) + j0 - jc
    for i in range(i0, i1):
        a = abs(i - ic)
        t0 = (top[i, j0] - zc) * signed[a, o]
        t1 = (top[i, j0 + 1] - zc) * signed[a, o + 1]
        t2 = (top[i, j0 + 2] - zc) * signed[a, o + 2]
        t3 = (top[i, j0 + 3] - zc) * signed[a, o + 3]
        m0 = t0 if t0 > m0 else m0
        m1 = t1 if t1 > m1 else m1
        m2 = t2 if t2 > m2 else m2
        m3 = t3 if t3 > m3 else m3
    m0 = m1 if m1 > m0 else m0
    m2 = m3 if m3 > m2 else m2
    return m2 if m2 > m0 else m0


@njit(cache=True, nogil=True, inline='always')
def _find(top, inv, zc, ic, jc, i0, i1, j0, j1, m):
    """The first cell of [i0, i1) x [j0, j1) whose ratio is ``m`` ((-1, -1) if none)."""
    for i in range(i0, i1):
        a = abs(i - ic)
        for j in range(j0, j1):
            if (top[i, j] - zc) * inv[a, abs(j - jc)] == m:
                return i, j
    return -1, -1


@njit(cache=True, nogil=True, inline='always')
def _warm(top, inv, arg_i, arg_j, zc, ic, jc, cand_i, cand_j, best, best_i, best_j):
    """Raise ``best`` with the best release cells (``arg_i``, ``arg_j``) found for cells ``cand_*``."""
    rows, cols = top.shape
    for q in range(cand_i.shape[0]):
        i, j = cand_i[q], cand_j[q]
        if i < 0 or j < 0 or i >= rows or j >= cols or arg_i[i, j] < 0:
            continue
        ri, rj = arg_i[i, j], arg_j[i, j]
        a, b = abs(ri - ic), abs(rj - jc)
        if a < inv.shape[0] and b < inv.shape[1]:
            t = (top[ri, rj] - zc) * inv[a, b]
            if t > best:
                best, best_i, best_j = t, ri, rj
    return best, best_i, best_j


@njit(cache=True, nogil=True)
def _collect(flat, shape, offset, near, far, r0, r1, c0, c1, zmin, lower, rows, cols, stack, stack_bound, leaves):
    """Leaves that may hold a ratio above ``lower`` for some cell of [r0, r1) x [c0, c1); their count.

    A block's bound holds for every cell of the tile: its rise from the tile's lowest cell
    ``zmin``, over the nearest offsets between the block and the tile (the farthest where every
    release cell lies below). Blocks are visited depth first in plain child order: ``lower`` is
    fixed during the search, so no order prunes more (sorting the children cost more than it
    saved). ``leaves`` rows: (bi, bj, highest z, bound).
    """
    na, nb = near.shape[0] - 1, near.shape[1] - 1
    n = 0
    stack[0, 0], stack[0, 1], stack[0, 2], stack_bound[0] = shape.shape[0] - 1, 0, 0, np.inf  # the root
    sp = 1
    while sp > 0:
        sp -= 1
        level, bi, bj = stack[sp, 0], stack[sp, 1], stack[sp, 2]
        if level <= _LEAF_LEVEL:
            leaves[n, 0], leaves[n, 1] = bi, bj
            leaves[n, 2] = flat[offset[level] + bi * shape[level, 1] + bj]
            leaves[n, 3] = stack_bound[sp]
            n += 1
            continue
        child = level - 1
        size = 1 << child
        width, base = shape[child, 1], offset[child]
        for ci in range(2 * bi, min(2 * bi + 2, shape[child, 0])):
            i0 = ci * size
            i1 = min(i0 + size, rows) - 1
            a = min(max(i0 - (r1 - 1), r0 - i1, 0), na)
            a_far = min(max(i1 - r0, (r1 - 1) - i0), na)
            for cj in range(2 * bj, min(2 * bj + 2, shape[child, 1])):
                rise = flat[base + ci * width + cj] - zmin  # -inf: no release cell, never listed
                j0 = cj * size
                j1 = min(j0 + size, cols) - 1
                w = near[a, min(max(j0 - (c1 - 1), c0 - j1, 0), nb)]  # NaN: beyond the radius
                if rise < 0.0 and w > 0.0:
                    w = far[a_far, min(max(j1 - c0, (c1 - 1) - j0), nb)]
                bound = rise * w
                if not bound > lower:
                    continue
                stack[sp, 0], stack[sp, 1], stack[sp, 2], stack_bound[sp] = child, ci, cj, bound
                sp += 1
    return n


@njit(cache=True, nogil=True, inline='always')
def _scan_leaves(top, inv, near, far, signed, zc, ic, jc, leaves, n, best, best_i, best_j):
    """Raise ``best`` of cell (ic, jc) over the listed leaves that neither the tile's bound nor its own rules out."""
    rows, cols = top.shape
    na, nb = inv.shape[0] - 1, inv.shape[1] - 1
    leaf = 1 << _LEAF_LEVEL
    wi0, wi1 = max(0, ic - _WINDOW), min(rows, ic + _WINDOW + 1)
    wj0, wj1 = max(0, jc - _WINDOW), min(cols, jc + _WINDOW + 1)
    for q in range(n):
        if not leaves[q, 3] > best:
            continue  # not even the tile's bound beats this cell's best
        i0, j0 = int(leaves[q, 0]) * leaf, int(leaves[q, 1]) * leaf
        i1, j1 = min(i0 + leaf, rows), min(j0 + leaf, cols)
        rise = leaves[q, 2] - zc
        w = near[min(max(i0 - ic, ic - i1 + 1, 0), na), min(max(j0 - jc, jc - j1 + 1, 0), nb)]
        if rise < 0.0 and w > 0.0:
            w = far[min(max(ic - i0, i1 - 1 - ic), na), min(max(jc - j0, j1 - 1 - jc), nb)]
        if not rise * w > best or (wi0 <= i0 and i1 <= wi1 and wj0 <= j0 and j1 <= wj1):
            continue  # cannot beat the best, or scanned with the window
        m = _leaf_max(top, signed, zc, ic, jc, i0, i1, j0, j1)
        if m > best:
            best = m
            best_i, best_j = _find(top, inv, zc, ic, jc, i0, i1, j0, j1, m)
    return best, best_i, best_j


@njit(cache=True, nogil=True)
def _fast_kernel(z, release, dx, dy, radius_m, row_start, row_stop, col_start, col_stop, out):
    """PAR (degrees) of cells [row_start, row_stop) x [col_start, col_stop) into ``out``, tile by tile."""
    rows, cols = z.shape
    r2 = radius_m * radius_m
    reach_y, reach_x = int(math.floor(radius_m / abs(dy))) + 1, int(math.floor(radius_m / abs(dx))) + 1
    # offsets up to a leaf or the window past the reach (or the DEM) are looked up too (NaN beyond reach)
    pad = max(1 << _LEAF_LEVEL, _WINDOW + 1) + 1
    inv, near, far, signed = _tables(dx, dy, r2, min(reach_y, rows) + pad, min(reach_x, cols) + pad)
    top = _release_elevation(z, release)
    flat, shape, offset = _build_pyramid(top)
    stack = np.empty((4 * shape.shape[0] + 8, 3), dtype=np.int64)
    stack_bound = np.empty(stack.shape[0], dtype=np.float64)
    leaf = 1 << _LEAF_LEVEL  # (a root below the leaf level, on a DEM of a few cells, is listed as a leaf)
    leaves = np.empty((((rows + leaf - 1) // leaf) * ((cols + leaf - 1) // leaf), 4), dtype=np.float64)
    arg_i = np.full((rows, cols), -1, dtype=np.int64)  # each finished cell's best release cell
    arg_j = np.full((rows, cols), -1, dtype=np.int64)
    first_best = np.empty((_TILE, _TILE), dtype=np.float64)
    border_i = np.empty(3 * _TILE + 2, dtype=np.int64)
    border_j = np.empty(3 * _TILE + 2, dtype=np.int64)
    near_i = np.empty(4, dtype=np.int64)
    near_j = np.empty(4, dtype=np.int64)
    for r0 in range(row_start, row_stop, _TILE):
        r1 = min(r0 + _TILE, row_stop)
        for c0 in range(col_start, col_stop, _TILE):
            c1 = min(c0 + _TILE, col_stop)
            # 1. each cell's window, warm started from every other finished cell above and left of the tile
            n_border = 0
            for j in range(c0 - 1, c1 + 1, 2):
                border_i[n_border], border_j[n_border] = r0 - 1, j
                n_border += 1
            for i in range(r0 + 1, r1, 2):
                border_i[n_border], border_j[n_border] = i, c0 - 1
                n_border += 1
            lower, zmin = np.inf, np.inf
            for ic in range(r0, r1):
                for jc in range(c0, c1):
                    zc = z[ic, jc]
                    if math.isnan(zc):
                        continue
                    best, bi_, bj_ = _warm(top, inv, arg_i, arg_j, zc, ic, jc, border_i[:n_border],
                                           border_j[:n_border], -np.inf, -1, -1)
                    wi0, wi1 = max(0, ic - _WINDOW), min(rows, ic + _WINDOW + 1)
                    wj0, wj1 = max(0, jc - _WINDOW), min(cols, jc + _WINDOW + 1)
                    m = _window_max(top, inv, zc, ic, jc, wi0, wi1, wj0, wj1)
                    if m > best:
                        best = m
                        bi_, bj_ = _find(top, inv, zc, ic, jc, wi0, wi1, wj0, wj1, m)
                    first_best[ic - r0, jc - c0] = best
                    arg_i[ic, jc], arg_j[ic, jc] = bi_, bj_
                    lower, zmin = min(lower, best), min(zmin, zc)
            if zmin == np.inf:
                continue  # every cell of the tile is NaN
            # 2. the leaves that may beat the smallest of those bests for some cell of the tile
            n = _collect(flat, shape, offset, near, far, r0, r1, c0, c1, zmin, lower, rows, cols, stack,
                         stack_bound, leaves)
            # 3. each cell: the best cells of its finished left and upper neighbours, then the list
            for ic in range(r0, r1):
                for jc in range(c0, c1):
                    zc = z[ic, jc]
                    if math.isnan(zc):
                        continue
                    near_i[0], near_j[0] = ic, jc - 1
                    for q in range(1, 4):
                        near_i[q], near_j[q] = ic - 1, jc + q - 2
                    best, bi_, bj_ = _warm(top, inv, arg_i, arg_j, zc, ic, jc, near_i, near_j,
                                           first_best[ic - r0, jc - c0], arg_i[ic, jc], arg_j[ic, jc])
                    best, bi_, bj_ = _scan_leaves(top, inv, near, far, signed, zc, ic, jc, leaves, n, best, bi_, bj_)
                    if best > -np.inf:
                        out[ic, jc] = math.atan(best) * RADIANS_TO_DEGREES
                    arg_i[ic, jc], arg_j[ic, jc] = bi_, bj_
