"""Exact evaluation metrics on numpy arrays (torch tensors accepted), all ignoring label 255.

Labels are 0 (no), 1 (yes) or 255 (unknown / not monitored: left out of every count).
Predictions are probabilities (thresholded with ``>= threshold``) or boolean masks;
NaN predictions are left out like label 255.

Pixel metrics (avalanche-fcn-bianchi V, glacier-timeseries Tab. 1): precision
TP/(TP+FP), recall TP/(TP+FN), F1, IoU TP/(TP+FP+FN); a ratio with a zero denominator
is 0 (scikit-learn's ``zero_division=0``). AUPRC is average precision, exactly
``sklearn.metrics.average_precision_score`` (landslide-datacube). Balanced accuracy is
the mean of the recalls of both classes (avalanche-vae).

Object metrics (avalanche-fcn-bianchi Tab. I), per 2-D image, objects being the
connected components (8- or 4-connected) of label == 1 and of the prediction:

- TP: labelled objects touched by at least one predicted pixel; FN: the other labelled
  objects; FP: predicted objects touching no labelled object (a predicted object lying
  entirely on label-255 pixels is not counted).
- bounding-box IoU: each object is replaced by its bounding box; the boxes of the labelled
  objects are rasterized into one mask, those of the predicted objects into another, and
  IoU = |intersection| / |union| of the two masks, counted over non-255 pixels. Over many
  images (:class:`MetricAccumulator`) the intersections and unions are summed first.

:class:`MetricAccumulator` adds counts over chips or scenes and reports the same numbers
as the functions on the concatenated data.
"""

from __future__ import annotations

import numpy as np
import torch

from sarcube.errors import InputError

IGNORE_LABEL = 255
#: bins of the streaming AUPRC over [0, 1]: 16 MiB of counts, within ~1e-6 of exact (tests/test_metrics.py)
AUPRC_BINS = 2**20
THRESHOLD_METRICS = ("f1", "balanced_accuracy", "accuracy")
_COUNT_KEYS = ("tp", "fp", "fn", "tn")


def as_numpy(x) -> np.ndarray:
    """A numpy view of an array or a (detached, CPU) copy of a tensor."""
    if isinstance(x, torch.Tensor):
        x = x.detach()
        if x.dtype == torch.bfloat16:
            x = x.float()
        return x.cpu().numpy()
    return np.asarray(x)


def _align(pred: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Make shapes equal by dropping a singleton channel axis (N, 1, H, W) vs (N, H, W)."""
    if pred.shape != label.shape:
        if pred.ndim == label.ndim + 1 and pred.shape[1] == 1:
            pred = pred[:, 0]
        elif label.ndim == pred.ndim + 1 and label.shape[1] == 1:
            label = label[:, 0]
    if pred.shape != label.shape:
        raise InputError(f"prediction shape {pred.shape} does not match label shape {label.shape}")
    bad = (label != 0) & (label != 1) & (label != IGNORE_LABEL)
    if bad.any():
        raise InputError(f"labels must be 0, 1 or {IGNORE_LABEL}; found {np.unique(label[bad])[:5].tolist()}")
    return pred, label


def _binarize(pred: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(positive, finite) masks of a probability or boolean prediction."""
    if pred.dtype == bool:
        return pred, np.ones(pred.shape, dtype=bool)
    finite = np.isfinite(pred)
    with np.errstate(invalid="ignore"):
        return (pred >= threshold) & finite, finite


def _safe_ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else 0.0


def pixel_counts(pred: np.ndarray, label: np.ndarray, threshold: float = 0.5) -> dict[str, int]:
    """Confusion counts tp, fp, fn, tn over pixels whose label is not 255 and prediction finite."""
    pred, label = _align(as_numpy(pred), as_numpy(label))
    positive, finite = _binarize(pred, threshold)
    valid = finite & (label != IGNORE_LABEL)
    truth = label == 1
    return {
        "tp": int(np.count_nonzero(positive & truth & valid)),
        "fp": int(np.count_nonzero(positive & ~truth & valid)),
        "fn": int(np.count_nonzero(~positive & truth & valid)),
        "tn": int(np.count_nonzero(~positive & ~truth & valid)),
    }


def scores_from_counts(counts: dict[str, int]) -> dict[str, float | int]:
    """precision, recall, f1, iou, balanced_accuracy, accuracy and the four counts."""
    tp, fp, fn, tn = (counts[k] for k in _COUNT_KEYS)
    precision = _safe_ratio(tp, tp + fp)
    recall = _safe_ratio(tp, tp + fn)
    out: dict[str, float | int] = {
        "precision": precision,
        "recall": recall,
        "f1": _safe_ratio(2 * tp, 2 * tp + fp + fn),
        "iou": _safe_ratio(tp, tp + fp + fn),
        "balanced_accuracy": 0.5 * (recall + _safe_ratio(tn, tn + fp)),
        "accuracy": _safe_ratio(tp + tn, tp + fp + fn + tn),
    }
    out.update({k: int(counts[k]) for k in _COUNT_KEYS})
    return out


def score_from_counts(counts: dict[str, int], metric: str) -> float:
    """One of ``THRESHOLD_METRICS`` from confusion counts."""
    if metric not in THRESHOLD_METRICS:
        raise InputError(f"metric {metric!r}: use one of {', '.join(THRESHOLD_METRICS)}")
    return float(scores_from_counts(counts)[metric])


def pixel_scores(prob_or_mask, label, threshold: float = 0.5) -> dict[str, float | int]:
    """Pixel precision, recall, f1, iou (and balanced_accuracy, accuracy) with tp, fp, fn, tn."""
    return scores_from_counts(pixel_counts(prob_or_mask, label, threshold))


def balanced_accuracy(pred, label, threshold: float = 0.5) -> float:
    """Mean of the recalls of class 1 and class 0 (sklearn ``balanced_accuracy_score`` for binary data)."""
    return float(pixel_scores(pred, label, threshold)["balanced_accuracy"])


def _valid_scores(prob, label) -> tuple[np.ndarray, np.ndarray]:
    prob, label = _align(as_numpy(prob), as_numpy(label))
    prob = prob.astype(np.float64, copy=False)
    valid = (label != IGNORE_LABEL) & np.isfinite(prob)
    return prob[valid].ravel(), (label[valid] == 1).ravel()


def _ranked_counts(scores: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct thresholds (descending) and the tp/fp of ``score >= threshold`` at each."""
    order = np.argsort(-scores, kind="mergesort")
    scores, truth = scores[order], truth[order]
    last = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    tps = np.cumsum(truth, dtype=np.int64)[last]
    fps = (last + 1) - tps
    return scores[last], tps, fps


def _average_precision(scores: np.ndarray, truth: np.ndarray) -> float:
    positives = int(np.count_nonzero(truth))
    if scores.size == 0 or positives == 0:
        return 0.0
    _, tps, fps = _ranked_counts(scores, truth)
    precision = tps / (tps + fps)
    recall = tps / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _binned_average_precision(positives: np.ndarray, counts: np.ndarray) -> float:
    """Average precision from per-bin counts (bins ascending in score): each bin is one tied threshold."""
    positives, counts = positives[::-1], counts[::-1]
    used = counts > 0
    tps, seen = np.cumsum(positives[used]), np.cumsum(counts[used])
    if tps.size == 0 or tps[-1] == 0:
        return 0.0
    return float(np.sum(np.diff(np.r_[0.0, tps / tps[-1]]) * (tps / seen)))


def score_bins(prob: np.ndarray, bins: int) -> np.ndarray:
    """Bin index of probabilities in [0, 1] (clipped) on ``bins`` equal bins."""
    return np.clip((prob.astype(np.float64) * bins).astype(np.int64), 0, bins - 1)


def average_precision(prob, label) -> float:
    """Area under the precision-recall curve as average precision: sum over thresholds of (R_k - R_k-1) P_k.

    Equal to ``sklearn.metrics.average_precision_score``; 0.0 when there is no positive.
    """
    return _average_precision(*_valid_scores(prob, label))


#: the shares of an image's pixels :func:`best_rate` tries: 1e-5 .. 1e-1, ten a decade
RATES = tuple(float(r) for r in np.geomspace(1e-5, 1e-1, 41))


def rate_threshold(scores, rate: float) -> float:
    """The threshold that flags the top ``rate`` share of an image's finite scores (``score >= threshold``).

    A constant flagged rate per image, as a CFAR radar detector sets a constant false-alarm rate: where
    targets are rare the flagged share is nearly all background, so the threshold follows each image's
    own clutter (a pair full of bright wet-snow refreeze gets a higher one than a quiet pair).
    """
    s = as_numpy(scores).astype(np.float64, copy=False).ravel()
    s = s[np.isfinite(s)]
    if s.size == 0:
        return float("inf")
    k = _top_count(s.size, rate)
    return float(np.partition(s, s.size - k)[s.size - k])


def _top_count(n: int, rate: float) -> int:
    """How many of ``n`` scores a flagged share ``rate`` takes: at least one, at most all."""
    return min(n, max(1, int(round(rate * n))))


def best_rate(images, rates=RATES) -> tuple[float, float]:
    """The flagged share (:func:`rate_threshold` per image) that maximizes F1 over ``images``.

    ``images``: (scores, labels) per image, labels 0/1/255. Each image's threshold ranks all its finite
    scores (as :func:`rate_threshold` does on an unlabelled image: NaN where the image observed nothing),
    and F1 counts its labelled pixels (255 not counted). Returns ``(rate, F1)``; ties keep the smallest
    rate. Tune it on validation images, then apply :func:`rate_threshold` to each test image.
    """
    # each image's pool ranked once; every rate then reads its threshold off the ranking
    pools, scored = [], []
    for scores, labels in images:
        s, lab = _align(as_numpy(scores), as_numpy(labels))
        s = s.astype(np.float64, copy=False)
        finite = np.isfinite(s)
        pools.append(np.sort(s[finite].ravel())[::-1])
        keep = finite & (lab != IGNORE_LABEL)
        scored.append((s[keep].ravel(), (lab[keep] == 1).ravel()))
    best = (float(rates[0]), -1.0)
    for rate in rates:
        counts = dict.fromkeys(_COUNT_KEYS, 0)
        for (s, truth), pool in zip(scored, pools, strict=True):
            if pool.size == 0:
                continue
            flagged = s >= pool[_top_count(pool.size, rate) - 1]
            tp = int(np.count_nonzero(flagged & truth))
            fp, fn = int(np.count_nonzero(flagged)) - tp, int(np.count_nonzero(truth)) - tp
            counts = {"tp": counts["tp"] + tp, "fp": counts["fp"] + fp, "fn": counts["fn"] + fn,
                      "tn": counts["tn"] + s.size - tp - fp - fn}
        f1 = float(scores_from_counts(counts)["f1"])
        if f1 > best[1]:
            best = (float(rate), f1)
    return best


def best_threshold(scores, labels, metric: str = "f1") -> tuple[float, float]:
    """The score threshold (predict positive where ``score >= threshold``) that maximizes ``metric``.

    Candidates are the distinct finite scores; ties keep the lowest. The threshold returned
    is the midpoint between that score and the next lower one (it classifies the data alike,
    with a margin on both sides). Returns ``(threshold, metric value)``. Used to tune the
    VAE's reconstruction-error threshold and the baseline on validation data.
    """
    if metric not in THRESHOLD_METRICS:
        raise InputError(f"metric {metric!r}: use one of {', '.join(THRESHOLD_METRICS)}")
    s, truth = _valid_scores(scores, labels)
    if s.size == 0:
        raise InputError("best_threshold: no finite score with a 0/1 label; give validation data with labels")
    thresholds, tps, fps = _ranked_counts(s, truth)
    pos, neg = int(np.count_nonzero(truth)), int(truth.size - np.count_nonzero(truth))
    fns, tns = pos - tps, neg - fps
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "f1":
            values = np.where(tps > 0, 2 * tps / (2 * tps + fps + fns), 0.0)
        elif metric == "accuracy":
            values = (tps + tns) / truth.size
        else:
            rec = np.where(pos > 0, tps / max(pos, 1), 0.0)
            spec = np.where(neg > 0, tns / max(neg, 1), 0.0)
            values = 0.5 * (rec + spec)
    best = np.flatnonzero(values == values.max())[-1]  # thresholds descend: the last is the lowest
    threshold = thresholds[best]
    if best + 1 < thresholds.size:
        threshold = 0.5 * (threshold + thresholds[best + 1])
    return float(threshold), float(values[best])


def structure(connectivity: int) -> np.ndarray:
    """The ``ndimage.label`` structure of 8- or 4-connectivity (refused otherwise)."""
    if connectivity not in (4, 8):
        raise InputError(f"connectivity={connectivity}: use 8 (diagonal neighbours join) or 4")
    if connectivity == 8:
        return np.ones((3, 3), dtype=bool)
    return np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)


def connected_components(mask: np.ndarray, connectivity: int = 8) -> tuple[np.ndarray, int]:
    """Objects of a 2-D bool mask: (ids, count), ids 1..count per object and 0 outside."""
    from scipy import ndimage  # imported here: 10 % of a short CLI run's start-up otherwise

    ids, count = ndimage.label(mask, structure=structure(connectivity))
    return ids, int(count)


def _images(pred, label, threshold: float):
    """Yield (positive, label) 2-D pairs of a (H, W), (N, H, W) or (N, 1, H, W) batch."""
    pred, label = _align(as_numpy(pred), as_numpy(label))
    if label.ndim < 2:
        raise InputError(
            f"object metrics need 2-D images; got label shape {label.shape} (use objects=False for patches)"
        )
    positive, _ = _binarize(pred, threshold)
    h, w = label.shape[-2:]
    yield from zip(positive.reshape(-1, h, w), label.reshape(-1, h, w), strict=True)


def _object_counts(positive: np.ndarray, label: np.ndarray, connectivity: int) -> dict[str, int]:
    truth = label == 1
    lab_ids, n_lab = connected_components(truth, connectivity)
    pred_ids, n_pred = connected_components(positive, connectivity)
    hit = np.unique(lab_ids[positive & truth])
    tp = int(np.count_nonzero(hit))
    touching = np.zeros(n_pred + 1, dtype=bool)
    touching[np.unique(pred_ids[positive & truth])] = True
    counted = np.zeros(n_pred + 1, dtype=bool)
    counted[np.unique(pred_ids[positive & (label != IGNORE_LABEL)])] = True
    fp = int(np.count_nonzero(counted[1:] & ~touching[1:]))
    return {"tp": tp, "fn": n_lab - tp, "fp": fp}


def object_scores(pred_mask, label_mask, connectivity: int = 8, threshold: float = 0.5) -> dict[str, int]:
    """Object-level tp (labelled objects hit), fn (missed) and fp (predicted objects touching none).

    Summed over the images of a batch; see the module docstring for the exact rules.
    """
    structure(connectivity)  # checked before any work
    total = {"tp": 0, "fn": 0, "fp": 0}
    for positive, label in _images(pred_mask, label_mask, threshold):
        for k, v in _object_counts(positive, label, connectivity).items():
            total[k] += v
    return total


def _box_mask(mask: np.ndarray, connectivity: int) -> np.ndarray:
    """Union of the bounding boxes of the connected components of ``mask``."""
    from scipy import ndimage

    boxes = np.zeros(mask.shape, dtype=bool)
    ids, _ = connected_components(mask, connectivity)
    for sl in ndimage.find_objects(ids):
        if sl is not None:
            boxes[sl] = True
    return boxes


def _bbox_counts(positive: np.ndarray, label: np.ndarray, connectivity: int) -> tuple[int, int]:
    valid = label != IGNORE_LABEL
    lab_boxes = _box_mask(label == 1, connectivity)
    pred_boxes = _box_mask(positive, connectivity)
    inter = int(np.count_nonzero(lab_boxes & pred_boxes & valid))
    union = int(np.count_nonzero((lab_boxes | pred_boxes) & valid))
    return inter, union


def bbox_iou(pred_mask, label_mask, connectivity: int = 8, threshold: float = 0.5) -> float:
    """IoU of the union of the objects' bounding boxes (labelled vs predicted), over non-255 pixels.

    Summed over the images of a batch; NaN when both box masks are empty.
    """
    structure(connectivity)  # checked before any work
    inter = union = 0
    for positive, label in _images(pred_mask, label_mask, threshold):
        i, u = _bbox_counts(positive, label, connectivity)
        inter += i
        union += u
    return inter / union if union else float("nan")


class MetricAccumulator:
    """Adds up pixel, object and bounding-box counts (and AUPRC scores) over many chips or scenes.

    ``update(prob, label)`` takes the same inputs as the functions above (one image,
    a batch, or (N,) patch scores with ``objects=False``); ``compute()`` returns
    :func:`pixel_scores`' dict plus ``auprc`` (exact, from probability inputs: the valid
    scores are kept, 5 bytes a pixel for float32; ``auprc=False`` keeps nothing), ``bbox_iou``, ``object_tp``,
    ``object_fn``, ``object_fp`` (with ``objects=True``) and ``n_images``.
    ``auprc_bins=N`` streams AUPRC instead: probabilities in [0, 1] are counted on N equal bins
    (16 bytes a bin, nothing a pixel); with :data:`AUPRC_BINS` it is within ~1e-6 of exact.
    """

    def __init__(
        self,
        threshold: float = 0.5,
        objects: bool = True,
        auprc: bool = True,
        connectivity: int = 8,
        auprc_bins: int | None = None,
    ):
        if auprc_bins is not None and auprc_bins < 1:
            raise InputError(f"auprc_bins={auprc_bins}: give a positive number of bins, or None for exact AUPRC")
        self.threshold = threshold
        self.objects = objects
        self.auprc = auprc
        self.auprc_bins = auprc_bins
        structure(connectivity)  # checked here, not at the first update
        self.connectivity = connectivity
        self.reset()

    def reset(self) -> None:
        self.counts = dict.fromkeys(_COUNT_KEYS, 0)
        self.object_counts = {"tp": 0, "fn": 0, "fp": 0}
        self.box_intersection = 0
        self.box_union = 0
        self.n_images = 0
        self._scores: list[np.ndarray] = []
        self._truth: list[np.ndarray] = []
        n_bins = self.auprc_bins or 0
        self._bin_positives = np.zeros(n_bins, dtype=np.int64)
        self._bin_counts = np.zeros(n_bins, dtype=np.int64)

    def update(self, prob, label, threshold: float | None = None) -> None:
        """Add one image, batch or set of patch scores; ``threshold`` (default: the accumulator's) binarizes
        them, so images thresholded each at their own operating point add up alike."""
        prob, label = as_numpy(prob), as_numpy(label)
        threshold = self.threshold if threshold is None else threshold
        self._update_pixels(prob, label, threshold)
        if self.objects:
            for positive, lab in _images(prob, label, threshold):
                for k, v in _object_counts(positive, lab, self.connectivity).items():
                    self.object_counts[k] += v
                i, u = _bbox_counts(positive, lab, self.connectivity)
                self.box_intersection += i
                self.box_union += u
                self.n_images += 1
        else:
            self.n_images += 1 if label.ndim == 0 else int(label.shape[0])

    def update_tiled(self, read, windows, threshold: float | None = None) -> None:
        """Add one 2-D image read tile by tile, as :meth:`update` adds it whole, in memory for a tile.

        ``read(window)`` returns (prob, label) of a window (y0, y1, x0, x1) of ``windows``
        (:func:`~sarcube.models.components.tile_windows`: raster order); with ``objects`` the objects are merged
        across tile borders and every tile is read a second time for the bounding boxes.
        """
        from sarcube.models.components import TiledObjects

        threshold = self.threshold if threshold is None else threshold
        objects = TiledObjects(max(w[1] for w in windows), max(w[3] for w in windows), self.connectivity)
        for window in windows:
            prob, label = (as_numpy(a) for a in read(window))
            self._update_pixels(prob, label, threshold)
            if self.objects:
                prob, label = _align(prob, label)
                objects.add(window, _binarize(prob, threshold)[0], label)
        self.n_images += 1
        if not self.objects:
            return
        for k, v in objects.counts().items():
            self.object_counts[k] += v
        for window in windows:
            i, u = objects.box_counts(window, as_numpy(read(window)[1]))
            self.box_intersection += i
            self.box_union += u

    def _update_pixels(self, prob: np.ndarray, label: np.ndarray, threshold: float) -> None:
        for k, v in pixel_counts(prob, label, threshold).items():
            self.counts[k] += v
        if self.auprc and prob.dtype != bool:
            p, lab = _align(prob, label)
            valid = (lab != IGNORE_LABEL) & np.isfinite(p)
            if self.auprc_bins:
                bins = score_bins(p[valid], self.auprc_bins)
                self._bin_counts += np.bincount(bins, minlength=self.auprc_bins)
                self._bin_positives += np.bincount(bins[lab[valid] == 1], minlength=self.auprc_bins)
            else:
                self._scores.append(p[valid])  # kept in their own dtype: 5 bytes a pixel for float32
                self._truth.append(lab[valid] == 1)

    def compute(self) -> dict[str, float | int]:
        out = scores_from_counts(self.counts)
        if self.auprc:
            if self.auprc_bins:
                seen = self._bin_counts.any()
                out["auprc"] = (
                    _binned_average_precision(self._bin_positives, self._bin_counts) if seen else float("nan")
                )
            elif self._scores:
                scores = np.concatenate(self._scores).astype(np.float64, copy=False)
                out["auprc"] = _average_precision(scores, np.concatenate(self._truth))
            else:
                out["auprc"] = float("nan")
        if self.objects:
            out["bbox_iou"] = self.box_intersection / self.box_union if self.box_union else float("nan")
            out.update({f"object_{k}": v for k, v in self.object_counts.items()})
        out["n_images"] = self.n_images
        return out
