"""`sarcube evaluate`: hand-made predictions give hand-computed numbers (pipelines/evaluate.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import make_pair_cube
from sarcube.datacube import chips, schema, store
from sarcube.datacube.predictions import ATTR_CHIP, ATTR_PRESET, ATTR_TASK, pair_keys
from sarcube.pipelines import runs
from sarcube.pipelines.cli import main
from sarcube.pipelines.evaluate import evaluate

from sarcube.errors import CheckpointError, InputError

NY, NX = 16, 32


def _labels() -> np.ndarray:
    lab = np.zeros((3, NY, NX), dtype=np.uint8)
    lab[:, :2] = schema.LABEL_UNKNOWN
    lab[2, 4:6, 2:6] = 1  # object A, 8 px
    lab[2, 10:13, 20:23] = 1  # object B, 9 px
    lab[2, 14, 30] = 1  # object C, 1 px
    lab[0, 8:10, 8:10] = 1  # a training pair's object (must not count)
    return lab


@pytest.fixture
def cube(tmp_path):
    ds = make_pair_cube(ny=NY, nx=NX, n_pairs=3)
    ds[schema.LABEL].values[:] = _labels()
    path = tmp_path / "c.zarr"
    store.write_cube(ds, path)
    # Pair 2 is held out for test; the two 16 px tiles are train and val for the other pairs.
    plan = chips.SplitPlan(chips.SplitSpec(kind=chips.SPLIT_PAIRS, test=[2]), 16, np.array([[0, 1]], dtype=np.int8), {2: 2})
    for run in ("fcn", "baseline", "cnn"):
        (tmp_path / run).mkdir()
        (tmp_path / run / runs.SPLIT_FILE).write_text(plan.to_json())
    return path


def _add(cube, name: str, prob: np.ndarray, *, preset: str, task: str, pairs=(0, 1, 2), threshold: float = 0.5, chip: int = 8) -> None:
    ds = schema.open_cube(cube)
    keys = pair_keys(ds)
    var_name = schema.prediction_name(name)
    attrs = {
        schema.ATTR_RUN: str(cube.parent / name),
        schema.ATTR_THRESHOLD: threshold,
        schema.ATTR_PREDICTED_PAIRS: json.dumps([keys[p] for p in pairs]),
        ATTR_PRESET: preset,
        ATTR_TASK: task,
        ATTR_CHIP: chip,
    }
    dims = (schema.PAIR, schema.Y, schema.X)
    store.add_variables(cube, {var_name: schema.make_variable(var_name, prob, dims, spec=schema.prediction_spec(var_name), attrs=attrs)})


def _fcn_prediction() -> np.ndarray:
    prob = np.full((3, NY, NX), 0.1, dtype=np.float32)
    prob[0] = 0.9  # a training pair: must not count
    prob[2, 4:6, 2:6] = 0.9  # all of A
    prob[2, 10:12, 20:23] = 0.8  # 6 of B's 9 pixels
    prob[2, 7:9, 10:12] = 0.7  # a false object of 4 px
    prob[2, 0, 28:31] = 0.9  # on label 255: ignored
    return prob


def test_pixel_object_and_ranking_metrics_match_hand_counts(cube, tmp_path):
    _add(cube, "fcn", _fcn_prediction(), preset="avalanche-fcn", task="segmentation")
    baseline = np.where(_labels() == 1, 1.0, 0.0).astype(np.float32)
    _add(cube, "baseline", baseline, preset="baseline", task="baseline", pairs=(2,))
    out = evaluate(cube, ["fcn", "pred_baseline"], out_json=tmp_path / "eval.json")
    fcn, base = out["predictions"]["pred_fcn"], out["predictions"]["pred_baseline"]
    # 448 valid pixels of pair 2 (rows 2..15): tp 14, fn 4, fp 4.
    assert (fcn["tp"], fcn["fn"], fcn["fp"], fcn["tn"]) == (14, 4, 4, 426)
    assert fcn["precision"] == pytest.approx(14 / 18) and fcn["recall"] == pytest.approx(14 / 18)
    assert fcn["f1"] == pytest.approx(28 / 36) and fcn["iou"] == pytest.approx(14 / 22)
    assert (fcn["object_tp"], fcn["object_fn"], fcn["object_fp"]) == (2, 1, 1)
    assert fcn["bbox_iou"] == pytest.approx(14 / 22)
    # Average precision: recall steps 8/18 and 6/18 at precision 1, the last 4/18 at 18/448.
    assert fcn["auprc"] == pytest.approx(14 / 18 + 4 / 18 * 18 / 448)
    assert fcn["pairs"] == [2] and base["pairs"] == [2]
    assert base["f1"] == 1.0 and (base["object_tp"], base["object_fn"], base["object_fp"]) == (3, 0, 0)
    # Tab. I layout: methods as rows, F1/IoU/TP/FN/FP as columns.
    lines = out["table"].splitlines()
    assert lines[0].split()[0] == "Method" and "TP (#)" in lines[0] and "bbox IoU (%)" in lines[0]
    assert lines[2].split()[:2] == ["fcn", "77.78"] and lines[3].split()[:2] == ["baseline", "100.00"]
    assert json.loads((tmp_path / "eval.json").read_text())["predictions"]["pred_fcn"]["tp"] == 14


def test_threshold_override(cube):
    _add(cube, "fcn", _fcn_prediction(), preset="avalanche-fcn", task="segmentation")
    res = evaluate(cube, ["fcn"], threshold=0.75)["predictions"]["pred_fcn"]
    assert (res["tp"], res["fp"], res["fn"]) == (14, 0, 4)
    assert res["object_fp"] == 0


def test_chip_level_scores_for_a_patch_classifier_next_to_a_map(cube):
    prob = np.full((3, NY, NX), 0.2, dtype=np.float32)
    prob[2, 0:8, 0:8] = 0.8  # positive chip (A): hit
    prob[2, 0:8, 8:16] = 0.7  # negative chip: false alarm
    prob[2, 8:16, 16:24] = 0.3  # positive chip (B): missed
    prob[2, 8:16, 24:32] = 0.6  # positive chip (C): hit
    _add(cube, "cnn", prob, preset="avalanche-cnn", task="classification", pairs=(2,))
    _add(cube, "baseline", np.where(_labels() == 1, 1.0, 0.0).astype(np.float32), preset="baseline", task="baseline", pairs=(2,))
    out = evaluate(cube, ["cnn", "baseline"])
    cnn, base = out["predictions"]["pred_cnn"], out["predictions"]["pred_baseline"]
    assert out["scored_on"] == "chips" and cnn["n_scored"] == 8
    assert (cnn["tp"], cnn["fp"], cnn["fn"], cnn["tn"]) == (2, 1, 1, 4)
    assert cnn["accuracy"] == pytest.approx(6 / 8) and cnn["f1"] == pytest.approx(2 / 3)
    assert cnn["balanced_accuracy"] == pytest.approx(0.5 * (2 / 3 + 4 / 5))
    assert base["accuracy"] == 1.0
    assert out["columns"] == ["accuracy", "precision", "recall", "f1", "balanced_accuracy"]


def test_evaluate_refuses_what_it_cannot_score(cube, tmp_path):
    _add(cube, "fcn", _fcn_prediction(), preset="avalanche-fcn", task="segmentation", pairs=(0, 1))
    with pytest.raises(InputError, match="split"):
        evaluate(cube, ["fcn"])  # pairs 0 and 1 hold no test pixels
    (tmp_path / "fcn" / runs.SPLIT_FILE).unlink()
    with pytest.raises(CheckpointError, match="split.json"):
        evaluate(cube, ["fcn"])


def test_cli_prints_the_table_and_writes_json(cube, tmp_path, capsys):
    _add(cube, "fcn", _fcn_prediction(), preset="avalanche-fcn", task="segmentation")
    out = tmp_path / "e.json"
    assert main(["evaluate", str(cube), "--pred", "fcn", "--out", str(out)]) == 0
    assert "77.78" in capsys.readouterr().out
    assert json.loads(out.read_text())["split"] == "test"
