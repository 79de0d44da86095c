"""The embedded demo scene: a synthetic alpine valley written as a local STAC catalog of COGs.

:func:`write_demo_catalog` writes it (shaped like Planetary Computer's
``sentinel-1-rtc`` and ``cop-dem-glo-30``, so ``sarcube build`` reads it
through the same code); :func:`read_demo_manifest` reads back what it holds.

Modules: ``scene`` (the orchestration: DEM tile, acquisitions, catalog),
``terrain`` (procedural DEM, radar geometry), ``sar`` (orbits, dates, land
cover, correlated speckle), ``snow`` (weather, wet snow and refreeze, storms,
wind drifts, bright patches), ``events`` (avalanche corridors and debris,
landslide scars, glaciers as geometry, with the papers' numbers),
``hazards`` (the hazard's labels and signal on the grid), ``backscatter``
(each date's noise-free gamma0), ``stac`` (the pystac items and
collections), ``manifest`` (``sarcube-demo.json``).
"""

from __future__ import annotations

from sarcube.datacube.synthetic.hazards import HAZARDS
from sarcube.datacube.synthetic.manifest import DemoManifest, read_demo_manifest
from sarcube.datacube.synthetic.scene import write_demo_catalog

__all__ = ["HAZARDS", "DemoManifest", "read_demo_manifest", "write_demo_catalog"]
