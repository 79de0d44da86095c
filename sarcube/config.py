"""YAML into frozen dataclasses: the one parser of sarcube's configuration files.

Catalog sources (:mod:`sarcube.datacube.catalog`) and training presets
(:mod:`sarcube.pipelines.presets`) are YAML mappings whose keys are the
fields of frozen dataclasses. :func:`parse` checks the keys against the
fields (an unknown or missing key is an error naming the file and the key),
turns each value into its field's type hint (bool, int, float, str, tuple,
mapping, optional, nested dataclass, or a caller's reader for types of its
own) and builds the instance; :func:`read_yaml` reads the mapping from a file.
It lives here, below ``datacube`` and ``pipelines``, so that both import it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from sarcube.errors import InputError

T = TypeVar("T")

#: reads one value of a type the parser does not know: (value, location) -> instance
Reader = Callable[[Any, str], Any]
#: dataclass field metadata key: the YAML key of a field when it differs from the field name
YAML_KEY = "yaml_key"


def read_yaml(path: str | Path, what: str, error: type[Exception] = InputError) -> dict[str, Any]:
    """The mapping in the YAML file ``path`` (empty file: ``{}``); ``what`` names it in errors."""
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as err:
        raise error(f"{what} {str(path)!r} is not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise error(f"{what} {str(path)!r} must be a mapping of sections")
    return raw


def _at(source: str, key: str) -> str:
    return f"{source}: {key}" if key else source


def _yaml_key(f: dataclasses.Field) -> str:
    return str(f.metadata.get(YAML_KEY, f.name))


def parse(
    cls: type[T],
    data: Any,
    source: str,
    *,
    key: str = "",
    error: type[Exception] = InputError,
    readers: Mapping[Any, Reader] | None = None,
) -> T:
    """Build the dataclass ``cls`` from the mapping ``data``, each value checked against its field's type.

    ``source`` names the file (or other origin) in error messages, ``key`` the
    dotted path of ``data`` inside it. Fields with a default may be left out.
    ``readers`` maps types to functions that read them (e.g. a value that is
    either a name or a mapping).
    """
    where = _at(source, key)
    if not isinstance(data, Mapping):
        raise error(f"{where}: expected a mapping, got {data!r}")
    fields = {_yaml_key(f): f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - set(fields)
    if unknown:
        raise error(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(fields)}")
    missing = [k for k, f in fields.items() if k not in data and _required(f)]
    if missing:
        raise error(f"{where}: missing key(s) {missing}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        f = fields[name]
        dotted = f"{key}.{name}" if key else str(name)
        kwargs[f.name] = coerce(value, hints[f.name], source, key=dotted, error=error, readers=readers)
    return cls(**kwargs)


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def coerce(
    value: Any,
    hint: Any,
    source: str,
    *,
    key: str = "",
    error: type[Exception] = InputError,
    readers: Mapping[Any, Reader] | None = None,
) -> Any:
    """``value`` as the type ``hint`` (see :func:`parse`); raises ``error`` naming ``source`` and ``key``."""
    where = _at(source, key)
    origin, args = typing.get_origin(hint), typing.get_args(hint)

    def again(v: Any, h: Any, k: str = key) -> Any:
        return coerce(v, h, source, key=k, error=error, readers=readers)

    if readers and hint in readers:
        return readers[hint](value, where)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return again(value, a)
            except error:
                continue
        raise error(f"{where}: {value!r} is not a valid {hint}")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise error(f"{where}: expected true/false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise error(f"{where}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise error(f"{where}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise error(f"{where}: expected text, got {value!r}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            value = [value]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(again(v, args[0]) for v in value)
        if len(args) != len(value):
            raise error(f"{where}: expected {len(args)} values, got {value!r}")
        return tuple(again(v, a) for v, a in zip(value, args, strict=True))
    if origin in (Mapping, dict) or hint in (Mapping, dict):
        if not isinstance(value, Mapping):
            raise error(f"{where}: expected a mapping, got {value!r}")
        if len(args) != 2:
            return dict(value)
        return {again(k, args[0]): again(v, args[1], f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        return parse(hint, value, source, key=key, error=error, readers=readers)
    raise error(f"{where}: cannot read {value!r} as {hint}")  # pragma: no cover


__all__ = ["YAML_KEY", "Reader", "coerce", "parse", "read_yaml"]
