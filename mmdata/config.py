"""Typed configs: one dataclass per component, built at the CLI and passed down as objects.

A value comes from, in rising priority: the dataclass default, a preset, the YAML file's section for the
command (same names as the CLI options, dashes or underscores), then options given on the command line.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from mmdata.errors import ConfigError

T = TypeVar("T")


def _coerce(cls_name: str, name: str, tp: Any, value: Any) -> Any:
    """Coerce a YAML/CLI value to the field's declared type, or say which key is wrong and why."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if value is None:
        if origin in (typing.Union, types.UnionType) and type(None) in args:
            return None
        raise ConfigError(f"{cls_name}.{name}: a value is required, got null")
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _coerce(cls_name, name, inner[0], value) if len(inner) == 1 else value
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{cls_name}.{name}: expected a list, got {value!r}")
        elem = args[0] if args else Any
        items = [_coerce(cls_name, name, elem, v) for v in value]
        return tuple(items) if origin is tuple else items
    try:
        if tp is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if tp is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if tp is float:
            return float(value)
        if tp is str:
            return str(value)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{cls_name}.{name}: expected {tp.__name__}, got {value!r}") from e
    return value


def _field_name(key: str, value: Any, fields: dict[str, Any]) -> tuple[str, Any] | None:
    """The field a YAML key means, accepting the command-line spelling of an option: dashes for
    underscores, a seconds field without its `_s` (`timeout` for `timeout_s`, as `--timeout` is), and
    `no_x: true` for `x: false` (as `--no-x` is). None when it names no field."""
    key = key.replace("-", "_")
    if key in fields:
        return key, value
    if f"{key}_s" in fields:
        return f"{key}_s", value
    if key.startswith("no_") and key[3:] in fields and isinstance(value, bool):
        return key[3:], not value
    return None


def build_config(cls: type[T], cli: dict[str, Any] | None = None, section: dict[str, Any] | None = None,
                 preset: dict[str, Any] | None = None) -> T:
    """defaults <- preset <- YAML section <- CLI values that were given (None means not given)."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    values: dict[str, Any] = {}
    for source_name, source in (("preset", preset), ("config file", section)):
        for k, v in (source or {}).items():
            named = _field_name(k, v, fields)
            if named is None:
                allowed = ", ".join(sorted(fields))
                raise ConfigError(f"unknown {cls.__name__} option {k!r} in {source_name}; allowed: {allowed}")
            values[named[0]] = named[1]
    for k, v in (cli or {}).items():
        if v is not None and k in fields:
            values[k] = v
    coerced = {k: _coerce(cls.__name__, k, hints[k], v) for k, v in values.items()}
    return cls(**coerced)


def load_yaml(path: str | Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    import yaml

    p = Path(path)
    if not p.exists():
        raise ConfigError(f"config file {p} does not exist")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {p} is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping of sections, got {type(data).__name__}")
    return data


def load_yaml_section(path: str | Path | None, name: str) -> dict[str, Any]:
    """The `name:` section of a YAML config file ({} when there is no file or no such section)."""
    section = load_yaml(path).get(name) or {}
    if not isinstance(section, dict):
        raise ConfigError(f"config file {path}: section {name!r} must be a mapping")
    return section


def check(cond: bool, cls_name: str, key: str, value: Any, allowed: str) -> None:
    """One-line validation for __post_init__: names the key, the bad value and what is allowed."""
    if not cond:
        raise ConfigError(f"{cls_name}.{key} = {value!r} is invalid: {allowed}")
