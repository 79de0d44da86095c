"""Sentinel-1-like backscatter of the synthetic scene: orbits, acquisition dates, land cover, speckle.

Per pixel and acquisition, in dB: a land-cover base (forest, meadow, rock)
with static texture, a terrain term from the local incidence angle of the
orbit's look direction, the season's snow (:mod:`~sarcube.datacube.synthetic.snow`)
and the hazard's own signal (:mod:`~sarcube.datacube.synthetic.backscatter`).
Speckle is applied in linear power and is spatially correlated, like the
speckle of a 20 m RTC product resampled from 10 m IW GRDH
(:func:`correlated_speckle`); radar shadow and layover become nodata.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from sarcube.datacube import schema
from sarcube.datacube.synthetic.terrain import fractal_noise
from sarcube.errors import InputError

# --- speckle -----------------------------------------------------------------------
# Sentinel-1 IW GRDH (ESA Sentinel-1 User Handbook / product specification): 10 m
# pixel spacing, ~20 m (range) x 22 m (azimuth) resolution, 5 x 1 looks, ENL 4.4.
# A 20 m cell of a product resampled from it (Bianchi II-A: "downsampled from 10 to
# 20 m"; PC's RTC resampled to a 20 m grid) is not 4 independent 10 m pixels: the
# 10 m pixels are correlated (resolution ~2x the spacing), so the cell holds only
# ~1-1.5 independent resolution cells and its ENL is ~4.4-6.6, not 4.4 * 4 = 17.6.
#: ENL of Sentinel-1 IW GRDH at its 10 m pixel spacing (PC's ``sar:looks_equivalent_number``)
GRDH_ENL = 4.4
GRDH_PIXEL_SPACING_M = 10.0
GRDH_RESOLUTION_M = (20.0, 22.0)
#: target ENL of a 20 m cell (approx.: ~1.4 independent GRDH resolution cells x 4.4)
SPECKLE_ENL_20M = 6.0
#: target intensity correlation of neighbouring 20 m cells (approx.: 0.2-0.4 is typical of the
#: overlap that resampling to the map grid leaves; our choice inside that range)
SPECKLE_LAG1_CORRELATION = 0.3
SPECKLE_REFERENCE_RESOLUTION_M = 20.0
#: gamma0 is stored in linear power rounded to this step in dB before compression
DB_QUANTUM = 0.01
#: incidence angle change across range, degrees per metre (about 16 degrees over 250 km)
INCIDENCE_GRADIENT_DEG_PER_M = 6.4e-5
#: residual terrain modulation of RTC gamma0, dB per unit of cos(local incidence) change
TERRAIN_DB_PER_COS = 7.0
#: land cover by elevation, m: forest below the treeline, meadow, then rock
TREELINE_M = 1900.0
ROCK_LINE_M = 2500.0
#: snow-free backscatter per land cover (VV, VH), dB
FOREST_DB = (-9.5, -15.5)
MEADOW_DB = (-13.0, -20.5)
ROCK_DB = (-11.0, -18.5)
#: amplitude of the static texture of the land cover, dB
TEXTURE_DB = 1.5

@dataclass(frozen=True)
class Orbit:
    """A relative orbit over the scene (Sentinel-1 looks right of its heading)."""

    relative_orbit: int
    orbit_state: str
    #: flight direction, degrees clockwise from north
    heading_deg: float
    #: ellipsoid incidence angle at the scene centre, degrees
    incidence_deg: float
    #: acquisition time of day, UTC, as hh:mm:ss
    time_of_day: str
    #: days after the descending pass of the same cycle
    day_offset: int

    @property
    def look_azimuth_deg(self) -> float:
        return (self.heading_deg + 90.0) % 360.0

    @property
    def afternoon(self) -> bool:
        return int(self.time_of_day[:2]) >= 12


#: two relative orbits over the western Alps: descending 66 (morning) and ascending 88 (evening)
ORBITS = (
    Orbit(66, schema.ORBIT_DESCENDING, 192.4, 41.0, "05:25:41", 0),
    Orbit(88, schema.ORBIT_ASCENDING, 347.6, 36.5, "17:24:18", 2),
)


@dataclass(frozen=True)
class Acquisition:
    """One Sentinel-1 acquisition of the scene."""

    time: np.datetime64
    orbit: Orbit
    platform: str
    #: position among the acquisitions of the same orbit
    index: int


@dataclass(frozen=True)
class Schedule:
    """Acquisitions of a hazard's scene and its reference windows."""

    acquisitions: tuple[Acquisition, ...]
    #: snow-free reference window (ISO dates, inclusive)
    summer: tuple[str, str]
    #: the windows of days events may take (first day, last day), inclusive: one per winter (none: no events)
    event_windows: tuple[tuple[np.datetime64, np.datetime64], ...]
    #: the trigger date of a landslide scene
    event_date: np.datetime64 | None


REPEAT_DAYS = 6
#: S1A and S1B alternate on the same relative orbit every 6 days (12 days each)
PLATFORMS = ("SENTINEL-1A", "SENTINEL-1B")
DEFAULT_DATES = {"avalanche": 20, "landslide": 16, "glacier": 24}
#: the last winter acquisition of each winter an avalanche scene may hold (the last one's is the scene's last
#: date): with two, training sees a spring (wet snow, refreeze) before the held-out one, as Bianchi et al.
#: trained on Oct 2014 - Apr 2017 and tested on 17 Apr 2018 (avalanche-fcn-bianchi II)
LAST_WINTER_DAYS = ("2020-04-12", "2021-04-12")
#: each further winter's default acquisitions (8 per orbit, as the first winter's)
DATES_PER_EXTRA_WINTER = 16


def default_dates(hazard: str, winters: int = 1) -> int:
    """The default acquisitions of a hazard's scene (an avalanche scene of ``winters`` winters)."""
    return DEFAULT_DATES[hazard] + (DATES_PER_EXTRA_WINTER * (winters - 1) if hazard == "avalanche" else 0)
MIN_DATES = 6


def _per_orbit(n_dates: int) -> list[int]:
    return [(n_dates + 1) // 2, n_dates // 2]


#: a day on which S1A flew the descending orbit; 6-day slots alternate A, B, A...
_PLATFORM_EPOCH = np.datetime64("2020-01-01")


def _series(
    orbit: Orbit, first_day: np.datetime64, count: int, step_days: int, start_index: int = 0
) -> list[Acquisition]:
    day0 = first_day + np.timedelta64(orbit.day_offset, "D")
    out = []
    for k in range(count):
        day = day0 + np.timedelta64(k * step_days, "D")
        t = np.datetime64(f"{np.datetime_as_string(day, unit='D')}T{orbit.time_of_day}", "s")
        slot = (
            int((day - _PLATFORM_EPOCH - np.timedelta64(orbit.day_offset, "D")) / np.timedelta64(1, "D")) // REPEAT_DAYS
        )
        out.append(Acquisition(t, orbit, PLATFORMS[slot % 2], start_index + k))
    return out


def _indexed(acqs: list[Acquisition]) -> tuple[Acquisition, ...]:
    """``acqs`` in time order, each with its position among the acquisitions of its orbit."""
    out, seen = [], dict.fromkeys(ORBITS, 0)
    for a in sorted(acqs, key=lambda a: a.time):
        out.append(Acquisition(a.time, a.orbit, a.platform, seen[a.orbit]))
        seen[a.orbit] += 1
    return tuple(out)


def acquisition_schedule(hazard: str, n_dates: int, winters: int = 1) -> Schedule:
    """Dates, orbits and platforms of ``n_dates`` acquisitions for a hazard's scene.

    avalanche: two snow-free August acquisitions per orbit (2020), and a 6-day
    repeat through late winter and spring in each of ``winters`` winters (1 or
    2) ending mid-April 2021 (and mid-April 2020), an orbit's winter dates
    dealt evenly over them; landslide:
    12-day repeat around a storm on 2020-10-02; glacier: a hydrological year
    (October 2020 - September 2021) sampled about monthly.
    """
    counts = _per_orbit(n_dates)
    acqs: list[Acquisition] = []
    if hazard == "avalanche":
        n_summer = [1 if c < 5 else 2 for c in counts]
        summer_day = np.datetime64("2020-08-09")
        for orbit, n in zip(ORBITS, n_summer, strict=True):
            acqs += _series(orbit, summer_day, n, REPEAT_DAYS)
        if not 1 <= winters <= len(LAST_WINTER_DAYS):
            raise InputError(f"winters={winters}: an avalanche scene holds 1 to {len(LAST_WINTER_DAYS)} winters")
        if min(c - n for c, n in zip(counts, n_summer, strict=True)) < 2 * winters:
            raise InputError(f"{n_dates} dates are too few for {winters} winters: give at least "
                             f"{2 * (2 + 2 * winters)} (each winter needs a pair of each orbit)")
        winters = LAST_WINTER_DAYS[-winters:]
        windows = []
        for w, last_day in enumerate(winters):
            # each orbit's winter dates dealt over the winters, the last winter taking the odd ones
            n_winter = [(c - n) // len(winters) + (len(winters) - 1 - w < (c - n) % len(winters))
                        for c, n in zip(counts, n_summer, strict=True)]
            last_winter_day = np.datetime64(last_day)
            winter_day = max(last_winter_day - np.timedelta64(132, "D"),
                             last_winter_day - np.timedelta64(REPEAT_DAYS * (max(n_winter) - 1), "D"))
            winter = [a for orbit, n in zip(ORBITS, n_winter, strict=True)
                      for a in _series(orbit, winter_day, n, REPEAT_DAYS)]
            acqs += winter
            # events fall after the winter's first acquisition of both orbits and by the last of either,
            # so each one lies inside a winter pair of each orbit
            first = max(min(a.time for a in winter if a.orbit is o) for o in ORBITS)
            last = min(max(a.time for a in winter if a.orbit is o) for o in ORBITS)
            windows.append((first.astype("datetime64[D]") + np.timedelta64(1, "D"), last.astype("datetime64[D]")))
        summer = (str(summer_day), str(summer_day + np.timedelta64(REPEAT_DAYS * 2 + 2, "D")))
        return Schedule(_indexed(acqs), summer, tuple(windows), None)
    if hazard == "landslide":
        event = np.datetime64("2020-10-02")
        step = 2 * REPEAT_DAYS
        for orbit, c in zip(ORBITS, counts, strict=True):
            before = c // 2
            first_day = event - np.timedelta64(step * before - 1, "D")
            acqs += _series(orbit, first_day, c, step)
        first = min(a.time for a in acqs).astype("datetime64[D]")
        summer = (str(first), str(event - np.timedelta64(1, "D")))
        return Schedule(tuple(sorted(acqs, key=lambda a: a.time)), summer, (), event)
    # glacier: a year, monthly-ish steps on the 6-day grid
    step = max(REPEAT_DAYS, (330 // max(counts[0] - 1, 1)) // REPEAT_DAYS * REPEAT_DAYS)
    for orbit, c in zip(ORBITS, counts, strict=True):
        acqs += _series(orbit, np.datetime64("2020-10-01"), c, step)
    return Schedule(tuple(sorted(acqs, key=lambda a: a.time)), ("2021-07-01", "2021-08-31"), (), None)


def smoothstep(x: np.ndarray) -> np.ndarray:
    """0 below 0, 1 above 1, a smooth cubic between."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


@dataclass
class SceneLayers:
    """Static layers the simulation reuses for every acquisition (all (H, W), float32 unless said)."""

    x: np.ndarray
    y: np.ndarray
    cell_m: float
    z: np.ndarray
    slope: np.ndarray
    aspect: np.ndarray
    base_vv: np.ndarray
    base_vh: np.ndarray
    #: per orbit: terrain term (dB) and the shadow/layover mask (bool)
    terrain_db: dict[int, np.ndarray]
    invalid: dict[int, np.ndarray]
    enl: float


def land_cover_base(
    z: np.ndarray, x: np.ndarray, y: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Snow-free VV and VH (dB): forest/meadow/rock blended by elevation, plus static texture."""
    wobble = 120.0 * fractal_noise(x, y, 2000.0, 3, rng)
    forest = 1.0 - smoothstep((z + wobble - TREELINE_M + 80.0) / 160.0)
    rock = smoothstep((z + wobble - ROCK_LINE_M + 100.0) / 200.0)
    meadow = np.clip(1.0 - forest - rock, 0.0, 1.0)
    texture = fractal_noise(x, y, 600.0, 4, rng)
    texture_vh = 0.7 * texture + 0.3 * fractal_noise(x, y, 600.0, 4, rng)
    vv = forest * FOREST_DB[0] + meadow * MEADOW_DB[0] + rock * ROCK_DB[0] + TEXTURE_DB * texture
    vh = forest * FOREST_DB[1] + meadow * MEADOW_DB[1] + rock * ROCK_DB[1] + TEXTURE_DB * texture_vh
    return vv, vh


def speckle_enl(resolution_m: float) -> float:
    """Target ENL of a cell of ``resolution_m``: :data:`SPECKLE_ENL_20M` at 20 m, growing with the
    cell area above it (coarser cells average independent resolution cells), never below GRDH's."""
    return max(GRDH_ENL, SPECKLE_ENL_20M * (resolution_m / SPECKLE_REFERENCE_RESOLUTION_M) ** 2)


def speckle_kernel(correlation: float) -> np.ndarray:
    """Symmetric 3-tap kernel ``[a, 1, a] / (1 + 2a)`` whose separable 2-D smoothing of white
    noise gives neighbouring cells the intensity ``correlation`` (2a / (1 + 2a^2) = correlation)."""
    if not 0.0 <= correlation < 2.0 ** -0.5:
        raise ValueError(f"speckle correlation {correlation!r} is out of [0, 0.707)")
    a = 0.0 if correlation == 0.0 else (1.0 - math.sqrt(1.0 - 2.0 * correlation**2)) / (2.0 * correlation)
    k = np.array([a, 1.0, a])
    return k / k.sum()


def draw_enl(target_enl: float, kernel: np.ndarray) -> float:
    """Shape of the white gamma draw whose smoothing by ``kernel`` (both axes) has ``target_enl``:
    the smoothing keeps the mean and multiplies the variance by sum(k^2)^2."""
    return target_enl * float(np.sum(kernel**2)) ** 2


def correlated_speckle(
    shape: tuple[int, int], enl: float, correlation: float, rng: np.random.Generator
) -> np.ndarray:
    """Unit-mean speckle (linear power) with ENL ``enl`` and lag-1 correlation ``correlation``
    along rows and columns: white gamma noise smoothed by a separable 3-tap kernel (the
    resampling of correlated 10 m GRDH pixels to the map grid), every cell from a full kernel."""
    kernel = speckle_kernel(correlation)
    shape_k = draw_enl(enl, kernel)
    white = rng.gamma(shape_k, 1.0 / shape_k, size=(shape[0] + 2, shape[1] + 2))
    smooth = ndimage.correlate1d(ndimage.correlate1d(white, kernel, axis=0), kernel, axis=1)
    return smooth[1:-1, 1:-1]


def add_speckle_and_mask(db: np.ndarray, layers: SceneLayers, orbit: Orbit, rng: np.random.Generator) -> np.ndarray:
    """Linear gamma0 (float32) with correlated speckle, rounded to ``DB_QUANTUM`` dB, nodata where invalid."""
    linear = 10.0 ** (db / 10.0) * correlated_speckle(db.shape, layers.enl, SPECKLE_LAG1_CORRELATION, rng)
    quantized = np.round(10.0 * np.log10(linear) / DB_QUANTUM) * DB_QUANTUM
    out = (10.0 ** (quantized / 10.0)).astype(np.float32)
    out[layers.invalid[orbit.relative_orbit]] = np.float32(schema.S1_NODATA)
    return out


def zero_fill_edge(vv: np.ndarray, vh: np.ndarray, rng: np.random.Generator) -> None:
    """Zero-fill a ragged strip at the near- or far-range edge, like real GRD borders (in place)."""
    h, w = vv.shape
    width = rng.uniform(0.03, 0.08) * w
    jitter = ndimage.gaussian_filter1d(rng.normal(0.0, 1.0, h), max(h / 40.0, 1.0))
    jitter = jitter / (np.abs(jitter).max() + 1e-9) * 0.02 * w
    edge = np.clip(width + jitter, 1, w - 1).astype(int)
    cols = np.arange(w)[None, :]
    mask = cols < edge[:, None]
    if rng.random() < 0.5:
        mask = mask[:, ::-1]
    vv[mask] = 0.0
    vh[mask] = 0.0
