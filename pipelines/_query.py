"""The catalog query a cube is built from, as CLI options: ``search`` and ``build`` take the same ones.

``sarcube search`` lists what ``sarcube build`` with the same arguments would
read, so both spell the area, dates, catalog, grid and orbit filter through
:func:`query_options` and cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from sarcube.datacube import schema
from sarcube.datacube.catalog import DEFAULT_CATALOG
from sarcube.datacube.grid import DEFAULT_RESOLUTION_M

_OPTIONS = (
    click.option("--aoi", required=True, help="W,S,E,N in degrees, or a GeoJSON polygon file."),
    click.option("--start", required=True, help="First date (YYYY-MM-DD, UTC, inclusive)."),
    click.option("--end", required=True, help="Last date (YYYY-MM-DD, UTC, inclusive)."),
    click.option(
        "--catalog",
        default=DEFAULT_CATALOG,
        show_default=True,
        help="planetary-computer, a STAC API URL, or a static catalog folder / catalog.json.",
    ),
    click.option(
        "--resolution", default=DEFAULT_RESOLUTION_M, show_default=True, type=float, help="Pixel size in metres."
    ),
    click.option("--crs", default="utm", show_default=True, help="utm (the AOI's zone) or EPSG:<code>."),
    click.option(
        "--orbit",
        type=click.Choice([schema.ORBIT_ASCENDING, schema.ORBIT_DESCENDING]),
        default=None,
        help="Only this orbit direction.",
    ),
    click.option("--relative-orbit", type=int, default=None, help="Only this relative orbit (track)."),
)


def query_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the query's options (``--aoi``, ``--start``, ``--end``, ``--catalog``, ``--resolution``, ``--crs``,
    ``--orbit``, ``--relative-orbit``) to a click command, in that order in its ``--help``."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


__all__ = ["query_options"]
