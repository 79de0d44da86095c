"""Whole-scene inference: dihedral TTA, spline blending, band streaming (models/inference.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sarcube.errors import InputError
from sarcube.models.inference import (
    DIHEDRAL_TRANSFORMS,
    TilingPlan,
    mirror_index,
    predict_bands,
    predict_scene,
    spline_profile,
    tta_predict,
)


def _symmetric_conv(channels: int, seed: int = 0) -> nn.Conv2d:
    """A 3x3 conv whose kernels are invariant under all 8 symmetries of the square."""
    g = torch.Generator().manual_seed(seed)
    conv = nn.Conv2d(channels, 1, 3, padding=1)
    centre, edge, corner = torch.randn(3, channels, generator=g)
    k = torch.empty(1, channels, 3, 3)
    k[0, :, 1, 1] = centre
    for i, j in ((0, 1), (1, 0), (1, 2), (2, 1)):
        k[0, :, i, j] = edge
    for i, j in ((0, 0), (0, 2), (2, 0), (2, 2)):
        k[0, :, i, j] = corner
    with torch.no_grad():
        conv.weight.copy_(k)
    return conv


def _prob(net: nn.Module):
    return lambda x: torch.sigmoid(net(x))


def test_dihedral_group_inverts_and_is_complete():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 3, 5, 5)
    images = set()
    for t in DIHEDRAL_TRANSFORMS:
        assert torch.equal(t.invert(t.apply(x)), x)
        images.add(tuple(t.apply(x)[0, 0].flatten().tolist()))
    assert len(images) == 8  # eight distinct symmetries


def test_tta_is_exactly_invariant_for_a_pointwise_network():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(), nn.Conv2d(8, 1, 1)).eval()
    chips = torch.randn(4, 3, 12, 12)
    with torch.no_grad():
        plain = torch.sigmoid(net(chips))[:, 0]
        tta = tta_predict(_prob(net), chips)
    # equal up to float rounding: a rotated, non-contiguous input may be summed in another order by
    # the conv kernels (it depends on the thread count torch runs with)
    torch.testing.assert_close(tta, plain, rtol=0, atol=1e-6)


def test_tta_is_invariant_for_a_symmetric_kernel_and_scene_maps_match():
    net = _symmetric_conv(2).eval()
    image = torch.randn(2, 37, 29, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        with_tta = predict_scene(_prob(net), image, 16, tta=True, batch_size=16)
        without = predict_scene(_prob(net), image, 16, tta=False, batch_size=16)
    torch.testing.assert_close(with_tta, without, rtol=0, atol=1e-6)


def test_tta_averages_the_back_transformed_outputs_of_a_directional_network():
    torch.manual_seed(0)
    net = nn.Conv2d(1, 1, 3, padding=1).eval()  # not symmetric: TTA changes the output
    chips = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        expected = torch.stack([t.invert(torch.sigmoid(net(t.apply(chips)))[:, 0]) for t in DIHEDRAL_TRANSFORMS]).mean(
            0
        )
        got = tta_predict(_prob(net), chips)
        plain = torch.sigmoid(net(chips))[:, 0]
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, plain)


def test_spline_profile_is_a_partition_of_unity_at_half_window_shift():
    for size in (8, 16, 160):
        p = spline_profile(size)
        half = size // 2
        torch.testing.assert_close(p[:half] + p[half:], torch.ones(half), rtol=0, atol=1e-6)
        assert p.min() > 0 and p.max() <= 1
        torch.testing.assert_close(p, p.flip(0))


@pytest.mark.parametrize(
    ("height", "width", "window"), [(37, 53, 16), (5, 7, 16), (64, 64, 16), (41, 23, 15), (1, 1, 4)]
)
def test_constant_network_gives_the_constant_everywhere(height, width, window):
    value = 0.37

    def constant(x):
        return torch.full((x.shape[0], x.shape[2], x.shape[3]), value)

    out = predict_scene(constant, torch.randn(2, height, width), window)
    assert out.shape == (height, width)
    torch.testing.assert_close(out, torch.full((height, width), value), rtol=0, atol=1e-6)


def test_chip_level_scores_are_broadcast_over_their_window():
    def chip_score(x):  # a classifier: one probability per chip
        return torch.full((x.shape[0],), 0.8)

    out = predict_scene(chip_score, torch.randn(1, 20, 20), 8)
    torch.testing.assert_close(out, torch.full((20, 20), 0.8), rtol=0, atol=1e-6)


def test_pointwise_network_is_reproduced_without_seams():
    image = torch.randn(3, 45, 70, generator=torch.Generator().manual_seed(2))
    out = predict_scene(lambda x: torch.sigmoid(x[:, 0]), image, 16)
    torch.testing.assert_close(out, torch.sigmoid(image[0]), rtol=0, atol=1e-6)


def test_band_streaming_equals_whole_scene():
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 1, 3, padding=1)).eval()
    image = torch.randn(2, 50, 37, generator=torch.Generator().manual_seed(3))
    whole = predict_scene(_prob(net), image, 12, batch_size=24)
    reads = []

    def read(y0, y1):
        reads.append((y0, y1))
        return image[:, y0:y1]

    bands = list(predict_bands(_prob(net), read, 50, 37, 12, band_rows=8, batch_size=24))
    assert [y0 for y0, _ in bands] == list(range(0, 50, 8))
    assert reads == [(y0, min(y0 + 8, 50)) for y0 in range(0, 50, 8)]  # each input row read once, in aligned blocks
    assert torch.equal(torch.cat([b for _, b in bands]), whole)


def test_nodata_inputs_give_nan_probability_and_do_not_spread():
    image = torch.randn(2, 20, 20)
    image[0, 3, 4] = float("nan")
    out = predict_scene(lambda x: torch.sigmoid(x.sum(1)), image, 8)
    assert torch.isnan(out[3, 4])
    assert torch.isfinite(out).sum() == 20 * 20 - 1


def test_tiling_plan_counts_windows_and_mirrors_indices():
    plan = TilingPlan(100, 33, 16)
    assert plan.stride == 8 and plan.pad == 8
    assert plan.rows == 100 // 8 + 2 and plan.cols == 33 // 8 + 2
    assert plan.start(0) == -8 and plan.start(plan.rows - 1) + 16 >= 100 + 8
    assert mirror_index(torch.tensor([-2, -1, 0, 4, 5, 6, 12]), 5).tolist() == [1, 0, 0, 4, 4, 3, 2]
    with pytest.raises(InputError):
        TilingPlan(10, 10, 1)


def test_time_series_inputs_are_tiled_on_their_last_two_dims():
    image = torch.randn(2, 3, 21, 18, generator=torch.Generator().manual_seed(4))  # (C, T, H, W)
    out = predict_scene(lambda x: torch.sigmoid(x[:, 0].mean(1)), image, 8)
    torch.testing.assert_close(out, torch.sigmoid(image[0].mean(0)), rtol=0, atol=1e-6)



def _smooth_field(n: int, size: int, seed: int) -> torch.Tensor:
    """Smooth PAR-like fields (n, 1, size, size): noise averaged over 9 x 9 pixels, unit variance."""
    noise = torch.randn(n, 1, size + 8, size + 8, generator=torch.Generator().manual_seed(seed))
    field = nn.functional.avg_pool2d(noise, 9, stride=1)
    return (field - field.mean()) / field.std()


def _sensitive_par_attention(symmetric_mask_net: bool):
    """A tiny random-weight par_attention net whose output depends on its mask (BN statistics far from identity)."""
    from sarcube.models import build_model

    torch.manual_seed(0)
    model = build_model("par_attention", 5, base_channels=4, depth=2, attention_channels=4, dropout=0.0)
    with torch.no_grad():
        for m in model.unet.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.01, 0.05)
        for m in model.attention.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.mul_(3.0)
                if symmetric_mask_net:  # each 3x3 kernel averaged over the 8 symmetries: an equivariant mask net
                    m.weight.copy_(torch.stack([t.apply(m.weight) for t in DIHEDRAL_TRANSFORMS]).mean(0))
    model.eval()
    chips = torch.randn(3, 5, 16, 16, generator=torch.Generator().manual_seed(1))
    chips[:, model.par_channel : model.par_channel + 1] = _smooth_field(3, 16, 2)
    return model, chips


def test_attention_mask_once_per_window_is_rotated_with_the_window():
    from sarcube.models import window_probability_fn
    from sarcube.models.inference import MASK_ONCE, MaskedProbabilityFn

    model, chips = _sensitive_par_attention(symmetric_mask_net=True)
    once_fn = window_probability_fn(model, MASK_ONCE)
    assert isinstance(once_fn, MaskedProbabilityFn)
    assert not isinstance(window_probability_fn(model), MaskedProbabilityFn)  # the default: exact TTA
    with torch.no_grad():
        per_transform = tta_predict(window_probability_fn(model), chips)
        once = tta_predict(once_fn, chips)
        mask = model.attention_mask(chips)
        unrotated = torch.stack([  # the mask of the unrotated window given to every copy: wrong
            t.invert(torch.sigmoid(model.forward_with_mask(t.apply(chips), mask))[:, 0]) for t in DIHEDRAL_TRANSFORMS
        ]).mean(0)
        without_tta = tta_predict(once_fn, chips, DIHEDRAL_TRANSFORMS[:1])
        plain = torch.sigmoid(model(chips))[:, 0]
    # an equivariant mask net commutes with the rotations: once per window is then exact
    torch.testing.assert_close(once, per_transform, rtol=0, atol=1e-5)
    assert float((unrotated - per_transform).abs().max()) > 1e-2
    torch.testing.assert_close(without_tta, plain, rtol=0, atol=1e-6)


def test_attention_mask_once_is_not_exact_for_a_directional_mask_net():
    """Why ``per-transform`` stays the default: 3x3 mask convolutions are not rotation-equivariant."""
    from sarcube.models import window_probability_fn
    from sarcube.models.inference import MASK_ONCE

    model, chips = _sensitive_par_attention(symmetric_mask_net=False)
    with torch.no_grad():
        per_transform = tta_predict(window_probability_fn(model), chips)
        once = tta_predict(window_probability_fn(model, MASK_ONCE), chips)
    assert float((once - per_transform).abs().max()) > 1e-3


def test_column_panels_equal_full_width_bands_and_read_only_their_columns():
    """predict_tiles in panels of 10 columns gives predict_bands' map bit for bit (the maps of windows straddling
    two panels handed on: each window runs once), reading a panel's columns plus a window of halo, not the width."""
    from sarcube.models.inference import TilingPlan
    from sarcube.models.inference_tiles import predict_tiles

    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 1, 3, padding=1)).eval()
    image = torch.randn(2, 50, 37, generator=torch.Generator().manual_seed(3))
    image[:, 20, 14] = float("nan")
    whole = predict_scene(_prob(net), image, 12, batch_size=24)
    tiled = torch.full_like(whole, -1.0)
    reads, progress = [], []

    def read(y0, y1, x0, x1):
        reads.append((x0, x1))
        return image[:, y0:y1, x0:x1]

    for y0, x0, tile in predict_tiles(_prob(net), read, 50, 37, 12, band_rows=8, tile_cols=10, batch_size=24,
                                      on_batch=progress.append):
        assert tile.shape == (min(8, 50 - y0), min(10, 37 - x0))
        tiled[y0 : y0 + tile.shape[0], x0 : x0 + tile.shape[1]] = tile
    assert torch.equal(tiled.nan_to_num(-2.0), whole.nan_to_num(-2.0)) and torch.isnan(tiled[20, 14])
    assert max(x1 - x0 for x0, x1 in reads) <= 10 + 2 * 12
    assert progress == sorted(progress) and progress[-1] == TilingPlan(50, 37, 12).windows  # each window once
