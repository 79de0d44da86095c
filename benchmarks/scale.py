"""Scale-out figures: dask worker processes, DDP ranks, and S3 against local disk.

Prints ``RESULT`` lines (ratios against a reference in the same run):
- ``dask_features_efficiency``: features on 2 dask worker processes vs 1, as
  parallel efficiency (speedup / 2; 1.0 is perfect);
- ``ddp_chips_per_s_ratio``: training chips/s of 2 gloo DDP ranks vs 1 on the CPU
  (launch and import time excluded: chips/s over the epochs' wall time from metrics.csv);
- ``s3_build_ratio``: build time into an S3 API server on 127.0.0.1 (moto) vs local disk.

Run: ``python benchmarks/scale.py [--only dask|ddp|s3]``. Needs moto[server] (the test extra).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

#: chips per batch and rank (train.batch_size of the tests' TINY overrides)
BATCH = 8


def _timed(fn, *args, **kwargs) -> float:
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - t0


def dask_efficiency(work: Path, catalog, args) -> float:
    import shutil

    from distributed import LocalCluster

    from sarcube.pipelines.build import build
    from sarcube.pipelines.features import features

    cube = build(catalog.aoi, catalog.start, catalog.end, work / "dask.zarr", catalog=str(catalog.root))
    seconds = {}
    for n in (1, 2):
        copy = work / f"dask{n}.zarr"
        shutil.copytree(cube, copy)
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as cluster:
            features(copy, par=True, scheduler=cluster.scheduler_address)  # warm-up: numba compiles per worker
            seconds[n] = _timed(features, copy, scheduler=cluster.scheduler_address)
    return seconds[1] / seconds[2] / 2


def ddp_ratio(work: Path) -> float:
    from sarcube.datacube import store
    from sarcube.pipelines import runs
    from sarcube.pipelines.train import train
    from test_chips import make_featured_cube
    from test_train import SMALL_NETS, TINY

    cube = work / "ddp.zarr"
    store.write_cube(make_featured_cube(ny=192, nx=192, nt=4, px_per_blob=768), cube)
    over = [*TINY, *SMALL_NETS["avalanche-fcn-concat"], "train.steps_per_epoch=0", "train.val_steps=1",
            "chips.block_px=32", "train.epochs=2"]
    rates = {}
    for n in (1, 2):
        out = train(cube, "avalanche-fcn-concat", work / f"ddp{n}", profile="cpu-demo", overrides=over,
                    device="cpu", nproc=n)
        first, second = runs.read_metrics(out)[:2]  # the second epoch: caches warm
        chips_done = (second["step"] - first["step"]) * BATCH * n  # every rank takes as many steps
        rates[n] = chips_done / second["seconds"]
    return rates[2] / rates[1]


def s3_ratio(work: Path, catalog) -> float:
    from s3_server import aws_env, serve_s3
    from sarcube.pipelines.build import build

    local = _timed(build, catalog.aoi, catalog.start, catalog.end, work / "local.zarr", catalog=str(catalog.root))
    with serve_s3() as endpoint:
        os.environ.update(aws_env(endpoint))
        remote = _timed(
            build, catalog.aoi, catalog.start, catalog.end, "s3://cubes/bench.zarr", catalog=str(catalog.root)
        )
    return remote / local


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["dask", "ddp", "s3"], default=None)
    args = parser.parse_args()
    from stac_server import write_test_catalog

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        catalog = write_test_catalog(work / "catalog")
        if args.only in (None, "dask"):
            print(f"RESULT dask_features_efficiency {dask_efficiency(work, catalog, args):.2f} x", flush=True)
        if args.only in (None, "ddp"):
            print(f"RESULT ddp_chips_per_s_ratio {ddp_ratio(work):.2f} x", flush=True)
        if args.only in (None, "s3"):
            print(f"RESULT s3_build_ratio {s3_ratio(work, catalog):.2f} x", flush=True)


if __name__ == "__main__":
    main()
