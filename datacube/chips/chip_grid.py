"""The chip grid: :class:`ChipSpec`, chip origins, and label counts per chip without loading a chip.

The grid is xbatcher's (full chips at ``size - overlap`` strides, as
``BatchGenerator(input_dims, input_overlap)`` cuts them). :func:`chip_counts`
computes, per chip window, the number of positive (label 1) and labelled
(label != 255) pixels from a *coarsened* label map (dask ``coarsen`` then
window sums over the small coarse grid). Splits (tiles aligned to this grid)
and selection both build on it, so it sits below them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import xarray as xr

from sarcube.datacube import schema
from sarcube.datacube.chips.batches import BLOCK_PX
from sarcube.errors import InputError, TrainingDataError

# --- selection policies ------------------------------------------------------------
POLICY_POSITIVES = "positives"
POLICY_BALANCED = "balanced"
POLICY_NEGATIVES = "negatives"
POLICY_ALL = "all"
POLICIES = (POLICY_POSITIVES, POLICY_BALANCED, POLICY_NEGATIVES, POLICY_ALL)


@dataclass(frozen=True)
class ChipSpec:
    """The chip grid and which chips a split keeps."""

    #: chip side, pixels
    size: int = 128
    #: overlap between neighbouring chips, pixels (stride = size - overlap)
    overlap: int = 0
    #: policy of the training split (one of :data:`POLICIES`)
    policy: str = POLICY_POSITIVES
    #: policy of the validation and test splits
    eval_policy: str = POLICY_POSITIVES
    #: a chip is positive with at least this many label-1 pixels
    min_positive_pixels: int = 1
    #: a chip is kept only with at least this fraction of labelled (!= 255) pixels
    min_valid_fraction: float = 0.01
    #: ``balanced``: negatives drawn per positive chip
    negatives_per_positive: float = 1.0
    #: at most this many chips per split (random by seed), 0 = no cap
    max_chips: int = 0
    #: side of the blocks read at once, pixels (a multiple of the 512 storage chunk is fastest)
    block_px: int = BLOCK_PX

    @property
    def stride(self) -> int:
        return self.size - self.overlap

    def check(self) -> None:
        if self.size < 1 or not 0 <= self.overlap < self.size:
            raise InputError(
                f"chips: size {self.size} / overlap {self.overlap} invalid: need size >= 1 and 0 <= overlap < size"
            )
        for p in (self.policy, self.eval_policy):
            if p not in POLICIES:
                raise InputError(f"chips: policy {p!r} unknown, use one of {POLICIES}")


def chip_origins(n: int, size: int, stride: int) -> np.ndarray:
    """Chip origins along one axis: full chips only, like xbatcher's slices."""
    return np.arange(0, max(n - size, -1) + 1, stride, dtype=np.int64)


def _window_sums(coarse: np.ndarray, k: int, s: int, n_y: int, n_x: int) -> np.ndarray:
    """Sums of k x k coarse-cell windows at stride s over the last two axes."""
    cs = np.zeros((*coarse.shape[:-2], coarse.shape[-2] + 1, coarse.shape[-1] + 1), dtype=np.int64)
    cs[..., 1:, 1:] = coarse.cumsum(-2).cumsum(-1)
    iy = np.arange(n_y) * s
    ix = np.arange(n_x) * s
    a = cs[..., iy[:, None] + k, ix[None, :] + k]
    b = cs[..., iy[:, None], ix[None, :] + k]
    c = cs[..., iy[:, None] + k, ix[None, :]]
    d = cs[..., iy[:, None], ix[None, :]]
    return a - b - c + d


def chip_counts(label: xr.DataArray, chips: ChipSpec) -> tuple[np.ndarray, np.ndarray]:
    """Positive (==1) and labelled (!=255) pixel counts per chip window.

    Returns two int64 arrays shaped (P, n_y, n_x) (P = 1 for static labels)
    computed from the label map coarsened by gcd(size, stride): one pass of
    dask over the labels, then window sums on the small coarse grid.
    """
    g = math.gcd(chips.size, chips.stride)
    k, s = chips.size // g, chips.stride // g
    lab = label if schema.PAIR in label.dims else label.expand_dims({schema.PAIR: 1})
    lab = lab.transpose(schema.PAIR, *schema.SPATIAL_DIMS)
    ny, nx = lab.sizes[schema.Y], lab.sizes[schema.X]
    n_y = chip_origins(ny, chips.size, chips.stride).size
    n_x = chip_origins(nx, chips.size, chips.stride).size
    if n_y == 0 or n_x == 0:
        raise TrainingDataError(
            f"the cube ({ny}x{nx} pixels) is smaller than one {chips.size}x{chips.size} chip: lower chips.size"
        )
    coarse = {schema.Y: g, schema.X: g}
    pos = (lab == schema.LABEL_YES).coarsen(coarse, boundary="trim").sum()
    valid = (lab != schema.LABEL_UNKNOWN).coarsen(coarse, boundary="trim").sum()
    import dask

    pos_v, valid_v = dask.compute(pos.data, valid.data)
    return _window_sums(np.asarray(pos_v), k, s, n_y, n_x), _window_sums(np.asarray(valid_v), k, s, n_y, n_x)
