"""Cloud-Optimised GeoTIFFs: one writer, fixed creation options, the same bytes for the same array.

The demo scene writes its rasters here, the tests' fixture catalog too, so
every COG the project makes is written one way.
"""

from __future__ import annotations

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


def write_cog(path: Path, data: np.ndarray, transform: Affine, crs: str, nodata: float | None) -> None:
    """Write ``data`` (y, x) as a single-band float32 COG at ``path`` (folders created).

    ``transform`` and ``crs`` (e.g. "EPSG:32632") georeference it; ``nodata``
    is recorded in the file, or none when None.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path,
        "w",
        width=data.shape[1],
        height=data.shape[0],
        count=1,
        dtype="float32",
        crs=crs,
        transform=transform,
        nodata=nodata,
        **COG_OPTIONS,
    ) as dst:
        dst.write(np.ascontiguousarray(data, dtype=np.float32), 1)
