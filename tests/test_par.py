"""PAR: the fast branch-and-bound kernel equals the brute-force definition; dask equals numpy."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import xarray as xr

from sarcube.datacube import par, schema, terrain
from sarcube.errors import InputError

TOLERANCE_DEG = 1e-4


def assert_same_par(fast: np.ndarray, reference: np.ndarray) -> None:
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(reference))
    if np.isfinite(reference).any():
        assert np.nanmax(np.abs(fast - reference)) < TOLERANCE_DEG


def rough_dem(shape, seed, relief=40.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 1000.0 + rng.normal(0.0, relief, shape).cumsum(0).cumsum(1) / 6.0


def alpine_dem(n: int, cell_m: float = 20.0, seed: int = 0) -> np.ndarray:
    """Fractal ridges and valleys, about 2 km of relief (a smaller cousin of the benchmark's DEM)."""
    rng = np.random.default_rng(seed)
    k = np.hypot(np.fft.fftfreq(n, d=cell_m)[:, None], np.fft.rfftfreq(n, d=cell_m)[None, :])
    spectrum = np.maximum(k, 1.0 / 6000.0) ** -2.2 * np.exp(2j * np.pi * rng.random(k.shape))
    field = np.fft.irfft2(spectrum, s=(n, n))
    field = (field - field.mean()) / field.std()
    return (1800.0 + 450.0 * field + 225.0 * (1.0 - np.abs(np.tanh(field)))).astype(np.float32)


def on_grid(z: np.ndarray, dx: float = 20.0, dy: float = -20.0) -> xr.DataArray:
    ny, nx = z.shape
    coords = {schema.X: 500_000.0 + dx * np.arange(nx), schema.Y: 5_000_000.0 + dy * np.arange(ny)}
    return xr.DataArray(z, dims=(schema.Y, schema.X), coords=coords)


def test_hand_computed_row():
    z = np.array([[0.0, 10.0, 0.0, 30.0]])
    release = np.array([[0, 1, 0, 0]])
    out = par.par_fast(z, release, 10.0, -10.0, 25.0)
    # left and right of the release cell: 45 degrees up; the release cell itself has no other
    # release cell in reach; the last cell sees it 20 m away and 20 m below
    np.testing.assert_allclose(out, [[45.0, np.nan, 45.0, -45.0]], atol=1e-12)
    assert_same_par(out, par.par_bruteforce(z, release, 10.0, -10.0, 25.0))


def test_radius_is_inclusive_and_in_metres():
    z = np.zeros((1, 6))
    z[0, 5] = 50.0
    release = np.zeros((1, 6), dtype=np.uint8)
    release[0, 5] = 1
    out = par.par_fast(z, release, 20.0, 20.0, 80.0)  # reaches 4 cells: columns 1..4
    assert np.isnan(out[0, 0]) and np.isnan(out[0, 5])
    np.testing.assert_allclose(out[0, 1:5], np.degrees(np.arctan2(50.0, [80.0, 60.0, 40.0, 20.0])))


@pytest.mark.parametrize("seed", range(6))
def test_fast_equals_bruteforce_on_random_dems(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(int(v) for v in rng.integers(8, 48, 2))
    z = rough_dem(shape, seed)
    z[rng.random(shape) < 0.02] = np.nan
    release = (rng.random(shape) < rng.uniform(0.01, 0.6)).astype(np.uint8)
    dx, dy = float(rng.uniform(5, 30)), -float(rng.uniform(5, 30))  # non-square cells
    radius = float(rng.uniform(20.0, 700.0))
    assert_same_par(par.par_fast(z, release, dx, dy, radius), par.par_bruteforce(z, release, dx, dy, radius))


@pytest.mark.parametrize(
    ("case", "radius"),
    [("none", 300.0), ("all", 300.0), ("all", 5.0), ("single", 1e6), ("below", 300.0), ("nan-release", 300.0)],
)
def test_edge_cases(case, radius):
    rng = np.random.default_rng(1)
    z = rough_dem((20, 23), 7)
    release = np.zeros(z.shape, dtype=np.uint8)
    if case == "all":
        release[:] = 1
    elif case == "single":
        release[4, 17] = 1
    elif case == "below":  # every release cell lies below the others: negative PAR
        z = np.abs(z - 1000.0) + 500.0
        release[(z < np.percentile(z, 20))] = 1
    elif case == "nan-release":
        release = (rng.random(z.shape) < 0.3).astype(np.uint8)
        z[release == 1] = np.where(rng.random(int(release.sum())) < 0.5, np.nan, z[release == 1])
    fast = par.par_fast(z, release, 10.0, -12.0, radius)
    assert_same_par(fast, par.par_bruteforce(z, release, 10.0, -12.0, radius))
    if case == "none" or radius < 10.0:
        assert np.isnan(fast).all()  # nothing in reach (a radius below one cell reaches no other cell)
    if case == "below":
        assert np.nanmin(fast) < 0.0
    if case == "single":
        assert np.isnan(fast[4, 17]) and np.isfinite(np.delete(fast.ravel(), 4 * 23 + 17)).all()


def test_fast_equals_bruteforce_on_an_alpine_dem():
    z = alpine_dem(64)
    dem = on_grid(z)
    release = terrain.release_mask(terrain.slope(dem)).values
    assert 0.05 < release.mean() < 0.95
    fast = par.par_fast(z, release, 20.0, -20.0, 600.0)
    assert_same_par(fast, par.par_bruteforce(z, release, 20.0, -20.0, 600.0))
    assert np.isfinite(fast).mean() > 0.9


def test_fast_equals_bruteforce_on_the_synthetic_scene_dem():
    synthetic_terrain = pytest.importorskip("sarcube.datacube.synthetic.terrain")
    n, cell = 72, 20.0
    x = 600_000.0 + cell * (np.arange(n) + 0.5)
    y = 5_100_000.0 - cell * (np.arange(n) + 0.5)
    z = synthetic_terrain.alpine_dem(x, y, np.random.default_rng(3)).astype(np.float32)
    release = terrain.release_mask(terrain.slope(on_grid(z, cell, -cell))).values
    assert release.any()
    fast = par.par_fast(z, release, cell, -cell, 700.0)
    assert_same_par(fast, par.par_bruteforce(z, release, cell, -cell, 700.0))


def test_bruteforce_rows_subset():
    z = rough_dem((12, 10), 2)
    release = (z > np.median(z)).astype(np.uint8)
    full = par.par_bruteforce(z, release, 10.0, -10.0, 60.0)
    part = par.par_bruteforce(z, release, 10.0, -10.0, 60.0, rows=(3, 6))
    np.testing.assert_array_equal(part[3:6], full[3:6])
    assert np.isnan(part[:3]).all() and np.isnan(part[6:]).all()


@pytest.mark.parametrize("chunks", [(16, 16), (40, 9)])
def test_dask_equals_numpy_with_halo(chunks):
    z = alpine_dem(64, cell_m=10.0, seed=4)[:60, :50]
    z[10, 10] = np.nan
    dem = on_grid(z, 10.0, -10.0)
    release = terrain.release_mask(terrain.slope(dem))
    radius = 230.0  # a 24-cell halo: wider than a chunk
    eager = par.potential_angle_of_reach(dem, release, radius)
    lazy = par.potential_angle_of_reach(dem.chunk({schema.Y: chunks[0], schema.X: chunks[1]}), release, radius)
    assert lazy.chunks is not None
    np.testing.assert_array_equal(lazy.values, eager.values)
    assert_same_par(eager.values.astype(np.float64), par.par_bruteforce(z, release.values, 10.0, -10.0, radius))


def test_dask_dem_smaller_than_the_halo():
    z = rough_dem((9, 30), 5)
    dem = on_grid(z)
    release = (z > np.median(z)).astype(np.uint8)
    lazy = par.potential_angle_of_reach(dem.chunk({schema.X: 8}), on_grid(release), radius_m=4000.0)
    np.testing.assert_allclose(
        lazy.values, par.par_bruteforce(z, release, 20.0, -20.0, 4000.0), atol=1e-5, equal_nan=True
    )


def test_public_function_is_a_contract_variable():
    import rioxarray  # noqa: F401

    z = rough_dem((15, 18), 3)
    dem = on_grid(z).rio.write_crs("EPSG:32633", grid_mapping_name=schema.SPATIAL_REF)
    release = terrain.release_mask(terrain.slope(dem), 10.0, 60.0)
    out = par.potential_angle_of_reach(dem, release, radius_m=150.0)
    assert out.name == schema.PAR and out.dtype == np.float32
    assert out.attrs["units"] == "degree" and out.rio.crs.to_epsg() == 32633
    params = json.loads(out.attrs[schema.ATTR_PARAMETERS])
    assert params["radius_m"] == 150.0 and params["release"] == {"min_deg": 10.0, "max_deg": 60.0}
    np.testing.assert_allclose(
        out.values, par.par_fast(z, release.values, 20.0, -20.0, 150.0), atol=1e-5, equal_nan=True
    )


def test_bad_input_is_named():
    z = np.zeros((4, 4))
    with pytest.raises(InputError, match="radius"):
        par.par_fast(z, z, 10.0, 10.0, 0.0)
    with pytest.raises(InputError, match="shape"):
        par.par_bruteforce(z, z[:3], 10.0, 10.0, 100.0)
    with pytest.raises(InputError, match="radius"):
        par.potential_angle_of_reach(on_grid(z), on_grid(z), radius_m=-1.0)
    with pytest.raises(InputError, match="differs"):
        par.potential_angle_of_reach(on_grid(z), on_grid(z[:3]))


def test_reach_cells_covers_the_radius():
    assert par.reach_cells(4000.0, 20.0) == 201
    assert par.reach_cells(4000.0, -20.0) == 201
    assert par.reach_cells(0.3, 0.1) * 0.1 > 0.3 - 1e-12
    assert math.isclose(par.PAR_RADIUS_M, 4000.0)


def test_fast_equals_bruteforce_around_the_scanned_window():
    """Radii from below one cell to past the directly scanned window and the leaf blocks, odd shapes."""
    rng = np.random.default_rng(11)
    for _ in range(30):
        shape = tuple(int(v) for v in rng.integers(5, 24, 2))
        z = rough_dem(shape, int(rng.integers(1000)), relief=float(rng.uniform(5.0, 80.0)))
        release = (rng.random(shape) < rng.uniform(0.05, 0.9)).astype(np.uint8)
        dx, dy = float(rng.uniform(8, 12)), -float(rng.uniform(8, 12))
        radius = float(rng.uniform(5.0, 120.0))
        assert_same_par(par.par_fast(z, release, dx, dy, radius), par.par_bruteforce(z, release, dx, dy, radius))


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (2, 2), (5, 3), (4, 4), (17, 13)])
def test_fast_equals_bruteforce_on_tiny_and_ragged_dems(shape):
    """Shapes that are no multiple of the 4x4 tiles, down to one cell (the pyramid's root is then a leaf)."""
    rng = np.random.default_rng(sum(shape))
    z = rough_dem(shape, 5, relief=60.0)
    release = (rng.random(shape) < 0.5).astype(np.uint8)
    for radius in (15.0, 60.0, 1000.0):
        fast = par.par_fast(z, release, 10.0, -10.0, radius)
        assert_same_par(fast, par.par_bruteforce(z, release, 10.0, -10.0, radius))


def test_fast_equals_bruteforce_with_nan_tiles_isolated_cells_and_flat_terrain():
    """Whole tiles of NaN, cells with no release cell in reach next to cells with many, flat and stepped terrain."""
    rng = np.random.default_rng(21)
    z = rough_dem((30, 34), 9)
    z[4:12, 8:16] = np.nan  # two full tiles and parts of their neighbours
    z[20:, :10] = 1500.0  # flat: every ratio in there is 0 or the rise to the rough part
    z[:, 30:] = np.where(np.arange(30)[:, None] % 7 < 3, 900.0, 1300.0)  # steps
    release = (rng.random(z.shape) < 0.25).astype(np.uint8)
    release[:, 18:26] = 0  # a band without release cells: its cells reach some only with a large radius
    for radius in (25.0, 45.0, 400.0):
        fast = par.par_fast(z, release, 10.0, -10.0, radius)
        assert_same_par(fast, par.par_bruteforce(z, release, 10.0, -10.0, radius))
        assert np.isnan(fast[4:12, 8:16]).all()
    flat = np.full((12, 12), 700.0)
    out = par.par_fast(flat, np.ones(flat.shape, dtype=np.uint8), 10.0, -10.0, 50.0)
    np.testing.assert_array_equal(out, np.zeros(flat.shape))  # flat: every release cell at 0 degrees
    assert np.isnan(par.par_fast(flat, np.zeros(flat.shape, dtype=np.uint8), 10.0, -10.0, 50.0)).all()


@pytest.mark.parametrize("seed", range(4))
def test_fast_equals_bruteforce_on_peaks_and_pits(seed):
    """Sharp peaks (all release below: negative PAR) and pits next to each other, where tile bounds are loosest."""
    rng = np.random.default_rng(100 + seed)
    shape = (int(rng.integers(20, 40)), int(rng.integers(20, 40)))
    z = rough_dem(shape, seed, relief=20.0)
    peaks = rng.random(shape) < 0.03
    z[peaks] += rng.uniform(-300.0, 300.0, int(peaks.sum()))
    release = (rng.random(shape) < rng.uniform(0.05, 0.5)).astype(np.uint8)
    radius = float(rng.uniform(40.0, 300.0))
    fast = par.par_fast(z, release, 12.0, -9.0, radius)
    assert_same_par(fast, par.par_bruteforce(z, release, 12.0, -9.0, radius))
    assert np.nanmin(fast) < 0.0 < np.nanmax(fast)


@pytest.mark.parametrize("seed", range(3))
def test_fast_equals_bruteforce_with_sparse_release_cells(seed):
    """Few release cells: windows rarely hold one, so the tiles' lower bounds come from far warm starts."""
    rng = np.random.default_rng(200 + seed)
    z = rough_dem((48, 44), seed, relief=50.0)
    release = (rng.random(z.shape) < 0.01).astype(np.uint8)
    fast = par.par_fast(z, release, 10.0, -10.0, 350.0)
    assert_same_par(fast, par.par_bruteforce(z, release, 10.0, -10.0, 350.0))
    assert np.isfinite(fast).mean() > 0.5


def max_ratio_par(z: np.ndarray, release: np.ndarray, dx: float, dy: float, radius: float) -> np.ndarray:
    """PAR by the definition, vectorised over cell offsets: atan of the largest (z_r - z_c) / distance.

    The fast kernel maximises the same products, (z_r - z_c) * (1 / sqrt(di^2 dy^2 + dj^2 dx^2)), so the two
    agree bit for bit (unlike the atan2 brute force, whose angles differ from atan(ratio) in the last bits).
    """
    rows, cols = z.shape
    top = np.where((release != 0) & ~np.isnan(z), z, -np.inf)
    best = np.full(z.shape, -np.inf)
    for di in range(-rows + 1, rows):
        for dj in range(-cols + 1, cols):
            d2 = (di * dy) ** 2 + (dj * dx) ** 2
            if not 0.0 < d2 <= radius * radius:
                continue
            ratio = np.full(z.shape, -np.inf)
            src = top[max(di, 0): rows + min(di, 0), max(dj, 0): cols + min(dj, 0)]
            cells = (slice(max(-di, 0), rows + min(-di, 0)), slice(max(-dj, 0), cols + min(-dj, 0)))
            ratio[cells] = (src - z[cells]) * (1.0 / math.sqrt(d2))
            best = np.maximum(best, np.where(np.isnan(ratio), -np.inf, ratio))
    out = np.array([math.atan(t) * par.RADIANS_TO_DEGREES if t > -math.inf else math.nan for t in best.ravel()])
    return np.where(np.isnan(z), np.nan, out.reshape(z.shape))


@pytest.mark.parametrize("case", ["flat", "nodata", "tile-edges", "single", "dem-edges"])
def test_fast_is_bitwise_the_largest_ratio(case):
    """Bit for bit, where the search's shortcuts (window lanes, tile lists, warm starts) take their edge paths."""
    rng = np.random.default_rng(31)
    z = rough_dem((27, 30), 4, relief=50.0)
    release = (rng.random(z.shape) < 0.3).astype(np.uint8)
    if case == "flat":  # flat plateaus and ties everywhere: every ratio there is 0
        z[:14] = 1200.0
        z[14:, 20:] = 1000.0
    elif case == "nodata":  # NaN cells, NaN release cells and a NaN tile
        z[rng.random(z.shape) < 0.1] = np.nan
        z[8:12, 4:8] = np.nan
    elif case == "tile-edges":  # release cells only on the rows and columns where 4x4 tiles meet
        release[:] = 0
        release[3::4, :] = release[:, 4::4] = 1
    elif case == "single":
        release[:] = 0
        release[13, 9] = 1
    else:  # release cells only within one cell of the DEM's border: clipped windows, edge leaves
        release[2:-2, 2:-2] = 0
    for radius in (35.0, 90.0, 500.0):
        fast = par.par_fast(z, release, 10.0, -11.0, radius)
        np.testing.assert_array_equal(fast, max_ratio_par(z, release, 10.0, -11.0, radius))
    if case == "single":
        assert np.isnan(fast[13, 9]) and np.isfinite(np.delete(fast.ravel(), 13 * 30 + 9)).all()
