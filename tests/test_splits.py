"""Splits without leaks: held-out time windows over every orbit, purge gaps, tiles, one event in one split."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from conftest import make_pair_cube, make_tiny_cube
from sarcube.datacube import chips, sar, schema, store
from sarcube.datacube.label_events import LabelEvents, label_events
from sarcube.errors import InputError
from sarcube.pipelines import runs
from sarcube.pipelines.evaluate import evaluate
from sarcube.pipelines.presets import load_preset
from sarcube.pipelines.train import prepare_data, train
from test_chips import make_featured_cube
from test_evaluate import _add
from test_labels import cells, write_polygons

CHIPS = chips.ChipSpec(size=8)
#: 14 acquisitions every 3 days, orbits 15/66 alternating: 12 six-day pairs sorted by activity,
#: pair p covers (3p, 3p + 6] days after Jan 1 05:00; even pairs orbit 15, odd pairs orbit 66
N_TIMES = 14


def two_orbit_cube(tmp_path, boxes=None):
    """The 12-pair cube with one labelled event (a 2x2 px debris square, or ``boxes[k]``) every 3 days.

    Event k is dated Jan 2 + 3k, so it lies in the pair of each orbit covering that day (events
    0 and 12 in one pair only), as a real avalanche is seen by both orbits.
    """
    ds = make_tiny_cube(ny=32, nx=32, nt=N_TIMES)
    ds = ds.assign_coords(sar.make_pairs(ds))
    n_events = 13
    days = np.datetime64("2020-01-02") + 3 * np.arange(n_events) * np.timedelta64(1, "D")
    boxes = boxes or [(2 + 4 * (k // 6), 4 + 4 * (k // 6), 1 + 5 * (k % 6), 3 + 5 * (k % 6)) for k in range(n_events)]
    path = write_polygons(
        tmp_path / "debris.geojson", [cells(*b) for b in boxes], "EPSG:4326",
        date=[str(d) for d in days], event_id=[f"ev{k}" for k in range(n_events)],
    )
    from sarcube.datacube.labels import rasterize_labels

    label, _ = rasterize_labels(ds, path, date_field="date")
    ds[schema.LABEL] = label
    return ds


def _overlap(ds, p, q) -> bool:
    ref, act = ds[schema.REFERENCE_TIME].values, ds[schema.ACTIVITY_TIME].values
    return max(ref[p], ref[q]) < min(act[p], act[q])


def _pairs(plan: chips.SplitPlan) -> dict[str, list[int]]:
    return {name: plan.pairs_of(name) for name in (*chips.SPLITS, chips.EXCLUDED_NAME)}


def test_last_pair_as_one_index_leaked_and_windows_do_not(tmp_path):
    ds = two_orbit_cube(tmp_path)
    events = label_events(ds[schema.LABEL])
    assert events is not None and events.pairs[11] == ("ev11", "ev12") and events.pairs[10] == ("ev10", "ev11")
    # the old default: `test: last` held out pair 11 alone; pair 10 (other orbit, same days) trained on ev11
    tiles = np.zeros((4, 4), dtype=np.int8)
    old = chips.SplitPlan(chips.SplitSpec(kind=chips.SPLIT_PAIRS), 8, tiles, {11: 2}, 12)
    leaked = chips.split_events(old, events)
    assert "ev11" in leaked["train"] and "ev11" in leaked["test"]
    with pytest.raises(InputError, match=r"event 'ev11' is in both the train and the test split.*retrain") as err:
        chips.check_split(old, events, "split.json", "retrain")
    assert len(str(err.value).splitlines()) == 1

    plan = chips.make_split(ds, chips.SplitSpec(kind=chips.SPLIT_PAIRS, test="last"), CHIPS)
    orbit = ds[schema.PAIR_RELATIVE_ORBIT].values
    held = _pairs(plan)
    assert {10, 11} <= set(held["test"]) and set(orbit[held["test"]]) == {15, 66}
    assert set(orbit[held["val"]]) == {15, 66}
    for p in held["train"]:
        assert not any(_overlap(ds, p, q) for q in held["test"] + held["val"]), p
    for p in held["val"]:
        assert not any(_overlap(ds, p, q) for q in held["test"]), p
    found = {s: set(plan.events[s]) for s in chips.SPLITS}
    assert found["test"] and found["val"] and found["train"]
    assert not (found["train"] & found["test"]) and not (found["train"] & found["val"])
    assert not (found["val"] & found["test"])
    assert found["test"] == events.of_pairs(held["test"])
    chips.check_split(plan, events, "split", "fix")
    # split.json lists each split's pairs and events, and reads back
    saved = json.loads(plan.to_json())
    assert saved["pairs"]["test"] == held["test"] and saved["pairs"]["excluded"] == held["excluded"]
    assert saved["events"]["test"] == sorted(found["test"], key=lambda e: int(e[2:]))
    again = chips.SplitPlan.from_json(plan.to_json())
    assert again.pair_split == plan.pair_split and again.events == plan.events and again.n_pairs == 12


def test_purge_gaps_and_the_default_validation_window(tmp_path):
    ds = two_orbit_cube(tmp_path)
    plan = chips.make_split(ds, chips.SplitSpec(kind=chips.SPLIT_PAIRS), CHIPS)
    # test: the last pair of each orbit, (30, 36] and (33, 39], and pair 9 (27, 33] overlapping them;
    # pair 8 (24, 30] overlaps pair 9: purged. Validation: the same rule on the pairs left (6, 7 and 5),
    # pair 4 purged; pairs 0-3 train.
    assert _pairs(plan) == {"train": [0, 1, 2, 3], "val": [5, 6, 7], "test": [9, 10, 11], "excluded": [4, 8]}
    n = ds.sizes[schema.PAIR]
    pos, valid = chips.chip_counts(ds[schema.LABEL], CHIPS)
    table = chips.chip_table(list(range(n)), pos, valid, plan, CHIPS, 32, 32)
    assert set(table.pair[table.split == 0].tolist()) == {0, 1, 2, 3}
    assert not set(table.pair.tolist()) & {4, 8}  # purged pairs hold no chip
    assert not chips.split_mask(plan, 4, "train", (32, 32)).any()
    assert plan.pairs_in("train", list(range(n))) == [0, 1, 2, 3]
    assert "excluded pairs [4, 8]" in plan.describe()


def test_date_range_windows_and_explicit_validation(tmp_path):
    ds = two_orbit_cube(tmp_path)
    # Jan 20..22 (days 18.8..21.8 after Jan 1 05:00) overlaps pairs 5, 6 and 7; pairs 4 and 8 are the purge gap;
    # validation is the window just before (pairs 1-3, pair 0 purged); the pairs after the test window train
    plan = chips.make_split(ds, chips.SplitSpec(kind=chips.SPLIT_PAIRS, test="2020-01-20/2020-01-22"), CHIPS)
    assert _pairs(plan) == {"train": [9, 10, 11], "val": [1, 2, 3], "test": [5, 6, 7], "excluded": [0, 4, 8]}
    found = {s: set(plan.events[s]) for s in chips.SPLITS}
    assert not (found["train"] & found["test"]) and not (found["val"] & (found["train"] | found["test"]))
    # an explicit validation range; an activity date; mixed pair index and date lists
    spec = chips.SplitSpec(kind=chips.SPLIT_PAIRS, test="last", val="2020-01-02/2020-01-04")
    assert _pairs(chips.make_split(ds, spec, CHIPS))["val"] == [0, 1]
    act = str(ds[schema.ACTIVITY_TIME].values[0])[:10]
    by_date = chips.make_split(ds, chips.SplitSpec(kind=chips.SPLIT_PAIRS, test=[act, 11]), CHIPS)
    assert _pairs(by_date)["test"] == [0, 1, 10, 11] and _pairs(by_date)["excluded"] == [2, 5, 9]
    for bad, match in (
        ("2020-02-01/2020-01-01", "ends before it starts"),
        ("someday", "neither a pair index, a date"),
        ([40], "out of range"),
        ("2020-03-01", "no pair has activity date"),
    ):
        with pytest.raises(InputError, match=match):
            chips.make_split(ds, chips.SplitSpec(kind=chips.SPLIT_PAIRS, test=bad), CHIPS)
    with pytest.raises(InputError, match="no pair is left to validate on"):
        chips.make_split(ds, chips.SplitSpec(kind=chips.SPLIT_PAIRS, test="last", val=[10]), CHIPS)


def test_validation_tiles_option(tmp_path):
    ds = two_orbit_cube(tmp_path)
    spec = chips.SplitSpec(kind=chips.SPLIT_PAIRS, val=chips.VAL_TILES, val_fraction=0.25, tile_size_m=8 * 20)
    plan = chips.make_split(ds, spec, CHIPS)
    assert plan.pair_split == {9: 2, 10: 2, 11: 2, 8: chips.EXCLUDED}
    assert set(np.unique(plan.tiles).tolist()) == {0, 1}
    found = {s: set(plan.events[s]) for s in chips.SPLITS}
    assert found["val"] and not (found["val"] & found["train"])
    assert not (found["test"] & (found["train"] | found["val"]))


def test_tile_splits_keep_every_pair_of_a_tile_and_each_event_in_one_split(tmp_path):
    # ev5 covers rows 5-8 x cols 1-2: three rows in tile row 0, one in tile row 1 (8 px tiles)
    boxes = [(2 + 4 * (k // 6), 4 + 4 * (k // 6), 10 + 3 * (k % 6), 12 + 3 * (k % 6)) for k in range(13)]
    boxes[5] = (5, 9, 1, 3)
    ds = two_orbit_cube(tmp_path, boxes)
    events = label_events(ds[schema.LABEL])
    seed = next(s for s in range(50) if len({*_tiles(ds, s)[0:2, 0].tolist()}) == 2)
    plan = chips.make_split(ds, chips.SplitSpec(tile_size_m=8 * 20, seed=seed), CHIPS)
    assert plan.pair_split == {} and set(np.unique(plan.tiles).tolist()) == {0, 1, 2}
    holders = events.holders()["ev5"]
    assert holders == [4, 5]
    # ev5 stays in the split of tile (0, 0), which holds 3 of its 4 rows; its row in tile (1, 0) is left out
    keep = chips.SPLITS[plan.tiles[0, 0]]
    other = chips.SPLITS[plan.tiles[1, 0]]
    assert "ev5" in plan.events[keep] and "ev5" not in plan.events[other]
    assert plan.masked == {4: ((8, 9, 1, 3),), 5: ((8, 9, 1, 3),)}
    for p in holders:
        assert not chips.split_mask(plan, p, other, (32, 32))[8, 1:3].any()
        assert chips.split_mask(plan, p, keep, (32, 32))[5:8, 1:3].all()
    assert chips.split_mask(plan, 3, other, (32, 32))[8, 1:3].all()  # a pair without ev5 keeps its pixels
    # every pair of a tile is in that tile's split (only chips touching a left-out part drop out)
    oy = chips.chip_origins(32, 8, 4)
    yy, xx = (a.ravel() for a in np.meshgrid(oy, oy, indexing="ij"))
    reference = plan.chip_split(None, yy, xx, 8)
    for p in range(ds.sizes[schema.PAIR]):
        codes = plan.chip_split(p, yy, xx, 8)
        touches = (yy < 9) & (yy + 8 > 8) & (xx < 3) & (xx + 8 > 1)
        assert np.array_equal(codes[~touches], reference[~touches]), p
        assert (codes[touches] == chips.EXCLUDED).all() == (p in holders), p
    # no event in two splits
    chips.check_split(plan, events, "split", "fix")
    for a in chips.SPLITS:
        for b in chips.SPLITS:
            assert a == b or not set(plan.events[a]) & set(plan.events[b])


def _tiles(ds, seed):
    return chips.make_split(ds, chips.SplitSpec(tile_size_m=8 * 20, seed=seed), CHIPS).tiles


def test_labels_without_events_split_as_before():
    ds = make_featured_cube(ny=32, nx=32, nt=3)  # per-pair labels without recorded events (an older cube)
    plan = chips.make_split(ds, chips.SplitSpec(tile_size_m=16 * 20), chips.ChipSpec(size=8))
    assert plan.events == {} and plan.masked == {} and label_events(ds[schema.LABEL]) is None
    static = make_tiny_cube(ny=32, nx=32)  # static (y, x) labels: outlines and scars are not events
    static[schema.LABEL] = schema.make_variable(schema.LABEL, np.zeros((32, 32), dtype=np.uint8), (schema.Y, schema.X))
    assert chips.make_split(static, chips.SplitSpec(tile_size_m=16 * 20), chips.ChipSpec(size=8)).events == {}


# --- refusals ---------------------------------------------------------------------------

def _leaking(plan_json: str, event: str = "avalanche-0007") -> str:
    d = json.loads(plan_json)
    d["events"] = {"train": [event, "avalanche-0001"], "val": [], "test": [event]}
    return json.dumps(d)


def test_train_refuses_a_split_with_one_event_in_two_splits(tmp_path):
    path = tmp_path / "c.zarr"
    store.write_cube(make_featured_cube(ny=64, nx=64, nt=4), path)
    ds = schema.open_cube(path)
    over = ["chips.size=16", "split.tile_size_m=320", "train.num_workers=0", "train.val_steps=1"]
    preset = load_preset("baseline", "cpu-demo", over)
    made = prepare_data(ds, preset).plan
    leaking = chips.SplitPlan.from_json(_leaking(made.to_json()))
    with pytest.raises(InputError, match=r"event 'avalanche-0007' is in both the train and the test split.*new run"):
        prepare_data(ds, preset, plan=leaking)
    # a resumed run whose checkpoint holds such a split is refused the same way
    run = train(path, "baseline", tmp_path / "run", profile="cpu-demo", overrides=over, device="cpu")
    state = torch.load(run / runs.LAST, weights_only=True)
    state["info"]["split"] = _leaking(state["info"]["split"])
    torch.save(state, run / runs.LAST)
    with pytest.raises(InputError, match="avalanche-0007"):
        train(path, "baseline", run, resume=True, device="cpu")


def test_evaluate_refuses_a_leaking_split_json(tmp_path):
    ds = make_pair_cube(ny=16, nx=32, n_pairs=3)
    # pairs (0, 6] o15, (3, 9] o66, (6, 12] o15: event "b" (day 8) is in pairs 1 and 2
    events = LabelEvents((("a",), ("a", "b"), ("b",)), {"a": (4, 6, 2, 6), "b": (10, 13, 20, 23)}, "event_id")
    ds[schema.LABEL].attrs[schema.ATTR_LABEL_EVENTS] = events.to_attr()
    cube = tmp_path / "c.zarr"
    store.write_cube(ds, cube)
    (tmp_path / "fcn").mkdir()
    prob = np.full((3, 16, 32), 0.2, dtype=np.float32)
    _add(cube, "fcn", prob, preset="avalanche-fcn", task="segmentation")
    split_json = tmp_path / "fcn" / runs.SPLIT_FILE
    # a hand-made split.json that lists one event in train and test
    pairs_spec = chips.SplitSpec(kind=chips.SPLIT_PAIRS)
    honest = chips.SplitPlan(pairs_spec, 16, np.array([[0, 0]], dtype=np.int8), {2: 2, 1: chips.EXCLUDED}, 3)
    split_json.write_text(_leaking(honest.to_json(), "b"))
    refused = r"'pred_fcn'.*split\.json.*event 'b' is in both the train and the test split.*retrain"
    with pytest.raises(InputError, match=refused):
        evaluate(cube, ["fcn"])
    # an old-style split (pair 2 held out alone, pair 1 of the other orbit trains): the cube's events show the leak
    old = chips.SplitPlan(pairs_spec, 16, np.array([[0, 1]], dtype=np.int8), {2: 2}, 3)
    split_json.write_text(old.to_json())
    with pytest.raises(InputError, match="event 'b' is in both the .* and the test split"):
        evaluate(cube, ["fcn"])
    # the same split with the overlapping pair purged scores
    split_json.write_text(honest.to_json())
    assert evaluate(cube, ["fcn"])["predictions"]["pred_fcn"]["pairs"] == [2]


def test_split_mask_windows_are_parts_of_the_whole_mask():
    """A window of split_mask equals that part of the whole-scene mask: held-out pairs, tile splits, masked boxes."""
    rng = np.random.default_rng(5)
    tiles = rng.integers(-1, 3, (3, 4)).astype(np.int8)
    plan = chips.SplitPlan(chips.SplitSpec(kind=chips.SPLIT_PAIRS, test=[1]), 7, tiles, {1: 2, 2: 1},
                           masked={0: ((2, 9, 3, 12),), 1: ((0, 4, 20, 30),)})
    shape = (23, 30)  # a bit beyond the 21 x 28 px of tiles
    for pair, split in itertools.product((0, 1, 2, None), chips.SPLITS):
        whole = chips.split_mask(plan, pair, split, shape)
        for y0, x0 in ((0, 0), (5, 8), (16, 24)):
            window = (y0, min(y0 + 8, 23), x0, min(x0 + 9, 30))
            part = chips.split_mask(plan, pair, split, shape, window)
            np.testing.assert_array_equal(part, whole[y0 : window[1], x0 : window[3]])
