"""Cubes on object storage: the steps against a real S3 API server on 127.0.0.1 (moto's server mode).

The same build, features, train, predict and publish as on local disk, through
fsspec/s3fs, with the endpoint and credentials from the AWS environment or
``--storage-options``; the results equal the local ones, a killed build
resumes there, and the secret key never lands in the cube, the archive or the log.
One small cube is built on S3 for the module (through the CLI, with
``--storage-options`` alone); the tests share it.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import sys
from functools import partial

import numpy as np
import pytest
import xarray as xr

from s3_server import BUCKET, SECRET_KEY, aws_env, serve_s3
from sarcube.datacube import schema, store, zarrio
from sarcube.errors import InputError
from sarcube.pipelines import build_writes
from sarcube.pipelines._storage import parse_storage_options
from sarcube.pipelines.build import build
from sarcube.pipelines.cli import main
from sarcube.pipelines.features import features
from sarcube.pipelines.predict import predict
from sarcube.pipelines.publish import publish
from sarcube.pipelines.train import train
from sarcube.pipelines.verify import verify
from stac_server import write_test_catalog
from test_build import kill_build_midway
from test_chips import make_featured_cube
from test_train import SMALL_NETS, TINY

#: frame side of the test scenes (px at 10 m): the cube is its middle, 24 x 24 px at 20 m
SCENE_PX = 128


@pytest.fixture(scope="module")
def endpoint():
    with serve_s3() as url:
        yield url


@pytest.fixture(scope="module")
def test_catalog(tmp_path_factory):
    return write_test_catalog(tmp_path_factory.mktemp("stac") / "catalog", size=SCENE_PX)


def _build_argv(cat, out: str) -> list[str]:
    return ["build", "--aoi", ",".join(map(str, cat.aoi)), "--start", cat.start, "--end", cat.end,
            "--catalog", str(cat.root), "--out", out]


@pytest.fixture(scope="module")
def cubes(endpoint, test_catalog, tmp_path_factory):
    """The local build, and the same build plus features on S3 through the CLI with ``--storage-options`` only
    (no AWS variables); also the local featured copy and every log line of the S3 steps."""
    tmp = tmp_path_factory.mktemp("cubes")
    local = build(
        test_catalog.aoi, test_catalog.start, test_catalog.end, tmp / "local.zarr", catalog=str(test_catalog.root)
    )
    featured = tmp / "featured.zarr"
    shutil.copytree(local, featured)
    features(featured, par=False)
    env = aws_env(endpoint)
    options = {"endpoint_url": endpoint, "key": env["AWS_ACCESS_KEY_ID"], "secret": SECRET_KEY,
               "client_kwargs": {"region_name": "us-east-1"}}
    opt_file = tmp / "s3.json"
    opt_file.write_text(json.dumps(options))
    url = f"s3://{BUCKET}/alps/cube.zarr"
    log = io.StringIO()  # the CLI's log (-v) goes to stderr
    try:
        with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stderr(log):
            for key in env:
                mp.delenv(key, raising=False)
            mp.setenv("AWS_CONFIG_FILE", str(tmp / "none"))
            mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp / "none"))
            _forget_s3_clients()
            assert main(["-v", *_build_argv(test_catalog, url), "--storage-options", json.dumps(options)]) == 0
            assert main(["-v", "features", url, "--no-par", "--storage-options", f"@{opt_file}"]) == 0
    finally:
        for handler in logging.getLogger().handlers[:]:
            if getattr(handler, "stream", None) is log:
                logging.getLogger().removeHandler(handler)
    return {"local": local, "featured": featured, "url": url, "options": options, "opt_file": opt_file,
            "log": log.getvalue()}


@pytest.fixture
def aws(endpoint, monkeypatch):
    """The AWS environment pointing at the loopback server (as a user's shell would)."""
    for key, value in aws_env(endpoint).items():
        monkeypatch.setenv(key, value)
    _forget_s3_clients()
    yield endpoint
    _forget_s3_clients()


def _forget_s3_clients() -> None:
    """Drop fsspec's cached S3 filesystems: one made before the environment changed keeps the old credentials."""
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()


def assert_same_cube(a_path, b_path, **b_options):
    a, b = schema.open_cube(a_path), schema.open_cube(b_path, **b_options)
    assert dict(a.sizes) == dict(b.sizes)
    assert sorted(a.data_vars) == sorted(b.data_vars)
    for name in list(a.data_vars) + list(a.coords):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


def _metadata_text(url: str, options: dict | None = None) -> str:
    """Every metadata object of a store on S3, concatenated (what a secret must never be in)."""
    fs, root = zarrio.fs_and_root(url, options)
    return "".join(fs.cat_file(k).decode() for k in fs.find(root) if k.endswith("zarr.json"))


def test_cube_built_and_featured_on_s3_equals_local(cubes, capsys):
    url, options = cubes["url"], cubes["options"]
    assert_same_cube(cubes["featured"], url, storage_options=options)
    fs, root = zarrio.fs_and_root(url, options)
    assert not [k for k in fs.ls(root) if "sarcube-staging" in k or "sarcube-trash" in k]
    assert main(["info", url, "--json", "--storage-options", f"@{cubes['opt_file']}"]) == 0
    assert schema.VV_DIFF in capsys.readouterr().out
    assert SECRET_KEY not in _metadata_text(url, options) and SECRET_KEY not in cubes["log"]
    assert "alps/cube.zarr" in cubes["log"]  # the log was captured at all


def test_bad_storage_options_are_one_secret_free_line(capsys):
    assert main(["info", "s3://x/y.zarr", "--storage-options", '{"secret": "' + SECRET_KEY + '"']) != 0
    err = capsys.readouterr().err
    assert "--storage-options is not valid JSON" in err and SECRET_KEY not in err
    with pytest.raises(InputError, match="must be a JSON object"):
        parse_storage_options("[1, 2]")


def test_killed_build_on_s3_resumes(aws, test_catalog, cubes, monkeypatch):
    """SIGKILL a CLI build into S3 once some steps are written; the same build finishes it."""
    fs, _ = zarrio.fs_and_root(f"s3://{BUCKET}")
    for attempt in range(3):
        url = f"s3://{BUCKET}/killed{attempt}.zarr"
        argv = [sys.executable, "-m", "sarcube.pipelines.cli", *_build_argv(test_catalog, url)]
        if kill_build_midway(argv, partial(fs.cat_file, f"{BUCKET}/killed{attempt}.zarr/zarr.json")):
            break
    else:
        pytest.skip("the build always finished before it could be killed")
    assert schema.ATTR_BUILD_PENDING in xr.open_zarr(url).attrs
    monkeypatch.setenv(build_writes.BATCH_ENV, "1")
    build(test_catalog.aoi, test_catalog.start, test_catalog.end, url, catalog=str(test_catalog.root))
    assert schema.ATTR_BUILD_PENDING not in schema.open_cube(url).attrs
    assert_same_cube(cubes["local"], url)


def test_train_predict_publish_from_s3(aws, tmp_path):
    """Train reads chips from S3, predict writes into S3 (== predict on a local copy), publish zips it."""
    ds = make_featured_cube(ny=96, nx=96, nt=4, px_per_blob=768)
    url, local = f"s3://{BUCKET}/train/featured.zarr", tmp_path / "featured.zarr"
    store.write_cube(ds, url)
    store.write_cube(ds, local)
    over = [*TINY, *SMALL_NETS["avalanche-fcn"], "train.steps_per_epoch=2", "train.val_steps=1"]
    run = train(url, "avalanche-fcn", tmp_path / "run", profile="cpu-demo", overrides=over, device="cpu")
    assert (run / "best.pt").exists()
    name = predict(url, run, name="fcn", tta=False, device="cpu")
    predict(local, run, name="fcn", tta=False, device="cpu")
    on_s3, on_disk = schema.open_cube(url)[name].values, schema.open_cube(local)[name].values
    assert np.isfinite(on_s3).any()
    np.testing.assert_array_equal(on_s3, on_disk)
    result = publish(url, tmp_path / "archive", title="S3 cube", creators=["Doe, Jane"], progress=False)
    assert result.archive.name == "featured.zarr.zip"
    verify(tmp_path / "archive")
    assert sorted(p.name for p in (tmp_path / "archive").iterdir() if p.name.startswith(".")) == []
