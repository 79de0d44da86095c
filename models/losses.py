"""Training losses; every one ignores label 255 and averages over the valid pixels only.

Targets are integer tensors (uint8 or long) of 0/1/255, shaped like the logits without
the class axis: (N, H, W) or (N, 1, H, W) for segmentation, (N,) for patches. With no
valid pixel a loss is 0 (still attached to the graph), never NaN. All are computed in
float32 from logits (log-sigmoid / log-softmax), so they are stable under bf16 autocast.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sarcube.errors import InputError

from ._blocks import valid_mask

IGNORE_INDEX = 255
POS_WEIGHT = 2.0  # avalanche-fcn-bianchi IV-A: avalanche errors weigh twice as much
FOCAL_GAMMA = 2.0  # Lin et al. 2017
LABEL_SMOOTHING = 0.1
KL_WEIGHT = 0.1  # avalanche-vae 2: "a weight of 0.1 for the KL loss term"


def _binary_target(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Target shaped like 1-channel logits: (N, H, W) becomes (N, 1, H, W)."""
    if target.shape != logits.shape and target.dim() == logits.dim() - 1 and logits.shape[1] == 1:
        target = target.unsqueeze(1)
    if target.shape != logits.shape:
        raise InputError(f"target shape {tuple(target.shape)} does not fit logits shape {tuple(logits.shape)}")
    return target


def _class_target(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Target for class logits (N, K, ...): (N, 1, ...) becomes (N, ...)."""
    if target.dim() == logits.dim() and target.shape[1] == 1:
        target = target[:, 0]
    if target.shape != logits.shape[:1] + logits.shape[2:]:
        raise InputError(f"target shape {tuple(target.shape)} does not fit class logits shape {tuple(logits.shape)}")
    return target.long()


def _masked_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    total = torch.where(valid, values, torch.zeros_like(values)).sum()
    return total / valid.sum().clamp_min(1)


def weighted_bce(
    logits: torch.Tensor, target: torch.Tensor, pos_weight: float = POS_WEIGHT, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """Binary cross-entropy on (N, 1, ...) logits with positives weighted ``pos_weight`` times."""
    target = _binary_target(logits, target)
    valid = target != ignore_index
    y = torch.where(valid, target, torch.zeros_like(target)).float()
    weight = torch.tensor(pos_weight, dtype=torch.float32, device=logits.device)
    loss = F.binary_cross_entropy_with_logits(logits.float(), y, pos_weight=weight, reduction="none")
    return _masked_mean(loss, valid)


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Cross-entropy on class logits (N, K, ...) (two-class nets: resnet_unet, patch_cnn)."""
    target = _class_target(logits, target)
    valid = target != ignore_index
    loss = F.cross_entropy(logits.float(), torch.where(valid, target, 0), reduction="none")
    return _masked_mean(loss, valid)


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: float = FOCAL_GAMMA,
    alpha: float | None = None,
    label_smoothing: float = LABEL_SMOOTHING,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """Focal loss with label smoothing (glacier-timeseries 3), on (N, 1, ...) or (N, 2, ...) logits.

    With smoothed targets y' = y (1 - s) + s / 2 and p the positive-class probability,
    loss = a(y') * (1 - p_t)**gamma * CE(y', p), where p_t = y' p + (1 - y')(1 - p) and
    CE the (soft-target) binary cross-entropy. ``alpha`` None weighs both classes alike;
    a number a gives a(y') = a y' + (1 - a)(1 - y') (Lin et al.'s class balance).
    """
    if not 0.0 <= label_smoothing < 1.0:
        raise InputError(f"focal_loss: label_smoothing={label_smoothing}; use a value in [0, 1)")
    if logits.dim() >= 2 and logits.shape[1] == 2:
        target = _class_target(logits, target)
        log_p = F.log_softmax(logits.float(), dim=1)
        log_pos, log_neg = log_p[:, 1], log_p[:, 0]
    else:
        target = _binary_target(logits, target)
        z = logits.float()
        log_pos, log_neg = F.logsigmoid(z), F.logsigmoid(-z)
    valid = target != ignore_index
    y = torch.where(valid, target, torch.zeros_like(target)).float()
    y = y * (1.0 - label_smoothing) + 0.5 * label_smoothing
    ce = -(y * log_pos + (1.0 - y) * log_neg)
    p = log_pos.exp()
    p_t = y * p + (1.0 - y) * (1.0 - p)
    loss = (1.0 - p_t).clamp_min(0).pow(gamma) * ce
    if alpha is not None:
        loss = (alpha * y + (1.0 - alpha) * (1.0 - y)) * loss
    return _masked_mean(loss, valid)


def vae_loss(
    recon: torch.Tensor,
    x: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    kl_weight: float = KL_WEIGHT,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """VAE loss (avalanche-vae): ``(total, mse, kl)`` with total = mse + kl_weight * kl.

    mse: mean squared error over the finite (and ``mask``-ed, True = use) values of ``x``;
    kl: KL(q(z|x) || N(0, I)) averaged over samples and latent units
    (-0.5 mean(1 + logvar - mu**2 - exp(logvar))), so both terms are per-value means.
    """
    valid = valid_mask(x, mask)
    diff = recon.float() - torch.where(valid, x, torch.zeros_like(x)).float()
    mse = _masked_mean(diff * diff, valid)
    mu, logvar = mu.float(), logvar.float()
    kl = -0.5 * torch.mean(1.0 + logvar - mu * mu - logvar.exp())
    return mse + kl_weight * kl, mse, kl
