"""SAR change pairs, dB differences and VVVH, snow-free ratios, per-orbit event means: values on hand-made cubes."""

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


def make_cube(days, orbits, vv, vh=None, ny: int = 3, nx: int = 4, states=None):
    """A contract cube whose acquisition t has vv[t]/vh[t] (scalars broadcast, or (ny, nx) arrays).

    ``states``: pass direction per acquisition (default: all ascending).
    """
    nt = len(days)
    states = [schema.ORBIT_ASCENDING] * nt if states is None else states
    ds = schema.empty_cube(600_010.0 + 20.0 * np.arange(nx), 5_099_990.0 - 20.0 * np.arange(ny), TINY_CRS)
    ds = ds.assign_coords(
        schema.time_coords([day(d) for d in days], ["SENTINEL-1A"] * nt, states, orbits, [f"i{i}" for i in range(nt)])
    )
    vh = vv if vh is None else vh
    tyx = (schema.TIME, schema.Y, schema.X)
    for name, values in ((schema.VV, vv), (schema.VH, vh)):
        data = np.broadcast_to(
            np.asarray(values, dtype="float32").reshape(nt, *([1, 1] if np.ndim(values) == 1 else [ny, nx])),
            (nt, ny, nx),
        )
        ds[name] = schema.make_variable(name, data.copy(), tyx)
    return ds


def test_pairs_stay_within_one_orbit_and_the_max_gap():
    # orbit 15 at days 0, 6, 12, 30; orbit 66 at 3, 9, 21 (gap 12, a few seconds late)
    days = [0, 3, 6, 9, 12, 21 + 30 / 86400, 30]
    orbits = [15, 66, 15, 66, 15, 66, 15]
    ds = make_cube(days, orbits, np.arange(len(days)))
    pairs = sar.make_pairs(ds, max_gap_days=12)
    got = list(
        zip(
            pairs[schema.REFERENCE_TIME].values,
            pairs[schema.ACTIVITY_TIME].values,
            pairs[schema.PAIR_RELATIVE_ORBIT].values,
            strict=True,
        )
    )
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


#: orbit 15 at days 0, 6, 12, 18, 24 and orbit 66 at days 3, 9, 15, 21, interleaved
EVENT_DAYS = [0, 3, 6, 9, 12, 15, 18, 21, 24]
EVENT_ORBITS = [15, 66, 15, 66, 15, 66, 15, 66, 15]
#: orbit 15 acquisition t has value t, orbit 66 1000 + t: any orbit-66 value in an orbit-15 mean shows
EVENT_VALUES = np.where(np.array(EVENT_ORBITS) == 15, 0.0, 1000.0) + np.arange(9.0)


def _means(out, orbit):
    return [float(out[name].sel({schema.ORBIT: orbit}).values[0, 0]) for name in schema.EVENT_MEANS]


def test_event_means_are_per_orbit_and_use_only_that_orbits_acquisitions():
    ds = make_cube(EVENT_DAYS, EVENT_ORBITS, EVENT_VALUES, -EVENT_VALUES).chunk({schema.TIME: 1})
    # event on 2020-01-11 (day 10, 00:00). k=1: orbit 15 day 6 (t 2) before, day 12 (t 4) after;
    # orbit 66 day 9 (t 3) before, day 15 (t 5) after. Mixing orbits, k=1 would take days 9 and 12.
    one = sar.event_means(ds, "2020-01-11", 1)
    for name in schema.EVENT_MEANS:
        assert one[name].dims == (schema.ORBIT, schema.Y, schema.X)
        assert one[name][schema.ORBIT].values.tolist() == [15, 66]
        assert one[name][schema.ORBIT].attrs[schema.ATTR_ORBIT_KEY] == schema.RELATIVE_ORBIT
        assert isinstance(one[name].data, da.Array)
    # order of schema.EVENT_MEANS: vv_before, vh_before, vv_after, vh_after
    assert _means(one, 15) == [2.0, -2.0, 4.0, -4.0]
    assert _means(one, 66) == [1003.0, -1003.0, 1005.0, -1005.0]
    # k=2: the plain mean of the orbit's own two latest before / two earliest after
    two = sar.event_means(ds, "2020-01-11", 2)
    assert _means(two, 15) == [(0 + 2) / 2, -(0 + 2) / 2, (4 + 6) / 2, -(4 + 6) / 2]
    assert _means(two, 66) == [(1001 + 1003) / 2, -(1001 + 1003) / 2, (1005 + 1007) / 2, -(1005 + 1007) / 2]
    params = json.loads(two[schema.VV_BEFORE].attrs[schema.ATTR_PARAMETERS])
    assert params["k"] == 2 and params["orbit_key"] == schema.RELATIVE_ORBIT and params["skipped"] == {}
    assert [t[:10] for t in params["before"]["15"]] == ["2020-01-01", "2020-01-07"]
    assert [t[:10] for t in params["after"]["66"]] == ["2020-01-16", "2020-01-22"]
    # a time of day places the event within a day: 06:00 on day 9 is after orbit 66's 05:00 pass
    late = sar.event_means(ds, "2020-01-10T06:00", 1)
    assert _means(late, 66) == [1003.0, -1003.0, 1005.0, -1005.0]
    early = sar.event_means(ds, "2020-01-10", 1)
    assert _means(early, 66) == [1001.0, -1001.0, 1003.0, -1003.0]
    assert _means(early, 15) == [2.0, -2.0, 4.0, -4.0]


def test_event_means_per_pass_direction():
    # ascending orbits 15 and 117, descending 66: per orbit_state, ascending averages 15 and 117 only
    days = [0, 1, 3, 6, 7, 9, 12, 13]
    orbits = [15, 117, 66, 15, 117, 66, 15, 117]
    asc, desc = schema.ORBIT_ASCENDING, schema.ORBIT_DESCENDING
    states = [desc if o == 66 else asc for o in orbits]
    values = np.where(np.array(orbits) == 66, 1000.0, 0.0) + np.arange(8.0)
    ds = make_cube(days, orbits, values, states=states)
    out = sar.event_means(ds, "2020-01-08", 2, orbit_key=schema.ORBIT_STATE)  # day 7, 00:00
    assert out[schema.VV_BEFORE][schema.ORBIT].values.tolist() == [asc]  # descending: 1 before
    assert out[schema.VV_BEFORE][schema.ORBIT].attrs[schema.ATTR_ORBIT_KEY] == schema.ORBIT_STATE
    assert _means(out, asc)[::2] == [(1 + 3) / 2, (4 + 6) / 2]  # days 1, 6 before; 7, 12 after
    one = sar.event_means(ds, "2020-01-08", 1, orbit_key=schema.ORBIT_STATE)
    assert one[schema.VV_BEFORE][schema.ORBIT].values.tolist() == [asc, desc]
    assert _means(one, asc)[::2] == [3.0, 4.0]
    assert _means(one, desc)[::2] == [1002.0, 1005.0]
    with pytest.raises(InputError, match="--orbit-key"):
        sar.event_means(ds, "2020-01-08", 1, orbit_key="platform")


def test_event_means_leave_out_orbits_without_k_on_both_sides():
    ds = make_cube(EVENT_DAYS, EVENT_ORBITS, EVENT_VALUES)
    # day 4, 00:00: orbit 15 has days 0 before (1) and 6, 12, ... after; orbit 66 day 3 before
    out = sar.event_means(ds, "2020-01-05", 1)
    assert out[schema.VV_AFTER][schema.ORBIT].values.tolist() == [15, 66]
    # day 5 00:00 with k=2: orbit 15 has 1 before, orbit 66 has 1 before: none qualifies
    with pytest.raises(InputError, match=r"no orbit has 2 .*relative_orbit 15: 1 before, 4 after.*lower --k"):
        sar.event_means(ds, "2020-01-05", 2)
    # day 8 with k=2: orbit 15 has days 0, 6 before; orbit 66 only day 3: 66 is left out and recorded
    out = sar.event_means(ds, "2020-01-09", 2)
    assert out[schema.VV_BEFORE][schema.ORBIT].values.tolist() == [15]
    assert json.loads(out[schema.VV_BEFORE].attrs[schema.ATTR_PARAMETERS])["skipped"] == {"66": "1 before, 3 after"}


def test_event_means_errors():
    ds = make_cube(EVENT_DAYS, EVENT_ORBITS, EVENT_VALUES)
    with pytest.raises(InputError, match="outside the cube"):
        sar.event_means(ds, "2021-06-01", 1)
    with pytest.raises(InputError, match="outside the cube"):
        sar.event_means(ds, "2019-12-01", 1)
    with pytest.raises(InputError, match="not a date"):
        sar.event_means(ds, "yesterday-ish", 1)
    with pytest.raises(InputError, match="positive"):
        sar.event_means(ds, "2020-01-10", 0)


def test_default_gap_is_twelve_days_or_the_cube_revisit():
    """A monthly series (glacier demo) gets pairs with the default gap; a 6-day series keeps 12 days."""
    six = make_cube([0, 6, 12, 18, 3, 9, 15], [15, 15, 15, 15, 66, 66, 66], np.arange(7.0))
    assert sar.default_max_gap(six) == sar.MAX_GAP_DAYS
    monthly_days = [0, 30, 60, 90, 120, 2, 32, 62, 92]
    monthly = make_cube(monthly_days, [15] * 5 + [66] * 4, np.arange(9.0))
    with pytest.raises(InputError, match="raise --max-gap"):
        sar.make_pairs(monthly)
    gap = sar.default_max_gap(monthly)
    assert gap == 30.0
    pairs = sar.make_pairs(monthly, gap)
    assert pairs[schema.PAIR].size == 4 + 3  # every consecutive same-orbit acquisition
    assert sar.default_max_gap(make_cube([0], [15], [1.0])) == sar.MAX_GAP_DAYS
