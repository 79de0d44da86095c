"""``sarcube evaluate CUBE --pred A --pred B``: the preset's metrics on the held-out split, side by side.

Each prediction is scored against the cube's ``label`` (255 ignored, NaN
predictions ignored) on the split (``test`` by default) of the run that made
it: the run directory recorded in the prediction's ``run`` attribute holds
``split.json`` (tiles and held-out pairs); a split that puts one label event
in two splits is refused. Only pairs the prediction holds are scored. Two
kinds of scoring, chosen by the runs' tasks:

- maps (segmentation, baseline): pixel precision/recall/F1/IoU, AUPRC,
  balanced accuracy over the split's pixels, plus bounding-box IoU and
  object TP/FN/FP per scene (avalanche-fcn-bianchi Tab. I);
- chips (classification and anomaly runs, avalanche-cnn-sinha and
  avalanche-vae): the split's chip grid of the run's chip size; a chip is
  positive with at least one label-1 pixel and is scored by the mean
  probability over it (chip models) or its maximum (map models: any detection
  in the chip). When any compared prediction is chip-level, all are scored on
  chips, so a baseline map compares with a patch classifier.

The result is printed as a table (one row per prediction) and written as JSON.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np
import xarray as xr
from sarcube.datacube import chips, schema
from sarcube.datacube.chips.splits import split_mask
from sarcube.datacube.label_events import label_events
from sarcube.datacube.predictions import (
    ATTR_CHIP,
    ATTR_PRESET,
    ATTR_TASK,
    SCENE_KEY,
    pair_keys,
    predicted_keys,
    prediction_threshold,
    resolve_prediction,
    run_name,
)

from sarcube.errors import CheckpointError, InputError, MissingVariableError

log = logging.getLogger(__name__)

CHIP_TASKS = ("classification", "anomaly")
#: table columns: metric key -> (header, kind) where kind "pct" prints percent, "int" a count
COLUMNS: dict[str, tuple[str, str]] = {
    "f1": ("F1 (%)", "pct"),
    "precision": ("Precision (%)", "pct"),
    "recall": ("Recall (%)", "pct"),
    "iou": ("IoU (%)", "pct"),
    "auprc": ("AUPRC (%)", "pct"),
    "accuracy": ("Accuracy (%)", "pct"),
    "balanced_accuracy": ("Bal. acc. (%)", "pct"),
    "bbox_iou": ("bbox IoU (%)", "pct"),
    "object_tp": ("TP (#)", "int"),
    "object_fn": ("FN (#)", "int"),
    "object_fp": ("FP (#)", "int"),
}
#: the metrics each preset family reports (its paper's table), by preset-name prefix
PRESET_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("avalanche-cnn", ("accuracy", "precision", "recall", "f1", "balanced_accuracy")),
    ("avalanche-vae", ("balanced_accuracy", "f1", "precision", "recall")),
    ("landslide", ("auprc", "f1", "precision", "recall")),
    ("glacier", ("iou", "precision", "recall", "f1")),
    ("avalanche-fcn", ("f1", "precision", "recall", "iou", "auprc", "bbox_iou", "object_tp", "object_fn", "object_fp")),
)
MAP_DEFAULT_COLUMNS = PRESET_COLUMNS[-1][1]
CHIP_DEFAULT_COLUMNS = PRESET_COLUMNS[0][1]


def columns_for(presets: Sequence[str], chip_level: bool) -> list[str]:
    """The metrics the compared presets' papers report; a baseline shows those of what it is compared to."""
    columns: list[str] = []
    for preset in presets:
        cols = next((c for prefix, c in PRESET_COLUMNS if preset.startswith(prefix)), ())
        if chip_level and any(c.startswith("object_") or c == "bbox_iou" for c in cols):
            cols = CHIP_DEFAULT_COLUMNS
        columns += [c for c in cols if c not in columns]
    return columns or list(CHIP_DEFAULT_COLUMNS if chip_level else MAP_DEFAULT_COLUMNS)


def read_split(var: xr.DataArray, label: xr.DataArray | None = None) -> chips.SplitPlan:
    """The split of the run that made a prediction (``split.json`` in its run directory).

    Refused when it puts one label event in two splits, as recorded or as ``label``'s events fall into it.
    """
    run = var.attrs.get(schema.ATTR_RUN)
    if not run:
        raise CheckpointError(f"{var.name!r} has no {schema.ATTR_RUN!r} attribute: predict it with `sarcube predict --run RUN_DIR`")
    from sarcube.pipelines.runs import SPLIT_FILE

    path = Path(run) / SPLIT_FILE
    if not path.exists():
        raise CheckpointError(f"{var.name!r} was made by run {run!r}, which has no {SPLIT_FILE}: restore the run directory (or re-predict with a run that has one)")
    plan = chips.SplitPlan.from_json(path.read_text())
    events = label_events(label) if label is not None else None
    fix = "retrain the run with `sarcube train` (it keeps each event in one split) and predict again"
    chips.check_split(plan, events, f"{var.name!r}: {str(path)!r}", fix)
    return plan


def _chip_scores(prob: np.ndarray, label: np.ndarray, plan: chips.SplitPlan, pair: int | None, split: str, size: int, reduce: str) -> tuple[np.ndarray, np.ndarray]:
    """Scores and labels (0/1) of the split's chips of one scene; chips without labelled pixels are left out."""
    ny, nx = label.shape
    oy, ox = chips.chip_origins(ny, size, size), chips.chip_origins(nx, size, size)
    if oy.size == 0 or ox.size == 0:
        return np.zeros(0), np.zeros(0, dtype=np.uint8)
    yy, xx = (a.ravel() for a in np.meshgrid(oy, ox, indexing="ij"))
    keep = plan.chip_split(pair, yy, xx, size) == chips.SPLITS.index(split)
    scores, labels = [], []
    for y0, x0 in zip(yy[keep], xx[keep], strict=True):
        lab = label[y0 : y0 + size, x0 : x0 + size]
        p = prob[y0 : y0 + size, x0 : x0 + size]
        if not (lab != schema.LABEL_UNKNOWN).any() or not np.isfinite(p).any():
            continue
        scores.append(float(np.nanmean(p) if reduce == "mean" else np.nanmax(p)))
        labels.append(1 if (lab == schema.LABEL_YES).any() else 0)
    return np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=np.uint8)


def _split_id(plan: chips.SplitPlan) -> str:
    return hashlib.sha256(plan.to_json().encode()).hexdigest()[:12]


def score_prediction(ds: xr.Dataset, name: str, *, split: str, threshold: float | None, chip_level: bool) -> dict[str, Any]:
    """Metrics of one prediction on its run's ``split`` (see the module docstring)."""
    from sarcube.models.metrics import MetricAccumulator

    var = ds[name]
    if schema.LABEL not in ds.data_vars:
        raise MissingVariableError(f"evaluation needs {schema.LABEL!r} in the cube; {schema.hint_for([schema.LABEL])}")
    label_var = ds[schema.LABEL]
    plan = read_split(var, label_var)
    thr = prediction_threshold(var, threshold)
    task = str(var.attrs.get(ATTR_TASK, ""))
    ny, nx = ds.sizes[schema.Y], ds.sizes[schema.X]
    held = set(predicted_keys(var))
    if schema.PAIR in var.dims:
        keys = pair_keys(ds)
        pairs: list[int | None] = [p for p, k in enumerate(keys) if k in held]
    else:
        pairs = [None] if (SCENE_KEY in held or not held) else []
    acc = MetricAccumulator(threshold=thr, objects=not chip_level, auprc=True)
    scored_pairs, units = [], 0
    reduce = "mean" if task in CHIP_TASKS else "max"
    chip_px = int(var.attrs.get(ATTR_CHIP, plan.tile_px))
    from tqdm.auto import tqdm

    for p in tqdm(pairs, desc=f"evaluate {name}", leave=False, disable=len(pairs) < 2 or None):
        mask = split_mask(plan, p, split, (ny, nx))
        if not mask.any():
            continue
        sel = {schema.PAIR: p} if p is not None else {}
        prob = np.asarray(var.isel(sel).values, dtype=np.float32)
        lab_sel = {schema.PAIR: p} if schema.PAIR in label_var.dims and p is not None else {}
        label = np.asarray(label_var.isel(lab_sel).values, dtype=np.uint8)
        if chip_level:
            scores, truth = _chip_scores(prob, label, plan, p, split, chip_px, reduce)
            if scores.size:
                acc.update(scores, truth)
                units += int(scores.size)
        else:
            label = np.where(mask, label, schema.LABEL_UNKNOWN).astype(np.uint8)
            acc.update(prob, label)
            units += int(((label != schema.LABEL_UNKNOWN) & np.isfinite(prob)).sum())
        scored_pairs.append(-1 if p is None else int(p))
    if not scored_pairs:
        raise InputError(f"{name!r}: none of its pairs lies in the {split!r} split of its run ({plan.describe()}); predict the held-out pairs or choose --split")
    result: dict[str, Any] = {k: (float(v) if isinstance(v, float) else int(v)) for k, v in acc.compute().items()}
    result.update(
        {
            "preset": str(var.attrs.get(ATTR_PRESET, "")),
            "task": task,
            "threshold": thr,
            "pairs": scored_pairs,
            "scored_on": "chips" if chip_level else "pixels",
            "n_scored": units,
            "split": plan.describe(),
            "split_id": _split_id(plan),
            "run": str(var.attrs.get(schema.ATTR_RUN, "")),
        }
    )
    return result


def format_table(results: Mapping[str, Mapping[str, Any]], columns: Sequence[str], split: str) -> str:
    """Predictions as rows, the presets' metrics as columns (avalanche-fcn-bianchi Tab. I style)."""
    headers = ["Method"] + [COLUMNS[c][0] for c in columns]
    rows = []
    for name, res in results.items():
        row = [run_name(name)]
        for c in columns:
            v = res.get(c)
            if v is None or (isinstance(v, float) and np.isnan(v)):
                row.append("-")
            elif COLUMNS[c][1] == "int":
                row.append(f"{int(v)}")
            else:
                row.append(f"{100.0 * float(v):.2f}")
        rows.append(row)
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths, strict=True)))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))) for r in rows]
    first = next(iter(results.values()))
    thresholds = ", ".join(f"{run_name(n)} {r['threshold']:g}" for n, r in results.items())
    lines.append(f"{split} split, scored on {first['scored_on']}; threshold per prediction: {thresholds}")
    if len({r["split_id"] for r in results.values()}) > 1:
        lines.append("note: the predictions come from runs with different splits, so their test sets differ")
    return "\n".join(lines)


def evaluate(
    cube: str | Path,
    preds: Sequence[str],
    *,
    split: str = chips.TEST,
    threshold: float | None = None,
    out_json: str | Path | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Score predictions side by side on their runs' ``split``; returns (and optionally writes) the results.

    The returned dict holds ``split``, ``scored_on``, ``columns``, ``table``
    (the printed text) and ``predictions``: name -> metrics and provenance.
    """
    if split not in chips.SPLITS:
        raise InputError(f"--split {split!r}: use one of {', '.join(chips.SPLITS)}")
    if not preds:
        raise InputError("give at least one prediction: --pred NAME (see `sarcube info` for pred_* variables)")
    ds = schema.open_cube(cube, storage_options=storage_options)
    names = list(dict.fromkeys(resolve_prediction(ds, p) for p in preds))
    chip_level = any(str(ds[n].attrs.get(ATTR_TASK, "")) in CHIP_TASKS for n in names)
    results = {n: score_prediction(ds, n, split=split, threshold=threshold, chip_level=chip_level) for n in names}
    columns = columns_for([r["preset"] for r in results.values()], chip_level)
    table = format_table(results, columns, split)
    out = {"cube": str(cube), "split": split, "scored_on": "chips" if chip_level else "pixels", "columns": columns, "table": table, "predictions": results}
    if out_json is not None:
        path = Path(out_json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=2, default=str))
        log.info("wrote %s", path)
    return out


@click.command("evaluate")
@click.argument("cube", type=click.Path())
@click.option("--pred", "preds", multiple=True, required=True, help="Prediction to score (NAME or pred_NAME); repeat to compare side by side.")
@click.option("--split", default=chips.TEST, show_default=True, type=click.Choice(list(chips.SPLITS)), help="Split of each prediction's run to score on.")
@click.option("--threshold", type=float, default=None, help="Probability threshold for all predictions (default: each run's).")
@click.option("--out", "out_json", default="evaluation.json", show_default=True, type=click.Path(dir_okay=False), help="JSON file with every metric.")
def command(cube: str, preds: tuple[str, ...], split: str, threshold: float | None, out_json: str) -> None:
    """Score predictions in CUBE on their runs' held-out split; print a table and write JSON."""
    result = evaluate(cube, preds, split=split, threshold=threshold, out_json=out_json)
    click.echo(result["table"])
    click.echo(f"wrote {out_json}")
