"""OpenMP workers sleep when idle and torch uses the cores this process may run on (issue #18)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sarcube.errors import InputError
from sarcube.pipelines.cli import main
from sarcube.threads import available_cores, set_threads

_PROBE = "import os, sarcube, torch; print(os.environ['OMP_WAIT_POLICY'], torch.get_num_threads())"


def _probe(**env: str) -> list[str]:
    # a fresh user's environment: no thread settings (dask's worker nannies, for one, export *_NUM_THREADS=1
    # into the test process)
    clean = {k: v for k, v in os.environ.items() if not (k.startswith("OMP_") or k.endswith("_NUM_THREADS"))}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], env={**clean, **env}, capture_output=True, text=True, check=True
    )
    return out.stdout.split()


def test_import_sets_passive_waiting_and_affinity_threads_unless_the_user_chose():
    assert _probe() == ["PASSIVE", str(len(os.sched_getaffinity(0)))]
    assert _probe(OMP_WAIT_POLICY="ACTIVE", OMP_NUM_THREADS="1") == ["ACTIVE", "1"]


def test_threads_option_sizes_torch_and_refuses_zero(capsys):
    import torch

    before = torch.get_num_threads()
    try:
        assert main(["--threads", "1", "info", "--help"]) == 0
        assert torch.get_num_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
        assert main(["--threads", "0", "info", "--help"]) != 0
        assert "--threads 0" in capsys.readouterr().err
        with pytest.raises(InputError):
            set_threads(-2)
    finally:
        set_threads(before)
    assert available_cores() >= 1


def test_freed_chunk_buffers_leave_the_process_unless_the_environment_chooses(monkeypatch):
    """sarcube.malloc: glibc's mmap threshold fixed (the CLI's default), the user's MALLOC_MMAP_THRESHOLD_ wins."""
    import platform

    from sarcube import malloc

    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert malloc.return_freed_memory() is False
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    assert malloc.return_freed_memory() is (platform.libc_ver()[0] == "glibc")
