"""Benchmark: ``sarcube predict`` wall time over the bare network forward passes it needs.

Makes a cube of random pair features and a run with a default-width U-Net
(32..512 channels, random weights: timing only), then in one process:

1. reference: the network's forward passes alone on the same windows (the
   same number of batches of the same size, TTA included: 8 transforms per
   window), inputs already on the device, nothing else;
2. ``predict()`` end to end: open the cube, read and normalise inputs,
   mirror-pad, cut windows, 8-fold TTA and its inverse, spline blending,
   staging writes, promotion.

Then item 7 of issue 18, the PAR-attention branch under TTA: a ``par_attention`` FCN
(random weights, or the trained ones of ``--par-run``) on synthetic windows with a
smooth PAR field (or windows of a real cube, ``--par-cube``), 8-fold TTA three ways:
as predict does by default (the attention net runs on every rotated window), the mask
computed once per window and rotated with it (``predict --mask-tta once``), and the
mask computed at half resolution (PAR average-pooled 2x, mask upsampled bilinearly).
Prints ``RESULT par_attention_once_speedup`` (forward time, thread CPU, best of 3)
and ``RESULT par_attention_once_max_abs_diff`` / ``par_attention_halfres_max_abs_diff``
(largest probability difference from predict's TTA).

Prints ``RESULT predict_overhead <predict / reference> x`` (wall time, target
<= 1.25) and, as a check that is robust to a busy machine, the same ratio of
process CPU seconds (``predict_overhead_cpu``; on a GPU it counts host work only).
The scene is sized for the device: 2 pairs of 2048 x 2048 pixels on a GPU,
1 pair of 320 x 320 on a CPU with one torch thread for both runs (options
scale it).

    python benchmarks/predict.py
    python benchmarks/predict.py --size 1024 --pairs 2 --batch-size 32
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sarcube.datacube import chips, schema, store
from sarcube.models import build_model
from sarcube.models.device import autocast_context, pick_device
from sarcube.models.inference import DIHEDRAL_TRANSFORMS, TilingPlan, tta_predict
from sarcube.pipelines import runs
from sarcube.pipelines.predict import predict

CHIP_PX = 160  # avalanche-fcn-bianchi's patch size
CHANNELS = (schema.VV_DIFF, schema.VH_DIFF, schema.VVVH, schema.SLOPE)


def make_cube(path: Path, size: int, n_pairs: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    x = 600_000.0 + 5.0 + 10.0 * np.arange(size)
    y = 5_100_000.0 - 5.0 - 10.0 * np.arange(size)
    ds = schema.empty_cube(x, y, "EPSG:32632", attrs={schema.ATTR_TITLE: "predict benchmark"})
    nt = n_pairs + 1
    times = np.datetime64("2021-01-01T05:00") + np.arange(nt) * np.timedelta64(6, "D")
    ds = ds.assign_coords(
        schema.time_coords(
            times, ["SENTINEL-1A"] * nt, [schema.ORBIT_ASCENDING] * nt, [15] * nt, [f"t{i}" for i in range(nt)]
        )
    )
    ds = ds.assign_coords(schema.pair_coords(times[:-1], times[1:], [15] * n_pairs))
    pyx = (schema.PAIR, schema.Y, schema.X)
    for name in (schema.VV_DIFF, schema.VH_DIFF):
        ds[name] = schema.make_variable(name, rng.normal(0, 2, (n_pairs, size, size)).astype("float32"), pyx)
    ds[schema.VVVH] = schema.make_variable(schema.VVVH, rng.random((n_pairs, size, size), dtype=np.float32), pyx)
    ds[schema.SLOPE] = schema.make_variable(schema.SLOPE, rng.uniform(0, 60, (size, size)).astype("float32"))
    ds[schema.LABEL] = schema.make_variable(schema.LABEL, np.zeros((n_pairs, size, size), dtype="uint8"), pyx)
    store.write_cube(ds, path)


def make_run(run_dir: Path, cube: Path) -> None:
    ds = schema.open_cube(cube)
    resolved = chips.resolve_channels(ds, [chips.ChannelSpec(v) for v in CHANNELS])
    model = build_model("unet", len(CHANNELS))  # default width: 32..512
    plan = chips.make_split(ds, chips.SplitSpec(), chips.ChipSpec(size=CHIP_PX))
    info = runs.RunInfo(
        preset="avalanche-fcn", model="unet", model_cfg={}, task="segmentation",
        channels=[c.to_dict() for c in resolved.channels], series_steps=0,
        label_dims=list(ds[schema.LABEL].dims), chip_size=CHIP_PX, input_size=CHIP_PX,
        norm_mean=[0.0, 0.0, 0.5, 30.0], norm_std=[2.0, 2.0, 0.3, 15.0], threshold=0.5,
        metric="f1", best_metric=0.0, split=plan.to_json(), split_description=plan.describe(),
        cube_id=chips.cube_id(ds), sarcube_version="benchmark",
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    runs.save_checkpoint(run_dir / runs.BEST, model, None, info, epoch=0, step=0, best_metric=0.0)
    (run_dir / runs.SPLIT_FILE).write_text(plan.to_json())


def _cpu_seconds() -> float:
    return time.process_time()


def bare_forward_seconds(
    run_dir: Path, cube: Path, n_pairs: int, batch_size: int, device: torch.device
) -> tuple[float, float, int]:
    """Time of the forward passes predict makes: same batch count and size, TTA applied beforehand."""
    loaded = runs.load_run(run_dir, device)
    ds = schema.open_cube(cube)
    size = ds.sizes[schema.Y]
    plan = TilingPlan(size, size, CHIP_PX)
    per_pass = max(1, batch_size // len(DIHEDRAL_TRANSFORMS))
    batches_per_pair = math.ceil(plan.windows / per_pass)
    # Windows of the same scene and size, each batch with its 8 dihedral copies, prepared up front.
    image = torch.from_numpy(runs.assemble_inputs(ds, loaded.info, 0, (0, size, 0, size)))
    rng = np.random.default_rng(0)
    prepared = []
    for _ in range(min(batches_per_pair, 16)):
        wins = []
        for _ in range(per_pass):
            y0, x0 = rng.integers(0, max(size - CHIP_PX, 0) + 1, 2)
            wins.append(image[:, y0 : y0 + CHIP_PX, x0 : x0 + CHIP_PX])
        chips_ = torch.stack(wins)
        prepared.append(torch.cat([t.apply(chips_) for t in DIHEDRAL_TRANSFORMS]).contiguous().to(device))
    model = loaded.model
    with torch.inference_mode(), autocast_context(device):
        model(prepared[0])  # warm-up (cuDNN autotuning, allocator)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start, cpu = time.perf_counter(), _cpu_seconds()
        n = 0
        last = (plan.windows - (batches_per_pair - 1) * per_pass) * len(
            DIHEDRAL_TRANSFORMS
        )  # a partial last batch, as in predict
        for _ in range(n_pairs):
            for b in range(batches_per_pair):
                batch = prepared[b % len(prepared)]
                model(batch if b < batches_per_pair - 1 else batch[:last])
                n += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
    return time.perf_counter() - start, _cpu_seconds() - cpu, n


def _smooth_par(n: int, size: int, rng: np.random.Generator) -> torch.Tensor:
    """Normalised PAR-like fields (N, 1, size, size): noise smoothed over ~16 px, unit variance."""
    noise = torch.from_numpy(rng.normal(size=(n, 1, size, size)).astype(np.float32))
    kernel = torch.ones(1, 1, 17, 17) / 17**2
    field = torch.nn.functional.conv2d(noise, kernel, padding=8)
    return (field - field.mean()) / field.std()


def _cube_windows(cube: str, loaded: runs.LoadedRun, n: int, size: int, rng: np.random.Generator) -> torch.Tensor:
    """``n`` normalised input windows (n, C, size, size) of a real cube at random pairs and places (NaN -> 0)."""
    ds = schema.open_cube(cube)
    height, width = ds.sizes[schema.Y], ds.sizes[schema.X]
    n_pairs = ds.sizes.get(schema.PAIR, 1)
    out = []
    for _ in range(n):
        y0, x0 = (int(v) for v in rng.integers(0, [height - size + 1, width - size + 1]))
        pair = int(rng.integers(n_pairs)) if schema.PAIR in ds.dims else None
        out.append(runs.assemble_inputs(ds, loaded.info, pair, (y0, y0 + size, x0, x0 + size)))
    return torch.nan_to_num(torch.from_numpy(np.stack(out)))


def par_attention_tta(par_run: str | None, par_cube: str | None, windows: int, repeats: int) -> None:
    """TTA of the PAR-attention FCN: predict's mask per transform, once per window (``--mask-tta once``), half res."""
    from torch.nn import functional as F

    from sarcube.models import window_probability_fn
    from sarcube.models.inference import MASK_ONCE

    device = torch.device("cpu")
    rng = np.random.default_rng(1)
    size = CHIP_PX
    if par_run:
        loaded = runs.load_run(Path(par_run), device)
        model, size = loaded.model, int(loaded.info.input_size or loaded.info.chip_size)
        where = f"trained weights of {par_run}"
    else:
        torch.manual_seed(0)
        model = build_model("par_attention", 5)
        where = "random weights"
    model.eval()
    if par_cube:
        if not par_run:
            raise SystemExit("--par-cube needs --par-run (the run's channels and normalisation)")
        x = _cube_windows(par_cube, loaded, windows, size, rng)
        where += f", windows of {par_cube}"
    else:
        x = torch.from_numpy(rng.normal(size=(windows, 5, size, size)).astype(np.float32))
        x[:, model.par_channel : model.par_channel + 1] = _smooth_par(windows, size, rng)
        where += ", synthetic windows (smooth PAR)"
    par_index = slice(model.par_channel, model.par_channel + 1)

    def per_transform() -> torch.Tensor:  # what predict runs by default
        return tta_predict(window_probability_fn(model), x)

    def once() -> torch.Tensor:  # predict --mask-tta once
        return tta_predict(window_probability_fn(model, MASK_ONCE), x)

    def half_resolution() -> torch.Tensor:
        def fn(b: torch.Tensor) -> torch.Tensor:
            low = model.attention(F.avg_pool2d(b[:, par_index], 2))
            mask = F.interpolate(low, size=b.shape[-2:], mode="bilinear", align_corners=False)
            return torch.sigmoid(model.forward_with_mask(b, mask))
        return tta_predict(fn, x)

    seconds, results = {}, {}
    with torch.inference_mode():
        for name, fn in (("per transform", per_transform), ("once", once), ("half resolution", half_resolution)):
            fn()
            best = math.inf
            for _ in range(repeats):
                start = time.thread_time()
                results[name] = fn()
                best = min(best, time.thread_time() - start)
            seconds[name] = best
    diff = {k: float((results[k] - results["per transform"]).abs().max()) for k in ("once", "half resolution")}
    print(f"PAR-attention TTA, {where}, {windows} windows of {size} px x 8, "
          f"{torch.get_num_threads()} torch threads: "
          + ", ".join(f"{k} {v:.2f} s" for k, v in seconds.items()))
    print(f"RESULT par_attention_once_speedup {seconds['per transform'] / seconds['once']:.3f} x")
    print(f"RESULT par_attention_halfres_speedup {seconds['per transform'] / seconds['half resolution']:.3f} x")
    print(f"RESULT par_attention_once_max_abs_diff {diff['once']:.2e}")
    print(f"RESULT par_attention_halfres_max_abs_diff {diff['half resolution']:.2e}")


def main() -> None:
    device = pick_device()
    gpu = device.type == "cuda"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048 if gpu else 320, help="scene side, pixels")
    parser.add_argument("--pairs", type=int, default=2 if gpu else 1, help="pairs predicted")
    parser.add_argument("--batch-size", type=int, default=64 if gpu else 16, help="network inputs per forward pass")
    parser.add_argument(
        "--repeat", type=int, default=3, help="alternate reference and predict this often; the fastest of each counts"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0 if gpu else 1,
        help="torch CPU threads for both (0: torch's default); one thread keeps a shared CPU's timings steady",
    )
    parser.add_argument("--par-run", help="a trained par_attention run for the PAR-attention TTA check "
                        "(default: random weights)")
    parser.add_argument("--par-cube", help="take the PAR-attention check's windows from this cube "
                        "(needs --par-run; default: synthetic windows with a smooth PAR field)")
    parser.add_argument("--par-only", action="store_true", help="run only the PAR-attention TTA check")
    parser.add_argument("--par-windows", type=int, default=4,
                        help="windows in the PAR-attention TTA check (0 skips it)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.par_only:
        par_attention_tta(args.par_run, args.par_cube, args.par_windows, args.repeat)
        return
    with tempfile.TemporaryDirectory() as tmp:
        cube, run_dir = Path(tmp) / "bench.zarr", Path(tmp) / "unet-random"
        make_cube(cube, args.size, args.pairs)
        make_run(run_dir, cube)
        plan = TilingPlan(args.size, args.size, CHIP_PX)
        print(
            f"device {device} ({torch.get_num_threads()} torch threads); {args.pairs} pair(s) of "
            f"{args.size}x{args.size} px; {plan.windows} windows of {CHIP_PX} px per pair x 8 TTA; "
            f"batch {args.batch_size}"
        )
        references, walls, ref_cpus, cpus = [], [], [], []
        for i in range(args.repeat):  # alternated, so a busy machine slows both alike
            reference, ref_cpu, n_batches = bare_forward_seconds(run_dir, cube, args.pairs, args.batch_size, device)
            references.append(reference)
            ref_cpus.append(ref_cpu)
            start, cpu = time.perf_counter(), _cpu_seconds()
            predict(
                cube, run_dir, name="bench", tta=True, batch_size=args.batch_size, device=str(device), overwrite=i > 0
            )
            walls.append(time.perf_counter() - start)
            cpus.append(_cpu_seconds() - cpu)
    reference, wall = min(references), min(walls)
    print(
        f"bare forward passes: {reference:.2f} s wall, {min(ref_cpus):.2f} s CPU "
        f"({n_batches} batches of {args.batch_size})"
    )
    print(
        f"predict: {wall:.2f} s wall, {min(cpus):.2f} s CPU; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print(f"RESULT predict_overhead {wall / reference:.3f} x")
    print(f"RESULT predict_overhead_cpu {min(cpus) / min(ref_cpus):.3f} x")
    if args.par_windows:
        par_attention_tta(args.par_run, args.par_cube, args.par_windows, args.repeat)


if __name__ == "__main__":
    main()
