"""The change composite avalanche experts label on (avalanche-fcn-bianchi II-C).

R = reference VV, G = activity VV, B = reference VV, each scaled over a dB
range: unchanged terrain is grey, new debris (brighter in the activity
image) green, darkening (wet snow) magenta. Pure numpy, for any pair of
(H, W) dB images (scenes, cube slices, chips).
"""

from __future__ import annotations

import numpy as np

from sarcube.errors import InputError

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


__all__ = ["COMPOSITE_DB_RANGE", "change_composite", "scale_db"]
