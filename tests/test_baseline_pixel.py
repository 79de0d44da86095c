"""The per-pixel threshold baselines of the landslide and glacier presets (models/baseline_pixel.py)."""

from __future__ import annotations

import pytest
import torch

from sarcube.errors import InputError
from sarcube.models import build_model
from sarcube.models.baseline_pixel import ThresholdBaseline, tune_pixel_threshold


def _scars(seed: int = 0, n: int = 6, size: int = 48):
    """VV/VH before and after (dB) with speckle; square scars brighten VV by 3 dB and darken VH by 2 dB."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, size, size, generator=gen) * 0.8 + torch.tensor([-12.0, -18.0, -12.0, -18.0])[:, None, None]
    y = torch.zeros(n, size, size, dtype=torch.uint8)
    for i in range(n):
        r, c = 8 + 4 * i % 24, 10 + 3 * i % 20
        y[i, r : r + 10, c : c + 12] = 1
    x[:, 2] += 3.0 * y
    x[:, 3] -= 2.0 * y
    return x, y


def test_change_vector_finds_scars_whose_vv_and_vh_changes_cancel_in_their_mean():
    x, y = _scars()
    model = ThresholdBaseline(4, statistic="change_vector", before_channels=[0, 1], after_channels=[2, 3])
    result = tune_pixel_threshold(model, x, y, metric="f1")
    pred = model(x)[:, 0] >= 0.5
    tp = int((pred & (y == 1)).sum())
    f1 = 2 * tp / (int(pred.sum()) + int((y == 1).sum()))
    assert f1 == pytest.approx(result.score) and f1 > 0.85
    assert model.median_px > 1  # the speckle filter is switched on
    mean_change = 0.5 * ((x[:, 2] - x[:, 0]) + (x[:, 3] - x[:, 1]))  # +0.5 dB on the scars: mostly lost
    assert float(mean_change[y == 1].mean()) < 1.0


def test_level_tunes_the_sign_for_a_dark_target_and_survives_a_state_dict_round_trip():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(4, 1, 3, 40, 40, generator=gen) - 10.0  # a series (N, C, T, H, W)
    y = torch.zeros(4, 40, 40, dtype=torch.uint8)
    y[:, 5:25, 8:30] = 1
    x[:, 0, :] -= 4.0 * y[:, None].float()  # dark glacier
    y[:, 0, 0] = 255  # ignored
    model = build_model("threshold", 1, statistic="level")
    tune_pixel_threshold(model, x, y, metric="f1")
    assert model.sign == -1 and -14.0 < -model.threshold_db < -10.0
    copy = ThresholdBaseline(1)
    copy.load_state_dict(model.state_dict())
    assert copy.settings() == model.settings()
    torch.testing.assert_close(copy(x), model(x))


def test_nan_inputs_and_small_objects_are_not_detected():
    x, y = _scars(n=2)
    model = ThresholdBaseline(4, statistic="change_vector", before_channels=[0, 1], after_channels=[2, 3],
                              threshold_db=2.5, min_object_pixels=50)
    x[0, 2, 10:12, 12:14] = float("nan")
    out = model(x)
    assert float(out[0, 0, 10, 12]) == 0.0
    x[1, 2, 30:33, 30:33] += 10.0  # a 9-pixel bright blob
    assert (model(x)[1, 0, 30:33, 30:33] < 0.5).all()
    assert ((out >= 0) & (out <= 1)).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"statistic": "ratio"}, "statistic='ratio'"),
        ({"statistic": "change_vector"}, "change_vector needs"),
        ({"channels": [5]}, "not all indices"),
        ({"median_px": 2}, "odd median window"),
    ],
)
def test_bad_configuration(kwargs, message):
    with pytest.raises(InputError, match=message):
        ThresholdBaseline(4, **kwargs)
