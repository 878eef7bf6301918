"""Protocol YAML -> a validated, fully resolved protocol: frozen, typed options.

A protocol names a circuit (``circuits/*.yaml``, or inline), a realization, a learning rule, a
dataset, an optimizer, a training schedule and what to record.  Its schema is assembled from
the options each component declares (``OPTIONS`` on rules, layers, realizations, optimizers,
observers; the circuit section in :mod:`neurosim.model.circuit`, the data section in
:mod:`neurosim.data.section`, the training section in :mod:`neurosim.schedule`; see
:mod:`neurosim.core.options`), and the whole protocol is checked before any
data loads: types, ranges, finite numbers, unknown keys (with "did you mean"), the circuit's
shapes against the dataset's, and a memory estimate.  Errors are
:class:`~neurosim.core.options.ConfigError` naming the source — ``file:line`` for YAML,
``--set KEY=VALUE`` for a command-line override — the key, and what is wrong.

The resolved protocol (:class:`~neurosim.core.options.Options`: defaults filled in, once, from
the declarations; circuit inlined) is read by attribute (``p.training.epochs``); its plain
form (``json.dumps``, ``to_dict()``) is what a run stores in its attrs, so a store says exactly
how it was made, and :func:`view` reads a stored one back typed.  YAML is read by :mod:`neurosim.core.yamlio`
(safe loader, bounded size, depth and alias expansion, no duplicate keys).
"""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path

from .core import yamlio
from .core.options import ConfigError, Field, Section, Tagged, default_at, freeze, line_of, short, suggest
from .data.section import data_section, target
from .model.circuit import (  # noqa: F401 - re-exported: the circuit section's own module
    CIRCUIT_REF_KEYS,
    check_nonlinearities,
    check_shapes,
    circuit_schema,
    validate_circuit,
)
from .schedule import TRAINING, eval_batch_size, memory_needs

_PLUGINS_LOADED = False


def load_plugins(refresh: bool = False) -> dict:
    """Register the rules, datasets and neuron models of installed plug-ins (entry points,
    :mod:`neurosim.core.plugins`), once per process (``refresh``: again, e.g. after installing
    one).  Called before any protocol is read: a registry is complete by then, and a plug-in
    that imports neurosim finds it fully imported."""
    global _PLUGINS_LOADED
    from .core import plugins

    if refresh or not _PLUGINS_LOADED:
        from . import data, rules
        from .model import nonlinearity

        _PLUGINS_LOADED = True
        rules.register_plugins()
        data.register_plugins()
        nonlinearity.register_plugins()
    return plugins.REGISTERED


def schema() -> Section:
    """The protocol's schema, assembled from every component's declared ``OPTIONS``."""
    load_plugins()
    from . import losses
    from .optim import OPTIMIZERS
    from .realizations import REALIZATIONS
    from .realizations.trajectories import TrajectoryObserver
    from .recording.epoch import EpochRecords
    from .recording.feedback import FeedbackObserver
    from .recording.metrics import MetricsObserver
    from .rules import RULES

    return Section({
        "name": Field(str, default=None, nullable=True, doc="run name (default: the file's stem)"),
        "description": Field(str, default="", nullable=True),
        "caveat": Field(str, default=None, nullable=True,
                        doc="a warning about this protocol (e.g. a configuration known not to "
                            "learn), printed at the start of every run of it and by `compare` "
                            "and `report`"),
        "seed": Field(int, default=0, min=0, doc="seed of every random stream (init, data order, noise)"),
        "device": Field(str, default="cpu", choices=("cpu", "gpu", "auto"),
                        doc="cpu (NumPy + Numba), gpu (CuPy) or auto"),
        "dtype": Field(str, default="float32", choices=("float32", "float64")),
        "circuit": Field((str, dict), doc="a circuit file (`circuits/*.yaml`), `{file: ..., <overrides>}`, "
                                          "or an inline circuit (see the circuit keys below)"),
        "realization": Tagged("type", {n: c.OPTIONS for n, c in REALIZATIONS.items()},
                              default="batched",
                              doc="how the learning is simulated: batched vector math or a circuit"),
        "rule": Tagged("name", {n: c.OPTIONS for n, c in RULES.items()}, doc="the learning rule"),
        "loss": Field(str, default="cross_entropy", choices=tuple(losses.LOSSES),
                      doc="loss (defines the error vector e)"),
        "data": data_section(),
        "optimizer": Tagged("name", {n: c.OPTIONS for n, c in OPTIMIZERS.items()}, default="adam",
                            doc="the optimizer the rule's update feeds"),
        "training": TRAINING,
        "recording": EpochRecords.OPTIONS.with_fields(trajectories=TrajectoryObserver.OPTIONS),
        "metrics": MetricsObserver.OPTIONS.with_fields(**FeedbackObserver.OPTIONS.fields),
    })


def view(stored: dict):
    """A stored protocol (a store's ``protocol`` attr, perhaps of an older version) as typed
    :class:`~neurosim.core.options.Options`, not validated: the declared defaults for the keys it
    lacks (:meth:`~neurosim.core.options.Section.view`), its circuit typed as a circuit."""
    p = schema().view(stored)
    circuit = p.get("circuit")
    return p.replace(circuit=circuit_schema().view(circuit)) if isinstance(circuit, dict) else p


def declared_default(key: str):
    """The declared default of a dotted protocol key, the circuit's from its own section as in
    :func:`view`: a store made before the key existed resumes under a protocol that has it at
    this value (:data:`~neurosim.core.options.MISSING` when none is declared)."""
    if key.startswith("circuit."):
        return default_at(circuit_schema(), key[len("circuit."):])
    return default_at(schema(), key)


def load_yaml(path: Path):
    """A YAML mapping -> (value, text); see :mod:`neurosim.core.yamlio`."""
    data, text = yamlio.read(path)
    if not isinstance(data, dict):
        raise ConfigError("must be a YAML mapping at the top level", file=path)
    return data, text


class Overrides(dict):
    """Nested overrides from ``--set KEY=VALUE``; ``sources`` maps each dotted key to its
    ``--set`` text, so a validation error can name the override it came from."""

    def __init__(self):
        super().__init__()
        self.sources = {}

    def add(self, key: str, value, source: str) -> None:
        """Set the dotted ``key`` (creating the mappings above it) and remember its source."""
        parts = key.split(".")
        node = self
        for p in parts[:-1]:
            nxt = node.get(p)
            if not isinstance(nxt, dict):
                nxt = node[p] = {}
            node = nxt
        node[parts[-1]] = value
        self.sources[key] = source

    def source_of(self, key: str | None) -> str | None:
        if not key:
            return None
        for k, src in self.sources.items():
            if key == k or key.startswith((k + ".", k + "[")) or k.startswith(key + "."):
                return src
        return None


def parse_set(items) -> Overrides:
    """``["training.epochs=3", ...]`` -> nested overrides (values read as YAML)."""
    out = Overrides()
    for item in items or ():
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {short(item)}")
        k, v = item.split("=", 1)
        k = k.strip()
        src = f"--set {short(item, 80)[1:-1] if len(item) > 78 else item}"
        parts = k.split(".")
        if not k or not all(parts):
            raise ConfigError(f"KEY must be a dotted key such as training.epochs, got {short(k)}", source=src)
        try:
            val = yamlio.parse(v) if v.strip() else None
        except ConfigError as exc:
            if not exc.reason.startswith("not valid YAML"):  # too deep, too large, an alias bomb
                raise ConfigError(exc.reason, source=src) from None
            val = v  # not YAML: the text itself
        out.add(k, val, src)
    return out


def merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _with_file(exc: ConfigError, file, text) -> ConfigError:
    return exc.at(file=file, line=line_of(text, exc.key))


def resolve_circuit_path(value: str, proto_dir: Path) -> Path:
    cands = []
    for base in (proto_dir, proto_dir.parent / "circuits", Path.cwd() / "circuits", Path.cwd()):
        for name in (value, value + ".yaml"):
            cands.append(base / name)
    for c in cands:
        if c.is_file():
            return c
    raise ConfigError(f"circuit file {value!r} not found (looked in {proto_dir}, "
                      f"{proto_dir.parent / 'circuits'}, ./circuits)", key="circuit")


def resolve_data_path(value: str, proto_dir: Path) -> str:
    """A data file named in a protocol: next to the protocol, else in the current directory
    (kept as given when it is in neither: the data check then says it is missing)."""
    p = Path(value).expanduser()
    if p.is_absolute():
        return str(p)
    for base in (proto_dir, Path.cwd()):
        if (base / p).exists():
            return str((base / p).resolve())
    return value


def load_protocol(path, overrides: dict | None = None, replace: dict | None = None) -> dict:
    """Read, merge ``overrides`` (from ``--set``), validate and resolve.

    ``replace``: top-level sections put in place of the file's before the overrides (the
    ``data`` section of arrays given in Python).
    An error in a value that an override set names that ``--set`` as its source."""
    path = Path(path)
    raw, text = load_yaml(path)
    if replace:
        raw = {**raw, **copy.deepcopy(replace)}
    if overrides:
        if isinstance(raw.get("circuit"), str) and isinstance(overrides.get("circuit"), dict):
            raw = {**raw, "circuit": {"file": raw["circuit"]}}  # override keys of the named circuit
        raw = merge(raw, overrides)

    def sourced(exc):
        src = overrides.source_of(exc.key) if isinstance(overrides, Overrides) else None
        return exc.at(source=src) if src is not None else exc

    return validate_all(raw, lambda r: validate_protocol(r, path, text), sourced, path)


#: most errors one validation reports
MAX_ERRORS = 20


def validate_all(raw: dict, validate, sourced=lambda e: e, path=None):
    """``validate(raw)``, reporting every error of the protocol at once.

    After an error at a key of the protocol itself (file or ``--set``), the key is taken out and
    the protocol validated again, until it passes or an error cannot be taken out (a required
    key, a circuit file's own key, a check across sections): all the errors found so far are
    raised together (:class:`ConfigErrors`, one line each; a single one as itself)."""
    from .core.options import ConfigErrors

    errors, removed, work = [], [], copy.deepcopy(raw)
    while True:
        try:
            result = validate(work)
        except ConfigError as exc:
            exc = sourced(exc)
            if any(exc.key and _covers(k, exc.key) for k in removed):
                break  # what taking a key out caused (e.g. a required key now missing)
            errors.append(exc)
            own = exc.file is None or path is None or Path(exc.file) == Path(path)
            if not own or len(errors) >= MAX_ERRORS or not _remove(work, exc.key):
                break
            removed.append(exc.key)
            continue
        if not errors:
            return result
        break
    if len(errors) == 1:
        raise errors[0]
    # in the order of the file, then the overrides
    raise ConfigErrors(sorted(errors, key=lambda e: (e.source is not None, e.line or 0)))


def _covers(a: str, b: str) -> bool:
    """Whether keys ``a`` and ``b`` are one another's prefix (``rule`` and ``rule.name``)."""
    return a == b or b.startswith((a + ".", a + "[")) or a.startswith((b + ".", b + "["))


def _remove(raw: dict, key: str | None) -> bool:
    """Take dotted key ``key`` (``a.b[2].c``) out of ``raw``; False if it is not there."""
    import re

    if not key:
        return False
    parts = [p for p in re.split(r"\.|\[(\d+)\]", key) if p]
    node = raw
    for p in parts[:-1]:
        if isinstance(node, dict) and p in node:
            node = node[p]
        elif isinstance(node, list) and p.isdigit() and int(p) < len(node):
            node = node[int(p)]
        else:
            return False
    last = parts[-1]
    if isinstance(node, dict) and last in node:
        del node[last]
        return True
    return False


def validate_protocol(raw: dict, path: Path | None = None, text: str = ""):
    """A protocol mapping -> the resolved protocol: frozen, typed
    :class:`~neurosim.core.options.Options` (defaults filled in, circuit inlined, name and
    store path set), whose plain form (``to_dict()``, ``json.dumps``) a run stores."""
    load_plugins()
    proto_dir = path.parent if path else Path.cwd()
    try:
        for k in ("sweep", "seeds"):  # expanded by neurosim.sweep, which strips them
            if k in raw:
                raise ConfigError("a sweep protocol: run it with `neurosim sweep`", key=k)
        p = schema().validate(raw, "")
        # circuit: file reference (string or {file: ..., overrides}) or inline
        circ = p.circuit
        if isinstance(circ, str):
            circ = {"file": circ}
        for k in circ:
            if k not in CIRCUIT_REF_KEYS:
                raise ConfigError(f"unknown key{suggest(str(k), sorted(CIRCUIT_REF_KEYS))}",
                                  key=f"circuit.{k}")
        cpath = ctext = None
        if "file" in circ:
            if not isinstance(circ["file"], str):
                raise ConfigError(f"expected a file name, got {short(circ['file'])}", key="circuit.file")
            cpath = resolve_circuit_path(circ["file"], proto_dir)
            craw, ctext = load_yaml(cpath)
            cbase = validate_circuit(craw, cpath, ctext)
            over = {k: v for k, v in circ.items() if k != "file"}
            circuit = validate_circuit(merge(craw, over), key_prefix="circuit") if over else cbase
            circuit = circuit.replace(file=str(cpath))
        else:
            circuit = validate_circuit(circ, key_prefix="circuit")
        p = p.replace(circuit=circuit)

        def circuit_error(message, ckey):
            """Error at circuit key ``ckey``: in the circuit file unless the protocol set it."""
            top = ckey.split(".")[0].split("[")[0]
            if cpath is not None and top not in circ:
                return ConfigError(message, file=cpath, key=ckey, line=line_of(ctext, ckey))
            return ConfigError(message, file=path, key=f"circuit.{ckey}",
                               line=line_of(text, f"circuit.{ckey}"))

        check_nonlinearities(circuit, circuit_error)
        from .data import DataError, describe

        if p.data.path:
            p = p.replace(data=p.data.replace(path=resolve_data_path(p.data.path, proto_dir)))
        try:
            shape_info = describe(p.data.dataset, p.data.options, p.data.path)
        except DataError as exc:
            raise ConfigError(str(exc), key="data.path" if p.data.path else "data.dataset") from None
        plan = None if shape_info is None else check_shapes(circuit, *shape_info, circuit_error)
        _check_combination(p, plan)
        if plan is not None:
            check_memory(p, shape_info[0], [lp.layer for lp in plan.layers], plan.K)
        name = p.name if p.name is not None else path.stem if path else "run"
        if "/" in name or "\\" in name or name.startswith(".") or not name.strip():
            raise ConfigError(f"must be a plain name (it names the store runs/<name>.zarr), not a path: "
                              f"{short(name)}", key="name")
        p = p.replace(name=name)
        if p.recording.out is None:
            p = p.replace(recording=p.recording.replace(out=os.path.join("runs", f"{name}.zarr")))
    except ConfigError as exc:
        if exc.file is not None or exc.source is not None:
            raise
        raise _with_file(exc, path, text) from None
    return p


def _check_combination(p, plan) -> None:
    """Checks across sections (each names the key to change)."""
    from .realizations import REALIZATIONS
    from .rules import RULES

    circuit, rname, real = p.circuit, p.rule.name, p.realization.type
    rule = RULES[rname]
    if rule.needs_vectorized and not circuit.vectorized:
        raise ConfigError(f"rule {rname} needs a vectorized circuit (circuit.vectorized: true)",
                          key="rule.name")
    hidden = hidden_weight_layers(plan)
    if rule.needs_gating:
        for i, nl in hidden:
            if not nl.gating:
                raise ConfigError(f"rule {rname} needs gated hidden units (nonlinearity: gate); "
                                  f"circuit layer {i} has {nl.name!r}", key="rule.name")
    if len(hidden) < rule.min_hidden_layers:
        raise ConfigError(f"rule {rname} needs at least {rule.min_hidden_layers} hidden weight "
                          f"layer(s); the circuit has {len(hidden)}", key="rule.name")
    REALIZATIONS[real].check_protocol(p, hidden)
    traj = p.recording.trajectories
    if not REALIZATIONS[real].records_trajectories and (traj.every or traj.snapshot_every):
        raise ConfigError("trajectories are recorded by the explicit circuits (realization.type: "
                          "grouped or temporal); the batched realization has none",
                          key="recording.trajectories")
    if target(p.data) == "input" and (circuit.vectorized or p.loss != "mse"):
        raise ConfigError("target: input (an autoencoder) needs a conventional circuit "
                          "(circuit.vectorized: false) and loss: mse", key="data.options.target")


def train_examples(p) -> int | None:
    """Training examples of a resolved protocol's data set, known without loading it (None
    when unknown: a plug-in's or a file's)."""
    from .data import train_size

    d = freeze(p).data
    return train_size(d.dataset, d.options, d.train_subset)


def hidden_weight_layers(plan) -> list:
    """``(index in circuit.layers, nonlinearity)`` of the hidden layers with weights, as the
    network plan resolved them (a nonlinearity ``none`` is the identity); empty without a
    plan."""
    from .model import nonlinearity as nlmod

    if plan is None:
        return []
    return [(i, nlmod.get(lp.nonlinearity or "identity"))
            for i, lp in enumerate(plan.layers[:-1]) if lp.role in ("first", "hidden")]


def check_memory(p, in_shape, layers, K: int) -> None:
    """Refuse, with the estimate, a protocol whose run cannot fit in its memory budget
    (``training.memory_gib``, default half of the available memory)."""
    from .model import memory
    from .optim import OPTIMIZERS
    from .realizations import REALIZATIONS

    tr = p.training
    budget = memory.budget(tr.memory_gib)
    if budget is None:
        return
    item = 4 if p.dtype == "float32" else 8
    real = REALIZATIONS[p.realization.type]
    needs = memory_needs(tr, real, OPTIMIZERS[p.optimizer.name], K)
    eval_batch = eval_batch_size(tr, layers, K, in_shape, item, budget, needs)
    est = memory.estimate(layers, K, in_shape, item, eval_batch=eval_batch, **needs)
    keys = {"parameters": "circuit.layers", "training batch": "training.batch_size",
            "evaluation batch": "training.eval_batch_size"}
    units = [math.prod(L.unit_shape) for L in layers]
    for part, (size, key) in real.memory_parts(p, units, K, item).items():
        est[part], keys[part] = size, key
    est["total"] = sum(v for k, v in est.items() if k != "total")
    if est["total"] > budget:
        gib = 1 << 30
        parts = ", ".join(f"{k} {v / gib:.2f} GiB" for k, v in est.items() if k != "total")
        biggest = max((k for k in est if k != "total"), key=est.get)
        key = keys[biggest]
        src = "training.memory_gib" if tr.memory_gib is not None else "half of the available memory"
        raise ConfigError(f"needs about {est['total'] / gib:.1f} GiB of memory ({parts}); the budget is "
                          f"{budget / gib:.1f} GiB ({src})", key=key)
