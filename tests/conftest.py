"""Shared fixtures: tiny cubes written through the schema helpers, in milliseconds."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from sarcube.datacube import schema, store

TINY_CRS = "EPSG:32632"


def make_tiny_cube(ny: int = 24, nx: int = 32, nt: int = 4, seed: int = 0) -> xr.Dataset:
    """A contract-conforming cube: vv/vh time series over two orbits, dem, no features yet."""
    rng = np.random.default_rng(seed)
    x = 600_000.0 + 10.0 + 20.0 * np.arange(nx)
    y = 5_100_000.0 - 10.0 - 20.0 * np.arange(ny)
    ds = schema.empty_cube(
        x,
        y,
        TINY_CRS,
        attrs={
            schema.ATTR_TITLE: "tiny test cube",
            schema.ATTR_AOI: schema.encode_json_attr(
                {"type": "Polygon", "coordinates": [[[8.0, 46.0], [8.01, 46.0], [8.01, 46.01], [8.0, 46.0]]]}
            ),
            schema.ATTR_START: "2020-01-01",
            schema.ATTR_END: "2020-02-01",
            schema.ATTR_CATALOG: "test",
            schema.ATTR_COLLECTIONS: schema.encode_json_attr([schema.COLLECTION_S1_RTC]),
            schema.ATTR_STAC_ITEMS: schema.encode_json_attr([{"id": f"item-{i}"} for i in range(nt)]),
            schema.ATTR_HISTORY: "created by tests",
            schema.ATTR_CREATED: "2020-02-02T00:00:00Z",
        },
    )
    times = np.datetime64("2020-01-01T05:00") + np.arange(nt) * np.timedelta64(3, "D")
    coords = schema.time_coords(
        times,
        ["SENTINEL-1A"] * nt,
        [schema.ORBIT_ASCENDING if i % 2 == 0 else schema.ORBIT_DESCENDING for i in range(nt)],
        [15 if i % 2 == 0 else 66 for i in range(nt)],
        [f"item-{i}" for i in range(nt)],
    )
    ds = ds.assign_coords(coords)
    tyx = (schema.TIME, schema.Y, schema.X)
    ds[schema.VV] = schema.make_variable(schema.VV, rng.normal(-12, 2, (nt, ny, nx)), tyx)
    ds[schema.VH] = schema.make_variable(schema.VH, rng.normal(-19, 2, (nt, ny, nx)), tyx)
    yy, xx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    ds[schema.DEM] = schema.make_variable(schema.DEM, 1000.0 + 5.0 * yy + 3.0 * xx)
    return ds


@pytest.fixture
def tiny_cube(tmp_path):
    """Path of a tiny cube on disk."""
    path = tmp_path / "tiny.zarr"
    store.write_cube(make_tiny_cube(), path)
    return path


def make_pair_cube(ny: int = 24, nx: int = 32, n_pairs: int = 3, seed: int = 0) -> xr.Dataset:
    """:func:`make_tiny_cube` plus same-orbit pairs, pair features, terrain, PAR and per-pair labels."""
    rng = np.random.default_rng(seed)
    nt = n_pairs + 2
    ds = make_tiny_cube(ny, nx, nt, seed)
    t = ds[schema.TIME].values
    orbits = ds[schema.RELATIVE_ORBIT].values
    ds = ds.assign_coords(schema.pair_coords(t[:n_pairs], t[2 : n_pairs + 2], orbits[:n_pairs]))
    pyx = (schema.PAIR, schema.Y, schema.X)
    ds[schema.VV_DIFF] = schema.make_variable(schema.VV_DIFF, rng.normal(0, 2, (n_pairs, ny, nx)), pyx)
    ds[schema.VH_DIFF] = schema.make_variable(schema.VH_DIFF, rng.normal(0, 2, (n_pairs, ny, nx)), pyx)
    yy, xx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    ds[schema.SLOPE] = schema.make_variable(schema.SLOPE, 20.0 + 20.0 * yy / max(ny - 1, 1))
    ds[schema.ASPECT] = schema.make_variable(schema.ASPECT, np.mod(90.0 + 10.0 * xx, 360.0))
    ds[schema.PAR] = schema.make_variable(schema.PAR, 25.0 + 10.0 * xx / max(nx - 1, 1))
    label = (rng.random((n_pairs, ny, nx)) < 0.1).astype("uint8")
    label[:, :2, :] = schema.LABEL_UNKNOWN
    ds[schema.LABEL] = schema.make_variable(schema.LABEL, label, pyx)
    return ds


@pytest.fixture
def one_torch_thread():
    """Tiny networks: one intra-op thread is fastest, and immune to a busy machine's spin-waits
    (a module uses it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
