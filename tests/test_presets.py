"""Presets: the papers' numbers, profiles, --set overrides with type checks."""

from __future__ import annotations

import pytest

from sarcube.datacube import chips
from sarcube.errors import InputError
from sarcube.pipelines.presets import available, load_preset, preset_from_dict

SHIPPED = {
    "avalanche-fcn",
    "avalanche-fcn-concat",
    "avalanche-cnn",
    "avalanche-vae",
    "landslide-unet",
    "glacier-3dconv",
    "glacier-convlstm",
    "baseline",
    "baseline-patch",
    "baseline-landslide",
    "baseline-glacier",
}


#: chips a cpu-demo profile may push through training (avalanche-fcn's: 16 x 60 x 16, about a minute at 64 px)
CPU_DEMO_MAX_CHIPS = 20_000


def test_every_preset_loads_with_and_without_cpu_demo():
    from sarcube.models import build_model, model_options

    assert SHIPPED <= set(available())
    for name in SHIPPED:
        paper = load_preset(name)
        demo = load_preset(name, "cpu-demo")
        assert paper.paper and paper.description and demo.profile == "cpu-demo"
        assert set(paper.model.params) <= set(model_options(paper.model.name)), name
        assert preset_from_dict(demo.to_dict()) == demo
        if paper.model.task != "baseline":
            # "trains in minutes on 2 cores": smaller chips, fewer epochs, capped steps, bounded chips seen
            assert demo.chips.size <= paper.chips.size and demo.train.epochs < paper.train.epochs, name
            assert 0 < demo.train.steps_per_epoch, name
            assert demo.train.epochs * demo.train.steps_per_epoch * demo.train.batch_size <= CPU_DEMO_MAX_CHIPS, name
        build_model(demo.model.name, len(demo.inputs.channels), **demo.model.params)


def test_paper_numbers():
    fcn = load_preset("avalanche-fcn")
    assert (fcn.chips.size, fcn.chips.policy, fcn.train.batch_size) == (160, "positives", 16)
    assert (fcn.loss.name, fcn.loss.pos_weight, fcn.train.threshold, fcn.train.metric) == ("bce", 2.0, 0.5, "f1")
    assert fcn.model.params["dropout"] == 0.4 and fcn.optim.name == "adam" and fcn.optim.lr == 1e-3
    assert fcn.split.kind == "pairs" and fcn.train.early_stopping > 0
    cnn = load_preset("avalanche-cnn")
    assert (cnn.chips.size, cnn.augment.crop, cnn.chips.policy, cnn.loss.name) == (64, 50, "balanced", "ce")
    assert cnn.model.params["dropout"] == 0.5 and cnn.train.epochs == 250
    assert [c.take for c in cnn.inputs.channels[:2]] == [chips.TAKE_ACTIVITY, chips.TAKE_REFERENCE]
    vae = load_preset("avalanche-vae")
    assert (vae.chips.size, vae.chips.policy, vae.model.params["latent_dim"], vae.loss.kl_weight) == (
        64,
        "negatives",
        300,
        0.1,
    )
    assert vae.train.tune_threshold and vae.chips.eval_policy == "balanced"
    land = load_preset("landslide-unet")
    assert (land.optim.lr, land.optim.weight_decay, land.train.epochs, land.chips.size) == (0.01, 1e-4, 100, 128)
    assert (land.schedule.name, land.schedule.factor, land.schedule.patience, land.schedule.threshold) == (
        "plateau",
        0.1,
        10,
        1e-4,
    )
    assert land.train.metric == "auprc" and land.loss.name == "ce"
    for name in ("glacier-3dconv", "glacier-convlstm"):
        g = load_preset(name)
        assert (g.chips.size, g.optim.lr, g.schedule.cycles, g.split.fractions) == (
            384,
            5e-4,
            (10, 20, 40, 80),
            (0.6, 0.2, 0.2),
        )
        assert g.split.tile_size_m == 10_000 and g.loss.name == "focal" and g.loss.label_smoothing > 0
        assert g.augment.noise_std > 0 and g.augment.occlusion > 0


def test_overrides_are_type_checked():
    p = load_preset(
        "avalanche-fcn",
        "cpu-demo",
        ["train.epochs=7", "model.base_channels=4", "split.fractions=[0.5, 0.25, 0.25]", "split.test=[2018-04-17]"],
    )
    assert p.train.epochs == 7 and p.model.params["base_channels"] == 4
    assert p.split.fractions == (0.5, 0.25, 0.25) and p.split.test == ("2018-04-17",)
    assert load_preset("avalanche-fcn", overrides=["optim.lr=1"]).optim.lr == 1.0
    with pytest.raises(InputError, match="train.epochs: expected an integer"):
        load_preset("avalanche-fcn", overrides=["train.epochs=many"])
    with pytest.raises(InputError, match="has no field 'epoch'"):
        load_preset("avalanche-fcn", overrides=["train.epoch=3"])
    with pytest.raises(InputError, match="must start with a section"):
        load_preset("avalanche-fcn", overrides=["epochs=3"])
    with pytest.raises(InputError, match="section.field=value"):
        load_preset("avalanche-fcn", overrides=["train.epochs"])
    with pytest.raises(InputError, match="true/false"):
        load_preset("avalanche-fcn", overrides=["augment.dihedral=3"])
    with pytest.raises(InputError, match="policy 'some' unknown"):
        load_preset("avalanche-fcn", overrides=["chips.policy=some"])


def test_orbit_is_one_per_run_and_can_be_chosen():
    for name in ("landslide-unet", "glacier-3dconv", "glacier-convlstm"):
        assert load_preset(name).inputs.orbit == chips.ORBIT_AUTO
    assert load_preset("glacier-3dconv", overrides=["inputs.orbit=88"]).inputs.orbit == 88
    assert load_preset("landslide-unet", overrides=["inputs.orbit=ascending"]).inputs.orbit == "ascending"
    p = load_preset("glacier-convlstm", overrides=["inputs.orbit=66"])
    assert preset_from_dict(p.to_dict()).inputs.orbit == 66  # a run's preset.yaml keeps it


def test_unknown_names_and_files(tmp_path):
    with pytest.raises(InputError, match="not found: use one of"):
        load_preset("avalanche-xyz")
    with pytest.raises(InputError, match="no profile 'gpu-huge'"):
        load_preset("avalanche-fcn", "gpu-huge")
    path = tmp_path / "mine.yaml"
    path.write_text(
        "inputs: {channels: [vv_diff, {variable: vv_ratio, take: at-activity}]}\n"
        "chips: {size: 32}\ntrain: {epochs: 1}\n"
    )
    p = load_preset(path)
    assert (
        p.name == "mine"
        and p.chips.size == 32
        and p.inputs.channels[1] == chips.ChannelSpec("vv_ratio", chips.TAKE_ACTIVITY)
    )
    path.write_text("chips: {size: 32, colour: red}\n")
    with pytest.raises(InputError, match="unknown key"):
        load_preset(path)
    path.write_text("inputs: {channels: [{variable: vv, when: now}]}\n")
    with pytest.raises(InputError, match="unknown channel keys"):
        load_preset(path)


def test_resolved_presets_are_checked_like_yaml():
    # a run's preset.yaml (train --resume --set ...) goes through the same checks as a preset file
    raw = load_preset("avalanche-fcn", "cpu-demo").to_dict()
    raw["chips"]["policy"] = "some"
    with pytest.raises(InputError, match="policy 'some' unknown"):
        preset_from_dict(raw)
    raw = load_preset("avalanche-fcn").to_dict()
    raw["colour"] = {}
    with pytest.raises(InputError, match="unknown section"):
        preset_from_dict(raw)
    raw = load_preset("avalanche-fcn").to_dict()
    raw["train"]["epoch"] = 3
    with pytest.raises(InputError, match=r"run preset 'x.yaml': train: unknown key\(s\) \['epoch'\]"):
        preset_from_dict(raw, "run preset 'x.yaml'")
