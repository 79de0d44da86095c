"""Torch networks, losses, metrics and the baseline detector.

Tensors only: nothing here reads files, STAC or zarr (:func:`load_vgg16_weights`
copies a VGG16 state_dict the user already has, read by the train step; nothing is downloaded).

Build any model by name: ``build_model(name, in_channels, **cfg)``; ``MODELS`` maps
each name to its builder (a class or function whose keyword arguments are the ``cfg``
keys, documented there) and ``model_names()`` lists them:

=================  ==========================  ===============================  ==================
name               builder                     input                            output
=================  ==========================  ===============================  ==================
``unet``           :class:`UNet`               (N, C, H, W)                     (N, 1, H, W) logits
``par_attention``  :class:`ParAttentionUNet`   (N, C, H, W), PAR at par_channel (N, 1, H, W) logits
``par_concat``     :func:`build_par_concat`    (N, C, H, W), PAR a plain input  (N, 1, H, W) logits
``patch_cnn``      :class:`PatchCNN`           (N, C, H, W)                     (N, 2) logits
``vae``            :class:`ConvVAE`            (N, C, H, W)                     (recon, mu, logvar)
``resnet_unet``    :class:`ResNetUNet`         (N, C, H, W)                     (N, 2, H, W) logits
``unet3d``         :class:`UNet3D`             (N, C, T, H, W)                  (N, 1, H, W) logits
``convlstm_unet``  :class:`ConvLSTMUNet`       (N, C, T, H, W)                  (N, 1, H, W) logits
``baseline``       :class:`BaselineDetector`   (N, C, H, W), dB differences     (N, 1, H, W) in [0, 1]
``threshold``      :class:`ThresholdBaseline`  (N, C[, T], H, W), dB            (N, 1, H, W) in [0, 1]
=================  ==========================  ===============================  ==================

Conventions: inputs are finite float tensors (fill NaN before; the VAE's scoring and
the baseline handle NaN themselves); any H and W work (odd ones too: nets pad inside
and crop their output); segmentation nets return logits (``out_channels=1``: sigmoid;
``out_channels=2``: softmax, the positive class is channel 1). Every model carries an
``output_kind`` and :func:`probability` turns any model's output into the
positive-class probability, (N, 1, H, W) for maps and (N,) per chip, so training,
prediction and evaluation treat all models alike; :func:`predict_proba` runs a model in
eval mode and does the same. The baseline's output is already a probability-like map
(>= 0.5 = detected); the VAE's probability is ``score / (score + threshold)`` of its
reconstruction error (>= 0.5 = anomalous), once ``set_threshold`` stored the threshold
tuned on validation data.

Sub-modules: :mod:`~sarcube.models.registry` (the table above), :mod:`~sarcube.models.losses`,
:mod:`~sarcube.models.metrics`, :mod:`~sarcube.models.baseline`, :mod:`~sarcube.models.baseline_pixel`,
:mod:`~sarcube.models.inference` (windows, TTA, blending), :mod:`~sarcube.models.inference_tiles` (the same in
chunk tiles), :mod:`~sarcube.models.components` (objects of a mask read tile by tile),
:mod:`~sarcube.models.training` (the loop),
:mod:`~sarcube.models.augment`, :mod:`~sarcube.models.config` (the config dataclasses), :mod:`~sarcube.models.device`,
:mod:`~sarcube.models.distributed` (DDP: process group, ranks, agreeing across ranks).
"""

from ._blocks import OUTPUT_LOGIT, OUTPUT_PROBABILITY, OUTPUT_TWO_CLASS, count_parameters
from .baseline import BaselineDetector, TuneResult, tune_threshold
from .baseline_pixel import ThresholdBaseline, tune_pixel_threshold
from .device import autocast_context, pick_device
from .patch_cnn import PatchCNN, load_vgg16_weights
from .registry import (
    MODELS,
    TIME_SERIES_MODELS,
    build_model,
    build_par_concat,
    has_input_mask,
    model_names,
    model_options,
    predict_proba,
    probability,
    window_probability_fn,
)
from .resnet_unet import ResNetUNet
from .temporal import ConvLSTMUNet, UNet3D
from .unet import ParAttentionUNet, UNet
from .vae import OUTPUT_ANOMALY, ConvVAE, anomaly_score, reconstruction_error, score_to_probability

__all__ = [
    "MODELS",
    "OUTPUT_ANOMALY",
    "OUTPUT_LOGIT",
    "OUTPUT_PROBABILITY",
    "OUTPUT_TWO_CLASS",
    "TIME_SERIES_MODELS",
    "BaselineDetector",
    "ConvLSTMUNet",
    "ConvVAE",
    "ParAttentionUNet",
    "PatchCNN",
    "ResNetUNet",
    "ThresholdBaseline",
    "TuneResult",
    "UNet",
    "UNet3D",
    "anomaly_score",
    "autocast_context",
    "build_model",
    "build_par_concat",
    "count_parameters",
    "has_input_mask",
    "load_vgg16_weights",
    "model_names",
    "model_options",
    "pick_device",
    "predict_proba",
    "probability",
    "reconstruction_error",
    "score_to_probability",
    "tune_pixel_threshold",
    "tune_threshold",
    "window_probability_fn",
]
