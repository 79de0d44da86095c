"""One writer per cube (datacube/lock.py): real processes on local disk, a real S3 API server for lock objects."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from conftest import make_pair_cube
from sarcube.datacube import lock, schema, store
from sarcube.datacube.predictions import predicted_keys
from sarcube.errors import CubeLockedError
from test_predict import make_run

SARCUBE = [sys.executable, "-m", "sarcube.pipelines.cli"]


def test_concurrent_predicts_never_corrupt_the_cube(tmp_path):
    """Three real `sarcube predict` processes while the cube is locked: one is refused, two with the same --name
    wait their turn (different names: see the history test below)."""
    cube = tmp_path / "cube.zarr"
    store.write_cube(make_pair_cube(n_pairs=4), cube)
    run = make_run(tmp_path / "run", schema.open_cube(cube))
    predict = [*SARCUBE, "predict", str(cube), "--run", str(run), "--no-tta"]
    with lock.writer(cube, "the test") as owner:
        refused = subprocess.run([*predict, "--name", "same"], capture_output=True, text=True, timeout=120)
        waiting = [
            subprocess.Popen([*predict, "--name", name, "--pairs", "new", "--wait", "300"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for name in ("same", "same")
        ]
        time.sleep(3.0)  # they start (and some may already poll) while the lock is held
        assert all(p.poll() is None for p in waiting)
    results = [p.communicate(timeout=300) + (p.returncode,) for p in waiting]

    assert refused.returncode == CubeLockedError.exit_code
    message = refused.stderr.strip().splitlines()
    assert len(message) == 1 and f"pid {owner['pid']}" in message[0] and "the test" in message[0], refused.stderr
    assert "--wait" in message[0]
    assert [rc for _, _, rc in results] == [0, 0], results
    ds = schema.open_cube(cube)
    pred = ds[schema.prediction_name("same")]
    assert np.isfinite(pred.values).all()  # no pair left unwritten
    assert predicted_keys(pred) == [
        f"{r}/{a}" for r, a in zip(
            np.datetime_as_string(ds[schema.REFERENCE_TIME].values, unit="s"),
            np.datetime_as_string(ds[schema.ACTIVITY_TIME].values, unit="s"), strict=True)
    ]
    history = ds.attrs[schema.ATTR_HISTORY].splitlines()
    assert sum("--name same" in h for h in history) == 1  # the second `same` found nothing new to write
    assert not (tmp_path / "cube.zarr.lock").exists()  # a lock file exists only while held


def test_attribute_updates_are_read_modify_write_under_the_lock(tmp_path):
    """Two processes appending history lines at once (two steps with different names) lose none."""
    cube = tmp_path / "cube.zarr"
    store.write_cube(make_pair_cube(n_pairs=1), cube)
    code = (
        "import sys\nfrom sarcube.datacube import lock, store\n"
        "for i in range(6):\n"
        "    with lock.writer(sys.argv[1], 'history test', wait_s=60):\n"  # a plain store write stops when busy
        "        store.append_history(sys.argv[1], f'{sys.argv[2]} {i}')\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(cube), tag]) for tag in ("alpha", "beta")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    history = schema.open_cube(cube).attrs[schema.ATTR_HISTORY].splitlines()
    for tag in ("alpha", "beta"):
        assert sorted(int(h.rsplit(" ", 1)[1]) for h in history if f" {tag} " in h) == list(range(6))


def test_lock_is_reentrant_within_a_process_and_refuses_another(tmp_path):
    cube = tmp_path / "c.zarr"
    with lock.writer(cube, "outer") as owner:
        with lock.writer(cube, "inner"):  # the store's own writes inside a step
            assert lock.holds(cube)
        assert lock.holds(cube)
        with pytest.raises(CubeLockedError, match="already holds"):
            with lock.joined(cube, owner["token"]):
                pass
        # another process joins the held lock only with its holder's token (DDP prediction ranks), then
        # writes under it; without the token it is refused
        other = subprocess.run(
            [sys.executable, "-c", "import sys; from sarcube.datacube import lock\n"
             "from sarcube.errors import CubeLockedError\n"
             "with lock.joined(sys.argv[1], sys.argv[2]):\n"
             "    with lock.writer(sys.argv[1], 'rank'): print('joined', lock.holds(sys.argv[1]))\n"
             "try:\n    lock.joined(sys.argv[1], 'not-the-token').__enter__()\n"
             "except CubeLockedError as err: print('refused', err)\n"
             "with lock.writer(sys.argv[1], 'probe', wait_s=0.5): pass", str(cube), owner["token"]],
            capture_output=True, text=True, timeout=60,
        )
        assert "joined True" in other.stdout and "refused" in other.stdout and "outer" in other.stdout
        assert other.returncode != 0 and "CubeLockedError" in other.stderr and "outer" in other.stderr
    assert not lock.holds(cube) and not (tmp_path / "c.zarr.lock").exists()
    with pytest.raises(CubeLockedError, match="nobody"):
        with lock.joined(cube, owner["token"]):
            pass


# --- lock objects on a real S3 API (moto's server on 127.0.0.1, through s3fs) ----------

@pytest.fixture(scope="module")
def s3():
    pytest.importorskip("s3fs")
    server_mod = pytest.importorskip("moto.server")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    options = {
        "key": "test",
        "secret": "test",
        "client_kwargs": {"endpoint_url": f"http://{host}:{port}", "region_name": "us-east-1"},
    }
    import s3fs

    fs = s3fs.S3FileSystem(**options)
    fs.call_s3("create_bucket", Bucket="cubes")
    yield fs, options
    server.stop()


def _owner(age_s: float) -> dict:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - age_s))
    return {"host": "elsewhere", "pid": 4242, "verb": "sarcube build", "time": stamp, "token": f"t{age_s}"}


def test_object_lock_refuses_a_fresh_holder_and_waits_for_it(s3):
    fs, options = s3
    url, key = "s3://cubes/fresh.zarr", "cubes/fresh.zarr.lock"
    fs.pipe_file(key, json.dumps(_owner(0)).encode())  # another host's writer, alive
    with pytest.raises(CubeLockedError, match=r"sarcube build \(pid 4242 on elsewhere"):
        with lock.writer(url, storage_options=options):
            pass
    threading.Timer(0.5, fs.rm_file, args=(key,)).start()  # that writer finishes
    with lock.writer(url, "sarcube predict", wait_s=30, storage_options=options) as owner:
        held = json.loads(fs.cat_file(key))
        assert held["token"] == owner["token"] and held["verb"] == "sarcube predict" and held["pid"] == os.getpid()
        with pytest.raises(FileExistsError):  # the server refuses a second create
            fs.pipe_file(key, b"{}", mode="create")
    assert not fs.exists(key)


def test_object_lock_takes_over_a_stale_holder_and_heartbeats(s3, monkeypatch):
    fs, options = s3
    url, key = "s3://cubes/stale.zarr", "cubes/stale.zarr.lock"
    fs.pipe_file(key, json.dumps(_owner(3600)).encode())  # a writer that died an hour ago
    monkeypatch.setattr(lock, "HEARTBEAT_S", 1.0)
    with lock.writer(url, "sarcube features", storage_options=options) as owner:
        first = json.loads(fs.cat_file(key))
        assert first["token"] == owner["token"]
        time.sleep(2.5)
        later = json.loads(fs.cat_file(key))
        assert later["token"] == owner["token"] and later["time"] > first["time"]  # refreshed while held
    assert not fs.exists(key) and not fs.exists(f"{key}.takeover-t3600")


def test_a_nan_training_loss_stops_training():
    """Chips from a cube with gaps (e.g. an unfinished one) give NaN inputs: training stops, weights untouched."""
    import torch

    from sarcube.errors import TrainingDataError
    from sarcube.models import build_model
    from sarcube.models.training import train_epoch
    from sarcube.pipelines.presets import load_preset

    config = load_preset("avalanche-fcn-concat", "cpu-demo").training
    model = build_model("unet", 3, base_channels=4, depth=2, dropout=0.0)
    before = [p.detach().clone() for p in model.parameters()]
    x = torch.zeros(2, 3, 16, 16)
    x[0, 0, 3, 3] = float("nan")
    y = torch.zeros(2, 16, 16, dtype=torch.uint8)
    optimizer = torch.optim.Adam(model.parameters())
    with pytest.raises(TrainingDataError, match=r"training loss is nan at step 1: the chips hold NaN"):
        train_epoch(model, [(x, y, None)], optimizer, config, torch.device("cpu"))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_add_variables_writes_dask_layers_one_pair_and_tile_at_a_time(tmp_path, monkeypatch):
    """Memory bounded by chunks (issue 18): every compute covers one pair and one tile, never the whole layer."""
    import dask.array as dsa

    path = tmp_path / "cube.zarr"
    ds = make_pair_cube(ny=1100, nx=600, n_pairs=2)
    store.write_cube(ds[[schema.VV, schema.VH, schema.SLOPE]], path)
    pyx = (schema.PAIR, schema.Y, schema.X)
    diff = ds[schema.VV_DIFF].values.astype("float32")
    layers = {
        schema.VV_DIFF: schema.make_variable(schema.VV_DIFF, dsa.from_array(diff, chunks=(1, 512, 512)), pyx),
        schema.RELEASE: schema.make_variable(schema.RELEASE, np.ones((1100, 600), dtype="uint8")),  # in memory
    }
    monkeypatch.setattr(store, "REGION_YX", schema.CHUNK_YX)
    written, real = [], store.write_region

    def recording(part, *args, **kwargs):  # the real writer, noting each piece's size
        written.append(dict(part.sizes))
        return real(part, *args, **kwargs)

    monkeypatch.setattr(store, "write_region", recording)
    store.add_variables(path, layers, new_coords={c: ds[c] for c in (schema.PAIR, schema.REFERENCE_TIME)})
    # 2 pairs x 3 tile rows x 2 tile columns, each at most one storage chunk; the in-memory layer in one go
    assert len(written) == 12
    assert all(s[schema.PAIR] == 1 and s[schema.Y] <= 512 and s[schema.X] <= 512 for s in written)
    out = schema.open_cube(path, validate=False)
    np.testing.assert_array_equal(out[schema.VV_DIFF].values, diff)
    np.testing.assert_array_equal(out[schema.RELEASE].values, 1)
