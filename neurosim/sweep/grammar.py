"""The sweep grammar: a sweep protocol expanded into named, validated runs.

A *sweep protocol* is an ordinary protocol (see :mod:`neurosim.protocol`) with two more
top-level keys::

    sweep:
      optimizer.lr: [1.0e-4, 3.0e-4]                      # grid axis: one dotted key, a list of values
      circuit.sign, circuit.init: [[nonnegative, on_off],  # zipped axis: keys joined by ",",
                                   [mixed, he]]            #   a list of value tuples (taken together)
      cases:                                               # zipped axis of mappings: each case sets
        - {rule.name: gevb, circuit.vectorized: true}      #   its own dotted keys (cases may differ
        - {rule.name: dfa, circuit.vectorized: false, rule.scale: 1.0}  # in which keys they set)
    seeds: [0, 1, 2, 3, 4]

The runs are the Cartesian product of the axes (in the order written) times the seeds.  A
zipped axis keeps combinations that belong together (GEVB needs a vectorized circuit; a
nonnegative circuit uses the ON/OFF init), so the grid never contains invalid cells.  Every
expanded protocol is validated before anything runs; an error names the run and the key.

Run names are deterministic and readable: ``key=value`` for each swept key, joined by ``,``,
then ``seed=N`` — e.g. ``circuit=mnist_fc,vectorized=true,rule=gevb,sign=nonnegative,
init=on_off,seed=0``.  Keys are shortened to their last component (``rule.name`` -> ``rule``,
``circuit.file`` -> ``circuit``) unless that would be ambiguous; file values to their stem.
Runs are ordered seed-major, so a sweep completes a whole table for seed 0 before seed 1.
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..core.options import ConfigError, line_of
from ..protocol import TRAINING, load_yaml, merge, validate_protocol

SWEEP_KEYS = ("sweep", "seeds")
CASES = "cases"


# ---------------------------------------------------------------------------
# expansion
@dataclass
class Axis:
    """One sweep axis: its YAML key and its entries (each a mapping dotted key -> value)."""

    key: str
    entries: list

    @property
    def keys(self) -> list:
        out = []
        for e in self.entries:
            out += [k for k in e if k not in out]
        return out


@dataclass
class SweepRun:
    name: str
    overrides: dict  # dotted key -> value, in axis order, ending with "seed"
    protocol: dict  # validated, resolved protocol
    cell: str  # the name without the seed (runs of one cell differ only in seed)


@dataclass
class Sweep:
    name: str
    file: str | None
    raw: dict
    axes: list
    seeds: list
    runs: list = field(default_factory=list)
    n_total: int = 0  # runs in the whole grid (``runs`` may be a selection)

    def select(self, patterns) -> list:
        """Runs whose name matches any of ``patterns`` (fnmatch glob, or substring without
        glob characters); all runs when ``patterns`` is empty."""
        if not patterns:
            return list(self.runs)
        return [r for r in self.runs if any(_match(r.name, p) for p in patterns)]


def _match(name: str, pattern: str) -> bool:
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(name, pattern)
    return pattern in name


def is_sweep(raw: dict) -> bool:
    return isinstance(raw, dict) and any(k in raw for k in SWEEP_KEYS)


def parse_axes(spec, text: str = "", file=None) -> list[Axis]:
    """The ``sweep:`` mapping -> axes (grid, zipped ``"a, b"`` and ``cases``)."""
    if spec is None:
        return []
    if not isinstance(spec, dict):
        raise ConfigError(f"must be a mapping of dotted keys to value lists, got {type(spec).__name__}",
                          file=file, key="sweep", line=line_of(text, "sweep"))
    axes, seen = [], {}
    for key, values in spec.items():
        where = dict(file=file, key=f"sweep.{key}", line=line_of(text, f"sweep.{key}"))
        if not isinstance(key, str) or not key.strip():
            raise ConfigError("sweep keys must be dotted protocol keys", **where)
        if not isinstance(values, list) or not values:
            raise ConfigError("needs a non-empty list of values", **where)
        if key == CASES:
            entries = []
            for i, case in enumerate(values):
                if not isinstance(case, dict) or not case:
                    raise ConfigError(f"case {i} must be a non-empty mapping of dotted keys to values",
                                      **where)
                entries.append(dict(case))
        elif "," in key:
            keys = [k.strip() for k in key.split(",")]
            if any(not k for k in keys):
                raise ConfigError("empty key in a zipped axis", **where)
            entries = []
            for i, v in enumerate(values):
                if not isinstance(v, list) or len(v) != len(keys):
                    raise ConfigError(f"entry {i} must be a list of {len(keys)} values "
                                      f"({', '.join(keys)}), got {v!r}", **where)
                entries.append(dict(zip(keys, v)))
        else:
            entries = [{key.strip(): v} for v in values]
        axis = Axis(key, entries)
        for k in axis.keys:
            bad = _check_key(k)
            if bad:
                raise ConfigError(bad, **where)
            if k in seen:
                raise ConfigError(f"key {k!r} is swept twice (also in sweep.{seen[k]})", **where)
            seen[k] = key
        axes.append(axis)
    return axes


def _check_key(k: str) -> str | None:
    if not isinstance(k, str) or not re.fullmatch(r"[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*", k):
        return f"{k!r} is not a dotted protocol key (like optimizer.lr)"
    if k in ("seed",):
        return "sweep seeds with the top-level 'seeds:' list, not in 'sweep:'"
    if k.split(".")[0] in SWEEP_KEYS:
        return f"{k!r}: a sweep cannot sweep its own 'sweep'/'seeds' keys"
    return None


def set_dotted(d: dict, key: str, value) -> None:
    """``d["a"]["b"] = value`` for ``key = "a.b"``; a circuit given as a file name becomes
    ``{file: name}`` so that circuit overrides compose with it."""
    parts = key.split(".")
    node = d
    for i, p in enumerate(parts[:-1]):
        nxt = node.get(p)
        if nxt is None:
            nxt = node[p] = {}
        elif isinstance(nxt, str) and p == "circuit" and i == 0:
            nxt = node[p] = {"file": nxt}
        elif not isinstance(nxt, dict):
            raise ConfigError(f"cannot set {key!r}: {'.'.join(parts[:i + 1])} is not a mapping", key=key)
        node = nxt
    node[parts[-1]] = copy.deepcopy(value)


def _short_keys(keys: list) -> dict:
    """Dotted key -> short label for run names (last component; the parent for
    name/file/type; the full key where short labels would collide)."""
    def short(k):
        parts = k.split(".")
        if len(parts) > 1 and parts[-1] in ("name", "file", "type"):
            return parts[-2]
        return parts[-1]

    labels = {k: short(k) for k in keys}
    counts = {}
    for v in labels.values():
        counts[v] = counts.get(v, 0) + 1
    return {k: (v if counts[v] == 1 and v != "seed" else k) for k, v in labels.items()}


def _fmt(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        v = value.rstrip("/").split("/")[-1]
        for ext in (".yaml", ".yml"):
            if v.endswith(ext):
                v = v[: -len(ext)]
        return v
    if isinstance(value, (list, tuple)):
        return "-".join(_fmt(v) for v in value)
    if isinstance(value, dict):
        return "-".join(f"{k}_{_fmt(v)}" for k, v in value.items())
    return str(value)


def sanitise(name: str, limit: int = 180) -> str:
    """A file/group-safe run name: ``[A-Za-z0-9._+=,-]`` kept, anything else -> ``_``."""
    s = re.sub(r"[^A-Za-z0-9._+=,-]", "_", name).strip(".") or "run"
    if len(s) > limit:
        s = s[: limit - 9] + "~" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return s


def expand(raw: dict, file=None, text: str = "", overrides: dict | None = None, max_epochs=None,
           validate: bool = True, only=None) -> Sweep:
    """Expand a sweep protocol (raw YAML dict) into named, validated runs.

    ``overrides`` (nested, from ``--set``) apply to every run before the sweep's own values;
    ``max_epochs`` caps ``training.epochs`` of every run; ``only`` (patterns, see
    :meth:`Sweep.select`) keeps the matching runs (``Sweep.n_total`` counts all).  Every kept
    run is validated up front: :class:`ConfigError` names the run and the key.
    """
    path = Path(file) if file else None
    base = {k: v for k, v in raw.items() if k not in SWEEP_KEYS}
    if overrides:
        base = merge(base, overrides)
    axes = parse_axes(raw.get("sweep"), text, path)
    seeds = raw.get("seeds")
    if seeds is None:
        seeds = [base.get("seed", 0)]
    if (not isinstance(seeds, list) or not seeds
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds)):
        raise ConfigError("must be a non-empty list of nonnegative integers", file=path, key="seeds",
                          line=line_of(text, "seeds"))
    if len(set(seeds)) != len(seeds):
        raise ConfigError("seeds repeat", file=path, key="seeds", line=line_of(text, "seeds"))
    if max_epochs is not None and (not isinstance(max_epochs, int) or max_epochs < 1):
        raise ConfigError(f"--max-epochs must be a positive integer, got {max_epochs!r}")
    name = base.get("name") or (path.stem if path else "sweep")
    if (not isinstance(name, str) or "/" in name or "\\" in name or "\x00" in name
            or name.startswith(".") or not name.strip()):
        raise ConfigError(f"must be a plain name (it names the sweep store runs/<name>.zarr), not a "
                          f"path: {str(name)[:80]!r}", file=path, key="name", line=line_of(text, "name"))
    _check_size(axes, seeds, path, text)
    labels = _short_keys([k for a in axes for k in a.keys])
    sweep = Sweep(str(name), str(path) if path else None, raw, axes, list(seeds))
    combos = list(itertools.product(*[a.entries for a in axes]))
    used = set()
    for seed in seeds:  # seed-major: a whole table per seed first
        for combo in combos:
            over = {}
            for entry in combo:
                over.update(entry)
            cell = sanitise(",".join(f"{labels[k]}={_fmt(v)}" for k, v in over.items()) or "base")
            rname = sanitise(f"{cell},seed={seed}" if over else f"seed={seed}")
            n = 2
            while rname in used:  # distinct values with equal short forms
                rname = sanitise(f"{cell}_{n},seed={seed}")
                n += 1
            used.add(rname)
            run_raw = copy.deepcopy(base)
            try:
                for k, v in over.items():
                    set_dotted(run_raw, k, v)
            except ConfigError as exc:
                raise ConfigError(f"sweep run {rname!r}: {exc.reason}", file=path,
                                  key=_axis_key(axes, exc.key), line=line_of(text, "sweep")) from None
            run_raw["seed"] = seed
            run_raw["name"] = rname
            if max_epochs is not None:
                tr = run_raw.setdefault("training", {}) or {}
                run_raw["training"] = tr
                tr["epochs"] = min(int(tr.get("epochs", TRAINING.fields["epochs"].default)), max_epochs)
            proto = run_raw
            sweep.n_total += 1
            if only and not any(_match(rname, p) for p in only):
                continue
            if validate:
                try:
                    proto = validate_protocol(run_raw, path, text)
                except ConfigError as exc:
                    key = exc.key
                    swept = _axis_key(axes, key) if key else None
                    line = line_of(text, swept) if swept else exc.line
                    raise ConfigError(f"sweep run {rname!r}: {exc.reason}", file=exc.file or path,
                                      key=key, line=line) from None
            sweep.runs.append(SweepRun(rname, {**over, "seed": seed}, proto, cell))
    return sweep


#: most runs one sweep may expand to
MAX_RUNS = 10_000
#: most characters of swept values all runs of a sweep may carry together (each run's store
#: and the sweep store's listing hold them)
MAX_SWEPT_TEXT = 16 * 2**20


def _check_size(axes, seeds, path, text) -> None:
    """Refuse a sweep too large to expand, counted before anything is built: its number of
    runs, and the text its swept values add to all runs together (a long value in an axis is
    repeated in every run of the other axes)."""
    n = len(seeds)
    for a in axes:
        n *= len(a.entries)
    if n > MAX_RUNS:
        raise ConfigError(f"expands to {n:,} runs, more than the {MAX_RUNS:,} a sweep may have; "
                          f"split it (--only selects runs of a sweep)", file=path, key="sweep",
                          line=line_of(text, "sweep"))
    total = 0
    for a in axes:
        size = sum(len(json.dumps(e, default=str)) for e in a.entries)
        total += size * (n // len(a.entries))
    if total > MAX_SWEPT_TEXT:
        raise ConfigError(f"its {n:,} runs would carry {total / 2**20:,.0f} MiB of swept values "
                          f"(more than {MAX_SWEPT_TEXT // 2**20} MiB); sweep shorter values",
                          file=path, key="sweep", line=line_of(text, "sweep"))


def _axis_key(axes, key):
    """``sweep.<axis>`` of the axis that sets ``key`` (or a parent/child of it), if any."""
    if not key:
        return None
    for a in axes:
        for k in a.keys:
            if key == k or key.startswith(k + ".") or k.startswith(key + "."):
                return f"sweep.{a.key}"
    return None


def load_sweep(path, overrides: dict | None = None, max_epochs=None, validate=True, only=None) -> Sweep:
    """Read a sweep protocol file and expand it (see :func:`expand`)."""
    raw, text = load_yaml(Path(path))
    return expand(raw, path, text, overrides, max_epochs, validate, only)
