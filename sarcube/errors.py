"""Every error sarcube raises on purpose.

Each message names the input at fault and how to fix it, in one line: the CLI
prints it without a traceback and exits non-zero. Anything else that escapes
is a bug and keeps its traceback.

Exit codes of the ``sarcube`` command: 0 done; 1 a data or catalog error (the
cube, a catalog, an asset, a run or an archive is not what the step needs);
2 bad input (an argument, option or input file is wrong, including a variable
or prediction named on the command line that the cube does not have);
130 aborted (Ctrl-C).

Subclasses also derive from the matching builtin where natural, so
``except ValueError`` in user code keeps working.
"""

from __future__ import annotations

import errno
import os

#: exit codes of the ``sarcube`` command (see the module docstring)
EXIT_OK = 0
EXIT_DATA_ERROR = 1
EXIT_BAD_INPUT = 2
EXIT_ABORTED = 130


class SarcubeError(Exception):
    """Base class of all deliberate sarcube errors."""

    exit_code: int = EXIT_DATA_ERROR


class InputError(SarcubeError, ValueError):
    """A user-supplied argument or file is wrong (AOI, dates, options, files)."""

    exit_code = EXIT_BAD_INPUT


class CubeSchemaError(SarcubeError, ValueError):
    """A cube does not follow the contract in :mod:`sarcube.datacube.schema`."""


class MissingVariableError(CubeSchemaError, KeyError):
    """A step needs cube variables that are not there yet."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnknownVariableError(MissingVariableError, InputError):
    """A variable or prediction named by the user (``--pred``, ``--var``) is not in the cube: bad input."""

    exit_code = EXIT_BAD_INPUT
class UnfinishedCubeError(CubeSchemaError):
    """A build of the cube stopped before every acquisition was written."""


class CubeLockedError(SarcubeError):
    """Another process is writing the cube (see :mod:`sarcube.datacube.lock`)."""

    exit_code = 75  # EX_TEMPFAIL: try again later


class CubeExistsError(SarcubeError, FileExistsError):
    """The output exists and the command was not told to overwrite or append."""


class CatalogError(SarcubeError):
    """A STAC catalog cannot be opened, searched or understood."""


class NoItemsFoundError(CatalogError):
    """A STAC search matched nothing."""


class AssetReadError(CatalogError, OSError):
    """A STAC asset could not be read even after retries."""


class TrainingDataError(SarcubeError):
    """Chips or splits cannot be made from the cube (empty split, no positives)."""


class CheckpointError(SarcubeError):
    """A run directory or checkpoint is missing, corrupt or does not fit the cube."""


class PublishError(SarcubeError):
    """An archive cannot be written, verified or uploaded."""


class VerifyError(PublishError):
    """An archive fails its checksums or schema."""


class ZenodoError(PublishError):
    """The Zenodo API refused a request."""


#: errno of a file the user pointed at -> what is wrong and the fix
_OS_FIXES = {
    errno.EACCES: "permission denied: make it writable (or readable) for you, or choose another path",
    errno.EPERM: "operation not permitted: make it writable for you, or choose another path",
    errno.EROFS: "the file system is read-only: choose a path on a writable disk",
    errno.EEXIST: "it exists and is in the way (a file where a folder goes?): remove it or choose another path",
    errno.ENOTDIR: "a file stands where a folder is needed: choose another path",
    errno.EISDIR: "it is a folder where a file is needed: give a file name",
    errno.ENOSPC: "the disk is full: free space or choose another disk",
    errno.EDQUOT: "the disk quota is exceeded: free space or choose another disk",
    errno.ENAMETOOLONG: "the name is too long: choose a shorter path",
}


def os_error_line(err: OSError) -> str | None:
    """One line naming the file and the fix for an OS refusal about a user's path; None for anything else.

    A cleanup that fails while handling the first refusal (``rmtree`` names bare entries) hides it:
    the earliest refusal in the chain that names a full path is reported.
    """
    chain: list[OSError] = []
    seen: BaseException | None = err
    while isinstance(seen, OSError) and len(chain) < 16:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    known = [e for e in chain if e.errno in _OS_FIXES and e.filename]
    if not known:
        return None
    found = next((e for e in reversed(known) if os.path.isabs(str(e.filename))), known[0])
    name = str(found.filename).removesuffix(".lock")  # a cube's writer lock (beside it): name the cube
    store, sep, _ = name.partition(".zarr/")  # a file inside a cube: name the cube
    return f"cannot use {store + '.zarr' if sep else name!r}: {_OS_FIXES[found.errno]}"


__all__ = [
    "EXIT_ABORTED",
    "EXIT_BAD_INPUT",
    "EXIT_DATA_ERROR",
    "EXIT_OK",
    "AssetReadError",
    "CatalogError",
    "CheckpointError",
    "CubeExistsError",
    "CubeLockedError",
    "CubeSchemaError",
    "InputError",
    "MissingVariableError",
    "NoItemsFoundError",
    "PublishError",
    "SarcubeError",
    "TrainingDataError",
    "UnknownVariableError",
    "UnfinishedCubeError",
    "VerifyError",
    "ZenodoError",
    "os_error_line",
]
