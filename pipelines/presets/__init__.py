"""Training presets: one YAML file per paper, parsed once into frozen dataclasses.

A preset file (``pipelines/presets/<name>.yaml``) has one section per concern
(``inputs``, ``chips``, ``split``, ``model``, ``optim``, ``schedule``,
``loss``, ``train``, ``augment``) and a ``profiles:`` mapping whose entries
(e.g. ``cpu-demo``) override parts of the sections. ``--set section.field=value``
overrides come last and are type-checked against the dataclass fields
(``--set model.<param>=value`` sets a model constructor argument).

YAML is data: channel variables are spelled there with the cube's schema
names and checked against the cube when training starts.
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sarcube.datacube.chips import ChannelSpec, ChipSpec, SplitSpec

from sarcube.errors import InputError

PRESET_DIR = Path(__file__).parent

TASK_SEGMENTATION = "segmentation"
TASK_CLASSIFICATION = "classification"
TASK_ANOMALY = "anomaly"
TASK_BASELINE = "baseline"
TASKS = (TASK_SEGMENTATION, TASK_CLASSIFICATION, TASK_ANOMALY, TASK_BASELINE)


@dataclass(frozen=True)
class InputsConfig:
    """Model inputs, in channel order."""

    #: channel variables and how each is taken (static, per pair, at activity/reference time, series)
    channels: tuple[ChannelSpec, ...] = ()
    #: T, the number of time steps of ``series`` channels (glacier presets)
    series_steps: int = 0
    #: standardise each channel with the training split's mean/std (off for the dB-threshold baseline)
    normalise: bool = True


@dataclass(frozen=True)
class ModelConfig:
    """Which network of ``sarcube.models`` and its constructor arguments."""

    #: ``build_model`` name (unet, par_attention, par_concat, patch_cnn, vae, resnet_unet, unet3d, convlstm_unet, baseline)
    name: str = "unet"
    #: what the labels train: segmentation (pixels), classification (chip has a positive), anomaly (VAE), baseline
    task: str = TASK_SEGMENTATION
    #: keyword arguments of ``build_model`` (widths, dropout, ``freeze_trunk``, ...)
    params: Mapping[str, Any] = field(default_factory=dict)
    #: optional local weights file for the trunk (avalanche-cnn: a torchvision VGG16 state_dict); nothing is downloaded
    pretrained: str = ""


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser."""

    #: adam, adamw or sgd
    name: str = "adam"
    #: initial learning rate
    lr: float = 1e-3
    weight_decay: float = 0.0
    #: Adam betas
    betas: tuple[float, float] = (0.9, 0.999)
    #: SGD momentum
    momentum: float = 0.9


@dataclass(frozen=True)
class ScheduleConfig:
    """Learning-rate schedule, stepped once per epoch."""

    #: none, plateau (ReduceLROnPlateau on the validation loss) or cosine_restarts
    name: str = "none"
    #: plateau: factor, patience (epochs), threshold
    factor: float = 0.1
    patience: int = 10
    threshold: float = 1e-4
    #: cosine_restarts: cycle lengths in epochs (glacier-timeseries: 10, 20, 40, 80)
    cycles: tuple[int, ...] = (10, 20, 40, 80)
    #: cosine_restarts: lowest learning rate
    min_lr: float = 0.0


@dataclass(frozen=True)
class LossConfig:
    """Loss function (label 255 is ignored by every loss)."""

    #: bce (one logit per pixel), ce (two classes), focal, vae (MSE + KL), none (baseline)
    name: str = "bce"
    #: bce: weight of positive pixels (avalanche-fcn: 2)
    pos_weight: float = 1.0
    #: focal: label smoothing and gamma
    label_smoothing: float = 0.0
    gamma: float = 2.0
    #: vae: weight of the KL term
    kl_weight: float = 0.1


@dataclass(frozen=True)
class TrainConfig:
    """The loop: epochs, batches, validation and stopping."""

    epochs: int = 100
    batch_size: int = 16
    #: training batches per epoch; 0 = every selected chip once
    steps_per_epoch: int = 0
    #: validation batches per epoch; 0 = every validation chip
    val_steps: int = 0
    #: stop after this many epochs without a better validation metric; 0 = never
    early_stopping: int = 0
    #: validation metric that picks best.pt: f1, auprc, iou, accuracy, balanced_accuracy
    metric: str = "f1"
    #: probability threshold for the binary maps
    threshold: float = 0.5
    #: tune the threshold on the validation split (VAE reconstruction error, baseline)
    tune_threshold: bool = False
    #: DataLoader workers (0 = in the main process)
    num_workers: int = 2
    #: chips held in the shuffle buffer
    shuffle_buffer: int = 1024
    #: gradient clipping norm; 0 = off
    grad_clip: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class AugmentConfig:
    """On-the-fly augmentation of training chips (same transform on inputs and labels)."""

    #: the 8 flips/90-degree rotations
    dihedral: bool = False
    #: random shift, fraction of the chip side
    shift: float = 0.0
    #: random rotation, degrees (+-)
    rotate_deg: float = 0.0
    #: random zoom, fraction (+-)
    zoom: float = 0.0
    #: random shear, degrees (+-)
    shear_deg: float = 0.0
    #: random crop to this side, pixels (avalanche-cnn 64 -> 50); 0 = none
    crop: int = 0
    #: Gaussian noise std on the normalised inputs
    noise_std: float = 0.0
    #: probability of dropping out a random rectangle of the inputs
    occlusion: float = 0.0
    #: contrast jitter, fraction (+-)
    contrast: float = 0.0


@dataclass(frozen=True)
class Preset:
    """A whole training configuration, as resolved from YAML, profile and overrides."""

    name: str
    #: the paper in shared/seeds it follows
    paper: str
    description: str
    inputs: InputsConfig
    chips: ChipSpec
    split: SplitSpec
    model: ModelConfig
    optim: OptimConfig
    schedule: ScheduleConfig
    loss: LossConfig
    train: TrainConfig
    augment: AugmentConfig
    #: profile applied (None = paper settings)
    profile: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


SECTIONS: dict[str, type] = {
    "inputs": InputsConfig,
    "chips": ChipSpec,
    "split": SplitSpec,
    "model": ModelConfig,
    "optim": OptimConfig,
    "schedule": ScheduleConfig,
    "loss": LossConfig,
    "train": TrainConfig,
    "augment": AugmentConfig,
}


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def available() -> list[str]:
    """Names of the presets shipped with sarcube."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except InputError:
                continue
        raise InputError(f"{where}: {value!r} is not a valid {hint}")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise InputError(f"{where}: expected true/false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise InputError(f"{where}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise InputError(f"{where}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise InputError(f"{where}: expected text, got {value!r}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            value = [value]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], where) for v in value)
        if len(args) != len(value):
            raise InputError(f"{where}: expected {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, where) for v, a in zip(value, args, strict=True))
    if hint is ChannelSpec:
        if isinstance(value, str):
            return ChannelSpec(value)
        if isinstance(value, Mapping) and "variable" in value:
            unknown = set(value) - {"variable", "take", "optional"}
            if unknown:
                raise InputError(f"{where}: unknown channel keys {sorted(unknown)} (use variable, take, optional)")
            return ChannelSpec.from_dict(dict(value))
        raise InputError(f"{where}: a channel is a variable name or {{variable, take, optional}}, got {value!r}")
    if origin in (Mapping, dict) or hint is Mapping:
        if not isinstance(value, Mapping):
            raise InputError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    raise InputError(f"{where}: cannot read {value!r} as {hint}")  # pragma: no cover


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise InputError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _merge(dict(out[k]), v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply one ``section.field=value`` override to a raw (YAML) preset mapping in place."""
    if "=" not in item:
        raise InputError(f"--set {item!r}: write section.field=value (e.g. train.epochs=3)")
    key, text = item.split("=", 1)
    parts = key.strip().split(".")
    if len(parts) < 2 or parts[0] not in SECTIONS:
        raise InputError(f"--set {item!r}: the key must start with a section, one of {sorted(SECTIONS)}")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as err:
        raise InputError(f"--set {item!r}: value is not valid YAML ({err})") from err
    section, rest = parts[0], parts[1:]
    cls = SECTIONS[section]
    fields = {f.name for f in dataclasses.fields(cls)}
    if section == "model" and rest[0] not in fields:
        rest = ["params", *rest]  # --set model.base=8 sets a constructor argument
    if rest[0] not in fields:
        raise InputError(f"--set {item!r}: {section} has no field {rest[0]!r}; known: {sorted(fields)}")
    node = raw.setdefault(section, {})
    for p in rest[:-1]:
        node = node.setdefault(p, {})
    node[rest[-1]] = value


def _read(name_or_path: str | Path) -> tuple[str, dict[str, Any]]:
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = PRESET_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        raise InputError(f"preset {str(name_or_path)!r} not found: use one of {available()} or a path to a YAML file")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise InputError(f"preset {str(path)!r} is not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise InputError(f"preset {str(path)!r} must be a mapping of sections")
    return raw.pop("name", path.stem), raw


def load_preset(name_or_path: str | Path, profile: str | None = None, overrides: Sequence[str] = ()) -> Preset:
    """Parse a preset (shipped name or YAML path), apply a profile, then ``--set`` overrides."""
    name, raw = _read(name_or_path)
    profiles = raw.pop("profiles", {}) or {}
    if profile:
        if profile not in profiles:
            raise InputError(f"preset {name!r} has no profile {profile!r}; it has {sorted(profiles)}")
        raw = _merge(raw, profiles[profile])
    for item in overrides:
        apply_override(raw, item)
    meta = {k: raw.pop(k, "") for k in ("paper", "description")}
    unknown = set(raw) - set(SECTIONS)
    if unknown:
        raise InputError(f"preset {name!r}: unknown section(s) {sorted(unknown)}; known: {sorted(SECTIONS)}")
    sections = _sections(raw, str(name))
    preset = Preset(name=str(name), paper=str(meta["paper"]), description=str(meta["description"]).strip(), profile=profile, **sections)
    _check(preset)
    return preset


def preset_from_dict(data: Mapping[str, Any]) -> Preset:
    """Rebuild a resolved preset (``Preset.to_dict()``, e.g. a run's preset.yaml)."""
    raw = dict(copy.deepcopy(dict(data)))
    name = raw.pop("name", "custom")
    meta = {k: raw.pop(k, "") for k in ("paper", "description", "profile")}
    sections = _sections(raw, str(name))
    return Preset(name=str(name), paper=str(meta["paper"] or ""), description=str(meta["description"] or ""), profile=meta["profile"] or None, **sections)


def _held_out(value: Any) -> Any:
    """split.test / split.val as 'last'/'first' or a tuple of pair indices/dates (text)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)
    return (str(value),)


def _sections(raw: Mapping[str, Any], name: str) -> dict[str, Any]:
    sections = {key: _build(cls, raw.get(key) or {}, f"{name}.{key}") for key, cls in SECTIONS.items()}
    split = sections["split"]
    sections["split"] = dataclasses.replace(split, test=_held_out(split.test), val=_held_out(split.val))
    return sections


def _check(p: Preset) -> None:
    p.chips.check()
    if p.model.task not in TASKS:
        raise InputError(f"preset {p.name!r}: model.task {p.model.task!r} unknown, use one of {TASKS}")
    if p.train.batch_size < 1 or p.train.epochs < 0:
        raise InputError(f"preset {p.name!r}: train.batch_size must be >= 1 and train.epochs >= 0")
    if p.augment.crop and p.augment.crop > p.chips.size:
        raise InputError(f"preset {p.name!r}: augment.crop {p.augment.crop} exceeds chips.size {p.chips.size}")
    if not p.inputs.channels and p.model.task != TASK_BASELINE:
        raise InputError(f"preset {p.name!r}: inputs.channels is empty")


__all__ = [
    "PRESET_DIR",
    "TASKS",
    "AugmentConfig",
    "InputsConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "Preset",
    "ScheduleConfig",
    "TrainConfig",
    "apply_override",
    "available",
    "load_preset",
    "preset_from_dict",
]
