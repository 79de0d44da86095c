"""Training presets: one YAML file per paper, parsed once into frozen dataclasses.

The torch-side sections are :mod:`sarcube.models.config` dataclasses, the
cube-side ones (channels, chips, split) :mod:`sarcube.datacube.chips` specs;
this module reads the YAML (with :mod:`sarcube.config`), applies profile and
overrides, composes them into a :class:`Preset` and checks it.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sarcube.config import parse, read_yaml
from sarcube.datacube.chips import ORBIT_AUTO, ChannelSpec, ChipSpec, SplitSpec
from sarcube.errors import InputError
from sarcube.models.config import (
    LEVELS,
    TASK_BASELINE,
    TASK_LEVELS,
    TASKS,
    AugmentConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    ScheduleConfig,
    TrainConfig,
    TrainingConfig,
)

PRESET_DIR = Path(__file__).parent


@dataclass(frozen=True)
class InputsConfig:
    """Model inputs, in channel order."""

    #: channel variables and how each is taken (static, per pair, at activity/reference time, series)
    channels: tuple[ChannelSpec, ...] = ()
    #: T, the number of time steps of ``series`` channels (glacier presets)
    series_steps: int = 0
    #: the one orbit series and event-mean channels read: a relative orbit number (a pass direction for
    #: event means per ``orbit_state``), or ``auto``, the one with most acquisitions (chips.run_orbit)
    orbit: int | str = ORBIT_AUTO
    #: standardise each channel with the training split's mean/std (off for the dB-threshold baseline)
    normalise: bool = True


@dataclass(frozen=True)
class Preset:
    """A whole training configuration, as resolved from YAML, profile and overrides."""

    name: str
    #: the paper it follows (its key in docs/papers.md)
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

    @property
    def training(self) -> TrainingConfig:
        """The sections :mod:`sarcube.models.training` reads."""
        return TrainingConfig(
            self.name, self.model, self.optim, self.schedule, self.loss, self.train, self.chips.min_positive_pixels
        )


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


def _path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = PRESET_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        raise InputError(f"preset {str(name_or_path)!r} not found: use one of {available()} or a path to a YAML file")
    return path


def _origin(what: str, profile: str | None, overrides: Sequence[str]) -> str:
    """Where a preset's values come from, for error messages: the file, its profile, ``--set``."""
    return what + (f" profile {profile!r}" if profile else "") + (" with --set" if overrides else "")


def load_preset(name_or_path: str | Path, profile: str | None = None, overrides: Sequence[str] = ()) -> Preset:
    """Parse a preset (shipped name or YAML path), apply a profile, then ``--set`` overrides."""
    path = _path(name_or_path)
    raw = read_yaml(path, "preset")
    name = raw.pop("name", path.stem)
    profiles = raw.pop("profiles", {}) or {}
    if profile:
        if profile not in profiles:
            raise InputError(f"preset {name!r} has no profile {profile!r}; it has {sorted(profiles)}")
        raw = _merge(raw, profiles[profile])
    for item in overrides:
        apply_override(raw, item)
    return _compose(raw, str(name), profile, _origin(f"preset {str(path)!r}", profile, overrides))


def preset_from_dict(data: Mapping[str, Any], source: str = "a resolved preset") -> Preset:
    """Rebuild a resolved preset (``Preset.to_dict()``, e.g. a run's preset.yaml), checked like a YAML file."""
    raw = dict(copy.deepcopy(dict(data)))
    name = raw.pop("name", "custom")
    profile = raw.pop("profile", None)
    return _compose(raw, str(name), str(profile) if profile else None, source)


def _compose(raw: dict[str, Any], name: str, profile: str | None, source: str) -> Preset:
    """The one way from a raw mapping (profile and overrides applied) to a checked :class:`Preset`."""
    meta = {k: raw.pop(k, "") for k in ("paper", "description")}
    unknown = set(raw) - set(SECTIONS)
    if unknown:
        raise InputError(f"preset {name!r}: unknown section(s) {sorted(unknown)}; known: {sorted(SECTIONS)}")
    sections = _sections(raw, source)
    paper, description = str(meta["paper"] or ""), str(meta["description"] or "").strip()
    preset = Preset(name=name, paper=paper, description=description, profile=profile, **sections)
    _check(preset)
    return preset


def _held_out(value: Any) -> Any:
    """split.test / split.val as 'last'/'first'/'tiles' or a tuple of pair indices, dates, START/END ranges (text)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)
    return (str(value),)


def _channel(value: Any, where: str) -> ChannelSpec:
    """A channel: a variable name, or ``{variable, take, optional}``."""
    if isinstance(value, str):
        return ChannelSpec(value)
    if isinstance(value, Mapping) and "variable" in value:
        unknown = set(value) - {"variable", "take", "optional"}
        if unknown:
            raise InputError(f"{where}: unknown channel keys {sorted(unknown)} (use variable, take, optional)")
        return ChannelSpec.from_dict(dict(value))
    raise InputError(f"{where}: a channel is a variable name or {{variable, take, optional}}, got {value!r}")


def _sections(raw: Mapping[str, Any], source: str) -> dict[str, Any]:
    readers = {ChannelSpec: _channel}
    sections = {key: parse(cls, raw.get(key) or {}, source, key=key, readers=readers) for key, cls in SECTIONS.items()}
    split = sections["split"]
    sections["split"] = dataclasses.replace(split, test=_held_out(split.test), val=_held_out(split.val))
    return sections


def _check(p: Preset) -> None:
    p.chips.check()
    if p.model.task not in TASKS:
        raise InputError(f"preset {p.name!r}: model.task {p.model.task!r} unknown, use one of {TASKS}")
    if p.model.level and p.model.level not in LEVELS:
        raise InputError(f"preset {p.name!r}: model.level {p.model.level!r} unknown, use one of {LEVELS}")
    if p.model.level and p.model.task != TASK_BASELINE and p.model.level != TASK_LEVELS[p.model.task]:
        raise InputError(
            f"preset {p.name!r}: a {p.model.task} model predicts per {TASK_LEVELS[p.model.task]}, not per "
            f"{p.model.level}; model.level is a choice of the baseline only (pixel: maps, patch: Sinha's rule)"
        )
    if p.train.batch_size < 1 or p.train.epochs < 0:
        raise InputError(f"preset {p.name!r}: train.batch_size must be >= 1 and train.epochs >= 0")
    if p.augment.crop and p.augment.crop > p.chips.size:
        raise InputError(f"preset {p.name!r}: augment.crop {p.augment.crop} exceeds chips.size {p.chips.size}")
    if not p.inputs.channels and p.model.task != TASK_BASELINE:
        raise InputError(f"preset {p.name!r}: inputs.channels is empty")


__all__ = [
    "PRESET_DIR",
    "SECTIONS",
    "InputsConfig",
    "Preset",
    "apply_override",
    "available",
    "load_preset",
    "preset_from_dict",
]
