"""CF 1.10 compliance of a netCDF copy of the cube, checked by the IOOS compliance-checker."""

from __future__ import annotations

import pytest

from conftest import make_pair_cube
from sarcube.datacube import schema, store

runner = pytest.importorskip("compliance_checker.runner")


def _cf_report(path) -> str:
    runner.CheckSuite.load_all_available_checkers()
    report = path.with_suffix(".txt")
    runner.ComplianceChecker.run_checker(
        str(path), ["cf:1.10"], 0, "normal", output_filename=str(report), output_format="text"
    )
    return report.read_text()


def test_netcdf_copy_passes_cf_1_10_except_the_documented_db_unit(tmp_path):
    cube = tmp_path / "cube.zarr"
    store.write_cube(make_pair_cube(), cube)
    ds = schema.open_cube(cube)
    nc = tmp_path / "cube.nc"
    ds.to_netcdf(nc)
    report = _cf_report(nc)
    issues = [line[2:] for line in report.splitlines() if line.startswith("* ")]
    # dB is how every SAR tool labels backscatter; UDUNITS has no logarithmic units (see schema.names.UNIT_DB)
    db = [i for i in issues if '"dB" are not recognized by UDUNITS' in i]
    assert {i.split()[2].rstrip(",") for i in db} == {schema.VV, schema.VH, schema.VV_DIFF, schema.VH_DIFF}
    assert [i for i in issues if i not in db] == []


def test_the_checker_reports_what_the_contract_fixed(tmp_path):
    """Not a no-op: an untyped flag_values and a fill value on x come back as CF issues."""
    cube = tmp_path / "cube.zarr"
    store.write_cube(make_pair_cube(), cube)
    ds = schema.open_cube(cube)
    ds[schema.LABEL].attrs["flag_values"] = [0, 1, 255]
    ds[schema.X].encoding["_FillValue"] = float("nan")
    ds.to_netcdf(tmp_path / "bad.nc")
    report = _cf_report(tmp_path / "bad.nc")
    assert "flag_values" in report and "'x' must not have the _FillValue" in report
