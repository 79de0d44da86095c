"""The run directory written by ``sarcube train`` and read by ``predict``/``evaluate``.

::

    RUN_DIR/
      best.pt       checkpoint with the best validation metric (what predict loads)
      last.pt       checkpoint of the last finished epoch (what --resume loads)
      preset.yaml   the resolved preset (profile and --set overrides applied)
      metrics.csv   epoch, step, train_loss, val_loss, val_<metric>, lr, seconds
      loss.png      loss curves and the validation metric (a network)
      tuning.png    the validation score against each tuned setting (a baseline, instead of loss.png)
      split.json    tile assignment and held-out pairs (evaluate selects the test split)

A checkpoint is a dict of tensors, numbers, strings, lists and dicts only, so
``torch.load(path, weights_only=True)`` reads it: ``model`` (state_dict),
``optimizer``, ``scheduler``, ``info`` (:class:`RunInfo` as a dict),
``epoch``, ``step``, ``best_metric``, ``epochs_since_best``, ``rng``.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from sarcube.datacube import chips, schema
from sarcube.errors import CheckpointError, InputError, MissingVariableError
from sarcube.models.config import prediction_level

BEST = "best.pt"
LAST = "last.pt"
PRESET_FILE = "preset.yaml"
METRICS_FILE = "metrics.csv"
LOSS_PNG = "loss.png"
#: a baseline run's picture instead of loss.png: the validation score against each setting it tuned
TUNING_PNG = "tuning.png"
#: axis labels of the baseline's tuned settings
SETTING_LABELS = {
    "k_std": "k: robust std above the median change",
    "min_change_db": "least change above the median, dB",
    "median_px": "median filter window, px (1 = off)",
    "boxcar_px": "boxcar filter window, px (1 = off)",
    "max_runout_slope_deg": "steepest runout slope, degrees",
    "min_par_deg": "least PAR, degrees",
    "min_object_pixels": "smallest object, px",
    "hysteresis": "weak/strong threshold ratio (1 = off)",
    "patch_min_pixels": "detected pixels for a positive patch",
}
SPLIT_FILE = "split.json"
METRIC_COLUMNS = ("epoch", "step", "train_loss", "val_loss", "val_metric", "lr", "seconds")


@dataclass(frozen=True)
class RunInfo:
    """What a trained model needs to be used again: stored in every checkpoint."""

    preset: str
    #: ``sarcube.models.build_model`` name and keyword arguments
    model: str
    model_cfg: dict[str, Any]
    #: segmentation, classification, anomaly or baseline
    task: str
    #: input channels in order: ``{"variable", "take", "optional"}`` (see chips.ChannelSpec)
    channels: list[dict[str, Any]]
    #: T of ``series`` channels (0 = none)
    series_steps: int
    #: dims of the cube's ``label`` the model was trained on
    label_dims: list[str]
    #: chip side read from the cube, and the side the network saw (after a centre crop)
    chip_size: int
    input_size: int
    #: per-channel normalisation from the training split
    norm_mean: list[float]
    norm_std: list[float]
    #: decision threshold on the model's probability (or anomaly score)
    threshold: float
    #: validation metric name and best value
    metric: str
    best_metric: float
    #: ``SplitPlan.to_json()`` text and a one-line description
    split: str
    split_description: str
    #: hash of the cube's stac_items and grid (chips.cube_id)
    cube_id: str
    sarcube_version: str
    #: checkpoint file and its sha256 (filled by :func:`load_run`)
    checkpoint: str = ""
    checkpoint_sha256: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    #: pixel (predict writes a map) or patch (one probability per chip); empty in older runs: the task's own
    level: str = ""
    #: the orbit series and event-mean channels were read from (chips.run_orbit); None when none
    orbit: int | str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunInfo:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @property
    def channel_specs(self) -> tuple[chips.ChannelSpec, ...]:
        return tuple(chips.ChannelSpec.from_dict(c) for c in self.channels)

    @property
    def variables(self) -> list[str]:
        return [c["variable"] for c in self.channels]

    @property
    def in_channels(self) -> int:
        return len(self.channels)

    @property
    def prediction_level(self) -> str:
        """``pixel`` or ``patch`` (:func:`sarcube.models.config.prediction_level`)."""
        return prediction_level(self.task, self.level)

    @property
    def split_plan(self) -> chips.SplitPlan:
        return chips.SplitPlan.from_json(self.split)


@dataclass(frozen=True)
class LoadedRun:
    """A model ready for inference (eval mode) and its :class:`RunInfo`."""

    model: torch.nn.Module
    info: RunInfo


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    info: RunInfo,
    epoch: int,
    step: int,
    best_metric: float,
    *,
    scheduler: Any = None,
    epochs_since_best: int = 0,
) -> Path:
    """Write a weights-only-loadable checkpoint atomically (temp file, then rename)."""
    path = Path(path)
    payload = {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else {},
        "scheduler": scheduler.state_dict() if scheduler is not None else {},
        "info": info.to_dict(),
        "epoch": int(epoch),
        "step": int(step),
        "best_metric": float(best_metric),
        "epochs_since_best": int(epochs_since_best),
        "rng": torch.get_rng_state(),
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint dict (``weights_only=True``); CheckpointError when missing or unreadable."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not exist: train one with `sarcube train ... --out RUN_DIR`"
        )
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # corrupt or foreign file
        raise CheckpointError(
            f"checkpoint {str(path)!r} cannot be read ({load_failure(err)}): retrain or restore the file"
        ) from err


def load_failure(err: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` failed, in one line, without torch's advice to unpickle it.

    Turning ``weights_only`` off runs whatever code the file holds; a checkpoint sarcube wrote never needs it.
    """
    text = str(err)
    if "Weights only load failed" in text or "weights_only" in text:
        match = re.search(r"WeightsUnpickler error:\s*(.+?)\s*(?:\n\s*\n|Check the documentation|$)", text, re.S)
        reason = " ".join(match.group(1).split()) if match else "unsupported content"
        reason = re.split(r"\.\s+(?:Please|If|To|Check)\b", reason)[0][:200]  # torch's advice loosens safety
        return f"not a weights-only checkpoint: {reason}; a checkpoint sarcube wrote holds only tensors and plain data"
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(err).__name__)
    return f"{type(err).__name__}: {first[:200]}"


def read_vgg16_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A torchvision ``vgg16`` state_dict file the user already has (``torch.save(vgg16().state_dict(), path)``).

    Read with ``torch.load(weights_only=True)``; nothing is downloaded. The train
    step copies it onto the trunk with :func:`sarcube.models.load_vgg16_weights`.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"VGG16 weights {path}: no such file; give a torchvision vgg16 state_dict file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or not a tensor file
        raise CheckpointError(
            f"VGG16 weights {path}: cannot be read ({load_failure(exc)}); save one with torch.save(state_dict)"
        ) from exc


def build_from_info(info: RunInfo) -> torch.nn.Module:
    """The network of a run, with fresh weights."""
    from sarcube.models import build_model

    return build_model(info.model, info.in_channels, **info.model_cfg)


def load_run(run_dir: str | Path, device: str | torch.device = "cpu", *, which: str = BEST) -> LoadedRun:
    """Load a run's model (eval mode, on ``device``) and its info, with the checkpoint's sha256."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(
            f"run directory {str(run_dir)!r} does not exist: train one with `sarcube train CUBE --preset NAME --out "
            "RUN_DIR`"
        )
    path = run_dir / which
    state = read_checkpoint(path, device="cpu")
    try:
        info = RunInfo.from_dict(state["info"])
    except (KeyError, TypeError) as err:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has no valid run info ({err}): was it written by `sarcube train`?"
        ) from err
    info = dataclasses.replace(info, checkpoint=str(path), checkpoint_sha256=sha256_of(path))
    model = build_from_info(info)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint {str(path)!r} does not fit model {info.model!r}: {err}") from err
    model.to(torch.device(device)).eval()
    return LoadedRun(model, info)


def resolved_channels(ds: xr.Dataset, info: RunInfo) -> chips.ResolvedChannels:
    """The run's channels, checked against ``ds`` (a missing variable names how to make it)."""
    missing = [c.variable for c in info.channel_specs if c.variable not in ds.data_vars]
    if missing:
        raise MissingVariableError(
            f"run {info.preset!r} needs variable(s) {missing} that the cube lacks; {schema.hint_for(missing)}"
        )
    return chips.ResolvedChannels(info.channel_specs, info.series_steps, info.orbit)


def assemble_inputs(ds: xr.Dataset, info: RunInfo, pair_index: int | None, window: chips.Window) -> np.ndarray:
    """Normalised model inputs of a cube window, (C, H, W) or (C, T, H, W) float32.

    The one function from cube to network input, shared by training (through
    ``chips.assemble``) and predict, so the two can never disagree.
    ``window`` is (y0, y1, x0, x1) in pixels.
    """
    return chips.assemble(ds, resolved_channels(ds, info), pair_index, window, info.norm_mean, info.norm_std)


# --- metrics.csv and loss.png -----------------------------------------------------

def append_metrics(run_dir: Path, row: Mapping[str, Any]) -> None:
    path = Path(run_dir) / METRICS_FILE
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(METRIC_COLUMNS), extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow({k: row.get(k, "") for k in METRIC_COLUMNS})


def read_metrics(run_dir: Path) -> list[dict[str, float]]:
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [{k: float(v) if v not in ("", None) else float("nan") for k, v in r.items()} for r in csv.DictReader(f)]


def truncate_metrics(run_dir: Path, last_epoch: int) -> None:
    """Drop rows after ``last_epoch`` (an interrupted epoch logged before its checkpoint)."""
    rows = [r for r in read_metrics(run_dir) if r["epoch"] <= last_epoch]
    path = Path(run_dir) / METRICS_FILE
    if path.exists():
        path.unlink()
    for r in rows:
        append_metrics(run_dir, {k: (int(v) if k in ("epoch", "step") else v) for k, v in r.items()})


def plot_curves(run_dir: Path, metric: str, title: str = "") -> Path:
    """loss.png: train/val loss per epoch (left axis) and the validation metric (right axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(run_dir)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    if rows:
        ep = [r["epoch"] for r in rows]
        ax.plot(ep, [r["train_loss"] for r in rows], "o-", color="tab:blue", label="train loss")
        ax.plot(ep, [r["val_loss"] for r in rows], "s--", color="tab:orange", label="validation loss")
        ax2 = ax.twinx()
        ax2.plot(ep, [r["val_metric"] for r in rows], "^-", color="tab:green", label=f"validation {metric}")
        ax2.set_ylabel(f"validation {metric}")
        ax2.set_ylim(0, 1.02)
        lines = ax.get_lines() + ax2.get_lines()
        ax.legend(lines, [str(ln.get_label()) for ln in lines], loc="upper right", fontsize=8)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.set_title(title or f"training of {Path(run_dir).name}")
    fig.tight_layout()
    out = Path(run_dir) / LOSS_PNG
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_tuning(run_dir: Path, tuning: Any, metric: str, title: str = "") -> Path:
    """tuning.png: a baseline run's validation ``metric`` against each setting it tuned, the choice starred.

    ``tuning``: the detector's :class:`~sarcube.models.baseline.TuneResult` (its
    ``curves`` vary one setting with the others at their chosen values).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = dict(getattr(tuning, "curves", {}) or {})
    n = max(len(curves), 1)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.9 * rows + 0.6), dpi=110, squeeze=False, sharey=True)
    score_name = getattr(tuning, "metric", metric)
    for ax, (name, (grid, scores)) in zip(axes.ravel(), curves.items(), strict=False):
        order = sorted(range(len(grid)), key=lambda i: grid[i])
        ax.plot([grid[i] for i in order], [scores[i] for i in order], "o-", color="tab:blue", ms=4)
        chosen = float(tuning.values.get(name, grid[int(max(range(len(scores)), key=scores.__getitem__))]))
        ax.plot([chosen], [max(scores)], "*", color="tab:red", ms=13, label=f"chosen {chosen:g}")
        ax.axvline(chosen, color="tab:red", lw=0.8, alpha=0.5)
        ax.set_xlabel(SETTING_LABELS.get(name, name), fontsize=8)
        ax.legend(fontsize=7, loc="lower center")
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel(f"validation {score_name}")
    if not curves:
        ax = axes[0, 0]
        chosen = ", ".join(f"{k} = {v:g}" for k, v in dict(getattr(tuning, "values", {}) or {}).items())
        ax.text(0.5, 0.5, f"tuned without a search: {chosen or 'nothing'}\nvalidation {score_name} "
                f"{float(getattr(tuning, 'score', float('nan'))):.3f}", ha="center", va="center", fontsize=9,
                transform=ax.transAxes)
        ax.set_axis_off()
    for ax in axes.ravel()[len(curves):] if curves else ():
        ax.set_axis_off()
    score = float(getattr(tuning, "score", float("nan")))
    fig.suptitle(
        f"{title or Path(run_dir).name}\nvalidation {score_name} {score:.3f} at the starred settings "
        "(each panel varies one setting, the others at their chosen values)", fontsize=9,
    )
    fig.tight_layout()
    out = Path(run_dir) / TUNING_PNG
    fig.savefig(out)
    plt.close(fig)
    return out


def channel_list(resolved: chips.ResolvedChannels) -> list[dict[str, Any]]:
    return [c.to_dict() for c in resolved.channels]


def as_floats(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values]


__all__ = [
    "BEST",
    "LAST",
    "LOSS_PNG",
    "TUNING_PNG",
    "METRICS_FILE",
    "PRESET_FILE",
    "SPLIT_FILE",
    "LoadedRun",
    "RunInfo",
    "append_metrics",
    "assemble_inputs",
    "build_from_info",
    "load_run",
    "plot_curves",
    "plot_tuning",
    "read_checkpoint",
    "read_metrics",
    "read_vgg16_weights",
    "resolved_channels",
    "save_checkpoint",
    "sha256_of",
]
