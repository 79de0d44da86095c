"""``sarcube quicklook CUBE --pair N --out PNG``: the picture a forecaster or labeller looks at.

Panels: the change composite experts label on (R: reference VV, G: activity
VV, B: reference VV; new debris shows green) with label outlines and
prediction contours; the prediction's probability when one is given; slope and
PAR when the cube has them. Every panel has a title, a colour bar where it
shows a quantity, and a scale bar; large scenes are subsampled to at most
``MAX_DISPLAY_PX`` pixels a side so the PNG stays readable without zooming.
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
from sarcube.datacube.composite import COMPOSITE_DB_RANGE, change_composite, composite_inputs
from sarcube.datacube.grid import pixel_size
from sarcube.datacube.predictions import prediction_threshold, resolve_prediction
from sarcube.pipelines._storage import storage_options_option

from sarcube.errors import InputError

log = logging.getLogger(__name__)

#: longest side of a displayed panel, pixels (larger scenes are subsampled)
MAX_DISPLAY_PX = 1000
PANEL_INCHES = 5.2
DPI = 130
LABEL_COLOUR = "#ffd700"  # gold: label outlines
PRED_COLOUR = "#00e5ff"  # cyan: prediction contours
UNKNOWN_COLOUR = "white"  # dashed: label 255, not monitored
#: time tolerance when matching a pair's dates to acquisitions
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
    ax.add_patch(Rectangle((bx - (x1 - x0) * 0.015, by - height * 1.5), length + (x1 - x0) * 0.03, height * 6.5, facecolor="white", alpha=0.75, edgecolor="none", zorder=5))
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


def _subsample(a: Any, step: int) -> np.ndarray:
    arr = a.isel({schema.Y: slice(None, None, step), schema.X: slice(None, None, step)}) if isinstance(a, xr.DataArray) else a[::step, ::step]
    return np.asarray(arr.values if isinstance(arr, xr.DataArray) else arr)


def quicklook(
    cube: str | Path,
    out_png: str | Path,
    *,
    pair: int = 0,
    pred: str | None = None,
    threshold: float | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Path:
    """Draw the change composite of ``pair`` with label outlines and ``pred`` contours, plus slope and PAR panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.lines import Line2D
    from rasterio.transform import Affine

    out = Path(out_png)
    if out.suffix.lower() != ".png":
        raise InputError(f"output {str(out)!r}: give a .png file name")
    ds = schema.open_cube(cube, storage_options=storage_options)
    n_pairs = ds.sizes.get(schema.PAIR, 0)
    pair_index: int | None = None
    if n_pairs:
        if not 0 <= pair < n_pairs:
            raise InputError(f"--pair {pair} does not exist: the cube has pairs 0..{n_pairs - 1} (see `sarcube info`)")
        pair_index = int(pair)
    ref, act, composite_subtitle = composite_inputs(ds, pair_index)

    def at_pair(var: xr.DataArray) -> xr.DataArray:
        return var.isel({schema.PAIR: pair_index}) if schema.PAIR in var.dims and pair_index is not None else var

    ny, nx = ds.sizes[schema.Y], ds.sizes[schema.X]
    step = max(1, math.ceil(max(ny, nx) / MAX_DISPLAY_PX))
    dx, dy = pixel_size(ds)
    xv, yv = ds[schema.X].values, ds[schema.Y].values
    extent = (float(xv.min() - dx / 2), float(xv.max() + dx / 2), float(yv.min() - dy / 2), float(yv.max() + dy / 2))
    origin = "upper" if ny < 2 or yv[0] > yv[-1] else "lower"

    rgb = change_composite(_subsample(ref, step), _subsample(act, step))
    label = _subsample(at_pair(ds[schema.LABEL]), step) if schema.LABEL in ds.data_vars else None
    prob = thr = None
    pred_name = None
    if pred is not None:
        pred_name = resolve_prediction(ds, pred)
        thr = prediction_threshold(ds[pred_name], threshold)
        prob = _subsample(at_pair(ds[pred_name]), step).astype(np.float32)

    panels: list[tuple[str, Any]] = [("composite", None)]
    if prob is not None:
        panels.append(("prediction", None))
    for var, what in ((schema.SLOPE, "slope angle"), (schema.PAR, "potential angle of reach (PAR)")):
        if var in ds.data_vars:
            panels.append((what, var))

    cols = min(len(panels), 2 if len(panels) == 4 else 3)
    rows = math.ceil(len(panels) / cols)
    aspect = (extent[3] - extent[2]) / max(extent[1] - extent[0], 1e-9)
    fig, axes = plt.subplots(rows, cols, figsize=(PANEL_INCHES * cols + 0.6, PANEL_INCHES * aspect * rows + 1.2), dpi=DPI, squeeze=False, layout="constrained")

    display_transform = ds.rio.transform() * Affine.scale(step)

    def outlines(ax: Any) -> list[Any]:
        handles = []
        if label is not None and (label == schema.LABEL_UNKNOWN).any() and not (label == schema.LABEL_UNKNOWN).all():
            _outline(ax, label == schema.LABEL_UNKNOWN, display_transform, color=UNKNOWN_COLOUR, linewidth=1.0, linestyle="--")
            handles.append(Line2D([], [], color=UNKNOWN_COLOUR, lw=1.5, ls="--", label="not monitored"))
        if label is not None and (label == schema.LABEL_YES).any():
            _outline(ax, label == schema.LABEL_YES, display_transform, color=LABEL_COLOUR, linewidth=1.4)
            handles.append(Line2D([], [], color=LABEL_COLOUR, lw=2, label="label (hazard)"))
        if prob is not None and (np.nan_to_num(prob, nan=0.0) >= thr).any():
            _outline(ax, np.nan_to_num(prob, nan=0.0) >= thr, display_transform, color=PRED_COLOUR, linewidth=1.2)
            handles.append(Line2D([], [], color=PRED_COLOUR, lw=2, label=f"prediction >= {thr:g}"))
        return handles

    for ax, (what, var) in zip(axes.ravel(), panels, strict=False):
        if what == "composite":
            ax.imshow(rgb, extent=extent, origin=origin, interpolation="nearest")
            handles = outlines(ax)
            if handles:
                ax.legend(handles=handles, loc="upper right", fontsize=8, framealpha=0.8, facecolor="#444444", labelcolor="white")
            low, high = COMPOSITE_DB_RANGE
            key = fig.colorbar(ScalarMappable(Normalize(low, high), cmap="gray"), ax=ax, shrink=0.8)
            key.set_label("VV backscatter, dB (per channel)")
            ax.set_title(f"change composite\n{composite_subtitle}", fontsize=10)
        elif what == "prediction":
            im = ax.imshow(prob, extent=extent, origin=origin, cmap="inferno", vmin=0.0, vmax=1.0, interpolation="nearest")
            handles = outlines(ax)
            if handles:
                ax.legend(handles=handles, loc="upper right", fontsize=8, framealpha=0.8, facecolor="#444444", labelcolor="white")
            fig.colorbar(im, ax=ax, shrink=0.8, label="probability")
            predicted = np.isfinite(prob).any()
            ax.set_title(f"{pred_name} (threshold {thr:g})" + ("" if predicted else "\nnot predicted for this pair"), fontsize=10)
        else:
            values = _subsample(ds[var], step).astype(np.float32)
            cmap = "viridis" if var == schema.SLOPE else "magma"
            im = ax.imshow(values, extent=extent, origin=origin, cmap=cmap, interpolation="nearest")
            fig.colorbar(im, ax=ax, shrink=0.8, label=f"{what.split(' (')[0]}, {ds[var].attrs.get('units', '')}".replace("degree", "degrees"))
            ax.set_title(what, fontsize=10)
        _scale_bar(ax, extent)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    title = str(ds.attrs.get(schema.ATTR_TITLE, Path(str(cube)).name))
    where = f"pair {pair_index}" if pair_index is not None else "event"
    crs = ds.rio.crs.to_string() if ds.rio.crs else ""
    heading = textwrap.fill(f"{title}: {where}", width=90)
    fig.suptitle(f"{heading}\n({crs}, {dx:g} m pixels{'' if step == 1 else f', shown every {step}th'})", fontsize=11)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    log.info("wrote %s", out)
    return out


@click.command("quicklook")
@click.argument("cube", type=click.Path())
@click.option("--pair", default=0, show_default=True, type=int, help="Pair index (see `sarcube info`).")
@click.option("--pred", default=None, help="Prediction to contour: NAME or pred_NAME.")
@click.option("--threshold", type=float, default=None, help="Contour level (default: the run's threshold).")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Output PNG.")
@storage_options_option
def command(cube: str, pair: int, pred: str | None, threshold: float | None, out: str, storage_options: dict[str, Any] | None) -> None:
    """Draw PNG panels of CUBE: change composite with labels and predictions, slope and PAR."""
    path = quicklook(cube, out, pair=pair, pred=pred, threshold=threshold, storage_options=storage_options)
    click.echo(f"wrote {path}")
