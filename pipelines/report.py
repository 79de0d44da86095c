"""``sarcube report CUBE --pred NAME --out DIR``: an offline web map of a prediction's detections, pair by pair.

Forecasters look at maps: DIR/index.html opens from disk (file://) with no
server and no internet. Leaflet 1.9.4 (vendored in ``pipelines/web/leaflet``
from its npm release, BSD-2-Clause) draws in the cube's projected CRS, metres,
so no web tiles are needed: a hillshade of the cube's DEM as the base layer,
each pair's R/G/B change composite as an image overlay, the polygons of
``sarcube export`` coloured by mean probability with popups, label outlines, a
sortable table linked to the map, the evaluation table and the provenance of
cube and prediction.

The page is plain static files: ``index.html`` from a ``string.Template``, the
app script and styles, and ``data.js`` setting one global (browsers block
``fetch()`` of local files). Images are PNGs at display resolution (at most
``MAX_DISPLAY_PX`` a side); a composite is an 8-bit palette PNG of 16 reference
x 16 activity levels (R = B, so two channels carry it), about 0.7 MB for a
speckled 1024 px scene.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from string import Template
from typing import Any

import click
import numpy as np
import xarray as xr

from sarcube import __version__
from sarcube.datacube import schema
from sarcube.datacube.composite import change_composite, composite_inputs
from sarcube.datacube.grid import cell_size, pixel_size
from sarcube.datacube.predictions import resolve_prediction
from sarcube.datacube.terrain import hillshade
from sarcube.errors import InputError, SarcubeError
from sarcube.pipelines._storage import storage_options_option
from sarcube.pipelines.detections import MIN_AREA_M2, detections

log = logging.getLogger(__name__)

#: longest side of a displayed image, pixels (larger scenes are subsampled)
MAX_DISPLAY_PX = 1024
#: levels per composite channel in the palette PNG (levels**2 <= 256 colours)
COMPOSITE_LEVELS = 16
#: relief exaggeration of the base layer's hillshade
HILLSHADE_Z_FACTOR = 2.0
#: what a report folder holds besides the data: the app and Leaflet, copied from package data
ASSET_DIR = "assets"
IMAGE_DIR = "images"
INDEX_FILE = "index.html"
DATA_FILE = "data.js"
#: written into index.html; a folder holding an index.html without it is not replaced
GENERATOR = "sarcube report"
#: coordinates in data.js are rounded to this many decimals of a metre
COORD_DECIMALS = 2


#: the page template, the app and Leaflet (package data)
WEB_DIR = Path(__file__).with_name("web")


def _date(value: Any) -> str:
    return str(np.datetime_as_string(np.datetime64(value, "s"), unit="D"))


def _number(value: Any, digits: int = 3) -> float | None:
    """A JSON-safe rounded float (None for NaN/inf)."""
    v = float(value)
    return round(v, digits) if math.isfinite(v) else None


def _write_png(path: Path, image: Any) -> str:
    """Save a PIL image (optimised) and return its path relative to the report folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG", optimize=True)
    return f"{path.parent.name}/{path.name}"


class _Display:
    """The display grid: every ``step``-th pixel, the image's bounds in metres and its row order."""

    def __init__(self, ds: xr.Dataset, max_px: int):
        if max_px < 16:
            raise InputError(f"max_display_px {max_px} is too small: give at least 16 (default {MAX_DISPLAY_PX})")
        ny, nx = ds.sizes[schema.Y], ds.sizes[schema.X]
        self.step = max(1, math.ceil(max(ny, nx) / max_px))
        self.height, self.width = math.ceil(ny / self.step), math.ceil(nx / self.step)
        dx, dy = pixel_size(ds)
        xv, yv = ds[schema.X].values, ds[schema.Y].values
        west = float(xv.min() - dx / 2)
        north = float(yv.max() + dy / 2)
        self.bounds = (west, north - self.height * self.step * dy, west + self.width * self.step * dx, north)
        self.south_up = ny > 1 and yv[0] < yv[-1]
        self.x_flipped = nx > 1 and xv[0] > xv[-1]

    def subsample(self, a: xr.DataArray) -> np.ndarray:
        """Every ``step``-th pixel of a (y, x) variable, in the cube's row order."""
        every = slice(None, None, self.step)
        return np.asarray(a.isel({schema.Y: every, schema.X: every}).values)

    def orient(self, image: np.ndarray) -> np.ndarray:
        """Rows north to south and columns west to east, as an image overlay is drawn."""
        image = image[::-1] if self.south_up else image
        return image[:, ::-1] if self.x_flipped else image


def hillshade_image(ds: xr.Dataset, display: _Display) -> Any:
    """Greyscale PIL image of the DEM's hillshade on the display grid (NaN DEM -> light grey)."""
    from PIL import Image

    dem = ds[schema.DEM]
    z = display.subsample(dem).astype(np.float64)
    dx, dy = cell_size(dem) if min(dem.shape) > 1 else (1.0, -1.0)
    # the kernel leaves a NaN ring: shade a copy padded by one cell and crop it away
    padded = np.pad(z, 1, mode="edge")
    shade = hillshade(padded, dx * display.step, dy * display.step, z_factor=HILLSHADE_Z_FACTOR)[1:-1, 1:-1]
    grey = np.where(np.isfinite(shade), 60.0 + 190.0 * np.nan_to_num(shade, nan=0.0), 225.0)
    return Image.fromarray(display.orient(np.round(grey).astype(np.uint8)), mode="L")


def composite_image(reference_db: np.ndarray, activity_db: np.ndarray) -> Any:
    """8-bit palette PIL image of the change composite (:func:`change_composite`), COMPOSITE_LEVELS per channel."""
    from PIL import Image

    rgb = change_composite(reference_db, activity_db)
    top = COMPOSITE_LEVELS - 1
    ref = np.minimum(np.floor(rgb[..., 0] * COMPOSITE_LEVELS), top).astype(np.uint8)
    act = np.minimum(np.floor(rgb[..., 1] * COMPOSITE_LEVELS), top).astype(np.uint8)
    image = Image.fromarray((ref * COMPOSITE_LEVELS + act).astype(np.uint8), mode="P")
    levels = np.round(np.arange(COMPOSITE_LEVELS) * 255.0 / top).astype(np.uint8)
    r = np.repeat(levels, COMPOSITE_LEVELS)
    image.putpalette(np.stack([r, np.tile(levels, COMPOSITE_LEVELS), r], axis=1).ravel().tolist())
    return image


def _composite_png(ds: xr.Dataset, pair: int | None, display: _Display, path: Path) -> str | None:
    """Write the composite of ``pair`` (None: the event means); None where the cube lacks its inputs."""
    try:
        ref, act, _ = composite_inputs(ds, pair)
    except SarcubeError as err:
        log.warning("no change composite for %s: %s", "the event" if pair is None else f"pair {pair}", err)
        return None
    image = composite_image(display.orient(display.subsample(ref)), display.orient(display.subsample(act)))
    return _write_png(path, image)


def _zonal_means(frame: Any, ds: xr.Dataset, var: str, shape: tuple[int, int]) -> np.ndarray:
    """Mean of ``var`` under each detection polygon (pixel centres inside; NaN where none is finite)."""
    from rasterio.features import rasterize

    out = np.full(len(frame), np.nan)
    if var not in ds.data_vars or not len(frame):
        return out
    values = np.asarray(ds[var].values, dtype=np.float64)
    transform = ds.rio.transform()
    for _, rows in frame.groupby("pair_index"):
        shapes = zip(rows.geometry, range(1, len(rows) + 1), strict=True)
        ids = rasterize(shapes, out_shape=shape, transform=transform, fill=0, dtype="int32")
        finite = np.isfinite(values) & (ids > 0)
        n = np.bincount(ids[finite], minlength=len(rows) + 1)[1:]
        total = np.bincount(ids[finite], weights=values[finite], minlength=len(rows) + 1)[1:]
        out[rows.index.to_numpy()] = np.where(n > 0, total / np.maximum(n, 1), np.nan)
    return out


def _geometry(geom: Any) -> dict[str, Any]:
    import shapely

    return json.loads(shapely.to_geojson(shapely.set_precision(geom, 10.0**-COORD_DECIMALS)))


def detection_features(frame: Any, ds: xr.Dataset) -> list[dict[str, Any]]:
    """GeoJSON features (cube CRS, metres) of exported detections, with mean PAR added."""
    frame = frame.reset_index(drop=True)
    par = _zonal_means(frame, ds, schema.PAR, (ds.sizes[schema.Y], ds.sizes[schema.X]))
    features = []
    for i, row in frame.iterrows():
        properties = {
            "id": int(row["detection_id"]),
            "pair_index": int(row["pair_index"]),
            "reference": row["reference_date"],
            "activity": row["activity_date"],
            "area_m2": _number(row["area_m2"], 1),
            "mean_probability": _number(row["mean_probability"]),
            "max_probability": _number(row["max_probability"]),
            "elevation_m": _number(row["mean_elevation_m"], 1),
            "slope_deg": _number(row["mean_slope_deg"], 1),
            "aspect_deg": _number(row["mean_aspect_deg"], 1),
            "par_deg": _number(par[i], 1),
        }
        features.append({"type": "Feature", "properties": properties, "geometry": _geometry(row.geometry)})
    return features


def label_features(ds: xr.Dataset, pairs: list[int | None]) -> list[dict[str, Any]]:
    """Outlines of ``label == yes`` as GeoJSON features; ``pair`` -1 for a static (y, x) label."""
    import rasterio.features
    from shapely.geometry import shape

    if schema.LABEL not in ds.data_vars:
        return []
    label = ds[schema.LABEL]
    per_pair = schema.PAIR in label.dims
    transform = ds.rio.transform()
    features = []
    for p in ([q for q in pairs if q is not None] if per_pair else [None]):
        yes = np.asarray((label.isel({schema.PAIR: p}) if p is not None else label).values) == schema.LABEL_YES
        for geom, _ in rasterio.features.shapes(yes.astype(np.uint8), mask=yes, connectivity=8, transform=transform):
            properties = {"pair_index": -1 if p is None else int(p)}
            features.append({"type": "Feature", "properties": properties, "geometry": _geometry(shape(geom))})
    return features


def _pairs(ds: xr.Dataset, var: xr.DataArray) -> list[int | None]:
    return list(range(var.sizes[schema.PAIR])) if schema.PAIR in var.dims else [None]


def _pair_entries(
    ds: xr.Dataset, var: xr.DataArray, frame: Any, display: _Display, image_dir: Path
) -> list[dict[str, Any]]:
    """One entry per pair of the prediction (or one for a static prediction): dates, orbit, counts, composite."""
    counts = frame["pair_index"].value_counts().to_dict() if len(frame) else {}
    orbits = ds[schema.PAIR_RELATIVE_ORBIT].values if schema.PAIR_RELATIVE_ORBIT in ds.coords else None
    entries = []
    for p in _pairs(ds, var):
        name = "composite_event.png" if p is None else f"composite_pair{p:03d}.png"
        prob = var.isel({schema.PAIR: p}) if p is not None else var
        entry: dict[str, Any] = {
            "index": -1 if p is None else p,
            "reference": _date(ds[schema.REFERENCE_TIME].values[p]) if p is not None else None,
            "activity": _date(ds[schema.ACTIVITY_TIME].values[p]) if p is not None else None,
            "orbit": int(orbits[p]) if p is not None and orbits is not None else None,
            "predicted": bool(np.isfinite(np.asarray(prob.values)).any()),
            "detections": int(counts.get(-1 if p is None else p, 0)),
            "composite": _composite_png(ds, p, display, image_dir / name),
        }
        entries.append(entry)
    return entries


def _read_evaluation(path: Path) -> dict[str, Any]:
    """The JSON of ``sarcube evaluate --out``, checked before any work is done."""
    if not path.exists():
        raise InputError(f"evaluation file {str(path)!r} does not exist: write it with `sarcube evaluate --out`")
    try:
        result = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(
            f"evaluation file {str(path)!r} is not JSON ({err}): write it with `sarcube evaluate --out`"
        ) from err
    if not isinstance(result, dict) or not isinstance(result.get("predictions", {}), dict):
        raise InputError(
            f"evaluation file {str(path)!r} is not the JSON of `sarcube evaluate --out`: write it with that command"
        )
    return result


def _evaluation(
    cube: str | Path,
    ds: xr.Dataset,
    name: str,
    evaluation: Mapping[str, Any] | None,
    storage_options: Mapping[str, Any] | None,
) -> dict[str, Any] | None:
    """The evaluation table: from an ``evaluate`` JSON if given, else scored now where the cube has labels."""
    from sarcube.pipelines.scoring import COLUMNS

    if evaluation is not None:
        result = evaluation
    elif schema.LABEL in ds.data_vars:
        from sarcube.pipelines.scoring import score_predictions

        if not ds[name].attrs.get(schema.ATTR_RUN):  # scores need the run's split: say so without loading torch
            note = (f"not evaluated: {name!r} records no {schema.ATTR_RUN!r} (the run whose split it is scored on); "
                    "pass --evaluation with the JSON of `sarcube evaluate`")
            return {"columns": [], "rows": [], "note": note}
        try:
            result = score_predictions(cube, [name], storage_options=storage_options)
        except SarcubeError as err:
            return {"columns": [], "rows": [], "note": f"not evaluated: {err}"}
    else:
        return None
    columns = [str(c) for c in result.get("columns", []) if c in COLUMNS]
    rows = []
    for pred_name, scores in result.get("predictions", {}).items():
        cells = []
        for c in columns:
            v = scores.get(c)
            if v is None or not math.isfinite(float(v)):
                cells.append("-")
            else:
                cells.append(f"{int(v)}" if COLUMNS[c][1] == "int" else f"{100.0 * float(v):.2f}")
        short = pred_name[len(schema.PRED_PREFIX):] if schema.is_prediction(pred_name) else pred_name
        rows.append({"method": short, "this": pred_name == name, "cells": cells, "threshold": scores.get("threshold")})
    first = next(iter(result.get("predictions", {}).values()), {})
    note = f"{result.get('split', '')} split, scored on {result.get('scored_on', '')}"
    note += f"; {first['split']}" if first.get("split") else ""
    return {"columns": [COLUMNS[c][0] for c in columns], "rows": rows, "note": note}


def _provenance(ds: xr.Dataset, var: xr.DataArray) -> dict[str, Any]:
    """Cube and prediction provenance as (key, value) text pairs, and the acquisitions."""
    cube_keys = (schema.ATTR_TITLE, schema.ATTR_START, schema.ATTR_END, schema.ATTR_CATALOG, schema.ATTR_COLLECTIONS,
                 schema.ATTR_VERSION, schema.ATTR_CREATED, schema.ATTR_HISTORY)
    cube = [[k, str(ds.attrs[k])] for k in cube_keys if k in ds.attrs]
    dx, dy = pixel_size(ds)
    cube += [["crs", ds.rio.crs.to_string() if ds.rio.crs else "unknown"],
             ["grid", f"{ds.sizes[schema.Y]} x {ds.sizes[schema.X]} px of {dx:g} x {dy:g} m"]]
    skip = {"grid_mapping", "_FillValue", "flag_values", "flag_meanings", "valid_range"}
    prediction = [["variable", str(var.name)]] + [[str(k), str(v)] for k, v in var.attrs.items() if k not in skip]
    acquisitions = []
    if schema.TIME in ds.coords:
        about = [c for c in (schema.PLATFORM, schema.ORBIT_STATE, schema.RELATIVE_ORBIT) if c in ds.coords]
        for i, t in enumerate(ds[schema.TIME].values):
            acquisitions.append([_date(t), *(str(ds[c].values[i]) for c in about)])
    return {"cube": cube, "prediction": prediction, "acquisitions": acquisitions}


def _check_out(out: Path) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError(f"--out {str(out)!r} is a file: give a folder for the report")
    index = out / INDEX_FILE
    if any(out.iterdir()) and not (index.exists() and GENERATOR in index.read_text(errors="replace")):
        raise InputError(f"--out {str(out)!r} is not empty and holds no earlier report: choose a new or empty folder")


def report(
    cube: str | Path,
    pred: str,
    out: str | Path,
    *,
    threshold: float | None = None,
    min_area_m2: float | None = None,
    evaluation: str | Path | None = None,
    max_display_px: int = MAX_DISPLAY_PX,
    storage_options: Mapping[str, Any] | None = None,
) -> Path:
    """Write the offline web map of prediction ``pred`` into folder ``out`` (an earlier report there is replaced).

    Detections are those of :func:`sarcube.pipelines.detections.detections` with
    the same ``threshold`` and ``min_area_m2`` (defaults: the run's threshold,
    export's minimum area). ``evaluation``: a JSON written by ``sarcube
    evaluate``; without it the prediction is scored where the cube has labels.
    Returns the path of ``index.html``.
    """
    out = Path(out)
    _check_out(out)
    given = _read_evaluation(Path(evaluation)) if evaluation is not None else None
    ds = schema.open_cube(cube, storage_options=storage_options)
    name = resolve_prediction(ds, pred)
    var = ds[name]
    if schema.DEM not in ds.data_vars:
        hint = schema.hint_for([schema.DEM])
        raise InputError(f"the report's base layer is a hillshade of {schema.DEM!r}, which the cube lacks; {hint}")
    area = MIN_AREA_M2 if min_area_m2 is None else float(min_area_m2)
    frame = detections(ds, name, threshold=threshold, min_area_m2=area)
    display = _Display(ds, int(max_display_px))

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        images = staging / IMAGE_DIR
        data = {
            "generator": f"{GENERATOR} {__version__}",
            "title": str(ds.attrs.get(schema.ATTR_TITLE, Path(str(cube)).name)),
            "crs": ds.rio.crs.to_string() if ds.rio.crs else "",
            "pixel_m": list(pixel_size(ds)),
            "size": [ds.sizes[schema.Y], ds.sizes[schema.X]],
            "display": {"step": display.step, "width": display.width, "height": display.height},
            "bounds": [round(b, COORD_DECIMALS) for b in display.bounds],
            # colours run from the lowest threshold any pair was detected at (one, or each pair's own)
            "prediction": {"name": name, "threshold": frame.attrs["lowest_threshold"], "min_area_m2": area,
                           "operating_point": frame.attrs["operating_point"]},
            "hillshade": _write_png(images / "hillshade.png", hillshade_image(ds, display)),
            "pairs": _pair_entries(ds, var, frame, display, images),
            "detections": detection_features(frame, ds),
            "labels": label_features(ds, _pairs(ds, var)),
            "evaluation": _evaluation(cube, ds, name, given, storage_options),
            "provenance": _provenance(ds, var),
        }
        payload = json.dumps(data, separators=(",", ":"), allow_nan=False)
        (staging / DATA_FILE).write_text(f"window.SARCUBE_REPORT = {payload};\n")
        page = Template((WEB_DIR / INDEX_FILE).read_text()).substitute(
            title=_html_escape(f"{data['title']}: {name}"), generator=GENERATOR, version=__version__,
            assets=ASSET_DIR, data=DATA_FILE,
        )
        (staging / INDEX_FILE).write_text(page)
        shutil.copytree(WEB_DIR, staging / ASSET_DIR, ignore=shutil.ignore_patterns(INDEX_FILE, "__pycache__"))
        staging.chmod(0o755)  # mkdtemp made it private
        if out.exists():
            shutil.rmtree(out)
        staging.replace(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    log.info("wrote a report of %d detections over %d pairs to %s", len(frame), len(data["pairs"]), out)
    return out / INDEX_FILE


def _html_escape(text: str) -> str:
    import html

    return html.escape(text, quote=True)


@click.command("report")
@click.argument("cube", type=click.Path())
@click.option("--pred", "pred", required=True, help="Prediction to map: NAME or pred_NAME.")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Output folder (open index.html).")
@click.option("--threshold", type=float, default=None, help="Probability threshold (default: the run's, else 0.5).")
@click.option("--min-area", "min_area_m2", type=float, default=None, help="Drop smaller objects, m2 [export's].")
@click.option("--evaluation", type=click.Path(dir_okay=False), default=None,
              help="JSON of `sarcube evaluate` to show (default: score now where the cube has labels and a run).")
@click.option("--max-px", "max_display_px", type=int, default=MAX_DISPLAY_PX, show_default=True,
              help="Longest side of the map images, pixels.")
@storage_options_option
def command(
    cube: str, pred: str, out: str, threshold: float | None, min_area_m2: float | None, evaluation: str | None,
    max_display_px: int, storage_options: dict[str, Any] | None,
) -> None:
    """Write an offline web map of prediction NAME in CUBE: detections per pair on a hillshade, with tables."""
    path = report(cube, pred, out, threshold=threshold, min_area_m2=min_area_m2, evaluation=evaluation,
                  max_display_px=max_display_px, storage_options=storage_options)
    click.echo(f"wrote {path}")
