"""The cube: contract, STAC search, loading, features, chips, zarr I/O, archives.

No torch here (see ``shared/STYLE.md``): everything returns numpy, dask or
xarray objects.
"""

from sarcube.datacube import schema
from sarcube.datacube.schema import open_cube, validate_cube
from sarcube.datacube.store import add_variables, write_cube

__all__ = ["add_variables", "open_cube", "schema", "validate_cube", "write_cube"]
