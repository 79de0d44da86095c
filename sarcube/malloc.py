"""Freed arrays go back to the system: a fixed mmap threshold for glibc's malloc.

glibc serves an allocation above its mmap threshold (128 KiB at start) with a
mapping of its own, returned to the system when freed; but each time such a
block is freed it raises the threshold to that block's size (up to 32 MiB), so
the next chunk-sized arrays come from the heap arenas, and what is freed there
stays in the process. A verb that streams chunk after chunk (build, features,
predict) then keeps the high-water mark of every arena its threads touched:
peak RSS grew with the scene although the live arrays did not (issue #18:
build on a 2048 px scene 399 -> 307 MiB with a fixed threshold, same cube).
:func:`return_freed_memory` fixes the threshold, which also turns the dynamic
raising off; the CLI calls it, a library user may. ``MALLOC_MMAP_THRESHOLD_``
in the environment (glibc's own knob) wins; elsewhere than glibc nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

#: bytes: arrays at least this large get their own mapping, unmapped when freed
MMAP_THRESHOLD = 256 * 1024
#: glibc's mallopt parameter number of M_MMAP_THRESHOLD (malloc.h)
_M_MMAP_THRESHOLD = -3


def return_freed_memory(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes; True when set (glibc, not chosen in the environment)."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, int(threshold)))
