"""A small declarative schema for protocol and circuit YAML.

Validation happens before anything runs and raises :class:`ConfigError`
naming the file, the dotted key, the YAML line and — for unknown keys — the
closest known key ("did you mean ...").
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

MISSING = object()


class ConfigError(ValueError):
    """Invalid protocol or circuit: file, key, line and what is wrong."""

    def __init__(self, message: str, file=None, key: str | None = None, line: int | None = None):
        self.file, self.key, self.line, self.reason = file, key, line, message
        where = []
        if file:
            where.append(str(file) + (f":{line}" if line else ""))
        if key:
            where.append(f"key '{key}'")
        super().__init__(("; ".join(where) + ": " if where else "") + message)


@dataclass
class Field:
    """A scalar or list value.  ``type`` is a Python type or tuple of types."""

    type: Any
    default: Any = MISSING
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    exclusive_min: bool = False
    nullable: bool = False
    item: Any = None  # Field for list items
    length: int | None = None
    doc: str = ""

    def validate(self, value, key):
        if value is None:
            if self.nullable:
                return None
            raise ConfigError(f"must not be empty (expected {_tname(self.type)})", key=key)
        value = _coerce(value, self.type, key)
        if self.choices is not None and value not in self.choices:
            hint = _suggest(str(value), [str(c) for c in self.choices])
            raise ConfigError(f"{value!r} is not one of {list(self.choices)}{hint}", key=key)
        if self.min is not None and isinstance(value, (int, float)):
            if value < self.min or (self.exclusive_min and value == self.min):
                op = ">" if self.exclusive_min else ">="
                raise ConfigError(f"must be {op} {self.min}, got {value}", key=key)
        if self.max is not None and isinstance(value, (int, float)) and value > self.max:
            raise ConfigError(f"must be <= {self.max}, got {value}", key=key)
        if isinstance(value, list):
            if self.length is not None and len(value) != self.length:
                raise ConfigError(f"needs {self.length} items, got {len(value)}", key=key)
            if self.item is not None:
                value = [self.item.validate(v, f"{key}[{i}]") for i, v in enumerate(value)]
        return value


@dataclass
class Section:
    """A mapping with known keys.  ``open=True`` accepts extra keys (their
    validation is left to the component that owns them)."""

    fields: dict = field(default_factory=dict)
    open: bool = False
    nullable: bool = False
    doc: str = ""

    @property
    def default(self):
        return {}

    def validate(self, value, key):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise ConfigError(f"must be a mapping, got {type(value).__name__}", key=key)
        out = {}
        for k in value:
            if not isinstance(k, str):
                raise ConfigError(f"keys must be strings, got {k!r}", key=key)
            if k not in self.fields and not self.open:
                raise ConfigError(f"unknown key{_suggest(k, list(self.fields))}",
                                  key=_join(key, k))
        for k, spec in self.fields.items():
            sub = _join(key, k)
            if k in value:
                out[k] = spec.validate(value[k], sub)
            elif isinstance(spec, Section):
                out[k] = spec.validate({}, sub)
            elif spec.default is MISSING:
                raise ConfigError("required key is missing", key=sub)
            else:
                out[k] = spec.default
        if self.open:
            for k in value:
                if k not in self.fields:
                    out[k] = value[k]
        return out


def _join(a, b):
    return f"{a}.{b}" if a else b


def _tname(t):
    if isinstance(t, tuple):
        return " or ".join(_tname(x) for x in t)
    return {int: "integer", float: "number", str: "string", bool: "true/false", list: "list",
            dict: "mapping"}.get(t, getattr(t, "__name__", str(t)))


def _coerce(value, t, key):
    types = t if isinstance(t, tuple) else (t,)
    if isinstance(value, bool) and bool not in types:
        raise ConfigError(f"expected {_tname(t)}, got {value!r}", key=key)
    if isinstance(value, types):
        return value
    if float in types and isinstance(value, int):
        return float(value)
    if float in types and isinstance(value, str):  # YAML 1.1 reads 3e-4 as a string
        try:
            return float(value)
        except ValueError:
            pass
    raise ConfigError(f"expected {_tname(t)}, got {value!r}", key=key)


def _suggest(word, options) -> str:
    m = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if m:
        return f" (did you mean '{m[0]}'?)"
    return f" (known: {', '.join(sorted(options))})" if options else ""


def suggest(word, options) -> str:
    return _suggest(word, options)


def line_of(text: str, key: str | None) -> int | None:
    """1-based line of a dotted key (``a.b[2].c``) in YAML ``text``, if found."""
    if not key or not text:
        return None
    import re

    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    parts = [p for p in re.split(r"\.|\[(\d+)\]", key) if p]
    line = None
    for p in parts:
        if node is None:
            break
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for kn, vn in node.value:
                if kn.value == p:
                    line, nxt = kn.start_mark.line + 1, vn
                    break
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and p.isdigit() and int(p) < len(node.value):
            node = node.value[int(p)]
            line = node.start_mark.line + 1
        else:
            break
    return line
