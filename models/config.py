"""Configuration of the networks, losses, optimiser, schedule, training loop and augmentation.

Frozen dataclasses, one per preset section that the torch layer reads;
:mod:`sarcube.pipelines.presets` parses the YAML into them and composes them,
with the cube-side specs (channels, chips, split), into a ``Preset``.
:class:`TrainingConfig` is what :mod:`sarcube.models.training` takes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: what the labels train: each pixel, a chip label, an anomaly score (VAE) or nothing (the baseline)
TASK_SEGMENTATION = "segmentation"
TASK_CLASSIFICATION = "classification"
TASK_ANOMALY = "anomaly"
TASK_BASELINE = "baseline"
TASKS = (TASK_SEGMENTATION, TASK_CLASSIFICATION, TASK_ANOMALY, TASK_BASELINE)
#: what a model predicts: a probability per pixel (a map) or one per patch (Sinha et al.: scored per patch)
LEVEL_PIXEL = "pixel"
LEVEL_PATCH = "patch"
LEVELS = (LEVEL_PIXEL, LEVEL_PATCH)
#: the level of each task when a preset names none (the baseline is a map unless told ``level: patch``)
TASK_LEVELS = {
    TASK_SEGMENTATION: LEVEL_PIXEL,
    TASK_CLASSIFICATION: LEVEL_PATCH,
    TASK_ANOMALY: LEVEL_PATCH,
    TASK_BASELINE: LEVEL_PIXEL,
}


def prediction_level(task: str, level: str = "") -> str:
    """``level`` if given, else the task's own (:data:`TASK_LEVELS`): how a model is validated, predicted, scored."""
    return level or TASK_LEVELS.get(task, LEVEL_PIXEL)


@dataclass(frozen=True)
class ModelConfig:
    """Which network of ``sarcube.models`` and its constructor arguments."""

    #: ``build_model`` name (unet, par_attention, par_concat, patch_cnn, vae, resnet_unet, unet3d, convlstm_unet,
    #: baseline)
    name: str = "unet"
    #: what the labels train: segmentation (pixels), classification (chip has a positive), anomaly (VAE), baseline
    task: str = TASK_SEGMENTATION
    #: keyword arguments of ``build_model`` (widths, dropout, ``freeze_trunk``, ...)
    params: Mapping[str, Any] = field(default_factory=dict)
    #: optional local weights file for the trunk (avalanche-cnn: a torchvision VGG16 state_dict); nothing is
    #: downloaded
    pretrained: str = ""
    #: pixel (a map) or patch (one probability per chip, its centre crop); empty = the task's own: patch for
    #: classification and anomaly, pixel otherwise; ``baseline`` with ``patch`` is Sinha et al.'s count rule
    level: str = ""

    @property
    def prediction_level(self) -> str:
        """The resolved :attr:`level` (see :func:`prediction_level`)."""
        return prediction_level(self.task, self.level)


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser."""

    #: adam, adamw or sgd
    name: str = "adam"
    #: initial learning rate
    lr: float = 1e-3
    #: L2 weight decay (decoupled for adamw)
    weight_decay: float = 0.0
    #: Adam betas
    betas: tuple[float, float] = (0.9, 0.999)
    #: SGD momentum
    momentum: float = 0.9


@dataclass(frozen=True)
class ScheduleConfig:
    """Learning-rate schedule, stepped once per epoch."""

    #: none, plateau (ReduceLROnPlateau on the validation loss) or cosine_restarts
    name: str = "none"
    #: plateau: factor applied to the learning rate
    factor: float = 0.1
    #: plateau: epochs without a lower validation loss before the rate drops
    patience: int = 10
    #: plateau: relative improvement that counts as lower
    threshold: float = 1e-4
    #: cosine_restarts: cycle lengths in epochs (glacier-timeseries: 10, 20, 40, 80)
    cycles: tuple[int, ...] = (10, 20, 40, 80)
    #: cosine_restarts: lowest learning rate
    min_lr: float = 0.0


@dataclass(frozen=True)
class LossConfig:
    """Loss function (label 255 is ignored by every loss)."""

    #: bce (one logit per pixel), ce (two classes), focal, vae (MSE + KL), none (baseline)
    name: str = "bce"
    #: bce: weight of positive pixels (avalanche-fcn: 2)
    pos_weight: float = 1.0
    #: focal: label smoothing
    label_smoothing: float = 0.0
    #: focal: focusing exponent gamma
    gamma: float = 2.0
    #: vae: weight of the KL term
    kl_weight: float = 0.1


@dataclass(frozen=True)
class TrainConfig:
    """The loop: epochs, batches, validation and stopping."""

    #: epochs to train (0 = none: only the baseline's validation)
    epochs: int = 100
    #: chips per batch
    batch_size: int = 16
    #: training batches per epoch; 0 = every selected chip once
    steps_per_epoch: int = 0
    #: validation batches per epoch; 0 = every validation chip
    val_steps: int = 0
    #: stop after this many epochs without a better validation metric; 0 = never
    early_stopping: int = 0
    #: validation metric that picks best.pt: f1, auprc, iou, accuracy, balanced_accuracy
    metric: str = "f1"
    #: probability threshold for the binary maps (the paper's; replaced by the tuned one with ``tune_threshold``)
    threshold: float = 0.5
    #: tune the operating point on the validation split: the VAE's reconstruction error (always), the baseline's
    #: k (maps) or detected-pixel count (patches), a network's probability threshold (best ``metric``; F1 for
    #: iou/auprc) every epoch, so best.pt is chosen at, and predicts with, its own threshold
    tune_threshold: bool = False
    #: DataLoader workers (0 = in the main process)
    num_workers: int = 2
    #: chips held in the shuffle buffer
    shuffle_buffer: int = 1024
    #: gradient clipping norm; 0 = off
    grad_clip: float = 0.0
    #: seed of the weights, shuffling and augmentation
    seed: int = 0


@dataclass(frozen=True)
class AugmentConfig:
    """On-the-fly augmentation of training chips (same transform on inputs and labels)."""

    #: the 8 flips/90-degree rotations
    dihedral: bool = False
    #: random shift, fraction of the chip side
    shift: float = 0.0
    #: random rotation, degrees (+-)
    rotate_deg: float = 0.0
    #: random zoom, fraction (+-)
    zoom: float = 0.0
    #: random shear, degrees (+-)
    shear_deg: float = 0.0
    #: random crop to this side, pixels (avalanche-cnn 64 -> 50); 0 = none
    crop: int = 0
    #: Gaussian noise std on the normalised inputs
    noise_std: float = 0.0
    #: probability of dropping out a random rectangle of the inputs
    occlusion: float = 0.0
    #: contrast jitter, fraction (+-)
    contrast: float = 0.0


@dataclass(frozen=True)
class TrainingConfig:
    """Everything :mod:`sarcube.models.training` reads: a preset's torch-side sections."""

    #: the preset's name, for error messages
    name: str
    model: ModelConfig
    optim: OptimConfig
    schedule: ScheduleConfig
    loss: LossConfig
    train: TrainConfig
    #: a chip's label is positive (classification and anomaly tasks) with at least this many label-1 pixels
    min_positive_pixels: int = 1


__all__ = [
    "LEVELS",
    "LEVEL_PATCH",
    "LEVEL_PIXEL",
    "TASKS",
    "TASK_ANOMALY",
    "TASK_BASELINE",
    "TASK_CLASSIFICATION",
    "TASK_LEVELS",
    "TASK_SEGMENTATION",
    "AugmentConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "ScheduleConfig",
    "TrainConfig",
    "TrainingConfig",
    "prediction_level",
]
