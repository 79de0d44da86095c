"""Chips cut from a cube: input channels, selection, splits that do not leak, blocks.

No torch here (``pipelines/loaders.py`` is the torch seam). The flow:

1. :func:`resolve_channels` checks a preset's :class:`ChannelSpec` list
   against the cube (a missing variable raises
   :class:`~sarcube.errors.MissingVariableError` naming the
   ``sarcube features`` flag that makes it).
2. :func:`chip_counts` computes, per chip window of a :class:`ChipSpec`
   grid, the number of positive (label 1) and labelled (label != 255) pixels
   from a *coarsened* label map (dask ``coarsen`` then window sums over the
   small coarse grid): no chip is ever loaded to be selected.
3. :func:`make_split` assigns spatial tiles (aligned to the chip grid) and
   held-out pairs to train/val/test; :func:`chip_table` keeps only chips that
   lie fully inside one tile, so no chip straddles two splits.
4. :func:`select` applies a policy (``positives``, ``balanced``,
   ``negatives``, ``all``) per split.
5. :func:`train_statistics` computes per-channel mean/std (NaN-aware) over the
   training split only.
6. :func:`blocks` groups the chips into chunk-aligned blocks; a loader reads a
   block once (:func:`read_channels`) and cuts all its chips in memory
   (:func:`gather_normalised` in the hot path, :func:`cut_chips` otherwise).

xbatcher: the chip grid is xbatcher's (full chips at ``size - overlap``
strides, as ``BatchGenerator(input_dims, input_overlap)`` cuts them;
:func:`cut_chips_xbatcher` is the reference the tests compare against), but
``BatchGenerator`` is not the cutter inside a block: it pays an
``xarray.isel`` and a Dataset per chip (~100 us), slower than decompressing
the block itself, while a numpy/numba gather costs ~1 us per chip
(benchmarks/chips.py measures the plain xbatcher loop).

:func:`assemble` is the one function that turns a cube window into normalised
input channels; training and ``predict`` both go through it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr
from sarcube.datacube import schema
from sarcube.datacube.grid import pixel_size

from sarcube.errors import CubeSchemaError, InputError, MissingVariableError, TrainingDataError

# --- how a channel is taken from the cube ---------------------------------------
#: a (y, x) layer, the same for every sample
TAKE_STATIC = "static"
#: a (pair, y, x) layer at the sample's pair
TAKE_PER_PAIR = "per-pair"
#: a (time, y, x) layer at the acquisition of the pair's activity time
TAKE_ACTIVITY = "at-activity"
#: a (time, y, x) layer at the acquisition of the pair's reference time
TAKE_REFERENCE = "at-reference"
#: T steps of a (time, y, x) layer (the last T, or the T up to the pair's activity time)
TAKE_SERIES = "series"
#: infer from the variable's dims ((y, x) static, (pair, y, x) per pair)
TAKE_AUTO = "auto"
TAKES = (TAKE_STATIC, TAKE_PER_PAIR, TAKE_ACTIVITY, TAKE_REFERENCE, TAKE_SERIES, TAKE_AUTO)

# --- selection policies and splits -----------------------------------------------
POLICY_POSITIVES = "positives"
POLICY_BALANCED = "balanced"
POLICY_NEGATIVES = "negatives"
POLICY_ALL = "all"
POLICIES = (POLICY_POSITIVES, POLICY_BALANCED, POLICY_NEGATIVES, POLICY_ALL)

TRAIN, VAL, TEST = "train", "val", "test"
SPLITS = (TRAIN, VAL, TEST)
#: split code of a tile that holds no labelled pixel (excluded, as glacier-timeseries drops ice-free tiles)
EXCLUDED = -1

SPLIT_TILES = "tiles"
SPLIT_PAIRS = "pairs"

#: default block side (pixels): one storage chunk
BLOCK_PX = 2 * schema.CHUNK_YX


@dataclass(frozen=True)
class ChannelSpec:
    """One input variable of a model and how it is taken from the cube."""

    #: cube variable name (schema name, e.g. ``vv_diff``)
    variable: str
    #: one of :data:`TAKES`
    take: str = TAKE_AUTO
    #: skip silently when the cube lacks it (e.g. InSAR coherence)
    optional: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"variable": self.variable, "take": self.take, "optional": self.optional}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChannelSpec:
        return cls(str(d["variable"]), str(d.get("take", TAKE_AUTO)), bool(d.get("optional", False)))


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
            raise InputError(f"chips: size {self.size} / overlap {self.overlap} invalid: need size >= 1 and 0 <= overlap < size")
        for p in (self.policy, self.eval_policy):
            if p not in POLICIES:
                raise InputError(f"chips: policy {p!r} unknown, use one of {POLICIES}")


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


# --- channels --------------------------------------------------------------------

@dataclass(frozen=True)
class ResolvedChannels:
    """Channels checked against a cube: takes made explicit, absent optional ones dropped."""

    channels: tuple[ChannelSpec, ...]
    #: T for ``series`` channels (0 when none)
    series_steps: int = 0

    @property
    def temporal(self) -> bool:
        return any(c.take == TAKE_SERIES for c in self.channels)

    @property
    def per_pair(self) -> bool:
        return any(c.take in (TAKE_PER_PAIR, TAKE_ACTIVITY, TAKE_REFERENCE) for c in self.channels)

    @property
    def names(self) -> list[str]:
        return [f"{c.variable}@{c.take}" for c in self.channels]


def resolve_channels(ds: xr.Dataset, channels: Sequence[ChannelSpec], series_steps: int = 0, *, require_label: bool = True) -> ResolvedChannels:
    """Check ``channels`` against ``ds``; raise MissingVariableError naming what is missing and how to make it."""
    missing = [c.variable for c in channels if c.variable not in ds.data_vars and not c.optional]
    if require_label and schema.LABEL not in ds.data_vars:
        missing.append(schema.LABEL)
    if missing:
        raise MissingVariableError(f"the preset needs variable(s) {missing} that the cube lacks; {schema.hint_for(missing)}")
    out = []
    for c in channels:
        if c.variable not in ds.data_vars:
            continue
        dims = tuple(ds[c.variable].dims)
        take = c.take
        if take == TAKE_AUTO:
            take = {schema.SPATIAL_DIMS: TAKE_STATIC, (schema.PAIR, *schema.SPATIAL_DIMS): TAKE_PER_PAIR}.get(dims, "")
            if not take:
                raise InputError(f"channel {c.variable!r} has dims {dims}: say how to take it ({TAKE_ACTIVITY}, {TAKE_REFERENCE} or {TAKE_SERIES})")
        expected = {
            TAKE_STATIC: schema.SPATIAL_DIMS,
            TAKE_PER_PAIR: (schema.PAIR, *schema.SPATIAL_DIMS),
            TAKE_ACTIVITY: (schema.TIME, *schema.SPATIAL_DIMS),
            TAKE_REFERENCE: (schema.TIME, *schema.SPATIAL_DIMS),
            TAKE_SERIES: (schema.TIME, *schema.SPATIAL_DIMS),
        }.get(take)
        if expected is None:
            raise InputError(f"channel {c.variable!r}: take {take!r} unknown, use one of {TAKES}")
        if dims != expected:
            raise CubeSchemaError(f"channel {c.variable!r} taken {take!r} needs dims {expected}, the cube has {dims}")
        out.append(ChannelSpec(c.variable, take, c.optional))
    if not out:
        raise InputError("the preset has no input channel present in the cube")
    resolved = ResolvedChannels(tuple(out), int(series_steps) if any(c.take == TAKE_SERIES for c in out) else 0)
    if resolved.temporal:
        if resolved.series_steps < 1:
            raise InputError("series channels need inputs.series_steps >= 1 (e.g. --set inputs.series_steps=5)")
        if ds.sizes[schema.TIME] < resolved.series_steps:
            raise TrainingDataError(f"the cube has {ds.sizes[schema.TIME]} acquisitions, the preset asks for a series of {resolved.series_steps}: lower inputs.series_steps")
    if resolved.per_pair and schema.PAIR not in ds.dims:
        raise MissingVariableError(f"the preset takes channels per pair but the cube has no pairs; {schema.hint_for([schema.VV_DIFF])}")
    return resolved


def sample_pairs(ds: xr.Dataset, resolved: ResolvedChannels) -> list[int | None]:
    """The pairs samples are drawn from: every pair when labels or channels depend on it, else [None]."""
    label_per_pair = schema.LABEL in ds and schema.PAIR in ds[schema.LABEL].dims
    if label_per_pair or resolved.per_pair:
        return list(range(ds.sizes[schema.PAIR]))
    return [None]


def _time_index(ds: xr.Dataset, when: np.datetime64, what: str) -> int:
    times = ds[schema.TIME].values
    hits = np.flatnonzero(times == when)
    if hits.size:
        return int(hits[0])
    i = int(np.argmin(np.abs(times - when)))
    if abs(times[i] - when) > np.timedelta64(1, "D"):
        raise CubeSchemaError(f"{what} {when} of a pair matches no acquisition on 'time' (nearest {times[i]})")
    return i


def time_indices(ds: xr.Dataset, channel: ChannelSpec, pair: int | None, series_steps: int) -> list[int]:
    """Indices on ``time`` a time-series channel reads for one sample."""
    if channel.take in (TAKE_ACTIVITY, TAKE_REFERENCE):
        if pair is None:
            raise InputError(f"channel {channel.variable!r} taken {channel.take} needs a pair")
        coord = schema.ACTIVITY_TIME if channel.take == TAKE_ACTIVITY else schema.REFERENCE_TIME
        return [_time_index(ds, ds[coord].values[pair], coord)]
    end = ds.sizes[schema.TIME]
    if pair is not None:
        end = _time_index(ds, ds[schema.ACTIVITY_TIME].values[pair], schema.ACTIVITY_TIME) + 1
    start = max(0, end - series_steps)
    idx = list(range(start, end))
    return [idx[0]] * (series_steps - len(idx)) + idx  # pad at the start when the series is short


Window = tuple[int, int, int, int]  # y0, y1, x0, x1 (pixels, end exclusive)


class StaticCache:
    """Least-recently-used windows of static (y, x) channels, so a block of another pair
    over the same place does not decode them again."""

    def __init__(self, max_bytes: int = 256 * 2**20):
        self.max_bytes = max_bytes
        self._items: dict[tuple[str, Window], np.ndarray] = {}
        self._bytes = 0

    def get(self, key: tuple[str, Window]) -> np.ndarray | None:
        a = self._items.pop(key, None)
        if a is not None:
            self._items[key] = a  # most recent last
        return a

    def put(self, key: tuple[str, Window], a: np.ndarray) -> None:
        self._items[key] = a
        self._bytes += a.nbytes
        while self._bytes > self.max_bytes and len(self._items) > 1:
            old = self._items.pop(next(iter(self._items)))
            self._bytes -= old.nbytes


def _read_channel(ds: xr.Dataset, c: ChannelSpec, pair: int | None, window: Window, series_steps: int, cache: StaticCache | None) -> np.ndarray:
    y0, y1, x0, x1 = window
    space = {schema.Y: slice(y0, y1), schema.X: slice(x0, x1)}
    var = ds.variables[c.variable]  # the Variable: no coordinate slicing per block read
    if c.take == TAKE_STATIC:
        a = cache.get((c.variable, window)) if cache is not None else None
        if a is None:
            a = np.asarray(var.isel(space).values, dtype=np.float32)
            if cache is not None:
                cache.put((c.variable, window), a)
        return a
    if c.take == TAKE_PER_PAIR:
        if pair is None:
            raise InputError(f"channel {c.variable!r} is per pair: give a pair index")
        return np.asarray(var.isel({schema.PAIR: pair, **space}).values, dtype=np.float32)
    idx = time_indices(ds, c, pair, series_steps)
    if len(set(idx)) == len(idx) and idx == list(range(idx[0], idx[-1] + 1)):
        a = var.isel({schema.TIME: slice(idx[0], idx[-1] + 1), **space}).values
    else:
        a = var.isel({schema.TIME: idx, **space}).values
    a = np.asarray(a, dtype=np.float32)
    return a if c.take == TAKE_SERIES else a[0]


def read_channels(ds: xr.Dataset, resolved: ResolvedChannels, pair: int | None, window: Window, cache: StaticCache | None = None) -> list[np.ndarray]:
    """Raw channels of one window, unstacked: (H, W), or (T, H, W) for series channels, float32."""
    return [_read_channel(ds, c, pair, window, resolved.series_steps, cache) for c in resolved.channels]


def read_window(ds: xr.Dataset, resolved: ResolvedChannels, pair: int | None, window: Window, cache: StaticCache | None = None, *, with_labels: bool = False) -> Any:
    """Raw input channels of one window: (C, H, W) float32, or (C, T, H, W) with series channels.

    One read per variable; with ``with_labels`` the labels come back too, as
    a second array.
    """
    t = resolved.series_steps
    arrays = read_channels(ds, resolved, pair, window, cache)
    labels = read_labels(ds, pair, window) if with_labels else None
    if resolved.temporal:
        arrays = [np.broadcast_to(a, (t, *a.shape)) if a.ndim == 2 else a for a in arrays]
    out = np.stack(arrays)
    return (out, labels) if with_labels else out


def read_labels(ds: xr.Dataset, pair: int | None, window: Window) -> np.ndarray:
    """Labels of one window, (H, W) uint8 (255 = ignore)."""
    y0, y1, x0, x1 = window
    lab = ds.variables[schema.LABEL]  # the Variable: no coordinate slicing per block read
    sel: dict[str, Any] = {schema.Y: slice(y0, y1), schema.X: slice(x0, x1)}
    if schema.PAIR in lab.dims:
        if pair is None:
            raise InputError("labels are per pair: give a pair index")
        sel[schema.PAIR] = pair
    return np.asarray(lab.isel(sel).values, dtype=np.uint8)


def normalise(raw: np.ndarray, mean: Sequence[float], std: Sequence[float], *, axis: int = 0, in_place: bool = False) -> np.ndarray:
    """(raw - mean) / std per channel (along ``axis``); NaN (nodata) becomes 0, the training mean.

    Float layers of the cube hold no infinities (NaN is their nodata), so only NaN is replaced.
    """
    shape = (1,) * axis + (-1,) + (1,) * (raw.ndim - axis - 1)
    m = np.asarray(mean, dtype=np.float32).reshape(shape)
    s = np.asarray(std, dtype=np.float32).reshape(shape)
    out = np.subtract(raw, m, out=raw if in_place and raw.dtype == np.float32 else None, dtype=np.float32)
    out *= 1.0 / s
    np.copyto(out, 0.0, where=np.isnan(out))
    return out


def assemble(ds: xr.Dataset, resolved: ResolvedChannels, pair: int | None, window: Window, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Normalised input channels of a cube window: the one path from cube to model input."""
    return normalise(read_window(ds, resolved, pair, window), mean, std)


# --- chip grid and counts from a coarsened label map ----------------------------

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
        raise TrainingDataError(f"the cube ({ny}x{nx} pixels) is smaller than one {chips.size}x{chips.size} chip: lower chips.size")
    coarse = {schema.Y: g, schema.X: g}
    pos = (lab == schema.LABEL_YES).coarsen(coarse, boundary="trim").sum()
    valid = (lab != schema.LABEL_UNKNOWN).coarsen(coarse, boundary="trim").sum()
    import dask

    pos_v, valid_v = dask.compute(pos.data, valid.data)
    return _window_sums(np.asarray(pos_v), k, s, n_y, n_x), _window_sums(np.asarray(valid_v), k, s, n_y, n_x)


# --- splits ----------------------------------------------------------------------

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
        spec = SplitSpec(s["kind"], float(s["tile_size_m"]), tuple(s["fractions"]), s["test"], s["val"], float(s["val_fraction"]), int(s["seed"]))
        return cls(spec, int(d["tile_px"]), np.asarray(d["tiles"], dtype=np.int8), {int(k): SPLITS.index(v) for k, v in d["pair_split"].items()})

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
            raise InputError(f"split.{what}: no pair has activity date {item} (dates: {sorted({str(a) for a in act})})")
        out.extend(int(h) for h in hits)
    return sorted(set(out))


def make_split(ds: xr.Dataset, spec: SplitSpec, chips: ChipSpec, valid_counts: np.ndarray | None = None) -> SplitPlan:
    """Assign tiles (aligned to the chip grid) and held-out pairs to train/val/test.

    ``valid_counts`` (from :func:`chip_counts`) marks tiles without any labelled
    pixel as excluded, so the random fractions apply to tiles that can hold chips.
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
            raise InputError(f"split.fractions {spec.fractions} invalid: give three non-negative train/val/test fractions")
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


# --- chip tables and selection ---------------------------------------------------

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
        return ChipTable(self.pair[index], self.y0[index], self.x0[index], self.n_pos[index], self.n_valid[index], self.split[index], self.size)

    def positive(self, min_positive_pixels: int = 1) -> np.ndarray:
        return self.n_pos >= min_positive_pixels


def chip_table(pairs: Sequence[int | None], pos: np.ndarray, valid: np.ndarray, plan: SplitPlan, chips: ChipSpec, ny: int, nx: int) -> ChipTable:
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
        parts = (np.full(n, -1 if p is None else p, dtype=np.int32), yy.ravel()[keep], xx.ravel()[keep], pos[row].ravel()[keep], valid[row].ravel()[keep], codes[keep])
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


# --- statistics ------------------------------------------------------------------

def train_statistics(ds: xr.Dataset, resolved: ResolvedChannels, plan: SplitPlan, train_pairs: Sequence[int | None]) -> tuple[list[float], list[float]]:
    """Per-channel mean and std (NaN-aware) over the training tiles and pairs only."""
    import dask

    mask = xr.DataArray(plan.pixel_mask(TRAIN, (ds.sizes[schema.Y], ds.sizes[schema.X])), dims=schema.SPATIAL_DIMS)
    pairs = [p for p in train_pairs if p is not None]
    sums = []
    for c in resolved.channels:
        var = ds[c.variable]
        if c.take == TAKE_PER_PAIR:
            var = var.isel({schema.PAIR: pairs})
        elif c.take in (TAKE_ACTIVITY, TAKE_REFERENCE, TAKE_SERIES):
            steps = sorted({i for p in (pairs or [None]) for i in time_indices(ds, c, p, resolved.series_steps)})
            var = var.isel({schema.TIME: steps})
        v = var.astype("float64").where(mask)
        sums.append((v.count().data, v.sum().data, (v * v).sum().data))
    computed = dask.compute(sums)[0]
    means, stds = [], []
    for c, (n, s, ss) in zip(resolved.channels, computed, strict=True):
        n = float(n)
        if n == 0:
            raise TrainingDataError(f"channel {c.variable!r} has no valid pixel in the training split: check the variable or the split")
        mean = float(s) / n
        var_ = max(float(ss) / n - mean * mean, 0.0)
        means.append(mean)
        stds.append(math.sqrt(var_) if var_ > 1e-12 else 1.0)
    return means, stds


# --- blocks: read once, cut many chips --------------------------------------------

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
        out.append(Block(None if pair < 0 else pair, window, (y0s - wy0).astype(np.int64), (x0s - wx0).astype(np.int64)))
    return out


def cut_chips(array: np.ndarray, oy: np.ndarray, ox: np.ndarray, size: int) -> np.ndarray:
    """Chips (N, ..., size, size) cut from an in-memory block (..., H, W) at origins (oy, ox).

    Plain numpy views gathered in one fancy index. xbatcher's
    ``BatchGenerator`` yields the same chips (see :func:`cut_chips_xbatcher`,
    checked equal in the tests) but pays an ``xarray.isel`` per chip
    (~100 us each), which alone would be slower than decompressing the block;
    benchmarks/chips.py measures both.
    """
    windows = np.lib.stride_tricks.sliding_window_view(array, (size, size), axis=(-2, -1))
    # windows: (..., H-size+1, W-size+1, size, size)
    picked = windows[..., oy, ox, :, :]  # (..., N, size, size)
    return np.ascontiguousarray(np.moveaxis(picked, -3, 0))


def _gather_kernel(out: np.ndarray, rows: np.ndarray, sources: Any, oy: np.ndarray, ox: np.ndarray, mean: np.ndarray, rstd: np.ndarray) -> None:
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


def gather_normalised(out: np.ndarray, rows: np.ndarray, sources: Sequence[np.ndarray], oy: np.ndarray, ox: np.ndarray, mean: np.ndarray, rstd: np.ndarray) -> None:
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


def chip_views(array: np.ndarray, oy: np.ndarray, ox: np.ndarray, size: int) -> list[np.ndarray]:
    """The chips of :func:`cut_chips` as views into the block (no copy; stack a batch of them once)."""
    windows = np.lib.stride_tricks.sliding_window_view(array, (size, size), axis=(-2, -1))
    return [windows[..., int(y), int(x), :, :] for y, x in zip(oy, ox, strict=True)]


def cut_chips_xbatcher(block: xr.Dataset | xr.DataArray, size: int, overlap: int = 0) -> list[xr.DataArray | xr.Dataset]:
    """Every chip of an in-memory block cut by ``xbatcher.BatchGenerator`` (reference for :func:`cut_chips`)."""
    import xbatcher

    gen = xbatcher.BatchGenerator(block, input_dims={schema.Y: size, schema.X: size}, input_overlap={schema.Y: overlap, schema.X: overlap})
    return list(gen)


def read_block(ds: xr.Dataset, resolved: ResolvedChannels, block: Block, mean: Sequence[float], std: Sequence[float], cache: StaticCache | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Normalised inputs (C, [T,] H, W) and labels (H, W) of a block's window (same values as :func:`assemble`)."""
    raw, labels = read_window(ds, resolved, block.pair, block.window, cache, with_labels=True)
    return normalise(raw, mean, std, in_place=True), labels


# --- provenance ------------------------------------------------------------------

def cube_id(ds: xr.Dataset) -> str:
    """Short hash of the cube's sources (stac_items) and grid: which cube a model was trained on."""
    h = hashlib.sha256()
    h.update(str(ds.attrs.get(schema.ATTR_STAC_ITEMS, "")).encode())
    for dim in (schema.Y, schema.X):
        v = ds[dim].values
        h.update(f"{dim}:{v.size}:{v[0] if v.size else 0}:{v[-1] if v.size else 0}".encode())
    if schema.SPATIAL_REF in ds.variables:
        h.update(str(ds[schema.SPATIAL_REF].attrs.get("crs_wkt", "")).encode())
    return h.hexdigest()[:16]


__all__ = [
    "BLOCK_PX",
    "POLICIES",
    "SPLITS",
    "TAKES",
    "Block",
    "ChannelSpec",
    "ChipSpec",
    "ChipTable",
    "ResolvedChannels",
    "SplitPlan",
    "SplitSpec",
    "StaticCache",
    "assemble",
    "blocks",
    "check_selection",
    "chip_counts",
    "chip_origins",
    "chip_table",
    "cube_id",
    "chip_views",
    "gather_normalised",
    "cut_chips",
    "cut_chips_xbatcher",
    "make_split",
    "normalise",
    "read_block",
    "read_channels",
    "read_labels",
    "read_window",
    "resolve_channels",
    "sample_pairs",
    "select",
    "time_indices",
    "train_statistics",
]
