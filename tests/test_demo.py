"""`sarcube demo` end to end on a tiny scene: every stage runs and writes what it promises.

The default demo (bigger scene, longer training) is where the FCN must beat
the baseline; this test checks the chain, the files and the held-out split in
well under a few minutes on 2 cores.
"""

from __future__ import annotations

import json
import zipfile

import geopandas as gpd
import numpy as np

from sarcube.datacube import schema
from sarcube.pipelines.cli import main
from sarcube.pipelines.demo import EVALUATION_FILE, FCN_PRESET, METHODS, RESULTS_FILE, demo

#: 16 dates (12 in winter): test window 3 pairs + 1 purged, validation 3 + 1, 2 winter training pairs
TINY = {
    "size": 192, "dates": 20,
    "overrides": ("train.epochs=1", "train.steps_per_epoch=10", "model.params.base_channels=8", "model.params.depth=3"),
}


def test_demo_runs_every_stage_and_writes_everything(tmp_path):
    lines: list[str] = []
    result = demo(tmp_path / "demo", seed=0, echo=lines.append, **TINY)

    # every promised file exists
    assert result.results_md.name == RESULTS_FILE and result.results_md.exists()
    assert result.evaluation_json.name == EVALUATION_FILE
    for method in METHODS:
        assert (result.runs[method] / "best.pt").exists() or method != FCN_PRESET
        assert result.detections[method].exists()
    assert result.quicklooks and all(p.exists() and p.stat().st_size > 10_000 for p in result.quicklooks)
    # a quicklook of every method on every test pair
    assert {p.name for p in result.quicklooks} == {f"{m}_pair{p:02d}.png" for m in METHODS for p in result.test_pairs}
    archives = list(result.archive.glob("*.zarr.zip"))
    assert len(archives) == 1 and zipfile.is_zipfile(archives[0])
    assert "OK" in result.verify_summary

    # FCN and baseline side by side in the JSON, with the paper's columns
    evaluation = json.loads(result.evaluation_json.read_text())
    assert set(evaluation["predictions"]) == {result.predictions[m] for m in METHODS}
    for scores in evaluation["predictions"].values():
        for key in ("f1", "precision", "recall", "bbox_iou", "object_tp", "object_fn", "object_fp"):
            assert 0 <= scores[key] and np.isfinite(scores[key])

    # predictions live in the cube, on the held-out pairs only, disjoint from validation; both orbits are
    # held out, and no training pair overlaps a held-out one, so no avalanche is in two splits
    cube = schema.open_cube(result.cube)
    assert set(result.test_pairs).isdisjoint(result.val_pairs)
    orbit = cube[schema.PAIR_RELATIVE_ORBIT].values
    assert len(set(orbit[result.test_pairs])) == len(set(orbit[result.val_pairs])) == 2
    held = result.test_pairs + result.val_pairs
    train_pairs = [p for p in range(cube.sizes[schema.PAIR]) if p not in held + result.excluded_pairs]
    assert train_pairs and result.split.pairs_of("train") == train_pairs
    last_train_activity = max(cube[schema.ACTIVITY_TIME].values[p] for p in train_pairs)
    assert all(cube[schema.REFERENCE_TIME].values[p] >= last_train_activity for p in held)
    events = result.split.events
    assert events["test"] and events["train"] and not set(events["test"]) & (set(events["val"]) | set(events["train"]))
    assert "no avalanche is in two splits" in result.results_md.read_text()
    for method in METHODS:
        pred = cube[result.predictions[method]]
        for p in range(cube.sizes[schema.PAIR]):
            filled = bool(np.isfinite(pred.values[p]).any())
            # the test pairs, and the validation pairs the operating point is tuned on
            assert filled == (p in held), (method, p)

    # exported polygons are GIS-readable: GeoJSON in lon/lat (RFC 7946)
    frame = gpd.read_file(result.detections[FCN_PRESET])
    assert frame.crs is not None and frame.crs.to_epsg() == 4326  # RFC 7946 GeoJSON: lon/lat

    # the log names every stage with its timing, and ends with the table
    text = "\n".join(lines)
    for stage in (
        "catalog",
        "build",
        "features",
        "labels",
        "predict",
        "evaluate",
        "export",
        "quicklook",
        "publish",
        "verify",
    ):
        assert f"] {stage}" in text
    assert "F1 (%)" in text
    assert result.report.exists() and f"open {result.report}" in text  # the offline web map, and where it is

    # a rerun resumes: every stage is skipped
    again: list[str] = []
    demo(tmp_path / "demo", seed=0, echo=again.append, **TINY)
    assert sum("skipped" in line for line in again) >= 10


def test_demo_refuses_other_settings_in_the_same_workdir(tmp_path, capsys):
    workdir = tmp_path / "demo"
    args = ["--size", "192", "--dates", "20", "--set", "train.epochs=1", "--set", "train.steps_per_epoch=5"]
    assert main(["demo", "--workdir", str(workdir), *args]) == 0
    capsys.readouterr()
    code = main(["demo", "--workdir", str(workdir), "--size", "192", "--dates", "16"])
    err = capsys.readouterr().err
    assert code != 0 and "--overwrite" in err and len(err.strip().splitlines()) == 1
