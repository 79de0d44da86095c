"""On-the-fly augmentation of one chip: the same geometric transform on inputs and labels.

Inputs are normalised (C, H, W) or (C, T, H, W) float tensors, labels (H, W)
uint8 with 255 = ignore. Geometric transforms (dihedral, shift, rotation,
zoom, shear, crop) move labels with the inputs; pixels brought in from outside
the chip get input 0 (the training mean) and label 255, so losses ignore them.
Radiometric ones (noise, contrast, occlusion) touch the inputs only. The
dihedral flips/rotations are the group of test-time augmentation
(:data:`sarcube.models.inference.DIHEDRAL_TRANSFORMS`), one drawn uniformly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from sarcube.models.config import AugmentConfig
from sarcube.models.inference import DIHEDRAL_TRANSFORMS
from sarcube.models.losses import IGNORE_INDEX


def _uniform(g: torch.Generator, bound: float) -> float:
    return float((torch.rand((), generator=g) * 2 - 1) * bound)


def affine(
    x: torch.Tensor, y: torch.Tensor, *, angle_deg: float, scale: float, shear_deg: float, shift: tuple[float, float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate/zoom/shear/shift a chip (bilinear inputs, nearest labels, outside -> 0 / 255)."""
    a, s = math.radians(angle_deg), math.radians(shear_deg)
    cos, sin = math.cos(a), math.sin(a)
    # output -> input sampling matrix in normalised coordinates
    rot = torch.tensor([[cos, -sin], [sin, cos]], dtype=torch.float32)
    sh = torch.tensor([[1.0, math.tan(s)], [0.0, 1.0]], dtype=torch.float32)
    m = (rot @ sh) / scale
    theta = torch.zeros(1, 2, 3)
    theta[0, :, :2] = m
    theta[0, 0, 2], theta[0, 1, 2] = shift[1] * 2, shift[0] * 2
    h, w = x.shape[-2:]
    lead = x.shape[:-2]
    flat = x.reshape(1, -1, h, w).float()
    grid = F.affine_grid(theta, [1, flat.shape[1], h, w], align_corners=False)
    xo = F.grid_sample(flat, grid, mode="bilinear", padding_mode="zeros", align_corners=False).reshape(*lead, h, w)
    yf = y.reshape(1, 1, h, w).float()
    inside = F.grid_sample(torch.ones_like(yf), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    yo = F.grid_sample(yf, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    yo = torch.where(inside > 0.5, yo, torch.full_like(yo, float(IGNORE_INDEX)))
    return xo.to(x.dtype), yo.reshape(h, w).to(y.dtype)


def crop(x: torch.Tensor, y: torch.Tensor, size: int, top: int, left: int) -> tuple[torch.Tensor, torch.Tensor]:
    return x[..., top:top + size, left:left + size], y[..., top:top + size, left:left + size]


def center_crop(x: torch.Tensor, y: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The evaluation counterpart of the random crop."""
    h, w = x.shape[-2:]
    return crop(x, y, size, (h - size) // 2, (w - size) // 2)


class Augmenter:
    """Draws one random transform per chip from an :class:`AugmentConfig` (seeded generator)."""

    def __init__(self, config: AugmentConfig, *, train: bool = True):
        self.config = config
        self.train = train

    @property
    def geometric(self) -> bool:
        c = self.config
        return bool(c.shift or c.rotate_deg or c.zoom or c.shear_deg)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        if not self.train:
            return center_crop(x, y, c.crop) if c.crop else (x, y)
        if c.crop:
            h, w = x.shape[-2:]
            top = int(torch.randint(0, h - c.crop + 1, (), generator=g))
            left = int(torch.randint(0, w - c.crop + 1, (), generator=g))
            x, y = crop(x, y, c.crop, top, left)
        if c.dihedral:
            t = DIHEDRAL_TRANSFORMS[int(torch.randint(0, len(DIHEDRAL_TRANSFORMS), (), generator=g))]
            x, y = t.apply(x), t.apply(y)
        if self.geometric:
            x, y = affine(
                x,
                y,
                angle_deg=_uniform(g, c.rotate_deg),
                scale=1.0 + _uniform(g, c.zoom),
                shear_deg=_uniform(g, c.shear_deg),
                shift=(_uniform(g, c.shift), _uniform(g, c.shift)),
            )
        x = x.contiguous()
        if c.contrast:
            x = x * (1.0 + _uniform(g, c.contrast))
        if c.noise_std:
            x = x + torch.randn(x.shape, generator=g) * c.noise_std
        if c.occlusion and float(torch.rand((), generator=g)) < c.occlusion:
            h, w = x.shape[-2:]
            oh = max(1, int(h * (0.1 + 0.2 * float(torch.rand((), generator=g)))))
            ow = max(1, int(w * (0.1 + 0.2 * float(torch.rand((), generator=g)))))
            top = int(torch.randint(0, h - oh + 1, (), generator=g))
            left = int(torch.randint(0, w - ow + 1, (), generator=g))
            x = x.clone()
            x[..., top:top + oh, left:left + ow] = 0.0
        return x, y.contiguous()


__all__ = ["Augmenter", "affine", "center_crop", "crop"]
