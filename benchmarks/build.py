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

Then it encodes the built cube's ``vv`` chunks (512 x 512 float32, speckled
dB) with each candidate chunk codec, one thread, best of ``--repeat``, and
prints each codec's compression ratio and its encode speed relative to the
contract's default (``schema.compressors()``): the figures the default codec
and level in ``sarcube.datacube.schema`` are chosen from.

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


def _candidate_codecs() -> dict[str, object]:
    """Candidate chunk codecs by name (numcodecs; zarr's BloscCodec and GzipCodec wrap these)."""
    from numcodecs import Blosc, GZip

    shuffles = {"bitshuffle": Blosc.BITSHUFFLE, "shuffle": Blosc.SHUFFLE}
    codecs: dict[str, object] = {
        f"zstd{level}_{name}": Blosc(cname="zstd", clevel=level, shuffle=mode)
        for level in (1, 5) for name, mode in shuffles.items()
    }
    return codecs | {"lz4_5_shuffle": Blosc(cname="lz4", clevel=5, shuffle=Blosc.SHUFFLE), "gzip6": GZip(level=6)}


def codec_figures(cube: Path, repeat: int) -> None:
    """RESULT lines: ratio and encode speed of each candidate codec on the cube's vv chunks."""
    from numcodecs import blosc

    blosc.set_nthreads(1)  # one chunk per thread, as dask encodes them
    with zarrio.quiet_zarr_warnings():
        vv = schema.open_cube(cube)[schema.VV].values
    step = schema.CHUNK_YX
    chunks = [
        np.ascontiguousarray(vv[t, i:i + step, j:j + step])
        for t in range(vv.shape[0]) for i in range(0, vv.shape[1], step) for j in range(0, vv.shape[2], step)
    ]
    raw = sum(c.nbytes for c in chunks)
    seconds: dict[str, float] = {}
    for name, codec in _candidate_codecs().items():
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            size = sum(len(codec.encode(c)) for c in chunks)
            best = min(best, time.perf_counter() - t0)
        seconds[name] = best
        print(f"codec {name}: ratio {raw / size:.3f}, encode {raw / best / 1e6:.0f} MB/s")
        print(f"RESULT codec_{name}_ratio {raw / size:.3f} x")
    default = f"zstd{schema.ZSTD_LEVEL}_{schema.BLOSC_SHUFFLE}"  # the contract's
    for name, best in seconds.items():
        print(f"RESULT codec_{name}_encode_speed_vs_default {seconds[default] / best:.2f} x")


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
        print(
            f"demo catalog {args.size}x{args.size}, {args.dates} dates written in {time.perf_counter() - t0:.1f} s; "
            f"{threads} threads"
        )
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
                arrays[name] = arrays[name].chunk(
                    dict(zip(arrays[name].dims, schema.chunks_for(arrays[name].dims, arrays[name].shape), strict=True))
                )
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
        print(
            f"cpu time (all threads): build {min(cpu_build):.2f} s, reference {min(cpu_reference):.2f} s, ratio "
            f"{min(cpu_build) / min(cpu_reference):.2f}"
        )
        print(f"RESULT build_overhead {b / (d + e):.2f} x")
        codec_figures(root / "cube0.zarr", args.repeat)


if __name__ == "__main__":
    main()
