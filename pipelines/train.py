"""``sarcube train CUBE --preset NAME --out RUN_DIR``: train a hazard mapper on cube chips.

The steps: resolve the preset (YAML + profile + ``--set``), check its
channels against the cube, split tiles/pairs (``split.json``), select chips
per split from the coarsened label map, compute normalisation statistics on
the training split, stream chips block by block into the network
(:mod:`sarcube.pipelines.loaders`), validate every epoch, and keep
``best.pt``/``last.pt``, ``metrics.csv`` and ``loss.png`` in the run directory
(:mod:`sarcube.pipelines.runs`). CUDA with bf16 autocast when a GPU is
present, CPU otherwise; on the CPU a run is reproducible for a given seed, and
``--resume`` continues from ``last.pt`` to the same weights an uninterrupted
run would reach.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch
import yaml
from sarcube.datacube import chips, schema
from sarcube.pipelines import runs
from sarcube.pipelines.loaders import ChipStream, make_loader
from sarcube.pipelines.presets import (
    TASK_ANOMALY,
    TASK_BASELINE,
    TASK_CLASSIFICATION,
    Preset,
    apply_override,
    load_preset,
    preset_from_dict,
)

from sarcube import __version__
from sarcube.errors import CheckpointError, CubeExistsError, InputError, TrainingDataError

log = logging.getLogger(__name__)


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


def prepare_data(ds: Any, preset: Preset, *, plan: chips.SplitPlan | None = None, stats: tuple[list[float], list[float]] | None = None) -> TrainingData:
    """Resolve channels, split, select chips and compute train-only statistics (or reuse ``plan``/``stats``)."""
    resolved = chips.resolve_channels(ds, preset.inputs.channels, preset.inputs.series_steps)
    spec = preset.chips
    pos, valid = chips.chip_counts(ds[schema.LABEL], spec)
    if plan is None:
        plan = chips.make_split(ds, preset.split, spec, valid)
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
    if preset.model.task in (TASK_ANOMALY, TASK_CLASSIFICATION):
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


# --- losses and metrics per task --------------------------------------------------

def chip_targets(y: torch.Tensor, min_positive_pixels: int) -> torch.Tensor:
    """Chip labels (N,) from label chips (N, H, W): 1 with >= min_positive_pixels positives, 0, or 255 if unlabelled."""
    pos = (y == schema.LABEL_YES).flatten(1).sum(1)
    labelled = (y != schema.LABEL_UNKNOWN).flatten(1).any(1)
    t = (pos >= min_positive_pixels).long()
    return torch.where(labelled, t, torch.full_like(t, schema.LABEL_UNKNOWN))


def compute_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, preset: Preset) -> tuple[torch.Tensor, Any]:
    """Loss of one batch and the raw output."""
    from sarcube.models import losses

    task, cfg = preset.model.task, preset.loss
    out = model(x)
    if task == TASK_ANOMALY:
        recon, mu, logvar = out
        return losses.vae_loss(recon, x, mu, logvar, kl_weight=cfg.kl_weight)[0], out
    target = chip_targets(y, preset.chips.min_positive_pixels) if task == TASK_CLASSIFICATION else y.long()
    if cfg.name == "bce":
        return losses.weighted_bce(out, target, pos_weight=cfg.pos_weight), out
    if cfg.name == "ce":
        return losses.cross_entropy(out, target), out
    if cfg.name == "focal":
        return losses.focal_loss(out, target, gamma=cfg.gamma, label_smoothing=cfg.label_smoothing), out
    raise InputError(f"preset {preset.name!r}: loss.name {cfg.name!r} unknown, use bce, ce, focal or vae")


@torch.no_grad()
def validate(model: torch.nn.Module, loader: Any, preset: Preset, device: torch.device, max_steps: int = 0) -> tuple[float, float, dict[str, Any]]:
    """Validation loss, metric and details; for the VAE and the baseline also tunes the threshold."""
    from sarcube.models import metrics, probability
    from sarcube.models.device import autocast_context

    task, metric = preset.model.task, preset.train.metric
    model.eval()
    total, n = 0.0, 0
    acc = metrics.MetricAccumulator(threshold=preset.train.threshold, objects=False, auprc=metric == "auprc")
    scores: list[np.ndarray] = []
    targets: list[np.ndarray] = []
    xs: list[torch.Tensor] = []
    ys: list[torch.Tensor] = []
    for i, (x, y, _) in enumerate(loader):
        if max_steps and i >= max_steps:
            break
        x, y = x.to(device), y.to(device)
        if task == TASK_BASELINE:
            xs.append(x.cpu())
            ys.append(y.cpu())
            continue
        with autocast_context(device):
            loss, out = compute_loss(model, x, y, preset)
        total += float(loss.detach()) * x.shape[0]
        n += x.shape[0]
        if task == TASK_ANOMALY:
            from sarcube.models import anomaly_score

            scores.append(anomaly_score(model, x.float()).cpu().numpy())
            targets.append(chip_targets(y, preset.chips.min_positive_pixels).cpu().numpy())
            continue
        prob = probability(model, out).float()
        if task == TASK_CLASSIFICATION:
            acc.update(prob.cpu().numpy(), chip_targets(y, preset.chips.min_positive_pixels).cpu().numpy())
        else:
            acc.update(prob[:, 0].cpu().numpy(), y.cpu().numpy())
    details: dict[str, Any] = {}
    if task == TASK_BASELINE:
        from sarcube.models import tune_threshold

        x, y = torch.cat(xs), torch.cat(ys)
        if preset.train.tune_threshold:
            result = tune_threshold(model, x, y, metric=metric if metric in metrics.THRESHOLD_METRICS else "f1")
            details.update(result.values)  # every tuned setting, into the run's details
        acc.update(model(x)[:, 0].numpy(), y.numpy())
        return float("nan"), float(acc.compute()[metric]), details
    val_loss = total / max(n, 1)
    if task == TASK_ANOMALY:
        s, t = np.concatenate(scores), np.concatenate(targets)
        threshold, value = metrics.best_threshold(s, t, metric=metric)
        model.set_threshold(max(threshold, 1e-12))
        details["score_threshold"] = threshold
        return val_loss, value, details
    return val_loss, float(acc.compute()[metric]), details


# --- optimiser and schedule -------------------------------------------------------

def make_optimizer(model: torch.nn.Module, preset: Preset) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    o = preset.optim
    if not params:
        params = [torch.nn.Parameter(torch.zeros(1))]  # the baseline has no weights; keep one optimiser type
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
    if o.name == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    raise InputError(f"preset {preset.name!r}: optim.name {o.name!r} unknown, use adam, adamw or sgd")


def cosine_restart_factor(epoch: int, cycles: Sequence[int], min_factor: float = 0.0) -> float:
    """Learning-rate factor at ``epoch``: cosine decay within each cycle, back to 1 at each restart."""
    start = 0
    k = 0
    while True:
        length = int(cycles[min(k, len(cycles) - 1)])
        if epoch < start + length:
            t = (epoch - start) / length
            return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * t))
        start += length
        k += 1


def make_scheduler(optimizer: torch.optim.Optimizer, preset: Preset) -> Any:
    s = preset.schedule
    if s.name == "none":
        return None
    if s.name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=s.factor, patience=s.patience, threshold=s.threshold)
    if s.name == "cosine_restarts":
        if not s.cycles or min(s.cycles) < 1:
            raise InputError(f"preset {preset.name!r}: schedule.cycles must be positive epoch counts")
        cycles, floor = tuple(s.cycles), s.min_lr / preset.optim.lr if preset.optim.lr else 0.0
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: cosine_restart_factor(e, cycles, floor))
    raise InputError(f"preset {preset.name!r}: schedule.name {s.name!r} unknown, use none, plateau or cosine_restarts")


# --- the loop ---------------------------------------------------------------------

def _resolve_preset(preset: str, out: Path, profile: str | None, overrides: Sequence[str], resume: bool, seed: int | None) -> Preset:
    extra = list(overrides) + ([f"train.seed={int(seed)}"] if seed is not None else [])
    if resume:
        saved = out / runs.PRESET_FILE
        if not saved.exists():
            raise CheckpointError(f"cannot resume: {str(saved)!r} is missing; start a new run without --resume")
        raw = yaml.safe_load(saved.read_text())
        for item in extra:
            apply_override(raw, item)
        return preset_from_dict(raw)
    return load_preset(preset, profile, extra)


def _build_model(preset: Preset, in_channels: int) -> torch.nn.Module:
    from sarcube.models import build_model

    model = build_model(preset.model.name, in_channels, **dict(preset.model.params))
    if preset.model.pretrained:
        from sarcube.models import load_vgg16_weights

        load_vgg16_weights(model, preset.model.pretrained)
    return model


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
) -> Path:
    """Train ``preset`` on ``cube``; write the run directory ``out`` and return it."""
    from sarcube.models.device import autocast_context, pick_device
    from tqdm.auto import tqdm

    out = Path(out)
    if not resume and (out / runs.LAST).exists():
        raise CubeExistsError(f"run directory {str(out)!r} already holds a run: pass --resume to continue it or choose another --out")
    if resume and not (out / runs.LAST).exists():
        raise CheckpointError(f"cannot resume: {str(out / runs.LAST)!r} does not exist; start a new run without --resume")
    p = _resolve_preset(preset, out, profile, overrides, resume, seed)
    dev = pick_device(device)
    ds = schema.open_cube(cube)
    state = runs.read_checkpoint(out / runs.LAST) if resume else None
    if state is not None:
        info0 = runs.RunInfo.from_dict(state["info"])
        if info0.cube_id != chips.cube_id(ds):
            raise CheckpointError(f"cannot resume: {str(out)!r} was trained on another cube (id {info0.cube_id}); give that cube or start a new run")
        data = prepare_data(ds, p, plan=info0.split_plan, stats=(info0.norm_mean, info0.norm_std))
    else:
        data = prepare_data(ds, p)
    out.mkdir(parents=True, exist_ok=True)
    (out / runs.PRESET_FILE).write_text(p.to_yaml())
    (out / runs.SPLIT_FILE).write_text(data.plan.to_json())

    torch.manual_seed(p.train.seed)
    model = _build_model(p, len(data.resolved.channels)).to(dev)
    optimizer = make_optimizer(model, p)
    scheduler = make_scheduler(optimizer, p)
    start_epoch, step, best, since_best = 0, 0, -math.inf, 0
    if state is not None:
        model.load_state_dict(state["model"])
        if state["optimizer"]:
            optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state["scheduler"]:
            scheduler.load_state_dict(state["scheduler"])
        start_epoch, step = int(state["epoch"]) + 1, int(state["step"])
        best, since_best = float(state["best_metric"]), int(state["epochs_since_best"])
        runs.truncate_metrics(out, int(state["epoch"]))
        log.info("resuming %s at epoch %d, step %d", out, start_epoch, step)

    t = p.train
    input_size = p.augment.crop or p.chips.size
    common = {"batch_size": t.batch_size, "shuffle_buffer": t.shuffle_buffer, "seed": t.seed}
    train_stream = ChipStream(cube, data.resolved, data.mean, data.std, data.blocks.get(chips.TRAIN, []), p.chips.size, shuffle=True, augment=p.augment, train=True, drop_singletons=True, **common)
    val_stream = ChipStream(cube, data.resolved, data.mean, data.std, data.blocks[chips.VAL], p.chips.size, shuffle=False, augment=p.augment, train=False, **common)
    workers = t.num_workers if dev.type == "cuda" or t.num_workers <= 1 else min(t.num_workers, 2)
    pin = dev.type == "cuda"  # pinning only helps copies to a GPU this run uses
    train_loader = make_loader(train_stream, num_workers=workers, pin_memory=pin)
    val_loader = make_loader(val_stream, num_workers=0, pin_memory=pin)

    def info_now(metric_value: float, details: dict[str, Any]) -> runs.RunInfo:
        cfg = dict(p.model.params)
        if "k_std" in details:
            cfg["k_std"] = float(details["k_std"])
        extra = {k: float(v) for k, v in details.items()}
        return runs.RunInfo(
            preset=p.name,
            model=p.model.name,
            model_cfg=cfg,
            task=p.model.task,
            channels=runs.channel_list(data.resolved),
            series_steps=data.resolved.series_steps,
            label_dims=data.label_dims,
            chip_size=p.chips.size,
            input_size=input_size,
            norm_mean=runs.as_floats(data.mean),
            norm_std=runs.as_floats(data.std),
            threshold=float(t.threshold),
            metric=t.metric,
            best_metric=float(metric_value),
            split=data.plan.to_json(),
            split_description=data.plan.describe(),
            cube_id=chips.cube_id(ds),
            sarcube_version=__version__,
            extra=extra,
        )

    if p.model.task == TASK_BASELINE:
        t0 = time.perf_counter()
        _, value, details = validate(model, val_loader, p, dev, t.val_steps)
        info = info_now(value, details)
        for name in (runs.BEST, runs.LAST):
            runs.save_checkpoint(out / name, model, None, info, 0, 0, value)
        runs.append_metrics(out, {"epoch": 0, "step": 0, "train_loss": float("nan"), "val_loss": float("nan"), "val_metric": value, "lr": 0.0, "seconds": time.perf_counter() - t0})
        runs.plot_curves(out, t.metric, f"{p.name}: no training, threshold tuned on validation")
        log.info("baseline: validation %s %.3f (%s)", t.metric, value, details)
        return out

    n_train = t.steps_per_epoch or len(train_stream)
    epochs = tqdm(range(start_epoch, t.epochs), desc=f"train {p.name}", unit="epoch", initial=start_epoch, total=t.epochs)
    for epoch in epochs:
        t0 = time.perf_counter()
        torch.manual_seed(t.seed * 100_003 + epoch)
        train_stream.set_epoch(epoch)
        model.train()
        running, seen = 0.0, 0
        bar = tqdm(train_loader, total=n_train, desc=f"epoch {epoch + 1}/{t.epochs}", unit="batch", leave=False)
        for i, (x, y, _) in enumerate(bar):
            if t.steps_per_epoch and i >= t.steps_per_epoch:
                break
            x = x.to(dev, non_blocking=True)
            y = y.to(dev, non_blocking=True)
            with autocast_context(dev):
                loss, _ = compute_loss(model, x, y, p)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if t.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
            optimizer.step()
            step += 1
            running += float(loss.detach()) * x.shape[0]
            seen += x.shape[0]
            bar.set_postfix(loss=f"{running / seen:.4f}")
        bar.close()
        if seen == 0:
            raise TrainingDataError("the training split gave no batch: lower train.batch_size or check the chip selection")
        val_loss, value, details = validate(model, val_loader, p, dev, t.val_steps)
        if scheduler is not None:
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(val_loss)
            else:
                scheduler.step()
        # a NaN score (e.g. AUPRC of a validation set without positives) never counts as
        # an improvement, and a NaN best is replaced by the first finite score
        improved = math.isfinite(value) and (value > best or not math.isfinite(best))
        if improved:
            best, since_best = value, 0
        else:
            since_best += 1
        info = info_now(best, details)
        if improved:
            runs.save_checkpoint(out / runs.BEST, model, optimizer, info, epoch, step, best, scheduler=scheduler, epochs_since_best=since_best)
        runs.save_checkpoint(out / runs.LAST, model, optimizer, info, epoch, step, best, scheduler=scheduler, epochs_since_best=since_best)
        lr = optimizer.param_groups[0]["lr"]
        runs.append_metrics(out, {"epoch": epoch, "step": step, "train_loss": running / seen, "val_loss": val_loss, "val_metric": value, "lr": lr, "seconds": time.perf_counter() - t0})
        runs.plot_curves(out, t.metric, f"{p.name} ({p.profile or 'paper settings'})")
        epochs.set_postfix({"loss": f"{running / seen:.4f}", f"val_{t.metric}": f"{value:.3f}"})
        if t.early_stopping and since_best >= t.early_stopping:
            log.info("early stopping after %d epochs without a better validation %s", since_best, t.metric)
            break
    epochs.close()
    if not (out / runs.BEST).exists():  # resumed past the last epoch, or zero epochs
        (out / runs.BEST).write_bytes((out / runs.LAST).read_bytes())
    return out


@click.command("train")
@click.argument("cube", type=click.Path())
@click.option("--preset", "preset", required=True, help="Preset name (avalanche-fcn, avalanche-cnn, avalanche-vae, landslide-unet, glacier-3dconv, glacier-convlstm, baseline, ...) or a YAML path.")
@click.option("--out", "out", required=True, type=click.Path(), help="Run directory to write (best.pt, last.pt, metrics.csv, loss.png, ...).")
@click.option("--profile", default=None, help="Preset profile, e.g. cpu-demo (narrow nets, small chips, few steps).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a preset field, e.g. --set train.epochs=5 (repeatable).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last.pt.")
@click.option("--device", default=None, help="cpu, cuda or cuda:K (default: cuda when present).")
@click.option("--seed", type=int, default=None, help="Seed of shuffling, augmentation and weights (default: the preset's).")
def command(cube: str, preset: str, out: str, profile: str | None, overrides: tuple[str, ...], resume: bool, device: str | None, seed: int | None) -> None:
    """Train a hazard mapper on chips of CUBE with a paper preset; write RUN_DIR."""
    run_dir = train(cube, preset, out, profile=profile, overrides=overrides, resume=resume, device=device, seed=seed)
    info = runs.RunInfo.from_dict(runs.read_checkpoint(run_dir / runs.BEST)["info"])
    click.echo(f"run {run_dir}: best validation {info.metric} {info.best_metric:.4f} ({info.split_description})")


__all__ = ["TrainingData", "chip_targets", "command", "compute_loss", "prepare_data", "train", "validate"]
