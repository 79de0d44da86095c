"""A demo workdir: the methods it compares, its layout, the settings it is made from, its resume state.

``demo-state.json`` records the settings and each finished stage (with its
timing and outputs); :class:`DemoState` refuses a workdir made with other
settings, or a non-empty folder the demo did not write.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sarcube.errors import CubeExistsError

DEFAULT_WORKDIR = "sarcube-demo"
DEFAULT_SIZE = 1024
DEFAULT_PROFILE = "cpu-demo"
FCN_PRESET = "avalanche-fcn"
BASELINE_PRESET = "baseline"
METHODS = (FCN_PRESET, BASELINE_PRESET)

STATE_FILE = "demo-state.json"
CATALOG_DIR = "catalog"
CUBE_DIR = "cube.zarr"
RUNS_DIR = "runs"
EVALUATION_FILE = "evaluation.json"
RESULTS_FILE = "results.md"
QUICKLOOK_DIR = "quicklooks"
REPORT_DIR = "report"
ARCHIVE_DIR = "archive"
DEMO_CREATOR = "sarcube, demo"
#: 2: held-out windows over both orbits with purge gaps (workdirs of version 1 used leaking pair splits)
STATE_VERSION = 2


@dataclass(frozen=True)
class DemoSettings:
    """What a demo workdir is made from; a resumed run must match it."""

    seed: int = 0
    #: pixels per side of the synthetic scene (20 m pixels)
    size: int = DEFAULT_SIZE
    #: acquisitions in all (both orbits); None: the scene's default (20)
    dates: int | None = None
    #: training preset profile of both methods
    profile: str = DEFAULT_PROFILE
    #: extra ``section.field=value`` preset overrides for the FCN
    overrides: tuple[str, ...] = ()


class DemoState:
    """``demo-state.json``: settings and finished stages of a workdir."""

    def __init__(self, workdir: Path, settings: DemoSettings, overwrite: bool):
        self.path = workdir / STATE_FILE
        wanted = settings_json(settings)
        if overwrite and self.path.exists():
            for child in workdir.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        if self.path.exists():
            saved = json.loads(self.path.read_text())
            if saved.get("settings") != wanted or saved.get("version") != STATE_VERSION:
                raise CubeExistsError(
                    f"workdir {str(workdir)!r} holds a demo made with other settings or an older sarcube "
                    f"({saved.get('settings')}, version {saved.get('version')}): "
                    "rerun with those, pass --overwrite to start afresh, or choose another --workdir"
                )
            self.data = saved
        elif workdir.exists() and any(workdir.iterdir()):
            raise CubeExistsError(
                f"workdir {str(workdir)!r} is not empty and holds no {STATE_FILE}: choose another --workdir (the demo "
                "never deletes what it did not write)"
            )
        else:
            workdir.mkdir(parents=True, exist_ok=True)
            self.data = {"version": STATE_VERSION, "settings": wanted, "stages": {}}
            self._save()

    def done(self, stage: str) -> dict[str, Any] | None:
        return self.data["stages"].get(stage)

    def finish(self, stage: str, outputs: dict[str, Any], wall: float, cpu: float) -> None:
        self.data["stages"][stage] = {"outputs": outputs, "seconds": round(wall, 2), "cpu_seconds": round(cpu, 2)}
        self._save()

    def _save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str) + "\n")
        tmp.replace(self.path)


def settings_json(settings: DemoSettings) -> dict[str, Any]:
    """``settings`` as ``demo-state.json`` records them (the overrides as a list)."""
    d = asdict(settings)
    d["overrides"] = list(settings.overrides)
    return d


__all__ = ["DemoSettings", "DemoState", "settings_json"]
