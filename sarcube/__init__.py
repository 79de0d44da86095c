"""sarcube: Sentinel-1 SAR + terrain datacubes for hazard mapping.

The work lives in three sub-packages, installed from the repository's
top-level folders:

- :mod:`sarcube.datacube`: the cube contract, STAC search, loading, features,
  chips, zarr I/O and archives (no torch);
- :mod:`sarcube.models`: torch networks, losses, metrics and the baseline
  detector (tensors only, no files);
- :mod:`sarcube.pipelines`: the steps users run and the ``sarcube`` CLI.
"""

from sarcube import threads as _threads

__version__ = "0.1.0"

# Before anything below sarcube loads torch: idle OpenMP workers sleep, and
# there are as many as this process has cores (sarcube.threads).
_threads.prepare()

__all__ = ["__version__"]
