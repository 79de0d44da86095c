"""The avalanche FCN of Bianchi et al. (avalanche-fcn-bianchi IV, Figs. 5 and 6).

:class:`UNet` is the segmentation network; :class:`ParAttentionUNet` adds the small
attention net that turns the PAR map into a [0, 1] mask multiplying the SAR channels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sarcube.errors import InputError

from ._blocks import ConvBNReLU, LocalContrast, check_out_channels, crop_to, output_kind, pad_to_multiple

UNET_DROPOUT = 0.4  # Bianchi et al. V: dropout rate 0.4
ATTENTION_CHANNELS = 32  # Bianchi et al. IV-C: three conv layers of 32 3x3 filters


class _UNetBlock(nn.Sequential):
    """Two 3x3 conv + BN + ReLU, then dropout (when the rate is > 0)."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float):
        layers: list[nn.Module] = [ConvBNReLU(in_channels, out_channels), ConvBNReLU(out_channels, out_channels)]
        if dropout > 0:
            layers.append(nn.Dropout2d(dropout))
        super().__init__(*layers)


class UNet(nn.Module):
    """U-Net with batch norm and dropout (Bianchi et al. Fig. 5).

    Encoder blocks ``base_channels * 2**i`` for ``i < depth`` (32-64-128-256-512 at the
    defaults), two 3x3 conv + BN + ReLU each and dropout, except the last encoder block;
    2x2 max-pool down; bilinear up (or a 2x2 transposed conv), skip connections; decoder
    blocks mirror the encoder; a 1x1 conv head gives logits (sigmoid in the losses and in
    :func:`sarcube.models.probability`). Any input size: the input is edge-padded to a
    multiple of ``2**(depth-1)`` and the output cropped back.

    With ``contrast_px`` > 0 the net also sees each of ``contrast_channels`` minus its mean over a
    ``contrast_px`` box (:class:`~sarcube.models._blocks.LocalContrast`; not in the paper, off by default).

    Input (N, C, H, W) float, output (N, out_channels, H, W) logits.
    Parameters at the defaults: 7,849,889 with in_channels=4 (VV diff, VH diff, VVVH, slope).
    """

    output_kind: str

    def __init__(
        self,
        in_channels: int,
        base_channels: int = 32,
        depth: int = 5,
        dropout: float = UNET_DROPOUT,
        bilinear: bool = True,
        out_channels: int = 1,
        contrast_channels: Sequence[int] = (),
        contrast_px: int = 0,
    ):
        super().__init__()
        if in_channels < 1 or base_channels < 1 or depth < 2:
            raise InputError(
                f"unet: in_channels={in_channels}, base_channels={base_channels}, depth={depth}: "
                "need in_channels >= 1, base_channels >= 1, depth >= 2"
            )
        if not 0.0 <= dropout < 1.0:
            raise InputError(f"unet: dropout={dropout}: use a rate in [0, 1)")
        check_out_channels(out_channels)
        if any(not 0 <= int(c) < in_channels for c in contrast_channels):
            raise InputError(
                f"unet: contrast_channels={list(contrast_channels)} must be indices of the {in_channels} input channels"
            )
        self.output_kind = output_kind(out_channels)
        self.contrast = LocalContrast(contrast_channels, contrast_px)
        self.depth = depth
        self.bilinear = bilinear
        widths = [base_channels * 2**i for i in range(depth)]
        self.encoder = nn.ModuleList()
        prev = in_channels + self.contrast.added
        for i, width in enumerate(widths):
            self.encoder.append(_UNetBlock(prev, width, dropout if i < depth - 1 else 0.0))
            prev = width
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for width in reversed(widths[:-1]):
            if bilinear:
                self.up.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
                up_width = prev
            else:
                self.up.append(nn.ConvTranspose2d(prev, prev // 2, kernel_size=2, stride=2))
                up_width = prev // 2
            self.decoder.append(_UNetBlock(up_width + width, width, dropout))
            prev = width
        self.head = nn.Conv2d(prev, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, size = pad_to_multiple(self.contrast(x), 2 ** (self.depth - 1))
        skips = []
        for i, block in enumerate(self.encoder):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        for up, block, skip in zip(self.up, self.decoder, reversed(skips[:-1]), strict=True):
            x = block(torch.cat([up(x), skip], dim=1))
        return crop_to(self.head(x), size)


class ParAttention(nn.Module):
    """Attention net on the PAR map (Bianchi et al. IV-C): 3x [3x3 conv(32) + ReLU], 3x3 conv(1) + sigmoid.

    Input (N, 1, H, W) PAR, output (N, 1, H, W) mask in [0, 1].
    """

    def __init__(self, hidden_channels: int = ATTENTION_CHANNELS):
        super().__init__()
        layers: list[nn.Module] = []
        prev = 1
        for _ in range(3):
            layers += [nn.Conv2d(prev, hidden_channels, 3, padding=1), nn.ReLU(inplace=True)]
            prev = hidden_channels
        layers += [nn.Conv2d(prev, 1, 3, padding=1), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)

    def forward(self, par: torch.Tensor) -> torch.Tensor:
        return self.net(par)


class ParAttentionUNet(nn.Module):
    """U-Net whose SAR inputs are multiplied by an attention mask computed from PAR (Fig. 6).

    Input (N, C, H, W): ``sar_channels`` are the indices of VV diff, VH diff and VVVH (the
    mask multiplies only these), ``par_channel`` the index of PAR (fed to the attention
    net only), every other channel (slope) passes to the U-Net unmasked. The U-Net sees
    the C - 1 non-PAR channels in their input order. Both nets train jointly.

    ``forward(x, return_attention=True)`` also returns the (N, 1, H, W) mask.
    Parameters at the defaults: 7,868,994 with in_channels=5 (VV diff, VH diff, VVVH, slope, PAR).
    """

    output_kind: str

    def __init__(
        self,
        in_channels: int,
        sar_channels: Sequence[int] = (0, 1, 2),
        par_channel: int = 4,
        base_channels: int = 32,
        depth: int = 5,
        dropout: float = UNET_DROPOUT,
        bilinear: bool = True,
        attention_channels: int = ATTENTION_CHANNELS,
        out_channels: int = 1,
        contrast_px: int = 0,
    ):
        super().__init__()
        sar = [int(c) for c in sar_channels]
        if not 0 <= par_channel < in_channels:
            raise InputError(
                f"par_attention: par_channel={par_channel} is not an index of the {in_channels} input channels"
            )
        if not sar or any(not 0 <= c < in_channels for c in sar) or par_channel in sar or len(set(sar)) != len(sar):
            raise InputError(
                f"par_attention: sar_channels={sar}: give distinct indices of the {in_channels} input "
                f"channels, other than par_channel={par_channel}"
            )
        self.par_channel = par_channel
        kept = [c for c in range(in_channels) if c != par_channel]
        self.register_buffer("_kept", torch.tensor(kept, dtype=torch.long), persistent=False)
        self.register_buffer(
            "_sar_of_kept", torch.tensor([c in sar for c in kept], dtype=torch.bool), persistent=False
        )
        self.attention = ParAttention(attention_channels)
        # the local contrast (contrast_px > 0) of the masked SAR channels
        self.unet = UNet(in_channels - 1, base_channels, depth, dropout, bilinear, out_channels,
                         [k for k, c in enumerate(kept) if c in sar], contrast_px)
        self.output_kind = self.unet.output_kind

    def attention_mask(self, x: torch.Tensor) -> torch.Tensor:
        """The (N, 1, H, W) attention mask of inputs (N, C, H, W), from their PAR channel."""
        return self.attention(x[:, self.par_channel : self.par_channel + 1])

    def masked_inputs(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The U-Net's input (SAR channels times the mask, others as given) and the mask.

        ``mask`` (N, 1, H, W) is used instead of the attention net's (prediction passes one
        computed once per window and rotated with it under test-time augmentation).
        """
        if mask is None:
            mask = self.attention_mask(x)
        kept = x.index_select(1, self._kept)
        sar = self._sar_of_kept.view(1, -1, 1, 1)
        return torch.where(sar, kept * mask, kept), mask

    def forward_with_mask(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits of inputs ``x`` under a given attention ``mask`` (see :meth:`masked_inputs`)."""
        return self.unet(self.masked_inputs(x, mask)[0])

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        inputs, mask = self.masked_inputs(x)
        logits = self.unet(inputs)
        return (logits, mask) if return_attention else logits
