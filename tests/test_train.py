"""Training: loss goes down, resume == uninterrupted, every preset runs a step, run dir, loader, errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from sarcube.datacube import chips, schema, store
from sarcube.errors import CheckpointError, CubeExistsError, MissingVariableError, TrainingDataError
from sarcube.models.augment import Augmenter
from sarcube.models.config import AugmentConfig
from sarcube.models.inference import DIHEDRAL_TRANSFORMS
from sarcube.models.training import compute_loss
from sarcube.pipelines import runs
from sarcube.pipelines.cli import main
from sarcube.pipelines.loaders import ChipStream, make_loader
from sarcube.pipelines.presets import available, load_preset
from sarcube.pipelines.train import prepare_data, train
from test_chips import make_featured_cube

#: shrink the cpu-demo profile further: 16 px chips on 16 px (320 m) tiles, one worker-less epoch
TINY = [
    "chips.size=16",
    "split.tile_size_m=320",
    "train.num_workers=0",
    "train.epochs=1",
    "train.steps_per_epoch=3",
    "train.val_steps=2",
    "train.batch_size=8",
]
SMALL_NETS = {
    "avalanche-fcn": ["model.base_channels=4", "model.depth=2"],
    "avalanche-fcn-concat": ["model.base_channels=4", "model.depth=2"],
    "avalanche-cnn": ["augment.crop=12", "model.width_divisor=16", "model.hidden_features=16"],
    "avalanche-vae": ["model.base_channels=4", "model.latent_dim=8"],
    "landslide-unet": ["model.base_width=4", "model.layers=[1, 1, 1, 1]", "model.decoder_channels=[32, 16, 8, 4, 4]"],
    # the module cube has 2 acquisitions per relative orbit, and a series stays within one
    "glacier-3dconv": ["model.base_channels=2", "model.depth=2", "inputs.series_steps=2"],
    "glacier-convlstm": ["model.base_channels=2", "model.depth=2", "inputs.series_steps=2"],
    "baseline": [],
    "baseline-simple": [],
    "baseline-patch": ["augment.crop=12"],
    "baseline-landslide": [],
    "baseline-glacier": ["inputs.series_steps=2"],
}


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    path = tmp_path_factory.mktemp("train") / "featured.zarr"
    store.write_cube(make_featured_cube(ny=96, nx=96, nt=4, px_per_blob=768), path)
    return path


def _overrides(name: str, *extra: str) -> list[str]:
    return [*TINY, *SMALL_NETS[name], *extra]


@pytest.fixture(scope="module")
def fcn_run(cube, tmp_path_factory):
    return train(
        cube,
        "avalanche-fcn",
        tmp_path_factory.mktemp("runs") / "fcn",
        profile="cpu-demo",
        overrides=_overrides("avalanche-fcn"),
        device="cpu",
    )


@pytest.mark.parametrize("name", sorted(SMALL_NETS))
def test_every_preset_runs_a_step(cube, tmp_path, fcn_run, name):
    if name == "avalanche-fcn":
        out = fcn_run
    else:
        out = train(
            cube,
            name,
            tmp_path / name,
            profile="cpu-demo",
            overrides=_overrides(name, "train.steps_per_epoch=1"),
            device="cpu",
        )
    # a network plots its loss, a baseline what it tuned (score against each setting)
    picture = runs.TUNING_PNG if name.startswith("baseline") else runs.LOSS_PNG
    for f in (runs.BEST, runs.LAST, runs.PRESET_FILE, runs.METRICS_FILE, picture, runs.SPLIT_FILE):
        assert (out / f).exists(), f
    assert not (out / (runs.LOSS_PNG if picture == runs.TUNING_PNG else runs.TUNING_PNG)).exists()
    state = torch.load(out / runs.BEST, weights_only=True)
    info = runs.RunInfo.from_dict(state["info"])
    assert info.preset == name and info.cube_id == chips.cube_id(schema.open_cube(cube))
    # series and event means read one orbit per run, recorded with the weights
    assert (info.orbit is not None) == any(c["take"] in chips.ORBITAL_TAKES for c in info.channels)
    assert (
        len(info.norm_mean)
        == info.in_channels
        == len(load_preset(name).inputs.channels) - sum(c.optional for c in load_preset(name).inputs.channels)
    )
    loaded = runs.load_run(out)
    assert not loaded.model.training and len(loaded.info.checkpoint_sha256) == 64
    rows = runs.read_metrics(out)
    assert len(rows) == 1 and np.isfinite(rows[0]["val_metric"])


def test_epoch_bar_counts_the_steps_that_run(cube, tmp_path, capsys, monkeypatch):
    """The epoch bar announces exactly the steps that run (more than one pass: the chips repeat); it shows on a
    terminal only, and never when the CLI turned bars off (``-q``, or stderr not a terminal)."""
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # a terminal: tqdm draws
    run = train(cube, "avalanche-fcn-concat", tmp_path / "bar", profile="cpu-demo",
                overrides=_overrides("avalanche-fcn-concat", "train.steps_per_epoch=20"), device="cpu")
    err = capsys.readouterr().err.replace("\r", "\n")
    steps = int(runs.read_metrics(run)[0]["step"])
    assert steps == 20
    totals = {int(m) for m in __import__("re").findall(r"epoch 1/1: .*?\d+/(\d+) ", err)}
    assert totals == {steps}, (totals, steps)
    monkeypatch.setenv("TQDM_DISABLE", "1")  # what `sarcube -q` sets
    train(cube, "avalanche-fcn-concat", tmp_path / "quiet", profile="cpu-demo",
          overrides=_overrides("avalanche-fcn-concat", "train.steps_per_epoch=2"), device="cpu")
    assert "batch" not in capsys.readouterr().err


def test_shipped_presets_are_all_exercised():
    assert set(available()) <= set(SMALL_NETS)


def test_one_epoch_lowers_the_loss(cube, tmp_path):
    name = "avalanche-fcn-concat"
    over = _overrides(
        name,
        "train.steps_per_epoch=12",
        "optim.lr=0.01",
        "augment.dihedral=false",
        "augment.rotate_deg=0",
        "augment.shift=0",
        "augment.zoom=0",
        "augment.shear_deg=0",
    )
    p = load_preset(name, "cpu-demo", over)
    ds = schema.open_cube(cube)
    data = prepare_data(ds, p)
    stream = ChipStream(
        cube, data.resolved, data.mean, data.std, data.blocks["train"], 16, batch_size=64, shuffle=False
    )
    batches = list(make_loader(stream))

    def mean_loss(model):
        model.eval()
        with torch.no_grad():
            return float(np.mean([float(compute_loss(model, x, y, p.training)[0]) for x, y, _ in batches]))

    torch.manual_seed(p.train.seed)
    from sarcube.pipelines.train import _build_model

    before = mean_loss(_build_model(p, len(data.resolved.channels)))
    out = train(cube, name, tmp_path / "run", profile="cpu-demo", overrides=over, device="cpu")
    after = mean_loss(runs.load_run(out, which=runs.LAST).model)
    assert after < before


def test_resume_gives_the_weights_of_an_uninterrupted_run(cube, tmp_path):
    name = "avalanche-fcn"
    over = _overrides(name, "train.steps_per_epoch=2", "train.val_steps=1")
    whole = train(cube, name, tmp_path / "whole", profile="cpu-demo", overrides=[*over, "train.epochs=2"], device="cpu")
    part = train(cube, name, tmp_path / "part", profile="cpu-demo", overrides=over, device="cpu")
    first = torch.load(part / runs.LAST, weights_only=True)
    assert first["epoch"] == 0 and first["step"] == 2
    train(cube, name, part, overrides=["train.epochs=2"], resume=True, device="cpu")
    a = torch.load(whole / runs.LAST, weights_only=True)
    b = torch.load(part / runs.LAST, weights_only=True)
    assert b["epoch"] == 1 and b["step"] == 4
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert [r["epoch"] for r in runs.read_metrics(part)] == [0, 1]


def test_assemble_inputs_matches_the_training_stream(cube, fcn_run):
    info = runs.load_run(fcn_run).info
    ds = schema.open_cube(cube, chunks=None)
    p = load_preset("avalanche-fcn", "cpu-demo", _overrides("avalanche-fcn"))
    data = prepare_data(schema.open_cube(cube), p, plan=info.split_plan, stats=(info.norm_mean, info.norm_std))
    block = data.blocks["val"][0]
    stream = ChipStream(cube, data.resolved, info.norm_mean, info.norm_std, [block], 16, batch_size=1, shuffle=False)
    x, _, _ = next(iter(stream))
    y0, x0 = block.window[0] + int(block.oy[0]), block.window[2] + int(block.ox[0])
    direct = runs.assemble_inputs(ds, info, block.pair, (y0, y0 + 16, x0, x0 + 16))
    np.testing.assert_array_equal(x[0].numpy(), direct)
    # stats are the training split's: the train tiles' mean of slope
    mask = info.split_plan.pixel_mask("train", (96, 96))
    assert info.norm_mean[3] == pytest.approx(float(ds[schema.SLOPE].values[mask].mean()), rel=1e-5)


def test_workers_shard_blocks_disjointly(cube):
    p = load_preset("avalanche-fcn", "cpu-demo", _overrides("avalanche-fcn", "chips.block_px=32", "chips.policy=all"))
    data = prepare_data(schema.open_cube(cube), p)
    stream = ChipStream(
        cube, data.resolved, data.mean, data.std, data.blocks["train"], 16, batch_size=4, shuffle_buffer=8, seed=1
    )
    assert len(data.blocks["train"]) >= 4
    ids = torch.cat([b[2] for b in make_loader(stream, num_workers=2)]).tolist()
    assert sorted(ids) == list(range(stream.n_chips))
    single = torch.cat([b[2] for b in make_loader(stream, num_workers=0)]).tolist()
    assert sorted(single) == sorted(ids)
    stream.set_epoch(1)
    assert torch.cat([b[2] for b in make_loader(stream)]).tolist() != single


def test_augmentation_moves_labels_with_inputs():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (20, 20), dtype=torch.uint8)
    x = torch.stack([y.float(), torch.zeros(20, 20)])
    for t in DIHEDRAL_TRANSFORMS:
        assert torch.equal(t.apply(x)[0], t.apply(y).float())
    aug = Augmenter(AugmentConfig(dihedral=True, crop=12))
    for _ in range(10):
        xa, ya = aug(x, y, g)
        assert xa.shape == (2, 12, 12) and torch.equal(xa[0], ya.float())
    aug = Augmenter(AugmentConfig(rotate_deg=30, zoom=0.2, shear_deg=10, shift=0.2))
    for _ in range(10):
        xa, ya = aug(x, y, g)
        known = ya != 255
        near = torch.nn.functional.max_pool2d(known[None, None].float(), 3, 1, 1)[0, 0] > 0
        assert known.any() and (xa[0][~near].abs() < 1e-6).all()  # outside: input 0, label 255
        assert set(torch.unique(ya).tolist()) <= {0, 1, 255}
    xt = torch.zeros(2, 3, 20, 20)  # (C, T, H, W) series chips
    xa, ya = Augmenter(AugmentConfig(dihedral=True, noise_std=0.1, occlusion=1.0))(xt, y, g)
    assert xa.shape == xt.shape and ya.shape == y.shape
    xc, yc = Augmenter(AugmentConfig(crop=12), train=False)(x, y, g)
    assert torch.equal(xc, x[:, 4:16, 4:16]) and torch.equal(yc, y[4:16, 4:16])


def test_errors(cube, tiny_cube, tmp_path):
    with pytest.raises(MissingVariableError, match=r"vv_diff.*sarcube features --pairs"):
        train(tiny_cube, "avalanche-fcn", tmp_path / "a", profile="cpu-demo", overrides=TINY)
    with pytest.raises(TrainingDataError, match="val split has no chips"):
        train(
            cube,
            "avalanche-fcn-concat",
            tmp_path / "b",
            profile="cpu-demo",
            overrides=[*TINY, "split.kind=tiles", "split.fractions=[1, 0, 0]"],
        )
    with pytest.raises(CheckpointError, match="cannot resume"):
        train(cube, "baseline", tmp_path / "c", resume=True)
    train(cube, "baseline", tmp_path / "c", profile="cpu-demo", overrides=TINY)
    with pytest.raises(CubeExistsError, match="--resume"):
        train(cube, "baseline", tmp_path / "c", profile="cpu-demo", overrides=TINY)
    with pytest.raises(CheckpointError, match="does not exist"):
        runs.load_run(tmp_path / "nowhere")


def test_no_positive_chip_in_training(tmp_path):
    path = tmp_path / "neg.zarr"
    store.write_cube(make_featured_cube(ny=64, nx=64, nt=3, positives={0: [], 1: []}), path)
    with pytest.raises(TrainingDataError, match="training split has no positive chip"):
        train(
            path,
            "avalanche-fcn-concat",
            tmp_path / "r",
            profile="cpu-demo",
            overrides=[*TINY, "chips.policy=all", "chips.eval_policy=all", "split.kind=tiles"],
        )


def test_cli_trains_and_reports_errors(cube, tmp_path, capsys):
    args = [
        "train",
        str(cube),
        "--preset",
        "baseline",
        "--out",
        str(tmp_path / "cli"),
        "--profile",
        "cpu-demo",
        "--device",
        "cpu",
    ]
    for item in TINY:
        args += ["--set", item]
    assert main(args) == 0
    assert "best validation f1" in capsys.readouterr().out
    args[5] = str(tmp_path / "cli2")
    assert main([*args, "--set", "train.epochs=x"]) == 2
    assert "expected an integer" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("hazard", "preset"),
    [("landslide", "landslide-unet"), ("glacier", "glacier-3dconv"),
     ("landslide", "baseline-landslide"), ("glacier", "baseline-glacier")],
)
def test_orbit_presets_end_to_end_on_the_two_orbit_scene(tmp_path, hazard, preset):
    """Synthetic two-orbit scene -> build -> features -> static labels -> train -> predict -> evaluate:
    the run reads one orbit, and predict reads that same orbit."""
    from sarcube.datacube import synthetic
    from sarcube.pipelines.add_layer import add_layer
    from sarcube.pipelines.build import build
    from sarcube.pipelines.evaluate import evaluate
    from sarcube.pipelines.features import features
    from sarcube.pipelines.predict import predict

    synthetic.write_demo_catalog(tmp_path / "scene", size=128, dates=8, hazard=hazard)
    m = synthetic.read_demo_manifest(tmp_path / "scene")
    w, s, e, n = m.bbox_lonlat
    centre = (w + (e - w) / 4, s + (n - s) / 4, e - (e - w) / 4, n - (n - s) / 4)  # 64 x 64 px: a quick predict
    cube = build(centre, m.start, m.end, tmp_path / "c.zarr", catalog=str(tmp_path / "scene"), resolution=m.resolution)
    event = {"event_date": m.event_date, "k": 2} if hazard == "landslide" else {}
    features(cube, pairs=False, par=False, **event)
    add_layer(cube, labels=m.labels)
    ds = schema.open_cube(cube)
    assert ds[schema.LABEL].dims == (schema.Y, schema.X)
    orbits = ds[schema.RELATIVE_ORBIT].values.tolist()
    assert orbits.count(66) == orbits.count(88) == 4
    extra = ["train.steps_per_epoch=2"] + (["inputs.series_steps=3"] if hazard == "glacier" else [])
    run = train(cube, preset, tmp_path / "run", profile="cpu-demo", overrides=_overrides(preset, *extra), device="cpu")
    info = runs.load_run(run).info
    assert info.orbit == 66  # as many acquisitions as 88: the lowest number
    name = predict(cube, run, tta=False)
    ds = schema.open_cube(cube)
    assert ds[name].dims == (schema.Y, schema.X) and np.isfinite(ds[name].values).mean() > 0.9
    x = runs.assemble_inputs(ds, info, None, (0, 32, 0, 32))
    mean, std = info.norm_mean[0], info.norm_std[0]
    if hazard == "landslide":
        raw = ds[schema.VV_BEFORE].sel({schema.ORBIT: 66}).values[:32, :32]
    else:
        steps = np.flatnonzero(ds[schema.RELATIVE_ORBIT].values == 66)[-3:]  # the orbit's last 3, no orbit-88 step
        raw = ds[schema.VV].values[steps, :32, :32]
    np.testing.assert_allclose(x[0], np.nan_to_num((raw - mean) / std), rtol=1e-5, atol=1e-5)
    result = evaluate(cube, [name], out_json=tmp_path / "evaluation.json")
    assert result["predictions"][name]["n_scored"] > 0


class _Uncalibrated(torch.nn.Module):
    """Logit = first input channel - 3: ranks pixels perfectly, yet no probability reaches 0.5."""

    output_kind = "logit"

    def forward(self, x):
        return x[:, :1] - 3.0


def test_the_operating_point_is_tuned_on_validation():
    from sarcube.models.metrics import pixel_scores
    from sarcube.models.training import validate

    gen = torch.Generator().manual_seed(0)
    y = (torch.rand(4, 8, 8, generator=gen) < 0.2).to(torch.uint8)
    y[0, 0, 0] = 255  # ignored
    x = torch.cat([y.float()[:, None] + 0.1 * torch.rand(4, 1, 8, 8, generator=gen), torch.zeros(4, 1, 8, 8)], 1)
    batches = [(x, y, torch.arange(4))]
    p = load_preset("avalanche-fcn", "cpu-demo")
    fixed = p.training
    tuned_cfg = dataclasses.replace(fixed, train=dataclasses.replace(fixed.train, tune_threshold=True))
    fixed = dataclasses.replace(fixed, train=dataclasses.replace(fixed.train, tune_threshold=False))
    _, at_half, details = validate(_Uncalibrated(), batches, fixed, torch.device("cpu"))
    assert at_half == 0.0 and "threshold" not in details
    _, tuned, details = validate(_Uncalibrated(), batches, tuned_cfg, torch.device("cpu"))
    prob = torch.sigmoid(x[:, 0] - 3.0)
    assert tuned == 1.0 and prob[y == 0].max() < details["threshold"] <= prob[y == 1].min() < 0.5
    assert pixel_scores(prob.numpy(), y.numpy(), details["threshold"])["f1"] == tuned


def test_a_tuned_run_stores_and_predicts_its_threshold(cube, fcn_run):
    from sarcube.pipelines.predict import predict

    assert load_preset("avalanche-fcn", "cpu-demo").train.tune_threshold  # the cpu-demo profile tunes
    assert not load_preset("avalanche-fcn").train.tune_threshold  # the paper's network thresholds at 0.5
    info = runs.load_run(fcn_run).info
    assert 0.0 < info.threshold < 1.0 and info.threshold == info.extra["threshold"]
    name = predict(cube, fcn_run, name="tuned", pairs=[0], tta=False, overwrite=True)
    assert schema.open_cube(cube)[name].attrs[schema.ATTR_THRESHOLD] == pytest.approx(info.threshold)


def test_steps_per_epoch_repeats_a_small_split(cube, tmp_path):
    """More steps than one pass over the training chips: the chips are drawn again, reshuffled, not cut short."""
    preset = load_preset("avalanche-fcn", "cpu-demo", overrides=_overrides("avalanche-fcn"))
    n_chips = len(prepare_data(schema.open_cube(cube), preset).tables[chips.TRAIN])
    steps = 12
    assert 0 < n_chips < steps * preset.train.batch_size / 2  # at least two passes per epoch
    out = train(cube, "avalanche-fcn", tmp_path / "fcn", profile="cpu-demo", device="cpu",
                overrides=_overrides("avalanche-fcn", f"train.steps_per_epoch={steps}", "train.epochs=2"))
    assert [int(r["step"]) for r in runs.read_metrics(out)] == [steps, 2 * steps]
