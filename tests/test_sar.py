"""SAR change pairs, dB differences and VVVH, snow-free ratios, event means: values on hand-made cubes."""

from __future__ import annotations

import json

import dask.array as da
import numpy as np
import pytest
from conftest import TINY_CRS
from sarcube.datacube import sar, schema

from sarcube.errors import InputError

T0 = np.datetime64("2020-01-01T05:00", "ns")


def day(n: float) -> np.datetime64:
    return T0 + np.timedelta64(int(round(n * 86400)), "s")


def make_cube(days, orbits, vv, vh=None, ny: int = 3, nx: int = 4):
    """A contract cube whose acquisition t has vv[t]/vh[t] (scalars broadcast, or (ny, nx) arrays)."""
    nt = len(days)
    ds = schema.empty_cube(600_010.0 + 20.0 * np.arange(nx), 5_099_990.0 - 20.0 * np.arange(ny), TINY_CRS)
    ds = ds.assign_coords(
        schema.time_coords([day(d) for d in days], ["SENTINEL-1A"] * nt, [schema.ORBIT_ASCENDING] * nt, orbits, [f"i{i}" for i in range(nt)])
    )
    vh = vv if vh is None else vh
    tyx = (schema.TIME, schema.Y, schema.X)
    for name, values in ((schema.VV, vv), (schema.VH, vh)):
        data = np.broadcast_to(np.asarray(values, dtype="float32").reshape(nt, *([1, 1] if np.ndim(values) == 1 else [ny, nx])), (nt, ny, nx))
        ds[name] = schema.make_variable(name, data.copy(), tyx)
    return ds


def test_pairs_stay_within_one_orbit_and_the_max_gap():
    # orbit 15 at days 0, 6, 12, 30; orbit 66 at 3, 9, 21 (gap 12, a few seconds late)
    days = [0, 3, 6, 9, 12, 21 + 30 / 86400, 30]
    orbits = [15, 66, 15, 66, 15, 66, 15]
    ds = make_cube(days, orbits, np.arange(len(days)))
    pairs = sar.make_pairs(ds, max_gap_days=12)
    got = list(zip(pairs[schema.REFERENCE_TIME].values, pairs[schema.ACTIVITY_TIME].values, pairs[schema.PAIR_RELATIVE_ORBIT].values, strict=True))
    assert got == [
        (day(0), day(6), 15),
        (day(3), day(9), 66),
        (day(6), day(12), 15),
        (day(9), day(21 + 30 / 86400), 66),
    ]  # 12 -> 30 (18 days) is no pair; sorted by activity time
    assert pairs[schema.PAIR].values.tolist() == [0, 1, 2, 3]
    six = sar.make_pairs(ds, max_gap_days=6)
    assert six[schema.PAIR_RELATIVE_ORBIT].values.tolist() == [15, 66, 15]
    with pytest.raises(InputError, match="--max-gap"):
        sar.make_pairs(ds, max_gap_days=5)
    with pytest.raises(InputError, match="positive"):
        sar.make_pairs(ds, max_gap_days=0)


def test_pairs_unsorted_time_axis():
    ds = make_cube([6, 0, 12], [15, 15, 15], [1, 2, 3])
    pairs = sar.make_pairs(ds)
    np.testing.assert_array_equal(pairs[schema.REFERENCE_TIME].values, [day(0), day(6)])
    np.testing.assert_array_equal(pairs[schema.ACTIVITY_TIME].values, [day(6), day(12)])


def test_change_layers_clip_then_diff_and_vvvh():
    # VV: -30 (clipped to -25) -> -10; VH: -8 -> -3 (clipped to -5); pixel (0, 0) NaN at the activity
    vv = np.array([-30.0, -10.0])[:, None, None] * np.ones((1, 3, 4))
    vh = np.array([-8.0, -3.0])[:, None, None] * np.ones((1, 3, 4))
    vv[1, 0, 0] = np.nan
    ds = make_cube([0, 6], [15, 15], vv, vh)
    pairs = sar.make_pairs(ds)
    out = sar.change_layers(ds, pairs)
    assert set(out) == {schema.VV_DIFF, schema.VH_DIFF, schema.VVVH}
    vv_diff = out[schema.VV_DIFF]
    assert vv_diff.dims == (schema.PAIR, schema.Y, schema.X)
    assert vv_diff.dtype == np.float32 and vv_diff.attrs["units"] == "dB"
    np.testing.assert_allclose(vv_diff.values[0, 1:, :], 15.0)
    np.testing.assert_allclose(out[schema.VH_DIFF].values, 3.0)
    expected = ((15 + 20) / 40) ** 2 * ((3 + 20) / 40) ** 2
    np.testing.assert_allclose(out[schema.VVVH].values[0, 1:, :], expected, rtol=1e-6)
    assert np.isnan(vv_diff.values[0, 0, 0]) and np.isnan(out[schema.VVVH].values[0, 0, 0])
    params = json.loads(out[schema.VVVH].attrs[schema.ATTR_PARAMETERS])
    assert params["clip_db"] == [-25.0, -5.0] and params["rescale_db"] == [-20.0, 20.0]
    assert out[schema.VV_DIFF][schema.ACTIVITY_TIME].values[0] == day(6)


def test_vvvh_extremes_and_other_clip():
    ds = make_cube([0, 6, 12], [15, 15, 15], [-25.0, -5.0, -25.0], [-25.0, -5.0, -5.0])
    out = sar.change_layers(ds, sar.make_pairs(ds))
    np.testing.assert_allclose(out[schema.VVVH].values[:, 0, 0], [1.0, 0.0])  # +20/+20 -> 1; -20/0 -> 0
    other = sar.change_layers(ds, sar.make_pairs(ds), clip_db=(-20.0, -10.0))
    np.testing.assert_allclose(other[schema.VV_DIFF].values[:, 0, 0], [10.0, -10.0])
    with pytest.raises(InputError, match="low < high"):
        sar.change_layers(ds, sar.make_pairs(ds), clip_db=(-5.0, -25.0))


def test_change_layers_lazy_equals_eager():
    rng = np.random.default_rng(3)
    vv = rng.normal(-12, 6, (5, 3, 4))
    vh = rng.normal(-18, 6, (5, 3, 4))
    ds = make_cube([0, 3, 6, 9, 12], [15, 66, 15, 66, 15], vv, vh)
    pairs = sar.make_pairs(ds)
    eager = sar.change_layers(ds, pairs)
    lazy = sar.change_layers(ds.chunk({schema.TIME: 1, schema.Y: 2, schema.X: 2}), pairs)
    for name, var in lazy.items():
        assert isinstance(var.data, da.Array)
        assert var.data.chunks[0] == (1,) * 3  # one pair per chunk
        np.testing.assert_array_equal(var.values, eager[name].values)


def test_ratio_is_per_orbit_median_of_the_summer_window():
    # summer window = days 0..12: orbit 15 has 2, 4, 9 (median 4); orbit 66 has 7, 3 (median 5)
    days = [0, 3, 6, 9, 12, 60, 63]
    orbits = [15, 66, 15, 66, 15, 15, 66]
    vv = np.array([2.0, 7.0, 4.0, 3.0, 9.0, -3.0, -8.0])
    ds = make_cube(days, orbits, vv, vv * 2)
    out = sar.ratio_layers(ds.chunk({schema.TIME: 1}), ("2020-01-01", "2020-01-13"))
    ratio = out[schema.VV_RATIO]
    assert isinstance(ratio.data, da.Array)
    assert ratio.dims == (schema.TIME, schema.Y, schema.X)
    ref = np.where(np.array(orbits) == 15, 4.0, 5.0)
    np.testing.assert_allclose(ratio.values[:, 1, 2], vv - ref)
    np.testing.assert_allclose(out[schema.VH_RATIO].values[:, 0, 0], 2 * vv - 2 * ref)
    params = json.loads(ratio.attrs[schema.ATTR_PARAMETERS])
    # the END date includes its whole day: 2020-01-13T05:00 (day 12) is in
    assert params["summer"] == "2020-01-01/2020-01-13" and params["acquisitions_per_orbit"] == {"15": 3, "66": 2}
    assert (ratio[schema.RELATIVE_ORBIT].values == orbits).all()


def test_ratio_errors():
    ds = make_cube([0, 3, 6], [15, 66, 15], [1.0, 2.0, 3.0])
    with pytest.raises(InputError, match="relative orbit 66"):
        sar.ratio_layers(ds, ("2020-01-01", "2020-01-02"))
    with pytest.raises(InputError, match="malformed"):
        sar.parse_window("2020-07-01")
    with pytest.raises(InputError, match="not a date"):
        sar.parse_window("2020-07-01/soon")
    with pytest.raises(InputError, match="after END"):
        sar.parse_window("2020-09-01/2020-07-01")


def test_event_means_take_the_k_steps_right_before_and_after():
    days = [0, 3, 6, 9, 12, 15, 18]
    orbits = [15, 66] * 3 + [15]
    values = np.arange(7.0)  # acquisition t has value t
    ds = make_cube(days, orbits, values, -values).chunk({schema.TIME: 1})
    # event on 2020-01-10 (day 9, 00:00): before are days 0..6 (values 0..2), after days 9.. (values 3..)
    out = sar.event_means(ds, "2020-01-10", 2)
    np.testing.assert_allclose(out[schema.VV_BEFORE].values, (1.0 + 2.0) / 2)  # the last one before included
    np.testing.assert_allclose(out[schema.VV_AFTER].values, (3.0 + 4.0) / 2)
    np.testing.assert_allclose(out[schema.VH_BEFORE].values, -(1.0 + 2.0) / 2)
    np.testing.assert_allclose(out[schema.VH_AFTER].values, -(3.0 + 4.0) / 2)
    assert out[schema.VV_AFTER].dims == (schema.Y, schema.X)
    one = sar.event_means(ds, "2020-01-10T06:00", 1)  # after day 9's 05:00 pass
    np.testing.assert_allclose(one[schema.VV_BEFORE].values, 3.0)
    np.testing.assert_allclose(one[schema.VV_AFTER].values, 4.0)
    params = json.loads(out[schema.VV_BEFORE].attrs[schema.ATTR_PARAMETERS])
    assert params["k"] == 2 and len(params["before"]) == 2 and params["before"][-1].startswith("2020-01-07")
    with pytest.raises(InputError, match="3 acquisition\\(s\\) before"):
        sar.event_means(ds, "2020-01-10", 4)
    with pytest.raises(InputError, match="outside the cube"):
        sar.event_means(ds, "2021-06-01", 1)
    with pytest.raises(InputError, match="outside the cube"):
        sar.event_means(ds, "2019-12-01", 1)
    with pytest.raises(InputError, match="not a date"):
        sar.event_means(ds, "yesterday-ish", 1)
    with pytest.raises(InputError, match="positive"):
        sar.event_means(ds, "2020-01-10", 0)
