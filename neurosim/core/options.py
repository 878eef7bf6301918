"""Declared options: one small schema language and one validator for every component.

Every configurable component declares its options on its class, the way scikit-learn's
estimators declare ``_parameter_constraints``::

    class DFA(Rule):
        OPTIONS = Section({
            "sign": Field(str, default="auto", choices=("auto", "mixed", "nonnegative"),
                          doc="sign of the feedback matrix B"),
        })

A :class:`Field` is a value (type, default, range, choices, units, doc); a :class:`Section`
a mapping of named fields; a :class:`Tagged` section picks its fields by a tag key
(``rule: {name: dfa, sign: mixed}`` validates ``sign`` against the DFA's section).  The
protocol's schema is assembled from these declarations (:mod:`neurosim.protocol`),
validation happens before any data loads, and ``docs/protocol.md`` is generated from the
same declarations (:func:`markdown`).

Validation returns :class:`Options`: a frozen mapping of the section's values (every default
filled in, once, from the declaration) that is read by attribute (``options.tau_e_ms``) or by
key, and serialises as the plain dict it holds (``json.dumps`` and :meth:`Options.to_dict` give
the same mapping, so a store records exactly what the run was made with).  A component
receives its own section, typed, and never restates a default.

Errors are :class:`ConfigError`: the source (``file:line`` of the YAML, or the ``--set``
override that introduced the value), the dotted key and what is wrong, with "did you mean"
for unknown keys.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from typing import Any

from .typed import FrozenList, Options, freeze, plain  # noqa: F401 - the values validation returns

MISSING = object()


class ConfigError(ValueError):
    """Invalid protocol or circuit: source (file:line or --set), key and what is wrong."""

    def __init__(self, message: str, file=None, key: str | None = None, line: int | None = None,
                 source: str | None = None):
        self.file, self.key, self.line, self.reason, self.source = file, key, line, message, source
        where = []
        if source:
            where.append(source)
        elif file:
            where.append(str(file) + (f":{line}" if line else ""))
        if key:
            where.append(f"key '{key}'")
        super().__init__(("; ".join(where) + ": " if where else "") + message)

    def at(self, file=None, line=None, source=None) -> ConfigError:
        """The same error with its source filled in."""
        return ConfigError(self.reason, file=file, key=self.key, line=line, source=source)


class ConfigErrors(ConfigError):
    """Several errors of one protocol, reported together: one line each (``errors``)."""

    def __init__(self, errors: list):
        first = errors[0]
        super().__init__(first.reason, file=first.file, key=first.key, line=first.line,
                         source=first.source)
        self.errors = list(errors)
        self.args = ("\n".join(str(e) for e in self.errors),)

    def __str__(self) -> str:
        return self.args[0]

    def at(self, file=None, line=None, source=None) -> ConfigError:
        return self


def short(value, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters (messages never echo huge values)."""
    try:
        r = repr(value)
    except RecursionError:  # pragma: no cover - self-referencing values are refused earlier
        r = f"<{type(value).__name__}>"
    return r if len(r) <= limit else r[: limit - 5] + " ...)"


@dataclass
class Field:
    """A scalar or list value.

    ``type`` is a Python type or a tuple of types; ``min``/``max`` bound numbers (and list
    items through ``item``); ``finite`` (default) refuses NaN and ±Inf for numbers; ``units``
    and ``doc`` go into the generated reference.
    """

    type: Any
    default: Any = MISSING
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    exclusive_min: bool = False
    exclusive_max: bool = False
    nullable: bool = False
    item: Any = None  # Field for list items
    length: int | None = None
    finite: bool = True
    units: str = ""
    doc: str = ""

    def validate(self, value, key):
        if value is None:
            if self.nullable:
                return None
            raise ConfigError(f"must not be empty (expected {_tname(self.type)})", key=key)
        value = _coerce(value, self.type, key)
        if isinstance(value, float) and self.finite and not math.isfinite(value):
            raise ConfigError(f"must be a finite number, got {value}", key=key)
        if self.choices is not None and value not in self.choices:
            hint = _suggest(str(value), [str(c) for c in self.choices])
            raise ConfigError(f"{short(value)} is not one of {list(self.choices)}{hint}", key=key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if self.min is not None and (value < self.min or (self.exclusive_min and value == self.min)):
                op = ">" if self.exclusive_min else ">="
                raise ConfigError(f"must be {op} {self.min}, got {value}", key=key)
            if self.max is not None and (value > self.max or (self.exclusive_max and value == self.max)):
                op = "<" if self.exclusive_max else "<="
                raise ConfigError(f"must be {op} {self.max}, got {value}", key=key)
        if isinstance(value, list):
            if self.length is not None and len(value) != self.length:
                raise ConfigError(f"needs {self.length} items, got {len(value)}", key=key)
            if self.item is not None:
                value = [self.item.validate(v, f"{key}[{i}]") for i, v in enumerate(value)]
        return value

    # reference ------------------------------------------------------------------
    def describe(self) -> str:
        """Type, range and choices in words (for the generated reference)."""
        t = _tname(self.type)
        if isinstance(self.item, Field):
            t += f" of {_tname(self.item.type)}"
        elif self.item is not None:
            t += " of mappings"
        parts = [t]
        if self.length is not None:
            parts.append(f"{self.length} items")
        if self.choices is not None:
            parts.append("one of " + ", ".join(f"`{c}`" for c in self.choices))
        rng = _range_text(self) or (isinstance(self.item, Field) and _range_text(self.item))
        if rng:
            parts.append(rng)
        if self.nullable:
            parts.append("or empty")
        return "; ".join(parts)


def _range_text(f: Field) -> str:
    lo = hi = ""
    if f.min is not None:
        lo = f"{'>' if f.exclusive_min else '≥'} {f.min:g}"
    if f.max is not None:
        hi = f"{'<' if f.exclusive_max else '≤'} {f.max:g}"
    return ", ".join(x for x in (lo, hi) if x)


@dataclass
class Section:
    """A mapping with known keys (unknown keys are refused with a suggestion).  A ``nullable``
    section that is absent (or null) stays ``None`` instead of taking its fields' defaults; ``{}``
    switches it on with the defaults."""

    fields: dict = field(default_factory=dict)
    nullable: bool = False
    doc: str = ""
    #: cross-field checks ``check(values, key)`` after the fields: raise ConfigError, or return
    #: the values changed (:meth:`Options.replace`; None keeps them)
    checks: tuple = ()

    @property
    def default(self):
        return None if self.nullable else {}

    def validate(self, value, key):
        if value is None:
            if self.nullable:
                return None
            value = {}
        if not isinstance(value, dict):
            raise ConfigError(f"must be a mapping, got {short(value)}", key=key or None)
        out = {}
        for k in value:
            if not isinstance(k, str):
                raise ConfigError(f"keys must be strings, got {short(k)}", key=key or None)
            if k not in self.fields:
                raise ConfigError(f"unknown key{_suggest(k, list(self.fields))}", key=_join(key, k))
        for k, spec in self.fields.items():
            sub = _join(key, k)
            if k in value:
                out[k] = spec.validate(value[k], sub)
            elif isinstance(spec, (Section, Tagged)) and not getattr(spec, "nullable", False):
                out[k] = spec.validate({}, sub)
            elif spec.default is MISSING:
                raise ConfigError("required key is missing", key=sub)
            else:
                out[k] = _copy(spec.default)
        out = freeze(out)
        for check in self.checks:
            out = check(out, key) or out
        return out

    def view(self, value):
        """A stored section (a store's protocol, perhaps written by an older version) as
        :class:`Options`, nothing validated: the declared defaults for the keys it lacks, keys
        it has kept as they are (unknown ones too); ``None`` for an absent nullable section."""
        if not isinstance(value, dict):
            if self.nullable and value is None:
                return None
            value = {}
        out = {}
        for k, spec in self.fields.items():
            if k in value:
                out[k] = _view(spec, value[k])
            elif isinstance(spec, (Section, Tagged)):
                out[k] = spec.view(None if getattr(spec, "nullable", False) else {})
            elif spec.default is not MISSING:
                out[k] = _copy(spec.default)
        out.update({k: v for k, v in value.items() if k not in out})
        return freeze(out)

    def with_fields(self, **more) -> Section:
        return Section({**self.fields, **more}, self.nullable, self.doc, self.checks)


@dataclass
class Tagged:
    """A section whose fields depend on a tag: ``{tag: name, ...}`` is validated with
    ``choices[name]`` (a :class:`Section`), the tag itself with ``choices``' keys."""

    tag: str
    choices: dict  # name -> Section (or a callable returning one, for lazy registries)
    default: Any = MISSING  # default tag value
    doc: str = ""

    def sections(self) -> dict:
        return {k: (v() if callable(v) else v) for k, v in self.choices.items()}

    def validate(self, value, key):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise ConfigError(f"must be a mapping, got {short(value)}", key=key or None)
        names = list(self.choices)
        if self.tag in value:
            name = value[self.tag]
            if not isinstance(name, str):
                raise ConfigError(f"expected a string (one of {names}), got {short(name)}",
                                  key=_join(key, self.tag))
            if name not in self.choices:
                raise ConfigError(f"unknown {self.tag} {name!r}{_suggest(name, names)}",
                                  key=_join(key, self.tag))
        elif self.default is not MISSING:
            name = self.default
        else:
            raise ConfigError(f"required key is missing: needs a '{self.tag}' (one of {names})",
                              key=_join(key, self.tag))
        section = self.sections()[name]
        rest = {k: v for k, v in value.items() if k != self.tag}
        try:
            out = section.validate(rest, key)
        except ConfigError as exc:
            if exc.reason.startswith("unknown key") and exc.key and exc.key.rsplit(".", 1)[-1] in rest:
                known = sorted(section.fields)
                k = exc.key.rsplit(".", 1)[-1]
                raise ConfigError(f"unknown key for {self.tag} {name!r}{_suggest(k, known) if known else ''}"
                                  + ("" if known else " (it takes no options)"), key=exc.key) from None
            raise
        return Options({self.tag: name, **out})

    def view(self, value):
        """A stored tagged section as :class:`Options` (see :meth:`Section.view`); one whose tag
        is unknown here (a plug-in not installed) as it is."""
        value = value if isinstance(value, dict) else {}
        name = value.get(self.tag, None if self.default is MISSING else self.default)
        if name not in self.choices:
            return freeze(value)
        rest = {k: v for k, v in value.items() if k != self.tag}
        return Options({self.tag: name, **self.sections()[name].view(rest)})


def _view(spec, value):
    """A stored value of field ``spec`` as :meth:`Section.view` gives it."""
    if isinstance(spec, (Section, Tagged)):
        return spec.view(value)
    if isinstance(value, list) and isinstance(spec.item, (Section, Tagged)):
        return [spec.item.view(v) if isinstance(v, dict) else v for v in value]
    return freeze(value)


def _copy(v):
    import copy

    return copy.deepcopy(v)


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
        raise ConfigError(f"expected {_tname(t)}, got {short(value)}", key=key)
    if isinstance(value, types):
        return value
    if float in types and isinstance(value, int):
        return float(value)
    if float in types and isinstance(value, str):  # YAML 1.1 reads 3e-4 as a string
        try:
            return float(value)
        except ValueError:
            pass
    if int in types and isinstance(value, float) and value.is_integer() and float not in types:
        raise ConfigError(f"expected an integer, got {short(value)} (write it without a decimal point)",
                          key=key)
    raise ConfigError(f"expected {_tname(t)}, got {short(value)}", key=key)


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
    except (yaml.YAMLError, RecursionError):
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


# ---------------------------------------------------------------------------------------
# the generated reference
def _default_text(f) -> str:
    if isinstance(f, (Section, Tagged)) or f.default is MISSING:
        return "required" if not isinstance(f, (Section, Tagged)) else ""
    d = f.default
    if d is None:
        return "empty"
    if isinstance(d, bool):
        return "true" if d else "false"
    if d == "":
        return '`""`'
    return f"`{d}`"


def rows(spec, prefix: str = "") -> list:
    """``(key, type, default, units, doc)`` for every field of ``spec``, depth first."""
    out = []
    if isinstance(spec, Tagged):
        out.append((_join(prefix, spec.tag), "string; one of " + ", ".join(f"`{c}`" for c in spec.choices),
                    "required" if spec.default is MISSING else f"`{spec.default}`", "", spec.doc))
        # a key several tags declare alike (e.g. the dynamics of two realizations) is one row
        merged: dict = {}
        for name, sec in spec.sections().items():
            for row in rows(sec, prefix):
                merged.setdefault(row, []).append(name)
        for (key, t, d, u, doc), names in merged.items():
            tags = ", ".join(f"`{n}`" for n in names)
            out.append((key, t, d, u, f"({spec.tag} {tags}) {doc}".rstrip()))
        return out
    for k, f in spec.fields.items():
        key = _join(prefix, k)
        if isinstance(f, (Section, Tagged)):
            if f.doc and isinstance(f, Section):
                out.append((key, "mapping" + (" or empty" if f.nullable else ""),
                            "empty" if f.nullable else "", "", f.doc))
            out.extend(rows(f, key))
        else:
            out.append((key, f.describe(), _default_text(f), f.units, f.doc))
    return out


def markdown_table(spec, prefix: str = "") -> str:
    lines = ["| key | type and range | default | units | meaning |", "|---|---|---|---|---|"]
    for key, t, d, u, doc in rows(spec, prefix):
        cell = [key and f"`{key}`", t, d, u, doc]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cell) + " |")
    return "\n".join(lines)


def default_at(spec, key: str):
    """The declared default of the dotted ``key`` (list entries as ``[i]``) in ``spec``;
    :data:`MISSING` when none is declared, or the tags of a :class:`Tagged` section declare
    it differently."""
    specs = [spec]
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", key):
        found = []
        for s in specs:
            if part.startswith("["):
                found += [s.item] if getattr(s, "item", None) is not None else []
                continue
            for sec in (s.sections().values() if isinstance(s, Tagged) else [s]):
                f = getattr(sec, "fields", {}).get(part)
                found += [f] if f is not None else []
        specs = found
    defaults = [s.default for s in specs]
    if not defaults or any(d is MISSING or d != defaults[0] for d in defaults):
        return MISSING
    return defaults[0]
