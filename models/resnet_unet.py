"""U-Net on a ResNet-50 encoder for landslide segmentation (landslide-datacube 3.1).

The paper reports "a U-Net with a ResNet-50 encoder (48,982,754 trainable
parameters)" and two-class cross-entropy. Its released code builds that network
with segmentation_models_pytorch's nested decoder (UNet++, Zhou et al. 2018) on a
ResNet-50; our ``nested=True`` default rebuilds that layout in plain torch so the
parameter count is the paper's. ``nested=False`` gives the plain U-Net decoder
(one decoder block per scale).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sarcube.errors import InputError

from ._blocks import ConvBNReLU, check_out_channels, crop_to, output_kind, pad_to_multiple

RESNET50_LAYERS = (3, 4, 6, 3)  # bottleneck blocks per stage (He et al. 2016, Tab. 1)
BOTTLENECK_EXPANSION = 4
DECODER_CHANNELS = (256, 128, 64, 32, 16)
ENCODER_STRIDE = 32  # five halvings: stem conv, max-pool, stages 2-4


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride), 1x1 expand (x4), BN after each; projected shortcut when needed."""

    def __init__(self, in_channels: int, width: int, stride: int = 1):
        super().__init__()
        out_channels = width * BOTTLENECK_EXPANSION
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        y = F.relu(self.bn2(self.conv2(y)), inplace=True)
        y = self.bn3(self.conv3(y))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(y + shortcut, inplace=True)


class ResNetEncoder(nn.Module):
    """ResNet-50 trunk (no classifier) for any number of input channels.

    Returns the features at strides 1 (the input), 2, 4, 8, 16, 32 with
    ``in_channels, 64, 256, 512, 1024, 2048`` channels at the default width.
    """

    def __init__(self, in_channels: int, layers: Sequence[int] = RESNET50_LAYERS, base_width: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, base_width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base_width)
        self.stages = nn.ModuleList()
        prev = base_width
        for i, blocks in enumerate(layers):
            width = base_width * 2**i
            stage = [Bottleneck(prev, width, stride=1 if i == 0 else 2)]
            prev = width * BOTTLENECK_EXPANSION
            stage += [Bottleneck(prev, width) for _ in range(blocks - 1)]
            self.stages.append(nn.Sequential(*stage))
        self.out_channels = [in_channels, base_width] + [
            base_width * 2**i * BOTTLENECK_EXPANSION for i in range(len(layers))
        ]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = [x]
        x = F.relu(self.bn1(self.conv1(x)), inplace=True)
        features.append(x)
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


class _DecoderBlock(nn.Module):
    """Nearest x2 up, concatenate the skip (if any), two 3x3 conv + BN + ReLU."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = ConvBNReLU(in_channels + skip_channels, out_channels)
        self.conv2 = ConvBNReLU(out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


class ResNetUNet(nn.Module):
    """ResNet-50 encoder (bottleneck stages 3-4-6-3) with a U-Net / UNet++ decoder, two-class output.

    Input (N, C, H, W) for any C, output (N, out_channels, H, W) logits (2 by default:
    cross-entropy as in the paper; probability = softmax channel 1). Any input size
    (edge-padded to a multiple of 32 inside, output cropped back).

    ``nested=True`` (default) is the UNet++ decoder with ``decoder_channels``
    (256, 128, 64, 32, 16) the paper's code used; ``nested=False`` a plain U-Net decoder.
    ``base_width`` scales the encoder (64 = ResNet-50) for small demo models.
    Parameters at the defaults: 48,982,754 with in_channels=2 (VV before and after:
    exactly the paper's figure), 49,001,570 with in_channels=8 (VV/VH before and after +
    elevation, slope, aspect, curvature); 32,521,250 with nested=False and in_channels=3.
    """

    output_kind: str

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 2,
        nested: bool = True,
        decoder_channels: Sequence[int] = DECODER_CHANNELS,
        base_width: int = 64,
        layers: Sequence[int] = RESNET50_LAYERS,
    ):
        super().__init__()
        check_out_channels(out_channels)
        if in_channels < 1 or base_width < 1 or len(layers) != 4 or len(decoder_channels) != 5:
            raise InputError(
                f"resnet_unet: in_channels={in_channels}, base_width={base_width}, layers={tuple(layers)}, "
                f"decoder_channels={tuple(decoder_channels)}: need >= 1 channel, 4 stages and 5 decoder widths"
            )
        self.output_kind = output_kind(out_channels)
        self.nested = nested
        self.encoder = ResNetEncoder(in_channels, layers, base_width)
        enc = self.encoder.out_channels[1:][::-1]  # deepest first: 2048, 1024, 512, 256, 64
        dec = list(decoder_channels)
        head_in = [enc[0]] + dec[:-1]
        skips = list(enc[1:]) + [0]
        self.blocks = nn.ModuleDict()
        n = len(head_in) - 1
        if nested:
            # node x_{d}_{l}: depth d of the nested path ending at decoder level l
            for level in range(n):
                for d in range(level + 1):
                    if d == 0:
                        block = _DecoderBlock(head_in[level], skips[level] * (level + 1), dec[level])
                    else:
                        block = _DecoderBlock(
                            skips[level - 1], skips[level] * (level + 1 - d), skips[level]
                        )
                    self.blocks[f"x_{d}_{level}"] = block
        else:
            for level in range(n):
                self.blocks[f"x_0_{level}"] = _DecoderBlock(head_in[level], skips[level], dec[level])
        self.blocks[f"x_0_{n}"] = _DecoderBlock(head_in[-1], 0, dec[-1])
        self.head = nn.Conv2d(dec[-1], out_channels, 3, padding=1)
        self._levels = n

    def _decode_nested(self, feats: list[torch.Tensor]) -> torch.Tensor:
        n = self._levels
        nodes: dict[tuple[int, int], torch.Tensor] = {}
        for step in range(n):
            for d in range(n - step):
                if step == 0:
                    nodes[d, d] = self.blocks[f"x_{d}_{d}"](feats[d], feats[d + 1])
                else:
                    level = d + step
                    dense = [nodes[i, level] for i in range(d + 1, level + 1)] + [feats[level + 1]]
                    nodes[d, level] = self.blocks[f"x_{d}_{level}"](nodes[d, level - 1], torch.cat(dense, dim=1))
        return self.blocks[f"x_0_{n}"](nodes[0, n - 1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, size = pad_to_multiple(x, ENCODER_STRIDE)
        feats = self.encoder(x)[1:][::-1]  # deepest first, the input itself is no skip
        if self.nested:
            y = self._decode_nested(feats)
        else:
            y = feats[0]
            for level in range(self._levels):
                y = self.blocks[f"x_0_{level}"](y, feats[level + 1])
            y = self.blocks[f"x_0_{self._levels}"](y)
        return crop_to(self.head(y), size)
