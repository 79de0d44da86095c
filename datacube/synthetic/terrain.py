"""Terrain of the synthetic scene: a procedural alpine DEM and its radar geometry.

Kernels in three layers (``shared/STYLE.md``): ``@njit`` kernels on numpy
arrays, numpy runners that prepare their inputs, and the callers in
:mod:`sarcube.datacube.synthetic.scene`. Everything is a function of map
coordinates in metres, so a smaller ``size`` is a window of the same
landscape and ``resolution`` only changes the sampling.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
from numba import njit

DEGREES = math.pi / 180.0

#: longest wavelength of the ridged noise, m (about the spacing of main valleys)
TERRAIN_BASE_WAVELENGTH_M = 10_000.0
TERRAIN_OCTAVES = 6
#: amplitude ratio and wavelength ratio between octaves
TERRAIN_PERSISTENCE = 0.45
TERRAIN_LACUNARITY = 2.1
#: how strongly an octave's ridges gate the next (ridged multifractal weighting)
TERRAIN_RIDGE_GAIN = 1.6
#: elevation = BASE + RELIEF * h ** VALLEY_EXPONENT (h in [0, 1]); the exponent
#: flattens valley floors (runout zones) and steepens the upper slopes
TERRAIN_BASE_ELEVATION_M = 500.0
TERRAIN_RELIEF_M = 3000.0
TERRAIN_VALLEY_EXPONENT = 1.6


# --- kernels ---------------------------------------------------------------------

@njit(cache=True)
def _fade(t: float) -> float:
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)


@njit(cache=True)
def _gradient_noise_kernel(xs, ys, perm, grad_x, grad_y, out):
    """Perlin gradient noise at lattice coordinates ``xs`` (columns) x ``ys`` (rows), about [-1, 1]."""
    ny, nx = out.shape
    for i in range(ny):
        y = ys[i]
        y0 = math.floor(y)
        fy = y - y0
        iy = int(y0) & 255
        v = _fade(fy)
        for j in range(nx):
            x = xs[j]
            x0 = math.floor(x)
            fx = x - x0
            ix = int(x0) & 255
            h00 = perm[perm[ix] + iy] & 15
            h10 = perm[perm[ix + 1] + iy] & 15
            h01 = perm[perm[ix] + iy + 1] & 15
            h11 = perm[perm[ix + 1] + iy + 1] & 15
            n00 = grad_x[h00] * fx + grad_y[h00] * fy
            n10 = grad_x[h10] * (fx - 1.0) + grad_y[h10] * fy
            n01 = grad_x[h01] * fx + grad_y[h01] * (fy - 1.0)
            n11 = grad_x[h11] * (fx - 1.0) + grad_y[h11] * (fy - 1.0)
            u = _fade(fx)
            a = n00 + u * (n10 - n00)
            b = n01 + u * (n11 - n01)
            out[i, j] = (a + v * (b - a)) * 1.4142135623730951


@njit(cache=True)
def _cast_shadow_kernel(z, cell_m, cot_incidence, look_east, out):
    """Cast radar shadow along rows (range ~ east-west): a cell is shadowed when
    terrain nearer the sensor rises above the ray that grazes it."""
    ny, nx = z.shape
    for i in range(ny):
        best = -1e30
        for k in range(nx):
            j = k if look_east else nx - 1 - k
            h = z[i, j] + k * cell_m * cot_incidence
            if h < best:
                out[i, j] = True
            else:
                best = h


@njit(cache=True)
def _steepest_descent_kernel(z, cell_m, start_i, start_j, max_steps, path_i, path_j):
    """D8 steepest-descent path from (start_i, start_j) over a depression-free DEM.

    Writes the visited cells into ``path_i``/``path_j`` and returns their count.
    """
    ny, nx = z.shape
    di = (-1, -1, -1, 0, 0, 1, 1, 1)
    dj = (-1, 0, 1, -1, 1, -1, 0, 1)
    i, j = start_i, start_j
    n = 0
    while n < max_steps:
        path_i[n] = i
        path_j[n] = j
        n += 1
        best = 0.0
        bi, bj = -1, -1
        for k in range(8):
            ii = i + di[k]
            jj = j + dj[k]
            if ii < 0 or jj < 0 or ii >= ny or jj >= nx:
                continue
            dist = cell_m * (1.4142135623730951 if di[k] != 0 and dj[k] != 0 else 1.0)
            drop = (z[i, j] - z[ii, jj]) / dist
            if drop > best:
                best = drop
                bi, bj = ii, jj
        if bi < 0:
            break
        i, j = bi, bj
    return n


# --- numpy runners ---------------------------------------------------------------

def gradient_noise(x_m: np.ndarray, y_m: np.ndarray, wavelength_m: float, rng: np.random.Generator) -> np.ndarray:
    """One octave of gradient noise on the grid ``y_m`` x ``x_m`` (metres), about [-1, 1]."""
    p = rng.permutation(256)
    perm = np.concatenate([p, p]).astype(np.int64)
    angles = np.arange(16) * (2.0 * math.pi / 16.0) + rng.uniform(0.0, 2.0 * math.pi)
    offset = rng.uniform(0.0, 256.0, 2)
    out = np.empty((y_m.size, x_m.size), dtype=np.float64)
    _gradient_noise_kernel(
        np.asarray(x_m, dtype=np.float64) / wavelength_m + offset[0],
        np.asarray(y_m, dtype=np.float64) / wavelength_m + offset[1],
        perm,
        np.cos(angles),
        np.sin(angles),
        out,
    )
    return out


def fractal_noise(
    x_m: np.ndarray,
    y_m: np.ndarray,
    wavelength_m: float,
    octaves: int,
    rng: np.random.Generator,
    persistence: float = 0.5,
) -> np.ndarray:
    """Plain fractal (fBm) noise, about [-1, 1]: low-frequency patchiness for snow and moisture."""
    total = np.zeros((y_m.size, x_m.size))
    amp, norm = 1.0, 0.0
    for _ in range(octaves):
        total += amp * gradient_noise(x_m, y_m, wavelength_m, rng)
        norm += amp
        amp *= persistence
        wavelength_m /= 2.0
    return total / norm


def alpine_dem(x_m: np.ndarray, y_m: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Elevation (m) of a ridged-multifractal alpine landscape at map coordinates (float64)."""
    h = np.zeros((y_m.size, x_m.size))
    weight = np.ones_like(h)
    amp, norm, wavelength = 1.0, 0.0, TERRAIN_BASE_WAVELENGTH_M
    for _ in range(TERRAIN_OCTAVES):
        ridge = (1.0 - np.abs(gradient_noise(x_m, y_m, wavelength, rng))) ** 2
        h += amp * ridge * weight
        norm += amp
        weight = np.clip(ridge * TERRAIN_RIDGE_GAIN, 0.0, 1.0)
        amp *= TERRAIN_PERSISTENCE
        wavelength /= TERRAIN_LACUNARITY
    h = np.clip(h / norm, 0.0, 1.0)
    return TERRAIN_BASE_ELEVATION_M + TERRAIN_RELIEF_M * h**TERRAIN_VALLEY_EXPONENT


def surface_gradient(z: np.ndarray, cell_m: float) -> tuple[np.ndarray, np.ndarray]:
    """dz/d(east), dz/d(north) of a north-up grid (rows go south), edges one-sided."""
    dz_drow, dz_dcol = np.gradient(z, cell_m)
    return dz_dcol, -dz_drow


def slope_aspect(z: np.ndarray, cell_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Slope (degrees) and aspect (downslope direction, degrees clockwise from north)."""
    gx, gy = surface_gradient(z, cell_m)
    slope = np.degrees(np.arctan(np.hypot(gx, gy)))
    aspect = np.degrees(np.arctan2(-gx, -gy)) % 360.0
    return slope, aspect


def fill_depressions(z: np.ndarray, epsilon_m: float = 1e-3) -> np.ndarray:
    """Priority-flood (Barnes et al. 2014) with a small gradient on flats, so every
    cell drains to the scene edge by steepest descent."""
    return _priority_flood(np.ascontiguousarray(z, dtype=np.float64), epsilon_m)


@njit(cache=True)
def _priority_flood(z, epsilon):
    ny, nx = z.shape
    out = z.copy()
    done = np.zeros((ny, nx), dtype=np.bool_)
    heap = [(0.0, 0, 0)]
    heap.pop()
    for i in range(ny):
        for j in range(nx):
            if i == 0 or j == 0 or i == ny - 1 or j == nx - 1:
                heapq.heappush(heap, (out[i, j], i, j))
                done[i, j] = True
    while len(heap) > 0:
        h, i, j = heapq.heappop(heap)
        for di in range(-1, 2):
            for dj in range(-1, 2):
                ii = i + di
                jj = j + dj
                if ii < 0 or jj < 0 or ii >= ny or jj >= nx or done[ii, jj]:
                    continue
                done[ii, jj] = True
                if out[ii, jj] <= h:
                    out[ii, jj] = h + epsilon
                heapq.heappush(heap, (out[ii, jj], ii, jj))
    return out


def steepest_descent_path(
    z_filled: np.ndarray, cell_m: float, start: tuple[int, int], max_steps: int = 4000
) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the D8 steepest-descent path from ``start``."""
    path_i = np.empty(max_steps, dtype=np.int64)
    path_j = np.empty(max_steps, dtype=np.int64)
    n = _steepest_descent_kernel(z_filled, float(cell_m), int(start[0]), int(start[1]), max_steps, path_i, path_j)
    return path_i[:n], path_j[:n]


def radar_geometry(
    z: np.ndarray,
    cell_m: float,
    incidence_deg: np.ndarray,
    look_azimuth_deg: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Cosine of the local incidence angle and the shadow/layover mask for one orbit.

    ``incidence_deg`` is the ellipsoid incidence angle per column (it grows
    away from the ground track); ``look_azimuth_deg`` the horizontal look
    direction (heading + 90 for right-looking Sentinel-1), clockwise from north.
    """
    gx, gy = surface_gradient(z, cell_m)
    theta = np.radians(incidence_deg)[None, :]
    look = math.radians(look_azimuth_deg)
    look_e, look_n = math.sin(look), math.cos(look)
    # unit vector from the ground to the sensor (opposite the look direction, up)
    to_sensor = (-look_e * np.sin(theta), -look_n * np.sin(theta), np.cos(theta))
    norm = np.sqrt(gx * gx + gy * gy + 1.0)
    cos_local = (-gx * to_sensor[0] - gy * to_sensor[1] + to_sensor[2]) / norm
    # terrain slope along the look direction: > tan(incidence) is layover
    # (the top of a foreslope is nearer the sensor than its foot); a backslope
    # steeper than 90 deg - incidence hides itself (self shadow)
    rise_along_look = gx * look_e + gy * look_n
    layover = rise_along_look > np.tan(theta)
    self_shadow = cos_local <= 0.0
    cast = np.zeros(z.shape, dtype=np.bool_)
    cot = 1.0 / math.tan(math.radians(float(np.mean(incidence_deg))))
    # range steps are horizontal; the look direction's east component sets the scan order
    _cast_shadow_kernel(
        np.ascontiguousarray(z, dtype=np.float64), cell_m / max(abs(look_e), 1e-3), cot, look_e > 0, cast
    )
    return cos_local, layover | self_shadow | cast
