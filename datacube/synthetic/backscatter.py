"""Noise-free gamma0 (dB) of one acquisition: land cover, terrain, snow and the hazard's signal.

:class:`SceneModel` holds what every acquisition of a scene reads (static
layers, schedule, the hazard's objects, the snowpack and its weather);
:func:`acquisition_db` composes one date from it. Speckle is added afterwards
(:func:`sarcube.datacube.synthetic.sar.add_speckle_and_mask`).

* avalanche: dry debris brightens by its contrast (``events``) and stays
  visible for several revisits, fading by its ``fade`` per 6-day revisit and
  by ``snow.KEPT_AFTER_STORM`` under each storm; wet snow hides part of it.
* landslide: a lasting VV/VH change of each scar after the trigger date,
  slowly recovering, under soil-moisture changes and bright patches.
* glacier: in a dry winter date a glacier is snow-covered terrain like the
  rock around it (the snow cover hides firn and ice); with melt, wet firn and
  ice turn darker than wet seasonal snow while the rock around is snow-free,
  so the contrast appears in summer afternoons and a single dry date does
  not separate the glacier (glacier-timeseries: 1 acquisition IoU 0.781, 15
  acquisitions 0.964); debris-covered tongues look like rock all year.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sarcube.datacube.synthetic import events, snow
from sarcube.datacube.synthetic.hazards import Hazard
from sarcube.datacube.synthetic.sar import Acquisition, SceneLayers, Schedule
from sarcube.datacube.synthetic.terrain import fractal_noise

#: day-to-day radiometric calibration spread of a whole acquisition, dB (approx.; S1 is stable to a few 0.1 dB)
CALIBRATION_SPREAD_DB = 0.2
#: wet firn and ice relative to wet seasonal snow, dB (approx.: a thick wet layer absorbs more)
GLACIER_WET_EXTRA_DB = (-3.0, -3.0)
#: landslide scene: soil-moisture change amplitude (VV, VH), dB, chance of a rain-wet date and its VV change
MOISTURE_DB = (0.8, 1.0)
RAIN_DATE_CHANCE = 0.3
RAIN_VV_DB = 1.0
#: landslide scars recover this share of their change per 12-day revisit (approx.)
LANDSLIDE_RECOVERY = 0.97


@dataclass
class SceneModel:
    """What every acquisition of a scene reads."""

    seed: int
    hazard_name: str
    layers: SceneLayers
    schedule: Schedule
    hazard: Hazard
    #: snowpack and weather (avalanche and glacier scenes)
    snowpack: snow.Snowpack | None


def acquisition_rng(seed: int, acq: Acquisition, stream: int) -> np.random.Generator:
    """The random stream of one acquisition (1000: the surface, 2000: the speckle)."""
    day = int(acq.time.astype("datetime64[D]").astype(np.int64))
    return np.random.default_rng([int(seed), stream, day, acq.orbit.relative_orbit])


def _midnight(date: np.datetime64) -> np.datetime64:
    """An event dated ``date`` happened before any acquisition later than 00:00 UTC that day
    (the label rasterizer's ``reference_time < date <= activity_time``)."""
    return np.datetime64(date, "D").astype("datetime64[s]")


def _first_after(schedule: Schedule, acq: Acquisition, date: np.datetime64) -> int:
    """Position (within ``acq``'s orbit) of the first acquisition after midnight of ``date``."""
    t0 = _midnight(date)
    for other in schedule.acquisitions:
        if other.orbit is acq.orbit and other.time > t0:
            return other.index
    return 10**9


def _in_summer(schedule: Schedule, acq: Acquisition) -> bool:
    return schedule.summer[0] <= str(acq.time.astype("datetime64[D]")) <= schedule.summer[1]


def _avalanche(model: SceneModel, acq: Acquisition, vv: np.ndarray, vh: np.ndarray, rng: np.random.Generator) -> None:
    layers, pack = model.layers, model.snowpack
    state = snow.snow_state(pack, layers, acq.time, acq.orbit.afternoon, rng)
    vv += state.vv_db
    vh += state.vh_db
    snow.add_patches(vv, vh, snow.bright_patches(layers, rng))
    for event, ((rows, cols), weight) in model.hazard.avalanches or []:
        if _midnight(event.date) >= acq.time:
            continue
        amp = event.contrast_db * snow.surface_memory(pack.weather, event.date, acq.time, event.fade)
        if amp < 0.05:
            continue
        visible = 1.0 - (1.0 - events.DEBRIS_WET_VISIBLE) * state.wet[rows, cols]
        vv[rows, cols] += amp * weight * visible
        vh[rows, cols] += amp * event.vh_factor * weight * visible


def _landslide(model: SceneModel, acq: Acquisition, vv: np.ndarray, vh: np.ndarray, rng: np.random.Generator) -> None:
    layers, hz = model.layers, model.hazard
    moisture = fractal_noise(layers.x, layers.y, 4000.0, 3, rng)
    vv += MOISTURE_DB[0] * moisture + (RAIN_VV_DB if rng.random() < RAIN_DATE_CHANCE else 0.0)
    vh += MOISTURE_DB[1] * moisture
    snow.add_patches(vv, vh, snow.bright_patches(layers, rng))
    if hz.event_date is not None and acq.time > _midnight(hz.event_date):
        recovery = LANDSLIDE_RECOVERY ** (acq.index - _first_after(model.schedule, acq, hz.event_date))
        vv += recovery * hz.landslide_vv
        vh += recovery * hz.landslide_vh


def _glacier(model: SceneModel, acq: Acquisition, vv: np.ndarray, vh: np.ndarray, rng: np.random.Generator) -> None:
    clean = model.hazard.glacier * (1.0 - model.hazard.glacier_debris)
    state = snow.snow_state(model.snowpack, model.layers, acq.time, acq.orbit.afternoon, rng, always_covered=clean)
    vv += state.vv_db + clean * state.wet * GLACIER_WET_EXTRA_DB[0]
    vh += state.vh_db + clean * state.wet * GLACIER_WET_EXTRA_DB[1]


def acquisition_db(model: SceneModel, acq: Acquisition) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free VV and VH (dB) of one acquisition, float64 (H, W)."""
    rng = acquisition_rng(model.seed, acq, 1000)
    layers = model.layers
    terrain = layers.terrain_db[acq.orbit.relative_orbit]
    calibration = rng.normal(0.0, CALIBRATION_SPREAD_DB)
    vv = layers.base_vv + terrain + calibration
    vh = layers.base_vh + terrain + calibration
    if model.hazard_name == "avalanche" and not _in_summer(model.schedule, acq):
        _avalanche(model, acq, vv, vh, rng)
    elif model.hazard_name == "landslide":
        _landslide(model, acq, vv, vh, rng)
    elif model.hazard_name == "glacier":
        _glacier(model, acq, vv, vh, rng)
    return vv, vh
