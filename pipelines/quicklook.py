"""``sarcube quicklook CUBE --pair N --out PNG``: the picture a forecaster or labeller looks at.

Panels: the change composite experts label on (R: reference VV, G: activity
VV, B: reference VV) with a key to its colours (green brighter, magenta
darker, black no data), label outlines, prediction contours and a zoomed
inset on the largest detection; the prediction's probability when one is
given; then the terrain that fits the hazard: slope and PAR for avalanches,
slope for landslides, elevation for glaciers. Avalanches show a pair,
landslides the event means before/after, glaciers winter against summer over
the whole season (:mod:`sarcube.datacube.composite`). Every panel has a title,
a colour bar where it shows a quantity, and a scale bar; large scenes are
subsampled to at most ``MAX_DISPLAY_PX`` pixels a side so the PNG stays
readable without zooming.
"""

from __future__ import annotations

import logging
import math
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
import numpy as np
import xarray as xr

from sarcube.datacube import schema
from sarcube.datacube.composite import (
    COMPOSITE_DB_RANGE,
    change_composite,
    composite_inputs,
    season_composite_inputs,
)
from sarcube.datacube.grid import pixel_size
from sarcube.datacube.predictions import ATTR_PRESET, pair_keys, prediction_threshold, resolve_prediction
from sarcube.errors import InputError
from sarcube.pipelines._storage import storage_options_option

log = logging.getLogger(__name__)

#: longest side of a displayed panel, pixels (larger scenes are subsampled)
MAX_DISPLAY_PX = 1000
PANEL_INCHES = 5.2
DPI = 130
LABEL_COLOUR = "#ffd700"  # gold: label outlines
PRED_COLOUR = "#00e5ff"  # cyan: prediction contours
UNKNOWN_COLOUR = "white"  # dashed: label 255, not monitored
HAZARDS = ("avalanche", "landslide", "glacier")
#: what green and magenta mean in each hazard's composite
COMPOSITE_KEY = {
    "avalanche": ("brighter on the activity date: new debris", "darker: wet snow"),
    "landslide": ("brighter after the event: debris, rough ground", "darker after the event: smooth scar"),
    "glacier": ("brighter in summer", "darker in summer: wet snow and ice of the glaciers"),
}
NO_DATA_KEY = "no data: radar shadow, layover or outside the scene"
#: terrain panels per hazard: (variable, title)
TERRAIN_PANELS = {
    "avalanche": ((schema.SLOPE, "slope angle"), (schema.PAR, "potential angle of reach (PAR)")),
    "landslide": ((schema.SLOPE, "slope angle"),),
    "glacier": ((schema.DEM, "elevation"),),
}
PAR_LABEL = (
    "PAR, degrees: angle up to the highest\nrelease cell within reach (negative:\n"
    "every release cell in reach lies below)"
)
#: the inset zooms on the largest detection when its window is at most this fraction of the scene side
INSET_MAX_FRACTION = 0.25
INSET_MIN_PX = 24
def _nice_length_m(span_m: float) -> float:
    """A round scale-bar length (1, 2 or 5 x 10^k m) of about a fifth of the span."""
    target = max(span_m / 5.0, 1e-9)
    k = math.floor(math.log10(target))
    for m in (5, 2, 1):
        if m * 10**k <= target:
            return float(m * 10**k)
    return float(10**k)


def _scale_bar(ax: Any, extent: tuple[float, float, float, float]) -> None:
    """A black-and-white scale bar in the lower left corner, labelled in m or km."""
    from matplotlib.patches import Rectangle

    x0, x1, y0, y1 = extent
    length = _nice_length_m(x1 - x0)
    height = (y1 - y0) * 0.012
    bx, by = x0 + (x1 - x0) * 0.05, y0 + (y1 - y0) * 0.06
    ax.add_patch(
        Rectangle(
            (bx - (x1 - x0) * 0.015, by - height * 1.5),
            length + (x1 - x0) * 0.03,
            height * 6.5,
            facecolor="white",
            alpha=0.75,
            edgecolor="none",
            zorder=5,
        )
    )
    ax.add_patch(Rectangle((bx, by), length / 2, height, facecolor="black", edgecolor="black", zorder=6))
    ax.add_patch(Rectangle((bx + length / 2, by), length / 2, height, facecolor="white", edgecolor="black", zorder=6))
    text = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    ax.text(bx + length / 2, by + height * 1.6, text, ha="center", va="bottom", fontsize=9, zorder=7)


def _outline(ax: Any, mask: np.ndarray, transform: Any, **style: Any) -> None:
    """Draw the pixel-edge outlines of a boolean mask (exact polygons, as a GIS shows them)."""
    import rasterio.features
    from matplotlib.collections import LineCollection

    rings = []
    for geom, _ in rasterio.features.shapes(mask.astype(np.uint8), mask=mask, connectivity=8, transform=transform):
        rings.extend(np.asarray(ring) for ring in geom["coordinates"])
    if rings:
        ax.add_collection(LineCollection(rings, zorder=4, **style))


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st, ..."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def infer_hazard(ds: xr.Dataset, pred_name: str | None = None) -> str:
    """The hazard a quicklook is drawn for: the prediction's preset, else what the cube holds.

    Event means (before/after) mean a landslide cube, static (y, x) labels or a
    time series without pairs a glacier cube; anything else is an avalanche cube.
    """
    if pred_name is not None:
        preset = str(ds[pred_name].attrs.get(ATTR_PRESET, ""))
        for hazard in HAZARDS:
            if preset.startswith(hazard):
                return hazard
    if schema.VV_BEFORE in ds.data_vars:
        return "landslide"
    static_label = schema.LABEL in ds.data_vars and schema.PAIR not in ds[schema.LABEL].dims
    if schema.TIME in ds.dims and (static_label or schema.PAIR not in ds.dims):
        return "glacier"
    return "avalanche"


def _largest_object(mask: np.ndarray) -> tuple[slice, slice] | None:
    """Row and column slices of the largest 8-connected object of ``mask``, None when empty."""
    from scipy import ndimage

    labels, n = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if n == 0:
        return None
    sizes = np.bincount(labels.ravel())[1:]
    return ndimage.find_objects(labels)[int(np.argmax(sizes))]


def _inset_window(box: tuple[slice, slice], shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """A square window (row0, row1, col0, col1) around ``box``, padded; None when it is not a zoom."""
    rows, cols = box
    side = max(INSET_MIN_PX, 2 * (rows.stop - rows.start), 2 * (cols.stop - cols.start))
    if side > INSET_MAX_FRACTION * min(shape):
        return None
    cy, cx = (rows.start + rows.stop) // 2, (cols.start + cols.stop) // 2
    r0 = min(max(cy - side // 2, 0), shape[0] - side)
    c0 = min(max(cx - side // 2, 0), shape[1] - side)
    return r0, r0 + side, c0, c0 + side


def _composite_key(hazard: str) -> list[Any]:
    from matplotlib.patches import Patch

    brighter, darker = COMPOSITE_KEY[hazard]
    return [
        Patch(facecolor="#808080", edgecolor="black", label="grey: unchanged"),
        Patch(facecolor="#30d030", edgecolor="black", label=f"green: {brighter}"),
        Patch(facecolor="#d030d0", edgecolor="black", label=f"magenta: {darker}"),
        Patch(facecolor="black", edgecolor="white", label=f"black: {NO_DATA_KEY}"),
    ]


def _subsample(a: Any, step: int) -> np.ndarray:
    arr = (
        a.isel({schema.Y: slice(None, None, step), schema.X: slice(None, None, step)})
        if isinstance(a, xr.DataArray)
        else a[::step, ::step]
    )
    return np.asarray(arr.values if isinstance(arr, xr.DataArray) else arr)


def quicklook(
    cube: str | Path,
    out_png: str | Path,
    *,
    pair: int | None = None,
    pred: str | None = None,
    threshold: float | None = None,
    hazard: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Path:
    """Write :func:`quicklook_figure` of ``cube`` to ``out_png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_png)
    if out.suffix.lower() != ".png":
        raise InputError(f"output {str(out)!r}: give a .png file name")
    ds = schema.open_cube(cube, storage_options=storage_options)
    fig = quicklook_figure(ds, pair=pair, pred=pred, threshold=threshold, hazard=hazard, name=Path(str(cube)).name)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    log.info("wrote %s", out)
    return out


def quicklook_figure(
    ds: xr.Dataset,
    *,
    pair: int | None = None,
    pred: str | None = None,
    threshold: float | None = None,
    hazard: str | None = None,
    name: str = "cube",
) -> Any:
    """The change composite with its key, label outlines, ``pred`` contours and a zoom, plus terrain panels.

    ``pair`` None: pair 0 for avalanches, the event means for landslides, the
    season for glaciers. ``hazard`` None: :func:`infer_hazard`. Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from rasterio.transform import Affine

    if hazard is not None and hazard not in HAZARDS:
        raise InputError(f"--hazard {hazard!r}: use one of {', '.join(HAZARDS)}")
    pred_name = resolve_prediction(ds, pred) if pred is not None else None
    hazard = hazard or infer_hazard(ds, pred_name)
    n_pairs = ds.sizes.get(schema.PAIR, 0)
    pair_index: int | None = None
    if pair is not None and not 0 <= pair < n_pairs:
        raise InputError(f"--pair {pair} does not exist: the cube has pairs 0..{n_pairs - 1} (see `sarcube info`)")
    if pair is not None:
        pair_index = int(pair)
    elif hazard == "avalanche" and n_pairs:
        pair_index = 0
    elif hazard == "landslide" and n_pairs and schema.VV_BEFORE not in ds.data_vars:
        pair_index = 0
    if pair_index is None and hazard == "glacier":
        ref, act, composite_subtitle = season_composite_inputs(ds)
    else:
        ref, act, composite_subtitle = composite_inputs(ds, pair_index)

    def at_pair(var: xr.DataArray) -> xr.DataArray:
        if schema.PAIR in var.dims:
            return var.isel({schema.PAIR: pair_index if pair_index is not None else 0})
        return var

    ny, nx = ds.sizes[schema.Y], ds.sizes[schema.X]
    step = max(1, math.ceil(max(ny, nx) / MAX_DISPLAY_PX))
    dx, dy = pixel_size(ds)
    xv, yv = ds[schema.X].values, ds[schema.Y].values
    extent = (float(xv.min() - dx / 2), float(xv.max() + dx / 2), float(yv.min() - dy / 2), float(yv.max() + dy / 2))
    origin = "upper" if ny < 2 or yv[0] > yv[-1] else "lower"

    rgb = change_composite(_subsample(ref, step), _subsample(act, step))
    label = _subsample(at_pair(ds[schema.LABEL]), step) if schema.LABEL in ds.data_vars else None
    prob = thr = None
    if pred_name is not None:
        prob = _subsample(at_pair(ds[pred_name]), step).astype(np.float32)
        # the pair's own threshold under a per-pair operating point (none is recorded for an unpredicted pair)
        per_pair = schema.PAIR in ds[pred_name].dims and np.isfinite(prob).any()
        key = pair_keys(ds)[pair_index if pair_index is not None else 0] if per_pair else None
        thr = prediction_threshold(ds[pred_name], threshold, key)
    detected = np.nan_to_num(prob, nan=0.0) >= thr if prob is not None else None

    panels: list[tuple[str, Any]] = [("composite", None)]
    if prob is not None:
        panels.append(("prediction", None))
    panels += [(what, var) for var, what in TERRAIN_PANELS[hazard] if var in ds.data_vars]

    cols = min(len(panels), 2 if len(panels) == 4 else 3)
    rows = math.ceil(len(panels) / cols)
    aspect = (extent[3] - extent[2]) / max(extent[1] - extent[0], 1e-9)
    figsize = (PANEL_INCHES * cols + 0.6, PANEL_INCHES * aspect * rows + 2.4)
    fig, axes = plt.subplots(rows, cols, figsize=figsize, dpi=DPI, squeeze=False, layout="constrained")

    display_transform = ds.rio.transform() @ Affine.scale(step)

    def outlines(ax: Any, width: float = 1.0) -> list[Any]:
        handles = []
        if label is not None and (label == schema.LABEL_UNKNOWN).any() and not (label == schema.LABEL_UNKNOWN).all():
            _outline(
                ax, label == schema.LABEL_UNKNOWN, display_transform,
                color=UNKNOWN_COLOUR, linewidth=width, linestyle="--",
            )
            handles.append(Line2D([], [], color=UNKNOWN_COLOUR, lw=1.5, ls="--", label="not monitored"))
        if label is not None and (label == schema.LABEL_YES).any():
            _outline(ax, label == schema.LABEL_YES, display_transform, color=LABEL_COLOUR, linewidth=1.4 * width)
            handles.append(Line2D([], [], color=LABEL_COLOUR, lw=2, label=f"label ({hazard})"))
        if detected is not None and detected.any():
            _outline(ax, detected, display_transform, color=PRED_COLOUR, linewidth=1.2 * width)
            handles.append(Line2D([], [], color=PRED_COLOUR, lw=2, label=f"prediction >= {thr:.3g}"))
        return handles

    def legend(ax: Any, handles: list[Any]) -> None:
        if handles:
            ax.legend(
                handles=handles, loc="upper right", fontsize=8, framealpha=0.8, facecolor="#444444", labelcolor="white"
            )

    for ax, (what, var) in zip(axes.ravel(), panels, strict=False):
        if what == "composite":
            ax.imshow(rgb, extent=extent, origin=origin, interpolation="nearest")
            handles = outlines(ax)
            _zoom_inset(ax, rgb, extent, origin, detected, label, step, dx, dy, outlines)
            low, high = COMPOSITE_DB_RANGE
            key = ax.legend(
                handles=_composite_key(hazard), loc="upper left", bbox_to_anchor=(0.0, -0.02), fontsize=8,
                title=f"key: each channel VV, {low:g} (dark) to {high:g} dB (bright)", title_fontsize=8, frameon=False,
            )
            ax.add_artist(key)
            legend(ax, handles)
            ax.set_title("change composite\n" + textwrap.fill(composite_subtitle, width=64), fontsize=10)
        elif what == "prediction":
            im = ax.imshow(
                prob, extent=extent, origin=origin, cmap="inferno", vmin=0.0, vmax=1.0, interpolation="nearest"
            )
            legend(ax, outlines(ax))
            fig.colorbar(im, ax=ax, shrink=0.8, label="probability")
            predicted = np.isfinite(prob).any()
            missing = "" if predicted else "\nnot predicted for this pair"
            ax.set_title(f"{pred_name} (threshold {thr:.3g}){missing}", fontsize=10)
        else:
            values = _subsample(ds[var], step).astype(np.float32)
            cmap = {schema.SLOPE: "viridis", schema.PAR: "magma"}.get(var, "terrain")
            im = ax.imshow(values, extent=extent, origin=origin, cmap=cmap, interpolation="nearest")
            units = str(ds[var].attrs.get("units", "")).replace("degree", "degrees")
            bar_label = PAR_LABEL if var == schema.PAR else f"{what}, {units}"
            fig.colorbar(im, ax=ax, shrink=0.8, label=bar_label)
            ax.set_title(what, fontsize=10)
        _scale_bar(ax, extent)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    title = str(ds.attrs.get(schema.ATTR_TITLE, name))
    where = f"pair {pair_index}" if pair_index is not None else ("season" if hazard == "glacier" else "event")
    crs = ds.rio.crs.to_string() if ds.rio.crs else ""
    heading = textwrap.fill(f"{title}: {hazard}, {where}", width=90)
    shown = "" if step == 1 else f", shown every {ordinal(step)} pixel"
    fig.suptitle(f"{heading}\n({crs}, {dx:g} m pixels{shown})", fontsize=11)
    return fig


def _zoom_inset(
    ax: Any, rgb: np.ndarray, extent: tuple[float, float, float, float], origin: str,
    detected: np.ndarray | None, label: np.ndarray | None, step: int, dx: float, dy: float, outlines: Any,
) -> Any:
    """An inset zoomed on the largest detection (else the largest label), in the corner away from it."""
    target = detected if detected is not None and detected.any() else None
    if target is None and label is not None and (label == schema.LABEL_YES).any():
        target = label == schema.LABEL_YES
    box = _largest_object(target) if target is not None else None
    window = _inset_window(box, rgb.shape[:2]) if box is not None else None
    if window is None:
        return None
    r0, r1, c0, c1 = window
    x0, x1 = extent[0] + c0 * dx * step, extent[0] + c1 * dx * step
    if origin == "upper":
        y1, y0 = extent[3] - r0 * dy * step, extent[3] - r1 * dy * step
    else:
        y0, y1 = extent[2] + r0 * dy * step, extent[2] + r1 * dy * step
    right = (c0 + c1) / 2 < rgb.shape[1] / 2  # the object is on the left: inset on the right
    low = (r0 + r1) / 2 < rgb.shape[0] / 2 if origin == "upper" else (r0 + r1) / 2 >= rgb.shape[0] / 2
    inset = ax.inset_axes([0.6 if right else 0.02, 0.14 if low else 0.6, 0.38, 0.38])
    inset.imshow(rgb, extent=extent, origin=origin, interpolation="nearest")
    outlines(inset, width=1.6)
    inset.set_xlim(x0, x1)
    inset.set_ylim(y0, y1)
    inset.set_xticks([])
    inset.set_yticks([])
    which = "detection" if detected is not None and detected.any() else "labelled object"
    inset.set_title(f"zoom: largest {which}", fontsize=7, color="white", pad=2, backgroundcolor="#000000aa")
    for spine in inset.spines.values():
        spine.set_edgecolor("white")
    ax.indicate_inset_zoom(inset, edgecolor="white", alpha=0.9)
    return inset


@click.command("quicklook")
@click.argument("cube", type=click.Path())
@click.option(
    "--pair", default=None, type=int,
    help="Pair index (see `sarcube info`) "
    "[default: 0 for avalanches; event means for landslides; the season for glaciers].",
)
@click.option("--pred", default=None, help="Prediction to contour: NAME or pred_NAME.")
@click.option("--threshold", type=float, default=None, help="Contour level (default: the run's threshold).")
@click.option(
    "--hazard", default=None, type=click.Choice(HAZARDS),
    help="Panels for this hazard [default: the prediction's preset, else what the cube holds].",
)
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Output PNG.")
@storage_options_option
def command(
    cube: str, pair: int | None, pred: str | None, threshold: float | None, hazard: str | None, out: str,
    storage_options: dict[str, Any] | None,
) -> None:
    """Draw PNG panels of CUBE: change composite with its key, labels and predictions, terrain for the hazard."""
    path = quicklook(
        cube, out, pair=pair, pred=pred, threshold=threshold, hazard=hazard, storage_options=storage_options
    )
    click.echo(f"wrote {path}")
