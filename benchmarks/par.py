"""PAR benchmark: the exact branch-and-bound kernel against the fastest fair brute force.

Makes a procedural alpine DEM (fractal ridges and valleys, about 2 km of
relief, ~40 % of cells in the 30-50 degree release range), then prints

- ``RESULT par_speedup <x> x``: single-thread CPU time of the fastest brute
  force we could write (:func:`bruteforce_fair`, in this file: the release
  elevation with -inf off release cells, a precomputed table of 1/distance
  over the 4 km disc, a branch-free max of the slope ratio per cell, one
  atan at the end) over :func:`~sarcube.datacube.par.par_fast` on 512x512
  cells at 20 m, 4 km radius.
- ``RESULT par_speedup_vs_atan2_bruteforce <x> x`` (secondary, the old
  headline): against :func:`sarcube.datacube.par.par_bruteforce`, the
  definition as written (atan2 per candidate cell, bounds and release tests
  in the loop).

Every side is timed the same way: CPU seconds of the calling thread (the
kernels run in it, so other load on the machine does not skew the ratio),
compiled before timing, best of ``--repeats``. Brute force costs
0.2-0.5 ms a cell here (~125k cells within 4 km each), so by default both
brute forces run on ``--brute-rows`` evenly spaced rows and their time is
extrapolated per row to the whole DEM (``--full-brute``: every row); both
are checked against ``par_fast`` on those rows.

- ``RESULT par_4096_seconds <s> s``: wall time of the public
  :func:`~sarcube.datacube.par.potential_angle_of_reach` on a 4096x4096 DEM in
  512x512 dask chunks (``map_overlap`` with a 4 km halo) on dask's local threads,
  all cores; checked against brute force on one row. This one is wall time:
  the load average is printed with it.

    python benchmarks/par.py                      # the headline figures
    python benchmarks/par.py --big 2048 --png par.png
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np
import xarray as xr
from numba import njit

from sarcube.datacube import par, schema, terrain
from sarcube.pipelines._dask import compute, scheduler

#: spectral exponent of the fractal DEM (amplitude ~ wavenumber ** -exponent)
DEM_SPECTRAL_EXPONENT = 2.2
#: wavelengths longer than this are not amplified further, m (about the spacing of main valleys)
DEM_LONGEST_WAVELENGTH_M = 6000.0
DEM_BASE_ELEVATION_M = 1800.0
DEM_RELIEF_M = 450.0  # standard deviation of the fractal field
REPEATS = 3


def alpine_dem(n: int, cell_m: float, seed: int) -> xr.DataArray:
    """A periodic fractal DEM with sharpened ridges on a north-up UTM-like grid (float32, m)."""
    rng = np.random.default_rng(seed)
    ky = np.fft.fftfreq(n, d=cell_m)[:, None]
    kx = np.fft.rfftfreq(n, d=cell_m)[None, :]
    k = np.maximum(np.hypot(ky, kx), 1.0 / DEM_LONGEST_WAVELENGTH_M)
    spectrum = k**-DEM_SPECTRAL_EXPONENT * np.exp(2j * np.pi * rng.random(k.shape))
    field = np.fft.irfft2(spectrum, s=(n, n))
    field = (field - field.mean()) / field.std()
    ridges = 1.0 - np.abs(np.tanh(field))
    z = DEM_BASE_ELEVATION_M + DEM_RELIEF_M * (field + 0.5 * ridges)
    x = 400_000.0 + cell_m * (np.arange(n) + 0.5)
    y = 5_200_000.0 - cell_m * (np.arange(n) + 0.5)
    return xr.DataArray(z.astype(np.float32), dims=schema.SPATIAL_DIMS, coords={schema.X: x, schema.Y: y})


@njit(cache=True, nogil=True)
def _scan(row, table, zc, j, centre, first, last, best):
    """Best ratio over column offsets first..last of one row; ``table[centre]`` is the offset 0."""
    for dj in range(first, last + 1):  # no branch: -inf off release cells loses every max
        best = max(best, (row[j + dj] - zc) * table[centre + dj])
    return best


@njit(cache=True, nogil=True)
def _fair_kernel(top, z, half, inv_dist, reach_y, reach_x, row_start, row_stop, out):
    """max over the disc (clipped to the DEM) of (release z - z) / distance, one atan per cell."""
    rows, cols = z.shape
    for i in range(row_start, row_stop):
        for j in range(cols):
            zc = z[i, j]
            if math.isnan(zc):
                continue
            best = -math.inf
            for di in range(max(-reach_y, -i), min(reach_y, rows - 1 - i) + 1):
                h = half[di + reach_y]
                row, table = top[i + di], inv_dist[di + reach_y]
                first, last = max(-h, -j), min(h, cols - 1 - j)
                if di == 0:  # the cell itself is no candidate
                    best = _scan(row, table, zc, j, reach_x, first, -1, best)
                    best = _scan(row, table, zc, j, reach_x, 1, last, best)
                else:
                    best = _scan(row, table, zc, j, reach_x, first, last, best)
            if best > -math.inf:
                out[i, j] = math.atan(best) * par.RADIANS_TO_DEGREES


def bruteforce_fair(
    z, release, dx: float, dy: float, radius_m: float, rows: tuple[int, int] | None = None
) -> np.ndarray:
    """PAR by the definition, as fast as a plain scan gets: tables built once, no branch per candidate.

    ``inv_dist[di, dj]`` (indexed from the centre) is 1/distance inside the disc, ``half[di]`` the widest
    ``|dj|`` inside it on that row (the loops are clipped to the DEM per row); the release elevation is
    -inf off release cells, so there is no release test.
    """
    z = np.ascontiguousarray(z, dtype=np.float64)
    reach_y, reach_x = par.reach_cells(radius_m, dy), par.reach_cells(radius_m, dx)
    di = np.arange(-reach_y, reach_y + 1)[:, None] * abs(dy)
    dj = np.arange(-reach_x, reach_x + 1)[None, :] * abs(dx)
    dist2 = di * di + dj * dj
    inside = dist2 <= radius_m * radius_m
    inv_dist = np.where(inside & (dist2 > 0), 1.0 / np.sqrt(np.maximum(dist2, 1e-300)), 0.0)
    half = np.array([np.flatnonzero(r).max() - reach_x if r.any() else -1 for r in inside], dtype=np.int64)
    top = np.where(np.asarray(release) != 0, z, -np.inf)
    start, stop = rows if rows is not None else (0, z.shape[0])
    out = np.full(z.shape, np.nan)
    _fair_kernel(top, z, half, inv_dist, reach_y, reach_x, int(start), int(stop), out)
    return out


def warm_up(cell_m: float, radius_m: float) -> None:
    """Compile (or load from numba's cache) every kernel on tiny arrays, off the clock."""
    dem = alpine_dem(32, cell_m, 1)
    release = terrain.release_mask(terrain.slope(dem))
    par.par_fast(dem.values, release.values, cell_m, -cell_m, radius_m)
    par.par_bruteforce(dem.values, release.values, cell_m, -cell_m, radius_m)
    bruteforce_fair(dem.values, release.values, cell_m, -cell_m, radius_m)
    par.potential_angle_of_reach(dem.chunk(16), release.chunk(16), radius_m).compute()


def sample_rows(n: int, count: int) -> list[int]:
    return sorted({int(r) for r in np.linspace(0, n - 1, max(1, min(count, n)))})


def best_cpu_seconds(run, repeats: int):
    """(fastest CPU seconds of the calling thread over ``repeats`` runs, the last result)."""
    best, result = math.inf, None
    for _ in range(repeats):  # the quickest of a few: other work on the machine only adds
        start = time.thread_time()
        result = run()
        best = min(best, time.thread_time() - start)
    return best, result


def _rows_seconds(kernel, rows: list[int], repeats: int, fast: np.ndarray, name: str) -> float:
    """Best-of-``repeats`` CPU seconds of ``kernel`` over ``rows``, checked against ``fast`` there."""
    def run():
        return [kernel((r, r + 1))[r] for r in rows]

    seconds, refs = best_cpu_seconds(run, repeats)
    worst = 0.0
    for r, ref in zip(rows, refs, strict=True):
        if not np.array_equal(np.isnan(ref), np.isnan(fast[r])):
            raise SystemExit(f"par_fast and {name} disagree on NaN cells in row {r}")
        if np.isfinite(ref).any():
            worst = max(worst, float(np.nanmax(np.abs(ref - fast[r]))))
    print(f"  {name}: max |fast - brute| on those rows {worst:.2e} degrees")
    return seconds


def speedup(size: int, cell_m: float, radius_m: float, brute_rows: int | None, seed: int, png: str | None,
            repeats: int = REPEATS) -> tuple[float, float]:
    dem = alpine_dem(size, cell_m, seed)
    release = terrain.release_mask(terrain.slope(dem)).values
    z = dem.values
    print(
        f"DEM {size}x{size} at {cell_m:g} m: {np.ptp(z):.0f} m relief, {release.mean():.1%} release cells, radius "
        f"{radius_m:g} m"
    )
    fast_s, fast = best_cpu_seconds(lambda: par.par_fast(z, release, cell_m, -cell_m, radius_m), repeats)
    print(
        f"par_fast:        {fast_s:8.2f} CPU s for {z.size} cells ({fast_s / z.size * 1e6:.2f} us/cell, one thread, "
        f"best of {repeats})"
    )
    rows = list(range(size)) if brute_rows is None else sample_rows(size, brute_rows)
    how = "all rows" if len(rows) == size else f"{len(rows)} of {size} evenly spaced rows, extrapolated per row"
    totals = {}
    for name, kernel in (
        ("fair brute force", lambda r: bruteforce_fair(z, release, cell_m, -cell_m, radius_m, rows=r)),
        ("atan2 brute force", lambda r: par.par_bruteforce(z, release, cell_m, -cell_m, radius_m, rows=r)),
    ):
        totals[name] = _rows_seconds(kernel, rows, repeats, fast, name) / len(rows) * size
        print(f"{name}: {totals[name]:8.2f} CPU s for {z.size} cells "
              f"({totals[name] / z.size * 1e6:.1f} us/cell; {how}, best of {repeats})")
    if png:
        save_png(dem, release, fast, png)
    return totals["fair brute force"] / fast_s, totals["atan2 brute force"] / fast_s


def big_run(size: int, cell_m: float, radius_m: float, seed: int) -> float:
    dem = alpine_dem(size, cell_m, seed).chunk(schema.CHUNK_YX)
    (release,) = compute(terrain.release_mask(terrain.slope(dem)), desc="release mask", show=False)
    release = release.chunk(schema.CHUNK_YX)
    with scheduler():
        start, start_cpu = time.perf_counter(), time.process_time()
        (result,) = compute(par.potential_angle_of_reach(dem, release, radius_m), desc=f"PAR {size}x{size}")
        seconds, cpu_s = time.perf_counter() - start, time.process_time() - start_cpu
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    row = size // 2
    ref = par.par_bruteforce(dem.values, release.values, cell_m, -cell_m, radius_m, rows=(row, row + 1))[row]
    got = result.values[row].astype(np.float64)
    same_nan = np.array_equal(np.isnan(ref), np.isnan(got))
    worst = float(np.nanmax(np.abs(ref - got))) if np.isfinite(ref).any() else 0.0
    print(
        f"potential_angle_of_reach {size}x{size}, chunks {schema.CHUNK_YX}, {os.cpu_count()} cores, load average "
        f"{load}: "
        f"{seconds:.2f} s wall, {cpu_s:.2f} CPU s "
        f"(row {row} vs brute force: max diff {worst:.2e} degrees (float32 output), NaN cells "
        f"{'agree' if same_nan else 'DIFFER'})"
    )
    return seconds


def save_png(dem: xr.DataArray, release: np.ndarray, par_deg: np.ndarray, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 5), constrained_layout=True)
    for ax, data, title, cmap in (
        (axes[0], dem.values, "DEM (m)", "terrain"),
        (axes[1], release, "release cells (30-50 deg slope)", "Greys"),
        (axes[2], par_deg, "PAR (deg), 4 km", "viridis"),
    ):
        im = ax.imshow(data, cmap=cmap)
        ax.set_title(title)
        ax.set_axis_off()
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="side of the speed-up DEM, cells")
    parser.add_argument("--big", type=int, default=4096, help="side of the all-cores DEM, cells (0 skips it)")
    parser.add_argument("--cell", type=float, default=20.0, help="cell size, m")
    parser.add_argument("--radius", type=float, default=par.PAR_RADIUS_M, help="PAR radius, m")
    parser.add_argument("--brute-rows", type=int, default=16, help="rows brute force runs on (extrapolated per row)")
    parser.add_argument("--full-brute", action="store_true", help="run brute force on every row (minutes)")
    parser.add_argument(
        "--repeats", type=int, default=REPEATS, help="every kernel's time is its best of this many runs"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--png", help="write DEM, release cells and PAR of the speed-up DEM to this PNG")
    args = parser.parse_args()

    warm_up(args.cell, args.radius)
    brute_rows = None if args.full_brute else args.brute_rows
    fair, atan2 = speedup(args.size, args.cell, args.radius, brute_rows, args.seed, args.png, args.repeats)
    print(f"RESULT par_speedup {fair:.1f} x")
    print(f"RESULT par_speedup_vs_atan2_bruteforce {atan2:.1f} x")
    if args.big:
        seconds = big_run(args.big, args.cell, args.radius, args.seed)
        print(f"RESULT par_{args.big}_seconds {seconds:.2f} s")


if __name__ == "__main__":
    main()
