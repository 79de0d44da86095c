"""``sarcube info CUBE``: what a cube holds, in words a person reads."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from sarcube.datacube import schema, zarrio
from sarcube.pipelines._storage import storage_options_option


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def info(cube: str | Path, *, as_json: bool = False, storage_options: Mapping[str, Any] | None = None) -> str:
    """Describe a cube: dims, variables with units, time range, pairs, CRS, size, provenance."""
    ds = schema.open_cube(cube, storage_options=storage_options, allow_unfinished=True)
    s = schema.summarize(ds)
    pending = schema.pending_steps(ds)
    size = zarrio.size_on_disk(cube, storage_options)
    if as_json:
        return json.dumps(
            {
                "path": str(cube),
                "dims": s.dims,
                "variables": [
                    dict(zip(("name", "dims", "dtype", "units", "long_name"), v, strict=True)) for v in s.variables
                ],
                "time_range": s.time_range,
                "acquisitions": s.acquisitions,
                "pairs": s.pairs,
                "crs": s.crs,
                "resolution_m": s.resolution,
                "bounds": s.bounds,
                "size_bytes": size,
                "unfinished_steps": pending,
                "attrs": {k: v for k, v in s.attrs.items() if k != schema.ATTR_STAC_ITEMS},
            },
            indent=2,
            default=str,
        )
    lines = [f"cube      {cube}"]
    if pending is not None:
        lines.append(f"status    unfinished: rerun the same build command ({len(pending)} step(s) not written)")
    lines.append("dims      " + ", ".join(f"{k}={v}" for k, v in s.dims.items()))
    lines.append(f"crs       {s.crs}   resolution {s.resolution[0]:g} x {s.resolution[1]:g} m")
    lines.append("bounds    " + ", ".join(f"{b:.1f}" for b in s.bounds))
    lines.append(f"size      {_human_bytes(size)} on disk")
    if s.time_range:
        lines.append(f"time      {s.time_range[0]} .. {s.time_range[1]} ({len(s.acquisitions)} acquisitions)")
    lines.append("")
    lines.append("variables")
    width = max((len(v[0]) for v in s.variables), default=4)
    for name, dims, dtype, units, long_name in s.variables:
        lines.append(f"  {name:<{width}}  {'(' + ', '.join(dims) + ')':<16} {dtype:<8} {units:<9} {long_name}")
    if s.acquisitions:
        lines.append("")
        lines.append("acquisitions")
        unwritten = set(pending or ())  # build's step keys are the acquisition times, ISO seconds
        for row in s.acquisitions:
            mark = "  unfinished" if row[schema.TIME] in unwritten else ""
            orbit = f"{row.get(schema.ORBIT_STATE, '')!s:<11} orbit {row.get(schema.RELATIVE_ORBIT, '')}"
            lines.append(f"  {row[schema.TIME]}  {row.get(schema.PLATFORM, '')!s:<12} {orbit}{mark}")
    if s.pairs:
        lines.append("")
        lines.append("pairs (reference -> activity)")
        for row in s.pairs:
            lines.append(
                f"  {row[schema.PAIR]:>3}  {row.get(schema.REFERENCE_TIME, '')} -> {row.get(schema.ACTIVITY_TIME, '')} "
                f" orbit {row.get(schema.PAIR_RELATIVE_ORBIT, '')}"
            )
    lines.append("")
    lines.append("provenance")
    for key in (
        schema.ATTR_TITLE,
        schema.ATTR_VERSION,
        schema.ATTR_CATALOG,
        schema.ATTR_COLLECTIONS,
        schema.ATTR_START,
        schema.ATTR_END,
        schema.ATTR_CREATED,
    ):
        if key in s.attrs:
            lines.append(f"  {key:<16} {s.attrs[key]}")
    items = schema.decode_json_attr(ds, schema.ATTR_STAC_ITEMS, default=[])
    if items:
        lines.append(f"  {schema.ATTR_STAC_ITEMS:<16} {len(items)} items")
    history = s.attrs.get(schema.ATTR_HISTORY, "")
    if history:
        lines.append("  history")
        lines.extend(f"    {h}" for h in str(history).splitlines())
    return "\n".join(lines)


@click.command("info")
@click.argument("cube", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of text.")
@storage_options_option
def command(cube: str, as_json: bool, storage_options: dict[str, Any] | None) -> None:
    """Describe CUBE: dims, variables with units, acquisitions, pairs, CRS, size, provenance."""
    click.echo(info(cube, as_json=as_json, storage_options=storage_options))
