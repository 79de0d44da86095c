"""``sarcube timeseries CUBE --point LON,LAT --out PNG``: backscatter at one point over time.

VV (top) and VH (bottom) in dB at the cube pixel holding the point, one line
per relative orbit (a change of viewing geometry is not a change of the
ground, so orbits are never joined), with what happened there marked: the
pairs whose label is 1 at the pixel (a shaded span from reference to activity
date), the pairs a prediction detects there (a triangle on the activity date)
and a landslide cube's event date. :func:`plot_timeseries` returns the figure
for notebooks; :func:`timeseries` writes it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
import numpy as np
import xarray as xr

from sarcube.datacube import schema
from sarcube.datacube.grid import parse_point, pixel_at
from sarcube.datacube.predictions import (
    describe_operating_point,
    pair_keys,
    predicted_keys,
    prediction_threshold,
    resolve_prediction,
)
from sarcube.errors import InputError

log = logging.getLogger(__name__)

LABEL_COLOUR = "#ffb000"  # amber spans: labelled pairs
PRED_COLOUR = "#0077cc"  # blue triangles: detections
EVENT_COLOUR = "#cc0000"  # red line: a landslide cube's trigger date
#: an orbit's line breaks where its acquisitions are further apart than this (e.g. over the summer)
LINE_GAP_DAYS = 45
ORBIT_COLOURS = ("tab:purple", "tab:green", "tab:brown", "tab:olive", "tab:cyan", "tab:pink")


def _pair_times(ds: xr.Dataset, pairs: np.ndarray) -> list[tuple[np.datetime64, np.datetime64]]:
    ref, act = ds[schema.REFERENCE_TIME].values, ds[schema.ACTIVITY_TIME].values
    return [(ref[p], act[p]) for p in pairs]


def point_events(
    ds: xr.Dataset, row: int, col: int, pred_name: str | None = None, threshold: float | None = None
) -> dict[str, Any]:
    """What happened at pixel (row, col): labelled pairs, detected pairs (with probability) and the event date."""
    where = {schema.Y: row, schema.X: col}
    events: dict[str, Any] = {"labelled": [], "detected": [], "static_label": None, "event_date": None}
    if schema.LABEL in ds.data_vars:
        label = ds[schema.LABEL].isel(where).values
        if schema.PAIR in ds[schema.LABEL].dims:
            events["labelled"] = _pair_times(ds, np.flatnonzero(label == schema.LABEL_YES))
        else:
            events["static_label"] = int(label)
    if pred_name is not None and schema.PAIR in ds[pred_name].dims:
        prob = ds[pred_name].isel(where).values.astype(np.float64)
        var, keys = ds[pred_name], pair_keys(ds)
        held = set(predicted_keys(var)) or set(keys)  # a variable without the record: every pair
        # each pair at its recorded operating point (one threshold, or the pair's own); none where not predicted
        thr = np.array([prediction_threshold(var, threshold, k) if k in held else np.inf for k in keys])
        hits = np.flatnonzero(np.nan_to_num(prob, nan=-1.0) >= thr)
        events["detected"] = [(*t, float(prob[p])) for p, t in zip(hits, _pair_times(ds, hits), strict=True)]
        events["threshold"] = prediction_threshold(var, threshold)
        events["operating_point"] = describe_operating_point(var, threshold)
    if schema.VV_BEFORE in ds.data_vars:
        date = _event_date(ds[schema.VV_BEFORE])
        events["event_date"] = np.datetime64(date[:10]) if date else None
    return events


def _event_date(var: xr.DataArray) -> str | None:
    """The event date recorded in an event-mean layer's parameters (written by ``features --event-date``)."""
    try:
        return json.loads(var.attrs.get(schema.ATTR_PARAMETERS, "{}")).get("event_date")
    except (ValueError, AttributeError):
        return None


def _break_long_gaps(times: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Insert a NaN where an orbit's series skips more than :data:`LINE_GAP_DAYS`, so no line spans a season."""
    if times.size < 2:
        return times, values
    gaps = np.flatnonzero(np.diff(times) > np.timedelta64(LINE_GAP_DAYS, "D"))
    mid = times[gaps] + (times[gaps + 1] - times[gaps]) / 2
    return np.insert(times, gaps + 1, mid), np.insert(values, gaps + 1, np.nan)


def plot_timeseries(
    ds: xr.Dataset, lon: float, lat: float, *, pred: str | None = None, threshold: float | None = None
) -> Any:
    """A matplotlib figure of VV/VH at (lon, lat) over time, per relative orbit, with label/prediction events."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    for var in schema.BACKSCATTER:
        if var not in ds.data_vars or schema.TIME not in ds[var].dims:
            raise InputError(f"the cube has no {var!r} time series: build it with `sarcube build`")
    row, col = pixel_at(ds, lon, lat)
    pred_name = resolve_prediction(ds, pred) if pred is not None else None
    events = point_events(ds, row, col, pred_name, threshold)
    times = ds[schema.TIME].values
    orbits = ds[schema.RELATIVE_ORBIT].values
    states = ds[schema.ORBIT_STATE].values if schema.ORBIT_STATE in ds.coords else [""] * len(times)

    fig, axes = plt.subplots(2, 1, figsize=(10, 6.2), dpi=110, sharex=True, layout="constrained")
    no_data = True
    for ax, var in zip(axes, schema.BACKSCATTER, strict=True):
        values = ds[var].isel({schema.Y: row, schema.X: col}).values.astype(np.float64)
        no_data &= not np.isfinite(values).any()
        for k, orbit in enumerate(np.unique(orbits)):
            on = np.flatnonzero(orbits == orbit)
            on = on[np.argsort(times[on])]
            colour = ORBIT_COLOURS[k % len(ORBIT_COLOURS)]
            t, v = _break_long_gaps(times[on], values[on])
            ax.plot(t, v, "o-", ms=4, lw=1.2, color=colour, label=f"orbit {orbit} ({states[on[0]]})")
        for ref, act in events["labelled"]:
            ax.axvspan(ref, act, color=LABEL_COLOUR, alpha=0.3, lw=0)
        for _, act, _ in events["detected"]:
            ax.plot([act], [1.0], "v", ms=10, color=PRED_COLOUR, transform=ax.get_xaxis_transform(), clip_on=False)
        if events["event_date"] is not None:
            ax.axvline(events["event_date"], color=EVENT_COLOUR, lw=1.5, ls="--")
        ax.set_ylabel(f"{var.upper()} backscatter, {ds[var].attrs.get('units', 'dB')}")
        ax.grid(alpha=0.3)
    handles, _ = axes[0].get_legend_handles_labels()
    if events["labelled"]:
        handles.append(Patch(color=LABEL_COLOUR, alpha=0.4, label=f"labelled pair ({len(events['labelled'])})"))
    if events["detected"]:
        handles.append(Line2D([], [], marker="v", ls="", ms=9, color=PRED_COLOUR,
                              label=f"{pred_name} at {events['operating_point']} ({len(events['detected'])} pairs)"))
    if events["event_date"] is not None:
        handles.append(Line2D([], [], color=EVENT_COLOUR, ls="--", label=f"event {str(events['event_date'])[:10]}"))
    axes[0].legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[1].set_xlabel("acquisition date")
    fig.autofmt_xdate()
    x, y = float(ds[schema.X].values[col]), float(ds[schema.Y].values[row])
    notes = []
    if events["static_label"] == schema.LABEL_YES:
        notes.append("inside a labelled object")
    if pred_name is not None and not events["detected"]:
        notes.append(f"{pred_name}: no detection here")
    if no_data:
        notes.append("no backscatter here: radar shadow, layover or nodata")
    crs = ds.rio.crs.to_string() if ds.rio.crs else ""
    fig.suptitle(
        f"backscatter at lon {lon:.5f}, lat {lat:.5f} (pixel row {row}, col {col}; {crs} x {x:.0f}, y {y:.0f})"
        + ("\n" + "; ".join(notes) if notes else ""), fontsize=10,
    )
    return fig


def timeseries(
    cube: str | Path,
    point: str | tuple[float, float],
    out_png: str | Path,
    *,
    pred: str | None = None,
    threshold: float | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Path:
    """Write :func:`plot_timeseries` of ``point`` ("LON,LAT" or a (lon, lat) pair) in ``cube`` to ``out_png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_png)
    if out.suffix.lower() != ".png":
        raise InputError(f"--out {str(out)!r}: give a .png file name")
    lon, lat = parse_point(point) if isinstance(point, str) else (float(point[0]), float(point[1]))
    ds = schema.open_cube(cube, storage_options=storage_options)
    fig = plot_timeseries(ds, lon, lat, pred=pred, threshold=threshold)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    log.info("wrote %s", out)
    return out


@click.command("timeseries")
@click.argument("cube", type=click.Path())
@click.option("--point", required=True, metavar="LON,LAT", help="The point, degrees (e.g. 9.01,46.41).")
@click.option("--pred", default=None, help="Mark the pairs this prediction detects there: NAME or pred_NAME.")
@click.option("--threshold", type=float, default=None, help="Detection level (default: the run's threshold).")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Output PNG.")
def command(cube: str, point: str, pred: str | None, threshold: float | None, out: str) -> None:
    """Plot VV/VH at a point of CUBE over time, per relative orbit, with label and prediction events."""
    path = timeseries(cube, point, out, pred=pred, threshold=threshold)
    click.echo(f"wrote {path}")


__all__ = ["command", "plot_timeseries", "point_events", "timeseries"]
