"""Torch DDP training: 2 ranks on the CPU with gloo, through ``--nproc`` (torch's elastic launcher)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sarcube.datacube import schema, store
from sarcube.models import distributed
from sarcube.pipelines import runs
from sarcube.pipelines.loaders import ChipStream
from sarcube.pipelines.presets import load_preset
from sarcube.pipelines.train import prepare_data, train
from test_chips import make_featured_cube
from test_train import SMALL_NETS, TINY

OVERRIDES = [*TINY, *SMALL_NETS["avalanche-fcn-concat"], "train.steps_per_epoch=6", "train.val_steps=2",
             "chips.block_px=32", "optim.lr=0.01"]


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    path = tmp_path_factory.mktemp("ddp") / "featured.zarr"
    store.write_cube(make_featured_cube(ny=96, nx=96, nt=4, px_per_blob=768), path)
    return path


def test_ranks_shard_the_epoch_disjointly_and_completely(cube):
    p = load_preset("avalanche-fcn", "cpu-demo", [*TINY, "chips.block_px=32", "chips.policy=all"])
    data = prepare_data(schema.open_cube(cube), p)
    stream = ChipStream(cube, data.resolved, data.mean, data.std, data.blocks["train"], 16, batch_size=4, seed=3)
    assert len(data.blocks["train"]) >= 4
    for epoch in (0, 1):
        stream.set_epoch(epoch)
        shares = []
        for rank in range(2):
            stream.set_ranks(rank, 2)
            batches = list(stream)
            assert len(batches) == stream.batches_in_epoch()
            shares.append(torch.cat([b[2] for b in batches]).tolist())
        assert not set(shares[0]) & set(shares[1])
        assert sorted(shares[0] + shares[1]) == list(range(stream.n_chips))


def test_two_gloo_ranks_train_and_resume(cube, tmp_path):
    """2 ranks train an epoch, resume for a second; the main rank alone wrote a loadable run."""
    out = train(cube, "avalanche-fcn-concat", tmp_path / "ddp", profile="cpu-demo",
                overrides=[*OVERRIDES, "train.epochs=1"], device="cpu", nproc=2)
    first = torch.load(out / runs.LAST, weights_only=True)
    train(cube, "avalanche-fcn-concat", out, overrides=["train.epochs=2"], resume=True, device="cpu", nproc=2)
    state = torch.load(out / runs.LAST, weights_only=True)
    assert state["epoch"] == 1 and state["step"] == 2 * first["step"]  # every rank took the same steps
    assert not runs.load_run(out, which=runs.LAST).model.training  # the checkpoint loads
    rows = runs.read_metrics(out)
    assert [r["epoch"] for r in rows] == [0, 1]  # one row per epoch: only the main rank writes
    assert rows[1]["train_loss"] < rows[0]["train_loss"]


def test_one_process_is_not_distributed(monkeypatch):
    for key in (distributed.RANK_ENV, distributed.WORLD_SIZE_ENV):
        monkeypatch.delenv(key, raising=False)
    ranks, device = distributed.init(torch.device("cpu"))
    assert not ranks.distributed and ranks.is_main and device.type == "cpu"
    assert distributed.from_main(ranks, lambda: 7) == 7 and distributed.min_over_ranks(ranks, 3) == 3
    assert distributed.backend_for(torch.device("cuda")) == "nccl"
    assert np.isclose(distributed.mean_over_ranks(ranks, 0.5), 0.5)
