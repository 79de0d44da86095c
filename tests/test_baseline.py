"""The radar change-detection baseline: bright debris on runout terrain, small objects, steep slopes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sarcube.models import baseline, metrics

from sarcube import models
from sarcube.errors import InputError

SIZE = 64
DEBRIS_DB = 5.0


def _scene(seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """(1, 3, 64, 64) VV diff, VH diff (dB, speckle-like noise), slope (degrees) and the debris label.

    A large bright blob on 20-degree runout terrain (the avalanche), a tiny bright blob
    (speckle-sized), and a large bright blob on a 45-degree slope (release area, not debris).
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(1, 3, SIZE, SIZE)
    x[0, :2] = torch.randn(2, SIZE, SIZE, generator=g)
    x[0, 2] = 20.0
    label = np.zeros((1, SIZE, SIZE), dtype=np.uint8)
    x[0, :2, 10:20, 10:20] += DEBRIS_DB
    label[0, 10:20, 10:20] = 1
    x[0, :2, 40:42, 10:12] += DEBRIS_DB  # 4 pixels: below the minimum object size
    x[0, 2, 35:55, 35:55] = 45.0
    x[0, :2, 40:50, 40:50] += DEBRIS_DB  # bright, but too steep for debris
    return x, label


def test_detects_debris_drops_small_and_steep():
    x, label = _scene()
    det = models.build_model("baseline", 3, vv_channel=0, vh_channel=1, slope_channel=2)
    assert models.count_parameters(det) == 0
    p = det(x)
    assert p.shape == (1, 1, SIZE, SIZE)
    assert float(p.min()) >= 0.0 and float(p.max()) <= 1.0
    hit = p[0, 0] >= 0.5
    assert hit[10:20, 10:20].float().mean() > 0.8  # the avalanche
    assert not hit[40:42, 10:12].any()  # too small
    assert not hit[35:55, 35:55].any()  # too steep
    assert float(p[0, 0, 35:55, 35:55].max()) == 0.0
    scores = metrics.pixel_scores(p, label)
    assert scores["f1"] > 0.8
    assert metrics.object_scores(p, label) == {"tp": 1, "fn": 0, "fp": 0}
    # small objects are kept below 0.5 but above quiet pixels (AUPRC ranks them)
    assert float(p[0, 0, 40:42, 10:12].max()) > 0.25


def test_small_objects_return_with_a_lower_minimum_size():
    x, _ = _scene()
    det = models.build_model("baseline", 3, min_object_pixels=1)
    assert bool((det(x)[0, 0, 40:42, 10:12] >= 0.5).all())


def test_par_mask_and_nan_inputs():
    x, _ = _scene()
    par = torch.full((1, 1, SIZE, SIZE), 30.0)
    par[..., 10:15, :] = 10.0  # far from any release zone
    par[..., 15:17, :] = float("nan")  # no release zone within reach
    x4 = torch.cat([x, par], dim=1)
    det = models.build_model("baseline", 4, par_channel=3, min_object_pixels=1)
    p = det(x4)[0, 0]
    assert float(p[10:17].max()) == 0.0
    assert float((p[17:20, 10:20] >= 0.5).float().mean()) > 0.8
    x4[0, 0, 18, 12] = float("nan")
    assert float(det(x4)[0, 0, 18, 12]) == 0.0


def test_whole_image_statistics_and_threshold_floor():
    x, _ = _scene()
    det = models.build_model("baseline", 3, window=0, min_change_db=1.0)
    hit = det(x)[0, 0] >= 0.5
    assert hit[10:20, 10:20].float().mean() > 0.8
    # a uniform 3 dB rise everywhere is no local anomaly, and nothing under the dB floor is detected
    flat = torch.zeros(1, 3, 32, 32)
    flat[0, :2] = 3.0
    flat[0, 2] = 10.0
    assert float(models.build_model("baseline", 3)(flat).max()) <= 0.5
    quiet = flat.clone()
    quiet[0, :2] = 0.0
    quiet[0, :2, 8:16, 8:16] = 1.0  # a clear local anomaly, but only 1 dB
    assert not bool((models.build_model("baseline", 3)(quiet) >= 0.5).any())


def test_tune_threshold_pixel_level_picks_best_k():
    x, label = _scene(1)
    det = models.build_model("baseline", 3)
    grid = (0.5, 1.0, 2.0, 3.0, 6.0)
    result = baseline.tune_threshold(det, x, label, k_values=grid)
    brute = {}
    for k in grid:
        p = models.build_model("baseline", 3, k_std=k)(x)
        brute[k] = metrics.pixel_scores(p, label)["f1"]
    best = max(brute.values())
    assert result.parameter == "k_std" and result.score == pytest.approx(best)
    assert det.k_std == result.value and brute[result.value] == pytest.approx(best)
    # the tuned value travels in the state_dict, like a network's weights
    fresh = models.build_model("baseline", 3)
    fresh.load_state_dict(det.state_dict())
    assert fresh.k_std == result.value
    torch.testing.assert_close(fresh(x), det(x))
    with pytest.raises(InputError, match="metric"):
        baseline.tune_threshold(det, x, label, metric="auc")


def test_tune_threshold_patch_level():
    """Sinha et al.: a patch is positive from a tuned number of detected pixels on."""
    x, _ = _scene(2)
    patches = torch.cat([x[..., 8:24, 8:24], x[..., 0:16, 40:56], x[..., 48:64, 0:16], x[..., 8:24, 4:20]])
    labels = np.array([1, 0, 0, 1], dtype=np.uint8)
    # debris fills 40 % of a positive patch: whole-patch statistics need a small k
    det = models.build_model("baseline", 3, min_object_pixels=1, window=0, k_std=0.5)
    counts = (det(patches) >= 0.5).flatten(1).sum(1)
    assert counts[0] > 50 and counts[3] > 50 and counts[1] < 20 and counts[2] < 20, counts
    result = baseline.tune_threshold(det, patches, labels, level="patch", metric="balanced_accuracy")
    assert result.parameter == "patch_min_pixels" and result.score == 1.0
    p = det.patch_probability(patches)
    assert p.shape == (4,)
    assert ((p >= 0.5).numpy() == labels.astype(bool)).all()


def test_bad_configuration():
    with pytest.raises(InputError, match="slope_channel"):
        models.build_model("baseline", 2)
    with pytest.raises(InputError, match="window"):
        models.build_model("baseline", 3, window=10)
    with pytest.raises(InputError, match="shape"):
        models.build_model("baseline", 3)(torch.zeros(1, 2, 8, 8))
