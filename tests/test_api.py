"""The public faces: every name a package's __all__ promises resolves."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("package", ["sarcube.datacube", "sarcube.models"])
def test_all_names_resolve(package):
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"


def test_datacube_never_imports_torch():
    import subprocess
    import sys

    code = "import sys, sarcube.datacube as d; [getattr(d, n) for n in d.__all__]; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False", "sarcube.datacube imported torch"
