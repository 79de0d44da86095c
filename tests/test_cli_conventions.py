"""The CLI behaves like the tools users know: search before build, quiet pipes, one root-cause error, exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import make_pair_cube
from sarcube.datacube import schema, store
from sarcube.datacube.retry import RETRY_BACKOFF_ENV
from sarcube.errors import EXIT_ABORTED, EXIT_BAD_INPUT, EXIT_DATA_ERROR
from sarcube.pipelines import cli
from sarcube.pipelines.search import search
from stac_server import write_test_catalog


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    return write_test_catalog(tmp_path_factory.mktemp("stac") / "catalog")


def _sarcube(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The console script in a subprocess, stdout/stderr piped (not a terminal)."""
    return subprocess.run(
        [sys.executable, "-c", "import sys; from sarcube.pipelines.cli import main; sys.exit(main())", *args],
        capture_output=True, text=True, env={**os.environ, RETRY_BACKOFF_ENV: "0", **(env or {})}, timeout=300,
    )


def _bbox(tc) -> str:
    return ",".join(str(v) for v in tc.aoi)


def test_search_lists_the_build_time_steps_without_reading_any_asset(catalog, tmp_path, capsys):
    bare = tmp_path / "catalog"
    shutil.copytree(catalog.root, bare)
    for tif in bare.rglob("*.tif"):
        tif.unlink()  # metadata only: a search must not need the assets
    result = search(catalog.aoi, catalog.start, catalog.end, catalog=str(bare))
    assert [a[schema.TIME] for a in result.acquisitions] == [
        "2021-01-03T05:30:00Z",
        "2021-01-06T17:20:00Z",
        "2021-01-09T05:30:00Z",
        "2021-01-15T05:30:00Z",
        "2021-01-18T17:20:00Z",
    ]
    assert result.acquisitions[0]["items"] == ["S1_20210103_DES_066_north", "S1_20210103_DES_066_south"]
    assert {a[schema.RELATIVE_ORBIT] for a in result.acquisitions} == {15, 66} and len(result.dem_items) == 1
    base = ["search", "--aoi", _bbox(catalog), "--start", catalog.start, "--end", catalog.end, "--catalog", str(bare)]
    assert cli.main([*base, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["acquisitions"] == result.acquisitions and printed["grid"]["crs"] == "EPSG:32632"
    assert cli.main([*base, "--orbit", schema.ORBIT_ASCENDING]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("time (UTC)") and len(table) == 1 + 2 + 1  # header, two ascending passes, summary


def test_piped_build_has_no_progress_bars_warnings_or_carriage_returns(catalog, tmp_path):
    out = tmp_path / "cube.zarr"
    run = _sarcube("build", "--aoi", _bbox(catalog), "--start", catalog.start, "--end", catalog.end,
                   "--catalog", str(catalog.root), "--out", str(out))
    assert run.returncode == 0, run.stderr
    assert "\r" not in run.stderr and "it/s" not in run.stderr and "step/s" not in run.stderr
    assert "nanoseconds" not in run.stderr and "Warning" not in run.stderr, run.stderr
    assert run.stdout.strip() == f"wrote {out}"
    times = schema.open_cube(out)[schema.TIME].values
    assert [str(np.datetime_as_string(t, unit="s")) + "Z" for t in times] == [
        a[schema.TIME] for a in search(catalog.aoi, catalog.start, catalog.end, catalog=str(catalog.root)).acquisitions
    ]


def test_failed_read_ends_with_one_error_line_carrying_the_root_cause_and_no_third_party_noise(catalog, tmp_path):
    broken = tmp_path / "catalog"
    shutil.copytree(catalog.root, broken)
    (broken / "sentinel-1-rtc" / "S1_20210115_DES_066_full" / "vv.tif").write_bytes(b"truncated download")
    run = _sarcube("-q", "build", "--aoi", _bbox(catalog), "--start", catalog.start, "--end", catalog.end,
                   "--catalog", str(broken), "--out", str(tmp_path / "cube.zarr"))
    assert run.returncode == EXIT_DATA_ERROR
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr  # -q: the error only; no odc.loader or rasterio lines
    assert lines[0].startswith("Error: asset 'vv' of STAC item 'S1_20210115_DES_066_full'")
    assert "not recognized as being in a supported file format" in lines[0]  # GDAL's own words, the root cause


def test_root_cause_is_appended_when_the_message_lacks_it():
    from sarcube.errors import CatalogError

    try:
        try:
            raise OSError("could not resolve host: example.invalid")
        except OSError as err:
            raise CatalogError("cannot open catalog 'https://example.invalid/stac'") from err
    except CatalogError as err:
        line = cli.error_line(err)
    assert (
        line
        == "Error: cannot open catalog 'https://example.invalid/stac' (cause: OSError: could not resolve host: "
           "example.invalid)"
    )


def test_exit_codes_are_the_documented_ones(tmp_path, capsys, monkeypatch):
    cube = tmp_path / "cube.zarr"
    store.write_cube(make_pair_cube(), cube)
    assert cli.main(["export", str(cube), "--pred", "nope", "--out", str(tmp_path / "d.gpkg")]) == EXIT_BAD_INPUT
    assert cli.main(["export-raster", str(cube), "--var", "nope", "--out", str(tmp_path / "d.tif")]) == EXIT_BAD_INPUT
    assert cli.main(["info", str(tmp_path / "missing.zarr")]) == EXIT_BAD_INPUT
    assert cli.main(["export", str(cube), "--no-such-option"]) == EXIT_BAD_INPUT
    assert cli.main(["evaluate", str(cube), "--pred", "nope"]) == EXIT_BAD_INPUT
    capsys.readouterr()
    from sarcube.pipelines import info

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(info, "info", interrupted)
    assert cli.main(["info", str(cube)]) == EXIT_ABORTED
    assert capsys.readouterr().err.strip() == "Aborted."
