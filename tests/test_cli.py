"""The CLI frame: help, version, info, error handling."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sarcube import __version__
from sarcube.datacube import schema
from sarcube.pipelines import cli


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sarcube.pipelines.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_help_lists_commands(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "info" in out and "Usage" in out


def test_version(capsys):
    assert cli.main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out


def test_every_registered_command_imports():
    import importlib
    import importlib.util

    for name, module in cli.COMMANDS.items():
        full = f"sarcube.pipelines.{module}"
        if importlib.util.find_spec(full) is None:
            continue
        command = importlib.import_module(full).command
        assert command.name == name


def test_info_prints_contract(tiny_cube, capsys):
    assert cli.main(["info", str(tiny_cube)]) == 0
    out = capsys.readouterr().out
    for name in (schema.VV, schema.VH, schema.DEM):
        assert name in out
    assert "dB" in out and "EPSG:32632" in out
    assert "ascending" in out and "descending" in out
    assert "tiny test cube" in out


def test_info_json(tiny_cube, capsys):
    assert cli.main(["info", "--json", str(tiny_cube)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["dims"][schema.TIME] == 4
    assert {v["name"] for v in data["variables"]} == {schema.VV, schema.VH, schema.DEM}


def test_deliberate_error_is_one_line_without_traceback(tmp_path):
    proc = run_cli("info", str(tmp_path / "missing.zarr"))
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "does not exist" in lines[0]


@pytest.mark.parametrize("flag", ["-v", "-q"])
def test_verbosity_flags(tiny_cube, flag):
    proc = run_cli(flag, "info", str(tiny_cube))
    assert proc.returncode == 0, proc.stderr


def test_log_handler_strips_signed_urls_from_every_record(capsys):
    """At -vv third-party DEBUG lines (rasterio's child loggers too) reach the log without their signatures."""
    import logging

    cli.configure_logging(2)
    try:
        signed = "https://acct.blob.core.windows.net/c/vv.tif?st=2021-01-01&se=2021-01-02&sp=rl&sig=SECRET1%3D"
        logging.getLogger("rasterio._env").debug("GDAL opened /vsicurl/%s", signed)
        logging.getLogger("urllib3.connectionpool").debug("GET %s", {"url": "s3://b/k?X-Amz-Signature=SECRET2"})
        logging.getLogger("botocore").debug("presigned X-Amz-Credential=SECRET3&X-Amz-Signature=SECRET4 done")
        try:
            raise OSError(f"cannot read {signed}")
        except OSError:
            logging.getLogger("odc.loader").exception("read failed")
    finally:
        cli.configure_logging(0)
    err = capsys.readouterr().err
    assert "GDAL opened /vsicurl/https://acct.blob.core.windows.net/c/vv.tif" in err and "read failed" in err
    assert not [s for s in ("SECRET1", "SECRET2", "SECRET3", "SECRET4") if s in err], err
