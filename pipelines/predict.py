"""``sarcube predict CUBE --run RUN_DIR``: a trained model's probabilities back into the cube.

Each selected pair (or the single scene when the run's labels are (y, x)) is
streamed through :func:`sarcube.models.inference_tiles.predict_tiles` (half-window
sliding, 8-fold dihedral TTA, spline blending) in tiles of one storage chunk
(column panels, each top to bottom), so a scene of any size needs memory for a
tile plus a window of halo; while the network runs, the next block of inputs
is read and the previous tile of probabilities is written (two background threads).

A patch run (``prediction_level`` patch: avalanche-cnn, avalanche-vae, the
``baseline-patch`` rule) is scored as it was validated instead: each chip of
the non-overlapping grid of its training chips gets one probability from its
centre crop (:func:`sarcube.models.patch_inference.predict_patches`, no TTA),
painted over the chip, so ``evaluate`` reads one score per patch back and
scores nothing the network was not validated on.

Which pairs to compute and what to keep is decided by
:func:`sarcube.datacube.predictions.plan_prediction`. Writing back (see
"resumable region writes" in :mod:`sarcube.datacube.store`):

- ``pred_<name>`` is written region by region into the store's staging group,
  chunk-aligned; after each pair, the pair is recorded as done there. Only
  when every pair is written is the variable moved into place and the
  metadata reconsolidated: readers never see a half prediction.
- An interrupted predict resumes on rerun (same run, TTA and pair selection)
  from the pairs it had finished.
- ``--pairs new`` predicts only pairs the existing variable does not list in
  its ``predicted_pairs`` attribute (monitoring a season): the staging starts
  from a copy of the current variable, which stays visible meanwhile and is
  swapped for the extended one at the end. The run must be the one that made
  the variable (same checkpoint sha256 and TTA).
- ``--overwrite`` recomputes the selected pairs; other pairs already
  predicted by the same run are kept, a different run replaces the variable.
- ``--nproc N`` (or ``torchrun``) deals the pairs out over N DDP ranks, one
  GPU each; each rank writes only its own pairs under the one writer lock
  of the cube, and rank 0 alone stages, records and promotes (:func:`_predict`).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import numpy as np

from sarcube.datacube import lock, schema, staging, store
from sarcube.datacube.predictions import (
    ATTR_CHIP,
    ATTR_LEVEL,
    ATTR_MASK_TTA,
    ATTR_OPERATING_POINT,
    ATTR_OPERATING_POINT_F1,
    ATTR_PRESET,
    ATTR_TASK,
    ATTR_WINDOW,
    OP_THRESHOLD,
    OPERATING_POINTS,
    PAIRS_ALL,
    plan_prediction,
    predicted_pairs_attr,
    run_name,
)
from sarcube.errors import InputError
from sarcube.pipelines import ddp
from sarcube.pipelines._storage import storage_options_option
from sarcube.progress import bar_disable

if TYPE_CHECKING:
    import torch

    from sarcube.models import distributed

log = logging.getLogger(__name__)


class _Prefetcher:
    """Reads input blocks one ahead (the next rows, same columns) in a background thread while the network runs."""

    def __init__(self, read: Callable[..., np.ndarray], height: int, band_rows: int, pool: ThreadPoolExecutor) -> None:
        self.read, self.height, self.band_rows, self.pool = read, height, band_rows, pool
        self.pending: dict[tuple[int, int, int, int], Future] = {}

    def __call__(self, y0: int, y1: int, x0: int, x1: int) -> Any:
        import torch

        fut = self.pending.pop((y0, y1, x0, x1), None)
        block = fut.result() if fut is not None else self.read(y0, y1, x0, x1)
        if y1 < self.height:
            nxt = (y1, min(y1 + self.band_rows, self.height), x0, x1)
            self.pending[nxt] = self.pool.submit(self.read, *nxt)
        return torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))


#: the step named in the cube's writer lock
VERB = "sarcube predict"


def predict(
    cube: str | Path,
    run_dir: str | Path,
    *,
    name: str | None = None,
    pairs: str | Sequence[int] = PAIRS_ALL,
    tta: bool = True,
    mask_tta: str = "per-transform",  # models.inference.MASK_PER_TRANSFORM (not imported here: torch)
    batch_size: int = 8,
    overwrite: bool = False,
    scheduler: str | None = None,
    device: str | None = None,
    wait_s: float = 0.0,
    storage_options: Mapping[str, Any] | None = None,
    nproc: int = 1,
    operating_point: str = OP_THRESHOLD,
) -> str:
    """Predict a run over the cube's pairs and write ``pred_<name>``; returns the variable name.

    ``name`` defaults to the run directory's name. ``pairs``: ``all``, ``new``
    (pairs the variable does not hold yet), ``START..END`` (activity dates) or
    a list of pair indices. ``batch_size`` counts network inputs per forward
    pass (windows x 8 TTA transforms; patches for a patch run). ``device``: auto
    (CUDA when present), cpu, cuda. ``tta`` does not apply to patch runs: they
    score each chip's centre crop once, as validated. ``mask_tta``: for a model with an
    input mask (par_attention) under TTA, ``per-transform`` runs the mask net on every
    copy (exact TTA); ``once`` computes the mask once per window and rotates it with each
    copy (1.2-1.5x faster; not within 1e-3, see :data:`~sarcube.models.inference.MASK_ONCE`).
    ``wait_s``: how long to wait for another writer of the cube (see :mod:`sarcube.datacube.lock`).
    ``operating_point``: ``threshold`` (the run's), ``rate`` (each pair's own top share of pixels, the share
    tuned on the run's validation pairs, predicted too) or ``auto`` (the better of the two on validation).

    ``nproc > 1`` predicts with that many ranks on this machine (torch's elastic launcher; one GPU each on
    CUDA); under ``torchrun`` each rank calls this with ``nproc=1``. The pairs are dealt out over the ranks,
    each writes only its own pairs' regions, rank 0 stages and promotes the variable (see :func:`_predict`).
    """
    from sarcube.models.inference import MASK_MODES

    if batch_size < 1:
        raise InputError(f"--batch-size {batch_size} must be at least 1")
    if mask_tta not in MASK_MODES:
        raise InputError(f"--mask-tta {mask_tta!r} is unknown: use one of {', '.join(MASK_MODES)}")
    options = {"name": name, "pairs": pairs if isinstance(pairs, str) else [int(p) for p in pairs], "tta": tta,
               "mask_tta": mask_tta, "batch_size": batch_size, "overwrite": overwrite, "scheduler": scheduler,
               "device": device, "wait_s": wait_s,
               "storage_options": dict(storage_options) if storage_options else None,
               "operating_point": operating_point}
    if nproc <= 1:
        return _predict(cube, run_dir, **options)[0]
    # this process holds the cube's lock until every rank has exited; the ranks write under it
    with lock.writer(cube, VERB, wait_s=wait_s, storage_options=storage_options) as owner:
        results = ddp.launch(nproc, _predict_rank, str(cube), str(run_dir), options, str(owner["token"]))
    for rank, (var, written) in sorted(results.items()):
        log.info("%s: rank %d wrote %s", var, rank, ", ".join(written) or "nothing")
    return results[0][0]


def _predict_rank(cube: str, run_dir: str, options: dict[str, Any], lock_token: str) -> tuple[str, list[str]]:
    """One rank of ``predict(..., nproc=N)`` (module level: the launcher pickles it)."""
    return _predict(cube, run_dir, lock_token=lock_token, **options)


def _predict(
    cube: str | Path,
    run_dir: str | Path,
    *,
    name: str | None,
    pairs: str | Sequence[int],
    tta: bool,
    mask_tta: str,
    batch_size: int,
    overwrite: bool,
    scheduler: str | None,
    device: str | None,
    wait_s: float,
    storage_options: Mapping[str, Any] | None,
    operating_point: str = OP_THRESHOLD,
    lock_token: str | None = None,
) -> tuple[str, list[str]]:
    """:func:`predict` in one process or one DDP rank; the variable and the keys of the pieces this process wrote.

    Under DDP every rank holds the cube's lock with the others
    (:func:`sarcube.pipelines.ddp.cube_writer`) and plans alike (the plan is
    pure). Rank 0 stages the variable and sends the pieces already done to the
    others; the pieces left are dealt out round-robin, each rank writing only
    its own (a pair is its own chunks: region writes must start on the chunk
    grid); after each round rank 0 records the round's finished pieces (the
    resume point, one writer of that record). After the last round rank 0 alone
    promotes the variable, with its attrs and history; a failed rank leaves it
    staged, unpromoted, for a rerun to resume.
    """
    from sarcube.models import distributed
    from sarcube.models.device import pick_device

    ranks, torch_device = distributed.init(pick_device(device))
    with ddp.cube_writer(ranks, cube, VERB, token=lock_token, wait_s=wait_s, storage_options=storage_options):
        result = _predict_locked(cube, run_dir, ranks, torch_device, name=name, pairs=pairs, tta=tta,
                                 mask_tta=mask_tta, batch_size=batch_size, overwrite=overwrite, scheduler=scheduler,
                                 storage_options=storage_options, operating_point=operating_point)
    distributed.shutdown(ranks)
    return result


def _predict_locked(
    cube: str | Path,
    run_dir: str | Path,
    ranks: distributed.Ranks,
    torch_device: torch.device,
    *,
    name: str | None,
    pairs: str | Sequence[int],
    tta: bool,
    mask_tta: str,
    batch_size: int,
    overwrite: bool,
    scheduler: str | None,
    storage_options: Mapping[str, Any] | None,
    operating_point: str,
) -> tuple[str, list[str]]:
    import dask.array as dsa
    from tqdm.auto import tqdm

    from sarcube.models import distributed, has_input_mask, window_probability_fn
    from sarcube.models.config import LEVEL_PATCH
    from sarcube.models.inference import DIHEDRAL_TRANSFORMS, MASK_ONCE, TilingPlan
    from sarcube.models.inference_tiles import predict_tiles
    from sarcube.models.patch_inference import patch_probability, predict_patches
    from sarcube.pipelines import _dask
    from sarcube.pipelines import operating_point as op
    from sarcube.pipelines.runs import assemble_inputs, load_run, resolved_channels

    loaded = load_run(run_dir, torch_device)
    info = loaded.info
    ds = schema.open_cube(cube, storage_options=storage_options)
    resolved_channels(ds, info)  # names the variables the cube lacks
    var_name = schema.prediction_name(name if name is not None else Path(run_dir).resolve().name)
    patches = info.prediction_level == LEVEL_PATCH
    if patches and tta and ranks.is_main:
        log.info("%s scores patches as validated (one centre crop each): no test-time augmentation", info.preset)
    tta_count = len(DIHEDRAL_TRANSFORMS) if tta and not patches else 1
    split_plan, val_pairs, pairs = op.plan_pairs(operating_point, run_dir, ds, info.prediction_level, pairs)
    window = int(info.input_size or info.chip_size)  # the side the network saw in training
    masked = has_input_mask(loaded.model) and tta_count > 1  # mask_tta matters (and is recorded) only then
    plan = plan_prediction(
        ds,
        var_name,
        preset=info.preset,
        label_dims=info.label_dims,
        checkpoint_sha256=info.checkpoint_sha256,
        tta_count=tta_count,
        window=window,
        pairs=pairs,
        overwrite=overwrite,
        mask_tta=mask_tta if masked else None,
    )
    if not plan.todo:
        if val_pairs and ranks.is_main:  # the maps are there: (re)tune and record the operating point only
            op.retune_existing(cube, ds, var_name, operating_point, split_plan, val_pairs, plan.predicted,
                               float(info.threshold), storage_options)
        if ranks.is_main:
            log.info("%s already holds every selected pair: nothing to predict", var_name)
        return var_name, []

    height, width = ds.sizes[schema.Y], ds.sizes[schema.X]
    dims = tuple(info.label_dims)
    shape = tuple(ds.sizes[d] for d in dims)
    threshold = float(info.threshold)  # on the probability (the VAE maps its score threshold to 0.5)
    attrs = {
        schema.ATTR_MODEL: info.model,
        ATTR_PRESET: info.preset,
        ATTR_TASK: info.task,
        schema.ATTR_CHECKPOINT_SHA256: info.checkpoint_sha256,
        schema.ATTR_THRESHOLD: threshold,
        schema.ATTR_RUN: str(Path(run_dir).resolve()),
        schema.ATTR_TTA: tta_count,
        ATTR_WINDOW: window,
        ATTR_CHIP: int(info.chip_size),
        ATTR_LEVEL: info.prediction_level,
        schema.ATTR_VERSION: info.sarcube_version,
        **({ATTR_MASK_TTA: mask_tta} if masked else {}),
    }
    template = schema.make_variable(
        var_name,
        dsa.zeros(shape, dtype="float32", chunks=schema.chunks_for(dims, shape)),
        dims,
        spec=schema.prediction_spec(var_name, dims),
        attrs=attrs,
    )

    def stage() -> staging.StagedArray:
        return staging.stage_array(cube, template, fingerprint=plan.fingerprint, keep_existing=plan.keep_existing,
                                   storage_options=storage_options)

    staged = stage() if ranks.is_main else None
    done = set(distributed.from_main(ranks, lambda: sorted(staged.done)))  # the other ranks open it after this
    if staged is None:
        staged = staging.StagedArray(cube, var_name, plan.fingerprint, done, storage_options)
    todo = [p for p in plan.todo if plan.key_of(p) not in done]
    # this rank's piece (its index in todo) in each round; a (y, x) scene is one piece: rank 0's alone
    mine = distributed.dealt(range(len(todo)), ranks)
    band_rows, tile_cols = staged.chunks[-2], staged.chunks[-1]
    chip = int(info.chip_size)
    per_pair = (height // chip) * (width // chip) if patches else TilingPlan(height, width, window).windows
    probability_fn = window_probability_fn(loaded.model, mask_tta)

    def tiles(read: Callable[[int, int, int, int], Any], on_batch: Callable[[int], None]) -> Any:
        """(y0, x0, tile) of one pair: maps in chunk-sized tiles (memory for a tile, not a band of the width)."""
        common = {"band_rows": band_rows, "batch_size": batch_size, "device": torch_device, "on_batch": on_batch}
        if patches:  # one probability per chip, painted over it: rows of chips
            return ((y0, 0, band) for y0, band in predict_patches(
                lambda x: patch_probability(loaded.model, x), lambda y0, y1: read(y0, y1, 0, width), height, width,
                chip, window, **common))
        return predict_tiles(probability_fn, read, height, width, window, tile_cols=tile_cols, tta=tta, **common)

    written: list[str] = []
    n_mine = sum(i is not None for i in mine)
    with (
        _dask.scheduler(scheduler),
        ThreadPoolExecutor(max_workers=1) as reader,
        ThreadPoolExecutor(max_workers=1) as writer,
    ):
        unit = "patch" if patches else "window"
        # a bar on a terminal (rank 0's), none with -q or off a terminal (sarcube.progress), where -v logs each pair
        bar = tqdm(total=per_pair * n_mine, desc=f"predict {var_name}", unit=unit,
                   disable=bar_disable(not ranks.is_main))
        started = time.perf_counter()
        try:
            for i in mine:
                finished: list[str] = []
                if i is not None:
                    p = todo[i]
                    _write_piece(p, staged, tiles, bar, band_rows, height,
                                 lambda *w, p=p: assemble_inputs(ds, info, p, w), reader, writer)
                    finished.append(plan.key_of(p))
                    written.extend(finished)
                    log.info(
                        "%s: pair %s done%s (%d/%d, %.0f s so far)", var_name, "scene" if p is None else p,
                        f" by rank {ranks.rank}" if ranks.distributed else "", len(written), n_mine,
                        time.perf_counter() - started,
                    )
                every = [key for keys in distributed.gather(ranks, finished) for key in keys]
                if ranks.is_main and every:
                    staged.mark_done(*every)
        finally:
            bar.close()

    if not ranks.is_main:
        return var_name, written
    attrs[schema.ATTR_CREATED] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    attrs[schema.ATTR_PREDICTED_PAIRS] = predicted_pairs_attr(plan.predicted)
    attrs[ATTR_OPERATING_POINT] = OP_THRESHOLD
    if val_pairs:
        attrs.update(op.operating_point_attrs(operating_point, ds, split_plan, val_pairs,
                                              op.held_pairs(ds, plan.predicted),
                                              lambda p: staged.read((p, slice(None), slice(None))), threshold))
        log.info("%s: operating point %s (validation F1 %s)", var_name, attrs[ATTR_OPERATING_POINT],
                 attrs[ATTR_OPERATING_POINT_F1])
    staged.promote({**template.attrs, **attrs})
    pairs_arg = pairs if isinstance(pairs, str) else ",".join(map(str, pairs))
    history = f"sarcube predict --run {Path(run_dir).resolve()} --name {run_name(var_name)} --pairs {pairs_arg}"
    flags = ("" if tta else " --no-tta") + (f" --mask-tta {mask_tta}" if masked and mask_tta == MASK_ONCE else "")
    flags += f" --operating-point {operating_point}" if val_pairs else ""
    store.append_history(cube, history + flags, storage_options)
    log.info("wrote %s (%d pair(s) computed by %d rank(s)) into %s", var_name, len(todo), ranks.world_size, cube)
    return var_name, written


def _write_piece(
    pair: int | None,
    staged: staging.StagedArray,
    tiles: Callable[..., Any],
    bar: Any,
    band_rows: int,
    height: int,
    read: Callable[[int, int, int, int], np.ndarray],
    reader: ThreadPoolExecutor,
    writer: ThreadPoolExecutor,
) -> None:
    """Predict one pair (or the scene) tile by tile into its region of ``staged``; returns when all is written."""
    base = bar.n
    writes: list[Future] = []

    def progress(n: int) -> None:
        bar.update(base + n - bar.n)

    for y0, x0, tile in tiles(_Prefetcher(read, height, band_rows, reader), progress):
        region = (slice(y0, y0 + tile.shape[0]), slice(x0, x0 + tile.shape[1]))
        if pair is not None:
            region = (pair, *region)
        writes.append(writer.submit(staged.write, tile.numpy(), region))
    for w in writes:
        w.result()


@click.command("predict")
@click.argument("cube", type=click.Path())
@click.option(
    "--run",
    "run_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Run directory written by `sarcube train` (best.pt).",
)
@click.option("--name", default=None, help="Writes pred_NAME (default: the run directory's name).")
@click.option(
    "--pairs",
    default=PAIRS_ALL,
    show_default=True,
    help="all, new (pairs without a prediction yet) or START..END activity dates.",
)
@click.option(
    "--tta/--no-tta", default=True, show_default=True,
    help="Average the 8 rotations/flips of every window (maps; patch classifiers score one centre crop).",
)
@click.option(
    "--mask-tta", default="per-transform", show_default=True, metavar="per-transform|once",
    help="PAR-attention runs under TTA: run the attention net on every rotated copy (exact), or once per "
    "window with its mask rotated along (1.2-1.5x faster; probabilities move by up to ~2e-2).",
)
@click.option(
    "--batch-size",
    default=8,
    show_default=True,
    type=int,
    help="Network inputs per forward pass (windows x TTA transforms).",
)
@click.option("--overwrite", is_flag=True, help="Recompute an existing pred_NAME.")
@click.option("--scheduler", default=None, help="Dask scheduler address for reading the cube (default: local threads).")
@click.option("--device", default=None, help="auto (default: CUDA when present), cpu, cuda or cuda:K.")
@click.option("--wait", "wait_s", type=float, default=0.0, show_default=True, metavar="SECONDS",
              help="When another process is writing the cube, wait up to SECONDS for it (0: stop at once).")
@click.option("--nproc", type=int, default=1, show_default=True,
              help="Ranks on this machine, the pairs dealt out over them (one GPU each on CUDA, gloo on CPU).")
@click.option("--operating-point", type=click.Choice(OPERATING_POINTS), default=OP_THRESHOLD, show_default=True,
              help="How maps become detections: the run's threshold; rate: each pair's own top share of pixels, the "
              "share tuned on the run's validation pairs (predicted too; needs their labels); auto: the better of "
              "the two on validation.")
@storage_options_option
def command(
    cube: str,
    run_dir: str,
    name: str | None,
    pairs: str,
    tta: bool,
    mask_tta: str,
    batch_size: int,
    overwrite: bool,
    scheduler: str | None,
    device: str | None,
    wait_s: float,
    nproc: int,
    operating_point: str,
    storage_options: dict[str, Any] | None,
) -> None:
    """Slide RUN_DIR's model over CUBE's pairs and write its probabilities as pred_NAME."""
    from sarcube.models import distributed

    var = predict(
        cube,
        run_dir,
        name=name,
        pairs=pairs,
        tta=tta,
        mask_tta=mask_tta,
        batch_size=batch_size,
        overwrite=overwrite,
        scheduler=scheduler,
        device=device,
        wait_s=wait_s,
        storage_options=storage_options,
        nproc=nproc,
        operating_point=operating_point,
    )
    if distributed.ranks_from_env().is_main:  # under torchrun: one report, from the main rank
        click.echo(f"wrote {var} into {cube}")
