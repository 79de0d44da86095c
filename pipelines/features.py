"""``sarcube features CUBE``: model inputs computed from a built cube, written into it.

SAR change pairs (``vv_diff``, ``vh_diff``, ``vvvh``), terrain (``slope``,
``aspect``, ``curvature``, ``release``), PAR, and on request snow-free ratios
(``vv_ratio``, ``vh_ratio``) and event means per orbit (``vv_before`` ...
``vh_after`` on (orbit, y, x)).
Everything requested is written in one all-or-nothing step
(:func:`store.add_variables`); a recomputed layer replaces the old one and
records its parameters in its attrs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
import numpy as np
import xarray as xr

from sarcube.datacube import lock, sar, schema, store
from sarcube.datacube import terrain as terrain_layers
from sarcube.datacube.par import PAR_RADIUS_M, potential_angle_of_reach
from sarcube.datacube.terrain import RELEASE_MAX_DEG, RELEASE_MIN_DEG
from sarcube.errors import CubeExistsError, InputError
from sarcube.pipelines import _dask
from sarcube.pipelines._storage import storage_options_option

log = logging.getLogger(__name__)


def _with_parameters(var: xr.DataArray, more: Mapping[str, Any]) -> xr.DataArray:
    """A copy of ``var`` with ``more`` merged into its recorded parameters."""
    params = {**schema.decode_json_attr(var, schema.ATTR_PARAMETERS, default={}), **more}
    return schema.make_variable(str(var.name), var, var.dims, attrs=var.attrs, parameters=params)


def _same_coords(ds: xr.Dataset, coords: Mapping[str, xr.DataArray], dim: str) -> bool:
    """True when the cube holds ``coords`` (of dimension ``dim``) already, or nothing on ``dim`` yet."""
    if dim not in ds.dims:
        return True  # nothing stored yet: the coordinates are simply added
    for name, new in coords.items():
        if name not in ds.coords or ds[name].shape != new.shape:
            return False
        if ds[name].attrs.get(schema.ATTR_ORBIT_KEY) != new.attrs.get(schema.ATTR_ORBIT_KEY):
            return False
        if not np.array_equal(ds[name].values.astype(str), new.values.astype(str)):
            return False
    return True


def _pair_keys(times: Mapping[str, Any]) -> list[tuple[np.datetime64, np.datetime64]]:
    return list(
        zip(
            np.asarray(times[schema.REFERENCE_TIME].values), np.asarray(times[schema.ACTIVITY_TIME].values), strict=True
        )
    )


def _carry_over(ds: xr.Dataset, var: xr.DataArray, pairs: Mapping[str, xr.DataArray]) -> xr.DataArray | None:
    """``var`` (on the stored pairs) reindexed onto ``pairs`` by reference/activity time.

    New pairs get "unknown" (255 for labels, NaN for floats), so monitoring a
    season (`build --append`, `features`, `predict --pairs new`) keeps every
    label and prediction. None when a stored pair is not among the new ones
    (its data would be lost).
    """
    import dask.array as dsa

    old = {key: i for i, key in enumerate(_pair_keys(ds))}
    new = _pair_keys(pairs)
    if not set(old) <= set(new):
        return None
    axis = var.dims.index(schema.PAIR)
    data = var.data if isinstance(var.data, dsa.Array) else dsa.from_array(var.data)
    fill = schema.LABEL_UNKNOWN if var.dtype.kind in "iu" else np.nan
    blank_shape = tuple(n for d, n in zip(var.dims, var.shape, strict=True) if d != schema.PAIR)
    blank = dsa.full(
        blank_shape,
        fill,
        dtype=var.dtype,
        chunks=schema.chunks_for([d for d in var.dims if d != schema.PAIR], blank_shape),
    )
    pieces = [dsa.take(data, old[key], axis=axis) if key in old else blank for key in new]
    out = xr.DataArray(
        dsa.stack(pieces, axis=axis),
        dims=var.dims,
        coords={d: var[d] for d in var.dims if d in var.coords and d != schema.PAIR},
    )
    out.attrs = {**var.attrs, "grid_mapping": schema.SPATIAL_REF}
    return out


def _check_options(
    ratio: bool, summer: str | None, k: int, event_date: str | None, orbit_key: str | None
) -> tuple[str, str] | None:
    if summer is not None and not ratio:
        raise InputError(f"--summer {summer} is only used with --ratio: add --ratio (or drop --summer)")
    if ratio and not summer:
        raise InputError(
            "--ratio needs the snow-free reference window: add --summer START/END, e.g. --summer 2017-07-01/2017-09-30"
        )
    if event_date is None and k != 1:
        raise InputError(f"--k {k} is only used with --event-date: add --event-date DATE")
    if event_date is None and orbit_key is not None:
        raise InputError(f"--orbit-key {orbit_key} is only used with --event-date: add --event-date DATE")
    return sar.parse_window(summer, "--summer") if ratio else None


@lock.writing_step("sarcube features")
def features(
    cube: str | Path,
    *,
    pairs: bool = True,
    max_gap_days: float | None = None,
    terrain: bool = True,
    release_min: float = RELEASE_MIN_DEG,
    release_max: float = RELEASE_MAX_DEG,
    par: bool = True,
    par_radius_m: float = PAR_RADIUS_M,
    ratio: bool = False,
    summer: str | None = None,
    event_date: str | None = None,
    k: int = 1,
    orbit_key: str | None = None,
    scheduler: str | None = None,
    overwrite: bool = False,
    wait_s: float = 0.0,
    storage_options: Mapping[str, Any] | None = None,
) -> list[str]:
    """Compute the requested layers and write them into ``cube``; returns the names written.

    ``max_gap_days`` None: :func:`sarcube.datacube.sar.default_max_gap` (12 days, or the cube's
    revisit when its orbits are revisited less often, e.g. a monthly glacier series).

    ``summer`` is ``"START/END"`` (with ``ratio``). ``event_date`` and ``k``
    give the event means, one per orbit of ``orbit_key`` (``relative_orbit``
    when None, or ``orbit_state``: per pass direction). When the recomputed pairs
    differ from the stored ones, every layer on ``pair`` is replaced together.
    Layers this step does not make (``label``, ``pred_*``, external) move onto
    the new pairs by reference/activity time when every stored pair is still
    there (new acquisitions: new pairs get "unknown"); when stored pairs
    disappear (another ``max_gap_days``) they are dropped with ``overwrite``
    and the step refuses without it. ``wait_s``: how long to wait for another
    writer of the cube (see :mod:`sarcube.datacube.lock`).
    """
    window = _check_options(ratio, summer, k, event_date, orbit_key)
    ds = schema.open_cube(cube, validate=False, storage_options=storage_options)
    need = []
    if pairs or ratio or event_date is not None:
        need += list(schema.BACKSCATTER)
    if terrain or par:
        need.append(schema.DEM)
    # event means made before they were per orbit ((y, x)) are replaced, not refused
    replaced = schema.EVENT_MEANS if event_date is not None else ()
    schema.validate_cube(ds, source=str(cube), require=need, ignore=replaced)

    layers: dict[str, xr.DataArray] = {}
    new_coords: dict[str, xr.DataArray] = {}
    orphans: list[str] = []
    carried: list[str] = []
    replace_pairs = False
    steps: list[str] = []
    if pairs:
        if max_gap_days is None:
            max_gap_days = sar.default_max_gap(ds)
            if max_gap_days > sar.MAX_GAP_DAYS:
                log.info("pairs up to %g days apart: the cube's same-orbit revisit (--max-gap to choose)", max_gap_days)
        pair_coords = sar.make_pairs(ds, max_gap_days)
        for name, var in sar.change_layers(ds, pair_coords).items():
            layers[name] = _with_parameters(var, {"max_gap_days": float(max_gap_days)})
        new_coords.update(pair_coords)
        replace_pairs = not _same_coords(ds, pair_coords, schema.PAIR)
        if replace_pairs:
            on_old_pairs = sorted(str(n) for n, v in ds.data_vars.items() if schema.PAIR in v.dims and n not in layers)
            for name in on_old_pairs:
                moved = _carry_over(ds, ds[name], pair_coords)
                if moved is None:
                    orphans.append(name)
                else:
                    layers[name] = moved
                    carried.append(name)
            if orphans and not overwrite:
                raise CubeExistsError(
                    f"cube {str(cube)!r}: the new pairs (--max-gap {max_gap_days:g}) leave out stored pairs that "
                    f"{orphans} use: pass --overwrite to drop them (re-add labels afterwards), or keep the old "
                    "--max-gap"
                )
        steps.append(f"--pairs --max-gap {max_gap_days:g}")
    if window is not None:
        layers.update(sar.ratio_layers(ds, window))
        steps.append(f"--ratio --summer {window[0]}/{window[1]}")
    replace_orbits = False
    if event_date is not None:
        key = orbit_key or schema.RELATIVE_ORBIT
        means = sar.event_means(ds, event_date, k, key)
        layers.update(means)
        orbit_coords = {schema.ORBIT: means[schema.VV_BEFORE][schema.ORBIT]}
        new_coords.update(orbit_coords)
        replace_orbits = not _same_coords(ds, orbit_coords, schema.ORBIT)
        steps.append(f"--event-date {event_date} --k {k} --orbit-key {key}")
    if terrain or par:
        dem = ds[schema.DEM]
        slope = terrain_layers.slope(dem)
        release = terrain_layers.release_mask(slope, release_min, release_max)
        if terrain:
            layers[schema.SLOPE] = slope
            layers[schema.ASPECT] = terrain_layers.aspect(dem)
            layers[schema.CURVATURE] = terrain_layers.curvature(dem)
            layers[schema.RELEASE] = release
            steps.append(f"--terrain --release-min {release_min:g} --release-max {release_max:g}")
        if par:
            layers[schema.PAR] = potential_angle_of_reach(dem, release, par_radius_m)
            steps.append(
                f"--par --par-radius {par_radius_m:g}"
                + ("" if terrain else f" --release-min {release_min:g} --release-max {release_max:g}")
            )
    if not layers:
        raise InputError("nothing to compute: every layer is switched off (drop a --no-... option)")

    with _dask.scheduler(scheduler) as client, _dask.progress("features", client):
        written = store.add_variables(
            cube,
            layers,
            overwrite=True,
            new_coords=new_coords or None,
            replace_coords=replace_pairs or replace_orbits,
            drop=orphans,
            storage_options=storage_options,
        )
    if orphans:
        log.warning("dropped %s: they were on the old pairs", ", ".join(orphans))
    if carried:
        log.info("kept %s on the new pairs (unknown on pairs added now)", ", ".join(carried))
    store.append_history(
        cube,
        "sarcube features " + " ".join(steps) + (f" (dropped {', '.join(orphans)})" if orphans else ""),
        storage_options,
    )
    return written


@click.command("features")
@click.argument("cube", type=click.Path())
@click.option(
    "--pairs/--no-pairs", default=True, show_default=True, help="VV/VH change of reference/activity pairs and VVVH."
)
@click.option(
    "--max-gap", "max_gap_days", type=float, default=None,
    help=f"Longest reference-to-activity gap of a pair, days [default: {sar.MAX_GAP_DAYS:g}, or the cube's "
    "same-orbit revisit when longer, e.g. ~30 for a monthly series].",
)
@click.option(
    "--terrain/--no-terrain",
    default=True,
    show_default=True,
    help="Slope, aspect, curvature and the release mask from the DEM.",
)
@click.option(
    "--release-min",
    type=float,
    default=RELEASE_MIN_DEG,
    show_default=True,
    help="Release areas: lowest slope, degrees.",
)
@click.option(
    "--release-max",
    type=float,
    default=RELEASE_MAX_DEG,
    show_default=True,
    help="Release areas: steepest slope, degrees.",
)
@click.option(
    "--par/--no-par", default=True, show_default=True, help="Potential angle of reach from the release areas."
)
@click.option(
    "--par-radius",
    "par_radius_m",
    type=float,
    default=PAR_RADIUS_M,
    show_default=True,
    help="PAR search radius, metres.",
)
@click.option("--ratio", is_flag=True, help="VV/VH relative to a snow-free summer median (needs --summer).")
@click.option("--summer", metavar="START/END", help="Snow-free reference window, e.g. 2017-07-01/2017-09-30.")
@click.option(
    "--event-date", metavar="DATE",
    help="Event date: per orbit, the mean of its --k acquisitions before and its --k after it "
    "(vv_before ... vh_after on dimension 'orbit'; orbits never mixed).",
)
@click.option(
    "--k", type=int, default=1, show_default=True,
    help="Acquisitions of each orbit averaged on each side of --event-date.",
)
@click.option(
    "--orbit-key", type=click.Choice(list(schema.ORBIT_KEYS)), default=None,
    help="What one orbit is for --event-date: relative_orbit (one viewing geometry; the default) "
    "or orbit_state (one pass direction).",
)
@click.option("--scheduler", metavar="ADDRESS", help="Dask scheduler address (default: local threads).")
@click.option("--overwrite", is_flag=True, help="Allow dropping labels/predictions left on replaced pairs.")
@click.option("--wait", "wait_s", type=float, default=0.0, show_default=True, metavar="SECONDS",
              help="When another process is writing the cube, wait up to SECONDS for it (0: stop at once).")
@storage_options_option
def command(cube: str, pairs: bool, max_gap_days: float | None, terrain: bool, release_min: float, release_max: float,
            par: bool,
            par_radius_m: float, ratio: bool, summer: str | None, event_date: str | None, k: int, orbit_key: str | None,
            scheduler: str | None, overwrite: bool, wait_s: float, storage_options: dict[str, Any] | None) -> None:
    """Compute model inputs for CUBE and write them into it."""
    written = features(
        cube, pairs=pairs, max_gap_days=max_gap_days, terrain=terrain, release_min=release_min, release_max=release_max,
        par=par, par_radius_m=par_radius_m, ratio=ratio, summer=summer, event_date=event_date, k=k,
        orbit_key=orbit_key, scheduler=scheduler, overwrite=overwrite, wait_s=wait_s, storage_options=storage_options,
    )
    click.echo(f"wrote {', '.join(written)} into {cube}")
