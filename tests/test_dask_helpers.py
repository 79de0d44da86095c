"""The scheduler helper: local threads by default, a real distributed cluster by address."""

from __future__ import annotations

import dask.array as da
import pytest

from sarcube.errors import InputError
from sarcube.pipelines import _dask


def test_local_threads():
    with _dask.scheduler(None) as client:
        assert client is None
        (total,) = _dask.compute(da.ones((100, 100), chunks=50).sum(), desc="sum")
    assert total == 10_000


def test_distributed_by_address():
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        with _dask.scheduler(cluster.scheduler_address) as client:
            assert client is not None
            (total,) = _dask.compute(da.ones((64, 64), chunks=32).sum(), client=client, show=False)
    assert total == 64 * 64


def test_unreachable_scheduler_is_a_clear_error():
    with pytest.raises(InputError, match="--scheduler"):
        with _dask.scheduler("tcp://127.0.0.1:9", timeout="2s"):
            pass
