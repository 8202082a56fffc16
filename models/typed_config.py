"""Typed configurations: each field checked against its type hint on construction, loaded from plain data
with unknown keys reported, and changed by dotted `key=value` overrides parsed through the same checks.

A `Literal[...]` hint is the one place its allowed values are written: errors list them from it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, fields, is_dataclass, replace
from functools import cache
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

from verify_cli.errors import FaceverifyError

T = TypeVar("T")
Rules = Mapping[str, tuple[Callable[[Any], bool], str]]  # field -> (predicate on its value, what it must be)
TRUE, FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


@cache
def hints(cls: type) -> dict[str, Any]:
    """A dataclass's field types, resolved."""
    resolved = get_type_hints(cls)
    return {f.name: resolved[f.name] for f in fields(cls)}


def choices(hint: Any) -> tuple[Any, ...]:
    """The values a Literal type allows."""
    return get_args(hint)


def _problem(value: Any, hint: Any) -> str | None:
    """Why `value` does not fit `hint` (None when it does)."""
    origin = get_origin(hint)
    if origin is Literal:
        allowed = get_args(hint)
        return None if value in allowed else "is not one of " + ", ".join(map(repr, allowed))
    if hint is bool:
        return None if isinstance(value, bool) else "must be true or false"
    if hint is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else "must be an integer"
    if hint is float:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if number and math.isfinite(value) else "must be a finite number"
    if hint is str:
        return None if isinstance(value, str) else "must be a string"
    if origin is tuple:
        if not isinstance(value, tuple):
            return "must be a tuple"
        inner = get_args(hint)[0]
        return next((f"item {item!r} {why}" for item in value if (why := _problem(item, inner))), None)
    if is_dataclass(hint):
        return None if isinstance(value, hint) else f"must be a {hint.__name__}"
    raise TypeError(f"no check for type {hint!r}")


def check_fields(obj: Any, prefix: str, rules: Rules) -> None:
    """Every field of a dataclass instance against its type hint, then against its range rule, if any."""
    for name, hint in hints(type(obj)).items():
        value = getattr(obj, name)
        why = _problem(value, hint)
        if why is None and name in rules and not rules[name][0](value):
            why = f"must be {rules[name][1]}"
        if why:
            raise FaceverifyError(f"invalid configuration: {prefix}{name} {value!r} {why}")


def from_plain(cls: type[T], data: Any, prefix: str = "") -> tuple[T, dict[str, Any]]:
    """A configuration from plain data (a checkpoint's dictionary: lists for tuples, nested dictionaries), and
    the dotted keys `cls` does not know, with their values, for the caller to judge."""
    if not isinstance(data, dict):
        raise FaceverifyError(
            f"checkpoint configuration unreadable ({prefix.rstrip('.') or 'configuration'} is "
            f"{type(data).__name__}, expected a mapping)"
        )
    known, unknown = {}, {}
    types = hints(cls)
    for key, value in data.items():
        hint = types.get(key)
        if hint is None:
            unknown[f"{prefix}{key}"] = value
        elif is_dataclass(hint):
            known[key], extra = from_plain(hint, value, f"{prefix}{key}.")
            unknown.update(extra)
        else:
            known[key] = tuple(value) if isinstance(value, list) else value
    missing = [f.name for f in fields(cls) if f.name not in known and f.default is MISSING
               and f.default_factory is MISSING]
    if missing:
        where = prefix.rstrip(".") or "configuration"
        raise FaceverifyError(f"checkpoint configuration unreadable ({where} lacks {', '.join(missing)})")
    return cls(**known), unknown


def field_hint(cls: type, key: str) -> Any:
    """The type of a dotted field (`model.dropout`), or one line naming what is not there."""
    hint: Any = cls
    for depth, part in enumerate(parts := key.split(".")):
        if not is_dataclass(hint) or part not in hints(hint):
            where = ".".join(parts[:depth])
            raise FaceverifyError(f"unknown configuration key {key!r}" + (f" ({where} has no {part!r})" if where else ""))
        hint = hints(hint)[part]
    if is_dataclass(hint):
        raise FaceverifyError(f"{key!r} is a group of settings; set one of its fields ({key}.NAME=VALUE)")
    return hint


def parse_value(hint: Any, text: str, key: str) -> Any:
    """A command-line string as a value of `hint` (its range is checked when the configuration is built)."""
    text = text.strip()
    if get_origin(hint) is Literal or hint is str:
        return text
    if get_origin(hint) is tuple:
        items = text.strip("()[] ").split(",")
        return tuple(parse_value(get_args(hint)[0], item, key) for item in items if item.strip())
    try:
        return {bool: _parse_bool, int: int, float: float}[hint](text)
    except ValueError:
        kind = {bool: "true or false", int: "an integer", float: "a number"}[hint]
        raise FaceverifyError(f"--set {key}={text}: the value must be {kind}") from None


def _parse_bool(text: str) -> bool:
    if text.lower() not in TRUE + FALSE:
        raise ValueError(text)
    return text.lower() in TRUE


def parse_overrides(cls: type, items: Iterable[str]) -> dict[str, Any]:
    """`key=value` strings (dotted keys for nested fields) as typed values, in order, the last one winning."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise FaceverifyError(f"--set {item!r}: expected KEY=VALUE (for example model.dropout=0.3)")
        out[key] = parse_value(field_hint(cls, key), text, key)
    return out


def with_overrides(obj: T, changes: Mapping[str, Any]) -> T:
    """A copy of a configuration with dotted fields replaced; the result is checked as any new one is."""
    cls = type(obj)
    direct: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for key, value in changes.items():
        field_hint(cls, key)
        head, _, rest = key.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            direct[head] = value
    for head, sub in nested.items():
        direct[head] = with_overrides(getattr(obj, head), sub)
    return replace(obj, **direct)  # type: ignore[type-var]


def differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """The dotted fields two configurations of one class disagree on, as `key old -> new`."""
    out = []
    for name in hints(type(old)):
        a, b = getattr(old, name), getattr(new, name)
        if is_dataclass(a):
            out += differences(a, b, f"{prefix}{name}.")
        elif a != b:
            out.append(f"{prefix}{name} {show(a)} -> {show(b)}")
    return out


def show(value: Any) -> str:
    """A field value as `--set` would take it: tuples comma-separated, booleans lower case."""
    if isinstance(value, tuple):
        return ",".join(show(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
