"""`sarcube predict`: probabilities back into the cube, safely and incrementally (pipelines/predict.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_pair_cube
from sarcube.datacube import chips, schema, staging, store, zarrio
from sarcube.datacube.predictions import ATTR_MASK_TTA, pair_keys
from sarcube.errors import CubeExistsError, InputError, MissingVariableError
from sarcube.models import build_model, window_probability_fn
from sarcube.models.inference import MASK_ONCE, MASK_PER_TRANSFORM, predict_scene
from sarcube.pipelines import runs
from sarcube.pipelines.cli import main
from sarcube.pipelines.predict import predict

WINDOW = 16
CHANNELS = (schema.VV_DIFF, schema.VH_DIFF, schema.SLOPE)
MODEL_CFG = {"base_channels": 4, "depth": 2, "dropout": 0.0}


def make_run(
    run_dir: Path, ds, *, channels=CHANNELS, seed: int = 0, threshold: float = 0.4, model_name: str = "unet",
    model_cfg: dict | None = None,
) -> Path:
    """A tiny trained-looking run directory written through the runs API (random U-Net weights)."""
    model_cfg = dict(MODEL_CFG if model_cfg is None else model_cfg)
    torch.manual_seed(seed)
    specs = [chips.ChannelSpec(v) for v in channels]
    if all(v in ds.data_vars for v in channels):  # as training stores them: takes made explicit
        specs = list(chips.resolve_channels(ds, specs).channels)
    model = build_model(model_name, len(specs), **model_cfg)
    with torch.no_grad():  # non-trivial batch-norm statistics
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
    chip_spec = chips.ChipSpec(size=WINDOW)
    # tiny cubes: the test window takes every pair, so validation (unused here) is by tiles
    plan = chips.make_split(ds, chips.SplitSpec(kind=chips.SPLIT_PAIRS, test="last", val=chips.VAL_TILES), chip_spec)
    info = runs.RunInfo(
        preset="test-preset",
        model=model_name,
        model_cfg=model_cfg,
        task="segmentation",
        channels=[s.to_dict() for s in specs],
        series_steps=0,
        label_dims=list(ds[schema.LABEL].dims),
        chip_size=WINDOW,
        input_size=WINDOW,
        norm_mean=[float(np.nanmean(ds[v].values)) if v in ds else 0.0 for v in channels],
        norm_std=[float(np.nanstd(ds[v].values)) + 1e-3 if v in ds else 1.0 for v in channels],
        threshold=threshold,
        metric="f1",
        best_metric=0.0,
        split=plan.to_json(),
        split_description=plan.describe(),
        cube_id=chips.cube_id(ds),
        sarcube_version="test",
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    runs.save_checkpoint(run_dir / runs.BEST, model, None, info, epoch=0, step=0, best_metric=0.0)
    (run_dir / runs.SPLIT_FILE).write_text(plan.to_json())
    return run_dir


def _cube(path, **kw) -> str:
    store.write_cube(make_pair_cube(**kw), path)
    return str(path)


def _expected(cube, run_dir, pair: int, tta: bool = True, mask_tta: str = MASK_PER_TRANSFORM) -> np.ndarray:
    """Whole-scene reference: all inputs of the pair in memory, one predict_scene call."""
    ds = schema.open_cube(cube)
    loaded = runs.load_run(run_dir)
    image = runs.assemble_inputs(ds, loaded.info, pair, (0, ds.sizes[schema.Y], 0, ds.sizes[schema.X]))

    with torch.no_grad():
        out = predict_scene(
            window_probability_fn(loaded.model, mask_tta),
            torch.from_numpy(image),
            WINDOW,
            tta=tta,
            batch_size=64,
        )
    return out.numpy()


def _corrupt_chunk(cube, variable: str, *index: int) -> Path:
    """Overwrite one stored chunk with garbage: reading it fails inside zarr (a real failure)."""
    chunk = Path(cube, variable, "c", *map(str, index))
    assert chunk.exists(), chunk
    backup = chunk.with_name(chunk.name + ".bak")
    shutil.copyfile(chunk, backup)
    chunk.write_bytes(b"not a blosc frame" * 4)
    return backup


def _restore(backup: Path) -> None:
    shutil.move(backup, backup.with_name(backup.name[: -len(".bak")]))


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: tiny networks, one thread


@pytest.fixture
def cube_and_run(tmp_path):
    cube = _cube(tmp_path / "c.zarr")
    return cube, make_run(tmp_path / "fcn", schema.open_cube(cube))


def test_chunked_predict_equals_whole_scene_predict_with_attrs(tmp_path):
    cube = _cube(tmp_path / "tall.zarr", ny=1100, nx=10, n_pairs=2)  # three chunk rows per pair
    run_dir = make_run(tmp_path / "fcn", schema.open_cube(cube))
    var = predict(cube, run_dir, tta=False, batch_size=64)
    assert var == "pred_fcn"
    ds = schema.open_cube(cube)
    assert ds[var].dims == ds[schema.LABEL].dims and ds[var].dtype == np.float32
    got = ds[var].values
    for p in range(2):
        np.testing.assert_allclose(got[p], _expected(cube, run_dir, p, tta=False), rtol=0, atol=1e-5)
    attrs = ds[var].attrs
    assert attrs[schema.ATTR_CHECKPOINT_SHA256] == runs.sha256_of(run_dir / runs.BEST)
    assert attrs[schema.ATTR_THRESHOLD] == pytest.approx(0.4)
    assert attrs[schema.ATTR_TTA] == 1 and attrs[schema.ATTR_RUN] == str(run_dir.resolve())
    assert attrs[schema.ATTR_MODEL] == "unet" and attrs[schema.ATTR_CREATED]
    assert json.loads(attrs[schema.ATTR_PREDICTED_PAIRS]) == pair_keys(ds)
    assert not staging.clean_staging(cube)  # nothing left behind


def test_par_attention_predict_runs_the_chosen_mask_path_and_records_it(tmp_path):
    cube = _cube(tmp_path / "c.zarr", n_pairs=1)
    channels = (schema.VV_DIFF, schema.VH_DIFF, schema.SLOPE, schema.PAR)
    cfg = {"sar_channels": [0, 1], "par_channel": 3, "base_channels": 4, "depth": 2, "attention_channels": 4,
           "dropout": 0.0}
    run_dir = make_run(tmp_path / "fcn", schema.open_cube(cube), channels=channels, model_name="par_attention",
                       model_cfg=cfg)
    exact = predict(cube, run_dir, name="exact", batch_size=64)
    once = predict(cube, run_dir, name="once", mask_tta=MASK_ONCE, batch_size=64)
    ds = schema.open_cube(cube)
    assert ds[exact].attrs[ATTR_MASK_TTA] == MASK_PER_TRANSFORM and ds[once].attrs[ATTR_MASK_TTA] == MASK_ONCE
    np.testing.assert_allclose(ds[exact].values[0], _expected(cube, run_dir, 0), rtol=0, atol=1e-5)
    np.testing.assert_allclose(ds[once].values[0], _expected(cube, run_dir, 0, mask_tta=MASK_ONCE), rtol=0, atol=1e-5)
    assert np.abs(ds[once].values - ds[exact].values).max() > 1e-6  # two different paths, each the one asked for
    history = ds.attrs[schema.ATTR_HISTORY]
    assert "--name once --pairs all --mask-tta once" in history and "--name exact --pairs all\n" in history + "\n"
    with pytest.raises(CubeExistsError, match="mask_tta per-transform"):  # extending mixes no two paths
        predict(cube, run_dir, name="exact", pairs="new", mask_tta=MASK_ONCE)
    with pytest.raises(InputError, match="--mask-tta 'twice'"):
        predict(cube, run_dir, name="x", mask_tta="twice")


def test_interrupted_predict_resumes_to_the_same_result(tmp_path):
    clean_cube = _cube(tmp_path / "clean.zarr", ny=1100, nx=10, n_pairs=2)
    run_dir = make_run(tmp_path / "fcn", schema.open_cube(clean_cube))
    predict(clean_cube, run_dir, tta=False, batch_size=64)
    clean = schema.open_cube(clean_cube)["pred_fcn"].values

    cube = _cube(tmp_path / "c.zarr", ny=1100, nx=10, n_pairs=2)
    # Pair 1's third chunk row cannot be decoded: predict fails after pair 0 and
    # after the first band of pair 1 went to staging (hundreds of windows in).
    backup = _corrupt_chunk(cube, schema.VV_DIFF, 1, 2, 0)
    with pytest.raises(Exception):  # noqa: B017 (whatever zarr raises for a broken chunk)
        predict(cube, run_dir, tta=False, batch_size=64)
    assert "pred_fcn" not in schema.open_cube(cube).data_vars  # no half variable visible
    state = staging.staged_state(cube, "pred_fcn")
    keys = pair_keys(schema.open_cube(cube))
    assert state["done"] == [keys[0]]
    _restore(backup)
    # Resume: pair 0 is not read again (its inputs are now broken), pair 1 is redone.
    backup0 = _corrupt_chunk(cube, schema.VV_DIFF, 0, 0, 0)
    predict(cube, run_dir, tta=False, batch_size=64)
    _restore(backup0)
    np.testing.assert_array_equal(schema.open_cube(cube)["pred_fcn"].values, clean)
    assert staging.staged_state(cube, "pred_fcn") is None


def test_pairs_new_predicts_only_pairs_without_a_prediction(cube_and_run):
    cube, run_dir = cube_and_run
    ds = schema.open_cube(cube)
    act = [str(a)[:10] for a in ds[schema.ACTIVITY_TIME].values]
    predict(cube, run_dir, pairs=f"..{act[1]}", tta=False)
    first = schema.open_cube(cube)["pred_fcn"]
    assert json.loads(first.attrs[schema.ATTR_PREDICTED_PAIRS]) == pair_keys(ds)[:2]
    assert np.isnan(first.values[2]).all()
    before = first.values.copy()
    # The inputs of pairs 0 and 1 become unreadable: only pair 2 may be read.
    backups = [_corrupt_chunk(cube, schema.VV_DIFF, p, 0, 0) for p in (0, 1)]
    predict(cube, run_dir, pairs="new", tta=False)
    for b in backups:
        _restore(b)
    after = schema.open_cube(cube)["pred_fcn"]
    np.testing.assert_array_equal(after.values[:2], before[:2])
    np.testing.assert_allclose(after.values[2], _expected(cube, run_dir, 2, tta=False), rtol=0, atol=1e-5)
    assert json.loads(after.attrs[schema.ATTR_PREDICTED_PAIRS]) == pair_keys(ds)
    predict(cube, run_dir, pairs="new", tta=False)  # nothing new: a no-op
    np.testing.assert_array_equal(schema.open_cube(cube)["pred_fcn"].values, after.values)


def test_refuses_missing_variables_existing_names_and_unknown_pairs(cube_and_run, tmp_path):
    cube, run_dir = cube_and_run
    other = make_run(tmp_path / "par-run", schema.open_cube(cube), channels=(schema.VV_DIFF, schema.CURVATURE))
    with pytest.raises(MissingVariableError, match=schema.CURVATURE):
        predict(cube, other)
    with pytest.raises(InputError, match="no pair"):
        predict(cube, run_dir, pairs="2030-01-01..2030-02-01")
    with pytest.raises(InputError, match="--pairs"):
        predict(cube, run_dir, pairs="yesterday")
    predict(cube, run_dir, tta=False)
    with pytest.raises(CubeExistsError, match="--overwrite"):
        predict(cube, run_dir, tta=False)
    retrained = make_run(tmp_path / "retrained", schema.open_cube(cube), seed=1)
    with pytest.raises(CubeExistsError, match="another --name"):
        predict(cube, retrained, name="fcn", pairs="new", tta=False)
    predict(cube, retrained, name="fcn", overwrite=True, tta=False)
    ds = schema.open_cube(cube)
    assert ds["pred_fcn"].attrs[schema.ATTR_CHECKPOINT_SHA256] == runs.sha256_of(retrained / runs.BEST)


def test_predict_on_an_fsspec_memory_store(tmp_path):
    url = "memory://predict-test/c.zarr"
    store.write_cube(make_pair_cube(n_pairs=2), url)
    try:
        run_dir = make_run(tmp_path / "fcn", schema.open_cube(url))
        predict(url, run_dir)
        ds = schema.open_cube(url)
        assert ds["pred_fcn"].shape == ds[schema.LABEL].shape
        assert ds["pred_fcn"].attrs[schema.ATTR_TTA] == 8
        np.testing.assert_allclose(ds["pred_fcn"].values[1], _expected(url, run_dir, 1), rtol=0, atol=1e-5)
    finally:
        zarrio.remove(url)


def test_cli_predict(cube_and_run):
    cube, run_dir = cube_and_run
    assert main(["predict", cube, "--run", str(run_dir), "--name", "cli", "--no-tta", "--batch-size", "4"]) == 0
    assert "pred_cli" in schema.open_cube(cube).data_vars
    assert main(["predict", cube, "--run", str(run_dir), "--name", "cli", "--no-tta"]) != 0  # exists


def test_predict_shows_progress_on_a_terminal_and_respects_quiet(cube_and_run, capsys, monkeypatch):
    """A bar over the windows on a terminal; nothing with -q; -v logs each finished pair (for logs, non-TTY)."""
    import sys

    cube, run_dir = cube_and_run
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert main(["predict", cube, "--run", str(run_dir), "--name", "tty", "--no-tta"]) == 0
    err = capsys.readouterr().err
    assert "predict pred_tty" in err and "window" in err  # the tqdm bar
    assert main(["-q", "predict", cube, "--run", str(run_dir), "--name", "quiet", "--no-tta"]) == 0
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert main(["-v", "predict", cube, "--run", str(run_dir), "--name", "logged", "--no-tta"]) == 0
    err = capsys.readouterr().err
    n_pairs = schema.open_cube(cube).sizes[schema.PAIR]
    assert f"pred_logged: pair 0 done (1/{n_pairs}" in err and "predict pred_logged" not in err  # no bar off a terminal


def _template(name: str, n_pairs: int, ny: int = 24, nx: int = 32):
    import dask.array as dsa

    dims = (schema.PAIR, schema.Y, schema.X)
    return schema.make_variable(
        name,
        dsa.zeros((n_pairs, ny, nx), dtype="float32", chunks=(1, ny, nx)),
        dims,
        spec=schema.prediction_spec(name, dims),
    )


def test_staging_resumes_restarts_and_extends_a_live_variable(tmp_path):
    cube = _cube(tmp_path / "c.zarr", n_pairs=3)
    name = "pred_staged"
    staged = staging.stage_array(cube, _template(name, 3), fingerprint="a")
    staged.write(np.ones((24, 32), "float32"), (0, slice(0, 24), slice(None)))
    staged.mark_done("p0")
    with pytest.raises(Exception, match="chunk grid"):
        staged.write(np.ones((4, 32), "float32"), (1, slice(3, 7), slice(None)))
    assert name not in schema.open_cube(cube).data_vars
    assert staging.stage_array(cube, _template(name, 3), fingerprint="a").done == {"p0"}  # resumed
    fresh = staging.stage_array(cube, _template(name, 3), fingerprint="b")  # other settings: start over
    assert fresh.done == set()
    fresh.write(np.full((24, 32), 0.5, "float32"), (1, slice(0, 24), slice(None)))
    fresh.promote({schema.ATTR_THRESHOLD: 0.5})
    live = schema.open_cube(cube)[name]
    assert np.isnan(live.values[0]).all() and (live.values[1] == 0.5).all()
    # Extending: the staging starts as a copy of the live variable, which stays as it was until promotion.
    store.remove_variables(cube, [name])
    store.add_variables(cube, {name: _template(name, 3).copy(data=np.full((3, 24, 32), 0.25, "float32"))})
    short = staging.stage_array(cube, _template(name, 3), fingerprint="c", keep_existing=True)
    short.write(np.full((24, 32), 0.75, "float32"), (2, slice(0, 24), slice(None)))
    assert (schema.open_cube(cube)[name].values == 0.25).all()  # not visible before promotion
    short.promote({})
    values = schema.open_cube(cube)[name].values
    assert (values[:2] == 0.25).all() and (values[2] == 0.75).all()
    assert not staging.clean_staging(cube)


def test_single_scene_runs_predict_on_y_x(tmp_path):
    """A landslide-style run: static inputs and (y, x) labels give a (y, x) prediction."""
    ds = make_pair_cube(n_pairs=1)
    ds[schema.LABEL] = schema.make_variable(schema.LABEL, ds[schema.LABEL].values[0], (schema.Y, schema.X))
    cube = tmp_path / "event.zarr"
    store.write_cube(ds, cube)
    run_dir = make_run(tmp_path / "slide", schema.open_cube(cube), channels=(schema.DEM, schema.SLOPE))
    var = predict(cube, run_dir, tta=False)
    got = schema.open_cube(cube)[var]
    assert got.dims == (schema.Y, schema.X) and np.isfinite(got.values).all()
    assert json.loads(got.attrs[schema.ATTR_PREDICTED_PAIRS]) == ["scene"]
    np.testing.assert_allclose(got.values, _expected(cube, run_dir, None, tta=False), rtol=0, atol=1e-5)
    predict(cube, run_dir, pairs="new", tta=False)  # already there: nothing to do


def test_adding_layers_keeps_an_unfinished_prediction_staged(tmp_path):
    """A features/add-layer run between an interrupted predict and its rerun must not discard the staging."""
    cube = _cube(tmp_path / "c.zarr", n_pairs=2)
    name = "pred_keep"
    staged = staging.stage_array(cube, _template(name, 2), fingerprint="a")
    staged.write(np.ones((24, 32), "float32"), (0, slice(0, 24), slice(None)))
    staged.mark_done("p0")
    store.add_variables(cube, {schema.CURVATURE: schema.make_variable(schema.CURVATURE, np.zeros((24, 32)))})
    assert schema.CURVATURE in schema.open_cube(cube).data_vars
    assert staging.stage_array(cube, _template(name, 2), fingerprint="a").done == {"p0"}
    assert name not in schema.open_cube(cube).data_vars
