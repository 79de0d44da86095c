"""Whether progress bars show: on a terminal only, and never under ``sarcube -q``.

The CLI sets ``TQDM_DISABLE=1`` (tqdm's own switch, which every bar without an
explicit ``disable=`` follows) when run with ``-q`` or when stderr is not a
terminal (logs, CI, pipes: no ``\\r`` lines there). Bars that pass ``disable=``
themselves take it from :func:`bar_disable`, so they obey the same switch.
"""

from __future__ import annotations

import os

#: tqdm's environment switch (tqdm >= 4.66 reads ``TQDM_<argument>`` defaults)
DISABLE_ENV = "TQDM_DISABLE"


def bars_off() -> bool:
    """True when the environment turns progress bars off."""
    return os.environ.get(DISABLE_ENV, "").strip().lower() in ("1", "true", "yes")


def bar_disable(skip: bool = False) -> bool | None:
    """tqdm's ``disable=``: True when ``skip`` or bars are off, else None (tqdm shows it on a terminal only)."""
    return True if skip or bars_off() else None


__all__ = ["DISABLE_ENV", "bar_disable", "bars_off"]
