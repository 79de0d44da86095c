"""Packaging and citation: the wheel carries the licence, type hints and classifiers; CITATION.cff is valid CFF."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
#: the first setuptools that reads an SPDX ``license`` string and ``license-files`` (PEP 639)
SETUPTOOLS_PEP639 = (77, 0)


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_pyproject_declares_what_the_spdx_license_needs():
    meta = _pyproject()
    assert meta["build-system"]["requires"] == ["setuptools>=77"]
    assert meta["project"]["license"] == "Apache-2.0"
    assert meta["project"]["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text
    assert (ROOT / "sarcube" / "py.typed").exists()
    assert "Typing :: Typed" in meta["project"]["classifiers"]


def test_wheel_carries_licence_types_and_classifiers(tmp_path):
    import setuptools

    version = tuple(int(p) for p in setuptools.__version__.split(".")[:2])
    if version < SETUPTOOLS_PEP639:
        pytest.skip(f"setuptools {setuptools.__version__} here; the [test] extra installs >= 77")
    # build from a copy: an in-tree build would leave build/ in the checkout
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", "sarcube-demo", "tests", "benchmarks", "docs",
    ))
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels),
         str(source)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = wheels.glob("sarcube-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(zf.read(metadata_name).decode())
    assert "sarcube/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert metadata["License-Expression"] == "Apache-2.0"
    assert "Typing :: Typed" in metadata.get_all("Classifier")


def test_citation_cff_is_valid_and_cites_every_preset_paper():
    schema = json.loads((ROOT / "tests" / "data" / "citation-file-format-1.2.0.schema.json").read_text())
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    jsonschema.Draft7Validator(schema).validate(cff)
    from sarcube import __version__

    assert cff["version"] == __version__
    assert cff["license"] == _pyproject()["project"]["license"]
    notes = " ".join(ref.get("notes", "") for ref in cff["references"])
    from sarcube.pipelines.presets import available

    missing = [name for name in available() if name not in notes.replace(",", " ").split()]
    assert not missing, f"CITATION.cff cites no paper for presets {missing}"
