"""Cloud-Optimised GeoTIFFs: one writer, fixed creation options, the same bytes for the same array.

The demo scene writes its rasters here, the tests' fixture catalog too, and
``sarcube export-raster`` its layers for GIS users, so every COG the project
makes is written one way.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

#: the STAC media type of what :func:`write_cog` writes
COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
#: fixed COG creation options (no overviews: a 1024-pixel scene is two blocks wide,
#: and overviews of speckled floats would add a third to the size); no predictor:
#: the floating-point predictor defeats the dB quantisation, plain ZSTD keeps it
COG_OPTIONS = {
    "driver": "COG",
    "compress": "ZSTD",
    "level": 9,
    "predictor": "NO",
    "blocksize": 512,
    "overviews": "NONE",
    "bigtiff": "NO",
    "num_threads": 1,
}


def write_cog(
    path: Path,
    data: np.ndarray,
    transform: Affine,
    crs: str,
    nodata: float | None,
    *,
    description: str | None = None,
    units: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> None:
    """Write ``data`` (y, x) as a single-band COG at ``path`` (folders created).

    float data is written as float32, integer masks keep their dtype (e.g.
    uint8). ``transform`` and ``crs`` (e.g. "EPSG:32632") georeference it;
    ``nodata`` is recorded in the file, or none when None. ``description``
    names the band, ``units`` its unit, ``tags`` go into the dataset's GDAL
    metadata (dates, variable attrs) for GIS users.
    """
    array = np.asarray(data)
    dtype = array.dtype if array.dtype.kind in "iub" else np.dtype("float32")
    if dtype.kind == "b":
        dtype = np.dtype("uint8")
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path,
        "w",
        width=array.shape[1],
        height=array.shape[0],
        count=1,
        dtype=dtype.name,
        crs=crs,
        transform=transform,
        nodata=nodata,
        **COG_OPTIONS,
    ) as dst:
        dst.write(np.ascontiguousarray(array, dtype=dtype), 1)
        if description:
            dst.set_band_description(1, description)
        if units:
            dst.set_band_unit(1, units)
        if tags:
            dst.update_tags(**{str(k): str(v) for k, v in tags.items()})


__all__ = ["COG_MEDIA_TYPE", "COG_OPTIONS", "write_cog"]
