"""Every model by name: the registry, the builder, and one probability for every kind of output.

``build_model(name, in_channels, **cfg)`` builds any network of the table in
:mod:`sarcube.models`; ``probability`` and ``predict_proba`` turn any model's raw
output into the positive-class probability, so training, prediction and evaluation
treat all models alike.
"""


from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sarcube.errors import InputError

from ._blocks import OUTPUT_LOGIT, OUTPUT_PROBABILITY, OUTPUT_TWO_CLASS
from .baseline import BaselineDetector
from .baseline_pixel import ThresholdBaseline
from .inference import MASK_MODES, MASK_ONCE, MASK_PER_TRANSFORM, MaskedProbabilityFn, ProbabilityFn
from .patch_cnn import PatchCNN
from .resnet_unet import ResNetUNet
from .temporal import ConvLSTMUNet, UNet3D
from .unet import UNET_DROPOUT, ParAttentionUNet, UNet
from .vae import OUTPUT_ANOMALY, ConvVAE, anomaly_score, reconstruction_error, score_to_probability


def build_par_concat(
    in_channels: int,
    sar_channels: Sequence[int] = (0, 1, 2),
    par_channel: int = 4,
    base_channels: int = 32,
    depth: int = 5,
    dropout: float = UNET_DROPOUT,
    bilinear: bool = True,
    out_channels: int = 1,
    contrast_px: int = 0,
) -> UNet:
    """The ablation of Bianchi et al. Tab. II: a :class:`UNet` with PAR as one more input channel.

    ``sar_channels`` and ``par_channel`` are accepted so that the same configuration
    builds ``par_attention`` and ``par_concat``; they are checked, and do not change the net.
    Parameters at the defaults: 7,850,177 with in_channels=5 (VV diff, VH diff, VVVH, slope, PAR).
    """
    if not 0 <= par_channel < in_channels or any(not 0 <= c < in_channels for c in sar_channels):
        raise InputError(
            f"par_concat: sar_channels={list(sar_channels)}, par_channel={par_channel} must be indices "
            f"of the {in_channels} input channels"
        )
    return UNet(in_channels, base_channels, depth, dropout, bilinear, out_channels, sar_channels, contrast_px)


MODELS: dict[str, Callable[..., nn.Module]] = {
    "unet": UNet,
    "par_attention": ParAttentionUNet,
    "par_concat": build_par_concat,
    "patch_cnn": PatchCNN,
    "vae": ConvVAE,
    "resnet_unet": ResNetUNet,
    "unet3d": UNet3D,
    "convlstm_unet": ConvLSTMUNet,
    "baseline": BaselineDetector,
    "threshold": ThresholdBaseline,
}

#: models whose input is a time series (N, C, T, H, W)
TIME_SERIES_MODELS = frozenset({"unet3d", "convlstm_unet"})


def model_names() -> list[str]:
    """The names :func:`build_model` knows."""
    return list(MODELS)


def model_options(name: str) -> list[str]:
    """The ``cfg`` keys a model accepts."""
    builder = _builder(name)
    params = list(inspect.signature(builder).parameters)
    return [p for p in params if p not in ("self", "in_channels")]


def _builder(name: str) -> Callable[..., nn.Module]:
    try:
        return MODELS[name]
    except KeyError:
        raise InputError(f"model {name!r} is unknown; use one of: {', '.join(MODELS)}") from None


def build_model(name: str, in_channels: int, **cfg) -> nn.Module:
    """Build the model ``name`` for ``in_channels`` input channels; ``cfg`` = the builder's keyword options."""
    builder = _builder(name)
    accepted = model_options(name)
    unknown = sorted(set(cfg) - set(accepted))
    if unknown:
        raise InputError(f"model {name!r}: unknown option(s) {', '.join(unknown)}; it accepts: {', '.join(accepted)}")
    if not isinstance(in_channels, int) or in_channels < 1:
        raise InputError(f"model {name!r}: in_channels={in_channels!r}; give the number of input channels (>= 1)")
    return builder(in_channels, **cfg)


def _unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DistributedDataParallel / torch.compile wrappers."""
    while True:
        for attr in ("module", "_orig_mod"):
            inner = getattr(model, attr, None)
            if isinstance(inner, nn.Module):
                model = inner
                break
        else:
            return model


def probability(model: nn.Module, output, inputs: torch.Tensor | None = None) -> torch.Tensor:
    """Positive-class probability from a model's raw ``output``: (N, 1, H, W) for maps, (N,) per chip.

    ``inputs`` is needed only for the VAE (its probability compares the reconstruction
    with the input).
    """
    kind = getattr(_unwrap(model), "output_kind", None)
    if kind == OUTPUT_LOGIT:
        return torch.sigmoid(output.float())
    if kind == OUTPUT_TWO_CLASS:
        p = F.softmax(output.float(), dim=1)
        return p[:, 1:2] if output.dim() > 2 else p[:, 1]
    if kind == OUTPUT_PROBABILITY:
        return output
    if kind == OUTPUT_ANOMALY:
        if inputs is None:
            raise InputError("probability of a vae needs its inputs: probability(model, output, inputs=x)")
        vae = _unwrap(model)
        return score_to_probability(reconstruction_error(output[0], inputs), vae.threshold)
    raise InputError(f"{type(model).__name__} has no output_kind; build it with sarcube.models.build_model")


def has_input_mask(model: nn.Module) -> bool:
    """Whether ``model`` multiplies its inputs by a mask of its own (the PAR attention)."""
    return isinstance(_unwrap(model), ParAttentionUNet)


def window_probability_fn(
    model: nn.Module, mask: str = MASK_PER_TRANSFORM
) -> ProbabilityFn | MaskedProbabilityFn:
    """What scene prediction runs on batches of windows: :func:`probability` of ``model``'s output.

    ``per-transform`` runs the whole model on every TTA copy. For a model with an input
    mask (:func:`has_input_mask`), ``once`` gives a
    :class:`~sarcube.models.inference.MaskedProbabilityFn`: the mask net runs once per
    window and its mask is rotated with the window (not exact: see
    :data:`~sarcube.models.inference.MASK_ONCE`). The model's ``forward`` (training) is the same either way.
    """
    if mask not in MASK_MODES:
        raise InputError(f"mask mode {mask!r} is unknown: use one of {', '.join(MASK_MODES)}")
    net = _unwrap(model)
    if mask == MASK_ONCE and isinstance(net, ParAttentionUNet):
        return MaskedProbabilityFn(net.attention_mask, lambda x, m: probability(model, net.forward_with_mask(x, m), x))
    return lambda x: probability(model, model(x), x)


@torch.no_grad()
def predict_proba(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run ``model`` in eval mode (restoring its mode after) and return :func:`probability`."""
    was_training = model.training
    model.eval()
    try:
        if getattr(_unwrap(model), "output_kind", None) == OUTPUT_ANOMALY:
            return score_to_probability(anomaly_score(_unwrap(model), x), _unwrap(model).threshold)
        return probability(model, model(x), x)
    finally:
        model.train(was_training)


__all__ = [
    "MODELS",
    "TIME_SERIES_MODELS",
    "build_model",
    "build_par_concat",
    "has_input_mask",
    "model_names",
    "model_options",
    "predict_proba",
    "probability",
    "window_probability_fn",
]
