"""The ``pred_<run>`` contract: what a prediction variable holds and how ``predict`` plans one.

A prediction lists the pieces it holds in its ``predicted_pairs`` attribute:
pair keys ``<reference>/<activity>`` (ISO seconds, so the record survives a
re-indexing of the cube's pairs), or :data:`SCENE_KEY` for a (y, x)
prediction. ``predict`` writes these attrs and ``evaluate``, ``export`` and
``quicklook`` read them, all through this module. The plan of a predict call
(which pairs to compute, what to keep, the fingerprint that lets a rerun
resume) is pure and lives here too; the network runs in
:mod:`sarcube.models.inference`. No torch here.

How the values become detections is recorded in ``operating_point``
(:data:`ATTR_OPERATING_POINT`): ``threshold`` (the run's ``threshold`` for
every pair) or ``rate`` (each pair at its own threshold, ``pair_thresholds``,
flagging the top ``flag_rate`` share of its observed pixels; tuned by
:mod:`sarcube.pipelines.operating_point`); :func:`prediction_threshold` gives
a pair's.

What the values mean is recorded in ``prediction_level`` (:data:`ATTR_LEVEL`):
``pixel``, a probability map (windows slid and blended); or ``patch``, a patch
classifier's (avalanche-cnn, avalanche-vae, Sinha's baseline rule) one
probability per chip of the non-overlapping grid of its training chips
(origins 0, ``chip_px``, 2 ``chip_px``, ...), painted over the chip, computed
on the chip's centre ``window_px`` crop as validation computed it, NaN outside
full chips. The variable keeps the dims of ``label``, so every reader of maps
(export, quicklook) reads it, and ``evaluate`` reads one score per patch back.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from sarcube.datacube import schema
from sarcube.errors import CubeExistsError, InputError, MissingVariableError, UnknownVariableError

#: ``--pairs`` choices besides a date range or explicit indices
PAIRS_ALL = "all"
PAIRS_NEW = "new"
#: key of the single scene of a prediction without pairs (labels on (y, x))
SCENE_KEY = "scene"
#: extra attrs of a prediction (beside the schema's model/checkpoint/threshold/run/tta/created/predicted_pairs)
ATTR_PRESET = "preset"
ATTR_TASK = "task"
ATTR_WINDOW = "window_px"
ATTR_CHIP = "chip_px"
#: ``pixel`` (a map) or ``patch`` (one probability per chip of ``chip_px``, painted over it); absent = pixel
ATTR_LEVEL = "prediction_level"
#: how a model with an input mask (PAR attention) met TTA: ``once`` per window, rotated with it, or
#: ``per-transform``; absent where the model has no mask or without TTA
ATTR_MASK_TTA = "mask_tta"
#: what predictions made before :data:`ATTR_MASK_TTA` was recorded did
MASK_TTA_UNRECORDED = "per-transform"
#: probability threshold of a prediction whose run recorded none
DEFAULT_THRESHOLD = 0.5
#: how a map is turned into detections (``predict --operating-point``): :data:`OP_THRESHOLD`, the run's
#: probability ``threshold`` for every pair; or :data:`OP_RATE`, each pair thresholded at its own top
#: ``flag_rate`` share of observed pixels (tuned on the run's validation pairs), the thresholds in
#: ``pair_thresholds`` (JSON: pair key -> threshold, null where a pair has no finite score); absent = threshold
ATTR_OPERATING_POINT = "operating_point"
ATTR_FLAG_RATE = "flag_rate"
ATTR_PAIR_THRESHOLDS = "pair_thresholds"
#: JSON: validation F1 of each operating point predict tuned (``auto`` keeps the higher)
ATTR_OPERATING_POINT_F1 = "operating_point_val_f1"
OP_THRESHOLD = "threshold"
OP_RATE = "rate"
OP_AUTO = "auto"
OPERATING_POINTS = (OP_THRESHOLD, OP_RATE, OP_AUTO)


def run_name(name: str) -> str:
    """The run part of a ``pred_<run>`` variable name; any other name unchanged."""
    return name[len(schema.PRED_PREFIX):] if schema.is_prediction(name) else name


def resolve_prediction(ds: xr.Dataset, pred: str) -> str:
    """The variable name of ``pred`` given as ``NAME`` or ``pred_NAME``; raise naming the ones there are."""
    name = pred if schema.is_prediction(pred) else schema.prediction_name(pred)
    if name not in ds.data_vars:
        there = sorted(str(v) for v in ds.data_vars if schema.is_prediction(str(v)))
        none_yet = "the cube has none yet: run `sarcube predict` first"
        hint = f"predictions in the cube: {', '.join(there)}" if there else none_yet
        raise UnknownVariableError(f"prediction {pred!r} is not in the cube; {hint}")
    return name


def prediction_threshold(
    var: xr.DataArray, threshold: float | None, key: str | None = None, operating_point: str | None = None
) -> float:
    """The detection threshold of ``var`` (of its pair ``key``, for a per-pair operating point).

    ``threshold`` if given (every pair); else, where the operating point (``operating_point``, default
    the one ``predict`` recorded) is :data:`OP_RATE`, the pair's own threshold (``inf``, nothing
    detected, where the pair has no finite score); else the run's threshold, else 0.5. A given or
    recorded probability threshold must lie in (0, 1).
    """
    if threshold is None and key is not None and _operating_point(var, operating_point) == OP_RATE:
        value = _pair_table(var).get(key, float("nan"))
        if np.isnan(value):
            raise InputError(
                f"{var.name!r} holds no per-pair threshold for pair {key}: predict it with "
                "`sarcube predict --operating-point rate` (or give --threshold)"
            )
        return value
    value = float(var.attrs.get(schema.ATTR_THRESHOLD, DEFAULT_THRESHOLD)) if threshold is None else float(threshold)
    if not 0.0 < value < 1.0:
        raise InputError(f"threshold {value} must lie strictly between 0 and 1 (e.g. --threshold 0.5)")
    return value


def _operating_point(var: xr.DataArray, operating_point: str | None) -> str:
    chosen = operating_point or str(var.attrs.get(ATTR_OPERATING_POINT, OP_THRESHOLD))
    if chosen not in (OP_THRESHOLD, OP_RATE):
        raise InputError(f"operating point {chosen!r}: use {OP_THRESHOLD} or {OP_RATE}")
    if chosen == OP_RATE and ATTR_PAIR_THRESHOLDS not in var.attrs:
        raise InputError(
            f"{var.name!r} has no per-pair thresholds: predict it with `sarcube predict --operating-point rate`"
        )
    return chosen


def pair_thresholds(var: xr.DataArray) -> dict[str, float]:
    """The per-pair thresholds ``predict --operating-point rate`` recorded (``inf`` for a pair without scores)."""
    return dict(_pair_table(var))


def _pair_table(var: xr.DataArray) -> Mapping[str, float]:
    raw = var.attrs.get(ATTR_PAIR_THRESHOLDS)
    if isinstance(raw, str):
        return _parsed_pair_table(raw)
    return {str(k): float("inf") if v is None else float(v) for k, v in dict(raw or {}).items()}


@functools.lru_cache(maxsize=64)
def _parsed_pair_table(raw: str) -> Mapping[str, float]:
    """The JSON attribute parsed once (read-only): a season's map, report or time series asks it once per pair."""
    table = {str(k): float("inf") if v is None else float(v) for k, v in json.loads(raw).items()}
    return types.MappingProxyType(table)


def describe_operating_point(var: xr.DataArray, threshold: float | None, operating_point: str | None = None) -> str:
    """One line: the threshold detections of ``var`` use, e.g. ``threshold 0.42`` or ``top 0.061 % per pair``."""
    if threshold is None and schema.PAIR in var.dims and _operating_point(var, operating_point) == OP_RATE:
        return f"top {100 * float(var.attrs[ATTR_FLAG_RATE]):.3g} % of each pair's pixels"
    return f"threshold {prediction_threshold(var, threshold):.3g}"


def pair_key(reference_time: Any, activity_time: Any) -> str:
    """Identity of a pair that survives re-indexing: ``<reference>/<activity>`` in ISO seconds."""
    ref = np.datetime_as_string(np.datetime64(reference_time, "s"), unit="s")
    act = np.datetime_as_string(np.datetime64(activity_time, "s"), unit="s")
    return f"{ref}/{act}"


def pair_keys(ds: xr.Dataset) -> list[str]:
    """Keys of the cube's pairs, in pair order."""
    if schema.PAIR not in ds.dims:
        return []
    refs, acts = ds[schema.REFERENCE_TIME].values, ds[schema.ACTIVITY_TIME].values
    return [pair_key(r, a) for r, a in zip(refs, acts, strict=True)]


def predicted_keys(var: xr.DataArray) -> list[str]:
    """The pairs (keys) a prediction variable holds."""
    raw = var.attrs.get(schema.ATTR_PREDICTED_PAIRS)
    if raw is None:
        return []
    return list(json.loads(raw)) if isinstance(raw, str) else list(raw)


def predicted_pairs_attr(keys: Iterable[str]) -> str:
    """The ``predicted_pairs`` attribute of a prediction holding ``keys`` (JSON text, as CF attrs are strings)."""
    return json.dumps(list(keys))


def select_pairs(ds: xr.Dataset, pairs: str | Sequence[int]) -> list[int]:
    """Pair indices of ``all``, a ``START..END`` activity-date range (either end may be open) or explicit indices."""
    n = ds.sizes.get(schema.PAIR, 0)
    if not isinstance(pairs, str):
        bad = [p for p in pairs if not 0 <= int(p) < n]
        if bad:
            raise InputError(f"pairs {bad} do not exist: the cube has pairs 0..{n - 1} (see `sarcube info`)")
        return sorted({int(p) for p in pairs})
    if pairs in (PAIRS_ALL, PAIRS_NEW):
        return list(range(n))
    m = re.fullmatch(r"\s*(\d{4}-\d{2}-\d{2})?\s*\.\.\s*(\d{4}-\d{2}-\d{2})?\s*", pairs)
    if not m or not (m.group(1) or m.group(2)):
        raise InputError(f"--pairs {pairs!r}: use all, new or START..END activity dates (YYYY-MM-DD..YYYY-MM-DD)")
    act = ds[schema.ACTIVITY_TIME].values.astype("datetime64[D]") if n else np.array([], dtype="datetime64[D]")
    lo = np.datetime64(m.group(1), "D") if m.group(1) else act.min(initial=np.datetime64("1900-01-01"))
    hi = np.datetime64(m.group(2), "D") if m.group(2) else act.max(initial=np.datetime64("2999-12-31"))
    hits = [int(i) for i in np.flatnonzero((act >= lo) & (act <= hi))]
    if not hits:
        dates = ", ".join(sorted({str(a) for a in act})) or "none"
        raise InputError(f"--pairs {pairs!r}: no pair has an activity date in that range (activity dates: {dates})")
    return hits


@dataclass(frozen=True)
class PredictionPlan:
    """What one predict call writes: which pieces, into what, keeping what."""

    name: str
    #: pair indices to compute (None: the single (y, x) scene)
    todo: tuple[int | None, ...]
    #: keys of pieces the final variable holds when done (kept ones plus ``todo``)
    predicted: tuple[str, ...]
    #: start the staging from the existing variable
    keep_existing: bool
    per_pair: bool
    #: key of every piece of the cube, by pair index (just :data:`SCENE_KEY` without pairs)
    keys: tuple[str, ...]
    checkpoint_sha256: str
    tta_count: int
    #: side of the network's window, pixels
    window: int
    #: :data:`ATTR_MASK_TTA` of this predict (None: the model has no input mask, or no TTA)
    mask_tta: str | None = None

    def key_of(self, pair: int | None) -> str:
        """The key a piece is recorded under (``predicted_pairs``, the staging's done list)."""
        return self.keys[0 if pair is None else pair]

    @property
    def fingerprint(self) -> str:
        """Identity of the staging: a rerun of the same command (run, TTA, window, pairs) resumes; else it restarts."""
        todo = [self.key_of(p) for p in self.todo]
        settings = [self.checkpoint_sha256, self.tta_count, self.window, self.keep_existing, todo]
        if self.mask_tta is not None:
            settings.append(self.mask_tta)
        return hashlib.sha256(json.dumps(settings).encode()).hexdigest()


def plan_prediction(
    ds: xr.Dataset,
    name: str,
    *,
    preset: str,
    label_dims: Sequence[str],
    checkpoint_sha256: str,
    tta_count: int,
    window: int,
    pairs: str | Sequence[int],
    overwrite: bool,
    mask_tta: str | None = None,
) -> PredictionPlan:
    """Decide the pairs to compute and what is kept; refuse clashes with a clear message.

    ``preset``, ``label_dims`` and ``checkpoint_sha256`` describe the run
    that predicts; ``tta_count`` is 8 with test-time augmentation, else 1;
    ``mask_tta`` see :data:`ATTR_MASK_TTA` (part of what makes the same run).
    """
    label_dims = tuple(label_dims)
    per_pair = schema.PAIR in label_dims
    if per_pair and schema.PAIR not in ds.dims:
        raise MissingVariableError(
            f"run {preset!r} predicts per pair but the cube has no pairs; {schema.hint_for([schema.VV_DIFF])}"
        )
    keys = pair_keys(ds) if per_pair else [SCENE_KEY]
    selected: list[int | None] = list(select_pairs(ds, pairs)) if per_pair else [None]
    existing = ds[name] if name in ds.data_vars else None
    same_run = existing is not None and (
        existing.attrs.get(schema.ATTR_CHECKPOINT_SHA256) == checkpoint_sha256
        and int(existing.attrs.get(schema.ATTR_TTA, -1)) == tta_count
        and (mask_tta is None or existing.attrs.get(ATTR_MASK_TTA, MASK_TTA_UNRECORDED) == mask_tta)
    )
    if existing is not None and tuple(existing.dims) != label_dims:
        if not overwrite:
            raise CubeExistsError(
                f"{name!r} has dims {tuple(existing.dims)}, this run predicts {label_dims}: "
                "pass --overwrite or choose another --name"
            )
        same_run = False
    if existing is None:
        keep: list[str] = []
        keep_existing = False
    elif pairs == PAIRS_NEW:
        if not same_run:
            theirs = str(existing.attrs.get(schema.ATTR_CHECKPOINT_SHA256, "?"))[:12]
            their_mask = f", mask_tta {existing.attrs.get(ATTR_MASK_TTA, MASK_TTA_UNRECORDED)}" if mask_tta else ""
            raise CubeExistsError(
                f"{name!r} was made by checkpoint {theirs} (tta {existing.attrs.get(schema.ATTR_TTA, '?')}"
                f"{their_mask}), not by this run ({checkpoint_sha256[:12]}, tta {tta_count}"
                f"{f', mask_tta {mask_tta}' if mask_tta else ''}): "
                "--pairs new extends a prediction with its own run; use another --name, or --overwrite --pairs all"
            )
        keep = [k for k in predicted_keys(existing) if k in keys]
        selected = [p for p in selected if keys[0 if p is None else p] not in set(keep)]
        keep_existing = True
    elif not overwrite:
        raise CubeExistsError(
            f"the cube already has {name!r}: pass --overwrite to recompute it, --pairs new to extend it, "
            "or choose another --name"
        )
    else:
        keep_existing = same_run
        keep = [k for k in predicted_keys(existing) if k in keys] if same_run else []
    done_keys = {keys[0 if p is None else p] for p in selected}
    predicted = tuple(k for k in keys if k in done_keys or k in set(keep))
    return PredictionPlan(
        name=name,
        todo=tuple(selected),
        predicted=predicted,
        keep_existing=keep_existing,
        per_pair=per_pair,
        keys=tuple(keys),
        checkpoint_sha256=checkpoint_sha256,
        tta_count=tta_count,
        window=window,
        mask_tta=mask_tta,
    )
