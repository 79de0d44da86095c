"""Convolutional VAE for avalanche detection as anomaly detection (avalanche-vae).

Trained on negative 64x64 chips (loss MSE + 0.1 KL, :func:`sarcube.models.losses.vae_loss`);
an avalanche chip reconstructs badly, so the per-chip reconstruction error
(:func:`anomaly_score`) is the detection score, thresholded at a value tuned on
validation data (:meth:`ConvVAE.set_threshold`, :func:`sarcube.models.metrics.best_threshold`).
"""

from __future__ import annotations

import torch
from torch import nn

from sarcube.errors import InputError

from ._blocks import crop_to, pad_to_multiple, valid_mask

LATENT_DIM = 300  # avalanche-vae 2: latent space of dimension 300
CHIP_SIZE = 64  # one latent vector per 64x64 chip
OUTPUT_ANOMALY = "anomaly"


class ConvVAE(nn.Module):
    """Fully convolutional VAE: 4 stride-2 conv (x16 down) + a 4x4 stride-4 conv to the latent.

    A 64x64 chip maps to one latent vector of ``latent_dim`` (300); larger inputs map to a
    grid of them (one per 64x64 block), and inputs are edge-padded to a multiple of 64 and
    the reconstruction cropped back, so any size works. The decoder mirrors the encoder
    with transposed convolutions; the output is linear (inputs are standardized).

    ``forward(x)`` returns ``(reconstruction, mu, logvar)``: reconstruction (N, C, H, W),
    mu/logvar (N, latent_dim, ceil(H/64), ceil(W/64)). In training mode the decoder sees a
    sample ``mu + eps * exp(logvar / 2)``, in eval mode ``mu``. Inputs must be finite
    (fill NaN before; :func:`anomaly_score` does it for you).
    Parameters at the defaults: 5,070,236 with in_channels=4 (VV*, VV*_old, slope, aspect).
    """

    output_kind = OUTPUT_ANOMALY

    def __init__(self, in_channels: int, latent_dim: int = LATENT_DIM, base_channels: int = 32):
        super().__init__()
        if in_channels < 1 or latent_dim < 1 or base_channels < 1:
            raise InputError(
                f"vae: in_channels={in_channels}, latent_dim={latent_dim}, base_channels={base_channels}: all must be "
                ">= 1"
            )
        widths = [base_channels * 2**i for i in range(4)]  # 32, 64, 128, 256
        enc: list[nn.Module] = []
        prev = in_channels
        for w in widths:
            enc += [nn.Conv2d(prev, w, 4, stride=2, padding=1), nn.BatchNorm2d(w), nn.LeakyReLU(0.2, inplace=True)]
            prev = w
        self.encoder = nn.Sequential(*enc)
        self.to_latent = nn.Conv2d(prev, 2 * latent_dim, 4, stride=4)
        dec: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, prev, 4, stride=4),
            nn.BatchNorm2d(prev),
            nn.ReLU(inplace=True),
        ]
        for w in reversed(widths[:-1]):
            dec += [nn.ConvTranspose2d(prev, w, 4, stride=2, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            prev = w
        dec.append(nn.ConvTranspose2d(prev, in_channels, 4, stride=2, padding=1))
        self.decoder = nn.Sequential(*dec)
        self.latent_dim = latent_dim
        # reconstruction-error threshold tuned on validation data; NaN until set
        self.register_buffer("threshold", torch.tensor(float("nan")))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.to_latent(self.encoder(x)).chunk(2, dim=1)
        return mu, logvar

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, size = pad_to_multiple(x, CHIP_SIZE)
        mu, logvar = self.encode(x)
        z = mu
        if self.training:
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return crop_to(self.decoder(z), size), mu, logvar

    def set_threshold(self, value: float) -> None:
        """Store the reconstruction-error threshold (chosen on validation) with the weights."""
        if not value > 0:
            raise InputError(f"vae threshold={value}: use a positive reconstruction error")
        self.threshold.fill_(float(value))


def reconstruction_error(recon: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample mean squared error (N,) between a reconstruction and its finite (``mask``-ed) inputs.

    A sample with no valid value scores NaN.
    """
    valid = valid_mask(x, mask)
    diff = torch.where(valid, recon.float() - x.float(), torch.zeros_like(recon, dtype=torch.float32))
    n = valid.flatten(1).sum(dim=1)
    err = (diff * diff).flatten(1).sum(dim=1) / n.clamp_min(1)
    return torch.where(n > 0, err, torch.full_like(err, float("nan")))


@torch.no_grad()
def anomaly_score(model: ConvVAE, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample mean squared reconstruction error, (N,), over finite (and ``mask``-ed) values.

    ``x`` (N, C, H, W); NaN inputs are filled with 0 for the network and left out of the
    mean; ``mask`` (N, H, W), (N, 1, H, W) or (N, C, H, W) bool, True = use. Computed with
    the latent mean (eval mode) whatever the module's mode. A sample with no valid value
    scores NaN.
    """
    valid = valid_mask(x, mask)
    filled = torch.where(valid, x, torch.zeros_like(x))
    was_training = model.training
    model.eval()
    try:
        recon, _, _ = model(filled)
    finally:
        model.train(was_training)
    return reconstruction_error(recon, torch.where(valid, x, torch.full_like(x, float("nan"))))


def score_to_probability(score: torch.Tensor, threshold: float | torch.Tensor) -> torch.Tensor:
    """Map a non-negative anomaly score to [0, 1] monotonically, 0.5 exactly at the threshold.

    ``score / (score + threshold)``: a score above the threshold gives >= 0.5, so the
    VAE's output thresholds at 0.5 like every other model's.
    """
    threshold = torch.as_tensor(threshold, dtype=score.dtype, device=score.device)
    if not torch.isfinite(threshold) or threshold <= 0:
        raise InputError("vae threshold is not set: tune it on validation data and call model.set_threshold(value)")
    return score / (score + threshold)
