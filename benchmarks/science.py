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
    python benchmarks/science.py --markdown results.md   # the README's Results tables

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
import hashlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

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


PIXEL = ("f1", "auprc", "object_tp", "object_fn", "object_fp")
#: per-patch scores: the balanced test set (Sinha Tab. I) first, then the unbalanced one (every test patch)
PATCH = ("balanced.accuracy", "balanced.balanced_accuracy", "balanced.f1", "unbalanced.balanced_accuracy",
         "unbalanced.f1")

COMPARISONS = (
    Comparison("avalanche-fcn", "avalanche-fcn", "baseline", "avalanche", PIXEL, "F1 66.6 vs 38.1 (Bianchi Tab. I)"),
    Comparison("avalanche-fcn-concat", "avalanche-fcn-concat", "baseline", "avalanche", PIXEL,
               "F1 65.4 (Bianchi Tab. II, PAR concatenated)"),
    Comparison("avalanche-fcn-nopar", "avalanche-fcn", "baseline", "avalanche", PIXEL,
               "F1 65.2 (Bianchi Tab. II, no PAR)",
               overrides=("inputs.channels=[vv_diff, vh_diff, vvvh, slope]", "model.name=unet",
                          "model.params={base_channels: 8, depth: 4, dropout: 0.4, bilinear: true}")),
    Comparison("avalanche-cnn", "avalanche-cnn", "baseline-patch", "avalanche", PATCH,
               "accuracy 90.0 vs 73.9 (Sinha Tab. I, balanced test)"),
    # the VAE's chips are 64 px without a crop: its baseline is scored on the same patches
    Comparison("avalanche-vae", "avalanche-vae", "baseline-patch", "avalanche",
               ("balanced.balanced_accuracy", "balanced.f1", "balanced.accuracy", "unbalanced.balanced_accuracy",
                "unbalanced.f1"),
               "balanced accuracy of the VAE paper (real data)",
               baseline_overrides=("chips.size=64", "augment.crop=0")),
    Comparison("landslide-unet", "landslide-unet", "baseline-landslide", "landslide", ("auprc", "f1", "iou"),
               "AUPRC 0.78 at k=2 with DEM (landslide-datacube Fig. 4; chance 0.09)"),
    Comparison("glacier-3dconv", "glacier-3dconv", "baseline-glacier", "glacier", ("iou", "f1"),
               "IoU 0.964 (glacier-timeseries Tab. 1)"),
    Comparison("glacier-convlstm", "glacier-convlstm", "baseline-glacier", "glacier", ("iou", "f1"),
               "IoU 0.964 (glacier-timeseries Tab. 1)"),
)


def metric_of(result: dict, key: str) -> float:
    """``evaluate``'s value of ``key`` for one prediction; ``set.metric`` reads a patch test set."""
    if "." in key:
        test_set, key = key.split(".", 1)
        result = result.get("test_sets", {}).get(test_set, {})
    return float(result.get(key, float("nan")))


@dataclass
class SeedResult:
    seed: int
    #: comparison name -> {"method": metrics, "baseline": metrics}
    scores: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    seconds: float = 0.0
    size: int = 0
    #: winters of the avalanche scene
    winters: int = 1
    #: ``--set`` overrides every training of the run took (e.g. a longer test window)
    overrides: list[str] = field(default_factory=list)
    #: comparison name -> per held-out pair: how hard the scene is there and each side's F1 (pixel presets)
    pairs: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    #: comparison name -> {"method"/"baseline": {"rate", "val_f1", "f1"}}: the per-pair flagged-rate operating point
    rate: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)


#: a 5 x 5 mean VV change this bright (dB) is what an analyst reads as debris (the debris contrast median: 2.8 dB)
BRIGHT_DB = 3.0
#: the ring around a labelled deposit its local contrast is measured against: 2..6 pixels out
RING_PX = (2, 6)


def _local_contrast_db(change: np.ndarray, positive: np.ndarray) -> float:
    """Median over the labelled deposits of (mean change inside) - (mean change in the ring around it), dB."""
    from scipy import ndimage

    objects, n = ndimage.label(positive)
    values = []
    for k, box in enumerate(ndimage.find_objects(objects), start=1):
        pad = tuple(slice(max(0, b.start - RING_PX[1]), b.stop + RING_PX[1]) for b in box)
        obj = objects[pad] == k
        ring = (
            ndimage.binary_dilation(obj, iterations=RING_PX[1])
            & ~ndimage.binary_dilation(obj, iterations=RING_PX[0])
            & ~positive[pad]
        )
        inside, around = change[pad][obj], change[pad][ring]
        inside, around = inside[np.isfinite(inside)], around[np.isfinite(around)]
        if inside.size and around.size:
            values.append(float(inside.mean() - around.mean()))
    return float(np.median(values)) if values else float("nan")


def _scored_labels(ds, plan, pair: int, split: str) -> np.ndarray:
    """A held-out pair's labels as ``evaluate`` scores them: unknown outside the split and where either
    acquisition of the pair observed nothing."""
    from sarcube.datacube import chips, schema
    from sarcube.pipelines import scoring

    label = ds[schema.LABEL].isel({schema.PAIR: pair}).values
    return scoring.scored_label(ds, pair, label, chips.split_mask(plan, pair, split, label.shape))


def pair_diagnostics(cube: Path, preds: Sequence[str]) -> list[dict[str, float]]:
    """Per test pair of the first prediction's run: what makes the pair hard and how each prediction did there.

    ``bright_share``: share of the observed pixels outside any deposit whose 5 x 5 mean VV change is at least
    :data:`BRIGHT_DB` (wet snow refreezing, drifts: debris look-alikes); ``debris_contrast_db``: the labelled
    deposits' median local contrast; per prediction, ``f1`` at its own (validation-tuned) threshold and
    ``ceiling``, the best F1 any threshold reaches on this pair (tuned on the test pair itself: a bound, not a
    result).
    """
    from scipy import ndimage

    from sarcube.datacube import chips, schema
    from sarcube.datacube.predictions import prediction_threshold
    from sarcube.models import metrics
    from sarcube.pipelines import scoring

    ds = schema.open_cube(cube)
    plan = scoring.read_split(ds[preds[0]])
    out = []
    for pair in plan.pairs_of(chips.TEST):
        label = _scored_labels(ds, plan, pair, chips.TEST)
        change = ds[schema.VV_DIFF].isel({schema.PAIR: pair}).values
        seen = label != schema.LABEL_UNKNOWN
        positive = label == 1
        mean5 = ndimage.uniform_filter(np.nan_to_num(change), 5)
        row = {
            "pair_index": int(pair),
            "positives": int(positive.sum()),
            "bright_share": float(((mean5 >= BRIGHT_DB) & seen & ~positive).sum() / max(1, (seen & ~positive).sum())),
            "debris_contrast_db": _local_contrast_db(change, positive),
        }
        for name in preds:
            prob = ds[name].isel({schema.PAIR: pair}).values
            ok = seen & np.isfinite(prob)
            thr = prediction_threshold(ds[name], None)
            row[f"{name}.f1"] = float(metrics.pixel_scores(prob[ok], positive[ok].astype(np.uint8), thr)["f1"])
            row[f"{name}.ceiling"] = (metrics.best_threshold(prob[ok], positive[ok].astype(np.uint8))[1]
                                      if positive[ok].any() else float("nan"))
        out.append(row)
    return out


def _cube_for(hazard: str, seed: int, size: int, workdir: Path, winters: int = 1) -> Path:
    """Write the hazard's synthetic scene for ``seed`` and turn it into a cube with the features its presets read."""
    from sarcube.datacube.synthetic import read_demo_manifest, write_demo_catalog
    from sarcube.pipelines.add_layer import add_layer
    from sarcube.pipelines.build import build
    from sarcube.pipelines.features import features

    catalog, cube = workdir / f"{hazard}-catalog", workdir / f"{hazard}.zarr"
    if catalog.exists():
        shutil.rmtree(catalog)
    write_demo_catalog(catalog, seed=seed, size=size, hazard=hazard, winters=winters if hazard == "avalanche" else 1)
    m = read_demo_manifest(catalog)
    build(m.bbox_lonlat, m.start, m.end, cube, catalog=str(m.catalog), resolution=m.resolution, overwrite=True)
    if hazard == "avalanche":
        summer = f"{m.summer[0]}/{m.summer[1]}"  # the snow-free reference of the patch presets' VV* ratio
        features(cube, pairs=True, terrain=True, par=True, ratio=True, summer=summer, overwrite=True)
        add_layer(cube, labels=m.labels, date_field="date", monitored=None, overwrite=True)
    else:  # landslide: event means of k=2 acquisitions per orbit; glacier: terrain only, the series is vv
        event = {"event_date": m.event_date, "k": 2} if hazard == "landslide" else {}
        features(cube, pairs=False, par=False, overwrite=True, **event)
        add_layer(cube, labels=m.labels, overwrite=True)
    return cube


def _train_predict(cube: Path, preset: str, run: Path, overrides: Sequence[str], seed: int, name: str) -> str:
    from sarcube.pipelines.train import train

    if run.exists():
        shutil.rmtree(run)
    train(cube, preset, run, profile=PROFILE, overrides=list(overrides), seed=seed)
    return _predict(cube, run, name)


def _predict(cube: Path, run: Path, name: str) -> str:
    from sarcube.datacube.predictions import OP_AUTO, OP_THRESHOLD
    from sarcube.pipelines.predict import predict

    # no test-time augmentation for any method: the baselines are dihedral-equivariant, and every
    # network is then scored as it was validated (one pass), at an eighth of the cost. Runs that validate on
    # a time window also tune the per-pair operating point on their validation pairs (predicted too);
    # a tile split holds out no pair, so every pair is predicted
    held_out = json.loads((run / "split.json").read_text()).get("pair_split", {})
    held = sorted(int(k) for k, v in held_out.items() if v in ("val", "test"))
    window = "val" in held_out.values()
    return predict(cube, run, name=name, pairs=held or "all", tta=False, overwrite=True,
                   operating_point=OP_AUTO if window else OP_THRESHOLD)


def rate_scores(cube: Path, pred: str) -> dict[str, float | str]:
    """The per-pair operating points ``predict --operating-point auto`` recorded, scored on the test pairs by
    ``evaluate``: ``f1`` at the flagged share (tuned on the validation pairs, each test pair at its own top
    ``rate``), ``chosen`` (the operating point of the higher leave-one-validation-pair-out F1) and ``chosen_f1``."""
    from sarcube.datacube import schema
    from sarcube.datacube.predictions import (
        ATTR_FLAG_RATE,
        ATTR_OPERATING_POINT,
        ATTR_OPERATING_POINT_F1,
        OP_RATE,
        OP_THRESHOLD,
    )
    from sarcube.pipelines.evaluate import evaluate
    from sarcube.pipelines.operating_point import HELD_OUT

    attrs = schema.open_cube(cube)[pred].attrs
    at_rate = evaluate(cube, [pred], split="test", operating_point=OP_RATE)["predictions"][pred]
    chosen = evaluate(cube, [pred], split="test")["predictions"][pred]
    val = json.loads(attrs[ATTR_OPERATING_POINT_F1])
    held_out = {f"{k}_held_out": float(val[f"{op}{HELD_OUT}"]) for k, op in
                (("val_f1", OP_RATE), ("val_threshold_f1", OP_THRESHOLD)) if f"{op}{HELD_OUT}" in val}
    return {"rate": float(attrs[ATTR_FLAG_RATE]), "val_f1": float(val[OP_RATE]), "f1": float(at_rate["f1"]),
            "val_threshold_f1": float(val[OP_THRESHOLD]), **held_out, "chosen": str(attrs[ATTR_OPERATING_POINT]),
            "chosen_f1": float(chosen["f1"])}


def _tag(overrides: Sequence[str]) -> str:
    """Six hex digits naming a set of overrides (runs and predictions made with them)."""
    return hashlib.sha1("|".join(overrides).encode()).hexdigest()[:6]


def run_seed(
    seed: int, size: int, comparisons: Sequence[Comparison], workdir: Path, reuse: bool = False, winters: int = 1,
    sets: Sequence[str] = (),
) -> SeedResult:
    """Every comparison on ``seed``'s cubes; ``reuse`` keeps cubes and predictions already in ``workdir``.

    ``sets`` override every training, the baselines' too; their runs and predictions are named with a tag of
    them, so ``reuse`` never scores a prediction made without them.
    """
    from sarcube.datacube import schema
    from sarcube.datacube.predictions import OP_AUTO, OP_THRESHOLD
    from sarcube.pipelines.evaluate import evaluate
    from sarcube.pipelines.operating_point import record_operating_point

    t0 = time.perf_counter()
    out = SeedResult(seed, size=size, winters=winters, overrides=list(sets))
    comparisons = [replace(c, overrides=(*c.overrides, *sets), baseline_overrides=(*c.baseline_overrides, *sets))
                   for c in comparisons]
    tag = f"-{_tag(sets)}" if sets else ""
    cubes: dict[str, Path] = {}
    baselines: dict[tuple[str, str, tuple[str, ...]], str] = {}
    for c in comparisons:
        if c.hazard not in cubes:
            path = workdir / f"{c.hazard}.zarr"
            reused = reuse and (path / "zarr.json").exists()
            cubes[c.hazard] = path if reused else _cube_for(c.hazard, seed, size, workdir, winters)
        cube = cubes[c.hazard]
        key = (c.hazard, c.baseline, c.baseline_overrides)
        if key not in baselines:
            btag = f"-{_tag(c.baseline_overrides)}" if c.baseline_overrides else ""
            bname = f"{c.baseline}{btag}-s{seed}"
            if reuse and schema.PRED_PREFIX + bname in schema.open_cube(cube).data_vars:
                baselines[key] = schema.PRED_PREFIX + bname
            else:
                baselines[key] = _train_predict(cube, c.baseline, workdir / "runs" / bname, c.baseline_overrides, seed,
                                                bname)
        pred = f"{schema.PRED_PREFIX}{c.name}{tag}-s{seed}"
        if not (reuse and pred in schema.open_cube(cube).data_vars):  # --reuse: a prediction already made is scored
            pred = _train_predict(cube, c.preset, workdir / "runs" / f"{c.name}{tag}-s{seed}", c.overrides, seed,
                                  f"{c.name}{tag}-s{seed}")
        # each method at its own threshold here (the network's tuned on validation chips, the baseline's dynamic
        # one); the per-pair operating points below
        ev = evaluate(cube, [pred, baselines[key]], split="test", operating_point=OP_THRESHOLD)
        got = ev["predictions"]
        out.scores[c.name] = {
            "method": {m: metric_of(got[pred], m) for m in c.metrics},
            "baseline": {m: metric_of(got[baselines[key]], m) for m in c.metrics},
        }
        if c.hazard == "avalanche" and c.metrics == PIXEL:
            for name in (pred, baselines[key]):  # --reuse: (re)record the operating points on the maps there
                if reuse:
                    run = Path(str(schema.open_cube(cube)[name].attrs[schema.ATTR_RUN]))
                    record_operating_point(cube, name, OP_AUTO, run)
            out.rate[c.name] = {"method": rate_scores(cube, pred), "baseline": rate_scores(cube, baselines[key])}
            m, b = out.rate[c.name]["method"], out.rate[c.name]["baseline"]
            print(f"seed {seed} {c.name} at a per-pair flagged rate tuned on validation: F1 {m['f1']:.3f} "
                  f"(rate {m['rate']:.1e}) vs {b['f1']:.3f}; at the validation's choice: {m['chosen_f1']:.3f} "
                  f"({m['chosen']}) vs {b['chosen_f1']:.3f} ({b['chosen']})", flush=True)
            out.pairs[c.name] = [
                {k.replace(pred, "method").replace(baselines[key], "baseline"): v for k, v in row.items()}
                for row in pair_diagnostics(cube, [pred, baselines[key]])
            ]
            for row in out.pairs[c.name]:
                print(f"seed {seed} {c.name} pair {row['pair_index']}: bright {row['bright_share']:.1%}, "
                      f"debris contrast {row['debris_contrast_db']:+.1f} dB, "
                      f"F1 {row['method.f1']:.3f} vs {row['baseline.f1']:.3f} "
                      f"(ceilings {row['method.ceiling']:.3f} vs {row['baseline.ceiling']:.3f})", flush=True)
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
        rated = [r.rate[c.name] for r in results if c.name in r.rate]
        if rated:
            for side, label in (("method", c.name), ("baseline", f"{c.name}_baseline")):
                values = [100.0 * r[side]["f1"] for r in rated]
                sd = statistics.stdev(values) if len(values) > 1 else 0.0
                lines.append(f"RESULT {label}_rate_f1_mean {statistics.fmean(values):.2f} %")
                lines.append(f"RESULT {label}_rate_f1_sd {sd:.2f} %")
            margin = statistics.fmean(r["method"]["f1"] - r["baseline"]["f1"] for r in rated)
            lines.append(f"RESULT {c.name}_rate_margin {100.0 * margin:.2f} points")
            chosen = [r for r in rated if "chosen_f1" in r["method"]]
            for side, label in (("method", c.name), ("baseline", f"{c.name}_baseline")):
                values = [100.0 * r[side]["chosen_f1"] for r in chosen]
                if values:
                    sd = statistics.stdev(values) if len(values) > 1 else 0.0
                    lines.append(f"RESULT {label}_chosen_f1_mean {statistics.fmean(values):.2f} %")
                    lines.append(f"RESULT {label}_chosen_f1_sd {sd:.2f} %")
            if chosen:
                margin = statistics.fmean(r["method"]["chosen_f1"] - r["baseline"]["chosen_f1"] for r in chosen)
                lines.append(f"RESULT {c.name}_chosen_margin {100.0 * margin:.2f} points")
    return lines


def _cell(values: Sequence[float], metric: str) -> str:
    scale = 1.0 if _is_count(metric) else 100.0
    mean = statistics.fmean(values) * scale
    sd = statistics.stdev(values) * scale if len(values) > 1 else 0.0
    return f"{mean:.1f} ± {sd:.1f}"


def markdown(results: Sequence[SeedResult], comparisons: Sequence[Comparison], size: int) -> str:
    """The README's Results tables: one per hazard, each method and its baseline, mean ± sd over seeds."""
    n_seeds = len({r.seed for r in results})
    sets = sorted({s for r in results for s in r.overrides})
    every = f"; every training with {', '.join(sets)}" if sets else ""
    out = [f"<!-- written by benchmarks/science.py: {n_seeds} seeds, {size} px scenes, profile {PROFILE}{every} -->"]
    for hazard in dict.fromkeys(c.hazard for c in comparisons):
        rows = [c for c in comparisons if c.hazard == hazard]
        for columns in dict.fromkeys(c.metrics for c in rows):
            group = [c for c in rows if c.metrics == columns]
            seeds = len({r.seed for r in results if any(c.name in r.scores for c in group)})
            out += ["", f"**{hazard}** ({seeds} seeds, mean ± sd over seeds, %; object counts per test split)", ""]
            out.append("| method | " + " | ".join(columns) + " | paper (real data) |")
            out.append("|---" * (len(columns) + 2) + "|")
            shown: set[str] = set()
            for c in group:
                base = c.baseline + (f" ({', '.join(c.baseline_overrides)})" if c.baseline_overrides else "")
                for side, label in (("baseline", base), ("method", c.name)):
                    if label in shown:
                        continue
                    shown.add(label)
                    cells = [_cell([r.scores[c.name][side][m] for r in results if c.name in r.scores], m)
                             for m in columns]
                    n = sum(c.name in r.scores for r in results)  # a row over fewer seeds than its table says so
                    label += f" ({n} seeds)" if n != seeds else ""
                    out.append(f"| {label} | " + " | ".join(cells) + f" | {c.paper if side == 'method' else ''} |")
    out += _rate_markdown(results, comparisons)
    out += _pairs_markdown(results, [c.name for c in comparisons])
    return "\n".join(out) + "\n"


def _rate_markdown(results: Sequence[SeedResult], comparisons: Sequence[Comparison]) -> list[str]:
    """Pixel F1 of each comparison with rate data at both operating points, mean ± sd over seeds."""
    rows, shown = [], set()
    for c in comparisons:
        rated = [r for r in results if c.name in r.rate and c.name in r.scores]
        if not rated:
            continue
        for side, label in (("method", c.name), ("baseline", c.baseline)):
            if label in shown:
                continue
            shown.add(label)
            own = _cell([r.scores[c.name][side]["f1"] for r in rated], "f1")
            rate = _cell([r.rate[c.name][side]["f1"] for r in rated], "f1")
            share = statistics.fmean(r.rate[c.name][side]["rate"] for r in rated)
            label += f" ({len(rated)} seeds)" if len(rated) != len({r.seed for r in results}) else ""
            picks = [r.rate[c.name][side] for r in rated if "chosen_f1" in r.rate[c.name][side]]
            chosen = _cell([x["chosen_f1"] for x in picks], "f1") if len(picks) == len(rated) else "-"
            n_rate = sum(x["chosen"] == "rate" for x in picks)
            rows.append(f"| {label} | {own} | {rate} | {100 * share:.3f} | {chosen} | {n_rate} of {len(picks)} |")
    if not rows:
        return []
    return ["", "**Operating points** (pixel F1 on the test pairs, %, mean ± sd over seeds): at the method's own "
            "(the network's validation-tuned probability threshold; the baseline's dynamic threshold) and at a "
            "per-pair flagged rate (each pair's top share of scores, the share tuned on the validation pairs), and "
            "at the one of the two with the higher F1 on the validation pairs, each pair left out of the tuning "
            "in turn (`predict --operating-point auto`)", "",
            "| method | F1, own threshold | F1, per-pair rate | rate, % of pixels (mean) | F1, validation's choice "
            "| seeds choosing the rate |", "|---|---|---|---|---|---|", *rows]


def _pairs_markdown(results: Sequence[SeedResult], names: Sequence[str]) -> list[str]:
    """Per seed and held-out pair of the first pixel comparison with diagnostics: why a seed is hard."""
    name = next((n for n in names if any(r.pairs.get(n) for r in results)), None)
    if name is None:
        return []
    out = ["", f"**{name}, per held-out pair** (bright: share of the pair's observed pixels outside debris whose "
           f"5 x 5 mean VV change is >= +{BRIGHT_DB:g} dB; contrast: the labelled deposits' median local contrast; "
           "ceiling: the best F1 any threshold reaches on the pair, tuned on the test pair itself, a bound, not a "
           "result)", "",
           "| seed | pair | debris px | bright % | contrast dB | F1 | baseline F1 | ceiling | baseline ceiling |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: r.seed):
        for row in r.pairs.get(name, []):
            out.append(
                f"| {r.seed} | {row['pair_index']} | {row['positives']} | {100 * row['bright_share']:.1f} | "
                f"{row['debris_contrast_db']:+.1f} | {100 * row['method.f1']:.1f} | {100 * row['baseline.f1']:.1f} | "
                f"{100 * row['method.ceiling']:.1f} | {100 * row['baseline.ceiling']:.1f} |"
            )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds; default 3")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run from here (default 0: seeds 0, 1, ...)")
    parser.add_argument("--size", type=int, default=1024, help="scene side in pixels (20 m); default 1024")
    parser.add_argument("--winters", type=int, default=1,
                        help="winters of the avalanche scenes (2: spring 2020 before the held-out 2021); default 1")
    parser.add_argument("--only", action="append", default=[], help="run only this comparison (repeatable)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override every training, the baselines' too (repeatable; e.g. a longer test window: "
                             "--set 'split.test=2021-03-27/2021-04-14')")
    parser.add_argument("--json", type=Path, default=None, help="write every per-seed metric here")
    parser.add_argument("--workdir", type=Path, default=None, help="keep cubes and runs here (default: a temp dir)")
    parser.add_argument("--markdown", type=Path, default=None, help="write the README's Results tables here")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the cubes and predictions an earlier run left in --workdir (rescore them)")
    parser.add_argument(
        "--summarise", type=Path, nargs="+", default=None, metavar="JSON",
        help="run nothing: summarise the --json files of earlier runs (e.g. one per seed, run in parallel)",
    )
    args = parser.parse_args(argv)
    chosen = [c for c in COMPARISONS if not args.only or c.name in args.only]
    if not chosen:
        parser.error(f"--only {args.only}: choose from {[c.name for c in COMPARISONS]}")
    if args.summarise:
        results = [SeedResult(**r) for f in args.summarise for r in json.loads(f.read_text())]
        size = {r.get("size", args.size) for f in args.summarise for r in json.loads(f.read_text())}
        args.size = size.pop() if len(size) == 1 else args.size
        chosen = [c for c in chosen if any(c.name in r.scores for r in results)]
    else:
        results = []
        with tempfile.TemporaryDirectory(prefix="sarcube-science-") as tmp:
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                workdir = (args.workdir or Path(tmp)) / f"seed{seed}"
                workdir.mkdir(parents=True, exist_ok=True)
                results.append(run_seed(seed, args.size, chosen, workdir, reuse=args.reuse, winters=args.winters,
                                        sets=args.sets))
    print(f"# {len({r.seed for r in results})} seeds, {args.size} px scenes, profile {PROFILE}; mean +- sd over seeds")
    if args.sets:
        print(f"# every training with {', '.join(args.sets)}")
    for c in chosen:
        print(f"# {c.name} vs {c.baseline} on {c.hazard}; paper: {c.paper}")
    for line in summarise(results, chosen):
        print(line)
    if args.markdown is not None:
        args.markdown.write_text(markdown(results, chosen, args.size))
    if args.json is not None:
        args.json.write_text(json.dumps([{**r.__dict__, "size": r.size or args.size} for r in results], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
