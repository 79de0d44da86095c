"""One way to run dask work: local threads by default, any scheduler address
for a cluster, and a progress bar either way.

``--scheduler ADDRESS`` (or ``DASK_SCHEDULER_ADDRESS``) connects a
``distributed.Client``; without it dask's local threaded scheduler runs the
graph in this process (numba kernels release the GIL, so threads scale).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dask

from sarcube.errors import InputError

log = logging.getLogger(__name__)

SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"


@contextmanager
def scheduler(address: str | None = None, *, timeout: str = "20s") -> Iterator[Any]:
    """Context in which dask computations run on ``address`` (or locally).

    Yields the ``distributed.Client`` when one is used, else None.
    """
    address = address or os.environ.get(SCHEDULER_ENV) or None
    if not address:
        with dask.config.set(scheduler="threads"):
            yield None
        return
    from distributed import Client

    try:
        client = Client(address, timeout=timeout, set_as_default=True)
    except (OSError, TimeoutError) as err:
        raise InputError(
            f"cannot reach dask scheduler {address!r} ({err}): check --scheduler or {SCHEDULER_ENV}"
        ) from err
    log.info("using dask scheduler %s (%s)", address, client.dashboard_link)
    try:
        yield client
    finally:
        client.close()


@contextmanager
def progress(desc: str, client: Any = None) -> Iterator[None]:
    """A tqdm bar over the dask tasks computed inside the block (e.g. a zarr write).

    On a cluster (``client`` given) the dashboard shows progress instead.
    """
    if client is not None:
        yield
        return
    from tqdm.dask import TqdmCallback

    with TqdmCallback(desc=desc, leave=False):
        yield


def compute(*collections: Any, desc: str = "computing", client: Any = None, show: bool = True) -> tuple[Any, ...]:
    """``dask.compute`` with a progress bar (tqdm locally, distributed's on a cluster)."""
    if client is None:
        try:
            from distributed import get_client

            client = get_client()
        except (ImportError, ValueError):
            client = None
    if client is not None:
        futures = client.compute(list(collections))
        if show:
            from distributed import progress as cluster_progress

            cluster_progress(futures)
        return tuple(client.gather(futures))
    if not show:
        return dask.compute(*collections)
    with progress(desc):
        return dask.compute(*collections)


__all__ = ["SCHEDULER_ENV", "compute", "progress", "scheduler"]
