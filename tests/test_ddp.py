"""Torch DDP: 2 ranks on the CPU with gloo, started by torch's elastic launcher (what ``--nproc`` runs).

Training: one launch does everything (spawning ranks that import torch is the
slow part): each rank trains an epoch, resumes the run for a second, and
reports the chips its share of each epoch holds. Prediction: 2 ranks fail on
a broken chunk, leave nothing visible, resume, and write what one process writes.
"""

from __future__ import annotations

import json
import logging
import re

import numpy as np
import pytest
import torch

from conftest import make_pair_cube
from sarcube.datacube import lock, schema, staging, store
from sarcube.datacube.predictions import pair_keys
from sarcube.errors import InputError, SarcubeError
from sarcube.models import distributed
from sarcube.pipelines import ddp, runs
from sarcube.pipelines.loaders import ChipStream
from sarcube.pipelines.predict import predict
from sarcube.pipelines.presets import load_preset
from sarcube.pipelines.train import prepare_data, train
from test_chips import make_featured_cube
from test_predict import _corrupt_chunk, _restore, make_run
from test_train import SMALL_NETS, TINY

PRESET = "avalanche-fcn-concat"
OVERRIDES = [*TINY, *SMALL_NETS[PRESET], "train.steps_per_epoch=6", "train.val_steps=2", "chips.block_px=32",
             "optim.lr=0.01"]


def _rank(cube: str, out: str) -> dict:
    """One rank: train an epoch, resume for a second (the same process group), and this rank's chips per epoch."""
    ranks, device = distributed.init(torch.device("cpu"))
    train(cube, PRESET, out, profile="cpu-demo", overrides=[*OVERRIDES, "train.epochs=1"], device="cpu")
    first_step = int(torch.load(f"{out}/{runs.LAST}", weights_only=True)["step"])  # every rank: written before
    train(cube, PRESET, out, overrides=["train.epochs=2"], resume=True, device="cpu")
    p = load_preset(PRESET, "cpu-demo", [*OVERRIDES, "chips.policy=all"])
    data = prepare_data(schema.open_cube(cube), p)
    stream = ChipStream(cube, data.resolved, data.mean, data.std, data.blocks["train"], 16, batch_size=4, seed=3)
    stream.set_ranks(ranks.rank, ranks.world_size)
    chips, batches = [], []
    for epoch in (0, 1):
        stream.set_epoch(epoch)
        got = list(stream)
        batches.append((len(got), stream.batches_in_epoch()))
        chips.append(torch.cat([b[2] for b in got]).tolist())
    distributed.shutdown(ranks)
    return {"rank": ranks.rank, "world": ranks.world_size, "owns": ranks.owns_group, "first_step": first_step,
            "chips": chips, "batches": batches, "n_chips": stream.n_chips, "n_blocks": len(data.blocks["train"])}


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    path = tmp_path_factory.mktemp("ddp") / "featured.zarr"
    store.write_cube(make_featured_cube(ny=96, nx=96, nt=4, px_per_blob=768), path)
    return path


def test_two_gloo_ranks_train_resume_and_shard_the_epochs(cube, tmp_path):
    out = tmp_path / "ddp"
    results = ddp.launch(2, _rank, str(cube), str(out))
    assert sorted(results) == [0, 1]
    r0, r1 = results[0], results[1]
    assert [r0["rank"], r1["rank"]] == [0, 1] and r0["world"] == r1["world"] == 2 and r0["owns"]
    state = torch.load(out / runs.LAST, weights_only=True)
    assert state["epoch"] == 1 and state["step"] == 2 * r0["first_step"] > 0  # every rank took the same steps
    assert not runs.load_run(out, which=runs.LAST).model.training  # the checkpoint loads
    rows = runs.read_metrics(out)
    assert [r["epoch"] for r in rows] == [0, 1]  # one row per epoch: only the main rank writes
    assert rows[1]["train_loss"] < rows[0]["train_loss"]
    assert r0["n_blocks"] >= 4
    for epoch in (0, 1):  # each epoch's chips: disjoint between the ranks, all of them together
        a, b = r0["chips"][epoch], r1["chips"][epoch]
        assert not set(a) & set(b) and sorted(a + b) == list(range(r0["n_chips"]))
        assert r0["batches"][epoch][0] == r0["batches"][epoch][1] and r1["batches"][epoch][0] == r1["batches"][epoch][1]
    assert r0["chips"][0] != r0["chips"][1]  # reshuffled per epoch


def test_one_process_is_not_distributed(monkeypatch):
    for key in (distributed.RANK_ENV, distributed.WORLD_SIZE_ENV):
        monkeypatch.delenv(key, raising=False)
    ranks, device = distributed.init(torch.device("cpu"))
    assert not ranks.distributed and ranks.is_main and device.type == "cpu" and not ranks.owns_group
    assert distributed.from_main(ranks, lambda: 7) == 7 and distributed.min_over_ranks(ranks, 3) == 3
    assert distributed.backend_for(torch.device("cuda")) == "nccl"
    assert np.isclose(distributed.mean_over_ranks(ranks, 0.5), 0.5)
    distributed.shutdown(ranks)
    ones = [distributed.dealt(range(7), distributed.Ranks(r, 3)) for r in range(3)]
    assert ones == [[0, 3, 6], [1, 4, None], [2, 5, None]]  # disjoint, covering, as many rounds each
    with pytest.raises(InputError, match="--nproc 0"):
        ddp.launch(0, _rank, "", "")


def _rank_writes(records) -> dict[int, list[str]]:
    """rank -> pair keys, from the launcher's report of what each rank wrote (its region writes' pairs).

    Read from the formatted message: the CLI's redacting log filter may have formatted a record already."""
    found = (re.fullmatch(r"pred_\w+: rank (\d+) wrote (.*)", r.getMessage()) for r in records)
    return {int(m.group(1)): m.group(2).split(", ") for m in found if m}


def test_two_gloo_ranks_resume_a_prediction_each_writing_its_own_pairs_as_one_process_does(tmp_path, caplog):
    """8 pairs: one process fails on a broken input chunk of pair 2 (pairs 0, 1 recorded, nothing visible);
    2 ranks resume, dealing out the 6 left round-robin, and write what one process writes (one launch:
    spawning ranks is the slow part; a failing rank leaves the same unpromoted staging, see the README)."""
    ds = make_pair_cube(n_pairs=8)
    one, two = tmp_path / "one.zarr", tmp_path / "two.zarr"
    store.write_cube(ds, one)
    store.write_cube(ds, two)
    run_dir = make_run(tmp_path / "fcn", schema.open_cube(one))
    var = predict(one, run_dir, batch_size=64)
    keys = pair_keys(schema.open_cube(one))

    backup = _corrupt_chunk(two, schema.VV_DIFF, 2, 0, 0)
    with pytest.raises(Exception):  # noqa: B017 (whatever zarr raises for a broken chunk)
        predict(two, run_dir, batch_size=64)
    assert var not in schema.open_cube(two).data_vars and staging.staged_state(two, var)["done"] == keys[:2]
    _restore(backup)
    backup = _corrupt_chunk(two, schema.VV_DIFF, 0, 0, 0)  # a finished pair is not read again

    with caplog.at_level(logging.INFO, logger="sarcube.pipelines.predict"):
        assert predict(two, run_dir, batch_size=64, nproc=2) == var
    _restore(backup)
    by_rank = _rank_writes(caplog.records)  # what each rank's region writes covered, as the ranks returned it
    assert by_rank == {0: [keys[2], keys[4], keys[6]], 1: [keys[3], keys[5], keys[7]]}  # disjoint, covering the rest
    got, ref = schema.open_cube(two), schema.open_cube(one)
    # same weights, inputs and windows; a rank's intra-op thread count may change a conv's summation order
    np.testing.assert_allclose(got[var].values, ref[var].values, rtol=0, atol=1e-6)
    assert json.loads(got[var].attrs[schema.ATTR_PREDICTED_PAIRS]) == keys
    assert got[var].attrs[schema.ATTR_THRESHOLD] == ref[var].attrs[schema.ATTR_THRESHOLD]
    assert got.attrs[schema.ATTR_HISTORY].count("sarcube predict") == 1  # written once, by rank 0
    assert staging.staged_state(two, var) is None and not staging.clean_staging(two)
    assert not lock.holds(two) and not (tmp_path / "two.zarr.lock").exists()


def _bad_input(flag: str) -> None:
    raise InputError(f"{flag} 0: give a positive number")


def test_a_rank_s_bad_input_fails_the_launch_as_bad_input():
    with pytest.raises(InputError, match="a DDP rank failed: --epochs 0: give a positive number") as err:
        ddp.launch(1, _bad_input, "--epochs")
    assert err.value.exit_code == 2
    assert type(ddp._rank_error("RuntimeError: CUDA out of memory")) is SarcubeError
    assert str(ddp._rank_error("killed by signal 9")) == "a DDP rank failed: killed by signal 9"
