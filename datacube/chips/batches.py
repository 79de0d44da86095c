"""From selected chips to batches: chunk-aligned blocks read once, chips cut from them in memory.

:func:`blocks` groups selected chips by (pair, block); :func:`load_block`
reads a block's raw channels and labels once (:func:`read_channels`) and
keeps sliding-window views of them; :func:`gather_batch` cuts a batch of
chips from any number of loaded blocks straight into one array, normalised
with the float32 arithmetic of :func:`~sarcube.datacube.chips.channels.normalise`
(the numba :func:`gather_normalised` for 2-D channels, a numpy gather for
series). ``pipelines/loaders.py`` wraps these in torch.

Why not ``xbatcher.BatchGenerator`` inside a block: it cuts the same chips
(the tests check it) but pays an ``xarray.isel`` and a Dataset per chip
(~100 us), slower than decompressing the block itself, while a numpy/numba
gather costs ~1 us per chip (benchmarks/chips.py measures the plain xbatcher loop).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from sarcube.datacube import schema
from sarcube.datacube.chips.channels import (
    ResolvedChannels,
    StaticCache,
    Window,
    normalise,
    read_channels,
    read_labels,
)

if TYPE_CHECKING:  # selection builds on the chip grid, which takes BLOCK_PX from here
    from sarcube.datacube.chips.selection import ChipTable

#: default block side (pixels): one storage chunk
BLOCK_PX = 2 * schema.CHUNK_YX


@dataclass(frozen=True)
class Block:
    """A window read at once (one pair, all channels) and the chips cut from it."""

    pair: int | None
    window: Window
    #: chip origins relative to the window
    oy: np.ndarray
    ox: np.ndarray


def blocks(table: ChipTable, block_px: int = BLOCK_PX) -> list[Block]:
    """Group chips by (pair, block of ``block_px`` pixels holding their origin).

    A block's window spans its chips (origins up to ``block_px`` apart plus one
    chip), so with chips tiling the 512 storage chunks exactly each chunk is
    decompressed once per epoch.
    """
    out = []
    if len(table) == 0:
        return out
    key = np.stack([table.pair.astype(np.int64), table.y0 // block_px, table.x0 // block_px], axis=1)
    uniq, inverse = np.unique(key, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(uniq) + 1))
    for b in range(len(uniq)):
        idx = order[bounds[b]:bounds[b + 1]]
        y0s, x0s = table.y0[idx], table.x0[idx]
        wy0, wx0 = int(y0s.min()), int(x0s.min())
        window = (wy0, int(y0s.max()) + table.size, wx0, int(x0s.max()) + table.size)
        pair = int(uniq[b, 0])
        out.append(
            Block(None if pair < 0 else pair, window, (y0s - wy0).astype(np.int64), (x0s - wx0).astype(np.int64))
        )
    return out


def cut_chips(array: np.ndarray, oy: np.ndarray, ox: np.ndarray, size: int) -> np.ndarray:
    """Chips (N, ..., size, size) cut from an in-memory block (..., H, W) at origins (oy, ox).

    Plain numpy views gathered in one fancy index; the tests check it yields
    the chips xbatcher's ``BatchGenerator`` yields.
    """
    windows = np.lib.stride_tricks.sliding_window_view(array, (size, size), axis=(-2, -1))
    # windows: (..., H-size+1, W-size+1, size, size)
    picked = windows[..., oy, ox, :, :]  # (..., N, size, size)
    return np.ascontiguousarray(np.moveaxis(picked, -3, 0))


def _gather_kernel(
    out: np.ndarray, rows: np.ndarray, sources: Any, oy: np.ndarray, ox: np.ndarray, mean: np.ndarray, rstd: np.ndarray
) -> None:
    s = out.shape[2]
    zero = np.float32(0.0)
    for c in range(len(sources)):
        src, m, r = sources[c], mean[c], rstd[c]
        for k in range(rows.size):
            y0, x0 = oy[k], ox[k]
            for i in range(s):
                o = out[rows[k], c, i]
                row = src[y0 + i, x0:x0 + s]
                for j in range(s):
                    v = (row[j] - m) * r
                    o[j] = v if v == v else zero  # NaN (nodata) -> 0


_GATHER: Any = None


def gather_normalised(
    out: np.ndarray,
    rows: np.ndarray,
    sources: Sequence[np.ndarray],
    oy: np.ndarray,
    ox: np.ndarray,
    mean: np.ndarray,
    rstd: np.ndarray,
) -> None:
    """Copy chips from one block's 2-D channels straight into a batch, normalised, in one pass.

    ``out`` (N, C, s, s) float32; ``sources`` the C (H, W) float32 channels of
    the block; chip k goes to ``out[rows[k]]`` from origin (oy[k], ox[k]);
    ``mean``/``rstd`` float32 (C,), rstd = 1 / std. The float32 arithmetic of
    :func:`normalise` ((v - mean) * (1 / std), NaN -> 0), so results are identical.
    A numba kernel (``cache=True``): numpy would gather, scatter and normalise in five passes.
    """
    global _GATHER
    if _GATHER is None:
        import numba

        _GATHER = numba.njit(cache=True, nogil=True)(_gather_kernel)
    _GATHER(out, rows, tuple(sources), oy, ox, mean, rstd)


@dataclass(frozen=True)
class LoadedBlock:
    """One block's raw channels and labels in memory, as sliding-window views to cut chips from."""

    #: per channel, ``sliding_window_view`` of its (H, W) or (T, H, W) raw array: (..., H-s+1, W-s+1, s, s)
    windows: tuple[np.ndarray, ...]
    #: the same views of the (H, W) uint8 labels
    label_windows: np.ndarray
    #: the contiguous (H, W) float32 channels for :func:`gather_normalised`; None with series channels
    sources: tuple[np.ndarray, ...] | None
    #: chip side, pixels
    size: int
    #: T of the series channels (0 when none)
    series_steps: int


def load_block(
    ds: xr.Dataset, resolved: ResolvedChannels, block: Block, size: int, cache: StaticCache | None = None
) -> LoadedBlock:
    """Read a block's window once (one read per variable) and make the views its chips are cut from."""
    arrays = read_channels(ds, resolved, block.pair, block.window, cache)
    labels = read_labels(ds, block.pair, block.window)
    views = [np.lib.stride_tricks.sliding_window_view(a, (size, size), axis=(-2, -1)) for a in (*arrays, labels)]
    sources = None
    if not resolved.temporal:  # the fused numba gather reads the contiguous channels
        sources = tuple(np.ascontiguousarray(a, dtype=np.float32) for a in arrays)
    return LoadedBlock(tuple(views[:-1]), views[-1], sources, size, resolved.series_steps)


def gather_batch(
    chips: Sequence[tuple[LoadedBlock, int, int]], mean: Sequence[float], std: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Cut chips, each ``(block, y0, x0)`` (origin in the block), into one batch.

    Returns inputs (N, C, [T,] s, s) float32 normalised with ``mean``/``std``
    (NaN -> 0, as :func:`~sarcube.datacube.chips.channels.assemble`) and labels
    (N, s, s) uint8. One gather per block (and channel) straight into the batch;
    ``chips`` is not empty and comes from blocks of one stream (same channels, size).
    """
    first = chips[0][0]
    temporal = first.sources is None
    s, n_channels = first.size, len(first.windows)
    t = (first.series_steps,) if temporal else ()
    x = np.empty((len(chips), n_channels, *t, s, s), dtype=np.float32)
    y = np.empty((len(chips), s, s), dtype=np.uint8)
    mean32 = np.asarray(mean, dtype=np.float32)
    rstd32 = np.float32(1.0) / np.asarray(std, dtype=np.float32)
    groups: dict[int, list[int]] = {}
    for j, chip in enumerate(chips):
        groups.setdefault(id(chip[0]), []).append(j)
    for js in groups.values():
        block = chips[js[0]][0]
        oy = np.array([chips[j][1] for j in js], dtype=np.int64)
        ox = np.array([chips[j][2] for j in js], dtype=np.int64)
        rows = np.array(js, dtype=np.int64)
        y[rows] = block.label_windows[oy, ox]
        if block.sources is not None:  # one fused pass: copy + normalise
            gather_normalised(x, rows, block.sources, oy, ox, mean32, rstd32)
            continue
        for c, v in enumerate(block.windows):
            g = v[..., oy, ox, :, :]  # (N, s, s), or (T, N, s, s) for series
            if g.ndim == 4:
                g = np.moveaxis(g, -3, 0)
            else:
                g = g[:, None]  # a static layer repeated over the series
            x[rows, c] = g
    if temporal:
        normalise(x, mean, std, axis=1, in_place=True)
    return x, y
