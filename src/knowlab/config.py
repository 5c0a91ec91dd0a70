"""Typed configs: dataclasses filled from YAML files and `--dot.key=value` overrides.

Every config in knowlab is a (nested) dataclass. `load(cls, path, overrides)` builds one from a
YAML file (or a named preset shipped in `knowlab/configs/`), then applies overrides such as
`model.n_layer=6` or `optim.lr=3e-4`. Values are coerced to the annotated field type, and an
unknown key or an unparsable value is a `KnowlabError` naming the key and the valid choices.
`to_dict` gives the resolved config that every run folder saves.
"""

from __future__ import annotations

import dataclasses
import numbers
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from knowlab.errors import KnowlabError

T = TypeVar("T")

PRESET_DIR = Path(__file__).parent / "configs"


def preset_path(kind: str, name: str) -> Path:
    """`configs/<kind>/<name>.yaml`, or an error listing the presets that exist."""
    path = PRESET_DIR / kind / f"{name}.yaml"
    if not path.is_file():
        valid = sorted(p.stem for p in (PRESET_DIR / kind).glob("*.yaml"))
        raise KnowlabError(f"unknown {kind} preset '{name}'; valid: {', '.join(valid)}")
    return path


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise KnowlabError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise KnowlabError(f"{path}{where}: not valid YAML") from None
    if not isinstance(data, dict):
        raise KnowlabError(f"{path}: expected a mapping of config keys at the top level")
    return data


def parse_overrides(items: list[str]) -> dict[str, str]:
    """`["a.b=1", "--c=x"]` -> `{"a.b": "1", "c": "x"}`."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.lstrip("-").partition("=")
        if not sep or not key:
            raise KnowlabError(f"override '{item}' is not of the form key=value (e.g. optim.lr=3e-4)")
        out[key] = value
    return out


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


# An integer as written: optional sign, digits, "_" between digits (as Python and YAML 1.2 allow).
_INT = re.compile(r"[+-]?[0-9]+(?:_[0-9]+)*")


def _integer(value: Any, key: str) -> int:
    """An int field from an int or its decimal string, exactly. Going through float would round
    seeds above 2**53 and let "1e3" or 2.0 pass as integers that were never written as one."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and _INT.fullmatch(value.strip()):
        return int(value.strip())
    raise KnowlabError(f"{key}: expected an integer such as 1000 or 1_000, got {value!r}")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except KnowlabError as exc:
                errors.append(str(exc))
        raise KnowlabError(errors[0] if errors else f"{key}: cannot be empty")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise KnowlabError(f"{key}: expected a mapping, got {value!r}")
        return _build(tp, value, prefix=f"{key}.")
    if origin is typing.Literal:
        sval = value if not isinstance(value, str) else value.strip()
        for choice in args:
            if sval == choice or str(sval) == str(choice):
                return choice
        raise KnowlabError(f"{key}: '{value}' is not valid; valid: {', '.join(map(str, args))}")
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v for v in (s.strip() for s in value.strip("[]").split(",")) if v]
        if not isinstance(value, (list, tuple)):
            raise KnowlabError(f"{key}: expected a list, got {value!r}")
        inner = args[0] if args else str
        items = [_coerce(v, inner, key) for v in value]
        return items if origin is list else tuple(items)
    if origin is dict:
        if isinstance(value, str):  # a CLI value such as "{retrieval: {steps: 350}}"
            try:
                value = yaml.safe_load(value)
            except yaml.YAMLError:
                raise KnowlabError(f"{key}: expected a mapping such as {{a: 1}}, got {value!r}") from None
        if not isinstance(value, dict):
            raise KnowlabError(f"{key}: expected a mapping, got {value!r}")
        inner = args[1] if len(args) == 2 else Any
        return {str(k): _coerce(v, inner, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise KnowlabError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        return _integer(value, key)
    if tp is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise KnowlabError(f"{key}: expected a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, (dict, list)):
            raise KnowlabError(f"{key}: expected a string, got {value!r}")
        return str(value)
    if tp is Any:
        return value
    return value


def _build(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    types_ = _field_types(cls)
    unknown = sorted(set(data) - set(types_))
    if unknown:
        raise KnowlabError(
            f"unknown config key '{prefix}{unknown[0]}'; valid keys here: "
            + ", ".join(prefix + k for k in types_)
        )
    kwargs = {k: _coerce(v, types_[k], prefix + k) for k, v in data.items()}
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if callable(check):
        check()
    return obj


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise KnowlabError(f"override '{key}' goes below a plain value")
        node[parts[-1]] = value
    return out


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`extra` over `base`; mappings merge key by key, anything else (lists included) replaces."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def from_dict(cls: type[T], data: dict[str, Any], overrides: dict[str, Any] | None = None) -> T:
    return _build(cls, deep_merge(data, _nest(overrides or {})))


def load(cls: type[T], path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> T:
    """Defaults of `cls`, then the YAML at `path`, then `overrides` (dot-keys)."""
    data = read_yaml(path) if path else {}
    return from_dict(cls, data, overrides)


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def replace(cfg: T, **overrides: Any) -> T:
    """A copy of `cfg` with dot-key overrides applied and validated."""
    return from_dict(type(cfg), to_dict(cfg), overrides)
