"""CPU threads: how many this process may use, and OpenMP workers that sleep when idle.

torch's OpenMP workers busy-wait between parallel regions by default; on a
machine shared with other work that spinning takes the cores the work needs
(issue #18: predict 262 s wall by default vs 35 s with passive waiting, same
output). :func:`prepare` sets ``OMP_WAIT_POLICY=PASSIVE`` and sizes
``OMP_NUM_THREADS`` to the cores this process may run on
(``os.sched_getaffinity``, not the machine's count) unless the user set them,
and must run before torch loads: ``sarcube/__init__.py`` calls it, so every
``import sarcube...`` does. :func:`set_threads` is the CLI's ``--threads``.
"""

from __future__ import annotations

import os
import sys

#: OpenMP's idle policy: PASSIVE workers sleep instead of spinning between parallel regions
WAIT_POLICY = "PASSIVE"


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity; the machine's count where that is unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def prepare() -> None:
    """Passive OpenMP waiting and threads = available cores, unless the user chose; before torch loads."""
    if "torch" in sys.modules:  # too late for OpenMP's environment; set_threads still sizes the pool
        return
    os.environ.setdefault("OMP_WAIT_POLICY", WAIT_POLICY)
    os.environ.setdefault("OMP_NUM_THREADS", str(available_cores()))


def set_threads(threads: int) -> None:
    """Use ``threads`` CPU threads for torch's intra-op pool (and OpenMP libraries loaded later)."""
    if threads < 1:
        from sarcube.errors import InputError

        raise InputError(f"--threads {threads}: give a positive number of CPU threads (default: {available_cores()})")
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
