"""Time series in, one segmentation map out (glacier-timeseries Fig. 1).

Both networks take (N, C, T, H, W): C channels (backscatter, coherence when present)
at T acquisitions, and return (N, out_channels, H, W) logits. They differ in how the
encoder handles time:

- :class:`UNet3D` (Fig. 1a): residual blocks of 3D convolutions, time treated like
  rows and columns (kernel 3x3x3), spatial-only max-pooling; each scale's features
  are averaged over time into the skip of a 2D residual decoder.
- :class:`ConvLSTMUNet` (Fig. 1b): a 2D residual encoder applied to each acquisition
  (shared weights), a ConvLSTM per scale running through the acquisitions; its last
  hidden state is that scale's skip into the 2D residual decoder.

Both accept any T >= 1 (the model is not tied to the T it trained with) and any H, W.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sarcube.errors import InputError

from ._blocks import (
    ResidualBlock,
    ResidualDecoder2d,
    check_out_channels,
    crop_to,
    output_kind,
    pad_to_multiple,
)


def _check(name: str, in_channels: int, base_channels: int, depth: int) -> None:
    if in_channels < 1 or base_channels < 1 or depth < 2:
        raise InputError(
            f"{name}: in_channels={in_channels}, base_channels={base_channels}, depth={depth}: "
            "need in_channels >= 1, base_channels >= 1, depth >= 2"
        )


def _check_series(name: str, x: torch.Tensor) -> None:
    if x.dim() != 5:
        raise InputError(f"{name}: input has shape {tuple(x.shape)}; give (N, C, T, H, W)")


class UNet3D(nn.Module):
    """3D-convolution residual U-Net: (N, C, T, H, W) -> (N, out_channels, H, W) logits.

    Encoder widths ``base_channels * 2**i`` for ``i < depth``, one residual 3D block per
    scale, (1, 2, 2) max-pool between scales (time is never pooled); skips are the
    time-mean of each scale; decoder of 2D residual blocks with bilinear up; 1x1 head.
    Parameters at the defaults: 4,429,521 with in_channels=2 (backscatter, coherence).
    """

    output_kind: str

    def __init__(self, in_channels: int, base_channels: int = 16, depth: int = 5, out_channels: int = 1):
        super().__init__()
        _check("unet3d", in_channels, base_channels, depth)
        check_out_channels(out_channels)
        self.output_kind = output_kind(out_channels)
        self.depth = depth
        widths = [base_channels * 2**i for i in range(depth)]
        self.encoder = nn.ModuleList()
        prev = in_channels
        for w in widths:
            self.encoder.append(ResidualBlock(prev, w, dims=3))
            prev = w
        self.decoder = ResidualDecoder2d(widths)
        self.head = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_series("unet3d", x)
        x, size = pad_to_multiple(x, 2 ** (self.depth - 1))
        skips = []
        for i, block in enumerate(self.encoder):
            if i > 0:
                x = F.max_pool3d(x, kernel_size=(1, 2, 2))
            x = block(x)
            skips.append(x.mean(dim=2))
        return crop_to(self.head(self.decoder(skips)), size)


class ConvLSTMCell(nn.Module):
    """Convolutional LSTM cell (Shi et al. 2015): one 3x3 conv gives the four gates."""

    def __init__(self, in_channels: int, hidden_channels: int):
        super().__init__()
        self.hidden_channels = hidden_channels
        self.gates = nn.Conv2d(in_channels + hidden_channels, 4 * hidden_channels, 3, padding=1)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = state
        i, f, o, g = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c

    def run(self, sequence: torch.Tensor) -> torch.Tensor:
        """Run through (N, T, C, H, W); return the last hidden state (N, hidden, H, W)."""
        n, _, _, hgt, wid = sequence.shape
        h = sequence.new_zeros(n, self.hidden_channels, hgt, wid)
        c = torch.zeros_like(h)
        for t in range(sequence.shape[1]):
            h, c = self(sequence[:, t], (h, c))
        return h


class ConvLSTMUNet(nn.Module):
    """Residual U-Net with ConvLSTM skips: (N, C, T, H, W) -> (N, out_channels, H, W) logits.

    A 2D residual encoder (widths ``base_channels * 2**i``, max-pool between scales) runs
    on every acquisition; at each scale a ConvLSTM (hidden width = that scale's width)
    reads the T feature maps in time order and its last hidden state is the skip; a 2D
    residual decoder with bilinear up and a 1x1 head gives the map.
    Parameters at the defaults: 8,361,553 with in_channels=2 (backscatter, coherence).
    """

    output_kind: str

    def __init__(self, in_channels: int, base_channels: int = 16, depth: int = 5, out_channels: int = 1):
        super().__init__()
        _check("convlstm_unet", in_channels, base_channels, depth)
        check_out_channels(out_channels)
        self.output_kind = output_kind(out_channels)
        self.depth = depth
        widths = [base_channels * 2**i for i in range(depth)]
        self.encoder = nn.ModuleList()
        self.lstm = nn.ModuleList()
        prev = in_channels
        for w in widths:
            self.encoder.append(ResidualBlock(prev, w))
            self.lstm.append(ConvLSTMCell(w, w))
            prev = w
        self.decoder = ResidualDecoder2d(widths)
        self.head = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_series("convlstm_unet", x)
        x, size = pad_to_multiple(x, 2 ** (self.depth - 1))
        n, c, t, h, w = x.shape
        frames = x.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w)  # acquisitions share the encoder
        skips = []
        for i, (block, lstm) in enumerate(zip(self.encoder, self.lstm, strict=True)):
            if i > 0:
                frames = F.max_pool2d(frames, 2)
            frames = block(frames)
            skips.append(lstm.run(frames.view(n, t, *frames.shape[1:])))
        return crop_to(self.head(self.decoder(skips)), size)
