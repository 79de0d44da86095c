"""Run every benchmark and regenerate the README's Performance section.

Each benchmark is a script in this folder that makes its own data, measures
sarcube against a reference in the same run, and prints its headline figures
as ``RESULT <name> <number> <unit>`` lines. This script runs them one after
another (so they do not compete for the cores), collects those lines, prints
them with the machine they ran on, and with ``--write-readme`` replaces the
text between the README's performance markers.

    python benchmarks/run_all.py                 # print
    python benchmarks/run_all.py --write-readme  # print and update README.md
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = HERE.parent / "README.md"
START_MARK = "<!-- performance:start -->"
END_MARK = "<!-- performance:end -->"
RESULT_RE = re.compile(r"^RESULT\s+(\S+)\s+([-+0-9.eE]+|nan|inf)\s*(\S*)\s*$")


@dataclass(frozen=True)
class Benchmark:
    """One script and what its figures mean."""

    script: str
    reference: str
    #: headline name -> (comparison, target) for the table, e.g. (">=", 50.0)
    targets: dict[str, tuple[str, float]]
    #: headline name -> its own reference, where it is not ``reference``
    references: dict[str, str] = field(default_factory=dict)


_GROWTH = {f"{verb}_rss_growth": ("<=", 1.3) for verb in (
    "build", "features", "add_layer", "train_statistics", "predict", "evaluate", "export")}

BENCHMARKS = (
    Benchmark(
        "par.py",
        "fastest fair brute force: branch-free numba scan, 1/distance table, one atan per cell (one thread)",
        {"par_speedup": (">=", 150.0), "par_4096_seconds": ("<=", 60.0)},
        {"par_speedup_vs_atan2_bruteforce": "brute force as the definition reads: atan2 per candidate (secondary)"},
    ),
    Benchmark(
        "chips.py",
        "plain chunk-aware zarr IterableDataset (in benchmarks/chips.py), same chips, every side best of N",
        {"chips_vs_plain_loader": (">=", 1.5), "chips_vs_raw_decode": (">=", 0.8)},
        {
            "chips_vs_xbatcher_in_memory": "xbatcher BatchGenerator + MapDataset over the cube loaded in memory",
            "chips_vs_raw_decode": "zarr decoding every chunk of the same arrays once",
            "chips_vs_xbatcher": "xbatcher over the dask-backed cube (secondary)",
        },
    ),
    Benchmark(
        "build.py", "decoding the input COGs + encoding the output zarr, nothing else", {"build_overhead": ("<=", 1.5)}
    ),
    Benchmark(
        "predict.py",
        "bare network forward passes on the same windows",
        {"predict_overhead": ("<=", 1.25)},
        {
            name: "PAR-attention FCN's 8-fold TTA with the attention net on every rotated window, as predict runs it"
            for name in (
                "par_attention_once_speedup",
                "par_attention_halfres_speedup",
                "par_attention_once_max_abs_diff",
                "par_attention_halfres_max_abs_diff",
            )
        },
    ),
    Benchmark("memory.py", "peak RSS of the same verb on a scene 16x smaller in area (subprocess ru_maxrss)", _GROWTH),
)


@dataclass(frozen=True)
class Result:
    name: str
    value: float
    unit: str
    script: str


def machine_description() -> str:
    """CPU model, cores, memory, OS and key library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(
            next(
                line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
            ).split()[1]
        )
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    versions = []
    for module in ("numpy", "numba", "torch", "zarr", "xarray", "dask"):
        try:
            versions.append(f"{module} {__import__(module).__version__}")
        except ImportError:
            pass
    gpu = "no GPU"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}, {gpu}; Python {platform.python_version()}, " + ", ".join(versions)


def run_benchmark(bench: Benchmark, timeout_s: float) -> tuple[list[Result], float, str]:
    """Run one script; returns its RESULT lines, wall seconds and any error text."""
    path = HERE / bench.script
    if not path.exists():
        return [], 0.0, f"{bench.script} not found"
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return [], time.perf_counter() - t0, f"timed out after {timeout_s:.0f} s"
    wall = time.perf_counter() - t0
    results = []
    for line in proc.stdout.splitlines():
        print(f"  {bench.script}: {line}", flush=True)
        m = RESULT_RE.match(line.strip())
        if m:
            results.append(Result(m.group(1), float(m.group(2)), m.group(3), bench.script))
    error = (
        ""
        if proc.returncode == 0
        else f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ''}"
    )
    return results, wall, error


def saved_results(bench: Benchmark, folder: Path) -> tuple[list[Result], float, str]:
    """The RESULT lines of a saved run, ``folder/<script stem>.txt``."""
    path = folder / f"{Path(bench.script).stem}.txt"
    if not path.exists():
        return [], 0.0, f"no saved output {path}"
    results = []
    for line in path.read_text().splitlines():
        m = RESULT_RE.match(line.strip())
        if m:
            results.append(Result(m.group(1), float(m.group(2)), m.group(3), bench.script))
    return results, 0.0, "" if results else f"no RESULT line in {path}"


def performance_markdown(rows: list[tuple[Benchmark, list[Result], float, str]], machine: str) -> str:
    """The README section: one table row per headline figure."""
    lines = [
        f"Measured by `python benchmarks/run_all.py` on {machine}.",
        "Every figure is a ratio against a reference measured in the same run (or a wall time where said).",
        "",
        "| figure | value | target | reference (same run) |",
        "|---|---|---|---|",
    ]
    for bench, results, _wall, error in rows:
        if error and not results:
            lines.append(f"| `{bench.script}` | failed: {error} | | {bench.reference} |")
            continue
        for r in results:
            op, target = bench.targets.get(r.name, ("", float("nan")))
            target_text = f"{op} {target:g} {r.unit}" if op else ""
            reference = bench.references.get(r.name, bench.reference)
            reference = "none: wall time on this machine" if r.unit == "s" else reference
            lines.append(f"| `{r.name}` | {r.value:.3g} {r.unit} | {target_text} | {reference} |")
    return "\n".join(lines)


def write_readme(section: str, readme: Path = README) -> None:
    """Replace the text between the performance markers (added at the end if missing)."""
    text = readme.read_text()
    block = f"{START_MARK}\n{section}\n{END_MARK}"
    if START_MARK in text and END_MARK in text:
        head, rest = text.split(START_MARK, 1)
        _old, tail = rest.split(END_MARK, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n## Performance\n\n" + block + "\n"
    readme.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-readme", action="store_true", help="update README.md's Performance section")
    parser.add_argument("--only", nargs="*", help="run only these scripts (e.g. par.py)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per benchmark")
    parser.add_argument(
        "--results", metavar="DIR",
        help="read each script's output from DIR/<script>.txt (a run made before) instead of running it",
    )
    args = parser.parse_args(argv)
    machine = machine_description()
    print(f"machine: {machine}", flush=True)
    rows = []
    for bench in BENCHMARKS:
        if args.only and bench.script not in args.only:
            continue
        if args.results:
            results, wall, error = saved_results(bench, Path(args.results))
        else:
            print(f"running {bench.script} ...", flush=True)
            results, wall, error = run_benchmark(bench, args.timeout)
        print(f"  {bench.script}: {wall:.0f} s{'; ' + error if error else ''}", flush=True)
        rows.append((bench, results, wall, error))
    print()
    for _bench, results, _wall, _error in rows:
        for r in results:
            print(f"RESULT {r.name} {r.value:.6g} {r.unit}")
    section = performance_markdown(rows, machine)
    if args.write_readme:
        write_readme(section)
        print(f"updated {README}")
    failed = [b.script for b, results, _w, error in rows if error]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
