"""The change composite avalanche experts label on (avalanche-fcn-bianchi II-C).

R = reference VV, G = activity VV, B = reference VV, each scaled over a dB
range: unchanged terrain is grey, new debris (brighter in the activity
image) green, darkening (wet snow) magenta. Pure numpy, for any pair of
(H, W) dB images (scenes, cube slices, chips).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from sarcube.datacube import schema
from sarcube.errors import InputError, MissingVariableError

#: the dB range avalanche-fcn-bianchi clips backscatter to before differencing
COMPOSITE_DB_RANGE = (-25.0, -5.0)


def scale_db(db: np.ndarray, db_range: tuple[float, float] = COMPOSITE_DB_RANGE) -> np.ndarray:
    """dB values scaled linearly to [0, 1] over ``db_range`` (clipped), NaN -> 0."""
    low, high = float(db_range[0]), float(db_range[1])
    if not high > low:
        raise InputError(f"dB range {db_range!r} is empty: give (low, high) with low < high, e.g. (-25, -5)")
    out = (np.asarray(db, dtype=np.float64) - low) / (high - low)
    return np.nan_to_num(np.clip(out, 0.0, 1.0), nan=0.0)


def change_composite(
    reference_db: np.ndarray,
    activity_db: np.ndarray,
    db_range: tuple[float, float] = COMPOSITE_DB_RANGE,
) -> np.ndarray:
    """(H, W, 3) float RGB in [0, 1]: R reference VV, G activity VV, B reference VV.

    A pixel that is NaN in either image is black.
    """
    ref = np.asarray(reference_db)
    act = np.asarray(activity_db)
    if ref.shape != act.shape or ref.ndim != 2:
        raise InputError(f"reference {ref.shape} and activity {act.shape} must be 2-D images of one shape")
    r = scale_db(ref, db_range)
    g = scale_db(act, db_range)
    rgb = np.stack([r, g, r], axis=-1)
    rgb[~(np.isfinite(ref) & np.isfinite(act))] = 0.0
    return rgb


#: how far a pair's reference/activity time may lie from its acquisition on ``time``
TIME_TOLERANCE = np.timedelta64(1, "D")


def _time_index(ds: xr.Dataset, when: np.datetime64) -> int:
    times = ds[schema.TIME].values
    i = int(np.argmin(np.abs(times - when)))
    if abs(times[i] - when) > TIME_TOLERANCE:
        raise InputError(
            f"no acquisition on 'time' matches {when} (nearest {times[i]}): rebuild the cube's pairs with `sarcube "
            "features --pairs`"
        )
    return i


def _date(value: Any) -> str:
    return str(np.datetime_as_string(np.datetime64(value, "s"), unit="D"))


def composite_inputs(ds: xr.Dataset, pair: int | None) -> tuple[np.ndarray, np.ndarray, str]:
    """Reference and activity VV (dB) of a pair, or of the event means, and a subtitle."""
    if pair is not None:
        if schema.VV not in ds.data_vars:
            raise MissingVariableError(f"the change composite needs {schema.VV!r}; {schema.hint_for([schema.VV])}")
        ref_t, act_t = ds[schema.REFERENCE_TIME].values[pair], ds[schema.ACTIVITY_TIME].values[pair]
        vv = ds[schema.VV]
        ref = vv.isel({schema.TIME: _time_index(ds, ref_t)})
        act = vv.isel({schema.TIME: _time_index(ds, act_t)})
        return ref, act, f"R,B: VV {_date(ref_t)} (reference)   G: VV {_date(act_t)} (activity)"
    if schema.VV_BEFORE in ds.data_vars and schema.VV_AFTER in ds.data_vars:
        before, after, where = ds[schema.VV_BEFORE], ds[schema.VV_AFTER], ""
        if schema.ORBIT in before.dims:  # one viewing geometry: the first orbit with event means
            orbit = ds[schema.ORBIT].values[0]
            before, after = before.isel({schema.ORBIT: 0}), after.isel({schema.ORBIT: 0})
            where = f" (orbit {orbit})"
        return before, after, f"R,B: mean VV before   G: mean VV after the event{where}"
    raise MissingVariableError(
        f"the cube has no pairs and no {schema.VV_BEFORE!r}/{schema.VV_AFTER!r}; "
        f"{schema.hint_for([schema.VV_DIFF, schema.VV_BEFORE])}"
    )


#: months of the glacier season composite: winter (dry snow) reference against the melt season
WINTER_MONTHS = (12, 1, 2)
SUMMER_MONTHS = (7, 8)


def season_composite_inputs(ds: xr.Dataset) -> tuple[xr.DataArray, xr.DataArray, str]:
    """Mean winter VV (reference) and mean summer VV (activity) of one relative orbit, and a subtitle.

    The glaciers' seasonal contrast (wet summer snow and ice darken) over the
    whole series instead of one pair. The orbit with most acquisitions is used,
    so a change of viewing geometry never reads as a change of the ground; a
    series without winter or summer acquisitions falls back to its first and
    last acquisition.
    """
    if schema.VV not in ds.data_vars or schema.TIME not in ds.dims:
        raise MissingVariableError(
            f"the season composite needs {schema.VV!r} over time; {schema.hint_for([schema.VV])}"
        )
    orbits = ds[schema.RELATIVE_ORBIT].values
    values, counts = np.unique(orbits, return_counts=True)
    orbit = values[int(np.argmax(counts))]
    times = ds[schema.TIME].values
    months = (times.astype("datetime64[M]").astype(int) % 12) + 1
    on_orbit = orbits == orbit
    winter = np.flatnonzero(on_orbit & np.isin(months, WINTER_MONTHS))
    summer = np.flatnonzero(on_orbit & np.isin(months, SUMMER_MONTHS))
    vv = ds[schema.VV]
    if winter.size and summer.size:
        ref = vv.isel({schema.TIME: winter}).mean(schema.TIME)
        act = vv.isel({schema.TIME: summer}).mean(schema.TIME)
        return ref, act, (
            f"R,B: mean VV of {winter.size} winter (Dec-Feb)   G: mean VV of {summer.size} summer (Jul-Aug) "
            f"acquisitions, orbit {orbit}"
        )
    first, last = np.flatnonzero(on_orbit)[[0, -1]]
    return vv.isel({schema.TIME: first}), vv.isel({schema.TIME: last}), (
        f"R,B: VV {_date(times[first])}   G: VV {_date(times[last])} (orbit {orbit}: no winter/summer acquisitions)"
    )


__all__ = [
    "COMPOSITE_DB_RANGE",
    "SUMMER_MONTHS",
    "TIME_TOLERANCE",
    "WINTER_MONTHS",
    "change_composite",
    "composite_inputs",
    "scale_db",
    "season_composite_inputs",
]
