"""Every preset against its baseline, over several seeds: the numbers of the README's Results.

For each seed a synthetic scene of each hazard is written, built into a cube and
given its features and labels through the same functions the CLI runs; then
each preset of the hazard and its baseline are trained on the preset's own
(leak-proof) split with the ``cpu-demo`` profile, predicted on the test split's
pairs and scored side by side by ``evaluate`` on the same test split. Results
are reported as mean and standard deviation over the seeds, never as the best
seed:

    RESULT avalanche-fcn_f1_mean 61.2 %
    RESULT avalanche-fcn_f1_sd 4.1 %
    RESULT avalanche-fcn_margin 12.3 points     (mean F1 minus the baseline's mean F1)

    python benchmarks/science.py                         # 3 seeds, 1024 px, every comparison
    python benchmarks/science.py --seeds 5 --size 768
    python benchmarks/science.py --only avalanche-fcn    # one comparison
    python benchmarks/science.py --json results.json     # every per-seed metric as well

Comparisons (paper numbers are for real data; synthetic data shows whether the
method works as the paper describes, not what it scores on Sentinel-1 scenes):

- avalanche-fcn, avalanche-fcn-concat and the no-PAR ablation vs the
  operational baseline: pixel F1, AUPRC, object TP/FN/FP (Bianchi Tab. I, II);
- avalanche-cnn and avalanche-vae vs Sinha's rule: per-patch accuracy,
  balanced accuracy, F1 (Sinha Tab. I; the VAE paper);
- landslide-unet: AUPRC; glacier-3dconv / -convlstm: IoU (each against the
  baseline preset named in its comparison, when that preset exists).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: the profile every preset trains with here (a few minutes on 2 cores)
PROFILE = "cpu-demo"


@dataclass(frozen=True)
class Comparison:
    """One preset against one baseline on one hazard's cube, scored by ``metrics``."""

    name: str
    preset: str
    baseline: str
    hazard: str
    #: evaluate's metric keys reported for this comparison (the first one is the margin's)
    metrics: tuple[str, ...]
    #: the paper's number for the headline metric, percent (real data), for the table
    paper: str
    overrides: tuple[str, ...] = ()
    baseline_overrides: tuple[str, ...] = ()


COMPARISONS = (
    Comparison("avalanche-fcn", "avalanche-fcn", "baseline", "avalanche", ("f1", "auprc", "object_tp", "object_fn", "object_fp"),
               "F1 66.6 vs 38.1 (Bianchi Tab. I)"),
    Comparison("avalanche-fcn-concat", "avalanche-fcn-concat", "baseline", "avalanche", ("f1", "auprc", "object_tp", "object_fn", "object_fp"),
               "F1 65.4 (Bianchi Tab. II, PAR concatenated)"),
    Comparison("avalanche-fcn-nopar", "avalanche-fcn", "baseline", "avalanche", ("f1", "auprc", "object_tp", "object_fn", "object_fp"),
               "F1 65.2 (Bianchi Tab. II, no PAR)",
               overrides=("inputs.channels=[vv_diff, vh_diff, vvvh, slope]", "model.name=unet",
                          "model.params={base_channels: 16, depth: 4, dropout: 0.4, bilinear: true}")),
)


@dataclass
class SeedResult:
    seed: int
    #: comparison name -> {"method": metrics, "baseline": metrics}
    scores: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    seconds: float = 0.0


def _cube_for(hazard: str, seed: int, size: int, workdir: Path) -> Path:
    """Write the hazard's synthetic scene for ``seed`` and turn it into a cube with features and labels."""
    from sarcube.datacube.synthetic import read_demo_manifest, write_demo_catalog
    from sarcube.pipelines.add_layer import add_layer
    from sarcube.pipelines.build import build
    from sarcube.pipelines.features import features

    if hazard != "avalanche":
        raise ValueError(f"no cube recipe for hazard {hazard!r} yet")
    catalog, cube = workdir / f"{hazard}-catalog", workdir / f"{hazard}.zarr"
    write_demo_catalog(catalog, seed=seed, size=size, hazard=hazard)
    m = read_demo_manifest(catalog)
    build(m.bbox_lonlat, m.start, m.end, cube, catalog=str(m.catalog), resolution=m.resolution, overwrite=True)
    features(cube, pairs=True, terrain=True, par=True, ratio=False, overwrite=True)
    add_layer(cube, labels=m.labels, date_field="date", monitored=None, overwrite=True)
    return cube


def _train_predict(cube: Path, preset: str, run: Path, overrides: Sequence[str], seed: int, name: str) -> str:
    from sarcube.pipelines.predict import predict
    from sarcube.pipelines.train import train

    if run.exists():
        shutil.rmtree(run)
    train(cube, preset, run, profile=PROFILE, overrides=list(overrides), seed=seed)
    split = json.loads((run / "split.json").read_text())
    test_pairs = sorted(int(k) for k, v in split.get("pair_split", {}).items() if v == "test")
    return predict(cube, run, name=name, pairs=test_pairs or "all", tta=not preset.startswith("baseline"),
                   overwrite=True)


def run_seed(seed: int, size: int, comparisons: Sequence[Comparison], workdir: Path) -> SeedResult:
    from sarcube.pipelines.evaluate import evaluate

    t0 = time.perf_counter()
    out = SeedResult(seed)
    cubes: dict[str, Path] = {}
    baselines: dict[tuple[str, str, tuple[str, ...]], str] = {}
    for c in comparisons:
        cube = cubes.get(c.hazard) or cubes.setdefault(c.hazard, _cube_for(c.hazard, seed, size, workdir))
        key = (c.hazard, c.baseline, c.baseline_overrides)
        if key not in baselines:
            bname = f"{c.baseline}-s{seed}"
            baselines[key] = _train_predict(cube, c.baseline, workdir / "runs" / bname, c.baseline_overrides, seed, bname)
        pred = _train_predict(cube, c.preset, workdir / "runs" / f"{c.name}-s{seed}", c.overrides, seed,
                              f"{c.name}-s{seed}")
        ev = evaluate(cube, [pred, baselines[key]], split="test")
        got = ev["predictions"]
        out.scores[c.name] = {
            "method": {m: float(got[pred].get(m, float("nan"))) for m in c.metrics},
            "baseline": {m: float(got[baselines[key]].get(m, float("nan"))) for m in c.metrics},
        }
        print(f"seed {seed} {c.name}: " + ", ".join(f"{m} {out.scores[c.name]['method'][m]:.3f} vs "
                                                  f"{out.scores[c.name]['baseline'][m]:.3f}" for m in c.metrics),
              flush=True)
    out.seconds = time.perf_counter() - t0
    return out


def _is_count(metric: str) -> bool:
    return metric.startswith("object_")


def summarise(results: Sequence[SeedResult], comparisons: Sequence[Comparison]) -> list[str]:
    """RESULT lines: mean and sd over seeds of every metric, and the headline margin over the baseline."""
    lines = []
    for c in comparisons:
        for side, label in (("method", c.name), ("baseline", f"{c.name}_baseline")):
            for m in c.metrics:
                values = [r.scores[c.name][side][m] for r in results if c.name in r.scores]
                scale, unit = (1.0, "#") if _is_count(m) else (100.0, "%")
                mean = statistics.fmean(values) * scale
                sd = (statistics.stdev(values) * scale) if len(values) > 1 else 0.0
                lines.append(f"RESULT {label}_{m}_mean {mean:.2f} {unit}")
                lines.append(f"RESULT {label}_{m}_sd {sd:.2f} {unit}")
        head = c.metrics[0]
        method = statistics.fmean(r.scores[c.name]["method"][head] for r in results if c.name in r.scores)
        base = statistics.fmean(r.scores[c.name]["baseline"][head] for r in results if c.name in r.scores)
        lines.append(f"RESULT {c.name}_margin {100.0 * (method - base):.2f} points")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (0, 1, ...); default 3")
    parser.add_argument("--size", type=int, default=1024, help="scene side in pixels (20 m); default 1024")
    parser.add_argument("--only", action="append", default=[], help="run only this comparison (repeatable)")
    parser.add_argument("--json", type=Path, default=None, help="write every per-seed metric here")
    parser.add_argument("--workdir", type=Path, default=None, help="keep cubes and runs here (default: a temp dir)")
    args = parser.parse_args(argv)
    chosen = [c for c in COMPARISONS if not args.only or c.name in args.only]
    if not chosen:
        parser.error(f"--only {args.only}: choose from {[c.name for c in COMPARISONS]}")
    results = []
    with tempfile.TemporaryDirectory(prefix="sarcube-science-") as tmp:
        for seed in range(args.seeds):
            workdir = (args.workdir or Path(tmp)) / f"seed{seed}"
            workdir.mkdir(parents=True, exist_ok=True)
            results.append(run_seed(seed, args.size, chosen, workdir))
    print(f"# {args.seeds} seeds, {args.size} px scenes, profile {PROFILE}; mean +- sd over seeds")
    for c in chosen:
        print(f"# {c.name} vs {c.baseline} on {c.hazard}; paper: {c.paper}")
    for line in summarise(results, chosen):
        print(line)
    if args.json is not None:
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
