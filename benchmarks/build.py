"""Build benchmark: ``sarcube build`` against just decoding its inputs and encoding its output.

Writes a synthetic demo catalog (``sarcube.datacube.synthetic``; 1024 x 1024
pixels at 20 m, 20 acquisitions by default) into a temporary folder, then
times, in the same process and on the same threads:

- the build: search the static catalog, group, load onto the grid (odc-stac,
  dB, mosaics, bilinear DEM), write the zarr cube (resumable region writes);
- the reference: decode every input COG the build reads with rasterio
  (a thread pool of the same size as dask's) plus encode the very same
  output arrays to zarr with the same codecs and chunks (dask threads).

and prints ``RESULT build_overhead <build / reference> x`` (target <= 1.5),
best wall time of ``--repeat`` runs each, plus the CPU time of both (all
threads) for a figure that a busy machine disturbs less.

    python benchmarks/build.py                 # the headline figure
    python benchmarks/build.py --size 2048 --dates 30
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import xarray as xr
from sarcube.datacube import schema, store, zarrio
from sarcube.datacube.catalog import open_catalog
from sarcube.pipelines.build import build


def _demo_catalog(root: Path, size: int, dates: int) -> tuple[Path, tuple[float, float, float, float], str, str]:
    try:
        from sarcube.datacube import synthetic
    except ImportError:  # before the synthetic scene existed: the tests' fixture catalog
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from stac_server import write_test_catalog

        tc = write_test_catalog(root / "catalog")
        return tc.root, tc.aoi, tc.start, tc.end
    synthetic.write_demo_catalog(root / "catalog", size=size, dates=dates)
    manifest = synthetic.read_demo_manifest(root / "catalog")
    return root / "catalog", tuple(manifest.bbox_lonlat), manifest.start, manifest.end


def _decode(href: str) -> np.ndarray:
    import rasterio

    with rasterio.open(href) as src:
        return src.read(1)


def _input_hrefs(cube: Path) -> list[str]:
    items = schema.decode_json_attr(schema.open_cube(cube), schema.ATTR_STAC_ITEMS)
    return [href for item in items for href in item["assets"].values()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1024, help="demo scene pixels per side")
    parser.add_argument("--dates", type=int, default=20, help="acquisitions")
    parser.add_argument("--repeat", type=int, default=5, help="best of N timings each")
    args = parser.parse_args(argv)
    threads = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="sarcube-bench-build-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        catalog, aoi, start, end = _demo_catalog(root, args.size, args.dates)
        print(f"demo catalog {args.size}x{args.size}, {args.dates} dates written in {time.perf_counter() - t0:.1f} s; {threads} threads")
        open_catalog(str(catalog))  # imports and YAML parsing, outside the timings
        build_s, decode_s, encode_s = [], [], []
        cpu_build, cpu_reference = [], []
        for k in range(args.repeat):
            out = root / f"cube{k}.zarr"
            t0, c0 = time.perf_counter(), time.process_time()
            build(aoi, start, end, out, catalog=str(catalog))
            build_s.append(time.perf_counter() - t0)
            cpu_build.append(time.process_time() - c0)

            hrefs = _input_hrefs(out)
            t0, c0 = time.perf_counter(), time.process_time()
            with ThreadPoolExecutor(threads) as pool:
                decoded = list(pool.map(_decode, hrefs))
            decode_s.append(time.perf_counter() - t0)
            cpu_decode = time.process_time() - c0

            with zarrio.quiet_zarr_warnings():
                arrays = schema.open_cube(out).load()  # the same output arrays, in memory
            for name in arrays.data_vars:  # dask-chunked as the build writes them (coords stay numpy)
                arrays[name] = arrays[name].chunk(dict(zip(arrays[name].dims, schema.chunks_for(arrays[name].dims, arrays[name].shape), strict=True)))
            t0, c0 = time.perf_counter(), time.process_time()
            store.write_cube(arrays, root / f"reference{k}.zarr")
            encode_s.append(time.perf_counter() - t0)
            cpu_reference.append(cpu_decode + time.process_time() - c0)
            del decoded, arrays
        ds = xr.open_zarr(root / "cube0.zarr")
        pixels = int(np.prod([ds.sizes[d] for d in (schema.TIME, schema.Y, schema.X)]))
        b, d, e = min(build_s), min(decode_s), min(encode_s)
        print(f"cube {dict(ds.sizes)}; {len(hrefs)} input assets; {2 * pixels / 1e6:.1f} M backscatter pixels")
        print(f"build {b:.2f} s; reference {d + e:.2f} s = decode inputs {d:.2f} s + encode output {e:.2f} s")
        print(f"cpu time (all threads): build {min(cpu_build):.2f} s, reference {min(cpu_reference):.2f} s, ratio {min(cpu_build) / min(cpu_reference):.2f}")
        print(f"RESULT build_overhead {b / (d + e):.2f} x")


if __name__ == "__main__":
    main()
