"""The newest GDAL this machine has, driven through its C API (ctypes): the library inside the pyogrio wheel.

No GDAL Python bindings install from the package registries here (PyPI's
``gdal`` is a source package needing a matching libgdal-dev; Debian's is
3.6, too old for Zarr v3). pyogrio's wheel bundles a full libgdal (3.12 at
the time of writing), so the tests call ``GDALInfo`` on it, exactly what
``gdalinfo -json`` of that version prints.
"""

from __future__ import annotations

import ctypes
import glob
import json
from pathlib import Path

_OPEN_RASTER = 0x02


def _library() -> ctypes.CDLL | None:
    try:
        import pyogrio
    except ImportError:
        return None
    found = sorted(glob.glob(str(Path(pyogrio.__file__).parent.parent / "pyogrio.libs" / "libgdal*.so*")))
    if not found:
        return None
    lib = ctypes.CDLL(found[0])
    lib.GDALAllRegister()
    lib.GDALVersionInfo.restype = ctypes.c_char_p
    lib.GDALOpenEx.restype = ctypes.c_void_p
    lib.GDALOpenEx.argtypes = [ctypes.c_char_p, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.GDALInfoOptionsNew.restype = ctypes.c_void_p
    lib.GDALInfoOptionsNew.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.GDALInfo.restype = ctypes.c_void_p
    lib.GDALInfo.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.GDALClose.argtypes = [ctypes.c_void_p]
    lib.CPLGetLastErrorMsg.restype = ctypes.c_char_p
    lib.CPLErrorReset.restype = None
    return lib


LIB = _library()


def version() -> str:
    """GDAL's release name, e.g. ``3.12.4`` (empty when pyogrio's GDAL is absent)."""
    return LIB.GDALVersionInfo(b"RELEASE_NAME").decode() if LIB is not None else ""


def gdalinfo(name: str, *args: str) -> dict:
    """``gdalinfo -json ARGS NAME`` from the bundled GDAL; raises OSError with GDAL's message when it cannot open."""
    LIB.CPLErrorReset()
    handle = LIB.GDALOpenEx(name.encode(), _OPEN_RASTER, None, None, None)
    if not handle:
        raise OSError(f"GDAL {version()} cannot open {name}: {LIB.CPLGetLastErrorMsg().decode()}")
    try:
        argv = (ctypes.c_char_p * (len(args) + 2))(b"-json", *(a.encode() for a in args), None)
        text = LIB.GDALInfo(handle, LIB.GDALInfoOptionsNew(argv, None))
        return json.loads(ctypes.string_at(text).decode())
    finally:
        LIB.GDALClose(handle)
