"""Image operations of the operational change detector: speckle filters, robust statistics, objects.

Pure functions on (N, 1, H, W) tensors (one change image per sample); NaN is
nodata and stays NaN. Every operation commutes with the 8 rotations/flips of
the square (replicate padding, order statistics over sets, connected
components), so the detector built from them is dihedral-equivariant and test-
time augmentation cannot change its map.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from sarcube.errors import InputError

from . import metrics

#: sigma of a normal distribution = this factor x its median absolute deviation
MAD_TO_SIGMA = 1.4826
#: median-filter inputs unfolded at once (windows of k x k pixels each), to bound memory
_MEDIAN_BLOCK_VALUES = 1 << 24
#: diagonal neighbours join one object, as in the object metrics
OBJECT_CONNECTIVITY = 8


def _check_window(size: int, name: str) -> None:
    if size < 1 or size % 2 == 0:
        raise InputError(f"baseline: {name}={size}: use an odd window in pixels (1 = off)")


def _padded(image: torch.Tensor, size: int) -> torch.Tensor:
    """Replicate-padded by half a window: border pixels see a full window of their own edge."""
    r = size // 2
    return F.pad(image, (r, r, r, r), mode="replicate")


def median_filter(image: torch.Tensor, size: int) -> torch.Tensor:
    """NaN-aware median over ``size`` x ``size`` windows of (N, 1, H, W); 1 = unchanged.

    The median of the finite values (the lower middle of an even count); NaN pixels stay NaN.
    """
    _check_window(size, "median_px")
    if size == 1:
        return image
    n, _, h, w = image.shape
    padded = _padded(image, size)
    out = torch.empty_like(image)
    step = max(1, _MEDIAN_BLOCK_VALUES // (size * size * h * w))
    for i in range(0, n, step):
        windows = F.unfold(padded[i : i + step], size)  # (n_i, size*size, H*W)
        out[i : i + step, 0] = windows.nanmedian(dim=1).values.reshape(-1, h, w)
    return torch.where(torch.isfinite(image), out, image)


def boxcar_filter(image: torch.Tensor, size: int) -> torch.Tensor:
    """NaN-aware mean over ``size`` x ``size`` windows of (N, 1, H, W); 1 = unchanged."""
    _check_window(size, "boxcar_px")
    if size == 1:
        return image
    finite = torch.isfinite(image)
    values = _padded(torch.where(finite, image, torch.zeros_like(image)).double(), size)
    weight = _padded(finite.double(), size)
    mean = F.avg_pool2d(values, size, stride=1) / F.avg_pool2d(weight, size, stride=1).clamp_min(1e-12)
    return torch.where(finite, mean.to(image.dtype), image)


def speckle_filter(change: torch.Tensor, median_px: int, boxcar_px: int) -> torch.Tensor:
    """Median filter (removes speckle outliers, keeps debris edges), then boxcar (averages what is left)."""
    return boxcar_filter(median_filter(change, median_px), boxcar_px)


def robust_statistics(
    change: torch.Tensor, where: torch.Tensor, min_pixels: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Median and MAD-sigma (N, 1, 1, 1) of each image's finite ``change`` pixels inside ``where``.

    An image with fewer than ``min_pixels`` such pixels uses all its finite pixels
    (a window that is mostly steep or masked still gets a threshold); an image with
    no finite pixel gets NaN (nothing is detected there).
    """
    finite = torch.isfinite(change)
    inside = finite & where
    enough = inside.flatten(1).sum(1) >= min_pixels
    use = torch.where(enough[:, None, None, None], inside, finite)
    values = torch.where(use, change, torch.full_like(change, float("nan"))).flatten(1)
    centre = values.nanmedian(dim=1).values
    mad = (values - centre[:, None]).abs().nanmedian(dim=1).values
    return centre.reshape(-1, 1, 1, 1), (MAD_TO_SIGMA * mad).reshape(-1, 1, 1, 1)


def object_mask(candidates: torch.Tensor, seeds: torch.Tensor, min_pixels: int) -> torch.Tensor:
    """(N, 1, H, W) bool: 8-connected objects of ``candidates`` holding a seed and >= ``min_pixels`` pixels.

    With ``seeds == candidates`` this is the minimum object size alone; with seeds a
    subset it is hysteresis thresholding (objects grow from strong pixels into weaker ones).
    """
    cand = candidates.detach().cpu().numpy()
    seed = seeds.detach().cpu().numpy() & cand
    keep_mask = np.zeros_like(cand)
    for i in range(cand.shape[0]):
        if not seed[i, 0].any():
            continue
        ids, n = metrics.connected_components(cand[i, 0], OBJECT_CONNECTIVITY)
        keep = np.bincount(ids.ravel(), minlength=n + 1) >= max(min_pixels, 1)
        seeded = np.zeros(n + 1, dtype=bool)
        seeded[np.unique(ids[seed[i, 0]])] = True
        keep &= seeded
        keep[0] = False
        keep_mask[i, 0] = keep[ids]
    return torch.from_numpy(keep_mask).to(candidates.device)


__all__ = [
    "MAD_TO_SIGMA",
    "OBJECT_CONNECTIVITY",
    "boxcar_filter",
    "median_filter",
    "object_mask",
    "robust_statistics",
    "speckle_filter",
]
