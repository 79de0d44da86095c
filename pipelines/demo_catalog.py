"""``sarcube demo-catalog OUT``: write the embedded synthetic scene as a local STAC catalog.

The catalog is shaped like Planetary Computer's (``sentinel-1-rtc`` and
``cop-dem-glo-30``), so ``sarcube build --catalog OUT`` reads it through the
same code as PC. ``--preview PNG`` draws the change composite (R reference
VV, G activity VV, B reference VV) of the pair with the most new debris,
with the label outlines on top.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click
import numpy as np

from sarcube.datacube import schema
from sarcube.datacube.composite import change_composite
from sarcube.datacube.synthetic import HAZARDS, DemoManifest, read_demo_manifest, write_demo_catalog
from sarcube.errors import InputError

log = logging.getLogger(__name__)


def demo_catalog(
    out: str | Path,
    *,
    seed: int = 0,
    size: int = 1024,
    resolution: float = 20.0,
    dates: int | None = None,
    hazard: str = "avalanche",
    preview: str | Path | None = None,
    winters: int = 1,
) -> Path:
    """Write the demo catalog into ``out`` (and the preview PNG); return the ``catalog.json`` path."""
    if preview is not None and Path(preview).suffix.lower() != ".png":
        raise InputError(f"--preview {str(preview)!r} must be a .png file name")
    catalog = write_demo_catalog(out, seed=seed, size=size, resolution=resolution, dates=dates, hazard=hazard,
                                 winters=winters)
    if preview is not None:
        preview_pair(out, preview)
    return catalog


def next_steps(manifest: DemoManifest, out: str | Path) -> list[str]:
    """What to pass on: the AOI (every stored digit, so ``build`` lands on the scene's own grid), the
    dates as ``build`` takes them, the event date of a landslide scene, and the ``build`` command."""
    aoi = ",".join(f"{v:.6f}" for v in manifest.bbox_lonlat)
    lines = [f"aoi {aoi}", f"dates --start {manifest.start} --end {manifest.end}"]
    if manifest.event_date is not None:
        date = manifest.event_date
        lines.append(f"event date {date} (for `sarcube features CUBE --event-date {date}`)")
    lines.append(
        f"next: sarcube build --catalog {out} --aoi {aoi} --start {manifest.start} --end {manifest.end} "
        f"--resolution {manifest.resolution:g} --out cube.zarr"
    )
    return lines


def _read_db(href: str) -> np.ndarray:
    """dB image of a linear gamma0 COG; nodata and zero-filled borders -> NaN."""
    import rasterio

    with rasterio.open(href) as src:
        linear = src.read(1).astype(np.float64)
        nodata = src.nodata
    bad = (linear <= 0.0) | ~np.isfinite(linear)
    if nodata is not None:
        bad |= linear == nodata
    with np.errstate(divide="ignore", invalid="ignore"):
        db = 10.0 * np.log10(linear)
    db[bad] = np.nan
    return db


def _pairs(items: list[Any]) -> list[tuple[Any, Any]]:
    """Consecutive (reference, activity) items of each relative orbit."""
    by_orbit: dict[int, list[Any]] = {}
    for item in sorted(items, key=lambda i: i.datetime):
        by_orbit.setdefault(int(item.properties["sat:relative_orbit"]), []).append(item)
    return [(a, b) for seq in by_orbit.values() for a, b in zip(seq[:-1], seq[1:], strict=True)]


def _labels_in(manifest: DemoManifest, ref: Any, act: Any) -> list[dict[str, Any]]:
    feats = json.loads(manifest.labels.read_text())["features"]
    if manifest.hazard != "avalanche":
        return feats
    lo, hi = np.datetime64(ref.datetime.replace(tzinfo=None)), np.datetime64(act.datetime.replace(tzinfo=None))
    return [f for f in feats if lo < np.datetime64(f["properties"]["date"]) <= hi]


def preview_pair(catalog_dir: str | Path, png: str | Path) -> Path:
    """PNG of the change composite of the pair with the most new labelled area, outlines on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pystac
    import shapely
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar
    from pyproj import Transformer

    manifest = read_demo_manifest(catalog_dir)
    catalog = pystac.Catalog.from_file(str(manifest.catalog))
    items = list(catalog.get_child(schema.COLLECTION_S1_RTC).get_items())
    pairs = _pairs(items)
    if manifest.hazard == "glacier":
        # not consecutive: a winter reference against a summer activity image shows the ice
        seq = [
            i
            for i in sorted(items, key=lambda i: i.datetime)
            if i.properties["sat:relative_orbit"] == items[0].properties["sat:relative_orbit"]
        ]
        winter = [i for i in seq if i.datetime.month in (12, 1, 2)] or seq[:1]
        summer = [i for i in seq if i.datetime.month in (7, 8)] or seq[-1:]
        pairs = [(winter[0], summer[-1])]
    if manifest.hazard == "landslide":
        # the pair that spans the trigger date
        event = np.datetime64(manifest.event_date)
        pairs = [
            p
            for p in pairs
            if np.datetime64(p[0].datetime.replace(tzinfo=None))
            < event
            <= np.datetime64(p[1].datetime.replace(tzinfo=None))
        ] or pairs
    scores = [sum(f["properties"].get("area_m2", 0.0) for f in _labels_in(manifest, a, b)) for a, b in pairs]
    ref, act = pairs[int(np.argmax(scores))]
    ref_db = _read_db(ref.assets[schema.ASSET_VV].get_absolute_href())
    act_db = _read_db(act.assets[schema.ASSET_VV].get_absolute_href())
    rgb = change_composite(ref_db, act_db)
    left, bottom, right, top = manifest.bbox
    tr = Transformer.from_crs(4326, manifest.crs, always_xy=True)
    outlines = [
        shapely.transform(
            shapely.geometry.shape(f["geometry"]), lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1]))
        )
        for f in _labels_in(manifest, ref, act)
    ]
    # a second panel zooms on the largest labelled object of the pair (scenes over 4 km)
    zoomed = (right - left) > 4000.0
    fig, axes = plt.subplots(1, 2 if zoomed else 1, figsize=(16, 8.6) if zoomed else (9, 9.6), dpi=100, squeeze=False)
    axes = axes[0]
    scene = shapely.box(left, bottom, right, top)
    inner = [g for g in outlines if scene.buffer(-200.0).contains(g)] or outlines
    largest = max(inner, key=lambda g: g.area) if inner else scene
    cx, cy = largest.centroid.x, largest.centroid.y
    half = max(750.0, 1.5 * max(largest.bounds[2] - largest.bounds[0], largest.bounds[3] - largest.bounds[1]))
    half = min(half, (right - left) / 2, (top - bottom) / 2)
    cx, cy = min(max(cx, left + half), right - half), min(max(cy, bottom + half), top - half)
    zoom = (cx - half, cx + half, cy - half, cy + half)
    windows = [(left, right, bottom, top), zoom][: len(axes)]
    for ax, (x0, x1, y0, y1) in zip(axes, windows, strict=True):
        ax.imshow(rgb, extent=(left, right, bottom, top), interpolation="nearest")
        for geom in outlines:
            for poly in getattr(geom, "geoms", [geom]):
                ax.plot(*poly.exterior.xy, color="#ffd400", lw=0.8 if ax is axes[0] else 1.4)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_xticks([])
        ax.set_yticks([])
        width_m = x1 - x0
        bar = 10 ** np.floor(np.log10(width_m / 4))
        bar = bar * 5 if width_m / bar >= 10 else bar
        label = f"{bar / 1000:g} km" if bar >= 1000 else f"{bar:g} m"
        scale_bar = AnchoredSizeBar(
            ax.transData, bar, label, "lower right", pad=0.4, color="white", frameon=True, size_vertical=width_m / 200.0
        )
        # a dark box under bar and label: white text alone vanishes on bright terrain
        scale_bar.patch.set(facecolor="black", edgecolor="none", alpha=0.65)
        ax.add_artist(scale_bar)
    if zoomed:
        axes[0].add_patch(
            plt.Rectangle((zoom[0], zoom[2]), 2 * half, 2 * half, fill=False, edgecolor="white", lw=1.0, ls="--")
        )
        axes[1].set_title("zoom on the largest labelled object (dashed box)", fontsize=10)
    orbit = f"{ref.properties['sat:orbit_state']} orbit {ref.properties['sat:relative_orbit']}"
    what = "debris polygons of this pair" if manifest.hazard == "avalanche" else "outlines"
    fig.suptitle(
        f"sarcube demo ({manifest.hazard}, seed {manifest.seed}): R/B reference VV {ref.datetime:%Y-%m-%d}, "
        f"G activity VV {act.datetime:%Y-%m-%d},{' ' if zoomed else chr(10)}{orbit}; yellow: {len(outlines)} labelled "
        f"{what}",
        fontsize=11,
    )
    fig.tight_layout()
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    plt.close(fig)
    return png


@click.command("demo-catalog")
@click.argument("out", type=click.Path())
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Random seed: the same seed writes the same bytes."
)
@click.option("--size", type=int, default=1024, show_default=True, help="Pixels per side of the scene.")
@click.option("--resolution", type=float, default=20.0, show_default=True, help="Pixel size, metres.")
@click.option(
    "--dates",
    type=int,
    default=None,
    help="Acquisitions over both orbits [default: 20 avalanche, 16 landslide, 24 glacier].",
)
@click.option(
    "--hazard", default="avalanche", show_default=True, metavar="|".join(HAZARDS), help="What happens in the scene."
)
@click.option(
    "--winters", type=int, default=1, show_default=True,
    help="Winters of an avalanche scene: 2 adds spring 2020 before the 2021 one (36 dates by default).",
)
@click.option(
    "--preview",
    type=click.Path(),
    default=None,
    help="Also write the change-composite PNG of the pair with the most debris.",
)
def command(
    out: str, seed: int, size: int, resolution: float, dates: int | None, hazard: str, winters: int,
    preview: str | None,
) -> None:
    """Write a synthetic alpine scene as a local STAC catalog in OUT (shaped like Planetary Computer's)."""
    catalog = demo_catalog(
        out, seed=seed, size=size, resolution=resolution, dates=dates, hazard=hazard, preview=preview, winters=winters
    )
    manifest = read_demo_manifest(catalog)
    click.echo(f"wrote {catalog} ({manifest.acquisitions} acquisitions, {manifest.objects} labelled {hazard} objects)")
    for line in next_steps(manifest, out):
        click.echo(line)
    if preview:
        click.echo(f"preview {preview}")
