"""The radar change-detection baselines: what each tuned setting is for, the old detector kept, run round trips.

Scenes are built here as tensors (N, 4, H, W): VV diff, VH diff (dB), slope, PAR (degrees),
with speckle, debris, bright confounders and speckle blobs where a test needs them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sarcube import models
from sarcube.errors import InputError
from sarcube.models import baseline, baseline_image, baseline_tuning, metrics
from sarcube.models.inference import DIHEDRAL_TRANSFORMS, predict_scene

SIZE = 64
DEBRIS_DB = 5.0
#: channels of the 4-channel scenes
VV, VH, SLOPE, PAR = range(4)


def _scene(seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """(1, 3, 64, 64) VV diff, VH diff (dB, speckle-like noise), slope (degrees) and the debris label.

    A large bright blob on 20-degree runout terrain (the avalanche), a tiny bright blob
    (speckle-sized), and a large bright blob on a 45-degree slope (release area, not debris).
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(1, 3, SIZE, SIZE)
    x[0, :2] = torch.randn(2, SIZE, SIZE, generator=g)
    x[0, 2] = 20.0
    label = np.zeros((1, SIZE, SIZE), dtype=np.uint8)
    x[0, :2, 10:20, 10:20] += DEBRIS_DB
    label[0, 10:20, 10:20] = 1
    x[0, :2, 40:42, 10:12] += DEBRIS_DB  # 4 pixels: below the minimum object size
    x[0, 2, 35:55, 35:55] = 45.0
    x[0, :2, 40:50, 40:50] += DEBRIS_DB  # bright, but too steep for debris
    return x, label


class Scene:
    """A batch of ``n`` chips on flat runout terrain (20 degrees, PAR 30) to paint on."""

    def __init__(self, n: int = 4, size: int = SIZE, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.x = torch.zeros(n, 4, size, size)
        self.x[:, SLOPE] = 20.0
        self.x[:, PAR] = 30.0
        self.label = np.zeros((n, size, size), dtype=np.uint8)

    def gaussian(self, sigma_db: float) -> Scene:
        self.x[:, :2] += torch.from_numpy(self.rng.normal(0.0, sigma_db, self.x[:, :2].shape).astype(np.float32))
        return self

    def speckle(self, looks: int) -> Scene:
        """dB change of two gamma-distributed (``looks``-look) intensities: heavy-tailed, as SAR speckle."""
        ref, act = 10 * np.log10(self.rng.gamma(looks, 1.0 / looks, (2, *self.x[:, :2].shape)))
        self.x[:, :2] += torch.from_numpy((act - ref).astype(np.float32))
        return self

    def debris(self, i: int, y: int, x: int, h: int, w: int, db: float = DEBRIS_DB) -> Scene:
        self.x[i, :2, y : y + h, x : x + w] += db
        self.label[i, y : y + h, x : x + w] = 1
        return self

    def bright(self, i: int, y: int, x: int, h: int, w: int, db: float = DEBRIS_DB, **terrain: float) -> Scene:
        """A bright change that is not debris, on terrain ``slope=``/``par=`` if given."""
        self.x[i, :2, y : y + h, x : x + w] += db
        for name, value in terrain.items():
            self.x[i, {"slope": SLOPE, "par": PAR}[name], y : y + h, x : x + w] = value
        return self

    def blocks(self, every: int = 20, size: int = 10, db: float = DEBRIS_DB) -> Scene:
        """Square debris of ``size`` px on a regular grid of every chip."""
        for i in range(self.x.shape[0]):
            for y in range(4, self.x.shape[-2] - size, every):
                for x in range(4, self.x.shape[-1] - size, every):
                    self.debris(i, y, x, size, size, db)
        return self


def _detector(**cfg) -> baseline.BaselineDetector:
    base = {"par_channel": PAR, "k_std": 2.0, "min_change_db": 1.5, "min_object_pixels": 1}
    return models.build_model("baseline", 4, **{**base, **cfg})


def _only(name: str) -> dict[str, tuple[float, ...]]:
    """The operational grid of one setting (the others stay as built)."""
    return {name: baseline_tuning.OPERATIONAL_GRID[name]}


def _f1(det, x, label) -> float:
    return float(metrics.pixel_scores(det(x), label)["f1"])


def _brute(grid_name: str, values, x, label, **cfg) -> dict[float, float]:
    return {v: _f1(_detector(**{**cfg, grid_name: v}), x, label) for v in values}


# --- each setting's tuning picks the right value -----------------------------------------

def test_median_filter_is_switched_on_for_speckled_debris():
    s = Scene(seed=1).speckle(looks=3).blocks()
    det = _detector()
    result = baseline.tune_threshold(det, s.x, s.label, grid={"median_px": (1, 3, 5, 7)})
    brute = _brute("median_px", (1, 3, 5, 7), s.x, s.label)
    assert det.median_px > 1 and result.values == {"median_px": float(det.median_px)}
    assert result.score == pytest.approx(max(brute.values())) and result.score > brute[1] + 0.2


def test_boxcar_filter_is_switched_on_for_noisy_debris():
    s = Scene(seed=2).gaussian(2.0).blocks()
    det = _detector()
    result = baseline.tune_threshold(det, s.x, s.label, grid={"boxcar_px": (1, 3, 5, 7)})
    brute = _brute("boxcar_px", (1, 3, 5, 7), s.x, s.label)
    assert det.boxcar_px > 1 and result.score == pytest.approx(max(brute.values()))
    assert result.score > brute[1] + 0.1


def test_k_is_the_best_of_its_grid_and_the_threshold_is_the_windows_own():
    s = Scene(seed=3).gaussian(1.0).blocks(db=3.5)
    s.x[2:, :2] *= 0.5  # quieter windows: the same k gives a lower threshold there
    grid = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0)
    det = _detector(min_change_db=0.0)
    result = baseline.tune_threshold(det, s.x, s.label, grid={"k_std": grid})
    brute = _brute("k_std", grid, s.x, s.label, min_change_db=0.0)
    best = max(brute.values())
    assert det.k_std == min(k for k, v in brute.items() if v == best) and result.score == pytest.approx(best)
    change = det.filtered_change(s.x)
    quiet = ~torch.from_numpy(s.label.astype(bool)).unsqueeze(1)
    centre, sigma = baseline_image.robust_statistics(change, quiet, baseline.MIN_STATS_PX)
    assert float(sigma[2:].max()) < 0.7 * float(sigma[:2].min())
    # MAD-sigma of the mean of two unit-normal channels
    np.testing.assert_allclose(sigma[:2].flatten().numpy(), 2**-0.5, atol=0.1)


def test_least_contrast_removes_a_faint_uniform_change():
    s = Scene(seed=4).gaussian(0.1).blocks(every=30)
    s.bright(0, 40, 0, 24, 64, db=1.2)  # wet snow: faint, wide, not debris
    grid = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
    det = _detector()
    baseline.tune_threshold(det, s.x, s.label, grid={"min_change_db": grid})
    assert det.min_change_db == 1.5  # the smallest floor above 1.2 dB (ties keep the smaller)
    assert _f1(det, s.x, s.label) == 1.0


def test_slope_mask_removes_a_bright_steep_slope():
    s = Scene(seed=5).gaussian(0.3).blocks(every=30)
    s.bright(1, 30, 30, 20, 20, slope=47.0)  # a bright release slope
    det = _detector()
    baseline.tune_threshold(det, s.x, s.label, grid=_only("max_runout_slope_deg"))
    assert det.max_runout_slope_deg == 45.0  # the loosest mask that removes it
    assert float(det(s.x)[1, 0, 30:50, 30:50].max()) == 0.0


def test_par_mask_removes_a_bright_unreachable_cell():
    s = Scene(seed=6).gaussian(0.3).blocks(every=30)
    s.bright(2, 30, 30, 20, 20, par=15.0)  # no release zone reaches it
    det = _detector()
    baseline.tune_threshold(det, s.x, s.label, grid=_only("min_par_deg"))
    assert det.min_par_deg == 18.0
    assert float(det(s.x)[2, 0, 30:50, 30:50].max()) == 0.0


def test_minimum_object_size_drops_speckle_blobs():
    s = Scene(seed=7).gaussian(0.3).blocks(every=32, size=12)
    for i in range(4):
        for y, x, h, w in ((0, 20, 2, 3), (20, 0, 1, 2), (50, 20, 3, 2), (20, 50, 2, 2)):  # 2..6 px blobs
            s.bright(i, y, x, h, w)
    det = _detector()
    baseline.tune_threshold(det, s.x, s.label, grid=_only("min_object_pixels"))
    assert det.min_object_pixels == 8 and _f1(det, s.x, s.label) == 1.0


def test_hysteresis_grows_objects_into_their_fainter_fringe():
    s = Scene(seed=8).gaussian(0.3)
    for i in range(4):
        s.debris(i, 10, 10, 16, 16, db=2.2)  # fringe
        s.x[i, :2, 15:21, 15:21] += 3.0  # bright core (+5.2 dB)
    det = _detector(k_std=1.0, min_change_db=3.0)
    baseline.tune_threshold(det, s.x, s.label, grid=_only("hysteresis"))
    assert det.hysteresis == 0.5 and _f1(det, s.x, s.label) > 0.95


def _hard_scene(seed: int) -> Scene:
    """Speckle, debris of several sizes, bright confounders on steep and hardly reachable terrain, speckle blobs.

    The confounders lie just inside the first detector's fixed masks (slope <= 35, PAR >= 20).
    """
    s = Scene(n=6, seed=seed).speckle(looks=4)
    for i in range(6):
        s.debris(i, 4, 4, 14, 12).debris(i, 40, 6, 10, 16).debris(i, 44, 44, 12, 12)
        s.bright(i, 6, 40, 16, 16, slope=33.0).bright(i, 26, 24, 10, 12, par=22.0)
        s.bright(i, 30, 54, 2, 2, db=8.0)
    return s


@pytest.fixture(scope="module")
def tuned() -> tuple[baseline.BaselineDetector, baseline.TuneResult, Scene]:
    """The operational detector tuned with its default grid on a hard validation scene."""
    val = _hard_scene(10)
    det = models.build_model("baseline", 4, par_channel=PAR)
    return det, baseline.tune_threshold(det, val.x, val.label), val


def test_full_search_on_a_hard_scene_beats_the_simple_detector_on_another(tuned):
    det, result, val = tuned
    test = _hard_scene(11)
    assert set(result.values) == set(baseline_tuning.OPERATIONAL_GRID) and result.evaluations > 20
    assert det.median_px > 1 or det.boxcar_px > 1
    assert det.max_runout_slope_deg < 33.0 and det.min_par_deg > 22.0
    simple = models.build_model("baseline", 4, par_channel=PAR, method="simple")
    baseline.tune_threshold(simple, val.x, val.label)
    new, old = _f1(det, test.x, test.label), _f1(simple, test.x, test.label)
    assert new > 0.8 and new > old + 0.1, (new, old)
    # same settings, same data: the same choice (deterministic)
    again = models.build_model("baseline", 4, par_channel=PAR)
    assert baseline.tune_threshold(again, val.x, val.label) == result


def test_tuning_curves_show_the_score_around_the_choice(tuned, tmp_path):
    """What tuning.png plots: each setting's grid scored with the others at their chosen values."""
    import matplotlib.image as mpimg

    from sarcube.pipelines import runs

    det, result, _ = tuned
    assert det.tuning == result
    assert set(result.curves) == set(baseline_tuning.OPERATIONAL_GRID)
    for name, (grid, scores) in result.curves.items():
        assert grid == tuple(float(v) for v in baseline_tuning.OPERATIONAL_GRID[name]) and len(scores) == len(grid)
        chosen = grid.index(result.values[name])
        # converged: the chosen value is the best of its grid and scores what the search reports
        assert scores[chosen] == max(scores) == pytest.approx(result.score), name
    assert any(len(set(scores)) > 1 for _, scores in result.curves.values())  # a curve, not a flat line
    png = mpimg.imread(runs.plot_tuning(tmp_path, result, "f1", "baseline"))
    assert png.shape[0] > 400 and png.shape[1] > 1000  # eight readable panels in two rows


def test_tuned_settings_survive_a_state_dict_round_trip(tuned):
    det, _, val = tuned
    fresh = models.build_model("baseline", 4, par_channel=PAR)
    assert fresh.settings() != det.settings()
    fresh.load_state_dict(det.state_dict())
    assert fresh.settings() == det.settings()
    torch.testing.assert_close(fresh(val.x), det(val.x), rtol=0, atol=0)
    assert {f"tuned_{k}" for k in baseline.TUNABLE} == set(det.state_dict())


def _confounded_cube():
    """The chip tests' featured cube (debris on 10..30 degree slopes) plus bright 34-degree slopes and speckle."""
    from sarcube.datacube import schema
    from test_chips import make_featured_cube

    ds = make_featured_cube(ny=128, nx=128, nt=4, seed=3, px_per_blob=200)
    rng = np.random.default_rng(3)
    slope = ds[schema.SLOPE].values.copy()
    slope[:, 60:72] = 34.0  # steep strips, no debris labelled there
    ds[schema.SLOPE].values = slope
    label = ds[schema.LABEL].values
    for name in (schema.VV_DIFF, schema.VH_DIFF):
        v = ds[name].values + rng.normal(0.0, 1.0, ds[name].shape)
        v[:, :, 60:72] += 4.0
        v[:, :, 60:72] = np.where(label[:, :, 60:72] == 1, v[:, :, 60:72] - 4.0, v[:, :, 60:72])
        ds[name].values = v.astype(np.float32)
    label[:, :, 60:72] = np.where(label[:, :, 60:72] == 1, schema.LABEL_UNKNOWN, label[:, :, 60:72])
    ds[schema.LABEL].values = label
    return ds


def test_train_predict_evaluate_operational_vs_simple(tmp_path):
    """Both presets through train (tuned on pair 1) -> predict -> evaluate (pair 2): measured, printed."""
    from sarcube.datacube import store
    from sarcube.pipelines import runs
    from sarcube.pipelines.evaluate import evaluate
    from sarcube.pipelines.predict import predict
    from sarcube.pipelines.train import train

    cube = tmp_path / "cube.zarr"
    store.write_cube(_confounded_cube(), cube)
    overrides = ["split.test=[2]", "split.val=[1]", "chips.size=32", "split.tile_size_m=640"]
    names = {}
    for preset in ("baseline-simple", "baseline"):
        run = train(cube, preset, tmp_path / preset, profile="cpu-demo", overrides=overrides, device="cpu")
        info = runs.load_run(run).info
        if preset == "baseline":
            tuned_settings = runs.load_run(run).model.settings()
            assert {k: info.extra[k] for k in baseline_tuning.OPERATIONAL_GRID} == {
                k: tuned_settings[k] for k in baseline_tuning.OPERATIONAL_GRID
            }
            assert tuned_settings["max_runout_slope_deg"] < 34.0
        else:
            assert set(info.extra) == {"k_std"} and info.model_cfg["k_std"] == info.extra["k_std"]
        names[preset] = predict(cube, run, name=preset.replace("-", "_"), pairs=[2], tta=False, device="cpu")
    scores = evaluate(cube, list(names.values()))["predictions"]
    new, old = scores[names["baseline"]]["f1"], scores[names["baseline-simple"]]["f1"]
    print(f"test-pair pixel F1: baseline {100 * new:.1f}, baseline-simple {100 * old:.1f}")
    assert new > old + 0.1, (new, old)


# --- output semantics --------------------------------------------------------------------

def test_output_is_probability_like_ranked_and_dihedral_equivariant():
    s = _hard_scene(13)
    s.x[0, VV, 0:3, 0:5] = float("nan")
    det = _detector(median_px=3, boxcar_px=3, hysteresis=0.75, min_object_pixels=8, max_runout_slope_deg=30.0)
    p = det(s.x)
    assert p.shape == (6, 1, SIZE, SIZE) and float(p.min()) >= 0.0 and float(p.max()) <= 1.0
    assert float(p[:, 0, 6:22, 40:56].max()) == 0.0  # steep: outside the runout zone
    assert float(p[0, 0, 0:3, 0:5].max()) == 0.0  # NaN input
    detected = p >= 0.5
    assert metrics.pixel_scores(detected, s.label)["f1"] > 0.8
    assert metrics.average_precision(p, s.label) > 0.8
    # the speckle blob: above its threshold but too small, ranked between quiet and detected pixels
    assert 0.25 < float(p[:, 0, 30:32, 54:56].max()) < 0.5
    for t in DIHEDRAL_TRANSFORMS:
        torch.testing.assert_close(det(t.apply(s.x)), t.apply(p), rtol=0, atol=0)
    # a scene tiled into windows: TTA repeats the same map
    image = s.x[0]
    tiled = predict_scene(det, image, 32, tta=False)
    torch.testing.assert_close(predict_scene(det, image, 32, tta=True), tiled, equal_nan=True)
    assert torch.isnan(tiled[0:3, 0:5]).all()  # predict marks NaN inputs as nodata


def test_filled_nodata_and_windows_without_runout():
    s = Scene(n=2, seed=14).gaussian(0.5).blocks()
    s.x[0, :2, :, :8] = 0.0  # NaN filled with 0 by the chip reader: not data
    s.x[1, SLOPE] = 60.0  # nothing but steep terrain
    det = _detector()
    p = det(s.x)
    assert float(p[0, 0, :, :8].max()) == 0.0 and float(p[1].max()) == 0.0
    assert metrics.pixel_scores(p[:1], s.label[:1])["f1"] > 0.9


def test_filters_keep_nan_and_match_plain_filters():
    g = torch.Generator().manual_seed(0)
    img = torch.randn(2, 1, 16, 16, generator=g)
    box = baseline_image.boxcar_filter(img, 3)
    ref = F.avg_pool2d(F.pad(img, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    torch.testing.assert_close(box, ref)
    med = baseline_image.median_filter(img, 3)
    assert float(med[0, 0, 5, 5]) == float(img[0, 0, 4:7, 4:7].median())
    img[0, 0, 5, 5] = float("nan")
    assert torch.isnan(baseline_image.median_filter(img, 3)[0, 0, 5, 5])
    assert torch.isfinite(baseline_image.median_filter(img, 3)[0, 0, 5, 6])
    with pytest.raises(InputError, match="odd"):
        baseline_image.median_filter(img, 4)


# --- Sinha's rule for the patch presets -------------------------------------------------

def test_patch_rule_on_the_operational_detector():
    """Sinha et al.: a patch is positive from a tuned number of detected pixels on."""
    s = Scene(n=8, size=32, seed=15).speckle(looks=4)
    labels = np.array([1, 0, 1, 0, 1, 0, 1, 0], dtype=np.uint8)
    for i in range(8):
        if labels[i]:
            s.debris(i, 8, 8, 12, 12)
        else:
            s.bright(i, 4, 4, 20, 20, slope=48.0)  # a bright steep slope: no debris
    det = models.build_model("baseline", 4, par_channel=PAR)
    result = baseline.tune_threshold(det, s.x, labels, level="patch", metric="balanced_accuracy")
    assert result.score == 1.0 and result.values["patch_min_pixels"] == det.patch_min_pixels >= 1
    assert "median_px" in result.values
    p = det.patch_probability(s.x)
    assert p.shape == (8,) and ((p >= 0.5).numpy() == labels.astype(bool)).all()


def test_tune_threshold_patch_level_simple():
    x, _ = _scene(2)
    patches = torch.cat([x[..., 8:24, 8:24], x[..., 0:16, 40:56], x[..., 48:64, 0:16], x[..., 8:24, 4:20]])
    labels = np.array([1, 0, 0, 1], dtype=np.uint8)
    # debris fills 40 % of a positive patch: whole-patch statistics need a small k
    det = models.build_model("baseline", 3, method="simple", min_object_pixels=1, window=0, k_std=0.5)
    counts = det.detected_pixels(patches)
    assert counts[0] > 50 and counts[3] > 50 and counts[1] < 20 and counts[2] < 20, counts
    result = baseline.tune_threshold(det, patches, labels, level="patch", metric="balanced_accuracy")
    assert set(result.values) == {"patch_min_pixels"} and result.score == 1.0
    assert det.k_std == 0.5
    p = det.patch_probability(patches)
    assert p.shape == (4,)
    assert ((p >= 0.5).numpy() == labels.astype(bool)).all()


# --- baseline-simple: the first detector, exactly ----------------------------------------

class _FirstDetector:
    """The first baseline's forward and k tuning, as they were written (the reference)."""

    def __init__(self, k_std=2.0, min_change_db=1.5, window=31, slope=35.0, par=20.0, par_channel=None, min_px=10):
        self.k, self.floor, self.window, self.slope, self.par = k_std, min_change_db, window, slope, par
        self.par_channel, self.min_px = par_channel, min_px

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        change = 0.5 * (x.float()[:, 0:1] + x.float()[:, 1:2])
        valid = torch.isfinite(change)
        d = torch.where(valid, change, torch.zeros_like(change)).double()
        v = valid.double()
        if self.window == 0:
            count = v.sum((-2, -1), keepdim=True).clamp_min(1)
            mean = d.sum((-2, -1), keepdim=True) / count
            var = (d * d).sum((-2, -1), keepdim=True) / count - mean**2
        else:
            pool = {"kernel_size": self.window, "stride": 1, "padding": self.window // 2, "count_include_pad": True}
            count = F.avg_pool2d(v, **pool).clamp_min(1e-12)
            mean = F.avg_pool2d(d, **pool) / count
            var = F.avg_pool2d(d * d, **pool) / count - mean**2
        t = (mean + self.k * var.clamp_min(0).sqrt()).clamp_min(self.floor).to(change.dtype).expand_as(change)
        prob = torch.sigmoid((change - t) / 0.5)
        mask = x[:, 2:3] <= self.slope
        if self.par_channel is not None:
            mask &= x[:, self.par_channel : self.par_channel + 1] >= self.par
        prob = torch.where(mask & torch.isfinite(x).all(dim=1, keepdim=True), prob, torch.zeros_like(prob))
        det = (prob >= 0.5).numpy()
        small = np.zeros_like(det)
        if self.min_px > 1:
            for i in range(det.shape[0]):
                labels, n = metrics.connected_components(det[i, 0], 8)
                if n:
                    too_small = np.bincount(labels.ravel()) < self.min_px
                    too_small[0] = False
                    small[i, 0] = too_small[labels]
        return torch.where(torch.from_numpy(small), 0.5 * prob, prob)

    def tune(self, x, label, grid=(0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0)) -> float:
        best = None
        for k in grid:
            self.k = k
            score = metrics.pixel_scores(self(x)[:, 0] >= 0.5, label)["f1"]
            if best is None or score > best[1]:
                best = (k, score)
        self.k = best[0]
        return best[0]


@pytest.mark.parametrize(
    ("cfg", "ref"),
    [
        ({}, {}),
        ({"window": 0, "min_change_db": 1.0}, {"window": 0, "min_change_db": 1.0}),
        ({"par_channel": 3, "min_object_pixels": 1}, {"par_channel": 3, "min_px": 1}),
        ({"k_std": 1.0, "max_runout_slope_deg": 30.0, "min_par_deg": 28.0, "par_channel": 3},
         {"k_std": 1.0, "slope": 30.0, "par": 28.0, "par_channel": 3}),
    ],
)
def test_simple_method_is_the_first_detector(cfg, ref):
    x = _hard_scene(16).x
    x[0, 0, 3, 3] = float("nan")
    det = models.build_model("baseline", 4, method="simple", **cfg)
    torch.testing.assert_close(det(x), _FirstDetector(**ref)(x), rtol=0, atol=0)


def test_baseline_simple_preset_tunes_k_as_before():
    from sarcube.pipelines.presets import load_preset

    preset = load_preset("baseline-simple", "cpu-demo")
    assert preset.model.params["method"] == "simple" and preset.train.val_steps == 10
    s = _hard_scene(17)
    det = models.build_model(preset.model.name, 4, **preset.model.params)
    result = baseline.tune_threshold(det, s.x, s.label)
    first = _FirstDetector(par_channel=3)
    assert result.values == {"k_std": first.tune(s.x, s.label)}
    torch.testing.assert_close(det(s.x), first(s.x), rtol=0, atol=0)
    operational = load_preset("baseline", "cpu-demo")
    assert operational.model.params["method"] == "operational" and operational.chips.eval_policy == "all"
    assert operational.train.val_steps == 0  # every validation chip, both classes


def test_simple_method_detects_debris_drops_small_and_steep():
    x, label = _scene()
    det = models.build_model("baseline", 3, method="simple")
    assert models.count_parameters(det) == 0
    p = det(x)
    hit = p[0, 0] >= 0.5
    assert hit[10:20, 10:20].float().mean() > 0.8
    assert not hit[40:42, 10:12].any() and not hit[35:55, 35:55].any()
    assert metrics.object_scores(p, label) == {"tp": 1, "fn": 0, "fp": 0}
    assert float(p[0, 0, 40:42, 10:12].max()) > 0.25


def test_bad_configuration():
    with pytest.raises(InputError, match="slope_channel"):
        models.build_model("baseline", 2)
    with pytest.raises(InputError, match="window"):
        models.build_model("baseline", 3, window=10)
    with pytest.raises(InputError, match="shape"):
        models.build_model("baseline", 3)(torch.zeros(1, 2, 8, 8))
    with pytest.raises(InputError, match="method"):
        models.build_model("baseline", 3, method="fancy")
    with pytest.raises(InputError, match="median_px"):
        models.build_model("baseline", 3, median_px=4)
    with pytest.raises(InputError, match="no speckle filter"):
        models.build_model("baseline", 3, method="simple", median_px=3)
    with pytest.raises(InputError, match="hysteresis"):
        models.build_model("baseline", 3, hysteresis=0.0)
    det = models.build_model("baseline", 3)
    x, label = _scene()
    with pytest.raises(InputError, match="metric"):
        baseline.tune_threshold(det, x, label, metric="auc")
    with pytest.raises(InputError, match="cannot tune"):
        simple = models.build_model("baseline", 3, method="simple")
        baseline.tune_threshold(simple, x, label, grid={"median_px": (1, 3)})
    with pytest.raises(InputError, match="empty"):
        baseline.tune_threshold(det, x, label, grid={"k_std": ()})
    with pytest.raises(InputError, match="level"):
        baseline.tune_threshold(det, x, label, level="scene")
