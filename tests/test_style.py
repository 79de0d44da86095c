"""House habit: the whole repo (packages, tests, benchmarks, notebook) is ruff clean under pyproject's [tool.ruff].

That config enforces import order (sarcube.* first-party) and 120-character lines (E501).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_ruff_clean():
    # the ruff of the test extra (next to this interpreter) first: another ruff on PATH may apply other rules
    venv_ruff = Path(sys.executable).with_name("ruff")
    ruff = str(venv_ruff) if venv_ruff.exists() else shutil.which("ruff") or str(venv_ruff)
    if not Path(ruff).exists():
        pytest.skip("ruff not installed (it comes with the test extra)")
    proc = subprocess.run([ruff, "check", "--no-cache", str(REPO)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
