"""Operating points of a map prediction: the run's probability threshold, or a flagged share per pair.

A network's probabilities move from pair to pair with the pair's confounders
(a pair full of refreezing wet snow scores higher everywhere), so one
probability threshold tuned on the validation pairs need not carry over to a
test pair. The flagged-rate rule thresholds each pair at its own top share
of observed pixels (:func:`sarcube.models.metrics.rate_threshold`), as a
radar detector holds a constant false-alarm rate; the share is tuned on the
run's validation pairs (:func:`sarcube.models.metrics.best_rate`), whose
labels only the tuning reads. A new, unlabelled pair gets its threshold from
its own scores.

``predict --operating-point rate`` records the rule in the prediction
(``flag_rate`` and ``pair_thresholds``, :mod:`sarcube.datacube.predictions`);
``auto`` tunes both and keeps the one that carries better to a pair it was
not tuned on. Both rules are fitted to the validation pairs they would be
judged on (the run's threshold, and the checkpoint it belongs to, were chosen
on the validation chips), so their F1 on those pairs flatters the more flexible
fit. With two or more validation pairs the choice is made leave one pair out
(:func:`held_out_f1`): each rule is tuned on the other validation pairs and
counted on the one left out, the counts summed over the pairs, as a test pair
is new to both. With one validation pair it falls back to the in-sample F1.
``evaluate``, ``export``, ``report``,
``quicklook`` and ``timeseries`` then threshold each pair as recorded. Not a
step: ``predict`` calls it, and it reads nothing but the cube and the run's split.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from sarcube.datacube import chips, schema
from sarcube.datacube.predictions import (
    ATTR_FLAG_RATE,
    ATTR_OPERATING_POINT,
    ATTR_OPERATING_POINT_F1,
    ATTR_PAIR_THRESHOLDS,
    OP_AUTO,
    OP_RATE,
    OP_THRESHOLD,
    OPERATING_POINTS,
    PAIRS_ALL,
    PAIRS_NEW,
    pair_keys,
    select_pairs,
)
from sarcube.errors import InputError

log = logging.getLogger(__name__)

#: reads a pair's (y, x) scores, float32
ReadPair = Callable[[int], np.ndarray]


def check_operating_point(operating_point: str, plan: chips.SplitPlan, ds: xr.Dataset, level: str) -> list[int]:
    """The run's validation pairs a per-pair operating point is tuned on; [] for ``threshold``.

    Refused, in one line, where it cannot be tuned: patch predictions, no labels, no whole validation pairs.
    """
    if operating_point not in OPERATING_POINTS:
        raise InputError(f"--operating-point {operating_point!r}: use {', '.join(OPERATING_POINTS)}")
    if operating_point == OP_THRESHOLD:
        return []
    fix = "use --operating-point threshold"
    if level != "pixel":
        raise InputError(f"--operating-point {operating_point}: a patch run scores one probability per patch; {fix}")
    if schema.PAIR not in ds.dims or schema.LABEL not in ds.data_vars:
        raise InputError(
            f"--operating-point {operating_point} tunes a flagged share on the run's labelled validation pairs, "
            f"and the cube has no per-pair {schema.LABEL!r}: add it (`sarcube add-layer --labels`) or {fix}"
        )
    code = chips.SPLITS.index(chips.VAL)
    val = sorted(p for p, c in plan.pair_split.items() if c == code)
    if not val:
        raise InputError(
            f"--operating-point {operating_point} needs validation pairs held out whole (a `pairs` split with a "
            f"validation window); the run's split is {plan.describe()}: {fix}"
        )
    return val


def plan_pairs(
    operating_point: str, run_dir: str | Path, ds: xr.Dataset, level: str, pairs: str | Sequence[int]
) -> tuple[chips.SplitPlan | None, list[int], str | list[int]]:
    """The run's split, the validation pairs to tune on ([] for ``threshold``) and the pairs to predict: the
    selection plus those validation pairs (``all`` and ``new`` as given: they hold them)."""
    from sarcube.pipelines.runs import SPLIT_FILE

    path = Path(run_dir) / SPLIT_FILE
    plan = chips.SplitPlan.from_json(path.read_text()) if path.exists() else None
    if operating_point != OP_THRESHOLD and plan is None:
        raise InputError(f"--operating-point {operating_point}: run {str(run_dir)!r} has no {SPLIT_FILE}")
    val = check_operating_point(operating_point, plan, ds, level) if plan is not None else []
    if val and pairs not in (PAIRS_ALL, PAIRS_NEW):
        pairs = sorted(set(select_pairs(ds, pairs)) | set(val))
    return plan, val, pairs


def held_pairs(ds: xr.Dataset, keys: Sequence[str]) -> dict[int, str]:
    """Pair index -> key of the cube's pairs among ``keys`` (what a prediction holds)."""
    held = set(keys)
    return {p: k for p, k in enumerate(pair_keys(ds)) if k in held}


def observed_scores(ds: xr.Dataset, pair: int, values: np.ndarray) -> np.ndarray:
    """A pair's scores, NaN where either of its acquisitions observed nothing (those are neither ranked nor scored)."""
    from sarcube.pipelines.scoring import observed

    seen = observed(ds, pair)
    return np.where(seen, values, np.nan) if seen is not None else values


def _validation_images(
    ds: xr.Dataset, plan: chips.SplitPlan, val_pairs: Sequence[int], read: ReadPair
) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for pair in val_pairs:
        scores = observed_scores(ds, pair, read(pair))
        label = np.asarray(ds[schema.LABEL].isel({schema.PAIR: pair}).values, dtype=np.uint8)
        keep = chips.split_mask(plan, pair, chips.VAL, label.shape) & np.isfinite(scores)
        out.append((scores, np.where(keep, label, schema.LABEL_UNKNOWN).astype(np.uint8)))
    return out


def _has_positives(ds: xr.Dataset, pairs: Sequence[int]) -> bool:
    label = ds[schema.LABEL].isel({schema.PAIR: list(pairs)})
    return bool((label == schema.LABEL_YES).any())


def tune(
    ds: xr.Dataset, plan: chips.SplitPlan, val_pairs: Sequence[int], read: ReadPair, threshold: float
) -> tuple[float, dict[str, float]]:
    """The flagged share with the best validation F1, and the validation F1 of each operating point
    (:data:`OP_RATE` at that share, :data:`OP_THRESHOLD` at ``threshold``), with their leave-one-pair-out F1s
    (:func:`held_out_f1`) under ``rate_held_out`` and ``threshold_held_out`` where there are two or more pairs."""
    from sarcube.models import metrics

    images = _validation_images(ds, plan, val_pairs, read)
    if not any((label == 1).any() for _, label in images):
        raise InputError(
            f"the run's validation pairs {list(val_pairs)} hold no labelled positive pixel: no flagged share can be "
            "tuned on them; use --operating-point threshold"
        )
    rate, rate_f1 = metrics.best_rate(images)
    at_threshold = metrics.MetricAccumulator(threshold=threshold, objects=False, auprc=False)
    for scores, label in images:
        at_threshold.update(scores, label)
    f1 = {OP_RATE: rate_f1, OP_THRESHOLD: float(at_threshold.compute()["f1"])}
    held_out = held_out_f1(images)
    if held_out is not None:
        f1.update({f"{k}{HELD_OUT}": v for k, v in held_out.items()})
    return rate, f1


#: suffix of the leave-one-pair-out F1s in :data:`~sarcube.datacube.predictions.ATTR_OPERATING_POINT_F1`
HELD_OUT = "_held_out"


def held_out_f1(images: Sequence[tuple[np.ndarray, np.ndarray]]) -> dict[str, float] | None:
    """Leave-one-pair-out F1 of both rules over validation ``images`` ((scores, labels 0/1/255) per pair).

    For each pair, the flagged share (:func:`~sarcube.models.metrics.best_rate`) and one probability
    threshold (:func:`~sarcube.models.metrics.best_threshold` over the pooled labelled scores) are tuned on
    the other pairs and counted on it; the counts are summed over the pairs. None with fewer than two pairs,
    or when no left-out fold has a labelled positive in its other pairs to tune on.
    """
    from sarcube.models import metrics

    if len(images) < 2:
        return None
    held = {rule: metrics.MetricAccumulator(objects=False, auprc=False) for rule in (OP_RATE, OP_THRESHOLD)}
    folds = 0
    for i, (scores, label) in enumerate(images):
        others = [im for j, im in enumerate(images) if j != i]
        if not any(((lab == schema.LABEL_YES) & np.isfinite(s)).any() for s, lab in others):
            continue  # nothing to tune on: this pair is not a fold
        folds += 1
        rate, _ = metrics.best_rate(others)
        # best_threshold drops NaN scores and unlabelled (255) pixels itself
        threshold, _ = metrics.best_threshold(np.concatenate([s.ravel() for s, _ in others]),
                                              np.concatenate([lab.ravel() for _, lab in others]))
        held[OP_RATE].update(scores, label, threshold=metrics.rate_threshold(scores, rate))
        held[OP_THRESHOLD].update(scores, label, threshold=threshold)
    if not folds:
        return None
    return {rule: float(acc.compute()["f1"]) for rule, acc in held.items()}


def choose(f1: Mapping[str, float]) -> str:
    """``auto``'s rule: the higher leave-one-pair-out F1 where :func:`tune` could hold pairs out, else the
    higher F1 on the validation pairs; ties keep the run's threshold."""
    key = HELD_OUT if f"{OP_RATE}{HELD_OUT}" in f1 else ""
    return OP_RATE if f1[f"{OP_RATE}{key}"] > f1[f"{OP_THRESHOLD}{key}"] else OP_THRESHOLD


def pair_thresholds(ds: xr.Dataset, pairs: Sequence[int], keys: Sequence[str], read: ReadPair, rate: float) -> dict:
    """Each pair's threshold at flagged share ``rate`` of its observed pixels (None where it has no finite score)."""
    from sarcube.models import metrics

    out: dict[str, float | None] = {}
    for pair, key in zip(pairs, keys, strict=True):
        value = metrics.rate_threshold(observed_scores(ds, pair, read(pair)), rate)
        out[key] = float(value) if np.isfinite(value) else None
    return out


def operating_point_attrs(
    operating_point: str,
    ds: xr.Dataset,
    plan: chips.SplitPlan,
    val_pairs: Sequence[int],
    predicted: Mapping[int, str],
    read: ReadPair,
    threshold: float,
) -> dict[str, Any]:
    """The attrs recording ``operating_point`` for a prediction holding ``predicted`` (pair -> key); {} for
    ``threshold``. The validation pairs must be among ``predicted``."""
    if operating_point == OP_THRESHOLD:
        return {}
    missing = sorted(set(val_pairs) - set(predicted))
    if missing:
        raise InputError(f"validation pairs {missing} are not predicted: predict them too (e.g. --pairs all)")
    if operating_point == OP_AUTO and not _has_positives(ds, val_pairs):
        log.warning("the validation pairs %s hold no labelled positive: keeping the run's threshold", list(val_pairs))
        return {ATTR_OPERATING_POINT: OP_THRESHOLD}
    rate, f1 = tune(ds, plan, val_pairs, read, threshold)
    chosen = operating_point if operating_point != OP_AUTO else choose(f1)
    pairs = sorted(predicted)
    table = pair_thresholds(ds, pairs, [predicted[p] for p in pairs], read, rate)
    return {
        ATTR_OPERATING_POINT: chosen,
        ATTR_FLAG_RATE: rate,
        ATTR_PAIR_THRESHOLDS: json.dumps(table),
        ATTR_OPERATING_POINT_F1: json.dumps(f1),
    }


def record_operating_point(
    cube: str | Path,
    name: str,
    operating_point: str,
    run_dir: str | Path,
    storage_options: Mapping[str, Any] | None = None,
    wait_s: float = 0.0,
) -> dict[str, Any]:
    """Tune ``operating_point`` on the maps prediction ``name`` already holds, with the split of ``run_dir`` (the
    run that made it), and record it in the variable's attributes, under the cube's write lock; nothing is
    predicted. What ``predict --pairs new`` does when every pair is there, without predicting missing pairs.
    Returns the attrs written."""
    from sarcube.datacube import lock
    from sarcube.datacube.predictions import ATTR_LEVEL, predicted_keys

    with lock.writer(cube, "sarcube predict --operating-point", wait_s=wait_s, storage_options=storage_options):
        ds = schema.open_cube(cube, storage_options=storage_options)
        if name not in ds.data_vars:
            raise InputError(f"the cube has no {name!r} to record an operating point on: predict it first")
        var = ds[name]
        plan, val, _ = plan_pairs(operating_point, run_dir, ds, str(var.attrs.get(ATTR_LEVEL, "pixel")), PAIRS_ALL)
        if plan is None or not val:
            return {}
        return retune_existing(cube, ds, name, operating_point, plan, val, predicted_keys(var),
                               float(var.attrs[schema.ATTR_THRESHOLD]), storage_options)


def retune_existing(
    cube: str | Path,
    ds: xr.Dataset,
    name: str,
    operating_point: str,
    plan: chips.SplitPlan,
    val_pairs: Sequence[int],
    predicted: Sequence[str],
    threshold: float,
    storage_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Tune ``operating_point`` on the maps of ``name`` (holding the pairs keyed ``predicted``) and write it into
    the variable's attributes; the caller holds the cube's write lock. Returns the attrs written."""
    from sarcube.datacube import store

    attrs = operating_point_attrs(operating_point, ds, plan, val_pairs, held_pairs(ds, predicted),
                                  lambda p: ds[name].isel({schema.PAIR: p}).values, threshold)
    store.update_variable_attrs(cube, name, attrs, storage_options)
    return attrs


__all__ = [
    "HELD_OUT", "check_operating_point", "choose", "held_out_f1", "held_pairs", "observed_scores",
    "operating_point_attrs", "pair_thresholds", "plan_pairs", "record_operating_point", "retune_existing",
    "tune",
]
