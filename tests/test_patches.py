"""Patch classifiers scored as trained: one score per patch, balanced and unbalanced tests, Sinha's rule.

avalanche-cnn, avalanche-vae and the ``baseline-patch`` rule predict one
probability per chip (models/patch_inference.py, pipelines/predict.py),
validate and tune their operating point per chip (models/training.py), and
evaluate scores them per patch on the run's test chips (pipelines/evaluate.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sarcube.datacube import schema, store
from sarcube.datacube.chips.selection import balanced_subset
from sarcube.datacube.predictions import ATTR_LEVEL
from sarcube.errors import InputError
from sarcube.models import build_model, metrics
from sarcube.models.augment import center_crop
from sarcube.models.config import LEVEL_PATCH, LEVEL_PIXEL
from sarcube.models.patch_inference import patch_probability, predict_patches
from sarcube.models.training import chip_targets, validate
from sarcube.pipelines import runs
from sarcube.pipelines.evaluate import BALANCED, UNBALANCED, evaluate
from sarcube.pipelines.loaders import ChipStream
from sarcube.pipelines.predict import predict
from sarcube.pipelines.presets import load_preset
from sarcube.pipelines.train import prepare_data, train
from test_chips import make_featured_cube

#: the cpu-demo profiles shrunk further: 16 px chips (their 12 px centre) on 16 px tiles, one short epoch
TINY = [
    "chips.size=16", "split.tile_size_m=320", "train.num_workers=0", "train.epochs=1", "train.steps_per_epoch=3",
    "train.val_steps=0", "train.batch_size=8",
]
CROP = ["augment.crop=12"]
SMALL = {
    "avalanche-cnn": [*CROP, "model.width_divisor=16", "model.hidden_features=16"],
    "avalanche-vae": ["model.base_channels=4", "model.latent_dim=8"],
    "baseline-patch": CROP,
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: tiny networks, one thread


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    path = tmp_path_factory.mktemp("patches") / "featured.zarr"
    store.write_cube(make_featured_cube(ny=96, nx=96, nt=4, px_per_blob=768), path)
    return path


@pytest.fixture(scope="module")
def trained(cube, tmp_path_factory):
    """avalanche-cnn, avalanche-vae and Sinha's rule trained and predicted on the tiny cube (name -> run dir)."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for name, extra in SMALL.items():
        out[name] = train(cube, name, root / name, profile="cpu-demo", overrides=[*TINY, *extra], device="cpu")
        predict(cube, out[name], name=name, batch_size=16, device="cpu")
    return out


# --- the network on patches ------------------------------------------------------------

def test_predict_patches_paints_each_patch_with_the_model_on_its_centre_crop():
    torch.manual_seed(0)
    model = build_model("patch_cnn", 3, width_divisor=16, hidden_features=8).eval()
    image = torch.randn(3, 37, 45)  # 4 x 5 patches of 9 px, a ragged margin
    direct = torch.stack([
        torch.stack([patch_probability(model, center_crop(c, c, 5)[0][None])[0] for c in row])
        for row in [[image[:, i * 9:(i + 1) * 9, j * 9:(j + 1) * 9] for j in range(5)] for i in range(4)]
    ])
    reads = []

    def read(y0, y1):
        reads.append((y0, y1))
        return image[:, y0:y1]

    bands = list(predict_patches(lambda x: patch_probability(model, x), read, 37, 45, 9, 5, band_rows=7, batch_size=3))
    assert [y0 for y0, _ in bands] == list(range(0, 37, 7)) and reads == [(y, min(y + 7, 37)) for y in range(0, 37, 7)]
    out = torch.cat([b for _, b in bands])
    expected = direct.repeat_interleave(9, 0).repeat_interleave(9, 1)
    torch.testing.assert_close(out[:36, :45], expected, rtol=0, atol=1e-6)
    assert torch.isnan(out[36:]).all() and not torch.isnan(out[:36]).any()
    with pytest.raises(InputError, match="holds no"):
        list(predict_patches(lambda x: x, read, 8, 45, 9, 5, band_rows=7))


def test_the_baseline_scores_patches_by_counting_detected_pixels():
    det = build_model("baseline", 3, method="simple", min_object_pixels=1, patch_min_pixels=4)
    x = torch.zeros(2, 3, 8, 8)
    x[:, 2] = 20.0  # runout slope
    x[1, :2, 2:4, 2:4] = 6.0  # 4 bright pixels: detected
    p = patch_probability(det, x)
    n = (det(x) >= 0.5).flatten(1).sum(1)
    assert p.shape == (2,) and n[0] == 0 and n[1] == 4
    assert p[0] < 0.5 <= p[1]
    unet = build_model("unet", 3, base_channels=4, depth=2).eval()
    with pytest.raises(InputError, match="maps"):
        patch_probability(unet, x)


def test_balanced_subset_has_equal_classes_and_is_deterministic():
    rng = np.random.default_rng(3)
    positive = rng.random(200) < 0.1
    a, b = balanced_subset(positive, seed=0), balanced_subset(positive, seed=0)
    np.testing.assert_array_equal(a, b)
    assert positive[a].sum() == (~positive[a]).sum() == positive.sum()  # every positive, as many negatives
    assert set(np.flatnonzero(positive)) <= set(a.tolist()) and np.all(np.diff(a) > 0)
    assert not np.array_equal(a, balanced_subset(positive, seed=1))
    few_negatives = balanced_subset(~positive, seed=0)
    assert (~positive[few_negatives]).sum() == positive[few_negatives].sum() == positive.sum()
    assert balanced_subset(np.zeros(5, dtype=bool)).size == 0


# --- operating points on validation ------------------------------------------------------

def test_classifier_threshold_is_tuned_on_validation_when_the_preset_says_so():
    p = load_preset("avalanche-cnn", "cpu-demo", [*SMALL["avalanche-cnn"], "chips.size=16"])
    assert p.train.tune_threshold and p.model.prediction_level == LEVEL_PATCH
    torch.manual_seed(0)
    model = build_model("patch_cnn", 3, width_divisor=16, hidden_features=8)
    x = torch.randn(24, 3, 12, 12)
    y = torch.zeros(24, 12, 12, dtype=torch.uint8)
    y[::3, 5, 5] = 1
    batches = [(x[:12], y[:12], torch.arange(12)), (x[12:], y[12:], torch.arange(12, 24))]
    _, value, details = validate(model, batches, p.training, torch.device("cpu"))
    model.eval()
    with torch.no_grad():
        prob = patch_probability(model, x).numpy()
    target = chip_targets(y, 1).numpy()
    best, best_f1 = metrics.best_threshold(prob, target, "f1")
    assert details["threshold"] == pytest.approx(best) and value == pytest.approx(best_f1)
    fixed = load_preset("avalanche-cnn", "cpu-demo", [*SMALL["avalanche-cnn"], "train.tune_threshold=false"])
    _, value, details = validate(model, batches, fixed.training, torch.device("cpu"))
    assert "threshold" not in details
    assert value == pytest.approx(metrics.pixel_scores(prob, target, 0.5)["f1"])


def test_runs_record_their_level_and_validated_operating_point(trained):
    cnn = runs.load_run(trained["avalanche-cnn"]).info
    assert cnn.prediction_level == LEVEL_PATCH and cnn.input_size == 12
    assert 0 < cnn.threshold < 1 and cnn.threshold == pytest.approx(cnn.extra["threshold"])
    vae = runs.load_run(trained["avalanche-vae"])
    assert vae.info.prediction_level == LEVEL_PATCH and "score_threshold" in vae.info.extra
    rule = runs.load_run(trained["baseline-patch"])
    assert rule.info.prediction_level == LEVEL_PATCH and rule.info.task == "baseline"
    assert rule.model.patch_min_pixels == int(rule.info.extra["patch_min_pixels"]) >= 1
    assert load_preset("baseline").model.prediction_level == LEVEL_PIXEL
    with pytest.raises(InputError, match="level"):
        load_preset("avalanche-fcn", overrides=["model.level=patch"])


# --- train -> predict -> evaluate ---------------------------------------------------------

def test_predicted_patches_equal_the_model_on_the_validation_crops(cube, trained):
    """What predict wrote at a chip is the network applied to that chip exactly as validation fed it."""
    run = trained["avalanche-cnn"]
    loaded = runs.load_run(run)
    info = loaded.info
    p = load_preset("avalanche-cnn", "cpu-demo", [*TINY, *SMALL["avalanche-cnn"]])
    data = prepare_data(schema.open_cube(cube), p, plan=info.split_plan, stats=(info.norm_mean, info.norm_std))
    stream = ChipStream(
        cube, data.resolved, info.norm_mean, info.norm_std, data.blocks["test"], 16,
        batch_size=64, shuffle=False, augment=p.augment, train=False,
    )
    ds = schema.open_cube(cube)
    pred = ds["pred_avalanche-cnn"]
    assert pred.attrs[ATTR_LEVEL] == LEVEL_PATCH and pred.attrs[schema.ATTR_TTA] == 1
    assert pred.attrs[schema.ATTR_THRESHOLD] == pytest.approx(info.threshold)
    # chip ids follow the blocks' order: id -> (pair, y0, x0)
    origins = [
        (b.pair, b.window[0] + int(oy), b.window[2] + int(ox))
        for b in data.blocks["test"]
        for oy, ox in zip(b.oy, b.ox, strict=True)
    ]
    values = pred.values
    seen = 0
    for x, _, ids in stream:
        assert x.shape[-2:] == (12, 12)
        with torch.no_grad():
            direct = patch_probability(loaded.model, x).numpy()
        for score, i in zip(direct, ids.tolist(), strict=True):
            pair, y0, x0 = origins[i]
            np.testing.assert_allclose(values[pair, y0:y0 + 16, x0:x0 + 16], score, rtol=0, atol=1e-5)
            seen += 1
    assert seen == len(data.tables["test"]) > 0


def test_evaluate_scores_patch_presets_on_balanced_and_unbalanced_test_sets(cube, trained, tmp_path):
    names = list(SMALL)
    out = evaluate(cube, names, out_json=tmp_path / "e.json")
    assert out["scored_on"] == "patches"
    assert out["columns"] == ["accuracy", "balanced_accuracy", "precision", "recall", "f1"]
    results = out["predictions"]
    sets = {n: results[f"pred_{n}"]["test_sets"] for n in names}
    for n in names:
        bal, unb = sets[n][BALANCED], sets[n][UNBALANCED]
        assert bal["n_positive"] == bal["n_negative"] > 0 and bal["n_positive"] == unb["n_positive"]
        assert unb["n_negative"] > bal["n_negative"]
        assert bal["tp"] + bal["fn"] == bal["n_positive"]
        assert unb["tp"] + unb["fp"] + unb["fn"] + unb["tn"] == unb["n_patches"]
    # the CNN and Sinha's rule on the same patches (same split, chips, crop, labels and balanced draw);
    # the VAE sees whole chips, so more of them hold debris
    cnn, rule, vae = (results[f"pred_{n}"] for n in ("avalanche-cnn", "baseline-patch", "avalanche-vae"))
    for ts in (BALANCED, UNBALANCED):
        for key in ("n_positive", "n_negative"):
            assert cnn["test_sets"][ts][key] == rule["test_sets"][ts][key]
    assert (cnn["input_px"], rule["input_px"], vae["input_px"]) == (12, 12, 16)
    assert vae["test_sets"][UNBALANCED]["n_positive"] >= cnn["test_sets"][UNBALANCED]["n_positive"]
    lines = out["table"].splitlines()
    assert lines[0].split()[:4] == ["Method", "Test", "set", "Patches"]
    for n in names:
        assert [ln.split()[1] for ln in lines[2:8] if ln.split()[0] == n] == [BALANCED, UNBALANCED]
    assert "seed 0" in lines[-1]
    again = evaluate(cube, names)
    assert again["predictions"] == results  # deterministic
    # the unbalanced set is every labelled test chip of the run, labelled on its centre crop
    info = runs.load_run(trained["avalanche-cnn"]).info
    p = load_preset("avalanche-cnn", "cpu-demo", [*TINY, *SMALL["avalanche-cnn"], "chips.eval_policy=all"])
    data = prepare_data(schema.open_cube(cube), p, plan=info.split_plan, stats=(info.norm_mean, info.norm_std))
    table = data.tables["test"]
    lab = schema.open_cube(cube)[schema.LABEL].values
    origins = zip(table.pair, table.y0, table.x0, strict=True)
    crops = np.stack([lab[pa, y0 + 2:y0 + 14, x0 + 2:x0 + 14] for pa, y0, x0 in origins])
    targets = chip_targets(torch.from_numpy(crops), 1).numpy()
    assert sets["avalanche-cnn"][UNBALANCED]["n_positive"] == int((targets == 1).sum())
    assert sets["avalanche-cnn"][UNBALANCED]["n_patches"] == int((targets != 255).sum())


def test_a_map_next_to_patch_classifiers_is_scored_on_the_same_patches(cube, trained, tmp_path):
    over = [*TINY, "split.kind=tiles"]
    run = train(cube, "baseline", tmp_path / "map", profile="cpu-demo", overrides=over, device="cpu")
    predict(cube, run, name="map-baseline", tta=False, batch_size=16, device="cpu", overwrite=True)
    out = evaluate(cube, ["avalanche-cnn", "map-baseline"])
    m = out["predictions"]["pred_map-baseline"]
    assert m["level"] == LEVEL_PIXEL and m["patch_score"] == "max over the crop" and m["patch_px"] == 16
    assert m["test_sets"][BALANCED]["n_positive"] == m["test_sets"][BALANCED]["n_negative"]
    assert evaluate(cube, ["map-baseline"])["scored_on"] == "pixels"
