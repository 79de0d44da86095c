"""`sarcube evaluate`: hand-made predictions give hand-computed numbers (pipelines/evaluate.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import make_pair_cube
from sarcube.datacube import chips, schema, store
from sarcube.datacube.chips.selection import balanced_subset
from sarcube.datacube.predictions import (
    ATTR_CHIP,
    ATTR_LEVEL,
    ATTR_PRESET,
    ATTR_TASK,
    ATTR_WINDOW,
    pair_keys,
    run_name,
)
from sarcube.errors import CheckpointError, InputError
from sarcube.pipelines import runs
from sarcube.pipelines.cli import main
from sarcube.pipelines.evaluate import BALANCED, UNBALANCED, evaluate
from sarcube.pipelines.presets import load_preset

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
    plan = chips.SplitPlan(
        chips.SplitSpec(kind=chips.SPLIT_PAIRS, test=[2]), 16, np.array([[0, 1]], dtype=np.int8), {2: 2}
    )
    for run in ("fcn", "baseline", "cnn"):  # the patch tests add their runs' preset.yaml
        (tmp_path / run).mkdir()
        (tmp_path / run / runs.SPLIT_FILE).write_text(plan.to_json())
    return path


def _add(
    cube, name: str, prob: np.ndarray, *, preset: str, task: str, pairs=(0, 1, 2), threshold: float = 0.5,
    chip: int = 8, extra=None,
) -> None:
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
        **(extra or {}),
    }
    dims = (schema.PAIR, schema.Y, schema.X)
    store.add_variables(
        cube, {var_name: schema.make_variable(var_name, prob, dims, spec=schema.prediction_spec(var_name), attrs=attrs)}
    )


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


def _add_patches(cube, name: str, scores, *, preset: str, task: str, window: int, overrides=()) -> None:
    """A patch prediction: one score per 8 px chip of test pair 2, painted over it, and its run's preset.yaml."""
    prob = np.full((3, NY, NX), np.nan, dtype=np.float32)
    prob[2] = np.repeat(np.repeat(np.asarray(scores, dtype=np.float32), 8, 0), 8, 1)
    _add(cube, name, prob, preset=preset, task=task, pairs=(2,), extra={ATTR_LEVEL: "patch", ATTR_WINDOW: window})
    (cube.parent / name).mkdir(exist_ok=True)
    (cube.parent / name / runs.SPLIT_FILE).write_text((cube.parent / "cnn" / runs.SPLIT_FILE).read_text())
    p = load_preset(preset, "cpu-demo", ["chips.size=8", *overrides])
    (cube.parent / name / runs.PRESET_FILE).write_text(p.to_yaml())


def _expected(tp: int, fp: int, fn: int, tn: int) -> dict[str, float]:
    return {
        "accuracy": (tp + tn) / (tp + fp + fn + tn),
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn),
        "f1": 2 * tp / (2 * tp + fp + fn),
        "balanced_accuracy": 0.5 * (tp / (tp + fn) + tn / (tn + fp)),
    }


def test_patch_classifiers_are_scored_per_patch_on_balanced_and_unbalanced_test_sets(cube):
    # Test pair 2 holds 2 x 4 chips of 8 px. Centre 4 px crops: A in chip (0, 0) and B in (1, 2) are
    # positive; C (row 14, col 30) lies in the margin of chip (1, 3), outside its crop: negative.
    crop = ["augment.crop=4"]
    cnn = [[0.9, 0.1, 0.1, 0.1], [0.1, 0.1, 0.3, 0.8]]
    _add_patches(cube, "cnn", cnn, preset="avalanche-cnn", task="classification", window=4, overrides=crop)
    # the VAE sees whole chips: C makes chip (1, 3) positive; it calls every chip an avalanche
    _add_patches(cube, "vae", np.full((2, 4), 0.6), preset="avalanche-vae", task="anomaly", window=8)
    rule = [[0.75, 0.25, 0.25, 0.25], [0.25, 0.25, 0.75, 0.25]]
    _add_patches(cube, "rule", rule, preset="baseline-patch", task="baseline", window=4, overrides=crop)
    _add(cube, "fcn", _fcn_prediction(), preset="avalanche-fcn", task="segmentation")
    out = evaluate(cube, ["fcn", "cnn", "vae", "rule"])
    assert out["scored_on"] == "patches"
    assert out["columns"] == ["accuracy", "balanced_accuracy", "precision", "recall", "f1"]
    res = {run_name(n): r["test_sets"] for n, r in out["predictions"].items()}
    labels = np.array([1, 0, 0, 0, 0, 0, 1, 0])  # the cnn's chips in row-major order
    drawn = balanced_subset(labels == 1, 0)
    fp_drawn = int(7 in drawn)  # the false alarm on chip (1, 3), if drawn
    want = {
        ("cnn", UNBALANCED): _expected(1, 1, 1, 5),
        ("cnn", BALANCED): _expected(1, fp_drawn, 1, 2 - fp_drawn),
        ("vae", UNBALANCED): _expected(3, 5, 0, 0) | {"balanced_accuracy": 0.5},
        ("vae", BALANCED): _expected(3, 3, 0, 0) | {"balanced_accuracy": 0.5},
        ("rule", UNBALANCED): _expected(2, 0, 0, 6),
        ("rule", BALANCED): _expected(2, 0, 0, 2),
        ("fcn", UNBALANCED): _expected(2, 0, 0, 6),  # a map: its maximum over each of the cnn's crops
    }
    for (name, ts), metrics in want.items():
        for key, value in metrics.items():
            assert res[name][ts][key] == pytest.approx(value), (name, ts, key)
    assert (res["cnn"][BALANCED]["n_positive"], res["cnn"][BALANCED]["n_negative"]) == (2, 2)
    assert (res["vae"][UNBALANCED]["n_positive"], res["vae"][UNBALANCED]["n_negative"]) == (3, 5)
    lines = out["table"].splitlines()
    assert lines[0].split()[:4] == ["Method", "Test", "set", "Patches"] and "Bal. acc. (%)" in lines[0]
    rows = [ln.split() for ln in lines[2:10]]
    assert [r[:2] for r in rows[:4]] == [[n, BALANCED] for n in ("fcn", "cnn", "vae", "rule")]
    counts = {"fcn": "2/6", "cnn": "2/6", "vae": "3/5", "rule": "2/6"}
    assert [r[:3] for r in rows[4:]] == [[n, UNBALANCED, c] for n, c in counts.items()]
    assert "cnn 8->4 px, vae 8 px" in lines[-1]
    assert out["predictions"]["pred_fcn"]["patch_score"] == "max over the crop"
    assert evaluate(cube, ["cnn"], balance_seed=0)["predictions"]["pred_cnn"] == out["predictions"]["pred_cnn"]
    assert evaluate(cube, ["fcn"])["scored_on"] == "pixels"  # maps alone: per pixel, as before
    (cube.parent / "rule" / runs.PRESET_FILE).unlink()
    with pytest.raises(CheckpointError, match="preset.yaml"):
        evaluate(cube, ["rule"])


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


def test_pixels_are_scored_tile_by_tile_as_on_the_whole_pair(cube, monkeypatch):
    """Tiles of 5 px cut objects A and B and the false object: the counts equal those of the whole pair."""
    from sarcube.pipelines import scoring

    _add(cube, "fcn", _fcn_prediction(), preset="avalanche-fcn", task="segmentation")
    whole = evaluate(cube, ["fcn"], out_json=None)["predictions"]["pred_fcn"]
    monkeypatch.setattr(scoring, "TILE_PX", 5)
    tiled = evaluate(cube, ["fcn"], out_json=None)["predictions"]["pred_fcn"]
    assert (tiled["object_tp"], tiled["object_fn"], tiled["object_fp"]) == (2, 1, 1)
    assert tiled == whole
