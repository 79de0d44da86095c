"""The model zoo: registry, shapes at odd sizes, parameter counts, gradients, overfitting a batch."""

from __future__ import annotations

import inspect

import pytest
import torch

from sarcube import models
from sarcube.errors import InputError
from sarcube.models import losses
from sarcube.models.patch_cnn import adapt_first_conv
from sarcube.models.vae import score_to_probability
from sarcube.pipelines import runs

# Tiny widths so the heavy nets run in milliseconds; (in_channels, cfg, time steps or None)
TINY = {
    "unet": (4, {"base_channels": 4, "depth": 3}, None),
    "par_attention": (5, {"base_channels": 4, "depth": 3, "attention_channels": 4}, None),
    "par_concat": (5, {"base_channels": 4, "depth": 3}, None),
    "patch_cnn": (3, {"hidden_features": 16, "width_divisor": 16}, None),
    "vae": (4, {"latent_dim": 8, "base_channels": 4}, None),
    "resnet_unet": (3, {"base_width": 4, "layers": (1, 1, 1, 1), "decoder_channels": (16, 8, 8, 4, 4)}, None),
    "unet3d": (2, {"base_channels": 4, "depth": 3}, 3),
    "convlstm_unet": (2, {"base_channels": 4, "depth": 3}, 3),
}
NO_DROPOUT = {"unet", "par_attention", "par_concat", "patch_cnn"}  # nets with a dropout option

# Default-width counts; each must also be written in the builder's docstring.
PARAMETER_COUNTS = [
    ("unet", 4, {}, 7_849_889),
    ("par_attention", 5, {}, 7_868_994),
    ("par_concat", 5, {}, 7_850_177),
    ("patch_cnn", 3, {}, 33_605_442),
    ("vae", 4, {}, 5_070_236),
    ("resnet_unet", 2, {}, 48_982_754),  # the landslide paper's figure, exactly
    ("resnet_unet", 8, {}, 49_001_570),
    ("resnet_unet", 3, {"nested": False}, 32_521_250),
    ("unet3d", 2, {}, 4_429_521),
    ("convlstm_unet", 2, {}, 8_361_553),
    ("baseline", 3, {}, 0),
]


def _batch(name: str, n: int = 2, h: int = 17, w: int = 23, seed: int = 0) -> torch.Tensor:
    in_channels, _, steps = TINY[name]
    g = torch.Generator().manual_seed(seed)
    shape = (n, in_channels, steps, h, w) if steps else (n, in_channels, h, w)
    return torch.randn(shape, generator=g)


def _tiny(name: str, **extra) -> torch.nn.Module:
    torch.manual_seed(0)
    in_channels, cfg, _ = TINY[name]
    return models.build_model(name, in_channels, **cfg, **extra)


def _loss(name: str, model, x, out, target):
    if name == "vae":
        recon, mu, logvar = out
        return losses.vae_loss(recon, x, mu, logvar)[0]
    if name in ("patch_cnn", "resnet_unet"):
        return losses.cross_entropy(out, target)
    return losses.weighted_bce(out, target)


def _target(name: str, x: torch.Tensor) -> torch.Tensor:
    """Labels that depend on the input, so a net can learn them."""
    if name == "patch_cnn":
        return (x[:, 0].mean(dim=(-2, -1)) > x[:, 0].mean()).long()
    first = x[:, 0].mean(dim=1) if x.dim() == 5 else x[:, 0]
    return (first > 0.3).to(torch.uint8)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny nets run fastest on one thread (and reproducibly); restore the setting after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_registry_names_and_errors():
    assert set(models.model_names()) == set(TINY) | {"baseline", "threshold"}
    assert models.MODELS["unet"] is models.UNet
    with pytest.raises(InputError, match="unet, par_attention"):
        models.build_model("segformer", 3)
    with pytest.raises(InputError, match="base_channels"):
        models.build_model("unet", 3, width=8)
    with pytest.raises(InputError, match="in_channels"):
        models.build_model("unet", 0)
    with pytest.raises(InputError, match="par_channel"):
        models.build_model("par_attention", 4, par_channel=4)
    with pytest.raises(InputError, match="sar_channels"):
        models.build_model("par_attention", 5, sar_channels=(0, 1, 4), par_channel=4)
    with pytest.raises(InputError, match="out_channels"):
        models.build_model("unet", 3, out_channels=3)


@pytest.mark.parametrize(("name", "in_channels", "cfg", "expected"), PARAMETER_COUNTS)
def test_parameter_counts_match_docstrings(name, in_channels, cfg, expected):
    model = models.build_model(name, in_channels, **cfg)
    assert models.count_parameters(model) == expected
    if expected:
        assert f"{expected:,}" in inspect.getdoc(models.MODELS[name])


@pytest.mark.parametrize("name", sorted(TINY))
def test_output_shapes_at_odd_sizes(name):
    model = _tiny(name).eval()
    for h, w in [(17, 23), (1, 5), (33, 31)]:
        x = _batch(name, 2, h, w)
        with torch.no_grad():
            out = model(x)
        if name == "patch_cnn":
            assert out.shape == (2, 2)
            assert models.probability(model, out).shape == (2,)
        elif name == "vae":
            recon, mu, logvar = out
            assert recon.shape == x.shape and mu.shape == logvar.shape
            assert mu.shape[1] == TINY[name][1]["latent_dim"]
        else:
            classes = 2 if name == "resnet_unet" else 1
            assert out.shape == (2, classes, h, w)
            p = models.probability(model, out)
            assert p.shape == (2, 1, h, w) and float(p.min()) >= 0 and float(p.max()) <= 1


def test_vae_latent_is_300_per_64px_chip():
    model = models.build_model("vae", 4).eval()
    with torch.no_grad():
        recon, mu, logvar = model(torch.randn(2, 4, 64, 64))
    assert recon.shape == (2, 4, 64, 64) and mu.shape == (2, 300, 1, 1) and logvar.shape == (2, 300, 1, 1)


@pytest.mark.parametrize("name", ["unet3d", "convlstm_unet"])
def test_time_series_nets_take_any_number_of_steps(name):
    model = _tiny(name).eval()
    with torch.no_grad():
        for steps in (1, 5):
            assert model(torch.randn(1, 2, steps, 16, 16)).shape == (1, 1, 16, 16)
    with pytest.raises(InputError, match="N, C, T, H, W"):
        model(torch.randn(1, 2, 16, 16))


@pytest.mark.parametrize("name", sorted(TINY))
def test_gradients_reach_every_parameter(name):
    model = _tiny(name).train()
    x = _batch(name, 2, 16, 16)
    out = model(x)
    _loss(name, model, x, out, _target(name, x)).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


# Adam learning rates and steps: the plain 13-conv VGG trunk (no batch norm) needs gentler, more steps
OVERFIT_LR = {"patch_cnn": 3e-3, "unet3d": 3e-2}
OVERFIT_STEPS = {"patch_cnn": 120}


@pytest.mark.parametrize("name", sorted(set(TINY) - {"vae"}))
def test_overfits_one_tiny_batch(name):
    extra = {"dropout": 0.0} if name in NO_DROPOUT else {}
    model = _tiny(name, **extra).train()
    x = _batch(name, 2, 16, 16)
    if name == "patch_cnn":
        x[1::2] += 0.5  # two classes that differ in brightness
    target = _target(name, x)
    opt = torch.optim.Adam(model.parameters(), lr=OVERFIT_LR.get(name, 1e-2))
    history = []
    for _ in range(OVERFIT_STEPS.get(name, 60)):
        opt.zero_grad()
        loss = _loss(name, model, x, model(x), target)
        loss.backward()
        opt.step()
        history.append(loss.item())
    assert history[-1] < 0.2 * history[0], (name, history[0], history[-1])


def test_vae_overfits_one_tiny_batch():
    """The reconstruction error (latent mean, eval mode) of the training batch falls several-fold."""
    torch.manual_seed(0)
    model = models.build_model("vae", 4, latent_dim=32, base_channels=4)
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.interpolate(torch.randn(4, 4, 4, 4, generator=g), size=(16, 16), mode="bilinear")
    before = float(models.anomaly_score(model, x).mean())
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(120):
        opt.zero_grad()
        recon, mu, logvar = model(x)
        losses.vae_loss(recon, x, mu, logvar)[0].backward()
        opt.step()
    after = float(models.anomaly_score(model, x).mean())
    assert after < before / 3, (before, after)


def test_par_attention_mask_touches_only_sar_channels():
    torch.manual_seed(0)
    model = models.build_model("par_attention", 5, sar_channels=(0, 1, 2), par_channel=4, base_channels=4, depth=3)
    model.eval()
    x = torch.randn(2, 5, 12, 12)
    x[:, 4] = torch.rand(2, 12, 12) * 40
    with torch.no_grad():
        logits, mask = model(x, return_attention=True)
        inputs, mask2 = model.masked_inputs(x)
    assert logits.shape == (2, 1, 12, 12) and mask.shape == (2, 1, 12, 12)
    assert torch.equal(mask, mask2)
    assert float(mask.min()) >= 0 and float(mask.max()) <= 1
    # the U-Net sees VV, VH, VVVH times the mask, slope as given, no PAR
    assert inputs.shape == (2, 4, 12, 12)
    torch.testing.assert_close(inputs[:, :3], x[:, :3] * mask)
    torch.testing.assert_close(inputs[:, 3], x[:, 3])
    # slope does not move the mask; PAR does
    y = x.clone()
    y[:, 3] += 10.0
    z = x.clone()
    z[:, 4] += 10.0
    with torch.no_grad():
        assert torch.equal(model.masked_inputs(y)[1], mask)
        assert not torch.equal(model.masked_inputs(z)[1], mask)


def test_par_attention_channel_order_is_configurable():
    model = models.build_model("par_attention", 5, sar_channels=(1, 2, 3), par_channel=0, base_channels=4, depth=2)
    x = torch.randn(1, 5, 8, 8)
    with torch.no_grad():
        inputs, mask = model.masked_inputs(x)
    torch.testing.assert_close(inputs[:, :3], x[:, 1:4] * mask)
    torch.testing.assert_close(inputs[:, 3], x[:, 4])


def test_local_contrast_is_each_channel_minus_its_box_mean():
    from scipy import ndimage

    from sarcube.models._blocks import LocalContrast

    x = torch.randn(2, 4, 20, 17, dtype=torch.float64)
    out = LocalContrast((0, 2), 5)(x)
    assert out.shape == (2, 6, 20, 17)
    torch.testing.assert_close(out[:, :4], x)
    # the box mean over the pixels inside the image: a sum over the box, divided by how many it holds
    ones = ndimage.uniform_filter(torch.ones(20, 17).numpy(), 5, mode="constant")
    for k, c in enumerate((0, 2)):
        for n in range(2):
            mean = ndimage.uniform_filter(x[n, c].numpy(), 5, mode="constant") / ones
            torch.testing.assert_close(out[n, 4 + k], x[n, c] - torch.from_numpy(mean))
    # flips and 90 degree rotations commute with it
    r = LocalContrast((1,), 7)
    torch.testing.assert_close(r(x.rot90(1, (2, 3))), r(x).rot90(1, (2, 3)))
    torch.testing.assert_close(r(x.flip(3)), r(x).flip(3))
    assert torch.equal(LocalContrast((0,), 0)(x), x) and torch.equal(LocalContrast((), 5)(x), x)
    with pytest.raises(InputError, match="contrast_px=4"):
        LocalContrast((0,), 4)


def test_par_attention_local_contrast_sees_the_masked_sar_channels():
    torch.manual_seed(0)
    plain = models.build_model("par_attention", 5, base_channels=4, depth=3)
    model = models.build_model("par_attention", 5, base_channels=4, depth=3, contrast_px=9)
    assert model.unet.encoder[0][0][0].in_channels == plain.unet.encoder[0][0][0].in_channels + 3
    assert model.unet.contrast._channels.tolist() == [0, 1, 2]  # VV, VH, VVVH of the U-Net's (masked) input
    assert models.build_model("par_concat", 5, base_channels=4, depth=3, contrast_px=9).contrast.added == 3
    with pytest.raises(InputError, match="contrast_channels"):
        models.build_model("unet", 4, contrast_channels=[4], contrast_px=9)


def test_patch_cnn_freeze_trunk():
    model = _tiny("patch_cnn")
    model.freeze_trunk()
    assert model.trunk_frozen
    x = _batch("patch_cnn", 2, 16, 16)
    losses.cross_entropy(model(x), torch.tensor([0, 1])).backward()
    assert all(p.grad is None for p in model.features.parameters())
    assert all(p.grad is not None for p in model.classifier.parameters())
    model.freeze_trunk(False)
    assert not model.trunk_frozen
    assert models.build_model("patch_cnn", 3, freeze_trunk=True, width_divisor=16).trunk_frozen


def test_patch_cnn_batch_norm_has_vgg16_bn_layout_and_learns_a_batch():
    torch.manual_seed(0)
    model = models.build_model("patch_cnn", 3, width_divisor=16, hidden_features=8, batch_norm=True, dropout=0.0)
    kinds = [type(m).__name__ for m in model.features]
    assert kinds[:4] == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d"] and kinds.count("BatchNorm2d") == 13
    assert len(model.features) == 13 * 3 + 5  # torchvision vgg16_bn's features.N indices
    x, y = torch.randn(8, 3, 24, 24), torch.tensor([0, 1] * 4)
    x[y == 1, 0] += 2.0
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    first = None
    for _ in range(30):
        loss = losses.cross_entropy(model(x), y)
        first = float(loss) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.5 * first


def _fake_vgg16_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state_dict with torchvision vgg16's key names and conv shapes (classifier keys ignored)."""
    g = torch.Generator().manual_seed(seed)
    reference = models.PatchCNN(3, hidden_features=4).features.state_dict()
    state = {f"features.{k}": torch.randn(v.shape, generator=g) for k, v in reference.items()}
    state["classifier.0.weight"] = torch.randn(8, 8, generator=g)
    return state


def test_load_vgg16_weights_from_mapping_and_path(tmp_path):
    state = _fake_vgg16_state()
    rgb = models.build_model("patch_cnn", 3, hidden_features=8)
    loaded = models.load_vgg16_weights(rgb, state)
    assert len([k for k in loaded if k.endswith("weight")]) == 13
    torch.testing.assert_close(rgb.features[28].weight, state["features.28.weight"])
    torch.testing.assert_close(rgb.features[0].weight, state["features.0.weight"])

    path = tmp_path / "vgg16.pt"
    torch.save(state, path)
    four = models.build_model("patch_cnn", 4, hidden_features=8)
    models.load_vgg16_weights(four, runs.read_vgg16_weights(path))
    w = four.features[0].weight
    assert w.shape == (64, 4, 3, 3)
    torch.testing.assert_close(w, adapt_first_conv(state["features.0.weight"], 4))
    # a grey RGB image and a constant 4-channel image of the same value respond alike
    grey = torch.full((1, 3, 5, 5), 0.7)
    const = torch.full((1, 4, 5, 5), 0.7)
    torch.testing.assert_close(
        torch.nn.functional.conv2d(grey, state["features.0.weight"]), torch.nn.functional.conv2d(const, w)
    )
    with pytest.raises(InputError, match="no such file"):
        runs.read_vgg16_weights(tmp_path / "missing.pt")
    small = models.build_model("patch_cnn", 3, width_divisor=16, hidden_features=8)
    with pytest.raises(Exception, match="width_divisor"):
        models.load_vgg16_weights(small, state)


def test_vae_anomaly_score_ignores_nan_and_mask():
    torch.manual_seed(0)
    model = models.build_model("vae", 2, latent_dim=4, base_channels=2)
    x = torch.randn(3, 2, 64, 64)
    score = models.anomaly_score(model, x)
    assert score.shape == (3,) and model.training  # mode restored
    model.eval()
    with torch.no_grad():
        recon, _, _ = model(x)
    torch.testing.assert_close(score, ((recon - x) ** 2).flatten(1).mean(1))
    # NaN pixels are left out: equal to the mean over the other pixels of the filled input
    y = x.clone()
    y[0, :, :8] = float("nan")
    filled = torch.nan_to_num(y)
    with torch.no_grad():
        recon_y, _, _ = model(filled)
    expected = ((recon_y[0] - filled[0]) ** 2)[:, 8:].mean()
    torch.testing.assert_close(models.anomaly_score(model, y)[0], expected)
    mask = torch.ones(3, 64, 64, dtype=torch.bool)
    mask[1] = False
    assert torch.isnan(models.anomaly_score(model, x, mask=mask)[1])


def test_vae_probability_is_half_at_threshold():
    model = models.build_model("vae", 2, latent_dim=4, base_channels=2)
    x = torch.randn(2, 2, 64, 64)
    with pytest.raises(InputError, match="threshold"):
        models.predict_proba(model, x)
    score = models.anomaly_score(model, x)
    model.set_threshold(float(score[0]))
    p = models.predict_proba(model, x)
    torch.testing.assert_close(p[0], torch.tensor(0.5))
    assert (p[1] >= 0.5) == (score[1] >= score[0])
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(models.probability(model, model(x), x), p)
    torch.testing.assert_close(score_to_probability(torch.tensor([0.0, 2.0]), 2.0), torch.tensor([0.0, 0.5]))
    assert "threshold" in model.state_dict()


def test_probability_of_each_output_kind():
    unet = _tiny("unet")
    logits = torch.tensor([[[[0.0, 2.0]]]])
    torch.testing.assert_close(models.probability(unet, logits), torch.sigmoid(logits))
    resnet = _tiny("resnet_unet")
    two = torch.tensor([[[[0.0]], [[2.0]]]])  # (1, 2, 1, 1)
    torch.testing.assert_close(models.probability(resnet, two), torch.sigmoid(torch.tensor([[[[2.0]]]])))
    patch = _tiny("patch_cnn")
    torch.testing.assert_close(models.probability(patch, torch.tensor([[0.0, 0.0]])), torch.tensor([0.5]))
    baseline = models.build_model("baseline", 3)
    p = torch.rand(1, 1, 4, 4)
    assert models.probability(baseline, p) is p
    with pytest.raises(InputError, match="output_kind"):
        models.probability(torch.nn.Conv2d(1, 1, 1), logits)


def test_device_helpers():
    assert models.pick_device("cpu").type == "cpu"
    assert models.pick_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(InputError, match="device"):
        models.pick_device("quantum")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA"):
            models.pick_device("cuda")
    with models.autocast_context(torch.device("cpu")):
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.float32
