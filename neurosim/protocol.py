"""Protocol YAML -> a validated, fully resolved protocol dict.

A protocol names a circuit (``circuits/*.yaml``, or inline), a realization,
a learning rule, a dataset, an optimizer, a training schedule and what to
record.  Everything is checked before anything runs; problems raise
:class:`~neurosim.core.options.ConfigError` naming file, key and line.  The resolved
protocol (defaults filled in, circuit inlined) is what a run stores in its
attrs, so a store says exactly how it was made.

YAML is read with ``yaml.safe_load`` only.
"""

from __future__ import annotations

import copy
import inspect
import os
from pathlib import Path

import yaml

from .core.options import ConfigError, Field, Section, line_of, suggest

LAYER_COMMON = {"type", "nonlinearity"}

CIRCUIT = Section({
    "name": Field(str, default=None, nullable=True),
    "description": Field(str, default="", nullable=True),
    "dataset": Field(str, default=None, nullable=True, doc="dataset the circuit was designed for"),
    "vectorized": Field(bool, default=True),
    "components": Field(int, default=None, nullable=True, min=1),
    "sign": Field(str, default="nonnegative", choices=("nonnegative", "mixed")),
    "init": Field(str, default="on_off", choices=("on_off", "he")),
    "nonlinearity": Field(str, default="gate"),
    "gating": Field(str, default="paired", choices=("paired", "random", "first_bin")),
    "output": Section({"nonlinearity": Field(str, default="identity"),
                       "units": Field(int, default=None, nullable=True, min=1,
                                      doc="readout units of a conventional network "
                                          "(default: number of classes), e.g. 784 for an autoencoder")}),
    "layers": Field(list, item=Field(dict)),
})

CIRCUIT_REF_KEYS = {"file"} | set(CIRCUIT.fields)

SCHEMA = Section({
    "name": Field(str, default=None, nullable=True),
    "description": Field(str, default="", nullable=True),
    "seed": Field(int, default=0, min=0),
    "device": Field(str, default="cpu", choices=("cpu", "gpu", "auto")),
    "dtype": Field(str, default="float32", choices=("float32", "float64")),
    "circuit": Field((str, dict)),
    "realization": Section({"type": Field(str, default="batched")}, open=True),
    "rule": Section({"name": Field(str)}, open=True),
    "loss": Field(str, default="cross_entropy", choices=("cross_entropy", "mse")),
    "data": Section({
        "dataset": Field(str),
        "root": Field(str, default=None, nullable=True),
        "train_subset": Field(int, default=None, nullable=True, min=1),
        "test_subset": Field(int, default=None, nullable=True, min=1),
        "options": Field(dict, default=None, nullable=True),
    }),
    "optimizer": Section({
        "name": Field(str, default="adam", choices=("adam", "sgd")),
        "lr": Field(float, default=3e-4, min=0, exclusive_min=True),
        "betas": Field(list, default=[0.9, 0.999], length=2, item=Field(float, min=0, max=1)),
        "eps": Field(float, default=1e-8, min=0, exclusive_min=True),
        "momentum": Field(float, default=0.0, min=0, max=1),
    }),
    "training": Section({
        "epochs": Field(int, default=190, min=1),
        "batch_size": Field(int, default=128, min=1),
        "eval_every": Field(int, default=10, min=1),
        "early_stop": Field(bool, default=True),
        "max_steps": Field(int, default=None, nullable=True, min=1),
        "eval_batch_size": Field(int, default=2000, min=1),
        "eval_train_subset": Field(int, default=None, nullable=True, min=1,
                                   doc="training examples used to measure train error (default all)"),
        "shuffle": Field(bool, default=True),
    }),
    "recording": Section({
        "out": Field(str, default=None, nullable=True),
        "weights": Field(bool, default=False),
        "weights_every": Field(int, default=1, min=1, doc="in checkpoints"),
        # explicit-circuit trajectories (grouped/temporal realizations), see
        # neurosim/realizations/trajectories.py
        "trajectories": Section({
            "every": Field(int, default=0, min=0, doc="steps between trajectory records (0 = off)"),
            "samples": Field(int, default=4, min=1, doc="examples of the batch recorded"),
            "units": Field(int, default=16, min=1, doc="units recorded per layer"),
            "synapses": Field(int, default=64, min=1, doc="synapses per layer in snapshots"),
            "snapshot_every": Field(int, default=0, min=0, doc="steps between weight snapshots"),
            "chunk": Field(int, default=10, min=1, doc="records buffered per write"),
            "agreement": Field(bool, default=True, doc="record cosine with batched GEVB"),
        }),
    }, open=True),
    "metrics": Section({  # credit-assignment metrics, see neurosim/recording/metrics.py
        "every": Field(int, default=0, min=0, doc="metric step every N optimizer steps (0 = off)"),
        "alignment": Field(bool, default=True),
        "delta_hat": Field(bool, default=True),
        "sign_match": Field(bool, default=True),
        "on_off_drift": Field(bool, default=True),
        "examples": Field(int, default=8, min=1, doc="examples for per-example records"),
        "sign_match_weights": Field(int, default=4096, min=0, doc="W entries sampled (0 = all)"),
        "per_example": Field(bool, default=False),
        "feedback_every": Field(int, default=200, min=0,
                                doc="feedback-matrix metrics every N steps (0 = off), "
                                    "see neurosim/recording/feedback.py"),
    }),
})


def load_yaml(path: Path):
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise ConfigError("file not found", file=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc}", file=path) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(f"not valid YAML: {getattr(exc, 'problem', exc)}", file=path,
                          line=mark.line + 1 if mark else None) from None
    if not isinstance(data, dict):
        raise ConfigError("must be a YAML mapping at the top level", file=path)
    return data, text


def parse_set(items) -> dict:
    """``["training.epochs=3", ...]`` -> nested overrides (values as YAML)."""
    out: dict = {}
    for item in items or ():
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        k, v = item.split("=", 1)
        try:
            val = yaml.safe_load(v)
        except yaml.YAMLError:
            val = v
        node = out
        parts = k.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = val
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
    return ConfigError(exc.reason, file=file, key=exc.key, line=line_of(text, exc.key))


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


def validate_circuit(spec: dict, file=None, text=None, key_prefix="") -> dict:
    try:
        c = CIRCUIT.validate(spec, key_prefix)
        validate_layers(c["layers"], _join(key_prefix, "layers"))
        if not c["layers"]:
            raise ConfigError("a circuit needs at least one hidden layer", key=_join(key_prefix, "layers"))
        if c["vectorized"] and c["output"]["units"] not in (None, 1):
            raise ConfigError("a vectorized circuit has one vector output unit",
                              key=_join(key_prefix, "output.units"))
        if c["vectorized"] is False and c["components"] not in (None, 1):
            raise ConfigError("a conventional (vectorized: false) circuit has components 1",
                              key=_join(key_prefix, "components"))
    except ConfigError as exc:
        raise _with_file(exc, file, text) if file else exc from None
    return c


def _join(a, b):
    return f"{a}.{b}" if a else b


def validate_layers(layers, key):
    from .model import layers as layermod

    for i, ls in enumerate(layers):
        k = f"{key}[{i}]"
        if "type" not in ls:
            raise ConfigError("layer needs a 'type'", key=k)
        kind = ls["type"]
        if kind not in layermod.LAYERS:
            raise ConfigError(f"unknown layer type {kind!r}{suggest(str(kind), list(layermod.LAYERS))}",
                              key=f"{k}.type")
        cls = layermod.LAYERS[kind]
        params = set(inspect.signature(cls.__init__).parameters) - {"self", "in_shape", "K", "first"}
        for name in ls:
            if name not in params | LAYER_COMMON:
                known = list(params | LAYER_COMMON)
                raise ConfigError(f"unknown key for a {kind} layer{suggest(name, known)}", key=f"{k}.{name}")


def check_options(cls, options: dict, key: str, skip=("self", "net", "backend")):
    """Reject options that ``cls.__init__`` (or the function ``cls``) does not take,
    and values whose type differs from the parameter's default (bool, int, float,
    str, list/tuple)."""
    fn = cls if inspect.isfunction(cls) else cls.__init__
    params = {k: v for k, v in inspect.signature(fn).parameters.items()
              if k not in skip and v.kind not in (v.VAR_KEYWORD, v.VAR_POSITIONAL)}
    known = list(params)
    for name, value in options.items():
        if name not in known:
            hint = suggest(name, known) if known else " (this takes no options)"
            raise ConfigError(f"unknown option{hint}", key=f"{key}.{name}")
        default = params[name].default
        if default is inspect.Parameter.empty or default is None or value is None:
            continue
        t = (list, tuple) if isinstance(default, (list, tuple)) else type(default)
        if t in (bool, int, float, str, (list, tuple)):
            if t is float and isinstance(value, int) and not isinstance(value, bool):
                continue
            if not isinstance(value, t) or (t is int and isinstance(value, bool)):
                from .core.options import _tname

                raise ConfigError(f"expected {_tname(list if t == (list, tuple) else t)}, "
                                  f"got {value!r}", key=f"{key}.{name}")


def check_nonlinearities(circuit: dict, err) -> None:
    """Nonlinearity names of a circuit (hidden default, per layer, readout)."""
    from .model.nonlinearity import NONLINEARITIES

    known = sorted(set(NONLINEARITIES) | {"none"})
    places = [("nonlinearity", circuit.get("nonlinearity")),
              ("output.nonlinearity", (circuit.get("output") or {}).get("nonlinearity"))]
    places += [(f"layers[{i}].nonlinearity", ls.get("nonlinearity"))
               for i, ls in enumerate(circuit["layers"])]
    for key, name in places:
        if name is not None and name not in known:
            raise err(f"unknown nonlinearity {name!r}{suggest(str(name), known)}", key)


def check_shapes(circuit: dict, in_shape, n_classes: int, err) -> None:
    """Dry run of the network's construction on shapes only (no data, no weights).

    Every layer class is instantiated exactly as :func:`~neurosim.model.network.build_network`
    does, so a layer that cannot take its input (a kernel larger than the
    image, zero units, ...) fails here with its own message; ``err(message,
    circuit_key)`` makes the :class:`ConfigError`.
    """
    from .model import layers as layermod

    vectorized = circuit["vectorized"]
    K = int(circuit.get("components") or n_classes) if vectorized else 1
    if vectorized and K != n_classes:
        raise err(f"a vectorized network needs as many components as the dataset has classes "
                  f"({n_classes}), got {K}", "components")
    out_spec = {k: v for k, v in (circuit.get("output") or {}).items() if k != "nonlinearity"}
    n_out = out_spec.pop("units", None) or (1 if vectorized else n_classes)
    specs = [(f"layers[{i}]", ls) for i, ls in enumerate(circuit["layers"])]
    specs.append(("output", dict(type="dense", units=n_out, **out_spec)))
    shape, first = tuple(in_shape), True
    for key, ls in specs:
        kind = ls["type"]
        cls = layermod.LAYERS[kind]
        opts = {k: v for k, v in ls.items() if k not in LAYER_COMMON}
        try:
            layer = cls(shape, K, first=first and cls.has_weights, **opts)
        except (ValueError, TypeError) as exc:
            raise err(f"{kind} layer cannot take input of shape {shape}: {exc}", key) from None
        first = first and not cls.has_weights
        shape = tuple(layer.unit_shape)
        if any(int(d) < 1 for d in shape):
            raise err(f"layer output shape {shape} is empty (input {tuple(layer.in_shape)})", key)


def load_protocol(path, overrides: dict | None = None) -> dict:
    """Read, merge ``overrides`` (from ``--set``), validate and resolve."""
    path = Path(path)
    raw, text = load_yaml(path)
    if overrides:
        raw = merge(raw, overrides)
    return validate_protocol(raw, path, text)


def validate_protocol(raw: dict, path: Path | None = None, text: str = "") -> dict:
    from .realizations import REALIZATIONS
    from .rules import RULES

    proto_dir = path.parent if path else Path.cwd()
    try:
        for k in ("sweep", "seeds"):  # expanded by neurosim.sweep, which strips them
            if k in raw:
                raise ConfigError("a sweep protocol: run it with `neurosim sweep`", key=k)
        p = SCHEMA.validate(raw, "")
        # circuit: file reference (string or {file: ..., overrides}) or inline
        circ = p["circuit"]
        if isinstance(circ, str):
            circ = {"file": circ}
        for k in circ:
            if k not in CIRCUIT_REF_KEYS:
                raise ConfigError(f"unknown key{suggest(k, sorted(CIRCUIT_REF_KEYS))}", key=f"circuit.{k}")
        cpath = ctext = None
        if "file" in circ:
            cpath = resolve_circuit_path(str(circ["file"]), proto_dir)
            craw, ctext = load_yaml(cpath)
            cbase = validate_circuit(craw, cpath, ctext)
            over = {k: v for k, v in circ.items() if k != "file"}
            circuit = validate_circuit(merge(craw, over), key_prefix="circuit") if over else cbase
            circuit["file"] = str(cpath)
        else:
            circuit = validate_circuit(circ, key_prefix="circuit")
        p["circuit"] = circuit

        def circuit_error(message, ckey):
            """Error at circuit key ``ckey``: in the circuit file unless the protocol set it."""
            top = ckey.split(".")[0].split("[")[0]
            if cpath is not None and top not in circ:
                return ConfigError(message, file=cpath, key=ckey, line=line_of(ctext, ckey))
            return ConfigError(message, file=path, key=f"circuit.{ckey}",
                               line=line_of(text, f"circuit.{ckey}"))

        check_nonlinearities(circuit, circuit_error)
        # rule and realization options are validated against their classes
        rname = p["rule"]["name"]
        if rname not in RULES:
            raise ConfigError(f"unknown rule {rname!r}{suggest(rname, list(RULES))}", key="rule.name")
        check_options(RULES[rname], {k: v for k, v in p["rule"].items() if k != "name"}, "rule")
        real = p["realization"]["type"]
        if real not in REALIZATIONS:
            raise ConfigError(f"unknown realization {real!r}{suggest(real, list(REALIZATIONS))}",
                              key="realization.type")
        p["realization"] = REALIZATIONS[real].validate_options(p["realization"])
        from .data import DATASETS

        ds = p["data"]["dataset"]
        if ds not in DATASETS:
            raise ConfigError(f"unknown dataset {ds!r}{suggest(ds, list(DATASETS))}", key="data.dataset")
        dopts = dict(p["data"]["options"] or {})
        for name, allowed in (("target", ("label", "input")), ("pixels", ("symmetric", "unit"))):
            if name in dopts and dopts.pop(name) not in allowed:  # generic options of load_dataset
                raise ConfigError(f"must be one of {list(allowed)}", key=f"data.options.{name}")
        check_options(DATASETS[ds], dopts, "data.options", skip=("root",))
        from .data import describe

        shape_info = describe(ds, p["data"]["options"])
        if shape_info is not None:
            check_shapes(circuit, shape_info[0], shape_info[1], circuit_error)
        if rname == "gevb" and not circuit["vectorized"]:
            raise ConfigError("rule gevb needs a vectorized circuit (circuit.vectorized: true)",
                              key="rule.name")
        if p["name"] is None:
            p["name"] = path.stem if path else "run"
        if p["recording"]["out"] is None:
            p["recording"]["out"] = os.path.join("runs", f"{p['name']}.zarr")
    except ConfigError as exc:
        if exc.file is not None:
            raise
        raise _with_file(exc, path, text) from None
    return p
