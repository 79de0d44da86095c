"""Building blocks shared by the networks: conv blocks, padding to a multiple, output heads."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sarcube.errors import InputError

# How a network's raw output becomes a probability (see ``probability`` in __init__).
OUTPUT_LOGIT = "logit"  # (N, 1, ...) logits of the positive class: sigmoid
OUTPUT_TWO_CLASS = "two_class"  # (N, 2, ...) logits: softmax, channel 1
OUTPUT_PROBABILITY = "probability"  # already in [0, 1] (the baseline)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def check_out_channels(out_channels: int) -> None:
    if out_channels not in (1, 2):
        raise InputError(
            f"out_channels={out_channels}: use 1 (sigmoid logit, BCE/focal) or 2 (two-class logits, cross-entropy)"
        )


def output_kind(out_channels: int) -> str:
    return OUTPUT_LOGIT if out_channels == 1 else OUTPUT_TWO_CLASS


def valid_mask(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Bool, shaped like ``x``: finite values, and ``mask`` (True = use; (N, ...) broadcast over channels)."""
    valid = torch.isfinite(x)
    if mask is not None:
        m = mask.to(torch.bool)
        if m.dim() == x.dim() - 1:
            m = m.unsqueeze(1)
        valid = valid & m.expand_as(x)
    return valid


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad the last two dims (bottom/right, edge values) up to a multiple; return the original size.

    Networks that halve the grid k times need sides divisible by 2**k; padding inside
    the net and cropping the output (``crop_to``) lets any size, odd ones included, through.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        if x.dim() == 5:  # (N, C, T, H, W): replicate-pad needs the 3-D form
            x = F.pad(x, (0, pw, 0, ph, 0, 0), mode="replicate")
        else:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, (h, w)


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return x[..., : size[0], : size[1]]


class ConvBNReLU(nn.Sequential):
    """3x3 convolution (no bias, BN follows) + batch norm + ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class ResidualBlock(nn.Module):
    """Two 3x3 (3x3x3 with ``dims=3``) conv + BN with an identity (or 1x1 projected) shortcut, then ReLU.

    He et al. 2016.
    """

    def __init__(self, in_channels: int, out_channels: int, dims: int = 2):
        super().__init__()
        if dims not in (2, 3):
            raise InputError(f"ResidualBlock: dims={dims}; use 2 (images) or 3 (time series)")
        conv, norm = (nn.Conv2d, nn.BatchNorm2d) if dims == 2 else (nn.Conv3d, nn.BatchNorm3d)
        self.conv1 = conv(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = norm(out_channels)
        self.conv2 = conv(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = norm(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if in_channels != out_channels:
            self.shortcut = nn.Sequential(conv(in_channels, out_channels, 1, bias=False), norm(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x), inplace=True)


class ResidualDecoder2d(nn.Module):
    """U-Net decoder of residual blocks: bilinear x2 up, concatenate the skip, residual block.

    ``channels`` lists the encoder widths from the finest to the coarsest level (the
    skips and the bottleneck); the result has ``channels[0]`` feature maps at full size.
    """

    def __init__(self, channels: list[int]):
        super().__init__()
        self.blocks = nn.ModuleList(
            ResidualBlock(channels[i + 1] + channels[i], channels[i]) for i in reversed(range(len(channels) - 1))
        )

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        for block, skip in zip(self.blocks, reversed(features[:-1]), strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return x


class LocalContrast(nn.Module):
    """Adds, for each of ``channels``, its contrast to the local background: the value minus its mean over
    a ``window`` x ``window`` box centred on the pixel (near an edge, the mean of the box's pixels inside).

    The cell-averaging CFAR statistic of radar detection: a broad brightening (a refrozen crust over an
    elevation band) has no contrast to its surroundings, a debris deposit does, whatever the pair's level.
    Input (N, C, H, W), output (N, C + len(channels), H, W), the contrasts last; equivariant under flips and
    90 degree rotations. ``window`` 0 or no ``channels``: the input unchanged.
    """

    def __init__(self, channels: Sequence[int] = (), window: int = 0):
        super().__init__()
        window = int(window)
        if window < 0 or (window and window % 2 == 0):
            raise InputError(f"contrast_px={window}: give an odd box side in pixels (e.g. 31), or 0 for none")
        self.window = window if channels else 0
        self.register_buffer("_channels", torch.tensor([int(c) for c in channels], dtype=torch.long),
                             persistent=False)

    @property
    def added(self) -> int:
        """Channels this adds to its input."""
        return int(self._channels.numel()) if self.window else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.window:
            return x
        values = x.index_select(1, self._channels)
        pad = self.window // 2
        local = F.avg_pool2d(values, self.window, stride=1, padding=pad, count_include_pad=False)
        return torch.cat([x, values - local], dim=1)
