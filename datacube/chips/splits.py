"""Splits that do not leak: spatial tiles and held-out pairs assigned to train/val/test.

:func:`make_split` cuts the scene into tiles aligned to the chip grid and
assigns them (and, for ``pairs`` splits, whole pairs) to train/val/test; the
:class:`SplitPlan` it returns is written with a run as ``split.json``, and
:func:`split_mask` gives the pixels a pair holds in a split, for scoring on
the run's held-out data. Chips that straddle two tiles belong to no split
(:meth:`SplitPlan.chip_split`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr
from sarcube.datacube import schema
from sarcube.datacube.chips.chip_grid import ChipSpec, chip_origins
from sarcube.datacube.grid import pixel_size

from sarcube.errors import InputError

TRAIN, VAL, TEST = "train", "val", "test"
SPLITS = (TRAIN, VAL, TEST)
#: split code of a tile that holds no labelled pixel (excluded, as glacier-timeseries drops ice-free tiles)
EXCLUDED = -1

SPLIT_TILES = "tiles"
SPLIT_PAIRS = "pairs"


@dataclass(frozen=True)
class SplitSpec:
    """How chips are split into train/val/test without leaking."""

    #: ``tiles`` (random spatial tiles) or ``pairs`` (held-out pairs/dates for test)
    kind: str = SPLIT_TILES
    #: tile side, metres (rounded to a multiple of the chip stride)
    tile_size_m: float = 10_000.0
    #: train/val/test fractions of the tiles (``tiles``)
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    #: ``pairs``: test pairs: ``last``, ``first``, or a list of pair indices / activity dates (YYYY-MM-DD)
    test: Any = "last"
    #: ``pairs``: validation pairs like ``test``; empty = a random ``val_fraction`` of the tiles of the other pairs
    val: Any = ()
    #: ``pairs``: fraction of tiles used for validation when ``val`` is empty
    val_fraction: float = 0.1
    #: seed of the random tile assignment
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "tile_size_m": self.tile_size_m,
            "fractions": list(self.fractions),
            "test": self.test if isinstance(self.test, str) else list(self.test),
            "val": self.val if isinstance(self.val, str) else list(self.val),
            "val_fraction": self.val_fraction,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class SplitPlan:
    """The tile and pair assignment of one run (written as ``split.json``).

    ``tiles[ty, tx]`` is 0/1/2 for train/val/test (-1: excluded, no labels);
    tile (ty, tx) covers pixels ``[ty*tile_px, (ty+1)*tile_px)`` in y (same in x).
    ``pair_split`` overrides the tiles for held-out pairs (``pairs`` kind).
    """

    spec: SplitSpec
    tile_px: int
    tiles: np.ndarray
    #: pair index -> split code for pairs held out whole (test/val pairs)
    pair_split: dict[int, int] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "spec": self.spec.to_dict(),
                "tile_px": self.tile_px,
                "tiles": self.tiles.tolist(),
                "codes": {name: i for i, name in enumerate(SPLITS)} | {"excluded": EXCLUDED},
                "pair_split": {str(k): SPLITS[v] for k, v in sorted(self.pair_split.items())},
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> SplitPlan:
        d = json.loads(text)
        s = d["spec"]
        spec = SplitSpec(
            s["kind"], float(s["tile_size_m"]), tuple(s["fractions"]), s["test"], s["val"], float(s["val_fraction"]),
            int(s["seed"]),
        )
        return cls(
            spec,
            int(d["tile_px"]),
            np.asarray(d["tiles"], dtype=np.int8),
            {int(k): SPLITS.index(v) for k, v in d["pair_split"].items()},
        )

    def describe(self) -> str:
        counts = {name: int((self.tiles == i).sum()) for i, name in enumerate(SPLITS)}
        held = {SPLITS[v]: [k for k, w in self.pair_split.items() if w == v] for v in set(self.pair_split.values())}
        text = f"{self.spec.kind}: {self.tile_px}px tiles train/val/test {counts[TRAIN]}/{counts[VAL]}/{counts[TEST]}"
        return text + (f", held-out pairs {held}" if held else "")

    def pixel_mask(self, split: str, shape: tuple[int, int]) -> np.ndarray:
        """(y, x) boolean mask of the pixels in tiles of ``split`` (ignoring held-out pairs)."""
        code = SPLITS.index(split)
        grid = np.repeat(np.repeat(self.tiles == code, self.tile_px, 0), self.tile_px, 1)
        out = np.zeros(shape, dtype=bool)
        h, w = min(shape[0], grid.shape[0]), min(shape[1], grid.shape[1])
        out[:h, :w] = grid[:h, :w]
        return out

    def chip_split(self, pair: int | None, y0: np.ndarray, x0: np.ndarray, size: int) -> np.ndarray:
        """Split code per chip origin; -1 when the chip straddles tiles or its tile is excluded."""
        ty0, tx0 = y0 // self.tile_px, x0 // self.tile_px
        inside = (ty0 == (y0 + size - 1) // self.tile_px) & (tx0 == (x0 + size - 1) // self.tile_px)
        inside &= (ty0 < self.tiles.shape[0]) & (tx0 < self.tiles.shape[1])
        codes = np.full(y0.shape, EXCLUDED, dtype=np.int8)
        codes[inside] = self.tiles[ty0[inside], tx0[inside]]
        if pair is not None and pair in self.pair_split:
            codes[inside & (codes != EXCLUDED)] = self.pair_split[pair]
        elif self.spec.kind == SPLIT_PAIRS:
            pass  # other pairs: train/val tiles as assigned
        return codes

    def pairs_in(self, split: str, pairs: Sequence[int | None]) -> list[int | None]:
        """Pairs that can hold chips of ``split``."""
        code = SPLITS.index(split)
        out = []
        for p in pairs:
            if p is not None and p in self.pair_split:
                if self.pair_split[p] == code:
                    out.append(p)
            elif (self.tiles == code).any():
                out.append(p)
        return out


def split_mask(plan: SplitPlan, pair: int | None, split: str, shape: tuple[int, int]) -> np.ndarray:
    """(y, x) pixels of ``pair`` in ``split``: held-out pairs take every usable tile, other pairs their tiles."""
    code = SPLITS.index(split)
    if pair is not None and pair in plan.pair_split:
        if plan.pair_split[pair] != code:
            return np.zeros(shape, dtype=bool)
        usable = plan.tiles != EXCLUDED
        grid = np.repeat(np.repeat(usable, plan.tile_px, 0), plan.tile_px, 1)[: shape[0], : shape[1]]
        out = np.zeros(shape, dtype=bool)
        out[: grid.shape[0], : grid.shape[1]] = grid
        return out
    return plan.pixel_mask(split, shape)


def _pair_list(ds: xr.Dataset, which: Any, what: str) -> list[int]:
    n = ds.sizes.get(schema.PAIR, 0)
    if which in ("", None) or (not isinstance(which, str) and len(which) == 0):
        return []
    if which == "last":
        return [n - 1]
    if which == "first":
        return [0]
    items = [which] if isinstance(which, str | int) else list(which)
    act = ds[schema.ACTIVITY_TIME].values.astype("datetime64[D]")
    out = []
    for item in items:
        if isinstance(item, int) or (isinstance(item, str) and item.isdigit()):
            i = int(item)
            if not 0 <= i < n:
                raise InputError(f"split.{what}: pair {i} out of range (the cube has {n} pairs)")
            out.append(i)
            continue
        try:
            day = np.datetime64(str(item), "D")
        except ValueError as err:
            raise InputError(f"split.{what}: {item!r} is neither a pair index nor a date YYYY-MM-DD") from err
        hits = np.flatnonzero(act == day)
        if not hits.size:
            raise InputError(
                f"split.{what}: no pair has activity date {item} (dates: {sorted({str(a) for a in act})})"
            )
        out.extend(int(h) for h in hits)
    return sorted(set(out))


def make_split(ds: xr.Dataset, spec: SplitSpec, chips: ChipSpec, valid_counts: np.ndarray | None = None) -> SplitPlan:
    """Assign tiles (aligned to the chip grid) and held-out pairs to train/val/test.

    ``valid_counts`` (from :func:`~sarcube.datacube.chips.chip_grid.chip_counts`) marks tiles
    without any labelled pixel as excluded, so the random fractions apply to tiles that can hold chips.
    """
    if spec.kind not in (SPLIT_TILES, SPLIT_PAIRS):
        raise InputError(f"split.kind {spec.kind!r} unknown, use {SPLIT_TILES!r} or {SPLIT_PAIRS!r}")
    res, _ = pixel_size(ds)
    stride = chips.stride
    tile_px = max(chips.size, int(round(spec.tile_size_m / res / stride)) * stride)
    tile_px = int(math.ceil(tile_px / stride) * stride)
    ny, nx = ds.sizes[schema.Y], ds.sizes[schema.X]
    n_ty, n_tx = max(1, math.ceil(ny / tile_px)), max(1, math.ceil(nx / tile_px))
    usable = np.ones((n_ty, n_tx), dtype=bool)
    if valid_counts is not None:
        oy = chip_origins(ny, chips.size, stride)
        ox = chip_origins(nx, chips.size, stride)
        has = valid_counts.sum(axis=0) > 0  # (n_y, n_x) chips with labels in any pair
        usable[:] = False
        yy, xx = np.meshgrid(oy // tile_px, ox // tile_px, indexing="ij")
        usable[yy[has], xx[has]] = True
    rng = np.random.default_rng(spec.seed)
    tiles = np.full((n_ty, n_tx), EXCLUDED, dtype=np.int8)
    idx = np.flatnonzero(usable.ravel())
    rng.shuffle(idx)
    pair_split: dict[int, int] = {}
    if spec.kind == SPLIT_TILES:
        fr = np.asarray(spec.fractions, dtype=float)
        if fr.size != 3 or (fr < 0).any() or fr.sum() <= 0:
            raise InputError(
                f"split.fractions {spec.fractions} invalid: give three non-negative train/val/test fractions"
            )
        fr = fr / fr.sum()
        n = idx.size
        n_val = int(round(fr[1] * n))
        n_test = int(round(fr[2] * n))
        if n >= 3:
            n_val = max(n_val, 1 if fr[1] > 0 else 0)
            n_test = max(n_test, 1 if fr[2] > 0 else 0)
        n_train = n - n_val - n_test
        codes = np.array([0] * n_train + [1] * n_val + [2] * n_test, dtype=np.int8)
        tiles.ravel()[idx] = codes
    else:
        if schema.PAIR not in ds.dims:
            raise InputError("split.kind 'pairs' needs a cube with pairs (and per-pair labels): use kind 'tiles'")
        test = _pair_list(ds, spec.test, "test")
        val = [p for p in _pair_list(ds, spec.val, "val") if p not in test]
        pair_split.update({p: 2 for p in test})
        pair_split.update({p: 1 for p in val})
        n = idx.size
        n_val = 0 if val else int(round(spec.val_fraction * n))
        if not val and n >= 2 and spec.val_fraction > 0:
            n_val = max(1, min(n_val, n - 1))
        codes = np.array([1] * n_val + [0] * (n - n_val), dtype=np.int8)
        tiles.ravel()[idx] = codes
    return SplitPlan(spec, tile_px, tiles, pair_split)
