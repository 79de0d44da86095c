"""Snow of the synthetic scene: weather, wet snow and its refreeze, storms, wind drifts, bright patches.

The snowpack is what makes real change images hard (avalanche-fcn-bianchi I:
change detection "often fail[s] and produce[s] a large number of false alarms
due to the highly dynamic nature of snow"). One :class:`Weather` is drawn per
scene (a daily temperature series and the storm days); every acquisition
reads the same weather, so the snowpack has a memory:

* wet snow is ~3 dB darker than dry snow (Nagler & Rott 2000 map wet snow
  where the ratio to a reference falls below -3 dB); the wet line follows
  each date's temperature, and the afternoon (ascending) pass is warmer;
* where snow was wet since the last storm and has frozen again, a
  melt-freeze crust is brighter than the dry snow it came from: a pair from
  a wet reference to a refrozen activity date brightens a broad elevation
  band by ~3-4 dB, over the runout zones too;
* storms (new snow and wind) leave wind drifts: small 1-2 dB brightening
  patches on lee slopes, mostly on gentle terrain below release areas, where
  runout masks keep them; a storm also resets the older surface (debris,
  drifts and crusts fade under it);
* transient bright patches on steep terrain (rough surfaces, exposed rock).

Numbers marked "approx." are modelling choices of plausible size, not values
taken from a paper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from sarcube.datacube.synthetic.sar import REPEAT_DAYS, ROCK_LINE_M, SceneLayers, smoothstep
from sarcube.datacube.synthetic.terrain import fractal_noise

#: standard-atmosphere temperature lapse rate, degC per m, and the elevation of the weather series, m
LAPSE_RATE_C_PER_M = 0.0065
REFERENCE_ELEVATION_M = 1500.0
#: seasonal cycle at the reference elevation: mean, amplitude (degC) and warmest day of the year
#: (approx.: -8 degC in mid-January, +12 degC in mid-July at 1500 m in the Alps)
SEASONAL_MEAN_C = 2.0
SEASONAL_AMPLITUDE_C = 10.0
WARMEST_DAY_OF_YEAR = 200
#: afternoon (ascending, ~17:25 UTC) passes are warmer than morning (~05:25 UTC) ones, degC (approx.)
AFTERNOON_WARMING_C = 3.0
#: day-to-day weather: standard deviation (degC) and day-to-day autocorrelation of the anomaly (approx.)
WEATHER_SPREAD_C = 2.5
WEATHER_PERSISTENCE = 0.7
#: temperature over which snow goes from dry to fully wet, degC (approx.)
WET_TRANSITION_C = 4.0
#: dry snow relative to the snow-free ground, dB (VV, VH): nearly transparent at C band (approx.)
DRY_SNOW_DB = (-0.8, -1.2)
#: wet snow relative to dry snow, dB (Nagler & Rott 2000: ~ -3 dB; VH assumed alike)
WET_SNOW_DB = (-3.0, -3.0)
#: refrozen melt-freeze crust relative to the dry snow it came from, dB (approx.)
CRUST_DB = (1.0, 0.7)
#: seasonal snow line: elevation in the cold season, rise per degC of daily mean temperature at the
#: reference elevation, m (approx.: ~3000 m in a warm summer), and how much lower it lies on north faces
SNOWLINE_MIN_M = 700.0
SNOWLINE_RISE_M_PER_C = 190.0
SNOWLINE_NORTH_FACE_M = 250.0
#: mean days between storms (heavy new snow with wind) (approx.)
STORM_INTERVAL_DAYS = 12.0
#: storms come from the west on average (approx.: westerlies over the Alps), degrees and spread
STORM_WIND_FROM_DEG = 280.0
STORM_WIND_SPREAD_DEG = 35.0
#: share of an older surface signal (debris, drifts) left visible after each storm (approx.)
KEPT_AFTER_STORM = 0.5
#: wind drifts per km2 and storm, their radius (m), VV brightening (dB), VH relative to VV,
#: and fraction kept per 6-day revisit (approx.: surface drifts scatter less in cross-pol than debris)
DRIFTS_PER_KM2 = 0.1
DRIFT_RADIUS_M = (30.0, 130.0)
DRIFT_DB = (1.0, 2.0)
DRIFT_VH_FACTOR = (0.3, 1.0)
DRIFT_FADE = 0.9
#: drifts settle on gentle lee slopes within this distance of release terrain (slope >= 30 deg), m
DRIFT_NEAR_RELEASE_M = 800.0
RELEASE_SLOPE_DEG = 30.0
#: transient bright patches on steep or high terrain per km2 and acquisition, radius (m) and dB
BRIGHT_PATCHES_PER_KM2 = 0.08
BRIGHT_RADIUS_M = (40.0, 150.0)
BRIGHT_DB = (2.0, 5.0)


@dataclass(frozen=True)
class Weather:
    """Daily weather of a scene: temperature anomaly at the reference elevation and storm days."""

    first_day: np.datetime64
    #: anomaly of the daily temperature, degC, one value per day from ``first_day``
    anomaly_c: np.ndarray
    #: storm days (datetime64[D], sorted) and each storm's wind direction (from, degrees)
    storm_days: np.ndarray
    wind_from_deg: np.ndarray


@dataclass(frozen=True)
class Patch:
    """A blob of backscatter change on the grid: window, weight (0..1), VV dB, VH / VV."""

    window: tuple[slice, slice]
    weight: np.ndarray
    vv_db: float
    vh_factor: float
    #: the day it formed (storm day), for wind drifts
    day: np.datetime64 | None = None


@dataclass
class Snowpack:
    """Static snow fields of a scene and its weather."""

    weather: Weather
    #: local temperature offset from the reference elevation's, degC (elevation, sun, patchiness)
    offset_c: np.ndarray
    #: lowering of the seasonal snow line, m (north faces, patchiness)
    snowline_drop_m: np.ndarray
    drifts: list[Patch]


def _day(t: np.datetime64) -> np.datetime64:
    return np.datetime64(t, "D")


def seasonal_c(day: np.datetime64) -> float:
    """Seasonal mean temperature at the reference elevation on ``day``, degC."""
    doy = int((day - day.astype("datetime64[Y]").astype("datetime64[D]")) / np.timedelta64(1, "D"))
    return SEASONAL_MEAN_C + SEASONAL_AMPLITUDE_C * math.cos(2.0 * math.pi * (doy - WARMEST_DAY_OF_YEAR) / 365.25)


def draw_weather(first_day: np.datetime64, last_day: np.datetime64, rng: np.random.Generator) -> Weather:
    """AR(1) daily temperature anomalies and Poisson storm days between two days (inclusive)."""
    first_day, last_day = _day(first_day), _day(last_day)
    n = int((last_day - first_day) / np.timedelta64(1, "D")) + 1
    shocks = rng.normal(0.0, WEATHER_SPREAD_C * math.sqrt(1.0 - WEATHER_PERSISTENCE**2), n)
    anomaly = np.empty(n)
    anomaly[0] = rng.normal(0.0, WEATHER_SPREAD_C)
    for k in range(1, n):
        anomaly[k] = WEATHER_PERSISTENCE * anomaly[k - 1] + shocks[k]
    storm = np.flatnonzero(rng.random(n) < 1.0 / STORM_INTERVAL_DAYS)
    wind = rng.normal(STORM_WIND_FROM_DEG, STORM_WIND_SPREAD_DEG, storm.size) % 360.0
    return Weather(first_day, anomaly, first_day + storm.astype("timedelta64[D]"), wind)


def temperature_c(weather: Weather, t: np.datetime64, afternoon: bool) -> float:
    """Air temperature at the reference elevation at acquisition time ``t``, degC."""
    day = _day(t)
    k = int(np.clip((day - weather.first_day) / np.timedelta64(1, "D"), 0, weather.anomaly_c.size - 1))
    return seasonal_c(day) + float(weather.anomaly_c[k]) + (AFTERNOON_WARMING_C if afternoon else 0.0)


def last_storm(weather: Weather, t: np.datetime64) -> np.datetime64 | None:
    """The latest storm before ``t`` (a storm dated d acts from 00:00 UTC of d on)."""
    before = weather.storm_days[weather.storm_days.astype("datetime64[s]") < t]
    return before[-1] if before.size else None


def storms_between(weather: Weather, since: np.datetime64, t: np.datetime64) -> int:
    """Storms after the day of ``since`` and before ``t``."""
    days = weather.storm_days
    return int(((days > _day(since)) & (days.astype("datetime64[s]") < t)).sum())


def surface_memory(weather: Weather, since: np.datetime64, t: np.datetime64, fade_per_revisit: float) -> float:
    """Share of a surface signal formed on ``since`` still visible at ``t``: it fades by
    ``fade_per_revisit`` each 6-day revisit and by :data:`KEPT_AFTER_STORM` under each storm."""
    days = float((t - np.datetime64(since, "s")) / np.timedelta64(1, "D"))
    return fade_per_revisit ** (max(days, 0.0) / REPEAT_DAYS) * KEPT_AFTER_STORM ** storms_between(weather, since, t)


def _peak_afternoon_c(weather: Weather, since: np.datetime64, t: np.datetime64) -> float:
    """Warmest afternoon at the reference elevation on the days from ``since`` to the day before ``t``."""
    lo = int(np.clip((_day(since) - weather.first_day) / np.timedelta64(1, "D"), 0, weather.anomaly_c.size))
    hi = int(np.clip((_day(t) - weather.first_day) / np.timedelta64(1, "D"), 0, weather.anomaly_c.size))
    if hi <= lo:
        return -math.inf
    days = weather.first_day + np.arange(lo, hi).astype("timedelta64[D]")
    daily = (seasonal_c(d) + float(weather.anomaly_c[k]) for d, k in zip(days, range(lo, hi), strict=True))
    return max(daily) + AFTERNOON_WARMING_C


def snowpack(layers: SceneLayers, weather: Weather, cell_m: float, rng: np.random.Generator) -> Snowpack:
    """Static snow fields and the wind drifts of every storm of ``weather``."""
    patchy = fractal_noise(layers.x, layers.y, 3000.0, 3, rng)
    sin_slope = np.sin(np.radians(layers.slope))
    southness = np.cos(np.radians(layers.aspect - 180.0)) * sin_slope
    offset = -LAPSE_RATE_C_PER_M * (layers.z - REFERENCE_ELEVATION_M) + 1.5 * southness + 1.5 * patchy
    drop = SNOWLINE_NORTH_FACE_M * np.clip(-southness, 0.0, None) / 0.7 + 120.0 * patchy
    settles = drift_terrain(layers)
    drifts = []
    for day, wind in zip(weather.storm_days, weather.wind_from_deg, strict=True):
        lee = np.clip(np.cos(np.radians(layers.aspect - (float(wind) + 180.0) % 360.0)), 0.0, None)
        drifts += [replace(p, day=day) for p in _drifts(layers, lee * settles, cell_m, rng)]
    return Snowpack(weather, offset, drop, drifts)


def drift_terrain(layers: SceneLayers) -> np.ndarray:
    """Where drifts settle (0..1, before the lee factor): gentle slopes near release terrain,
    i.e. the runout zones that slope and reach masks keep."""
    gentle = smoothstep((layers.slope - 4.0) / 6.0) * (1.0 - smoothstep((layers.slope - 28.0) / 8.0))
    dist = ndimage.distance_transform_edt(layers.slope < RELEASE_SLOPE_DEG) * layers.cell_m
    near = 1.0 - smoothstep((dist - DRIFT_NEAR_RELEASE_M) / DRIFT_NEAR_RELEASE_M)
    return gentle * near


def _blob(
    ci: int, cj: int, radius: float, stretch: float, angle: float, shape: tuple[int, int], rng: np.random.Generator
) -> tuple[tuple[slice, slice], np.ndarray]:
    """An irregular elliptic blob (window, weight 0..1) of ``radius`` cells stretched ``stretch`` x along ``angle``."""
    h, w = shape
    r = int(math.ceil(radius * stretch * 1.6)) + 1
    i0, i1, j0, j1 = max(ci - r, 0), min(ci + r + 1, h), max(cj - r, 0), min(cj + r + 1, w)
    ii, jj = np.mgrid[i0:i1, j0:j1]
    cos, sin = math.cos(angle), math.sin(angle)
    du, dv = (jj - cj) * cos - (ii - ci) * sin, (jj - cj) * sin + (ii - ci) * cos
    ang = np.arctan2(dv * stretch, du)
    k1, k2 = rng.uniform(0, 2 * math.pi, 2)
    rad = radius * (1.0 + 0.3 * np.sin(2 * ang + k1) + 0.2 * np.sin(3 * ang + k2))
    d = np.hypot(du / stretch, dv) / np.maximum(rad, 0.5)
    return (slice(i0, i1), slice(j0, j1)), np.clip((1.2 - d) / 0.2, 0.0, 1.0).astype(np.float32)


def _drifts(layers: SceneLayers, where: np.ndarray, cell_m: float, rng: np.random.Generator) -> list[Patch]:
    h, w = layers.z.shape
    count = rng.poisson(DRIFTS_PER_KM2 * h * w * cell_m**2 / 1e6)
    weight = where.ravel()
    if count == 0 or weight.sum() <= 0:
        return []
    out = []
    for flat in rng.choice(h * w, size=count, p=weight / weight.sum()):
        ci, cj = divmod(int(flat), w)
        # elongated across the slope (along the contour), like drifts below a break in slope
        across = math.radians(90.0 - float(layers.aspect[ci, cj])) + math.pi / 2
        window, blob = _blob(ci, cj, rng.uniform(*DRIFT_RADIUS_M) / cell_m, rng.uniform(1.3, 2.5), across, (h, w), rng)
        out.append(Patch(window, blob, float(rng.uniform(*DRIFT_DB)), float(rng.uniform(*DRIFT_VH_FACTOR))))
    return out


def bright_patches(layers: SceneLayers, rng: np.random.Generator) -> list[Patch]:
    """Transient bright patches of one acquisition on steep or high terrain (rough surfaces, exposed rock)."""
    h, w = layers.z.shape
    count = rng.poisson(BRIGHT_PATCHES_PER_KM2 * h * w * layers.cell_m**2 / 1e6)
    if count == 0:
        return []
    weight = ((layers.slope > 32.0) | (layers.z > ROCK_LINE_M)).ravel().astype(np.float64) + 0.05
    out = []
    for flat in rng.choice(h * w, size=count, p=weight / weight.sum()):
        ci, cj = divmod(int(flat), w)
        window, blob = _blob(ci, cj, rng.uniform(*BRIGHT_RADIUS_M) / layers.cell_m, 1.0, 0.0, (h, w), rng)
        out.append(Patch(window, blob, float(rng.uniform(*BRIGHT_DB)), float(rng.uniform(0.6, 1.0))))
    return out


def add_patches(
    vv: np.ndarray, vh: np.ndarray, patches: list[Patch], factor: float = 1.0, surface: np.ndarray | None = None
) -> None:
    """Add ``patches`` times ``factor`` (and the full-grid ``surface``, 0..1, if given) to VV and VH dB, in place."""
    for p in patches:
        s = p.weight * factor if surface is None else p.weight * factor * surface[p.window]
        vv[p.window] += p.vv_db * s
        vh[p.window] += p.vv_db * p.vh_factor * s


@dataclass
class SnowState:
    """Snow of one acquisition (all (H, W), 0..1) and its backscatter change (dB) over the ground."""

    cover: np.ndarray
    wet: np.ndarray
    crust: np.ndarray
    vv_db: np.ndarray
    vh_db: np.ndarray


def snow_state(
    pack: Snowpack, layers: SceneLayers, t: np.datetime64, afternoon: bool, rng: np.random.Generator,
    always_covered: np.ndarray | None = None,
) -> SnowState:
    """Snow cover, wetness, refrozen crust and their dB change at acquisition ``t``;
    ``always_covered`` (0..1) keeps snow or firn there all year (glaciers)."""
    temp = temperature_c(pack.weather, t, afternoon)
    daily = temperature_c(pack.weather, t, False)
    snowline = SNOWLINE_MIN_M + SNOWLINE_RISE_M_PER_C * max(daily, 0.0) - pack.snowline_drop_m
    cover = smoothstep((layers.z - snowline) / 150.0)
    if always_covered is not None:
        cover = np.maximum(cover, always_covered)
    local = pack.offset_c + 0.5 * fractal_noise(layers.x, layers.y, 3000.0, 2, rng)
    wet = smoothstep((temp + local) / WET_TRANSITION_C)
    storm = last_storm(pack.weather, t)
    since = storm if storm is not None else pack.weather.first_day
    peak = _peak_afternoon_c(pack.weather, since, t)
    crust = np.zeros_like(wet)
    if math.isfinite(peak):  # snow wet since the last storm and frozen now
        crust = smoothstep((peak + pack.offset_c) / WET_TRANSITION_C) * (1.0 - wet)
    vv = cover * (DRY_SNOW_DB[0] + WET_SNOW_DB[0] * wet + CRUST_DB[0] * crust)
    vh = cover * (DRY_SNOW_DB[1] + WET_SNOW_DB[1] * wet + CRUST_DB[1] * crust)
    # drifts show on dry snow; a wet surface layer hides them
    surface = cover * (1.0 - wet)
    for p in pack.drifts:
        if np.datetime64(p.day, "s") < t and (keep := surface_memory(pack.weather, p.day, t, DRIFT_FADE)) >= 0.05:
            add_patches(vv, vh, [p], keep, surface)
    return SnowState(cover, wet, crust, vv, vh)
