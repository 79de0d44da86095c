"""Cube steps on a dask cluster of worker processes (pickled tasks, no shared memory) equal local threads."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from distributed import LocalCluster

from conftest import make_tiny_cube
from sarcube.datacube import sar, schema, store
from sarcube.pipelines.add_layer import add_layer
from sarcube.pipelines.build import build
from sarcube.pipelines.features import features
from sarcube.pipelines.predict import predict
from stac_server import write_test_catalog
from test_labels import cells, write_polygons
from test_predict import make_run


@pytest.fixture(scope="module")
def address():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, memory_limit="2GiB") as cluster:
        yield cluster.scheduler_address


def assert_same_cube(a_path, b_path):
    a, b = schema.open_cube(a_path), schema.open_cube(b_path)
    assert sorted(a.data_vars) == sorted(b.data_vars)
    for name in list(a.data_vars) + list(a.coords):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


def test_build_and_features_on_worker_processes(address, tmp_path):
    cat = write_test_catalog(tmp_path / "catalog", size=128)  # a 24 x 24 px cube
    local = build(cat.aoi, cat.start, cat.end, tmp_path / "local.zarr", catalog=str(cat.root))
    remote = build(cat.aoi, cat.start, cat.end, tmp_path / "cluster.zarr", catalog=str(cat.root), scheduler=address)
    assert_same_cube(local, remote)
    features(local, par=False)  # PAR's numba kernel would compile once per worker process: minutes on 2 cores
    features(remote, scheduler=address, par=False)
    assert_same_cube(local, remote)


def test_add_layer_and_predict_on_worker_processes(address, tmp_path):
    ds = make_tiny_cube(nt=6)
    ds = ds.assign_coords(sar.make_pairs(ds))
    local = tmp_path / "local.zarr"
    store.write_cube(ds, local)
    features(local, par=False)
    remote = tmp_path / "cluster.zarr"
    shutil.copytree(local, remote)
    labels = write_polygons(tmp_path / "debris.geojson", [cells(4, 10, 4, 12), cells(12, 20, 16, 30)], "EPSG:4326",
                            date=["2020-01-06T00:00:00", "2020-01-12T00:00:00"])
    add_layer(local, labels=labels, date_field="date")
    add_layer(remote, labels=labels, date_field="date", scheduler=address)
    run = make_run(tmp_path / "run", schema.open_cube(local))
    predict(local, run, name="t", tta=False, device="cpu")
    predict(remote, run, name="t", tta=False, device="cpu", scheduler=address)
    assert_same_cube(local, remote)
    assert (schema.open_cube(remote)[schema.LABEL].values == 1).any()
