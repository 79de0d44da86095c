"""Splits that do not leak: spatial tiles and held-out time windows assigned to train/val/test.

:func:`make_split` cuts the scene into tiles aligned to the chip grid and
assigns them to train/val/test (``tiles``: every pair of a tile is in that
tile's split), or holds out whole time windows (``pairs``: every pair of every
orbit overlapping a window, with a purge gap; :mod:`.windows`). The
:class:`SplitPlan` it returns is written with a run as ``split.json``, listing
each split's pairs and label events; :func:`split_mask` gives the pixels a
pair holds in a split, for scoring on the run's held-out data. Chips that
straddle two tiles belong to no split (:meth:`SplitPlan.chip_split`).

One label event (a dated polygon, :mod:`sarcube.datacube.label_events`) is
never in two splits: with windows no training pair shares a moment with a
held-out pair; with tiles, an event whose box crosses tiles of two splits
stays in the split holding most of its box, and the rest of its box is left
out of the other splits for the pairs holding it (no chip touches it, it is
not scored). :func:`check_split` refuses any split that still puts an event
in two splits.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from sarcube.datacube import schema
from sarcube.datacube.chips.chip_grid import ChipSpec, chip_origins
from sarcube.datacube.chips.windows import PairTimes, assign_pairs
from sarcube.datacube.grid import pixel_size
from sarcube.datacube.label_events import LabelEvents, PixelBox, label_events, natural_order
from sarcube.errors import InputError

TRAIN, VAL, TEST = "train", "val", "test"
SPLITS = (TRAIN, VAL, TEST)
#: split code of a tile without labelled pixels (excluded, as glacier-timeseries drops ice-free tiles),
#: of a purged pair, and of chips left out
EXCLUDED = -1
EXCLUDED_NAME = "excluded"
_CODES = {name: i for i, name in enumerate(SPLITS)} | {EXCLUDED_NAME: EXCLUDED}
_NAMES = {code: name for name, code in _CODES.items()}

SPLIT_TILES = "tiles"
SPLIT_PAIRS = "pairs"
#: ``split.val`` of a ``pairs`` split: validate on random tiles of the training pairs instead of a window
VAL_TILES = "tiles"


@dataclass(frozen=True)
class SplitSpec:
    """How chips are split into train/val/test without leaking."""

    #: ``tiles`` (random spatial tiles, every pair of a tile in its split) or ``pairs`` (held-out time windows)
    kind: str = SPLIT_TILES
    #: tile side, metres (rounded to a multiple of the chip stride)
    tile_size_m: float = 10_000.0
    #: train/val/test fractions of the tiles (``tiles``)
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    #: ``pairs``: the test window: ``last``, ``first``, or a list of pair indices, activity dates (YYYY-MM-DD)
    #: and date ranges (START/END); it takes every pair of every orbit overlapping it (see :mod:`.windows`)
    test: Any = "last"
    #: ``pairs``: the validation window like ``test``; empty = the latest pairs before the test window;
    #: ``tiles`` = a random ``val_fraction`` of the tiles of the training pairs
    val: Any = ()
    #: ``pairs`` with ``val: tiles``: fraction of the tiles that validates
    val_fraction: float = 0.1
    #: seed of the random tile assignment
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "tile_size_m": self.tile_size_m,
            "fractions": list(self.fractions),
            "test": self.test if isinstance(self.test, str | int) else list(self.test),
            "val": self.val if isinstance(self.val, str | int) else list(self.val),
            "val_fraction": self.val_fraction,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class SplitPlan:
    """The tile and pair assignment of one run (written as ``split.json``).

    ``tiles[ty, tx]`` is 0/1/2 for train/val/test (-1: excluded, no labels);
    tile (ty, tx) covers pixels ``[ty*tile_px, (ty+1)*tile_px)`` in y (same in x).
    ``pair_split`` overrides the tiles for pairs held out whole (``pairs`` kind);
    other pairs follow the tiles.
    """

    spec: SplitSpec
    tile_px: int
    tiles: np.ndarray
    #: pair index -> split code of the pairs held out whole: test/val windows, and purged pairs (EXCLUDED)
    pair_split: dict[int, int] = field(default_factory=dict)
    #: pairs in the cube (0: unknown)
    n_pairs: int = 0
    #: pair -> pixel boxes (row0, row1, col0, col1) left out of every split: parts of events crossing tiles
    masked: dict[int, tuple[PixelBox, ...]] = field(default_factory=dict)
    #: split name (or ``excluded``: in no split) -> ids of the label events it holds
    events: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def pairs_of(self, split: str) -> list[int]:
        """Pairs holding data of ``split`` (``excluded``: the purged pairs)."""
        code = _CODES[split]
        follow = code != EXCLUDED and bool((self.tiles == code).any())
        return [p for p in range(self.n_pairs) if self.pair_split.get(p, code if follow else None) == code]

    def to_json(self) -> str:
        return json.dumps(
            {
                "spec": self.spec.to_dict(),
                "tile_px": self.tile_px,
                "tiles": self.tiles.tolist(),
                "codes": _CODES,
                "n_pairs": self.n_pairs,
                "pair_split": {str(k): _NAMES[v] for k, v in sorted(self.pair_split.items())},
                "pairs": {name: self.pairs_of(name) for name in _CODES},
                "events": {name: list(ids) for name, ids in self.events.items()},
                "masked": {str(p): [list(b) for b in boxes] for p, boxes in sorted(self.masked.items())},
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
        try:
            pair_split = {int(k): _CODES[v] for k, v in d["pair_split"].items()}
        except KeyError as err:
            raise InputError(f"split.json: unknown split {err} in pair_split (use {', '.join(_CODES)})") from err
        return cls(
            spec,
            int(d["tile_px"]),
            np.asarray(d["tiles"], dtype=np.int8),
            pair_split,
            int(d.get("n_pairs", 0)),
            {int(p): tuple(tuple(int(v) for v in b) for b in boxes) for p, boxes in d.get("masked", {}).items()},
            {name: tuple(str(e) for e in ids) for name, ids in d.get("events", {}).items()},
        )

    def describe(self) -> str:
        counts = {name: int((self.tiles == i).sum()) for i, name in enumerate(SPLITS)}
        text = f"{self.spec.kind}: {self.tile_px}px tiles train/val/test {counts[TRAIN]}/{counts[VAL]}/{counts[TEST]}"
        if self.pair_split:
            held = {name: [p for p, c in sorted(self.pair_split.items()) if c == code] for name, code in _CODES.items()}
            text += ", " + ", ".join(f"{name} pairs {held[name]}" for name in (TEST, VAL, EXCLUDED_NAME) if held[name])
        if self.events:
            text += ", events " + "/".join(str(len(self.events.get(s, ()))) for s in SPLITS)
        return text

    def pixel_mask(
        self, split: str, shape: tuple[int, int], window: tuple[int, int, int, int] | None = None
    ) -> np.ndarray:
        """(y, x) boolean mask of the pixels in tiles of ``split`` (ignoring held-out pairs).

        ``window`` (y0, y1, x0, x1) gives that part of the ``shape`` mask alone (one chunk at a time).
        """
        code = SPLITS.index(split)
        y0, y1, x0, x1 = window if window is not None else (0, shape[0], 0, shape[1])
        rows, cols = np.arange(y0, y1) // self.tile_px, np.arange(x0, x1) // self.tile_px
        in_rows, in_cols = rows < self.tiles.shape[0], cols < self.tiles.shape[1]
        out = np.zeros((y1 - y0, x1 - x0), dtype=bool)
        out[np.ix_(in_rows, in_cols)] = self.tiles[np.ix_(rows[in_rows], cols[in_cols])] == code
        return out

    def chip_split(self, pair: int | None, y0: np.ndarray, x0: np.ndarray, size: int) -> np.ndarray:
        """Split code per chip origin; -1 when the chip straddles tiles, its tile or pair is excluded,
        or it touches a part of an event left out of every split."""
        ty0, tx0 = y0 // self.tile_px, x0 // self.tile_px
        inside = (ty0 == (y0 + size - 1) // self.tile_px) & (tx0 == (x0 + size - 1) // self.tile_px)
        inside &= (ty0 < self.tiles.shape[0]) & (tx0 < self.tiles.shape[1])
        codes = np.full(y0.shape, EXCLUDED, dtype=np.int8)
        codes[inside] = self.tiles[ty0[inside], tx0[inside]]
        if pair is not None and pair in self.pair_split:
            codes[inside & (codes != EXCLUDED)] = self.pair_split[pair]
        for r0, r1, c0, c1 in self.masked.get(pair, ()) if pair is not None else ():
            codes[(y0 < r1) & (y0 + size > r0) & (x0 < c1) & (x0 + size > c0)] = EXCLUDED
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


def split_mask(
    plan: SplitPlan, pair: int | None, split: str, shape: tuple[int, int],
    window: tuple[int, int, int, int] | None = None,
) -> np.ndarray:
    """(y, x) pixels of ``pair`` in ``split``: held-out pairs take every usable tile, other pairs their tiles;
    parts of events left out of every split are never in it. ``window`` (y0, y1, x0, x1): that part alone."""
    code = SPLITS.index(split)
    y0, y1, x0, x1 = window if window is not None else (0, shape[0], 0, shape[1])
    if pair is not None and pair in plan.pair_split:
        if plan.pair_split[pair] != code:
            return np.zeros((y1 - y0, x1 - x0), dtype=bool)
        rows, cols = np.arange(y0, y1) // plan.tile_px, np.arange(x0, x1) // plan.tile_px
        in_rows, in_cols = rows < plan.tiles.shape[0], cols < plan.tiles.shape[1]
        out = np.zeros((y1 - y0, x1 - x0), dtype=bool)
        out[np.ix_(in_rows, in_cols)] = plan.tiles[np.ix_(rows[in_rows], cols[in_cols])] != EXCLUDED
    else:
        out = plan.pixel_mask(split, shape, (y0, y1, x0, x1))
    for r0, r1, c0, c1 in plan.masked.get(pair, ()) if pair is not None else ():
        out[max(r0 - y0, 0) : max(r1 - y0, 0), max(c0 - x0, 0) : max(c1 - x0, 0)] = False
    return out


# --- label events ------------------------------------------------------------------

def _box_parts(tiles: np.ndarray, tile_px: int, box: PixelBox) -> list[tuple[int, PixelBox]]:
    """(tile split code, the part of ``box`` in that tile) for every tile ``box`` touches."""
    r0, r1, c0, c1 = box
    parts = []
    for ty in range(r0 // tile_px, min(tiles.shape[0], math.ceil(r1 / tile_px))):
        for tx in range(c0 // tile_px, min(tiles.shape[1], math.ceil(c1 / tile_px))):
            y0, x0 = ty * tile_px, tx * tile_px
            part = (max(r0, y0), min(r1, y0 + tile_px), max(c0, x0), min(c1, x0 + tile_px))
            if part[0] < part[1] and part[2] < part[3]:
                parts.append((int(tiles[ty, tx]), part))
    return parts


def _crossing_masks(
    tiles: np.ndarray, tile_px: int, events: LabelEvents, follow: set[int]
) -> dict[int, tuple[PixelBox, ...]]:
    """For events of tile-following pairs whose box crosses tiles of two splits: the parts outside the split
    holding most of the box, per pair holding the event (those parts are left out of every split)."""
    masked: dict[int, list[PixelBox]] = {}
    for event, holders in events.holders().items():
        pairs = [p for p in holders if p in follow]
        if not pairs or event not in events.boxes:
            continue
        parts = [(c, b) for c, b in _box_parts(tiles, tile_px, events.boxes[event]) if c != EXCLUDED]
        area: dict[int, int] = {}
        for c, (r0, r1, c0, c1) in parts:
            area[c] = area.get(c, 0) + (r1 - r0) * (c1 - c0)
        if len(area) < 2:
            continue
        keep = max(area, key=lambda c: (area[c], -c))
        for p in pairs:
            masked.setdefault(p, []).extend(b for c, b in parts if c != keep)
    return {p: tuple(dict.fromkeys(boxes)) for p, boxes in sorted(masked.items())}


def _covered(part: PixelBox, boxes: Iterable[PixelBox]) -> bool:
    return any(b[0] <= part[0] and part[1] <= b[1] and b[2] <= part[2] and part[3] <= b[3] for b in boxes)


def split_events(plan: SplitPlan, events: LabelEvents) -> dict[str, tuple[str, ...]]:
    """Split name -> ids of the label events with data in it (``excluded``: events in no split).

    A pair held out whole puts its events in its split; a pair following the
    tiles puts an event in every split whose tiles hold a part of the event's
    box that is not left out (``plan.masked``).
    """
    found: dict[str, set[int]] = {}
    for event, pairs in events.holders().items():
        codes = found.setdefault(event, set())
        for p in pairs:
            if p in plan.pair_split:
                codes.add(plan.pair_split[p])
            elif event in events.boxes:
                masked = plan.masked.get(p, ())
                parts = _box_parts(plan.tiles, plan.tile_px, events.boxes[event])
                codes.update(c for c, part in parts if not _covered(part, masked))
        codes.discard(EXCLUDED)
    out = {name: natural_order(e for e, codes in found.items() if code in codes) for name, code in _CODES.items()}
    out[EXCLUDED_NAME] = natural_order(e for e, codes in found.items() if not codes)
    return {name: tuple(ids) for name, ids in out.items()}


def check_events(events_by_split: Mapping[str, Iterable[str]], where: str, fix: str) -> None:
    """Raise a one-line InputError naming the first label event that is in two of train/val/test."""
    seen: dict[str, str] = {}
    for split in SPLITS:
        for event in events_by_split.get(split, ()):
            if event in seen:
                raise InputError(
                    f"{where}: label event {event!r} is in both the {seen[event]} and the {split} split, so it would "
                    f"be scored or tuned on after being seen: {fix}"
                )
            seen[event] = split


def check_split(plan: SplitPlan, events: LabelEvents | None, where: str, fix: str) -> None:
    """Refuse a split that puts one label event in two splits: as ``plan`` records it, and as the
    cube's ``events`` (the ``label`` attr, when present) fall into its pairs and tiles."""
    check_events(plan.events, where, fix)
    if events is not None:
        check_events(split_events(plan, events), where, fix)


# --- making a split ----------------------------------------------------------------------

def make_split(ds: xr.Dataset, spec: SplitSpec, chips: ChipSpec, valid_counts: np.ndarray | None = None) -> SplitPlan:
    """Assign tiles (aligned to the chip grid) and held-out time windows to train/val/test.

    ``valid_counts`` (from :func:`~sarcube.datacube.chips.chip_grid.chip_counts`) marks tiles
    without any labelled pixel as excluded, so the random fractions apply to tiles that can hold chips.
    The cube's label events (when recorded) are listed per split and kept in one split each.
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
        val_by_tiles = spec.val == VAL_TILES
        roles = assign_pairs(PairTimes.from_cube(ds), spec.test, spec.val, val_by_tiles=val_by_tiles)
        pair_split.update({p: 2 for p in roles.test} | {p: 1 for p in roles.val})
        pair_split.update({p: EXCLUDED for p in roles.excluded})
        n = idx.size
        n_val = int(round(spec.val_fraction * n)) if val_by_tiles else 0
        if val_by_tiles and n >= 2 and spec.val_fraction > 0:
            n_val = max(1, min(n_val, n - 1))
        codes = np.array([1] * n_val + [0] * (n - n_val), dtype=np.int8)
        tiles.ravel()[idx] = codes
    n_pairs = int(ds.sizes.get(schema.PAIR, 0))
    plan = SplitPlan(spec, tile_px, tiles, pair_split, n_pairs)
    events = label_events(ds[schema.LABEL]) if schema.LABEL in ds.data_vars else None
    if events is None:
        return plan
    follow = {p for p in range(n_pairs) if p not in pair_split}
    plan = dataclasses.replace(plan, masked=_crossing_masks(tiles, tile_px, events, follow))
    return dataclasses.replace(plan, events=split_events(plan, events))
