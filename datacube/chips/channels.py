"""Input channels: which cube variables a model reads, how, and the one path from a window to model input.

A preset lists :class:`ChannelSpec` s; :func:`resolve_channels` checks them
against the cube once and picks the run's orbit (:func:`run_orbit`): every
channel that combines several acquisitions (a ``series``, an ``at-orbit``
event mean) comes from that one orbit, for every sample, in training and in
``predict`` alike, so no input mixes viewing geometries.
:func:`read_channels` / :func:`read_window` read the raw channels of a
window, :func:`normalise` applies the training statistics, and
:func:`assemble` does both: training and ``predict`` go through it, so they
can never feed a model different inputs. :func:`cube_id` names the cube
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
#: T steps of a (time, y, x) layer, all of the run's relative orbit (the last T, or the T up to a pair's activity)
TAKE_SERIES = "series"
#: an (orbit, y, x) layer (the event means) at the run's orbit
TAKE_AT_ORBIT = "at-orbit"
#: infer from the variable's dims ((y, x) static, (pair, y, x) per pair, (orbit, y, x) at the run's orbit)
TAKE_AUTO = "auto"
TAKES = (TAKE_STATIC, TAKE_PER_PAIR, TAKE_ACTIVITY, TAKE_REFERENCE, TAKE_SERIES, TAKE_AT_ORBIT, TAKE_AUTO)
#: takes that combine several acquisitions, so read one orbit
ORBITAL_TAKES = (TAKE_SERIES, TAKE_AT_ORBIT)
#: ``inputs.orbit`` default: the orbit with the most acquisitions among those the channels offer
ORBIT_AUTO = "auto"

Window = tuple[int, int, int, int]  # y0, y1, x0, x1 (pixels, end exclusive)


def window_isel(window: Window) -> dict[str, slice]:
    """The ``isel`` indexers of ``window`` over the cube's spatial dims."""
    y0, y1, x0, x1 = window
    return {schema.Y: slice(y0, y1), schema.X: slice(x0, x1)}


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
    #: the orbit ``series`` and ``at-orbit`` channels read: a relative orbit number, or a pass direction
    #: when the cube's event means are per ``orbit_state``; None when no channel needs one
    orbit: int | str | None = None

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
    ds: xr.Dataset,
    channels: Sequence[ChannelSpec],
    series_steps: int = 0,
    *,
    orbit: int | str = ORBIT_AUTO,
    require_label: bool = True,
) -> ResolvedChannels:
    """Check ``channels`` against ``ds`` and pick the run's orbit (``orbit``: see :func:`run_orbit`).

    Raises MissingVariableError naming what is missing and how to make it.
    """
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
            take = {
                schema.SPATIAL_DIMS: TAKE_STATIC,
                (schema.PAIR, *schema.SPATIAL_DIMS): TAKE_PER_PAIR,
                (schema.ORBIT, *schema.SPATIAL_DIMS): TAKE_AT_ORBIT,
            }.get(dims, "")
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
            TAKE_AT_ORBIT: (schema.ORBIT, *schema.SPATIAL_DIMS),
        }.get(take)
        if expected is None:
            raise InputError(f"channel {c.variable!r}: take {take!r} unknown, use one of {TAKES}")
        if dims != expected:
            raise CubeSchemaError(f"channel {c.variable!r} taken {take!r} needs dims {expected}, the cube has {dims}")
        out.append(ChannelSpec(c.variable, take, c.optional))
    if not out:
        raise InputError("the preset has no input channel present in the cube")
    steps = int(series_steps) if any(c.take == TAKE_SERIES for c in out) else 0
    resolved = ResolvedChannels(tuple(out), steps, run_orbit(ds, out, orbit))
    if resolved.temporal:
        if resolved.series_steps < 1:
            raise InputError("series channels need inputs.series_steps >= 1 (e.g. --set inputs.series_steps=5)")
        n = int(schema.orbit_members(ds, schema.RELATIVE_ORBIT, resolved.orbit).sum())
        if n < resolved.series_steps:
            raise TrainingDataError(
                f"relative orbit {resolved.orbit} has {n} acquisitions, the preset asks for a series of "
                f"{resolved.series_steps}: lower inputs.series_steps or choose another inputs.orbit"
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


def _offered_orbits(ds: xr.Dataset, c: ChannelSpec) -> tuple[str, list[int | str]]:
    """The key and the orbits a ``series`` or ``at-orbit`` channel can be read from."""
    if c.take == TAKE_SERIES:
        return schema.RELATIVE_ORBIT, sorted(set(ds[schema.RELATIVE_ORBIT].values.tolist()))
    return schema.orbit_key(ds), list(ds[schema.ORBIT].values.tolist())


def run_orbit(ds: xr.Dataset, channels: Sequence[ChannelSpec], requested: int | str = ORBIT_AUTO) -> int | str | None:
    """The one orbit a run's ``series`` and ``at-orbit`` channels read; None when it has none of them.

    ``requested`` is a relative orbit number (or a pass direction, for event
    means per ``orbit_state``) the channels must all offer, or ``auto``: of the
    orbits they all offer, the one with the most acquisitions in the cube
    (ties: the first, lowest number). Series are always per relative orbit.
    """
    orbital = [c for c in channels if c.take in ORBITAL_TAKES]
    if not orbital:
        return None
    offered = {c.variable: _offered_orbits(ds, c) for c in orbital}
    keys = {key for key, _ in offered.values()}
    if len(keys) > 1:
        raise InputError(
            f"channels {sorted(offered)} need one orbit but group acquisitions by {sorted(keys)}: recompute the "
            f"event means per relative orbit (`sarcube features --event-date DATE --orbit-key {schema.RELATIVE_ORBIT}`)"
        )
    key = keys.pop()
    first = next(iter(offered.values()))[1]
    common = [o for o in first if all(o in values for _, values in offered.values())]
    if str(requested) != ORBIT_AUTO:
        match = [o for o in common if str(o) == str(requested)]
        if not match:
            raise InputError(
                f"inputs.orbit {requested!r} is not an orbit of channels {sorted(offered)} "
                f"({key} {common}): choose one of those or {ORBIT_AUTO}"
            )
        return match[0]
    if not common:
        raise InputError(f"channels {sorted(offered)} share no orbit: recompute them over the same acquisitions")
    counts = [int(schema.orbit_members(ds, key, o).sum()) for o in common]
    return common[int(np.argmax(counts))]


def orbit_position(ds: xr.Dataset, orbit: int | str | None) -> int:
    """Index of ``orbit`` on the cube's ``orbit`` dimension."""
    if orbit is None:
        raise InputError(
            "this run has no orbit for its per-orbit channels: "
            "it was trained before event means were per orbit; retrain it"
        )
    values = ds[schema.ORBIT].values.tolist()
    hits = [i for i, v in enumerate(values) if str(v) == str(orbit)]
    if not hits:
        raise MissingVariableError(
            f"the cube's event means hold no orbit {orbit!r} (they hold {values}): recompute them with "
            f"`sarcube features --event-date DATE --orbit-key {schema.orbit_key(ds)}` or train on one of those"
        )
    return hits[0]


def time_indices(
    ds: xr.Dataset, channel: ChannelSpec, pair: int | None, series_steps: int, orbit: int | str | None = None
) -> list[int]:
    """Indices on ``time`` a time-series channel reads for one sample.

    ``at-activity``/``at-reference``: the pair's acquisition. ``series``: the
    ``series_steps`` latest acquisitions of relative orbit ``orbit`` (in time
    order) up to the pair's activity time, or up to the last one without a
    pair; a short series repeats its first step at the start.
    """
    if channel.take in (TAKE_ACTIVITY, TAKE_REFERENCE):
        if pair is None:
            raise InputError(f"channel {channel.variable!r} taken {channel.take} needs a pair")
        coord = schema.ACTIVITY_TIME if channel.take == TAKE_ACTIVITY else schema.REFERENCE_TIME
        return [_time_index(ds, ds[coord].values[pair], coord)]
    if orbit is None:
        raise InputError(
            f"channel {channel.variable!r} is a series and needs the run's relative orbit: "
            "the run was trained before series were per orbit; retrain it"
        )
    times = ds[schema.TIME].values
    members = np.flatnonzero(schema.orbit_members(ds, schema.RELATIVE_ORBIT, orbit))
    members = members[np.argsort(times[members], kind="stable")]
    if pair is not None:
        end = times[_time_index(ds, ds[schema.ACTIVITY_TIME].values[pair], schema.ACTIVITY_TIME)]
        members = members[times[members] <= end]
    if not members.size:
        where = f" up to the activity time of pair {pair}" if pair is not None else ""
        raise TrainingDataError(
            f"channel {channel.variable!r}: the cube has no acquisition of relative orbit {orbit}{where}; "
            "choose another inputs.orbit (and retrain) or a cube with that orbit"
        )
    idx = [int(i) for i in members[-series_steps:]]
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
    ds: xr.Dataset, c: ChannelSpec, pair: int | None, window: Window, resolved: ResolvedChannels,
    cache: StaticCache | None,
) -> np.ndarray:
    space = window_isel(window)
    var = ds.variables[c.variable]  # the Variable: no coordinate slicing per block read
    if c.take in (TAKE_STATIC, TAKE_AT_ORBIT):  # the same for every sample of a run
        a = cache.get((c.variable, window)) if cache is not None else None
        if a is None:
            if c.take == TAKE_AT_ORBIT:
                space[schema.ORBIT] = orbit_position(ds, resolved.orbit)
            a = np.asarray(var.isel(space).values, dtype=np.float32)
            if cache is not None:
                cache.put((c.variable, window), a)
        return a
    if c.take == TAKE_PER_PAIR:
        if pair is None:
            raise InputError(f"channel {c.variable!r} is per pair: give a pair index")
        return np.asarray(var.isel({schema.PAIR: pair, **space}).values, dtype=np.float32)
    idx = time_indices(ds, c, pair, resolved.series_steps, resolved.orbit)
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
    return [_read_channel(ds, c, pair, window, resolved, cache) for c in resolved.channels]


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
    lab = ds.variables[schema.LABEL]  # the Variable: no coordinate slicing per block read
    sel: dict[str, Any] = window_isel(window)
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
