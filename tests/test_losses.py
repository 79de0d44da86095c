"""Losses: reference formulas, label 255 ignored, stable, 0 (not NaN) with no valid pixel."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sarcube.models import losses


def _case(seed: int = 0, classes: int = 1):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, classes, 5, 7, generator=g) * 3
    target = (torch.rand(2, 5, 7, generator=g) < 0.4).to(torch.uint8)
    target[0, :2] = 255
    return logits.requires_grad_(), target


def test_weighted_bce_matches_reference_on_valid_pixels():
    logits, target = _case()
    loss = losses.weighted_bce(logits, target, pos_weight=2.0)
    valid = target != 255
    z, y = logits[:, 0][valid], target[valid].float()
    expected = F.binary_cross_entropy_with_logits(z, y, pos_weight=torch.tensor(2.0))
    torch.testing.assert_close(loss, expected)
    # by hand for one positive and one negative pixel
    one = losses.weighted_bce(torch.tensor([[[[0.5, -1.0]]]]), torch.tensor([[[1, 0]]], dtype=torch.uint8))
    by_hand = (2.0 * -math.log(1 / (1 + math.exp(-0.5))) + -math.log(1 - 1 / (1 + math.exp(1.0)))) / 2
    assert float(one) == pytest.approx(by_hand)


@pytest.mark.parametrize("name", ["weighted_bce", "cross_entropy", "focal_loss"])
def test_ignored_pixels_do_not_matter(name):
    classes = 2 if name == "cross_entropy" else 1
    logits, target = _case(1, classes)
    fn = getattr(losses, name)
    loss = fn(logits, target)
    loss.backward()
    ignored = (target == 255).unsqueeze(1).expand_as(logits)
    assert torch.all(logits.grad[ignored] == 0)
    changed = logits.detach().clone()
    changed[ignored] = 1e3
    torch.testing.assert_close(fn(changed, target), loss.detach())


@pytest.mark.parametrize("name", ["weighted_bce", "cross_entropy", "focal_loss"])
def test_no_valid_pixel_gives_zero_not_nan(name):
    classes = 2 if name == "cross_entropy" else 1
    logits = torch.randn(1, classes, 3, 3, requires_grad=True)
    target = torch.full((1, 3, 3), 255, dtype=torch.uint8)
    loss = getattr(losses, name)(logits, target)
    assert float(loss) == 0.0
    loss.backward()
    assert torch.all(logits.grad == 0)


@pytest.mark.parametrize("name", ["weighted_bce", "cross_entropy", "focal_loss"])
def test_extreme_logits_stay_finite(name):
    classes = 2 if name == "cross_entropy" else 1
    logits = torch.tensor([1e4, -1e4, 1e4, -1e4]).view(1, 1, 2, 2).repeat(1, classes, 1, 1)
    if classes == 2:
        logits[:, 0] = -logits[:, 1]
    logits.requires_grad_()
    target = torch.tensor([[[1, 1], [0, 0]]], dtype=torch.uint8)
    loss = getattr(losses, name)(logits, target)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert float(loss) > 1.0  # two pixels confidently wrong


def test_cross_entropy_matches_torch():
    logits, target = _case(2, classes=2)
    expected = F.cross_entropy(logits, target.long(), ignore_index=255)
    torch.testing.assert_close(losses.cross_entropy(logits, target), expected)
    torch.testing.assert_close(losses.cross_entropy(logits, target.unsqueeze(1)), expected)
    patch = torch.tensor([[2.0, -1.0], [0.0, 3.0]])
    torch.testing.assert_close(
        losses.cross_entropy(patch, torch.tensor([1, 1])), F.cross_entropy(patch, torch.tensor([1, 1]))
    )


def test_focal_reduces_to_bce_and_hand_value():
    logits, target = _case(3)
    plain = losses.focal_loss(logits, target, gamma=0.0, label_smoothing=0.0)
    torch.testing.assert_close(plain, losses.weighted_bce(logits, target, pos_weight=1.0))
    # the 2-class form with logits (0, z) equals the 1-channel form with z
    two = torch.cat([torch.zeros_like(logits), logits], dim=1)
    torch.testing.assert_close(losses.focal_loss(two, target), losses.focal_loss(logits, target))
    # one pixel by hand: z = 1, y = 1, smoothing 0.1 -> y' = 0.95; gamma 2; alpha 0.25
    p = 1 / (1 + math.exp(-1.0))
    y = 0.95
    ce = -(y * math.log(p) + (1 - y) * math.log(1 - p))
    pt = y * p + (1 - y) * (1 - p)
    a = 0.25 * y + 0.75 * (1 - y)
    value = losses.focal_loss(torch.ones(1, 1, 1, 1), torch.ones(1, 1, 1, dtype=torch.uint8), alpha=0.25)
    assert float(value) == pytest.approx(a * (1 - pt) ** 2 * ce)
    # focusing: never more than the smoothed cross-entropy
    assert float(losses.focal_loss(logits, target)) <= float(losses.focal_loss(logits, target, gamma=0.0))


def test_vae_loss_terms():
    x = torch.randn(2, 3, 8, 8)
    recon = x + 0.5
    zeros = torch.zeros(2, 6, 1, 1)
    total, mse, kl = losses.vae_loss(recon, x, zeros, zeros)
    assert float(mse) == pytest.approx(0.25) and float(kl) == 0.0 and float(total) == pytest.approx(0.25)
    mu, logvar = torch.ones(2, 6, 1, 1), torch.zeros(2, 6, 1, 1)
    total, mse, kl = losses.vae_loss(recon, x, mu, logvar, kl_weight=0.1)
    assert float(kl) == pytest.approx(0.5) and float(total) == pytest.approx(0.25 + 0.05)
    # NaN inputs and masked pixels are left out of the MSE
    y = x.clone()
    y[0, :, 0] = float("nan")
    recon_y = torch.where(torch.isnan(y), torch.full_like(y, 100.0), y + 0.5)
    assert float(losses.vae_loss(recon_y, y, zeros, zeros)[1]) == pytest.approx(0.25)
    mask = torch.ones(2, 8, 8, dtype=torch.bool)
    mask[1, :, :4] = False
    recon_m = recon.clone()
    recon_m[1, :, :, :4] = -50.0
    assert float(losses.vae_loss(recon_m, x, zeros, zeros, mask=mask)[1]) == pytest.approx(0.25)
