"""Held-out time windows of a ``pairs`` split: which pairs are test, validation, purged or training.

A pair covers (reference_time, activity_time]: an event dated in it is burnt
into it (:mod:`sarcube.datacube.labels`), and a pair of the other orbit over
the same days holds the same event. So a split holds out *windows*, not
pairs. ``split.test`` / ``split.val`` name a window as the union of the
intervals of: ``last`` / ``first`` (the last / first pair of every relative
orbit), pair indices, activity dates ``YYYY-MM-DD`` (every pair ending that
day), or date ranges ``START/END`` (both days included). A window takes
every pair of every orbit whose interval overlaps it. Pairs that overlap the
held-out pairs' intervals without being held out are *excluded* (a purge
gap: neither trained on nor scored), so no training pair shares a moment,
hence an event, with a validation or test pair.

Validation by default (``val`` empty or ``last``) is the window of the latest
pairs left, preferring those that end before the test window begins: the
window just before the test window, so checkpoint choice and threshold
tuning never see a test event.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import xarray as xr

from sarcube.datacube import schema
from sarcube.errors import InputError

WINDOW_LAST = "last"
WINDOW_FIRST = "first"
#: separates the two days of a date range window
RANGE_SEPARATOR = "/"
_DAY_NS = np.timedelta64(1, "D").astype("timedelta64[ns]").astype(np.int64)

#: (lo, hi]: nanoseconds since 1970, start excluded, end included (a pair's (reference, activity])
Interval = tuple[int, int]


@dataclass(frozen=True)
class PairTimes:
    """Reference and activity times (ns since 1970) and relative orbit of every pair of a cube."""

    reference: np.ndarray
    activity: np.ndarray
    orbit: np.ndarray

    @classmethod
    def from_cube(cls, ds: xr.Dataset) -> PairTimes:
        def ns(name: str) -> np.ndarray:
            return ds[name].values.astype("datetime64[ns]").astype(np.int64)

        orbit = np.asarray(ds[schema.PAIR_RELATIVE_ORBIT].values)
        return cls(ns(schema.REFERENCE_TIME), ns(schema.ACTIVITY_TIME), orbit)

    @property
    def n(self) -> int:
        return int(self.activity.size)

    def intervals(self, pairs: Iterable[int]) -> list[Interval]:
        return [(int(self.reference[p]), int(self.activity[p])) for p in pairs]

    def overlapping(self, window: Sequence[Interval], among: Iterable[int]) -> list[int]:
        """Pairs of ``among`` whose (reference, activity] shares a moment with the window."""
        return sorted(
            p for p in among
            if any(max(int(self.reference[p]), lo) < min(int(self.activity[p]), hi) for lo, hi in window)
        )

    def day(self, p: int) -> str:
        return str(np.datetime64(int(self.activity[p]), "ns").astype("datetime64[D]"))


@dataclass(frozen=True)
class PairAssignment:
    """Pair indices per role; every pair is in exactly one."""

    train: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...]
    #: purge gaps: pairs overlapping held-out pairs without being held out
    excluded: tuple[int, ...]


def _edge_pairs(times: PairTimes, among: Sequence[int], last: bool) -> list[int]:
    """The last (or first) pair of every relative orbit among ``among``."""
    out = []
    for orbit in sorted(set(times.orbit[list(among)].tolist())):
        mine = [p for p in among if times.orbit[p] == orbit]
        out.append(max(mine, key=lambda p: times.activity[p]) if last else min(mine, key=lambda p: times.reference[p]))
    return out


def _day_ns(text: str, what: str, item: Any) -> int:
    try:
        day = np.datetime64(text.strip(), "D")
    except ValueError as err:
        raise InputError(
            f"split.{what}: {item!r} is neither a pair index, a date YYYY-MM-DD nor a range START/END"
        ) from err
    return int(day.astype("datetime64[ns]").astype(np.int64))


def _item_window(times: PairTimes, item: Any, what: str) -> list[Interval]:
    if isinstance(item, bool):
        raise InputError(f"split.{what}: {item!r} is not a window: give pair indices, dates or START/END ranges")
    if isinstance(item, int) or (isinstance(item, str) and item.strip().isdigit()):
        i = int(item)
        if not 0 <= i < times.n:
            raise InputError(f"split.{what}: pair {i} out of range (the cube has {times.n} pairs)")
        return times.intervals([i])
    text = item.isoformat()[:10] if isinstance(item, date | datetime) else str(item)
    if RANGE_SEPARATOR in text:
        start, _, end = text.partition(RANGE_SEPARATOR)
        lo, hi = _day_ns(start, what, item), _day_ns(end, what, item) + _DAY_NS
        if hi <= lo:
            raise InputError(f"split.{what}: range {text!r} ends before it starts: give START/END with START <= END")
        return [(lo - 1, hi - 1)]  # every moment of the days START..END
    day = _day_ns(text, what, item)
    hits = [p for p in range(times.n) if day <= times.activity[p] < day + _DAY_NS]
    if not hits:
        days = sorted({times.day(p) for p in range(times.n)})
        raise InputError(f"split.{what}: no pair has activity date {text} (dates: {days}); or give a range START/END")
    return times.intervals(hits)


def window(times: PairTimes, which: Any, what: str, among: Sequence[int]) -> list[Interval]:
    """The intervals ``which`` names (empty when it names nothing); ``last``/``first`` pick among ``among``."""
    if which in ("", None) or (not isinstance(which, str | int) and len(which) == 0):
        return []
    if which in (WINDOW_LAST, WINDOW_FIRST):
        return times.intervals(_edge_pairs(times, among, which == WINDOW_LAST)) if among else []
    items = [which] if isinstance(which, str | int | date) else list(which)
    return [iv for item in items for iv in _item_window(times, item, what)]


def assign_pairs(times: PairTimes, test: Any, val: Any, *, val_by_tiles: bool = False) -> PairAssignment:
    """Test window, its purge gap, validation window (unless ``val_by_tiles``), its purge gap, training pairs."""
    everything = list(range(times.n))
    held_test = times.overlapping(window(times, test, "test", everything), everything)
    purged = set(times.overlapping(times.intervals(held_test), everything)) - set(held_test)
    left = [p for p in everything if p not in held_test and p not in purged]
    held_val: list[int] = []
    if not val_by_tiles:
        if val in ("", None, WINDOW_LAST) or (not isinstance(val, str | int) and len(val) == 0):
            start = min((times.reference[p] for p in held_test), default=None)
            before = [p for p in left if start is None or times.activity[p] <= start]
            val_window = window(times, WINDOW_LAST, "val", before or left)
        else:
            val_window = window(times, val, "val", left)
        held_val = times.overlapping(val_window, left)
        if not held_val:
            raise InputError(
                f"split: no pair is left to validate on outside the test window (test pairs {held_test}, "
                f"purged {sorted(purged)}, {times.n} pairs in all): give an earlier split.val window, "
                "a smaller split.test, or split.val=tiles"
            )
        purged |= set(times.overlapping(times.intervals(held_val), left)) - set(held_val)
    train = [p for p in left if p not in held_val and p not in purged]
    return PairAssignment(tuple(train), tuple(held_val), tuple(held_test), tuple(sorted(purged)))


__all__ = ["Interval", "PairAssignment", "PairTimes", "assign_pairs", "window"]
