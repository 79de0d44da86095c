"""Dates given by users (CLI options, label fields), parsed one way everywhere.

Strings must be ISO 8601 (``2020-01-31``, ``2020-01-31T05:00Z``): free-form
parsing would read "3rd of Jan" as a date of the current year. Times are
UTC; a date alone given as the end of a range means that whole day.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from sarcube.errors import InputError

#: length of a bare ISO date, ``YYYY-MM-DD``
_DATE_ONLY_LEN = 10


def parse_time(value: Any, what: str, *, end_of_day: bool = False) -> np.datetime64:
    """A UTC ``datetime64[ns]`` from an ISO 8601 string or a date/time object.

    ``end_of_day`` turns a bare date into its last nanosecond, so a range
    ``START..END`` includes the whole END day. Raises :class:`InputError`
    naming ``what`` (e.g. ``--start``) when ``value`` is not a date.
    """
    raw = value.strip() if isinstance(value, str) else value
    try:
        if isinstance(raw, str):
            raw = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
        stamp = pd.Timestamp(raw)
    except (ValueError, TypeError) as err:
        raise InputError(f"{what} {value!r} is not a date: use ISO 8601, e.g. 2020-01-31 or 2020-01-31T05:00") from err
    if stamp is pd.NaT:
        raise InputError(f"{what} {value!r} is not a date: use ISO 8601, e.g. 2020-01-31")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    when = np.datetime64(stamp.to_datetime64(), "ns")
    if end_of_day and isinstance(value, str) and len(value.strip()) <= _DATE_ONLY_LEN:
        when = when + np.timedelta64(1, "D") - np.timedelta64(1, "ns")
    return when


def to_datetime(when: np.datetime64) -> dt.datetime:
    """A timezone-aware UTC :class:`datetime.datetime` (for STAC searches)."""
    # datetime has microseconds: truncate first (pandas warns "Discarding nonzero nanoseconds" otherwise)
    return pd.Timestamp(np.datetime64(when, "us")).to_pydatetime().replace(tzinfo=dt.UTC)


def parse_window(text: str, what: str = "--summer") -> tuple[str, str]:
    """``'START/END'`` -> ``(START, END)``, both checked to be dates with START <= END."""
    parts = str(text).split("/")
    if len(parts) != 2 or not all(p.strip() for p in parts):
        raise InputError(f"{what} {text!r} is malformed: write START/END, e.g. 2017-07-01/2017-09-30")
    start, end = (p.strip() for p in parts)
    if parse_time(start, what) > parse_time(end, what):
        raise InputError(f"{what} {text!r}: START is after END: write the earlier date first")
    return start, end


def window_mask(times: np.ndarray, start: str, end: str, what: str) -> np.ndarray:
    """Which ``times`` fall in [start, end]; an END without a time of day includes that whole day."""
    return (times >= parse_time(start, what)) & (times <= parse_time(end, what, end_of_day=True))


__all__ = ["parse_time", "parse_window", "to_datetime", "window_mask"]
