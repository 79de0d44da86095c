"""Sentinel-1-like backscatter of the synthetic scene: orbits, acquisition dates, gamma0.

Per pixel and acquisition, in dB: a land-cover base (forest, meadow, rock)
with static texture, a terrain term from the local incidence angle of the
orbit's look direction, the season's snow (dry snow slightly darker, wet snow
4-5 dB darker, with a wet-snow line that moves with each date's temperature
and is higher in the afternoon ascending pass), transient bright patches on
steep terrain (false alarms for a change threshold), and the hazard's own
signal (avalanche debris, landslide scars, glaciers). Multiplicative gamma
speckle is applied in linear power; radar shadow and layover become nodata.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sarcube.datacube import schema
from sarcube.datacube.synthetic.terrain import fractal_noise
from scipy import ndimage

#: equivalent number of looks of Sentinel-1 IW GRD at its 10 m pixel spacing (PC's
#: ``sar:looks_equivalent_number``); a coarser pixel averages (res / 10 m)^2 of them
ENL_AT_10M = 4.4
PIXEL_SPACING_10M = 10.0
#: gamma0 is stored in linear power rounded to this step in dB before compression
DB_QUANTUM = 0.01
#: incidence angle change across range, degrees per metre (about 16 degrees over 250 km)
INCIDENCE_GRADIENT_DEG_PER_M = 6.4e-5
#: residual terrain modulation of RTC gamma0, dB per unit of cos(local incidence) change
TERRAIN_DB_PER_COS = 7.0
#: temperature lapse rate, degC per m, and the reference elevation of a date's temperature, m
LAPSE_RATE_C_PER_M = 0.0065
REFERENCE_ELEVATION_M = 1500.0
#: afternoon (ascending, ~17:25 UTC) passes are warmer than morning (~05:25 UTC) ones, degC
AFTERNOON_WARMING_C = 3.0
#: day-to-day spread of the temperature around the seasonal cycle, degC
WEATHER_SPREAD_C = 1.0
#: temperature over which snow goes from dry to fully wet, degC
WET_TRANSITION_C = 4.0
#: dB changes of snow relative to the snow-free ground
DRY_SNOW_VV_DB, DRY_SNOW_VH_DB = -0.8, -1.2
WET_SNOW_VV_DB, WET_SNOW_VH_DB = -3.0, -2.5
#: land cover by elevation, m: forest below the treeline, meadow, then rock
TREELINE_M = 1900.0
ROCK_LINE_M = 2500.0
#: snow-free backscatter per land cover (VV, VH), dB
FOREST_DB = (-9.5, -15.5)
MEADOW_DB = (-13.0, -20.5)
ROCK_DB = (-11.0, -18.5)
#: amplitude of the static texture of the land cover, dB
TEXTURE_DB = 1.5
#: glacier firn in dry conditions (bright volume scattering) and its melt darkening, dB
FIRN_DB = (-7.5, -14.0)
GLACIER_MELT_DB = -13.0
#: transient bright patches (wind crusts, rough surfaces) per km2 and acquisition
BRIGHT_PATCHES_PER_KM2 = 0.08


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
    #: dates events may take (first day, last day), inclusive, or None
    event_window: tuple[np.datetime64, np.datetime64] | None
    #: the trigger date of a landslide scene
    event_date: np.datetime64 | None


REPEAT_DAYS = 6
#: S1A and S1B alternate on the same relative orbit every 6 days (12 days each)
PLATFORMS = ("SENTINEL-1A", "SENTINEL-1B")
DEFAULT_DATES = {"avalanche": 20, "landslide": 16, "glacier": 24}
MIN_DATES = 6


def _per_orbit(n_dates: int) -> list[int]:
    return [(n_dates + 1) // 2, n_dates // 2]


#: a day on which S1A flew the descending orbit; 6-day slots alternate A, B, A...
_PLATFORM_EPOCH = np.datetime64("2020-01-01")


def _series(orbit: Orbit, first_day: np.datetime64, count: int, step_days: int, start_index: int = 0) -> list[Acquisition]:
    day0 = first_day + np.timedelta64(orbit.day_offset, "D")
    out = []
    for k in range(count):
        day = day0 + np.timedelta64(k * step_days, "D")
        t = np.datetime64(f"{np.datetime_as_string(day, unit='D')}T{orbit.time_of_day}", "s")
        slot = int((day - _PLATFORM_EPOCH - np.timedelta64(orbit.day_offset, "D")) / np.timedelta64(1, "D")) // REPEAT_DAYS
        out.append(Acquisition(t, orbit, PLATFORMS[slot % 2], start_index + k))
    return out


def acquisition_schedule(hazard: str, n_dates: int) -> Schedule:
    """Dates, orbits and platforms of ``n_dates`` acquisitions for a hazard's scene.

    avalanche: two snow-free August acquisitions per orbit, then a 6-day
    repeat through late winter and spring ending mid-April 2021; landslide:
    12-day repeat around a storm on 2020-10-02; glacier: a hydrological year
    (October 2020 - September 2021) sampled about monthly.
    """
    counts = _per_orbit(n_dates)
    acqs: list[Acquisition] = []
    if hazard == "avalanche":
        n_summer = [1 if c < 5 else 2 for c in counts]
        summer_day = np.datetime64("2020-08-09")
        n_winter = [c - s for c, s in zip(counts, n_summer, strict=True)]
        last_winter_day = np.datetime64("2021-04-12")
        winter_day = max(np.datetime64("2020-12-01"), last_winter_day - np.timedelta64(REPEAT_DAYS * (max(n_winter) - 1), "D"))
        for orbit, s, w in zip(ORBITS, n_summer, n_winter, strict=True):
            acqs += _series(orbit, summer_day, s, REPEAT_DAYS)
            acqs += _series(orbit, winter_day, w, REPEAT_DAYS, start_index=s)
        summer = (str(summer_day), str(summer_day + np.timedelta64(REPEAT_DAYS * 2 + 2, "D")))
        # events fall after the first winter acquisition of both orbits and by the last of
        # either, so each one lies inside a winter pair of each orbit
        first = max(min(a.time for a in acqs if a.orbit is o and a.index >= n_summer[i]) for i, o in enumerate(ORBITS))
        last = min(max(a.time for a in acqs if a.orbit is o) for o in ORBITS)
        window = (first.astype("datetime64[D]") + np.timedelta64(1, "D"), last.astype("datetime64[D]"))
        return Schedule(tuple(sorted(acqs, key=lambda a: a.time)), summer, window, None)
    if hazard == "landslide":
        event = np.datetime64("2020-10-02")
        step = 2 * REPEAT_DAYS
        for orbit, c in zip(ORBITS, counts, strict=True):
            before = c // 2
            first_day = event - np.timedelta64(step * before - 1, "D")
            acqs += _series(orbit, first_day, c, step)
        first = min(a.time for a in acqs).astype("datetime64[D]")
        summer = (str(first), str(event - np.timedelta64(1, "D")))
        return Schedule(tuple(sorted(acqs, key=lambda a: a.time)), summer, None, event)
    # glacier: a year, monthly-ish steps on the 6-day grid
    step = max(REPEAT_DAYS, (330 // max(counts[0] - 1, 1)) // REPEAT_DAYS * REPEAT_DAYS)
    for orbit, c in zip(ORBITS, counts, strict=True):
        acqs += _series(orbit, np.datetime64("2020-10-01"), c, step)
    return Schedule(tuple(sorted(acqs, key=lambda a: a.time)), ("2021-07-01", "2021-08-31"), None, None)


def temperature_at_reference(t: np.datetime64, orbit: Orbit, rng: np.random.Generator) -> float:
    """Air temperature at the reference elevation for an acquisition, degC: a
    seasonal cycle (-8 in mid-January, +12 in mid-July), weather noise, and the
    afternoon warming of ascending passes."""
    day = (t.astype("datetime64[D]") - t.astype("datetime64[Y]").astype("datetime64[D]")).astype(int)
    seasonal = 2.0 + 10.0 * math.cos(2.0 * math.pi * (day - 200) / 365.25)
    return seasonal + rng.normal(0.0, WEATHER_SPREAD_C) + (AFTERNOON_WARMING_C if orbit.afternoon else 0.0)


def _smoothstep(x: np.ndarray) -> np.ndarray:
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


def land_cover_base(z: np.ndarray, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Snow-free VV and VH (dB): forest/meadow/rock blended by elevation, plus static texture."""
    wobble = 120.0 * fractal_noise(x, y, 2000.0, 3, rng)
    forest = 1.0 - _smoothstep((z + wobble - TREELINE_M + 80.0) / 160.0)
    rock = _smoothstep((z + wobble - ROCK_LINE_M + 100.0) / 200.0)
    meadow = np.clip(1.0 - forest - rock, 0.0, 1.0)
    texture = fractal_noise(x, y, 600.0, 4, rng)
    texture_vh = 0.7 * texture + 0.3 * fractal_noise(x, y, 600.0, 4, rng)
    vv = forest * FOREST_DB[0] + meadow * MEADOW_DB[0] + rock * ROCK_DB[0] + TEXTURE_DB * texture
    vh = forest * FOREST_DB[1] + meadow * MEADOW_DB[1] + rock * ROCK_DB[1] + TEXTURE_DB * texture_vh
    return vv, vh


def bright_patches(layers: SceneLayers, rng: np.random.Generator) -> np.ndarray:
    """Transient bright patches (dB, VV) on steep or high terrain: a change threshold's false alarms."""
    h, w = layers.z.shape
    area_km2 = h * w * layers.cell_m**2 / 1e6
    count = rng.poisson(BRIGHT_PATCHES_PER_KM2 * area_km2)
    out = np.zeros((h, w), dtype=np.float32)
    if count == 0:
        return out
    weight = ((layers.slope > 32.0) | (layers.z > ROCK_LINE_M)).ravel().astype(np.float64) + 0.05
    centres = rng.choice(h * w, size=count, p=weight / weight.sum())
    for flat in centres:
        ci, cj = divmod(int(flat), w)
        radius = rng.uniform(40.0, 150.0) / layers.cell_m
        r = int(math.ceil(radius * 1.6)) + 1
        i0, i1, j0, j1 = max(ci - r, 0), min(ci + r + 1, h), max(cj - r, 0), min(cj + r + 1, w)
        ii, jj = np.mgrid[i0:i1, j0:j1]
        # an irregular blob: radius modulated by angle
        ang = np.arctan2(ii - ci, jj - cj)
        k1, k2 = rng.uniform(0, 2 * math.pi, 2)
        rad = radius * (1.0 + 0.3 * np.sin(2 * ang + k1) + 0.2 * np.sin(3 * ang + k2))
        d = np.hypot(ii - ci, jj - cj) / np.maximum(rad, 0.5)
        blob = np.clip(1.2 - d, 0.0, 1.0) / 0.2
        out[i0:i1, j0:j1] += (rng.uniform(2.0, 5.0) * np.clip(blob, 0.0, 1.0)).astype(np.float32)
    return out


def snow_state(layers: SceneLayers, t: np.datetime64, orbit: Orbit, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Snow cover (0..1) and liquid-water wetness (0..1) of each cell at one acquisition."""
    temp = temperature_at_reference(t, orbit, rng)
    patchy = fractal_noise(layers.x, layers.y, 3000.0, 3, rng)
    southness = np.cos(np.radians(layers.aspect - 180.0)) * np.sin(np.radians(layers.slope))
    local = temp - LAPSE_RATE_C_PER_M * (layers.z - REFERENCE_ELEVATION_M) + 1.5 * southness + 1.5 * patchy
    wet = _smoothstep(local / WET_TRANSITION_C)
    # the snow line: snow-free below it (rises with warmth), ragged by the same patchiness
    snowline = 700.0 + 150.0 * max(temp, 0.0) + 120.0 * patchy
    cover = _smoothstep((layers.z - snowline) / 150.0)
    return cover, wet


def add_speckle_and_mask(db: np.ndarray, layers: SceneLayers, orbit: Orbit, rng: np.random.Generator) -> np.ndarray:
    """Linear gamma0 (float32) with gamma speckle, rounded to ``DB_QUANTUM`` dB, nodata where invalid."""
    linear = 10.0 ** (db / 10.0) * rng.gamma(layers.enl, 1.0 / layers.enl, size=db.shape)
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
