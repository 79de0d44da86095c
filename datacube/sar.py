"""SAR features on the cube's backscatter time series: change pairs, snow-free ratios, event means.

All functions take a cube (``xr.Dataset`` with ``vv``/``vh`` on ``time``) and
return contract variables (:func:`schema.make_variable`) that stay lazy when the
cube is dask-backed: every output chunk depends on a fixed number of input
chunks of the same (y, x) block, so memory is bounded by the chunk size.

- :func:`make_pairs`: reference/activity pairs, consecutive acquisitions of one
  relative orbit (same viewing geometry) at most ``max_gap_days`` apart
  (avalanche-fcn-bianchi II-A).
- :func:`change_layers`: ``vv_diff``, ``vh_diff`` (activity minus reference,
  both clipped to [-25, -5] dB first) and ``vvvh`` (avalanche-fcn-bianchi II-B).
- :func:`ratio_layers`: ``vv_ratio``, ``vh_ratio``, dB relative to the per-orbit
  median of a snow-free summer window (avalanche-cnn-sinha II-A).
- :func:`event_means`: mean of the k acquisitions right before and right after
  an event, per orbit on the ``orbit`` dimension (landslide-datacube 3.1), so
  a change of viewing geometry never reads as a change of the surface.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from sarcube.datacube import schema
from sarcube.datacube.dates import parse_time, parse_window, window_mask
from sarcube.errors import InputError

log = logging.getLogger(__name__)
#: avalanche-fcn-bianchi II-A: backscatter clipped to this range before differencing
CLIP_DB = (-25.0, -5.0)
#: default maximum reference-to-activity gap (Sentinel-1 repeat: 6 days, 12 with one satellite)
MAX_GAP_DAYS = 12.0
#: slack on the gap: start times of one relative orbit drift by seconds to minutes per cycle
GAP_TOLERANCE_DAYS = 1.0 / 24.0
#: temporary dimension of the per-orbit summer references
_ORBIT_DIM = "_orbit"


def _stack_coords_dropped(da: xr.DataArray) -> xr.DataArray:
    """Drop the per-time coordinates an indexed selection drags along (keep x, y, spatial_ref)."""
    keep = {schema.X, schema.Y, schema.SPATIAL_REF}
    return da.drop_vars([c for c in da.coords if c not in keep])


def make_pairs(ds: xr.Dataset, max_gap_days: float = MAX_GAP_DAYS) -> dict[str, xr.DataArray]:
    """Reference/activity pairs as :func:`schema.pair_coords`, sorted by activity time.

    A pair is two consecutive acquisitions of the same relative orbit at most
    ``max_gap_days`` apart (plus :data:`GAP_TOLERANCE_DAYS`); a pair never mixes
    orbits. Raises :class:`InputError` when no pair qualifies.
    """
    if not max_gap_days > 0:
        raise InputError(f"--max-gap {max_gap_days!r} must be a positive number of days (e.g. 12)")
    if schema.TIME not in ds.dims or ds.sizes[schema.TIME] < 2:
        raise InputError(
            "the cube has fewer than two acquisitions: pairs need a time series (rebuild over a longer date range)"
        )
    times = ds[schema.TIME].values.astype("datetime64[ns]")
    orbits = ds[schema.RELATIVE_ORBIT].values.astype("int64")
    limit = pd.Timedelta(days=max_gap_days + GAP_TOLERANCE_DAYS).to_timedelta64()
    rows: list[tuple[np.datetime64, np.datetime64, int]] = []
    for orbit in np.unique(orbits):
        idx = np.flatnonzero(orbits == orbit)
        idx = idx[np.argsort(times[idx], kind="stable")]
        for ref, act in zip(idx[:-1], idx[1:], strict=True):
            if times[act] - times[ref] <= limit:
                rows.append((times[ref], times[act], int(orbit)))
    if not rows:
        raise InputError(
            f"no two consecutive acquisitions of one relative orbit are within {max_gap_days:g} days: "
            "raise --max-gap or build the cube over a denser date range"
        )
    rows.sort(key=lambda r: (r[1], r[2]))
    ref_t, act_t, orb = zip(*rows, strict=True)
    return schema.pair_coords(ref_t, act_t, orb)


def default_max_gap(ds: xr.Dataset) -> float:
    """The pair gap ``features`` uses when none is given: :data:`MAX_GAP_DAYS`, or the cube's revisit when longer.

    The revisit is the median gap between consecutive acquisitions of one
    relative orbit, in whole days rounded up: 6 or 12 days for a dense
    Sentinel-1 series (so 12), about 30 for a monthly glacier series, which
    would otherwise have no pair at all.
    """
    if schema.TIME not in ds.dims or ds.sizes[schema.TIME] < 2:
        return MAX_GAP_DAYS
    times = ds[schema.TIME].values.astype("datetime64[ns]")
    orbits = ds[schema.RELATIVE_ORBIT].values.astype("int64")
    gaps = [np.diff(np.sort(times[orbits == orbit])) for orbit in np.unique(orbits)]
    days = np.concatenate(gaps).astype("timedelta64[s]").astype(np.float64) / 86400.0 if gaps else np.array([])
    if not days.size:
        return MAX_GAP_DAYS
    return max(MAX_GAP_DAYS, float(math.ceil(float(np.median(days)) - GAP_TOLERANCE_DAYS)))


def _time_index(ds: xr.Dataset, wanted: np.ndarray, what: str) -> np.ndarray:
    index = pd.DatetimeIndex(ds[schema.TIME].values)
    pos = index.get_indexer(pd.DatetimeIndex(np.asarray(wanted, dtype="datetime64[ns]")))
    if (pos < 0).any():
        missing = np.asarray(wanted)[pos < 0][0]
        raise InputError(
            f"{what} {np.datetime_as_string(missing, unit='s')} is not an acquisition of the cube: recompute the pairs"
        )
    return pos


def _pair_selection(ds: xr.Dataset, var: str, positions: np.ndarray, pairs: Mapping[str, xr.DataArray]) -> xr.DataArray:
    sel = ds[var].isel({schema.TIME: xr.DataArray(positions, dims=(schema.PAIR,))})
    return _stack_coords_dropped(sel).assign_coords({schema.PAIR: pairs[schema.PAIR]})


def diff_rescale_range(clip_db: tuple[float, float] = CLIP_DB) -> tuple[float, float]:
    """The fixed range mapped onto [0, 1] for ``vvvh``: every difference of clipped values, [lo - hi, hi - lo]."""
    lo, hi = clip_db
    return (lo - hi, hi - lo)


def change_layers(
    ds: xr.Dataset,
    pairs: Mapping[str, xr.DataArray],
    clip_db: tuple[float, float] = CLIP_DB,
) -> dict[str, xr.DataArray]:
    """``vv_diff``, ``vh_diff`` (dB) and ``vvvh`` on (pair, y, x) for ``pairs`` from :func:`make_pairs`.

    Both dates are clipped to ``clip_db`` first; diff = activity - reference.
    ``vvvh`` = ``r(vv_diff)**2 * r(vh_diff)**2`` with ``r`` the linear rescaling
    of a difference from the fixed range :func:`diff_rescale_range` (``[-20, 20]``
    dB for the default clip) onto [0, 1]: the same mapping for every pair and
    scene, unlike a per-scene min/max, so values compare across pairs (no change
    gives 0.5**4 = 0.0625).
    """
    lo, hi = (float(v) for v in clip_db)
    if not lo < hi:
        raise InputError(f"clip range {clip_db!r} must be (low, high) with low < high, in dB")
    ref_pos = _time_index(ds, pairs[schema.REFERENCE_TIME].values, "reference time")
    act_pos = _time_index(ds, pairs[schema.ACTIVITY_TIME].values, "activity time")
    pair_extra = {
        name: pairs[name] for name in (schema.REFERENCE_TIME, schema.ACTIVITY_TIME, schema.PAIR_RELATIVE_ORBIT)
    }
    r_lo, r_hi = diff_rescale_range((lo, hi))
    diff_params = {"clip_db": [lo, hi], "difference": "activity - reference"}
    out: dict[str, xr.DataArray] = {}
    rescaled = []
    for var, name in ((schema.VV, schema.VV_DIFF), (schema.VH, schema.VH_DIFF)):
        ref = _pair_selection(ds, var, ref_pos, pairs).clip(lo, hi)
        act = _pair_selection(ds, var, act_pos, pairs).clip(lo, hi)
        diff = (act - ref).assign_coords(pair_extra)
        out[name] = schema.make_variable(name, diff, (schema.PAIR, schema.Y, schema.X), parameters=diff_params)
        rescaled.append(((diff - r_lo) / (r_hi - r_lo)).clip(0.0, 1.0))
    vvvh = rescaled[0] ** 2 * rescaled[1] ** 2
    out[schema.VVVH] = schema.make_variable(
        schema.VVVH,
        vvvh,
        (schema.PAIR, schema.Y, schema.X),
        parameters={
            **diff_params,
            "rescale_db": [r_lo, r_hi],
            "formula": "((vv_diff - lo)/(hi - lo))**2 * ((vh_diff - lo)/(hi - lo))**2",
        },
    )
    return out


def ratio_layers(ds: xr.Dataset, summer: tuple[str, str]) -> dict[str, xr.DataArray]:
    """``vv_ratio``, ``vh_ratio`` on (time, y, x): dB minus the median of the snow-free window, per relative orbit.

    ``summer`` is ``(START, END)``; END as a bare date includes that day. The
    reference of each acquisition is the per-pixel median (of dB values; the
    median commutes with the dB transform) over the window's acquisitions of the
    same relative orbit, so each orbit is compared with its own viewing geometry.
    Raises :class:`InputError` when the window holds no acquisition of an orbit.
    """
    start, end = summer
    what = f"--summer {start}/{end}"
    times = ds[schema.TIME].values.astype("datetime64[ns]")
    orbits = ds[schema.RELATIVE_ORBIT].values.astype("int64")
    in_window = window_mask(times, start, end, what)
    orbit_list = np.unique(orbits)
    for orbit in orbit_list:
        if not (in_window & (orbits == orbit)).any():
            raise InputError(
                f"{what} holds no acquisition of relative orbit {int(orbit)}: "
                "widen the window or build the cube over snow-free dates too"
            )
    which = np.searchsorted(orbit_list, orbits)  # reference index of each acquisition
    out: dict[str, xr.DataArray] = {}
    for var, name in ((schema.VV, schema.VV_RATIO), (schema.VH, schema.VH_RATIO)):
        src = ds[var]
        refs = []
        for orbit in orbit_list:
            members = np.flatnonzero(in_window & (orbits == orbit))
            window = _stack_coords_dropped(src.isel({schema.TIME: members}))
            if window.chunks is not None:
                window = window.chunk({schema.TIME: -1})  # dask's median needs the reduced axis whole
            refs.append(window.median(schema.TIME, skipna=True))
        ref = xr.concat(refs, dim=_ORBIT_DIM)
        per_time = _stack_coords_dropped(ref.isel({_ORBIT_DIM: xr.DataArray(which, dims=(schema.TIME,))}))
        ratio = src - per_time.assign_coords({schema.TIME: src[schema.TIME]})
        window_counts = {str(int(o)): int((in_window & (orbits == o)).sum()) for o in orbit_list}
        out[name] = schema.make_variable(
            name,
            ratio,
            (schema.TIME, schema.Y, schema.X),
            parameters={
                "summer": f"{start}/{end}",
                "statistic": "median",
                "per": schema.RELATIVE_ORBIT,
                "acquisitions_per_orbit": window_counts,
            },
        )
    return out


def _iso(t: np.datetime64) -> str:
    return str(np.datetime_as_string(t, unit="s"))


def event_means(
    ds: xr.Dataset, event_date: Any, k: int, orbit_key: str = schema.RELATIVE_ORBIT
) -> dict[str, xr.DataArray]:
    """Mean (dB) of the k acquisitions right before and the k first at/after ``event_date``, per orbit.

    Returns ``vv_before`` ... ``vh_after`` on (orbit, y, x). Acquisitions are
    grouped by ``orbit_key``: ``relative_orbit`` (one viewing geometry per
    orbit, the default) or ``orbit_state`` (one pass direction, as the released
    code of landslide-datacube keeps); each orbit's means use only its own
    acquisitions. "Before" is strictly earlier than ``event_date`` (a bare date
    means its 00:00 UTC; give a time of day to place an event within a day);
    the k latest of those are used, the last one included. "After" is the k
    earliest at or after it. NaN pixels are skipped in the mean. An orbit with
    fewer than k acquisitions on a side is left out (logged, and listed as
    ``skipped`` in the parameters); InputError when no orbit has k on both.
    """
    if not isinstance(k, int | np.integer) or k < 1:
        raise InputError(f"--k {k!r} must be a positive whole number of acquisitions")
    if orbit_key not in schema.ORBIT_KEYS:
        raise InputError(f"--orbit-key {orbit_key!r} unknown: use one of {', '.join(schema.ORBIT_KEYS)}")
    when = parse_time(event_date, "--event-date")
    times = ds[schema.TIME].values.astype("datetime64[ns]")
    first, last = times.min(), times.max()
    if not first < when <= last:
        raise InputError(
            f"--event-date {event_date} is outside the cube's acquisitions "
            f"({np.datetime_as_string(first, unit='D')} .. {np.datetime_as_string(last, unit='D')}): "
            "pick a date inside or rebuild the cube around it"
        )
    keys = ds[orbit_key].values
    orbits, before, after, skipped = [], {}, {}, {}
    for orbit in sorted(set(keys.tolist())):
        idx = np.flatnonzero(schema.orbit_members(ds, orbit_key, orbit))
        idx = idx[np.argsort(times[idx], kind="stable")]
        earlier, later = idx[times[idx] < when], idx[times[idx] >= when]
        if earlier.size < k or later.size < k:
            skipped[str(orbit)] = f"{earlier.size} before, {later.size} after"
            continue
        orbits.append(orbit)
        before[orbit], after[orbit] = earlier[-k:], later[:k]
    if not orbits:
        counts = "; ".join(f"{orbit_key} {o}: {n}" for o, n in skipped.items())
        raise InputError(
            f"--k {k}: no orbit has {k} acquisition(s) both before and after --event-date {event_date} "
            f"({counts}); lower --k or rebuild over a longer date range"
        )
    if skipped:
        log.warning("event means leave out %s %s: fewer than k=%d acquisitions on a side", orbit_key, skipped, k)
    params = {
        "event_date": _iso(when),
        "k": int(k),
        "orbit_key": orbit_key,
        "before": {str(o): [_iso(times[i]) for i in before[o]] for o in orbits},
        "after": {str(o): [_iso(times[i]) for i in after[o]] for o in orbits},
        "skipped": skipped,
        "statistic": "mean of dB values, per orbit",
    }
    coords = schema.orbit_coords(orbits, orbit_key)
    dims = (schema.ORBIT, schema.Y, schema.X)
    out: dict[str, xr.DataArray] = {}
    for var, name_before, name_after in (
        (schema.VV, schema.VV_BEFORE, schema.VV_AFTER),
        (schema.VH, schema.VH_BEFORE, schema.VH_AFTER),
    ):
        for name, chosen in ((name_before, before), (name_after, after)):
            means = [
                _stack_coords_dropped(ds[var].isel({schema.TIME: chosen[o]})).mean(schema.TIME, skipna=True)
                for o in orbits
            ]
            stacked = xr.concat(means, dim=schema.ORBIT).assign_coords(coords)
            out[name] = schema.make_variable(name, stacked, dims, parameters=params)
    return out


__all__ = [
    "CLIP_DB",
    "GAP_TOLERANCE_DAYS",
    "MAX_GAP_DAYS",
    "change_layers",
    "default_max_gap",
    "diff_rescale_range",
    "event_means",
    "make_pairs",
    "parse_time",
    "parse_window",
    "ratio_layers",
]
