"""Per-pair operating points (pipelines/operating_point.py): tuned on the run's validation pairs, recorded by
``predict --operating-point``, and applied pair by pair by evaluate, export, quicklook and timeseries."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import make_pair_cube
from sarcube.datacube import chips, schema, store
from sarcube.datacube.predictions import (
    ATTR_FLAG_RATE,
    ATTR_OPERATING_POINT,
    ATTR_OPERATING_POINT_F1,
    OP_RATE,
    OP_THRESHOLD,
    pair_keys,
    pair_thresholds,
    predicted_keys,
    prediction_threshold,
)
from sarcube.errors import InputError
from sarcube.models import metrics
from sarcube.pipelines import operating_point as op
from sarcube.pipelines.detections import detections
from sarcube.pipelines.evaluate import evaluate
from sarcube.pipelines.predict import predict
from sarcube.pipelines.timeseries import point_events
from test_predict import make_run

SPLIT = chips.SplitSpec(kind=chips.SPLIT_PAIRS, test="last", val=())


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: tiny networks, one thread


def _plan(ds) -> chips.SplitPlan:
    return chips.make_split(ds, SPLIT, chips.ChipSpec(size=16))


def _window_run(tmp_path, ds):
    """A run whose split holds out time windows (validation pairs 1-3, test pairs 5-7 of an 8-pair cube)."""
    run = make_run(tmp_path / "fcn", ds)
    (run / "split.json").write_text(_plan(ds).to_json())
    return run


def test_the_flagged_share_follows_each_pair_where_one_threshold_cannot():
    ds = make_pair_cube(n_pairs=8)
    plan = _plan(ds)
    val = op.check_operating_point(OP_RATE, plan, ds, "pixel")
    assert val == plan.pairs_of(chips.VAL) == [1, 2, 3]
    label = ds[schema.LABEL].values
    rng = np.random.default_rng(1)
    # debris scores high within its pair, but every score of a pair is shifted by the pair's own clutter
    scores = {p: (rng.uniform(0.0, 0.3, label[p].shape) + 0.4 * (label[p] == 1) + 0.1 * p).astype(np.float32)
              for p in range(8)}
    keys = pair_keys(ds)
    attrs = op.operating_point_attrs("auto", ds, plan, val, {p: keys[p] for p in range(8)}, scores.__getitem__, 0.5)
    f1 = json.loads(attrs[ATTR_OPERATING_POINT_F1])
    assert attrs[ATTR_OPERATING_POINT] == OP_RATE and f1[OP_RATE] > f1[OP_THRESHOLD]  # auto keeps the better one
    assert f1[OP_RATE] > 0.9 and attrs[ATTR_FLAG_RATE] in metrics.RATES
    assert attrs[ATTR_FLAG_RATE] == pytest.approx(0.095, rel=0.3)  # the positives' share of the pixels
    table = json.loads(attrs["pair_thresholds"])
    for p in range(8):
        flagged = scores[p] >= table[keys[p]]
        assert flagged.sum() == round(attrs[ATTR_FLAG_RATE] * scores[p].size)  # every pixel observed here
        assert table[keys[p]] == pytest.approx(metrics.rate_threshold(scores[p], attrs[ATTR_FLAG_RATE]))
    with pytest.raises(InputError, match="validation pairs .* not predicted"):
        op.operating_point_attrs(OP_RATE, ds, plan, val, {5: keys[5]}, scores.__getitem__, 0.5)


def test_auto_chooses_on_validation_pairs_left_out_of_the_tuning():
    rng = np.random.default_rng(2)
    label = np.zeros((64, 64), dtype=np.uint8)
    label[8:24, 8:21] = 1  # 208 px, 5 % of the pair
    label[40:42, 0:64] = 255  # not scored
    # two quiet pairs and one whose every score is lifted by its clutter: tuned with the bright pair, one
    # threshold misses the quiet pairs' debris; tuned without it, it flags the whole bright pair
    images = [((rng.uniform(0.0, 0.3, label.shape) + 0.4 * (label == 1) + shift).astype(np.float32), label)
              for shift in (0.0, 0.0, 0.5)]
    held = op.held_out_f1(images)
    assert held[OP_RATE] > 0.95 and held[OP_THRESHOLD] < 0.6
    s = [scores for scores, _ in images]
    bright_alone = metrics.pixel_counts(s[2], label, metrics.best_threshold(
        np.concatenate([s[0][label != 255], s[1][label != 255]]), np.concatenate([label[label != 255] == 1] * 2))[0])
    assert bright_alone["fp"] == np.count_nonzero(label == 0)  # the fold leaving the bright pair out floods it
    assert op.held_out_f1(images[:1]) is None  # one pair: nothing to leave out
    no_debris = [(scores, np.zeros_like(label)) for scores, _ in images[:2]] + images[2:]
    assert op.held_out_f1(no_debris)[OP_RATE] == 0.0  # only the fold with debris elsewhere counts, and it misses
    # the held-out F1s decide where they exist, whatever the in-sample ones say; ties keep the threshold
    assert op.choose({OP_RATE: 0.5, OP_THRESHOLD: 0.6, "rate_held_out": 0.4, "threshold_held_out": 0.3}) == OP_RATE
    assert op.choose({OP_RATE: 0.6, OP_THRESHOLD: 0.5, "rate_held_out": 0.3, "threshold_held_out": 0.4}) == OP_THRESHOLD
    assert op.choose({OP_RATE: 0.5, OP_THRESHOLD: 0.6}) == OP_THRESHOLD
    assert op.choose({OP_RATE: 0.5, OP_THRESHOLD: 0.5}) == OP_THRESHOLD


def test_a_per_pair_operating_point_is_refused_where_it_cannot_be_tuned():
    ds = make_pair_cube(n_pairs=8)
    tiles = chips.make_split(ds, chips.SplitSpec(kind=chips.SPLIT_PAIRS, test="last", val=chips.VAL_TILES),
                             chips.ChipSpec(size=16))
    with pytest.raises(InputError, match="validation pairs held out whole.*--operating-point threshold"):
        op.check_operating_point(OP_RATE, tiles, ds, "pixel")
    with pytest.raises(InputError, match="patch run"):
        op.check_operating_point("auto", _plan(ds), ds, "patch")
    with pytest.raises(InputError, match="no per-pair 'label'"):
        op.check_operating_point(OP_RATE, _plan(ds), ds.drop_vars(schema.LABEL), "pixel")
    with pytest.raises(InputError, match="--operating-point 'best'"):
        op.check_operating_point("best", _plan(ds), ds, "pixel")
    assert op.check_operating_point(OP_THRESHOLD, tiles, ds, "patch") == []


def test_predict_records_per_pair_thresholds_that_every_reader_applies(tmp_path):
    cube = str(tmp_path / "c.zarr")
    store.write_cube(make_pair_cube(n_pairs=8), cube)
    run = _window_run(tmp_path, schema.open_cube(cube))
    name = predict(cube, run, pairs=[5, 6, 7], tta=False, operating_point=OP_RATE)
    ds = schema.open_cube(cube)
    var = ds[name]
    keys = pair_keys(ds)
    assert sorted(predicted_keys(var)) == sorted(keys[p] for p in (1, 2, 3, 5, 6, 7))  # validation pairs too
    assert var.attrs[ATTR_OPERATING_POINT] == OP_RATE and 0 < var.attrs[ATTR_FLAG_RATE] <= 0.1
    table = pair_thresholds(var)
    assert set(table) == set(predicted_keys(var))
    assert "--operating-point rate" in ds.attrs["history"]

    # evaluate: each test pair binarized at its own threshold, as counted by hand
    counts = dict.fromkeys(("tp", "fp", "fn", "tn"), 0)
    for p in (5, 6, 7):
        prob, label = var.isel(pair=p).values, ds[schema.LABEL].isel(pair=p).values
        got = metrics.pixel_counts(prob, label, table[keys[p]])
        counts = {k: counts[k] + got[k] for k in counts}
    result = evaluate(cube, [name], out_json=None)["predictions"][name]
    assert result["f1"] == pytest.approx(metrics.scores_from_counts(counts)["f1"])
    assert result["tp"] == counts["tp"] and result["fp"] == counts["fp"]
    assert "of each pair's pixels" in result["operating_point"]
    # the run's one threshold is still there to compare with
    at_run = evaluate(cube, [name], out_json=None, operating_point=OP_THRESHOLD)["predictions"][name]
    assert at_run["operating_point"] == "threshold 0.4"

    # export's detections: a pair's objects are its pixels at or above its own threshold
    frame = detections(ds, name, min_area_m2=0.0, pairs=[5])
    flagged = np.nan_to_num(var.isel(pair=5).values, nan=0.0) >= table[keys[5]]
    assert flagged.sum() > 0 and frame.geometry.area.sum() == pytest.approx(flagged.sum() * 20.0 * 20.0, rel=1e-6)
    assert frame.attrs["lowest_threshold"] <= min(table[keys[p]] for p in (1, 2, 3, 5, 6, 7))
    # every pair: the unpredicted ones (no threshold of their own) are skipped, not an error
    every = detections(ds, name, min_area_m2=0.0)
    assert set(every["pair_index"]) <= {1, 2, 3, 5, 6, 7} and 5 in set(every["pair_index"])

    # timeseries at a pixel: detected in exactly the pairs where it clears that pair's threshold
    events = point_events(ds, 10, 10, name)
    expect = [p for p in (1, 2, 3, 5, 6, 7) if var.isel(pair=p, y=10, x=10).values >= table[keys[p]]]
    assert len(events["detected"]) == len(expect)
    # the quicklook draws a pair's detections at that pair's threshold; an unpredicted pair needs none
    from sarcube.pipelines.quicklook import quicklook_figure

    titles = [ax.get_title() for ax in quicklook_figure(ds, pair=6, pred=name, hazard="avalanche").axes]
    assert any(f"threshold {table[keys[6]]:.3g}" in t for t in titles), titles
    assert any("not predicted" in t for t in
               (ax.get_title() for ax in quicklook_figure(ds, pair=0, pred=name, hazard="avalanche").axes))
    # a pair the prediction does not hold has no threshold of its own
    with pytest.raises(InputError, match="no per-pair threshold for pair"):
        prediction_threshold(var, None, keys[0])
    assert prediction_threshold(var, 0.3, keys[0]) == 0.3  # a given threshold applies to every pair

    # recorded again on the maps there (as science.py --reuse does): nothing predicted, the choice held out
    before = var.isel(pair=5).values
    attrs = op.record_operating_point(cube, name, "auto", run)
    again = schema.open_cube(cube)[name]
    assert sorted(predicted_keys(again)) == sorted(predicted_keys(var))  # pair 0 still unpredicted
    np.testing.assert_array_equal(again.isel(pair=5).values, before)
    f1 = json.loads(again.attrs[ATTR_OPERATING_POINT_F1])
    assert f"{OP_RATE}{op.HELD_OUT}" in f1 and again.attrs[ATTR_OPERATING_POINT] == op.choose(f1)
    assert attrs[ATTR_OPERATING_POINT] == again.attrs[ATTR_OPERATING_POINT]
    with pytest.raises(InputError, match="no 'pred_nothing'"):
        op.record_operating_point(cube, "pred_nothing", "auto", run)


def test_cli_predict_and_evaluate_take_the_operating_point(tmp_path, capsys):
    from sarcube.pipelines.cli import main

    cube = str(tmp_path / "c.zarr")
    store.write_cube(make_pair_cube(n_pairs=8), cube)
    run = _window_run(tmp_path, schema.open_cube(cube))
    assert main(["-q", "predict", cube, "--run", str(run), "--no-tta"]) == 0
    before = schema.open_cube(cube)["pred_fcn"]
    assert before.attrs[ATTR_OPERATING_POINT] == OP_THRESHOLD and "pair_thresholds" not in before.attrs
    maps = before.values
    # every pair is there: --pairs new only tunes and records the operating point, the maps stay as they are
    args = ["-q", "predict", cube, "--run", str(run), "--no-tta", "--pairs", "new", "--operating-point", "auto"]
    assert main(args) == 0
    var = schema.open_cube(cube)["pred_fcn"]
    assert var.attrs[ATTR_OPERATING_POINT] in (OP_RATE, OP_THRESHOLD) and "pair_thresholds" in var.attrs
    np.testing.assert_array_equal(var.values, maps)
    out = tmp_path / "e.json"
    assert main(["-q", "evaluate", cube, "--pred", "fcn", "--operating-point", "rate", "--out", str(out)]) == 0
    assert "of each pair's pixels" in capsys.readouterr().out
