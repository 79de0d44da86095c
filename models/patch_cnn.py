"""VGG16-style patch classifier (avalanche-cnn-sinha II-B).

A 13-conv VGG16 trunk and three fully connected layers with dropout 0.5 classify a
patch (e.g. 50x50 cropped from 64x64) as avalanche or not. The paper fine-tunes
only the FC layers on an ImageNet-trained trunk: :func:`load_vgg16_weights` copies a
torchvision ``vgg16`` state_dict the user already has onto the trunk (nothing is
downloaded or read here) and ``freeze_trunk`` stops its gradients.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from sarcube.errors import CheckpointError, InputError

from ._blocks import OUTPUT_TWO_CLASS

# VGG16 configuration "D" (Simonyan & Zisserman 2015): conv widths, "M" = 2x2 max-pool.
VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
FC_DROPOUT = 0.5  # Sinha et al. II-B
VGG16_CONV_LAYERS = 13
_TRUNK_PREFIX = "features."  # torchvision's name for the conv trunk


class PatchCNN(nn.Module):
    """VGG16 trunk (13 3x3 conv + ReLU, 5 max-pools) + 3 FC layers with dropout 0.5, 2-class logits.

    Input (N, C, H, W) float with any H, W >= 1 (pooling rounds up, then a global average
    pool), output (N, 2) logits; probability = softmax column 1, shape (N,).
    The trunk's layer indices equal torchvision's ``features.N`` so its weights load by name.
    ``width_divisor`` divides every trunk width (1 = VGG16; >1 only for small test/demo models,
    which then cannot take ImageNet weights). ``batch_norm`` puts a batch norm after every
    conv (torchvision's ``vgg16_bn`` layout, same ``features.N`` indices): a plain 13-conv
    trunk trained from scratch, without ImageNet weights, barely moves in a few hundred
    steps. Parameters at the defaults: 33,605,442 with
    in_channels=3 (VV*, VV*_old, VH diff), 14,714,688 of them in the trunk.
    """

    output_kind = OUTPUT_TWO_CLASS

    def __init__(
        self,
        in_channels: int,
        hidden_features: int = 4096,
        dropout: float = FC_DROPOUT,
        freeze_trunk: bool = False,
        width_divisor: int = 1,
        batch_norm: bool = False,
    ):
        super().__init__()
        if in_channels < 1 or hidden_features < 1 or width_divisor < 1:
            raise InputError(
                f"patch_cnn: in_channels={in_channels}, hidden_features={hidden_features}, "
                f"width_divisor={width_divisor}: all must be >= 1"
            )
        if not 0.0 <= dropout < 1.0:
            raise InputError(f"patch_cnn: dropout={dropout}: use a rate in [0, 1)")
        layers: list[nn.Module] = []
        prev = in_channels
        for item in VGG16_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
            else:
                width = max(1, int(item) // width_divisor)
                norm = [nn.BatchNorm2d(width)] if batch_norm else []
                layers += [nn.Conv2d(prev, width, 3, padding=1), *norm, nn.ReLU(inplace=True)]
                prev = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(prev, hidden_features),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden_features, hidden_features),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden_features, 2),
        )
        self.freeze_trunk(freeze_trunk)

    def freeze_trunk(self, frozen: bool = True) -> None:
        """Stop (or restore) gradients to the conv trunk; only the FC layers then train."""
        for p in self.features.parameters():
            p.requires_grad_(not frozen)

    @property
    def trunk_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.features.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def adapt_first_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Turn RGB filters (O, 3, k, k) into (O, in_channels, k, k).

    Three channels are kept as they are; otherwise every new channel gets the mean of
    the RGB filters scaled by 3 / in_channels, so a constant input produces the same
    response as the RGB filters on a grey image of that value.
    """
    if weight.shape[1] == in_channels:
        return weight.clone()
    mean = weight.mean(dim=1, keepdim=True)
    return mean.repeat(1, in_channels, 1, 1) * (weight.shape[1] / in_channels)


def load_vgg16_weights(model: PatchCNN, state: Mapping[str, torch.Tensor]) -> list[str]:
    """Copy ImageNet VGG16 conv weights (torchvision ``vgg16`` keys ``features.N.weight/bias``) onto the trunk.

    ``state``: a mapping of tensors, e.g. ``vgg16().state_dict()`` (reading one
    from a file is :func:`sarcube.pipelines.runs.read_vgg16_weights`).
    The first conv is adapted to the model's input channels (:func:`adapt_first_conv`);
    the classifier keys are ignored (our FC layers differ). Returns the loaded keys.
    """
    trunk = {k[len(_TRUNK_PREFIX) :]: v for k, v in state.items() if k.startswith(_TRUNK_PREFIX)}
    own = model.features.state_dict()
    if set(trunk) != set(own):
        missing = sorted(set(own) - set(trunk))[:3]
        raise CheckpointError(
            f"VGG16 weights: trunk keys do not match VGG16 (missing e.g. {missing}); "
            "give torchvision's vgg16 state_dict (vgg16_bn for a trunk with batch_norm)"
        )
    first = next(k for k in own if k.endswith("weight"))
    new = {}
    for key, target in own.items():
        value = trunk[key].to(target.dtype)
        if key == first:
            value = adapt_first_conv(value, target.shape[1])
        if value.shape != target.shape:
            raise CheckpointError(
                f"VGG16 weights: {_TRUNK_PREFIX}{key} has shape {tuple(value.shape)}, the trunk needs "
                f"{tuple(target.shape)} (width_divisor must be 1 to load ImageNet weights)"
            )
        new[key] = value
    model.features.load_state_dict(new)
    return [_TRUNK_PREFIX + k for k in new]
