"""PAR benchmark: the exact branch-and-bound kernel against the brute-force kernel.

Makes a procedural alpine DEM (fractal ridges and valleys, about 2 km of
relief, ~40 % of cells in the 30-50 degree release range), then prints

- ``RESULT par_speedup <x> x``: single-thread time of
  :func:`sarcube.datacube.par.par_bruteforce` over
  :func:`~sarcube.datacube.par.par_fast` on 512x512 cells at 20 m, 4 km radius.
  Both are timed in CPU seconds of the calling thread (the kernels run in
  it), so other load on the machine does not skew the ratio.
  Brute force costs ~0.5 ms a cell here (~125k cells within 4 km each), over
  two minutes for the whole DEM, so by default it runs on ``--brute-rows``
  evenly spaced rows and its time is extrapolated per row to the whole DEM
  (``--full-brute`` runs it on every row). Both kernels are compiled before
  timing, and their results are compared on the rows brute force computed.
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
from sarcube.datacube import par, schema, terrain
from sarcube.pipelines._dask import compute, scheduler

#: spectral exponent of the fractal DEM (amplitude ~ wavenumber ** -exponent)
DEM_SPECTRAL_EXPONENT = 2.2
#: wavelengths longer than this are not amplified further, m (about the spacing of main valleys)
DEM_LONGEST_WAVELENGTH_M = 6000.0
DEM_BASE_ELEVATION_M = 1800.0
DEM_RELIEF_M = 450.0  # standard deviation of the fractal field
FAST_REPEATS = 3


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


def warm_up(cell_m: float, radius_m: float) -> None:
    """Compile (or load from numba's cache) every kernel on tiny arrays, off the clock."""
    dem = alpine_dem(32, cell_m, 1)
    release = terrain.release_mask(terrain.slope(dem))
    par.par_fast(dem.values, release.values, cell_m, -cell_m, radius_m)
    par.par_bruteforce(dem.values, release.values, cell_m, -cell_m, radius_m)
    par.potential_angle_of_reach(dem.chunk(16), release.chunk(16), radius_m).compute()


def sample_rows(n: int, count: int) -> list[int]:
    return sorted({int(r) for r in np.linspace(0, n - 1, max(1, min(count, n)))})


def speedup(size: int, cell_m: float, radius_m: float, brute_rows: int | None, seed: int, png: str | None) -> float:
    dem = alpine_dem(size, cell_m, seed)
    release = terrain.release_mask(terrain.slope(dem)).values
    z = dem.values
    print(f"DEM {size}x{size} at {cell_m:g} m: {np.ptp(z):.0f} m relief, {release.mean():.1%} release cells, radius {radius_m:g} m")
    fast_s = math.inf
    for _ in range(FAST_REPEATS):  # the quickest of a few: other work on the machine only adds
        start = time.thread_time()
        fast = par.par_fast(z, release, cell_m, -cell_m, radius_m)
        fast_s = min(fast_s, time.thread_time() - start)
    print(f"par_fast:       {fast_s:8.2f} CPU s for {z.size} cells ({fast_s / z.size * 1e6:.2f} us/cell, one thread)")

    rows = list(range(size)) if brute_rows is None else sample_rows(size, brute_rows)
    brute_s, worst = 0.0, 0.0
    for row in rows:
        start = time.thread_time()
        ref = par.par_bruteforce(z, release, cell_m, -cell_m, radius_m, rows=(row, row + 1))
        brute_s += time.thread_time() - start
        if not np.array_equal(np.isnan(ref[row]), np.isnan(fast[row])):
            raise SystemExit(f"par_fast and par_bruteforce disagree on NaN cells in row {row}")
        if np.isfinite(ref[row]).any():
            worst = max(worst, float(np.nanmax(np.abs(ref[row] - fast[row]))))
    brute_total_s = brute_s / len(rows) * size
    how = "all rows" if len(rows) == size else f"{len(rows)} of {size} evenly spaced rows, extrapolated per row to all {size}"
    print(f"par_bruteforce: {brute_total_s:8.2f} CPU s for {z.size} cells ({brute_s / (len(rows) * size) * 1e6:.1f} us/cell; measured on {how})")
    print(f"max |fast - brute| on those rows: {worst:.2e} degrees")
    if png:
        save_png(dem, release, fast, png)
    return brute_total_s / fast_s


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
    print(f"potential_angle_of_reach {size}x{size}, chunks {schema.CHUNK_YX}, {os.cpu_count()} cores, load average {load}: "
          f"{seconds:.2f} s wall, {cpu_s:.2f} CPU s "
          f"(row {row} vs brute force: max diff {worst:.2e} degrees (float32 output), NaN cells {'agree' if same_nan else 'DIFFER'})")
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
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--png", help="write DEM, release cells and PAR of the speed-up DEM to this PNG")
    args = parser.parse_args()

    warm_up(args.cell, args.radius)
    ratio = speedup(args.size, args.cell, args.radius, None if args.full_brute else args.brute_rows, args.seed, args.png)
    print(f"RESULT par_speedup {ratio:.1f} x")
    if args.big:
        seconds = big_run(args.big, args.cell, args.radius, args.seed)
        print(f"RESULT par_{args.big}_seconds {seconds:.2f} s")


if __name__ == "__main__":
    main()
