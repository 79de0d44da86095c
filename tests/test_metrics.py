"""Metrics: hand-computed cases, scikit-learn where it has the metric, label 255 ignored."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    average_precision_score,
    balanced_accuracy_score,
    f1_score,
    jaccard_score,
    precision_score,
    recall_score,
)

from sarcube.errors import InputError
from sarcube.models import metrics


def _random_case(seed: int, n: int = 3, h: int = 20, w: int = 30, ties: bool = False):
    rng = np.random.default_rng(seed)
    label = (rng.random((n, h, w)) < 0.3).astype(np.uint8)
    prob = np.clip(0.35 * label + 0.65 * rng.random((n, h, w)), 0, 1).astype(np.float32)
    if ties:
        prob = np.round(prob, 1)  # many equal scores: AP must group them like sklearn
    label[rng.random((n, h, w)) < 0.1] = metrics.IGNORE_LABEL
    return prob, label


def test_pixel_scores_hand_case():
    prob = np.array([[0.9, 0.6, 0.2], [0.4, 0.7, 0.1]])
    label = np.array([[1, 0, 1], [255, 1, 0]], dtype=np.uint8)
    s = metrics.pixel_scores(prob, label)
    # valid: (0.9,1) tp, (0.6,0) fp, (0.2,1) fn, (0.7,1) tp, (0.1,0) tn; (0.4,255) ignored
    assert (s["tp"], s["fp"], s["fn"], s["tn"]) == (2, 1, 1, 1)
    assert s["precision"] == pytest.approx(2 / 3)
    assert s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 / 3)
    assert s["iou"] == pytest.approx(2 / 4)
    assert s["balanced_accuracy"] == pytest.approx(0.5 * (2 / 3 + 1 / 2))
    # nothing predicted: ratios are 0, not NaN
    empty = metrics.pixel_scores(np.zeros(3), np.array([1, 0, 0]))
    assert empty["precision"] == 0.0 and empty["f1"] == 0.0 and empty["iou"] == 0.0


@pytest.mark.parametrize("seed", [0, 1])
def test_pixel_scores_match_sklearn(seed):
    prob, label = _random_case(seed)
    valid = label != 255
    y, p = label[valid], prob[valid] >= 0.5
    s = metrics.pixel_scores(prob, label)
    assert s["precision"] == pytest.approx(precision_score(y, p))
    assert s["recall"] == pytest.approx(recall_score(y, p))
    assert s["f1"] == pytest.approx(f1_score(y, p))
    assert s["iou"] == pytest.approx(jaccard_score(y, p))
    assert metrics.balanced_accuracy(prob, label) == pytest.approx(balanced_accuracy_score(y, p))
    # torch tensors and a (N, 1, H, W) prediction give the same
    assert metrics.pixel_scores(torch.from_numpy(prob)[:, None], torch.from_numpy(label)) == s


@pytest.mark.parametrize(("seed", "ties"), [(0, False), (1, True), (2, True)])
def test_average_precision_matches_sklearn(seed, ties):
    prob, label = _random_case(seed, ties=ties)
    valid = label != 255
    expected = average_precision_score(label[valid], prob[valid])
    assert metrics.average_precision(prob, label) == pytest.approx(expected, abs=1e-12)
    assert metrics.average_precision(torch.from_numpy(prob), torch.from_numpy(label)) == pytest.approx(expected)


def test_average_precision_hand_case_and_edges():
    # ranked: 0.9 (1), 0.8 (0), 0.7 (1), 0.7 (0), 0.1 (1)
    prob = np.array([0.9, 0.8, 0.7, 0.7, 0.1])
    label = np.array([1, 0, 1, 0, 1])
    # thresholds 0.9: P=1, R=1/3; 0.8: no recall gain; 0.7: P=2/4, R=2/3; 0.1: P=3/5, R=1
    assert metrics.average_precision(prob, label) == pytest.approx(1 / 3 * 1 + 1 / 3 * 0.5 + 1 / 3 * 0.6)
    assert metrics.average_precision(prob, np.zeros(5, dtype=np.uint8)) == 0.0
    assert metrics.average_precision(np.array([0.2, np.nan]), np.array([1, 1])) == 1.0  # NaN left out


def test_best_threshold_matches_brute_force():
    rng = np.random.default_rng(3)
    labels = (rng.random(200) < 0.2).astype(np.uint8)
    scores = np.round(rng.random(200) + 0.5 * labels, 2)
    labels[:5] = 255
    for metric in metrics.THRESHOLD_METRICS:
        t, value = metrics.best_threshold(scores, labels, metric=metric)
        brute = {
            c: metrics.score_from_counts(metrics.pixel_counts(scores, labels, c), metric) for c in np.unique(scores[5:])
        }
        best = max(brute.values())
        assert value == pytest.approx(best)
        lowest_best = min(c for c, v in brute.items() if v == pytest.approx(best))
        below = scores[5:][scores[5:] < lowest_best]
        assert t == pytest.approx(0.5 * (lowest_best + below.max()) if below.size else lowest_best)
        assert metrics.score_from_counts(metrics.pixel_counts(scores, labels, t), metric) == pytest.approx(best)
    with pytest.raises(InputError, match="metric"):
        metrics.best_threshold(scores, labels, metric="auc")


def test_object_scores_hand_case():
    label = np.zeros((8, 10), dtype=np.uint8)
    label[0:2, 0:2] = 1  # object A: hit
    label[5:7, 0:3] = 1  # object B: missed
    label[0:3, 7:9] = 1  # object C: hit by a single pixel
    label[7, 6:10] = 255  # not monitored
    pred = np.zeros((8, 10), dtype=bool)
    pred[1:3, 1:3] = True  # overlaps A
    pred[2, 8] = True  # touches C
    pred[4, 5] = True  # false alarm
    pred[7, 8:10] = True  # only on 255 pixels: not counted
    assert metrics.object_scores(pred, label) == {"tp": 2, "fn": 1, "fp": 1}
    # probabilities threshold like masks; a batch sums
    two = np.stack([pred, pred]).astype(np.float32)
    assert metrics.object_scores(two, np.stack([label, label])) == {"tp": 4, "fn": 2, "fp": 2}


def test_object_connectivity():
    label = np.zeros((4, 4), dtype=np.uint8)
    label[0, 0] = label[1, 1] = 1  # diagonal neighbours: one object (8) or two (4)
    pred = np.zeros((4, 4), dtype=bool)
    pred[0, 0] = True
    assert metrics.object_scores(pred, label, connectivity=8) == {"tp": 1, "fn": 0, "fp": 0}
    assert metrics.object_scores(pred, label, connectivity=4) == {"tp": 1, "fn": 1, "fp": 0}
    with pytest.raises(InputError, match="connectivity"):
        metrics.object_scores(pred, label, connectivity=6)


def test_bbox_iou_hand_case():
    label = np.zeros((6, 6), dtype=np.uint8)
    label[0:2, 0:2] = 1  # box rows 0-1, cols 0-1 (4 px)
    pred = np.zeros((6, 6), dtype=bool)
    pred[1, 1] = pred[2, 1] = pred[2, 2] = True  # L shape: box rows 1-2, cols 1-2 (4 px)
    # intersection: (1, 1) = 1 px; union 4 + 4 - 1 = 7
    assert metrics.bbox_iou(pred, label) == pytest.approx(1 / 7)
    label[2, 2] = 255  # one pixel of the predicted box is not monitored
    assert metrics.bbox_iou(pred, label) == pytest.approx(1 / 6)
    assert np.isnan(metrics.bbox_iou(np.zeros((3, 3), bool), np.zeros((3, 3), np.uint8)))


def test_accumulator_equals_whole_batch():
    prob, label = _random_case(5, n=6, h=16, w=16)
    acc = metrics.MetricAccumulator()
    for i in range(0, 6, 2):
        acc.update(torch.from_numpy(prob[i : i + 2]), label[i : i + 2])
    out = acc.compute()
    whole = metrics.pixel_scores(prob, label)
    for key, value in whole.items():
        assert out[key] == pytest.approx(value)
    assert out["auprc"] == pytest.approx(metrics.average_precision(prob, label))
    objs = metrics.object_scores(prob, label)
    assert (out["object_tp"], out["object_fn"], out["object_fp"]) == (objs["tp"], objs["fn"], objs["fp"])
    assert out["bbox_iou"] == pytest.approx(metrics.bbox_iou(prob, label))
    assert out["n_images"] == 6


def test_streamed_auprc_is_within_1e6_of_exact():
    rng = np.random.default_rng(3)
    label = (rng.random(200_000) < 0.05).astype(np.uint8)
    prob = np.clip(rng.normal(0.3 + 0.3 * label, 0.2), 0, 1).astype(np.float32)
    prob[::7] = np.round(prob[::7], 2)  # ties
    label[::11] = 255
    prob[::13] = np.nan
    exact = metrics.average_precision(prob, label)
    acc = metrics.MetricAccumulator(objects=False, auprc_bins=metrics.AUPRC_BINS)
    for part in np.array_split(np.arange(prob.size), 5):
        acc.update(prob[part], label[part])
    assert abs(acc.compute()["auprc"] - exact) < 1e-6
    coarse = metrics.MetricAccumulator(objects=False, auprc_bins=4)  # few bins: visibly approximate
    coarse.update(prob, label)
    assert abs(coarse.compute()["auprc"] - exact) > 1e-4
    # distinct scores in distinct bins: exactly the sorted AP
    small = metrics.MetricAccumulator(objects=False, auprc_bins=metrics.AUPRC_BINS)
    small.update(np.array([0.9, 0.8, 0.3, 0.2]), np.array([1, 0, 1, 0]))
    assert small.compute()["auprc"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3, abs=1e-12)
    empty = metrics.MetricAccumulator(objects=False, auprc_bins=8)
    assert np.isnan(empty.compute()["auprc"])
    with pytest.raises(InputError, match="auprc_bins"):
        metrics.MetricAccumulator(auprc_bins=0)


def test_accumulator_for_patch_scores():
    acc = metrics.MetricAccumulator(objects=False)
    acc.update(np.array([0.9, 0.2, 0.6]), np.array([1, 0, 0]))
    acc.update(np.array([0.1]), np.array([255]))
    out = acc.compute()
    assert (out["tp"], out["fp"], out["tn"], out["fn"]) == (1, 1, 1, 0)
    assert out["n_images"] == 4 and "object_tp" not in out
    with pytest.raises(InputError, match="objects=False"):
        metrics.MetricAccumulator().update(np.array([0.9]), np.array([1]))


def test_bad_inputs():
    with pytest.raises(InputError, match="shape"):
        metrics.pixel_scores(np.zeros((2, 3)), np.zeros((3, 2), np.uint8))
    with pytest.raises(InputError, match="0, 1 or 255"):
        metrics.pixel_scores(np.zeros(3), np.array([0, 2, 1]))


def test_rate_threshold_flags_the_top_share_of_each_image():
    scores = np.arange(1000, dtype=np.float32) / 1000.0
    assert metrics.rate_threshold(scores, 0.01) == pytest.approx(0.990)  # the top 10 of 1000
    assert (scores >= metrics.rate_threshold(scores, 0.01)).sum() == 10
    with_nan = np.r_[scores, [np.nan] * 500]  # unscored pixels do not count towards the share
    assert metrics.rate_threshold(with_nan, 0.01) == metrics.rate_threshold(scores, 0.01)
    assert metrics.rate_threshold(np.full(4, np.nan), 0.1) == float("inf")


def test_best_rate_follows_each_image_where_one_threshold_cannot():
    rng = np.random.default_rng(0)
    images = []
    for offset in (0.0, 0.5):  # the second image's scores are all shifted up (a bright, wet pair)
        labels = np.zeros(10_000, dtype=np.uint8)
        labels[:20] = 1
        scores = rng.uniform(0.0, 0.4, labels.size) + offset
        scores[:20] += 0.45  # its targets still top that image
        labels[-100:] = metrics.IGNORE_LABEL  # not observed: no score, neither ranked nor counted
        scores[-100:] = np.nan
        labels[-300:-100] = metrics.IGNORE_LABEL  # observed but unlabelled: ranked, not counted
        images.append((scores, labels))
    rate, f1 = metrics.best_rate(images)
    assert f1 == pytest.approx(1.0) and rate == pytest.approx(20 / 9_900, rel=0.15)
    # the flagged share is of every observed (finite) score, labelled or not, as on an unlabelled test pair
    for scores, _ in images:
        flagged = scores >= metrics.rate_threshold(scores, rate)
        assert flagged.sum() == round(rate * 9_900) and flagged[:20].all()
    pooled_scores = np.concatenate([s[:-300] for s, _ in images])
    pooled_labels = np.concatenate([y[:-300] for _, y in images])
    assert metrics.best_threshold(pooled_scores, pooled_labels)[1] < 0.7  # no single threshold separates both


@pytest.mark.parametrize("connectivity", [8, 4])
def test_tiled_objects_equal_whole_image_labelling(connectivity):
    """Random masks whose objects cross tile borders (and corners): tile-by-tile labelling merged by union-find
    gives the whole image's objects (count, order, size, box) and the accumulator the same metrics."""
    from scipy import ndimage

    from sarcube.models.components import TiledComponents, tile_windows

    rng = np.random.default_rng(connectivity)
    for _ in range(40):
        h, w, tile = int(rng.integers(1, 50)), int(rng.integers(1, 50)), int(rng.integers(1, 12))
        seeds = rng.random((h, w)) < rng.uniform(0.01, 0.3)
        mask = ndimage.binary_dilation(seeds, iterations=int(rng.integers(0, 3)))
        ids, n = metrics.connected_components(mask, connectivity)
        cc = TiledComponents(h, w, connectivity)
        for y0, y1, x0, x1 in tile_windows(h, w, tile):
            cc.add((y0, y1, x0, x1), mask[y0:y1, x0:x1])
        objects = cc.objects()
        assert objects["count"].tolist() == np.bincount(ids.ravel(), minlength=n + 1)[1:].tolist()
        boxes = [(s[0].start, s[0].stop, s[1].start, s[1].stop) for s in ndimage.find_objects(ids)]
        assert objects["box"].tolist() == [list(b) for b in boxes]
        assert objects["first"].tolist() == [int(np.flatnonzero(ids.ravel() == k)[0]) for k in range(1, n + 1)]

        prob = np.where(mask, 0.5 + 0.5 * rng.random((h, w)), 0.6 * rng.random((h, w))).astype(np.float32)
        prob[rng.random((h, w)) < 0.05] = np.nan
        label = ndimage.binary_dilation(rng.random((h, w)) < 0.05, iterations=2).astype(np.uint8)
        label[rng.random((h, w)) < 0.1] = metrics.IGNORE_LABEL
        whole = metrics.MetricAccumulator(connectivity=connectivity, auprc_bins=1024)
        whole.update(prob, label, threshold=0.55)
        tiled = metrics.MetricAccumulator(connectivity=connectivity, auprc_bins=1024)

        def read(win, prob=prob, label=label):
            return prob[win[0]:win[1], win[2]:win[3]], label[win[0]:win[1], win[2]:win[3]]

        tiled.update_tiled(read, tile_windows(h, w, tile), threshold=0.55)
        a, b = whole.compute(), tiled.compute()
        assert a.keys() == b.keys()
        assert all(a[k] == b[k] or (np.isnan(a[k]) and np.isnan(b[k])) for k in a), (a, b)
