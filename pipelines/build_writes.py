"""Writing a build's pending steps: not a step itself, the write half of ``sarcube build``.

Each pending step (an acquisition's time step, or the DEM) is loaded onto the
grid (``datacube.load``) and written by region (``datacube.store``), a batch
at a time, and crossed off the cube's ``sarcube_build_pending`` list once it
is on disk, so an interrupted build resumes with the steps still listed.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from sarcube.datacube import load, schema, store, zarrio
from sarcube.datacube.catalog import Catalog
from sarcube.datacube.grid import Grid
from sarcube.errors import CubeSchemaError, InputError
from sarcube.pipelines import _dask

#: the pending-step key of the elevation layer
DEM_STEP = "elevation"
#: dask read tasks per worker thread in one batch of steps: enough to keep the threads busy (the next
#: batch is prepared while one runs), few enough that what a batch holds stays small
TASKS_PER_THREAD = 4
MAX_STEPS_PER_BATCH = 8
#: environment variable fixing the steps per batch (resume granularity)
BATCH_ENV = "SARCUBE_BUILD_BATCH_STEPS"


def step_key(time: np.datetime64) -> str:
    """The pending-list key of a time step: its time in ISO seconds."""
    return str(np.datetime_as_string(np.datetime64(time, "ns"), unit="s"))


def lazy_nan(shape: tuple[int, ...], dims: tuple[str, ...]) -> da.Array:
    """An unwritten float32 layer: NaN, lazily, in the contract's chunks."""
    return da.full(shape, np.nan, dtype="float32", chunks=schema.chunks_for(dims, shape))


def time_dataset(acquisitions: Sequence[load.Acquisition], grid: Grid) -> xr.Dataset:
    """Per-time coords and unwritten vv/vh for ``acquisitions`` (no grid coords)."""
    coords = schema.time_coords(
        [a.time for a in acquisitions],
        [a.platform for a in acquisitions],
        [a.orbit_state for a in acquisitions],
        [a.relative_orbit for a in acquisitions],
        [a.item_ids for a in acquisitions],
    )
    tyx = (schema.TIME, *schema.SPATIAL_DIMS)
    shape = (len(acquisitions), *grid.shape)
    ds = xr.Dataset(coords=coords)
    for name in schema.BACKSCATTER:
        ds[name] = schema.make_variable(name, xr.DataArray(lazy_nan(shape, tyx), dims=tyx))
    return ds


def _batch_size(grid: Grid) -> int:
    """Steps per batch: enough read tasks to keep every thread busy (``$SARCUBE_BUILD_BATCH_STEPS`` overrides)."""
    if os.environ.get(BATCH_ENV):
        try:
            return max(1, int(os.environ[BATCH_ENV]))
        except ValueError as err:
            raise InputError(f"{BATCH_ENV}={os.environ[BATCH_ENV]!r} is not a whole number of time steps") from err
    ny, nx = grid.shape
    tasks_per_step = len(schema.BACKSCATTER) * math.ceil(ny / load.READ_CHUNK) * math.ceil(nx / load.READ_CHUNK)
    threads = os.cpu_count() or 1
    return max(1, min(MAX_STEPS_PER_BATCH, math.ceil(TASKS_PER_THREAD * threads / tasks_per_step)))


def _contiguous_runs(indices: Sequence[int]) -> list[range]:
    """Sorted ``indices`` cut into runs of consecutive values."""
    runs: list[range] = []
    for i in sorted(indices):
        if runs and runs[-1].stop == i:
            runs[-1] = range(runs[-1].start, i + 1)
        else:
            runs.append(range(i, i + 1))
    return runs


def write_steps(
    out: str | Path,
    steps: list[str],
    acquisitions: Mapping[str, load.Acquisition],
    dem_items: Sequence[Any],
    catalog: Catalog,
    grid: Grid,
    storage_options: Mapping[str, Any] | None,
    client: Any,
) -> None:
    """Write the pending ``steps`` by region, a batch at a time, crossing each batch off the pending list.

    The next batch's graph is built while the current one computes (in a
    helper thread), so the workers are not idle between batches; the pending
    list is rewritten only in this thread, after a batch is on disk.
    """
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    with zarrio.quiet_zarr_warnings():
        stored = xr.open_zarr(
            str(out),
            zarr_format=3,
            consolidated=True,
            storage_options=dict(storage_options) if storage_options else None,
        )
        index = (
            {step_key(t): i for i, t in enumerate(stored[schema.TIME].values)} if schema.TIME in stored.dims else {}
        )
    unknown = [key for key in steps if key != DEM_STEP and key not in index]
    if unknown:
        raise CubeSchemaError(
            f"cube {str(out)!r} has no time step {unknown[0]}: the interrupted build cannot resume, pass --overwrite"
        )
    full = {schema.Y: slice(0, grid.shape[0]), schema.X: slice(0, grid.shape[1])}
    size = _batch_size(grid)
    batches = [steps[k:k + size] for k in range(0, len(steps), size)]

    def graph(batch: list[str]) -> list[Any]:
        writes = []
        if DEM_STEP in batch:
            dem = load.load_dem(dem_items, catalog, grid)
            writes.append(
                store.write_region(
                    xr.Dataset({schema.DEM: dem}), out, full, storage_options=storage_options, compute=False
                )
            )
        times = [index[key] for key in batch if key != DEM_STEP]
        for run in _contiguous_runs(times):
            layers = load.load_backscatter(
                [acquisitions[key] for key in batch if key != DEM_STEP and index[key] in run], catalog, grid
            )
            region = {schema.TIME: slice(run.start, run.stop), **full}
            writes.append(
                store.write_region(xr.Dataset(layers), out, region, storage_options=storage_options, compute=False)
            )
        return writes

    done = 0
    with tqdm(total=len(steps), desc="build", unit="step", leave=False) as bar, ThreadPoolExecutor(1) as runner:
        running = None
        for k, batch in enumerate(batches + [None]):
            writes = graph(batch) if batch is not None else None
            previous = running
            if previous is not None:
                previous.result()  # re-raises a failed batch: it stays pending
            # Chunk writes never touch the root metadata: the next batch runs
            # while the finished one is crossed off.
            running = runner.submit(_dask.compute, *writes, desc="build", client=client, show=False) if writes else None
            if previous is not None:
                done += len(batches[k - 1])
                store.update_attrs(out, {schema.ATTR_BUILD_PENDING: json.dumps(steps[done:])}, storage_options)
                bar.update(len(batches[k - 1]))


__all__ = ["BATCH_ENV", "DEM_STEP", "lazy_nan", "step_key", "time_dataset", "write_steps"]
