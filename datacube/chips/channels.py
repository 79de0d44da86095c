"""Input channels: which cube variables a model reads, how, and the one path from a window to model input.

A preset lists :class:`ChannelSpec` s; :func:`resolve_channels` checks them
against the cube once. :func:`read_channels` / :func:`read_window` read the
raw channels of a window, :func:`normalise` applies the training statistics,
and :func:`assemble` does both: training and ``predict`` go through it, so
they can never feed a model different inputs. :func:`cube_id` names the cube
those inputs came from (stored with the weights next to the channels).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr
from sarcube.datacube import schema

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

Window = tuple[int, int, int, int]  # y0, y1, x0, x1 (pixels, end exclusive)


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


def resolve_channels(
    ds: xr.Dataset, channels: Sequence[ChannelSpec], series_steps: int = 0, *, require_label: bool = True
) -> ResolvedChannels:
    """Check ``channels`` against ``ds``; raise MissingVariableError naming what is missing and how to make it."""
    missing = [c.variable for c in channels if c.variable not in ds.data_vars and not c.optional]
    if require_label and schema.LABEL not in ds.data_vars:
        missing.append(schema.LABEL)
    if missing:
        raise MissingVariableError(
            f"the preset needs variable(s) {missing} that the cube lacks; {schema.hint_for(missing)}"
        )
    out = []
    for c in channels:
        if c.variable not in ds.data_vars:
            continue
        dims = tuple(ds[c.variable].dims)
        take = c.take
        if take == TAKE_AUTO:
            take = {schema.SPATIAL_DIMS: TAKE_STATIC, (schema.PAIR, *schema.SPATIAL_DIMS): TAKE_PER_PAIR}.get(dims, "")
            if not take:
                raise InputError(
                    f"channel {c.variable!r} has dims {dims}: "
                    f"say how to take it ({TAKE_ACTIVITY}, {TAKE_REFERENCE} or {TAKE_SERIES})"
                )
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
            raise TrainingDataError(
                f"the cube has {ds.sizes[schema.TIME]} acquisitions, the preset asks for a series of "
                f"{resolved.series_steps}: lower inputs.series_steps"
            )
    if resolved.per_pair and schema.PAIR not in ds.dims:
        raise MissingVariableError(
            f"the preset takes channels per pair but the cube has no pairs; {schema.hint_for([schema.VV_DIFF])}"
        )
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


def _read_channel(
    ds: xr.Dataset, c: ChannelSpec, pair: int | None, window: Window, series_steps: int, cache: StaticCache | None
) -> np.ndarray:
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


def read_channels(
    ds: xr.Dataset, resolved: ResolvedChannels, pair: int | None, window: Window, cache: StaticCache | None = None
) -> list[np.ndarray]:
    """Raw channels of one window, unstacked: (H, W), or (T, H, W) for series channels, float32."""
    return [_read_channel(ds, c, pair, window, resolved.series_steps, cache) for c in resolved.channels]


def read_window(
    ds: xr.Dataset,
    resolved: ResolvedChannels,
    pair: int | None,
    window: Window,
    cache: StaticCache | None = None,
    *,
    with_labels: bool = False,
) -> Any:
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


def normalise(
    raw: np.ndarray, mean: Sequence[float], std: Sequence[float], *, axis: int = 0, in_place: bool = False
) -> np.ndarray:
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


def assemble(
    ds: xr.Dataset,
    resolved: ResolvedChannels,
    pair: int | None,
    window: Window,
    mean: Sequence[float],
    std: Sequence[float],
) -> np.ndarray:
    """Normalised input channels of a cube window: the one path from cube to model input."""
    return normalise(read_window(ds, resolved, pair, window), mean, std)


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
