"""Terrain layers: Horn slope/aspect and curvature against analytic surfaces, dask, xarray-spatial."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import xarray as xr

from sarcube.datacube import schema, terrain
from sarcube.errors import InputError


def grid(z: np.ndarray, dx: float = 20.0, dy: float = -20.0, crs: str | None = None) -> xr.DataArray:
    """``z`` on a projected (y, x) grid; dy < 0 is north-up."""
    ny, nx = z.shape
    x = 600_000.0 + dx * np.arange(nx)
    y = 5_100_000.0 + dy * np.arange(ny)
    dem = xr.DataArray(z, dims=(schema.Y, schema.X), coords={schema.X: x, schema.Y: y})
    if crs:
        import rioxarray  # noqa: F401

        dem = dem.rio.write_crs(crs, grid_mapping_name=schema.SPATIAL_REF)
    return dem


def plane(a: float, b: float, shape=(12, 15), dx=20.0, dy=-20.0) -> xr.DataArray:
    """z = a * easting + b * northing (+ offset), rising a per m east and b per m north."""
    dem = grid(np.zeros(shape), dx, dy)
    yy, xx = xr.broadcast(dem[schema.Y], dem[schema.X])
    return grid(1000.0 + a * (xx.values - xx.values[0, 0]) + b * (yy.values - yy.values[0, 0]), dx, dy)


def smooth_dem(shape=(40, 50), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 30.0, shape).cumsum(0).cumsum(1) / 8.0
    return 1500.0 + z


@pytest.mark.parametrize(("dx", "dy"), [(20.0, -20.0), (10.0, -25.0), (30.0, 12.0)])
@pytest.mark.parametrize(("a", "b"), [(0.3, -0.2), (-0.7, 0.0), (0.0, 1.5), (0.05, 0.4)])
def test_plane_slope_and_aspect_exact(a, b, dx, dy):
    dem = plane(a, b, dx=dx, dy=dy)
    s, asp = terrain.slope(dem), terrain.aspect(dem)
    inner = (slice(1, -1), slice(1, -1))
    expected_slope = math.degrees(math.atan(math.hypot(a, b)))
    expected_aspect = math.degrees(math.atan2(-a, -b)) % 360.0  # downhill, clockwise from north
    np.testing.assert_allclose(s.values[inner], expected_slope, atol=1e-4)
    np.testing.assert_allclose(asp.values[inner], expected_aspect, atol=1e-4)
    for out in (s, asp):  # edges as gdaldem without -compute_edges
        v = out.values
        assert np.isnan(v[0]).all() and np.isnan(v[-1]).all() and np.isnan(v[:, 0]).all() and np.isnan(v[:, -1]).all()


@pytest.mark.parametrize(
    ("a", "b", "facing"), [(0.0, -0.5, 0.0), (-0.5, 0.0, 90.0), (0.0, 0.5, 180.0), (0.5, 0.0, 270.0)]
)
def test_aspect_compass_directions(a, b, facing):
    """Ground falling to the north faces north (0), to the east faces east (90), ..."""
    asp = terrain.aspect(plane(a, b)).values[1:-1, 1:-1]
    np.testing.assert_allclose(np.minimum(asp, 360.0 - asp) if facing == 0.0 else asp, facing, atol=1e-6)


def test_north_up_and_south_up_grids_agree():
    z = smooth_dem()
    north_up = grid(z, 20.0, -20.0)
    south_up = grid(z[::-1], 20.0, 20.0)  # same terrain, rows stored from the south
    for fn in (terrain.slope, terrain.aspect, terrain.curvature):
        np.testing.assert_allclose(fn(north_up).values, fn(south_up).values[::-1], atol=1e-4, equal_nan=True)


def test_cone_slope_constant_and_aspect_radial():
    n, cell, rise = 81, 10.0, 0.6  # a peak: z falls 0.6 m per m away from the centre
    dem = grid(np.zeros((n, n)), cell, -cell)
    yy, xx = xr.broadcast(dem[schema.Y], dem[schema.X])
    ex, ny = xx.values - xx.values[40, 40], yy.values - yy.values[40, 40]
    r = np.hypot(ex, ny)
    dem = grid(2000.0 - rise * r, cell, -cell)
    s, asp = terrain.slope(dem).values, terrain.aspect(dem).values
    away = (r > 10 * cell) & np.isfinite(s)
    np.testing.assert_allclose(s[away], math.degrees(math.atan(rise)), atol=0.1)
    outward = np.degrees(np.arctan2(ex, ny)) % 360.0  # the azimuth from the apex
    diff = np.abs((asp[away] - outward[away] + 180.0) % 360.0 - 180.0)
    assert diff.max() < 0.1


def test_flat_ground():
    dem = grid(np.full((6, 7), 850.0))
    assert np.nanmax(terrain.slope(dem).values) == 0.0
    assert np.isnan(terrain.aspect(dem).values).all()  # no downslope direction
    assert np.nanmax(np.abs(terrain.curvature(dem).values)) == 0.0


def test_curvature_of_a_bowl():
    """z = k (x^2 + y^2): d = e = k * cell^2, so curvature = -2 (2 k) * 100 everywhere."""
    k, cell = 0.002, 10.0
    dem = grid(np.zeros((9, 11)), cell, -cell)
    yy, xx = xr.broadcast(dem[schema.Y], dem[schema.X])
    ex, ny = xx.values - xx.values.mean(), yy.values - yy.values.mean()
    c = terrain.curvature(grid(k * (ex**2 + ny**2), cell, -cell)).values[1:-1, 1:-1]
    np.testing.assert_allclose(c, -2.0 * (2.0 * k) * 100.0, rtol=1e-6)


def test_nan_cells_spread_to_their_neighbours_only():
    z = smooth_dem((20, 20))
    z[8, 9] = np.nan
    s = terrain.slope(grid(z)).values
    assert np.isnan(s[7:10, 8:11]).all()
    assert np.isfinite(s[1:-1, 1:-1]).sum() == 18 * 18 - 9


@pytest.mark.parametrize("chunks", [(7, 9), (40, 3), (13, 50)])
def test_dask_equals_numpy_across_chunk_borders(chunks):
    z = smooth_dem()
    z[5, 5] = np.nan
    z[20, 21] = np.nan  # a hole next to a chunk border
    dem = grid(z, 15.0, -25.0)
    for fn in (terrain.slope, terrain.aspect, terrain.curvature):
        eager = fn(dem)
        lazy = fn(dem.chunk({schema.Y: chunks[0], schema.X: chunks[1]}))
        assert lazy.chunks is not None  # still lazy
        np.testing.assert_array_equal(lazy.values, eager.values)


def test_contract_attrs_coords_and_crs_kept():
    dem = grid(smooth_dem((10, 12)), crs="EPSG:32632")
    before = dem.copy(deep=True)
    for fn, name in (
        (terrain.slope, schema.SLOPE),
        (terrain.aspect, schema.ASPECT),
        (terrain.curvature, schema.CURVATURE),
    ):
        out = fn(dem)
        spec = schema.VARIABLES[name]
        assert out.name == name and out.dtype == np.float32
        assert out.attrs["units"] == spec.units and out.attrs["grid_mapping"] == schema.SPATIAL_REF
        assert json.loads(out.attrs[schema.ATTR_PARAMETERS])["method"]
        assert schema.SPATIAL_REF in out.coords and out.rio.crs.to_epsg() == 32632
        np.testing.assert_array_equal(out[schema.X].values, dem[schema.X].values)
    xr.testing.assert_identical(dem, before)  # input unmodified


def test_release_mask():
    s = grid(np.array([[10.0, 30.0, 40.0], [50.0, 50.5, np.nan]]))
    s = schema.make_variable(schema.SLOPE, s)
    mask = terrain.release_mask(s)
    assert mask.dtype == np.uint8 and mask.name == schema.RELEASE
    np.testing.assert_array_equal(mask.values, [[0, 1, 1], [1, 0, 0]])
    assert json.loads(mask.attrs[schema.ATTR_PARAMETERS]) == {"min_deg": 30.0, "max_deg": 50.0}
    np.testing.assert_array_equal(terrain.release_mask(s, 5, 35).values, [[1, 1, 0], [0, 0, 0]])
    lazy = terrain.release_mask(s.chunk({schema.X: 2}))
    np.testing.assert_array_equal(lazy.values, mask.values)
    with pytest.raises(InputError, match="release slope range"):
        terrain.release_mask(s, 50, 30)


def test_bad_input_is_named():
    with pytest.raises(InputError, match="dims"):
        terrain.slope(xr.DataArray(np.zeros((3, 3)), dims=("a", "b")))
    irregular = grid(np.zeros((4, 4))).assign_coords({schema.X: [0.0, 1.0, 3.0, 4.0]})
    with pytest.raises(InputError, match="regularly spaced"):
        terrain.slope(irregular)


def test_agrees_with_xarray_spatial():
    xrspatial = pytest.importorskip("xrspatial")
    z = smooth_dem((30, 40), seed=3).astype(np.float32)
    dem = grid(z, 20.0, -20.0)
    # xarray-spatial's curvature averages the signed cell sizes (0 on north-up grids): give it res
    ref = dem.assign_attrs(res=(20.0, 20.0))
    np.testing.assert_allclose(terrain.slope(dem).values, xrspatial.slope(ref).values, atol=1e-3, equal_nan=True)
    ours, theirs = terrain.aspect(dem).values, xrspatial.aspect(ref).values
    diff = np.abs((ours - theirs + 180.0) % 360.0 - 180.0)
    assert np.nanmax(diff) < 1e-3 and np.array_equal(np.isnan(ours), np.isnan(theirs))
    np.testing.assert_allclose(
        terrain.curvature(dem).values, xrspatial.curvature(ref).values, atol=1e-3, rtol=1e-5, equal_nan=True
    )


def test_hillshade_is_the_cosine_to_the_sun_as_gdaldem():
    z = smooth_dem()
    dem = grid(z)
    shade = terrain.hillshade(z, 20.0, -20.0, azimuth_deg=315.0, altitude_deg=45.0)
    s, a = np.deg2rad(terrain.slope(dem).values), np.deg2rad(terrain.aspect(dem).values)
    zenith, azimuth = np.deg2rad(45.0), np.deg2rad(315.0)
    expected = np.maximum(np.cos(zenith) * np.cos(s) + np.sin(zenith) * np.sin(s) * np.cos(azimuth - a), 0.0)
    inner = np.isfinite(a)
    assert inner[1:-1, 1:-1].all() and np.isnan(shade[0]).all() and np.isnan(shade[:, -1]).all()
    np.testing.assert_allclose(shade[inner], expected[inner], atol=1e-6)
    # a slope facing the light is brighter than one facing away; south-up grids shade the same terrain alike
    # (rising east and south: the slope faces north-west, towards the default light)
    facing = terrain.hillshade(plane(0.3, -0.3).values, 20.0, -20.0)
    away = terrain.hillshade(plane(-0.3, 0.3).values, 20.0, -20.0)
    assert np.nanmin(facing) > 0.9 and np.nanmax(away) < 0.4
    np.testing.assert_allclose(terrain.hillshade(z[::-1], 20.0, 20.0), shade[::-1], atol=1e-6)
    with pytest.raises(InputError, match="altitude"):
        terrain.hillshade(z, 20.0, -20.0, altitude_deg=0.0)
