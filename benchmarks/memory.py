"""Memory bounded by chunks: peak RSS of each verb at a small and a large scene.

Writes the demo's synthetic scene at ``--small`` and ``--large`` px a side
(``--dates`` acquisitions, 20 as in the demo), runs every verb on it in a subprocess of its own
(the ``sarcube`` CLI, or for ``train_statistics`` the function the train step
calls: split, chip selection and normalisation statistics of the
avalanche-fcn preset, cpu-demo profile) and reads that process's peak resident set size
(``ru_maxrss``). Prints, per verb,

- ``RESULT <verb>_rss_growth <ratio> x``: RSS(large) / RSS(small), for build,
  features, add_layer, train_statistics, predict (the baseline run: no weights
  to train, the same windows and writes), evaluate and export. A verb whose
  memory is bounded by chunks stays near 1; one that holds the scene grows
  with the area (16x from 1024 to 4096 px). Target: <= 1.3.

Every process imports torch, xarray and dask (~300 MiB), so at small scenes
the growth is diluted: compare sizes 16x apart in area, and the larger the
better (1024 vs 4096 is the issue's yardstick; it takes long on 2 cores).

predict covers the test pairs (each pair is its own stream, so their number changes
no peak) and the baseline it runs keeps its default settings (no validation tuning:
hours at 4096 px, and no array changes size with what it picks).

    python benchmarks/memory.py                        # 1024 vs 4096 px
    python benchmarks/memory.py --small 256 --large 1024
    python benchmarks/memory.py --small 512 --large 2048 --verbs predict,evaluate,export

``--verbs`` reports those verbs alone (the steps they need still run, the ones after the last of them do not;
``train_statistics`` only when named).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: runs argv[1:] as the sarcube CLI, or ``--python CODE``, then prints its peak RSS (KiB on Linux)
_WRAPPER = """
import resource, sys
if sys.argv[1] == "--python":
    exec(sys.argv[2])
    rc = 0
else:
    from sarcube.pipelines.cli import main
    rc = main(sys.argv[1:])
print("PEAK_RSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(rc)
"""

_TRAIN_STATISTICS = """
from sarcube.datacube import schema
from sarcube.pipelines.presets import load_preset
from sarcube.pipelines.train import prepare_data
data = prepare_data(schema.open_cube({cube!r}), load_preset("avalanche-fcn", profile={profile!r}))
"""

#: the demo's profile: chips small enough for the small scene to hold a chip in every split
PROFILE = "cpu-demo"

#: placeholder for :func:`test_pairs`, known once the run's split is written
TEST_PAIRS = "<test pairs>"

VERBS = ("build", "features", "add_layer", "train_statistics", "predict", "evaluate", "export")


def peak_rss_mib(args: list[str], log: Path) -> float:
    """Peak RSS (MiB) of one subprocess running ``args`` through the wrapper; its output goes to ``log``."""
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _WRAPPER, *args], capture_output=True, text=True)
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:2])} failed (exit {done.returncode}); see {log}:\n{done.stderr[-2000:]}")
    kib = int(next(line.split()[1] for line in done.stderr.splitlines() if line.startswith("PEAK_RSS_KB")))
    print(f"  {args[0] if args[0] != '--python' else 'train_statistics':<12} {kib / 1024:8.1f} MiB  "
          f"({time.perf_counter() - t:.1f} s)", flush=True)
    return kib / 1024


def measure(size: int, dates: int, work: Path, verbs: tuple[str, ...] = VERBS) -> dict[str, float]:
    """Peak RSS (MiB) of every verb (those of ``verbs`` and the steps they need) on a ``size`` px scene in ``work``."""
    from sarcube.datacube.synthetic.manifest import read_demo_manifest

    catalog, cube, run = work / "catalog", str(work / "cube.zarr"), work / "run"
    subprocess.run([sys.executable, "-m", "sarcube.pipelines.cli", "demo-catalog", str(catalog), "--size", str(size),
                    "--dates", str(dates)], check=True, capture_output=True)
    m = read_demo_manifest(catalog)
    aoi = ",".join(f"{v:.8f}" for v in m.bbox_lonlat)
    print(f"{size} x {size} px, {m.acquisitions} acquisitions:", flush=True)
    rss = {}
    logs = work / "logs"
    logs.mkdir()
    steps = {
        "build": ["build", "--aoi", aoi, "--start", str(m.start), "--end", str(m.end), "--out", cube,
                  "--catalog", str(m.catalog), "--resolution", str(m.resolution)],
        "features": ["features", cube],
        "add_layer": ["add-layer", cube, "--labels", str(m.labels), "--date-field", "date"],
        "train_statistics": ["--python", _TRAIN_STATISTICS.format(cube=cube, profile=PROFILE)],
        # not reported, needed by predict: the baseline's default settings (its validation tuning would
        # take an hour at 4096 px and changes no array's size)
        "train": ["train", cube, "--preset", "baseline", "--out", str(run), "--profile", PROFILE,
                  "--set", "train.tune_threshold=false"],
        # the test pairs (the split's last week), one pair at a time like every other pair
        "predict": ["predict", cube, "--run", str(run), "--name", "base", "--no-tta", "--pairs", TEST_PAIRS],
        "evaluate": ["evaluate", cube, "--pred", "base", "--out", str(work / "evaluation.json")],
        "export": ["export", cube, "--pred", "base", "--out", str(work / "objects.geojson")],
    }
    order = list(steps)
    last = max(order.index(v) for v in verbs)  # the steps after the last reported verb are not needed
    for verb in order[: last + 1]:
        args = steps[verb]
        if verb == "train_statistics" and verb not in verbs:
            continue
        if TEST_PAIRS in args:
            args = [test_pairs(cube, run) if a == TEST_PAIRS else a for a in args]
        rss[verb] = peak_rss_mib(args, logs / f"{verb}.log")
    return rss


def test_pairs(cube: str, run: Path) -> str:
    """``--pairs START..END``: the activity dates of the run's test pairs (its ``split.json``)."""
    import json

    from sarcube.datacube import schema

    test = json.loads((run / "split.json").read_text())["pairs"]["test"]
    act = schema.open_cube(cube)[schema.ACTIVITY_TIME].values[test].astype("datetime64[D]")
    return f"{act.min()}..{act.max()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1024, help="side of the small scene, px")
    parser.add_argument("--large", type=int, default=4096, help="side of the large scene, px")
    parser.add_argument("--dates", type=int, default=20, help="acquisitions over both orbits (the demo's)")
    parser.add_argument("--verbs", default=",".join(VERBS), help="comma-separated verbs to report")
    args = parser.parse_args()
    verbs = tuple(v for v in args.verbs.split(",") if v)
    unknown = sorted(set(verbs) - set(VERBS))
    if unknown or not verbs:
        parser.error(f"--verbs {args.verbs!r}: use some of {','.join(VERBS)}")
    tmp = Path(tempfile.mkdtemp(prefix="sarcube-memory-"))
    try:
        results = {}
        for size in (args.small, args.large):
            (tmp / str(size)).mkdir()
            results[size] = measure(size, args.dates, tmp / str(size), verbs)
        area = (args.large / args.small) ** 2
        print(f"peak RSS, {args.small} -> {args.large} px ({area:.0f}x the area), MiB:")
        for verb in verbs:
            print(f"  {verb:<17} {results[args.small][verb]:8.1f} -> {results[args.large][verb]:8.1f}")
        for verb in verbs:
            print(f"RESULT {verb}_rss_growth {results[args.large][verb] / results[args.small][verb]:.2f} x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
