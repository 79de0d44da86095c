"""``sarcube train CUBE --preset NAME --out RUN_DIR``: train a hazard mapper on cube chips.

The steps: resolve the preset (YAML + profile + ``--set``), check its
channels against the cube, split tiles/pairs (``split.json``), select chips
per split from the coarsened label map, compute normalisation statistics on
the training split, stream chips block by block
(:mod:`sarcube.pipelines.loaders`) into the loop of
:mod:`sarcube.models.training` (train, validate every epoch), and keep
``best.pt``/``last.pt``, ``metrics.csv`` and ``loss.png`` (a baseline: ``tuning.png``) in the run directory
(:mod:`sarcube.pipelines.runs`). CUDA with bf16 autocast when a GPU is
present, CPU otherwise; on the CPU a run is reproducible for a given seed, and
``--resume`` continues from ``last.pt`` to the same weights an uninterrupted
run would reach.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import torch
from tqdm.auto import tqdm

from sarcube import __version__
from sarcube.config import read_yaml
from sarcube.datacube import chips, schema
from sarcube.datacube.label_events import label_events
from sarcube.errors import CheckpointError, CubeExistsError, InputError, TrainingDataError
from sarcube.models import build_model, distributed, load_vgg16_weights, training
from sarcube.models.config import LEVEL_PATCH, TASK_ANOMALY, TASK_BASELINE
from sarcube.models.device import pick_device
from sarcube.pipelines import ddp, runs
from sarcube.pipelines._storage import storage_options_option
from sarcube.pipelines.loaders import ChipStream, make_loader
from sarcube.pipelines.presets import Preset, apply_override, load_preset, preset_from_dict
from sarcube.progress import bar_disable

log = logging.getLogger(__name__)

#: loss.png is redrawn every this many epochs and at the end (every epoch was 11 % of a cpu-demo run)
PLOT_EVERY_EPOCHS = 10


@dataclass(frozen=True)
class TrainingData:
    """Chips of every split, ready to stream."""

    resolved: chips.ResolvedChannels
    plan: chips.SplitPlan
    tables: dict[str, chips.ChipTable]
    blocks: dict[str, list[chips.Block]]
    mean: list[float]
    std: list[float]
    label_dims: list[str]


def prepare_data(
    ds: Any,
    preset: Preset,
    *,
    plan: chips.SplitPlan | None = None,
    stats: tuple[list[float], list[float]] | None = None,
) -> TrainingData:
    """Resolve channels, split, select chips and compute train-only statistics (or reuse ``plan``/``stats``).

    A split (made or reused) that puts one label event in two splits is refused (InputError).
    """
    resolved = chips.resolve_channels(ds, preset.inputs.channels, preset.inputs.series_steps, orbit=preset.inputs.orbit)
    spec = preset.chips
    pos, valid = chips.chip_counts(ds[schema.LABEL], spec)
    if plan is None:
        plan = chips.make_split(ds, preset.split, spec, valid)
    chips.check_split(
        plan, label_events(ds[schema.LABEL]), "the run's split",
        "start a new run (without --resume): train holds out whole time windows and keeps each event in one split",
    )
    pairs = chips.sample_pairs(ds, resolved)
    table = chips.chip_table(pairs, pos, valid, plan, spec, ds.sizes[schema.Y], ds.sizes[schema.X])
    seed = preset.train.seed
    selected = {
        split: chips.select(table, split, spec.policy if split == chips.TRAIN else spec.eval_policy, spec, seed)
        for split in chips.SPLITS
    }
    needed = {chips.TRAIN: selected[chips.TRAIN], chips.VAL: selected[chips.VAL]}
    if preset.model.task == TASK_BASELINE:
        needed = {chips.VAL: selected[chips.VAL]}
    chips.check_selection(needed, spec, need_positives=preset.model.task not in (TASK_ANOMALY, TASK_BASELINE))
    if preset.model.prediction_level == LEVEL_PATCH:
        val = selected[chips.VAL]
        if not val.positive(spec.min_positive_pixels).any() or val.positive(spec.min_positive_pixels).all():
            raise TrainingDataError(
                f"the validation split needs positive and negative chips to tune and score {preset.name!r}: "
                "use eval_policy balanced/all, another split seed or smaller tiles"
            )
    if stats is None:
        if preset.inputs.normalise:
            train_pairs = plan.pairs_in(chips.TRAIN, pairs)
            stats = chips.train_statistics(ds, resolved, plan, train_pairs)
        else:
            stats = ([0.0] * len(resolved.channels), [1.0] * len(resolved.channels))
    return TrainingData(
        resolved,
        plan,
        selected,
        {s: chips.blocks(t, spec.block_px) for s, t in selected.items()},
        list(stats[0]),
        list(stats[1]),
        [str(d) for d in ds[schema.LABEL].dims],
    )


# --- the run -----------------------------------------------------------------

def _resolve_preset(
    preset: str, out: Path, profile: str | None, overrides: Sequence[str], resume: bool, seed: int | None
) -> Preset:
    extra = list(overrides) + ([f"train.seed={int(seed)}"] if seed is not None else [])
    if resume:
        saved = out / runs.PRESET_FILE
        if not saved.exists():
            raise CheckpointError(f"cannot resume: {str(saved)!r} is missing; start a new run without --resume")
        raw = read_yaml(saved, "run preset")
        for item in extra:
            apply_override(raw, item)
        return preset_from_dict(raw, f"run preset {str(saved)!r}" + (" with --set" if extra else ""))
    return load_preset(preset, profile, extra)


def _build_model(preset: Preset, in_channels: int) -> torch.nn.Module:
    model = build_model(preset.model.name, in_channels, **dict(preset.model.params))
    if preset.model.pretrained:
        load_vgg16_weights(model, runs.read_vgg16_weights(preset.model.pretrained))
    return model


def _run_info(
    p: Preset, data: TrainingData, cube_id: str, metric_value: float, details: dict[str, Any]
) -> runs.RunInfo:
    """What the checkpoint stores to use the model again (``details``: what validation tuned)."""
    cfg = dict(p.model.params)
    if "k_std" in details:
        cfg["k_std"] = float(details["k_std"])
    return runs.RunInfo(
        preset=p.name,
        model=p.model.name,
        model_cfg=cfg,
        task=p.model.task,
        channels=runs.channel_list(data.resolved),
        series_steps=data.resolved.series_steps,
        label_dims=data.label_dims,
        chip_size=p.chips.size,
        input_size=p.augment.crop or p.chips.size,
        norm_mean=runs.as_floats(data.mean),
        norm_std=runs.as_floats(data.std),
        threshold=float(details.get("threshold", p.train.threshold)),  # tuned on validation, or the preset's
        metric=p.train.metric,
        best_metric=float(metric_value),
        split=data.plan.to_json(),
        split_description=data.plan.describe(),
        cube_id=cube_id,
        sarcube_version=__version__,
        extra={k: float(v) for k, v in details.items()},
        level=p.model.prediction_level,
        orbit=data.resolved.orbit,
    )


def _restore(
    state: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any
) -> training.Progress:
    """Load a checkpoint's weights, optimiser and schedule; where its training stood."""
    model.load_state_dict(state["model"])
    if state["optimizer"]:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"]:
        scheduler.load_state_dict(state["scheduler"])
    return training.Progress(
        int(state["epoch"]) + 1, int(state["step"]), float(state["best_metric"]), int(state["epochs_since_best"])
    )


def _streams(
    cube: str | Path, p: Preset, data: TrainingData, storage_options: Mapping[str, Any] | None
) -> tuple[ChipStream, ChipStream]:
    common = {"batch_size": p.train.batch_size, "shuffle_buffer": p.train.shuffle_buffer, "seed": p.train.seed}
    common |= {"storage_options": storage_options}
    args = (cube, data.resolved, data.mean, data.std)
    train_blocks, val_blocks = data.blocks.get(chips.TRAIN, []), data.blocks[chips.VAL]
    train_stream = ChipStream(
        *args, train_blocks, p.chips.size, shuffle=True, augment=p.augment, train=True, drop_singletons=True, **common
    )
    val_stream = ChipStream(*args, val_blocks, p.chips.size, shuffle=False, augment=p.augment, train=False, **common)
    return train_stream, val_stream


class _SyncedValidation:
    """Validation batches, read after every rank took the main rank's buffers (BatchNorm statistics drift
    apart on different shards), so all ranks score the same model alike and agree on schedule and stopping."""

    def __init__(self, loader: Iterable[training.Batch], ranks: distributed.Ranks, model: torch.nn.Module):
        self.loader, self.ranks, self.model = loader, ranks, model

    def __iter__(self) -> Iterator[training.Batch]:
        distributed.sync_buffers(self.ranks, self.model)
        return iter(self.loader)


def train(
    cube: str | Path,
    preset: str,
    out: str | Path,
    *,
    profile: str | None = None,
    overrides: Sequence[str] = (),
    resume: bool = False,
    device: str | None = None,
    seed: int | None = None,
    storage_options: Mapping[str, Any] | None = None,
    nproc: int = 1,
) -> Path:
    """Train ``preset`` on ``cube``; write the run directory ``out`` and return it.

    ``nproc > 1`` trains with that many DDP ranks on this machine (torch's elastic
    launcher); under ``torchrun`` each rank calls this with ``nproc=1``. Ranks
    train on disjoint shares of each epoch's blocks and all-reduce gradients; the
    main rank alone computes the normalisation and writes the run directory.
    """
    if nproc > 1:
        options = {"profile": profile, "overrides": tuple(overrides), "resume": resume, "device": device,
                   "seed": seed, "storage_options": dict(storage_options) if storage_options else None}
        ddp.launch(nproc, _train_rank, str(cube), preset, str(out), options)
        return Path(out)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {str(out)!r} is a file: the run directory is a folder; choose another --out")
    if not resume and (out / runs.LAST).exists():
        raise CubeExistsError(
            f"run directory {str(out)!r} already holds a run: pass --resume to continue it or choose another --out"
        )
    if resume and not (out / runs.LAST).exists():
        raise CheckpointError(
            f"cannot resume: {str(out / runs.LAST)!r} does not exist; start a new run without --resume"
        )
    p = _resolve_preset(preset, out, profile, overrides, resume, seed)
    ranks, dev = distributed.init(pick_device(device))
    ds = schema.open_cube(cube, storage_options=storage_options)
    cube_id = chips.cube_id(ds)
    state = runs.read_checkpoint(out / runs.LAST) if resume else None
    if state is not None:
        info0 = runs.RunInfo.from_dict(state["info"])
        if info0.cube_id != cube_id:
            raise CheckpointError(
                f"cannot resume: {str(out)!r} was trained on another cube (id {info0.cube_id}); "
                "give that cube or start a new run"
            )
        data = prepare_data(ds, p, plan=info0.split_plan, stats=(info0.norm_mean, info0.norm_std))
    else:  # the split and its statistics once, on the main rank
        data = distributed.from_main(ranks, lambda: prepare_data(ds, p))
    if ranks.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / runs.PRESET_FILE).write_text(p.to_yaml())
        (out / runs.SPLIT_FILE).write_text(data.plan.to_json())

    torch.manual_seed(p.train.seed)
    model = _build_model(p, len(data.resolved.channels)).to(dev)
    optimizer = training.make_optimizer(model, p.training)
    scheduler = training.make_scheduler(optimizer, p.training)
    start = training.Progress()
    if state is not None:
        start = _restore(state, model, optimizer, scheduler)
        if ranks.is_main:
            runs.truncate_metrics(out, int(state["epoch"]))
        log.info("resuming %s at epoch %d, step %d", out, start.epoch, start.step)

    train_stream, val_stream = _streams(cube, p, data, storage_options)
    train_stream.set_ranks(ranks.rank, ranks.world_size)
    t = p.train
    workers = t.num_workers if dev.type == "cuda" or t.num_workers <= 1 else min(t.num_workers, 2)
    pin = dev.type == "cuda"  # pinning only helps copies to a GPU this run uses
    train_loader = make_loader(train_stream, num_workers=workers, pin_memory=pin)
    val_loader = make_loader(val_stream, num_workers=0, pin_memory=pin)

    if p.model.task == TASK_BASELINE:
        t0 = time.perf_counter()
        _, value, details = training.validate(model, val_loader, p.training, dev, t.val_steps)
        info = _run_info(p, data, cube_id, value, details)
        if not ranks.is_main:
            distributed.shutdown(ranks)
            return out
        for name in (runs.BEST, runs.LAST):
            runs.save_checkpoint(out / name, model, None, info, 0, 0, value)
        nan = float("nan")
        row = {"epoch": 0, "step": 0, "train_loss": nan, "val_loss": nan, "val_metric": value, "lr": 0.0}
        runs.append_metrics(out, {**row, "seconds": time.perf_counter() - t0})
        tuned = getattr(model, "tuning", None)
        runs.plot_tuning(out, tuned, t.metric, f"{p.name}: no training, settings tuned on validation")
        log.info("baseline: validation %s %.3f (%s)", t.metric, value, details)
        distributed.shutdown(ranks)
        return out

    # the steps that run: steps_per_epoch, repeating the chips when one pass holds fewer (epoch_batches)
    n_train = t.steps_per_epoch or len(train_stream)
    bar: Any = None

    def epoch_batches(epoch: int) -> Iterator[training.Batch]:
        """``n_train`` batches: passes over the training chips, each reshuffled and augmented anew.

        ``steps_per_epoch`` larger than one pass repeats the chips (a small split still
        trains that many steps); pass ``r`` of an epoch draws with the epoch seed
        ``epoch + r * epochs``, which no other epoch's first pass uses.
        """
        nonlocal bar
        train_stream.set_epoch(epoch)
        # under DDP every rank takes as many steps as the rank with the fewest batches (its all-reduces pair up)
        one_pass = (
            distributed.min_over_ranks(ranks, train_stream.batches_in_epoch(workers)) if ranks.distributed else None
        )
        total = n_train if t.steps_per_epoch or one_pass is None else one_pass
        with tqdm(total=total, desc=f"epoch {epoch + 1}/{t.epochs}", unit="batch", leave=False,
                  disable=bar_disable(not ranks.is_main)) as bar:
            done = 0
            for repeat in itertools.count():
                train_stream.set_epoch(epoch + repeat * max(t.epochs, 1))
                before = done
                for batch in train_loader:
                    yield batch
                    bar.update(1)
                    done += 1
                    if done >= total:
                        return
                if done == before:  # an empty stream: nothing to repeat
                    return

    def show(batches: int, loss: float) -> None:
        bar.set_postfix(loss=f"{loss:.4f}")

    title = f"{p.name} ({p.profile or 'paper settings'})"
    epochs = tqdm(desc=f"train {p.name}", unit="epoch", initial=start.epoch, total=t.epochs,
                  disable=bar_disable(not ranks.is_main))
    net = distributed.wrap(model, ranks, dev)
    val_batches = _SyncedValidation(val_loader, ranks, model) if ranks.distributed else val_loader
    agree = (lambda scores: distributed.from_main(ranks, lambda: scores)) if ranks.distributed else None
    fitting = training.fit(
        model, optimizer, scheduler, epoch_batches, val_batches, p.training, dev, start, show, net, agree
    )
    for r in fitting:
        bar.close()
        train_loss = distributed.mean_over_ranks(ranks, r.train_loss)
        if not ranks.is_main:
            continue
        info = _run_info(p, data, cube_id, r.best, r.details)
        for name in ((runs.BEST,) if r.improved else ()) + (runs.LAST,):
            runs.save_checkpoint(
                out / name, model, optimizer, info, r.epoch, r.step, r.best,
                scheduler=scheduler, epochs_since_best=r.epochs_since_best,
            )
        row = {"epoch": r.epoch, "step": r.step, "train_loss": train_loss, "val_loss": r.val_loss}
        row |= {"val_metric": r.val_metric, "lr": r.lr}
        runs.append_metrics(out, {**row, "seconds": time.perf_counter() - r.started_s})
        if r.epoch % PLOT_EVERY_EPOCHS == 0:
            runs.plot_curves(out, t.metric, title)
        epochs.update(1)
        epochs.set_postfix({"loss": f"{train_loss:.4f}", f"val_{t.metric}": f"{r.val_metric:.3f}"})
        if r.stop:
            log.info("early stopping after %d epochs without a better validation %s", r.epochs_since_best, t.metric)
    epochs.close()
    if ranks.is_main:
        runs.plot_curves(out, t.metric, title)
    if ranks.is_main and not (out / runs.BEST).exists():  # resumed past the last epoch, or zero epochs
        (out / runs.BEST).write_bytes((out / runs.LAST).read_bytes())
    distributed.shutdown(ranks)
    return out


def _train_rank(cube: str, preset: str, out: str, options: dict[str, Any]) -> str:
    """One rank of ``train(..., nproc=N)`` (module level: the launcher pickles it)."""
    return str(train(cube, preset, out, **options))


@click.command("train")
@click.argument("cube", type=click.Path())
@click.option(
    "--preset",
    "preset",
    required=True,
    help="Preset name (avalanche-fcn, avalanche-cnn, avalanche-vae, landslide-unet, glacier-3dconv, glacier-convlstm, "
         "baseline, ...) or a YAML path.",
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(),
    help="Run directory to write (best.pt, last.pt, metrics.csv, loss.png, ...).",
)
@click.option("--profile", default=None, help="Preset profile, e.g. cpu-demo (narrow nets, small chips, few steps).")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a preset field, e.g. --set train.epochs=5 (repeatable).",
)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last.pt.")
@click.option("--device", default=None, help="cpu, cuda or cuda:K (default: cuda when present).")
@click.option(
    "--seed", type=int, default=None, help="Seed of shuffling, augmentation and weights (default: the preset's)."
)
@click.option(
    "--nproc", type=int, default=1, show_default=True, help="DDP ranks on this machine (gloo on CPU, NCCL on GPUs)."
)
@storage_options_option
def command(
    cube: str,
    preset: str,
    out: str,
    profile: str | None,
    overrides: tuple[str, ...],
    resume: bool,
    device: str | None,
    seed: int | None,
    nproc: int,
    storage_options: dict[str, Any] | None,
) -> None:
    """Train a hazard mapper on chips of CUBE with a paper preset; write RUN_DIR."""
    run_dir = train(cube, preset, out, profile=profile, overrides=overrides, resume=resume, device=device, seed=seed,
                    storage_options=storage_options, nproc=nproc)
    if not distributed.ranks_from_env().is_main:  # under torchrun: one report, from the main rank
        return
    info = runs.RunInfo.from_dict(runs.read_checkpoint(run_dir / runs.BEST)["info"])
    click.echo(f"run {run_dir}: best validation {info.metric} {info.best_metric:.4f} ({info.split_description})")


__all__ = ["TrainingData", "command", "prepare_data", "train"]
