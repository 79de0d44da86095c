"""Scoring predictions on their runs' held-out split: what ``evaluate``, ``report`` and the demo show.

Not a step (steps never import each other).

Each prediction is scored against the cube's ``label`` (255 ignored, NaN
predictions ignored, and on a pair's maps the pixels that one of its two
acquisitions did not observe: radar shadow, layover, off-swath, where no method
can see debris and an analyst labelling that image would not mark any) on the
split (``test`` by default) of the run that made it: the run directory recorded
in the prediction's ``run`` attribute holds ``split.json`` (tiles and held-out
pairs); a split that puts one label event in two splits is refused. Only pairs
the prediction holds are scored. Two kinds of scoring, chosen by the
predictions' ``prediction_level``:

- maps (segmentation, baseline): pixel precision/recall/F1/IoU, AUPRC,
  balanced accuracy over the split's pixels, plus bounding-box IoU and
  object TP/FN/FP per scene (avalanche-fcn-bianchi Tab. I);
- patches (avalanche-cnn-sinha, avalanche-vae, the ``baseline-patch`` rule):
  a patch classifier is scored per patch, as it was trained. ``predict``
  wrote one probability per chip of the run's grid (its centre crop, as
  validation saw it); here the test patches are the run's chips of the split
  (:func:`~sarcube.datacube.chips.chip_table` with the run's
  ``preset.yaml``: same grid, same straddling and labelled-fraction rules as
  training), each labelled as training labels a chip
  (:func:`~sarcube.models.training.chip_targets` on the centre crop:
  positive with at least ``min_positive_pixels`` debris pixels). Two test
  sets, both reported: ``balanced``, every positive test patch and as many
  negatives drawn with a fixed seed (avalanche-cnn-sinha's 50/50 test), and
  ``unbalanced``, every test patch (avalanche-vae's test). Metrics: accuracy,
  balanced accuracy, precision, recall, F1. A map compared with patch
  classifiers is scored on the same patches by its maximum over the crop
  (any detection in it).

The result is printed as a table (one row per prediction and test set) and
written as JSON.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from sarcube.config import read_yaml
from sarcube.datacube import chips, schema
from sarcube.datacube.chips import Window
from sarcube.datacube.chips.selection import balanced_subset
from sarcube.datacube.chips.splits import split_mask
from sarcube.datacube.label_events import label_events
from sarcube.datacube.predictions import (
    ATTR_CHIP,
    ATTR_LEVEL,
    ATTR_PRESET,
    ATTR_TASK,
    ATTR_WINDOW,
    SCENE_KEY,
    describe_operating_point,
    pair_keys,
    predicted_keys,
    prediction_threshold,
    resolve_prediction,
    run_name,
)
from sarcube.errors import CheckpointError, InputError, MissingVariableError
from sarcube.models.config import LEVEL_PATCH, LEVEL_PIXEL
from sarcube.progress import bar_disable

log = logging.getLogger(__name__)

#: the two test sets of a patch evaluation: Sinha's 50/50 and every test patch
BALANCED, UNBALANCED = "balanced", "unbalanced"
TEST_SETS = (BALANCED, UNBALANCED)
#: seed of the negatives drawn into the balanced test set (the same for every compared prediction)
BALANCED_TEST_SEED = 0
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
#: side of the tiles a pair's map is scored in (the storage chunk)
TILE_PX = schema.CHUNK_YX
#: the metrics each preset family reports on maps (its paper's table), by preset-name prefix
PRESET_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("landslide", ("auprc", "f1", "precision", "recall")),
    ("glacier", ("iou", "precision", "recall", "f1")),
    ("avalanche-fcn", ("f1", "precision", "recall", "iou", "auprc", "bbox_iou", "object_tp", "object_fn", "object_fp")),
)
MAP_DEFAULT_COLUMNS = PRESET_COLUMNS[-1][1]
#: what patch evaluations report: avalanche-cnn-sinha Tab. I and avalanche-vae Tab. 1 together
PATCH_COLUMNS = ("accuracy", "balanced_accuracy", "precision", "recall", "f1")


def columns_for(presets: Sequence[str], patch_level: bool) -> list[str]:
    """The metrics the compared presets' papers report; a baseline shows those of what it is compared to."""
    if patch_level:
        return list(PATCH_COLUMNS)
    columns: list[str] = []
    for preset in presets:
        cols = next((c for prefix, c in PRESET_COLUMNS if preset.startswith(prefix)), ())
        columns += [c for c in cols if c not in columns]
    return columns or list(MAP_DEFAULT_COLUMNS)


def read_split(var: xr.DataArray, label: xr.DataArray | None = None) -> chips.SplitPlan:
    """The split of the run that made a prediction (``split.json`` in its run directory).

    Refused when it puts one label event in two splits, as recorded or as ``label``'s events fall into it.
    """
    run = var.attrs.get(schema.ATTR_RUN)
    if not run:
        raise CheckpointError(
            f"{var.name!r} has no {schema.ATTR_RUN!r} attribute: predict it with `sarcube predict --run RUN_DIR`"
        )
    from sarcube.pipelines.runs import SPLIT_FILE

    path = Path(run) / SPLIT_FILE
    if not path.exists():
        raise CheckpointError(
            f"{var.name!r} was made by run {run!r}, which has no {SPLIT_FILE}: restore the run directory (or "
            "re-predict with a run that has one)"
        )
    plan = chips.SplitPlan.from_json(path.read_text())
    events = label_events(label) if label is not None else None
    fix = "retrain the run with `sarcube train` (it keeps each event in one split) and predict again"
    chips.check_split(plan, events, f"{var.name!r}: {str(path)!r}", fix)
    return plan


@dataclass(frozen=True)
class PatchRule:
    """How a run cut and labelled its chips, so its test patches are cut and labelled alike."""

    #: the run's chip grid and selection rules (``preset.yaml``), without overlap (the grid ``predict`` paints)
    chips: chips.ChipSpec
    #: side of the centre crop the network sees (``window_px``: the run's ``augment.crop`` or the chip)
    input_size: int


def patch_rule(var: xr.DataArray) -> PatchRule:
    """The :class:`PatchRule` of the run that made a patch prediction (its ``preset.yaml`` and attrs)."""
    from sarcube.pipelines.presets import preset_from_dict
    from sarcube.pipelines.runs import PRESET_FILE

    run = Path(str(var.attrs.get(schema.ATTR_RUN, "")))
    path = run / PRESET_FILE
    if not path.exists():
        raise CheckpointError(
            f"{var.name!r} was made by run {str(run)!r}, which has no {PRESET_FILE}: restore the run directory"
        )
    preset = preset_from_dict(read_yaml(path, "run preset"), f"run preset {str(path)!r}")
    size = int(var.attrs.get(ATTR_CHIP, preset.chips.size))
    spec = dataclasses.replace(preset.chips, size=size, overlap=0, max_chips=0)
    return PatchRule(spec, int(var.attrs.get(ATTR_WINDOW, size)))


def _split_id(plan: chips.SplitPlan) -> str:
    return hashlib.sha256(plan.to_json().encode()).hexdigest()[:12]


def _scored_pairs(ds: xr.Dataset, var: xr.DataArray) -> list[int | None]:
    """The pairs a prediction holds (``None``: the single (y, x) scene)."""
    held = set(predicted_keys(var))
    if schema.PAIR in var.dims:
        return [p for p, k in enumerate(pair_keys(ds)) if k in held]
    return [None] if (SCENE_KEY in held or not held) else []


def _pair_arrays(
    ds: xr.Dataset, var: xr.DataArray, pair: int | None, window: Window | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(probability float32, label uint8) of one pair, (y, x), in ``window`` (y0, y1, x0, x1) or the whole scene."""
    window = window or (0, ds.sizes[schema.Y], 0, ds.sizes[schema.X])
    sel = {schema.PAIR: pair} if pair is not None else {}
    space = chips.window_isel(window)
    prob = np.asarray(var.variable.isel({**sel, **space}).values, dtype=np.float32)
    return prob, chips.read_labels(ds, pair, window)


def observed(ds: xr.Dataset, pair: int | None, window: Window | None = None) -> np.ndarray | None:
    """(y, x) bool: pixels both acquisitions of ``pair`` observed (finite VV), in ``window`` (y0, y1, x0, x1)
    or the whole scene; None for static maps."""
    if pair is None or schema.VV not in ds.data_vars or schema.REFERENCE_TIME not in ds.coords:
        return None
    vv = ds[schema.VV]
    if window is not None:
        vv = vv.isel(chips.window_isel(window))
    ref, act = (ds[c].values[pair] for c in (schema.REFERENCE_TIME, schema.ACTIVITY_TIME))
    return np.isfinite(vv.sel({schema.TIME: ref}).values) & np.isfinite(vv.sel({schema.TIME: act}).values)


def patch_scores(
    ds: xr.Dataset, var: xr.DataArray, plan: chips.SplitPlan, split: str, rule: PatchRule, pairs: Sequence[int | None]
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Score (N,) and label (N,) of every test patch of ``pairs``, and the pairs that held one.

    Labels are 0/1 (patches whose crop holds no labelled pixel are left out),
    scores NaN where the prediction holds none. A patch prediction's score is
    the value painted over the patch; a map's is its maximum over the crop.
    """
    import torch

    from sarcube.models.augment import center_crop
    from sarcube.models.training import chip_targets

    spec, size = rule.chips, rule.chips.size
    ny, nx = ds.sizes[schema.Y], ds.sizes[schema.X]
    pos, valid = chips.chip_counts(ds[schema.LABEL], spec)
    table = chips.chip_table(pairs, pos, valid, plan, spec, ny, nx)
    table = table.take(np.flatnonzero(table.split == chips.SPLITS.index(split)))
    from_map = var.attrs.get(ATTR_LEVEL) != LEVEL_PATCH
    scores, labels, used = [], [], []
    for p in pairs:
        rows = np.flatnonzero(table.pair == (-1 if p is None else p))
        if rows.size == 0:
            continue
        prob, label = _pair_arrays(ds, var, p)
        oy, ox = table.y0[rows], table.x0[rows]
        crops = torch.from_numpy(chips.cut_chips(label, oy, ox, size))
        crops = center_crop(crops, crops, rule.input_size)[0]
        labels.append(chip_targets(crops, spec.min_positive_pixels).numpy())
        if from_map:
            window = torch.from_numpy(chips.cut_chips(prob, oy, ox, size))
            window = center_crop(window, window, rule.input_size)[0].numpy()
            best = np.where(np.isfinite(window), window, -np.inf).max(axis=(1, 2))
            scores.append(np.where(np.isfinite(best), best, np.nan))
        else:
            scores.append(prob[oy + size // 2, ox + size // 2])
        used.append(-1 if p is None else int(p))
    if not used:
        return np.zeros(0), np.zeros(0, dtype=np.uint8), []
    score, label = np.concatenate(scores).astype(np.float64), np.concatenate(labels).astype(np.uint8)
    keep = label != schema.LABEL_UNKNOWN
    return score[keep], label[keep], used


def _patch_metrics(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, Any]:
    from sarcube.models.metrics import MetricAccumulator

    acc = MetricAccumulator(threshold=threshold, objects=False, auprc=True)
    acc.update(scores, labels)
    out: dict[str, Any] = {k: (float(v) if isinstance(v, float) else int(v)) for k, v in acc.compute().items()}
    out["n_patches"] = int(labels.size)
    out["n_positive"], out["n_negative"] = int((labels == 1).sum()), int((labels == 0).sum())
    return out


def _score_patches(
    ds: xr.Dataset, var: xr.DataArray, plan: chips.SplitPlan, split: str, thr: float, rule: PatchRule, seed: int
) -> dict[str, Any]:
    scores, labels, used = patch_scores(ds, var, plan, split, rule, _scored_pairs(ds, var))
    scored = np.isfinite(scores)
    scores, labels = scores[scored], labels[scored]
    if not labels.size:
        raise InputError(
            f"{var.name!r}: no {split!r} patch of its run ({plan.describe()}) is labelled and predicted; "
            "predict the held-out pairs or choose --split"
        )
    balanced = balanced_subset(labels == 1, seed)
    return {
        "test_sets": {
            BALANCED: _patch_metrics(scores[balanced], labels[balanced], thr),
            UNBALANCED: _patch_metrics(scores, labels, thr),
        },
        "pairs": used,
        "scored_on": "patches",
        "n_scored": int(labels.size),
        "patch_px": rule.chips.size,
        "input_px": rule.input_size,
        "min_positive_pixels": rule.chips.min_positive_pixels,
        "balance_seed": int(seed),
        "patch_score": "max over the crop" if var.attrs.get(ATTR_LEVEL) != LEVEL_PATCH else "the patch's probability",
    }


def scored_label(
    ds: xr.Dataset, pair: int | None, label: np.ndarray, mask: np.ndarray, window: Window | None = None
) -> np.ndarray:
    """``label`` (uint8) as evaluate scores it: unknown outside ``mask`` (a split's pixels of the pair) and where
    either acquisition of ``pair`` observed nothing (``window``: the part of the scene they are)."""
    seen = observed(ds, pair, window)
    return np.where(mask if seen is None else mask & seen, label, schema.LABEL_UNKNOWN).astype(np.uint8)


def _score_pixels(
    ds: xr.Dataset, var: xr.DataArray, plan: chips.SplitPlan, split: str, threshold_of: Any
) -> dict[str, Any]:
    """Pixel metrics over the prediction's pairs in ``split``, each pair binarized at ``threshold_of(pair)``.

    Each pair is read one storage chunk at a time (objects merged across chunk borders): memory for a chunk, not
    the scene."""
    from tqdm.auto import tqdm

    from sarcube.models.components import tile_windows
    from sarcube.models.metrics import AUPRC_BINS, MetricAccumulator

    ny, nx = ds.sizes[schema.Y], ds.sizes[schema.X]
    windows = tile_windows(ny, nx, TILE_PX)
    pairs = _scored_pairs(ds, var)
    # streamed AUPRC (binned, within ~1e-6 of exact): no score is kept across pairs
    acc = MetricAccumulator(objects=True, auprc=True, auprc_bins=AUPRC_BINS)  # each pair at its own threshold
    scored_pairs, units = [], 0
    for p in tqdm(pairs, desc=f"evaluate {var.name}", leave=False, disable=bar_disable(len(pairs) < 2)):
        if not any(split_mask(plan, p, split, (ny, nx), w).any() for w in windows):
            continue

        def read(w: Window, p: int | None = p) -> Any:
            prob, label = _pair_arrays(ds, var, p, w)
            return prob, scored_label(ds, p, label, split_mask(plan, p, split, (ny, nx), w), w)

        before = sum(acc.counts.values())
        acc.update_tiled(read, windows, threshold=threshold_of(p))
        units += sum(acc.counts.values()) - before  # the pixels labelled 0/1 and predicted
        scored_pairs.append(-1 if p is None else int(p))
    if not scored_pairs:
        raise InputError(
            f"{var.name!r}: none of its pairs lies in the {split!r} split of its run ({plan.describe()}); "
            "predict the held-out pairs or choose --split"
        )
    result: dict[str, Any] = {k: (float(v) if isinstance(v, float) else int(v)) for k, v in acc.compute().items()}
    return {**result, "pairs": scored_pairs, "scored_on": "pixels", "n_scored": units}


def score_prediction(
    ds: xr.Dataset,
    name: str,
    *,
    split: str,
    threshold: float | None,
    rule: PatchRule | None = None,
    balance_seed: int = BALANCED_TEST_SEED,
    operating_point: str | None = None,
) -> dict[str, Any]:
    """Metrics of one prediction on its run's ``split``: per pixel, or per patch of ``rule`` (module docstring).

    Pixels are binarized at ``threshold`` when given, else at the prediction's recorded operating point
    (``operating_point`` overrides which: ``threshold``, the run's, or ``rate``, each pair's own;
    :mod:`sarcube.pipelines.operating_point`)."""
    var = ds[name]
    if schema.LABEL not in ds.data_vars:
        raise MissingVariableError(f"evaluation needs {schema.LABEL!r} in the cube; {schema.hint_for([schema.LABEL])}")
    plan = read_split(var, ds[schema.LABEL])
    thr = prediction_threshold(var, threshold)
    keys = pair_keys(ds)

    def threshold_of(pair: int | None) -> float:
        key = keys[pair] if pair is not None else None
        return prediction_threshold(var, threshold, key, operating_point)

    if rule is None:
        result = _score_pixels(ds, var, plan, split, threshold_of)
    else:
        result = _score_patches(ds, var, plan, split, thr, rule, balance_seed)
    result.update(
        {
            "preset": str(var.attrs.get(ATTR_PRESET, "")),
            "task": str(var.attrs.get(ATTR_TASK, "")),
            "level": str(var.attrs.get(ATTR_LEVEL, LEVEL_PIXEL)),
            "threshold": thr,
            "operating_point": describe_operating_point(var, threshold, operating_point if rule is None else None),
            "split": plan.describe(),
            "split_id": _split_id(plan),
            "run": str(var.attrs.get(schema.ATTR_RUN, "")),
        }
    )
    return result


def _cell(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    return f"{int(value)}" if kind == "int" else f"{100.0 * float(value):.2f}"


def _render(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int) -> list[str]:
    """Aligned text table: the first ``left`` columns left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        aligned = (c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
        return "  ".join(aligned)

    return [line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


def format_table(results: Mapping[str, Mapping[str, Any]], columns: Sequence[str], split: str) -> str:
    """Predictions as rows (per test set for patches), the presets' metrics as columns (the papers' Tab. I style)."""
    first = next(iter(results.values()))
    patches = first["scored_on"] == "patches"
    metric_headers = [COLUMNS[c][0] for c in columns]
    if patches:
        headers = ["Method", "Test set", "Patches (+/-)", *metric_headers]
        rows = [
            [run_name(n), ts, f"{r['test_sets'][ts]['n_positive']}/{r['test_sets'][ts]['n_negative']}"]
            + [_cell(r["test_sets"][ts].get(c), COLUMNS[c][1]) for c in columns]
            for ts in TEST_SETS
            for n, r in results.items()
        ]
        lines = _render(headers, rows, 2)
        cut = ", ".join(
            f"{run_name(n)} {r['patch_px']}" + (f"->{r['input_px']}" if r["input_px"] != r["patch_px"] else "") + " px"
            for n, r in results.items()
        )
        positive = sorted({r["min_positive_pixels"] for r in results.values()})
        lines.append(
            f"{split} split, scored per patch (chip -> centre crop: {cut}; positive with >= "
            f"{'/'.join(map(str, positive))} debris px in the crop); {BALANCED}: every positive test patch and as "
            f"many negatives drawn with seed {first['balance_seed']}; {UNBALANCED}: every test patch"
        )
    else:
        rows = [[run_name(n)] + [_cell(r.get(c), COLUMNS[c][1]) for c in columns] for n, r in results.items()]
        lines = _render(["Method", *metric_headers], rows, 1)
        lines.append(f"{split} split, scored on {first['scored_on']}")
    thresholds = ", ".join(f"{run_name(n)} {r['operating_point']}" for n, r in results.items())
    lines[-1] += f"; detections at: {thresholds}"
    if len({r["split_id"] for r in results.values()}) > 1:
        lines.append("note: the predictions come from runs with different splits, so their test sets differ")
    return "\n".join(lines)


def score_predictions(
    cube: str | Path,
    preds: Sequence[str],
    *,
    split: str = chips.TEST,
    threshold: float | None = None,
    storage_options: Mapping[str, Any] | None = None,
    balance_seed: int = BALANCED_TEST_SEED,
    operating_point: str | None = None,
) -> dict[str, Any]:
    """Score predictions side by side on their runs' ``split``; returns the results.

    The returned dict holds ``split``, ``scored_on`` (pixels or patches),
    ``columns``, ``table`` (the printed text) and ``predictions``: name ->
    metrics and provenance (for patches, the metrics of each test set under
    ``test_sets``: ``balanced`` and ``unbalanced``). When any prediction is a
    patch classifier's, all are scored on patches: each patch prediction with
    its own run's rule, maps with the first one's.
    """
    if split not in chips.SPLITS:
        raise InputError(f"--split {split!r}: use one of {', '.join(chips.SPLITS)}")
    if not preds:
        raise InputError("give at least one prediction: --pred NAME (see `sarcube info` for pred_* variables)")
    ds = schema.open_cube(cube, storage_options=storage_options)
    names = list(dict.fromkeys(resolve_prediction(ds, p) for p in preds))
    rules = {n: patch_rule(ds[n]) for n in names if ds[n].attrs.get(ATTR_LEVEL) == LEVEL_PATCH}
    reference = next(iter(rules.values()), None)
    results = {
        n: score_prediction(
            ds, n, split=split, threshold=threshold, rule=rules.get(n, reference), balance_seed=balance_seed,
            operating_point=operating_point,
        )
        for n in names
    }
    columns = columns_for([r["preset"] for r in results.values()], reference is not None)
    table = format_table(results, columns, split)
    scored_on = "patches" if reference is not None else "pixels"
    out = {
        "cube": str(cube), "split": split, "scored_on": scored_on, "columns": columns, "table": table,
        "predictions": results,
    }
    return out
