"""Which chips a run trains and validates on, and the training split's channel statistics.

:func:`chip_table` lists every chip of the grid with its label counts and
split (chips straddling two tiles dropped); :func:`select` applies a policy
(``positives``, ``balanced``, ``negatives``, ``all``) per split;
:func:`check_selection` refuses splits a run cannot learn or be scored on;
:func:`train_statistics` computes per-channel mean/std (NaN-aware) over the
training split only (and the run's orbit, for series and event means), so no
held-out pixel leaks into the normalisation. :func:`balanced_subset` draws the
50/50 test set of avalanche-cnn-sinha from scored patches.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

from sarcube.datacube import schema
from sarcube.datacube.chips.channels import (
    TAKE_ACTIVITY,
    TAKE_AT_ORBIT,
    TAKE_PER_PAIR,
    TAKE_REFERENCE,
    TAKE_SERIES,
    ResolvedChannels,
    orbit_position,
    time_indices,
)
from sarcube.datacube.chips.chip_grid import (
    POLICIES,
    POLICY_ALL,
    POLICY_BALANCED,
    POLICY_NEGATIVES,
    POLICY_POSITIVES,
    ChipSpec,
    chip_origins,
)
from sarcube.datacube.chips.splits import EXCLUDED, SPLITS, TRAIN, SplitPlan
from sarcube.errors import InputError, TrainingDataError


@dataclass(frozen=True)
class ChipTable:
    """Chips as columns: pair (-1 = no pair), origin, counts, split code."""

    pair: np.ndarray
    y0: np.ndarray
    x0: np.ndarray
    n_pos: np.ndarray
    n_valid: np.ndarray
    split: np.ndarray
    size: int

    def __len__(self) -> int:
        return int(self.pair.size)

    def take(self, index: np.ndarray) -> ChipTable:
        return ChipTable(
            self.pair[index], self.y0[index], self.x0[index], self.n_pos[index], self.n_valid[index],
            self.split[index], self.size,
        )

    def positive(self, min_positive_pixels: int = 1) -> np.ndarray:
        return self.n_pos >= min_positive_pixels


def chip_table(
    pairs: Sequence[int | None], pos: np.ndarray, valid: np.ndarray, plan: SplitPlan, chips: ChipSpec, ny: int, nx: int
) -> ChipTable:
    """Every chip of the grid for ``pairs`` with its counts and split (straddling chips dropped)."""
    oy = chip_origins(ny, chips.size, chips.stride)
    ox = chip_origins(nx, chips.size, chips.stride)
    yy, xx = np.meshgrid(oy, ox, indexing="ij")
    min_valid = max(1, int(math.ceil(chips.min_valid_fraction * chips.size * chips.size)))
    columns: list[list[np.ndarray]] = [[] for _ in range(6)]  # pair, y0, x0, n_pos, n_valid, split
    for p in pairs:
        row = 0 if p is None or pos.shape[0] == 1 else p
        codes = plan.chip_split(p, yy.ravel(), xx.ravel(), chips.size)
        keep = (codes != EXCLUDED) & (valid[row].ravel() >= min_valid)
        n = int(keep.sum())
        parts = (
            np.full(n, -1 if p is None else p, dtype=np.int32), yy.ravel()[keep], xx.ravel()[keep],
            pos[row].ravel()[keep], valid[row].ravel()[keep], codes[keep],
        )
        for column, part in zip(columns, parts, strict=True):
            column.append(part)
    pair, y0, x0, n_pos, n_valid, split = (np.concatenate(c) if c else np.zeros(0, dtype=np.int64) for c in columns)
    return ChipTable(pair.astype(np.int32), y0, x0, n_pos, n_valid, split.astype(np.int8), chips.size)


def select(table: ChipTable, split: str, policy: str, chips: ChipSpec, seed: int = 0) -> ChipTable:
    """Chips of one split under a policy.

    ``positives``: chips with >= min_positive_pixels label-1 pixels;
    ``negatives``: chips without any label-1 pixel (all of them, up to max_chips);
    ``balanced``: every positive chip and ``negatives_per_positive`` times as many
    negatives drawn at random; ``all``: every chip with labels.
    """
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    in_split = np.flatnonzero(table.split == SPLITS.index(split))
    pos_mask = table.n_pos[in_split] >= chips.min_positive_pixels
    neg_mask = table.n_pos[in_split] == 0
    if policy == POLICY_POSITIVES:
        index = in_split[pos_mask]
    elif policy == POLICY_NEGATIVES:
        index = in_split[neg_mask]
    elif policy == POLICY_BALANCED:
        positives, negatives = in_split[pos_mask], in_split[neg_mask]
        n_neg = min(negatives.size, int(round(chips.negatives_per_positive * positives.size)))
        index = np.concatenate([positives, rng.choice(negatives, n_neg, replace=False)])
    elif policy == POLICY_ALL:
        index = in_split
    else:
        raise InputError(f"chips policy {policy!r} unknown, use one of {POLICIES}")
    if chips.max_chips and index.size > chips.max_chips:
        index = rng.choice(index, chips.max_chips, replace=False)
    return table.take(np.sort(index))


def balanced_subset(positive: np.ndarray, seed: int = 0) -> np.ndarray:
    """Indices (sorted) of a 50/50 set: every positive and as many negatives drawn with ``seed``.

    avalanche-cnn-sinha's balanced test. ``positive`` (N,) bool, one per patch.
    When negatives are fewer, every negative is kept and as many positives are
    drawn instead, so both classes always count the same. Deterministic for a
    given ``positive`` and ``seed``.
    """
    positive = np.asarray(positive, dtype=bool)
    pos, neg = np.flatnonzero(positive), np.flatnonzero(~positive)
    n = min(pos.size, neg.size)
    rng = np.random.default_rng(seed)
    if neg.size > n:
        neg = rng.choice(neg, n, replace=False)
    if pos.size > n:
        pos = rng.choice(pos, n, replace=False)
    return np.sort(np.concatenate([pos, neg]))


def check_selection(selected: dict[str, ChipTable], chips: ChipSpec, need_positives: bool = True) -> None:
    """Raise TrainingDataError for a training split without positive chips or an empty split."""
    train = selected.get(TRAIN)
    if need_positives and train is not None and not train.positive(chips.min_positive_pixels).any():
        raise TrainingDataError(
            "the training split has no positive chip (label 1): check the labels, the split (--set split.seed=...) "
            "or the chip selection (--set chips.policy=...)"
        )
    for split, t in selected.items():
        if len(t) == 0:
            raise TrainingDataError(
                f"the {split} split has no chips: use smaller tiles (--set split.tile_size_m=...), smaller chips "
                f"(--set chips.size=...), another split seed, or a cube with more labels"
            )


def _chunk_sums(block: np.ndarray, plan: SplitPlan, shape: tuple[int, int], block_info=None) -> np.ndarray:
    """(count, sum, sum of squares) of the non-NaN training-tile values of one chunk, float64."""
    (y0, y1), (x0, x1) = block_info[0]["array-location"][-2:]
    values = block.astype(np.float64)[..., plan.pixel_mask(TRAIN, shape, (y0, y1, x0, x1))]
    values = values[~np.isnan(values)]
    return np.array([values.size, values.sum(), (values * values).sum()]).reshape((1,) * block.ndim + (3,))


def train_statistics(
    ds: xr.Dataset, resolved: ResolvedChannels, plan: SplitPlan, train_pairs: Sequence[int | None]
) -> tuple[list[float], list[float]]:
    """Per-channel mean and std (NaN-aware) over the training tiles and pairs only.

    Partial sums per chunk, each with its own window of the tile mask: memory is a few chunks, not the area.
    """
    import dask
    import dask.array as da

    shape = (ds.sizes[schema.Y], ds.sizes[schema.X])
    pairs = [p for p in train_pairs if p is not None]
    sums = []
    for c in resolved.channels:
        var = ds[c.variable]
        if c.take == TAKE_PER_PAIR:
            var = var.isel({schema.PAIR: pairs})
        elif c.take == TAKE_AT_ORBIT:
            var = var.isel({schema.ORBIT: orbit_position(ds, resolved.orbit)})
        elif c.take in (TAKE_ACTIVITY, TAKE_REFERENCE, TAKE_SERIES):
            steps = sorted(
                {i for p in (pairs or [None]) for i in time_indices(ds, c, p, resolved.series_steps, resolved.orbit)}
            )
            var = var.isel({schema.TIME: steps})
        data = var.transpose(..., *schema.SPATIAL_DIMS).data
        if not isinstance(data, da.Array):
            data = da.from_array(data, chunks=(1,) * (data.ndim - 2) + (schema.CHUNK_YX, schema.CHUNK_YX))
        parts = data.map_blocks(
            _chunk_sums, plan, shape, dtype=np.float64, new_axis=data.ndim,
            chunks=tuple((1,) * len(c) for c in data.chunks) + ((3,),),
        )
        sums.append(parts.sum(axis=tuple(range(data.ndim))))
    computed = dask.compute(sums)[0]
    means, stds = [], []
    for c, (n, s, ss) in zip(resolved.channels, computed, strict=True):
        n = float(n)
        if n == 0:
            raise TrainingDataError(
                f"channel {c.variable!r} has no valid pixel in the training split: check the variable or the split"
            )
        mean = float(s) / n
        var_ = max(float(ss) / n - mean * mean, 0.0)
        means.append(mean)
        stds.append(math.sqrt(var_) if var_ > 1e-12 else 1.0)
    return means, stds
