"""The training loop on tensors: loss per task, validation, optimiser, schedule, epochs.

Everything here takes batches, a model and a :class:`~sarcube.models.config.TrainingConfig`
and returns numbers; the ``train`` step of :mod:`sarcube.pipelines` opens the
cube, builds the loaders and writes what :func:`fit` yields (checkpoints,
metrics, plots). A batch is ``(x, y, chip_ids)``: inputs (N, C, [T,] H, W),
labels (N, H, W) of 0/1/255 and the chips' ids.

Per task: ``segmentation`` trains every labelled pixel, ``classification`` a
chip label (:func:`chip_targets`), ``anomaly`` the VAE's
reconstruction (its score threshold is tuned on validation), ``baseline``
nothing (its detection threshold is tuned on validation: ``k`` for a map, the
count of detected pixels for ``model.level: patch``, Sinha et al.'s rule).
Patch models (classification, anomaly, patch baseline) are validated per
chip, on the centre crop the validation stream cuts, as ``evaluate`` scores them.
With ``train.tune_threshold`` a segmentation or classification network picks its
probability threshold on validation every epoch: an uncalibrated network is scored,
selected and later thresholded at its own operating point, not at an arbitrary 0.5.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from sarcube.errors import InputError, TrainingDataError
from sarcube.models import losses, metrics, probability
from sarcube.models.baseline import tune_threshold
from sarcube.models.baseline_pixel import ThresholdBaseline, tune_pixel_threshold
from sarcube.models.config import (
    LEVEL_PATCH,
    TASK_ANOMALY,
    TASK_BASELINE,
    TASK_CLASSIFICATION,
    TASK_SEGMENTATION,
    TrainingConfig,
)
from sarcube.models.device import autocast_context
from sarcube.models.vae import anomaly_score

#: label of a positive pixel (0 = negative, ``losses.IGNORE_INDEX`` = unknown)
POSITIVE_LABEL = 1
#: a tuned probability threshold stays this far inside (0, 1), where predictions and evaluate accept it
THRESHOLD_MARGIN = 1e-6
#: epoch seeds are ``seed * EPOCH_SEED_STRIDE + epoch``: runs with neighbouring seeds never share an epoch's draws
EPOCH_SEED_STRIDE = 100_003

#: a batch: inputs, labels and chip ids
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
#: what a validation gives: loss, metric and the details it tuned
Scores = tuple[float, float, dict[str, Any]]


def chip_targets(y: torch.Tensor, min_positive_pixels: int) -> torch.Tensor:
    """Chip labels (N,) from label chips (N, H, W): 1 with >= min_positive_pixels positives, 0, or 255 if unlabelled."""
    pos = (y == POSITIVE_LABEL).flatten(1).sum(1)
    labelled = (y != losses.IGNORE_INDEX).flatten(1).any(1)
    t = (pos >= min_positive_pixels).long()
    return torch.where(labelled, t, torch.full_like(t, losses.IGNORE_INDEX))


def compute_loss(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, config: TrainingConfig
) -> tuple[torch.Tensor, Any]:
    """Loss of one batch and the raw output."""
    task, cfg = config.model.task, config.loss
    out = model(x)
    if task == TASK_ANOMALY:
        recon, mu, logvar = out
        return losses.vae_loss(recon, x, mu, logvar, kl_weight=cfg.kl_weight)[0], out
    target = chip_targets(y, config.min_positive_pixels) if task == TASK_CLASSIFICATION else y.long()
    if cfg.name == "bce":
        return losses.weighted_bce(out, target, pos_weight=cfg.pos_weight), out
    if cfg.name == "ce":
        return losses.cross_entropy(out, target), out
    if cfg.name == "focal":
        return losses.focal_loss(out, target, gamma=cfg.gamma, label_smoothing=cfg.label_smoothing), out
    raise InputError(f"preset {config.name!r}: loss.name {cfg.name!r} unknown, use bce, ce, focal or vae")


@torch.no_grad()
def validate(
    model: torch.nn.Module, batches: Iterable[Batch], config: TrainingConfig, device: torch.device, max_steps: int = 0
) -> Scores:
    """Validation loss, metric and details; tunes the operating point where the preset says so.

    ``max_steps`` caps the batches (0 = all). The details hold what was tuned:
    ``score_threshold`` (VAE, also stored in the model), every tuned setting of the baseline map,
    ``patch_min_pixels`` (baseline per patch, Sinha et al.'s rule, stored in the
    detector) or ``threshold`` (a classifier's probability, with ``train.tune_threshold``).
    Patch models are scored per chip as :func:`chip_targets` labels them.
    """
    task, metric = config.model.task, config.train.metric
    model.eval()
    total, n = 0.0, 0
    acc = metrics.MetricAccumulator(threshold=config.train.threshold, objects=False, auprc=metric == "auprc")
    tune = config.train.tune_threshold and task in (TASK_SEGMENTATION, TASK_CLASSIFICATION)
    scores: list[np.ndarray] = []
    targets: list[np.ndarray] = []
    xs: list[torch.Tensor] = []
    ys: list[torch.Tensor] = []
    for i, (x, y, _) in enumerate(batches):
        if max_steps and i >= max_steps:
            break
        x, y = x.to(device), y.to(device)
        if task == TASK_BASELINE:
            xs.append(x.cpu())
            ys.append(y.cpu())
            continue
        with autocast_context(device):
            loss, out = compute_loss(model, x, y, config)
        total += float(loss.detach()) * x.shape[0]
        n += x.shape[0]
        if task == TASK_ANOMALY:
            scores.append(anomaly_score(model, x.float()).cpu().numpy())
            targets.append(chip_targets(y, config.min_positive_pixels).cpu().numpy())
            continue
        prob = probability(model, out).float()
        if task == TASK_CLASSIFICATION:
            p, t = prob.cpu().numpy(), chip_targets(y, config.min_positive_pixels).cpu().numpy()
        else:
            p, t = prob[:, 0].cpu().numpy(), y.cpu().numpy()
        acc.update(p, t)
        if tune:  # every scored pixel (or chip) for the operating point
            keep = (t != losses.IGNORE_INDEX) & np.isfinite(p)
            scores.append(p[keep])
            targets.append(t[keep])
    details: dict[str, Any] = {}
    if task == TASK_BASELINE and config.model.prediction_level == LEVEL_PATCH:
        return _validate_patch_baseline(model, torch.cat(xs), torch.cat(ys), config)
    if task == TASK_BASELINE:
        x, y = torch.cat(xs), torch.cat(ys)
        if config.train.tune_threshold:
            tuner = tune_pixel_threshold if isinstance(model, ThresholdBaseline) else tune_threshold
            result = tuner(model, x, y, metric=_threshold_metric(metric))
            details.update(result.values)  # every tuned setting, into the run's details
        acc.update(model(x)[:, 0].numpy(), y.numpy())
        return float("nan"), float(acc.compute()[metric]), details
    val_loss = total / max(n, 1)
    if task == TASK_ANOMALY:
        s, t = np.concatenate(scores), np.concatenate(targets)
        threshold, value = metrics.best_threshold(s, t, metric=metric)
        model.set_threshold(max(threshold, 1e-12))
        details["score_threshold"] = threshold
        return val_loss, value, details
    if tune and scores and np.concatenate(targets).any():
        s, t = np.concatenate(scores), np.concatenate(targets)
        threshold, _ = metrics.best_threshold(s, t, metric=_threshold_metric(metric))
        details["threshold"] = min(max(threshold, THRESHOLD_MARGIN), 1.0 - THRESHOLD_MARGIN)
        acc = metrics.MetricAccumulator(threshold=details["threshold"], objects=False, auprc=metric == "auprc")
        acc.update(s, t)
    return val_loss, float(acc.compute()[metric]), details


def _threshold_metric(metric: str) -> str:
    """The metric an operating point is tuned for: the validation metric, or F1 when it needs no threshold."""
    return metric if metric in metrics.THRESHOLD_METRICS else "f1"


def _validate_patch_baseline(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, config: TrainingConfig
) -> tuple[float, float, dict[str, Any]]:
    """Sinha et al.'s rule on the validation patches: tune the detected-pixel count, score per patch.

    ``x`` the (centre-cropped) validation chips, ``y`` their labels; a patch's
    label is :func:`chip_targets`', its score the detector's ``patch_probability``.
    """
    metric = config.train.metric
    target = chip_targets(y, config.min_positive_pixels)
    details: dict[str, Any] = {}
    if config.train.tune_threshold:
        tune_threshold(model, x, target, metric=_threshold_metric(metric), level="patch")
        details["patch_min_pixels"] = float(model.patch_min_pixels)
    acc = metrics.MetricAccumulator(threshold=config.train.threshold, objects=False, auprc=metric == "auprc")
    acc.update(model.patch_probability(x).numpy(), target.numpy())
    return float("nan"), float(acc.compute()[metric]), details


# --- optimiser and schedule -------------------------------------------------------

def make_optimizer(model: torch.nn.Module, config: TrainingConfig) -> torch.optim.Optimizer:
    """The optimiser of ``config.optim`` over the trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    o = config.optim
    if not params:
        params = [torch.nn.Parameter(torch.zeros(1))]  # the baseline has no weights; keep one optimiser type
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
    if o.name == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    raise InputError(f"preset {config.name!r}: optim.name {o.name!r} unknown, use adam, adamw or sgd")


def cosine_restart_factor(epoch: int, cycles: Sequence[int], min_factor: float = 0.0) -> float:
    """Learning-rate factor at ``epoch``: cosine decay within each cycle, back to 1 at each restart."""
    start = 0
    k = 0
    while True:
        length = int(cycles[min(k, len(cycles) - 1)])
        if epoch < start + length:
            t = (epoch - start) / length
            return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * t))
        start += length
        k += 1


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainingConfig) -> Any:
    """The learning-rate schedule of ``config.schedule`` (None for ``none``), stepped by :func:`step_scheduler`."""
    s = config.schedule
    if s.name == "none":
        return None
    if s.name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=s.factor, patience=s.patience, threshold=s.threshold
        )
    if s.name == "cosine_restarts":
        if not s.cycles or min(s.cycles) < 1:
            raise InputError(f"preset {config.name!r}: schedule.cycles must be positive epoch counts")
        cycles, floor = tuple(s.cycles), s.min_lr / config.optim.lr if config.optim.lr else 0.0
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: cosine_restart_factor(e, cycles, floor))
    raise InputError(
        f"preset {config.name!r}: schedule.name {s.name!r} unknown, use none, plateau or cosine_restarts"
    )


def step_scheduler(scheduler: Any, val_loss: float) -> None:
    """Advance the schedule by one epoch (a plateau schedule watches the validation loss)."""
    if scheduler is None:
        return
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(val_loss)
    else:
        scheduler.step()


# --- epochs ----------------------------------------------------------------------

def epoch_seed(seed: int, epoch: int) -> int:
    """The torch seed of one epoch (weights' dropout and the loader's draws)."""
    return seed * EPOCH_SEED_STRIDE + epoch


def train_epoch(
    model: torch.nn.Module,
    batches: Iterable[Batch],
    optimizer: torch.optim.Optimizer,
    config: TrainingConfig,
    device: torch.device,
    on_batch: Callable[[int, float], None] | None = None,
) -> tuple[float, int]:
    """One pass over ``batches`` (at most ``train.steps_per_epoch``): mean loss per chip and optimiser steps.

    ``on_batch(batches_done, mean_loss_so_far)`` is called after each step (e.g. a progress bar).
    """
    t = config.train
    model.train()
    running, seen, steps = 0.0, 0, 0
    for i, (x, y, _) in enumerate(batches):
        if t.steps_per_epoch and i >= t.steps_per_epoch:
            break
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        with autocast_context(device):
            loss, _ = compute_loss(model, x, y, config)
        value = float(loss.detach())
        if not math.isfinite(value):  # stop before a NaN step spoils the weights
            raise TrainingDataError(
                f"training loss is {value} at step {steps + 1}: the chips hold NaN or infinite inputs "
                "(check the cube's layers with `sarcube info`) or train.lr is too high"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if t.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        optimizer.step()
        steps += 1
        running += value * x.shape[0]
        seen += x.shape[0]
        if on_batch is not None:
            on_batch(steps, running / seen)
    if seen == 0:
        raise TrainingDataError("the training split gave no batch: lower train.batch_size or check the chip selection")
    return running / seen, steps


@dataclass(frozen=True)
class Progress:
    """Where training stands after an epoch (what a checkpoint keeps to resume)."""

    #: the next epoch to run
    epoch: int = 0
    #: optimiser steps taken so far
    step: int = 0
    #: best validation metric so far (-inf before the first finite one)
    best: float = -math.inf
    #: epochs since the best one
    epochs_since_best: int = 0


@dataclass(frozen=True)
class EpochResult:
    """What one epoch of :func:`fit` did."""

    epoch: int
    #: optimiser steps so far, this epoch included
    step: int
    #: mean training loss per chip
    train_loss: float
    val_loss: float
    val_metric: float
    #: what validation tuned (see :func:`validate`)
    details: dict[str, Any] = field(default_factory=dict)
    #: the validation metric beat the best so far
    improved: bool = False
    best: float = -math.inf
    epochs_since_best: int = 0
    #: learning rate after the schedule's step
    lr: float = 0.0
    #: ``time.perf_counter()`` when the epoch began
    started_s: float = 0.0
    #: early stopping ends training after this epoch
    stop: bool = False

    @property
    def progress(self) -> Progress:
        return Progress(self.epoch + 1, self.step, self.best, self.epochs_since_best)


def fit(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    train_batches: Callable[[int], Iterable[Batch]],
    val_batches: Iterable[Batch],
    config: TrainingConfig,
    device: torch.device,
    start: Progress = Progress(),
    on_batch: Callable[[int, float], None] | None = None,
    train_model: torch.nn.Module | None = None,
    agree: Callable[[Scores], Scores] | None = None,
) -> Iterator[EpochResult]:
    """Train epochs ``start.epoch`` .. ``train.epochs - 1``, yielding after each one's validation and schedule step.

    ``train_batches(epoch)`` gives the epoch's batches; it is called after the
    epoch's torch seed (:func:`epoch_seed`) is set, so the same seed gives the
    same run, resumed or not. A NaN score (e.g. AUPRC without positives) never
    counts as an improvement, and a NaN best is replaced by the first finite
    score. Stops after ``train.early_stopping`` epochs without improvement.
    ``train_model`` is what the training steps run through (``model`` in a DDP
    wrapper, see :mod:`~sarcube.models.distributed`); validation runs ``model``.
    ``agree`` maps each validation's (loss, score, details) to the ones all DDP
    ranks act on (the main rank's), so they step the schedule and stop alike.
    """
    t = config.train
    step, best, since_best = start.step, start.best, start.epochs_since_best
    for epoch in range(start.epoch, t.epochs):
        started = time.perf_counter()
        torch.manual_seed(epoch_seed(t.seed, epoch))
        train_loss, steps = train_epoch(train_model or model, train_batches(epoch), optimizer, config, device, on_batch)
        step += steps
        val_loss, value, details = validate(model, val_batches, config, device, t.val_steps)
        if agree is not None:
            val_loss, value, details = agree((val_loss, value, details))
        step_scheduler(scheduler, val_loss)
        improved = math.isfinite(value) and (value > best or not math.isfinite(best))
        if improved:
            best, since_best = value, 0
        else:
            since_best += 1
        stop = bool(t.early_stopping) and since_best >= t.early_stopping
        lr = optimizer.param_groups[0]["lr"]
        yield EpochResult(
            epoch, step, train_loss, val_loss, value, details, improved, best, since_best, lr, started, stop
        )
        if stop:
            return


__all__ = [
    "Batch",
    "EpochResult",
    "Progress",
    "Scores",
    "chip_targets",
    "compute_loss",
    "cosine_restart_factor",
    "epoch_seed",
    "fit",
    "make_optimizer",
    "make_scheduler",
    "step_scheduler",
    "train_epoch",
    "validate",
]
