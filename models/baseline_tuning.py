"""The grids the baseline is tuned over on validation data, and the search that walks them.

A full grid of the operational detector's eight settings would be ~100,000
candidates; a coordinate search scores each setting's grid with the others held
(about 50 candidates a sweep), keeps the best, and sweeps again until a sweep
changes nothing (at most :data:`MAX_SWEEPS`). It is deterministic: settings are
swept in the grid's order and each grid lists its values simplest first (off,
smallest, loosest mask), and a tie keeps the earlier value. Nothing here knows
the detector: it sets attributes by name and asks an objective for a score.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: the first detector's grid: k only (``baseline-simple``, as before)
SIMPLE_GRID: dict[str, tuple[float, ...]] = {"k_std": (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0)}

#: the operational detector's grid, swept in this order (filter, threshold, masks, objects)
OPERATIONAL_GRID: dict[str, tuple[float, ...]] = {
    # speckle filter windows, px (1 = off): 3..7 px = 60..140 m at 20 m pixels
    "median_px": (1, 3, 5, 7),
    "boxcar_px": (1, 3, 5, 7),
    # robust standard deviations above the window's median change
    "k_std": (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0),
    # least contrast above the median, dB (debris: +1..+6 dB)
    "min_change_db": (0.0, 0.5, 1.0, 1.5, 2.0, 3.0),
    # steepest runout, degrees (90 = no slope mask); debris deposits below ~30-45 degrees
    "max_runout_slope_deg": (90.0, 50.0, 45.0, 40.0, 35.0, 30.0, 25.0),
    # least angle of reach, degrees (0 = any cell a release zone reaches); alpha angles 20-40
    "min_par_deg": (0.0, 18.0, 21.0, 24.0, 27.0, 30.0, 33.0),
    # smallest object, px (1 = keep all): 64 px = 0.026 km^2
    "min_object_pixels": (1, 4, 8, 16, 32, 64),
    # weak-pixel threshold as a fraction of the strong one's height above the median (1 = no hysteresis)
    "hysteresis": (1.0, 0.75, 0.5),
}

#: full sweeps of the coordinate search at most (it stops earlier once a sweep changes nothing)
MAX_SWEEPS = 4


@dataclass(frozen=True)
class SearchResult:
    """Where a coordinate search ended."""

    #: setting -> chosen value (already set on the target)
    values: dict[str, float]
    #: the objective there
    score: float
    #: distinct candidates scored
    evaluations: int
    #: setting -> (its grid, the objective at each value) in the last sweep, the others at their
    #: chosen values once the search has converged: what a plot of the tuning shows
    curves: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = field(default_factory=dict)


def coordinate_search(
    target: Any,
    grid: Mapping[str, Sequence[float]],
    objective: Callable[[], float],
    max_sweeps: int = MAX_SWEEPS,
) -> SearchResult:
    """Maximise ``objective()`` over ``grid`` by setting ``target``'s attributes one setting at a time.

    Starts from ``target``'s current values; each setting takes the first value of its
    grid with the highest score (ties: the earlier, simpler value). Scores are cached
    per full candidate, so revisits cost nothing.
    """
    names = list(grid)
    seen: dict[tuple[float, ...], float] = {}

    def score() -> float:
        key = tuple(float(getattr(target, n)) for n in names)
        if key not in seen:
            seen[key] = float(objective())
        return seen[key]

    best = score()
    curves: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {}
    for _ in range(max_sweeps):
        changed = False
        for name in names:
            current = float(getattr(target, name))
            scores = []
            for value in grid[name]:
                setattr(target, name, value)
                scores.append(score())
            top = max(scores)
            curves[name] = (tuple(float(v) for v in grid[name]), tuple(scores))
            chosen = grid[name][scores.index(top)]
            setattr(target, name, chosen)
            best = top
            changed |= float(chosen) != current
        if not changed:
            break
    return SearchResult({n: float(getattr(target, n)) for n in names}, best, len(seen), curves)


__all__ = ["MAX_SWEEPS", "OPERATIONAL_GRID", "SIMPLE_GRID", "SearchResult", "coordinate_search"]
