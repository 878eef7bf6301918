"""Declared options and the one validator: every component declares its options, the protocol
schema is assembled from them, hostile YAML is refused quickly, errors name their source, and
docs/protocol.md is generated from the same declarations."""

from __future__ import annotations

import inspect
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from neurosim.cli import main
from neurosim.core import yamlio
from neurosim.core.options import MISSING, ConfigError, Field, Section, Tagged
from neurosim.protocol import load_protocol, parse_set

ROOT = Path(__file__).resolve().parents[1]
GEVB = ROOT / "protocols" / "gevb_mnist_fc.yaml"


def _run(*args, tmp_path):
    res = CliRunner().invoke(main, ["run", *map(str, args), "--out", str(tmp_path / "s.zarr"), "--quiet"],
                             catch_exceptions=False)
    assert not (tmp_path / "s.zarr").exists(), "a store was left behind"
    return res


@pytest.mark.parametrize("override,key", [
    ("recording.wieghts=true", "recording.wieghts"),
    ("optimizer.lr=.nan", "optimizer.lr"),
    ("optimizer.lr=.inf", "optimizer.lr"),
    ("training.epochs=-3", "training.epochs"),
    ("rule.noise=-1", "rule.name"),  # gevb takes no options: the key is unknown for it
    ("circuit.sign=sideways", "circuit.sign"),
])
def test_set_errors_name_the_override(tmp_path, override, key):
    res = _run(GEVB, "--set", override, tmp_path=tmp_path)
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert line.count("\n") == 0 and line.startswith(f"error: --set {override}"), line
    assert "Traceback" not in res.output


def test_yaml_errors_name_file_and_line(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text(GEVB.read_text().replace("lr: 3.0e-4", "lr: .nan"))
    with pytest.raises(ConfigError, match=r"p\.yaml:\d+; key 'optimizer\.lr': must be a finite number"):
        load_protocol(p)


def _bounded(tmp_path, text: str | bytes, match: str):
    p = tmp_path / "hostile.yaml"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    t0 = time.process_time()  # CPU time: a loaded machine or a parallel test run does not count
    with pytest.raises(ConfigError, match=match):
        load_protocol(p)
    assert time.process_time() - t0 < 1.0  # ~0.25 s measured; an unguarded parse takes far longer


def test_alias_bomb_is_refused_fast(tmp_path):
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    _bounded(tmp_path, "\n".join(lines) + "\n", "aliases")


def test_deep_nesting_is_refused_fast(tmp_path):
    _bounded(tmp_path, "a: " + "[" * 20000 + "]" * 20000 + "\n", "nested more than")


def test_non_utf8_and_duplicates_and_huge_files(tmp_path):
    _bounded(tmp_path, b"name: caf\xe9\n", "not UTF-8")
    _bounded(tmp_path, "seed: 1\nseed: 2\n", "duplicate key 'seed'")
    _bounded(tmp_path, "x: " + "y" * (yamlio.MAX_BYTES + 10) + "\n", "larger than")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_and_directory_are_refused(tmp_path):
    fifo = tmp_path / "p.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_protocol(fifo)
    with pytest.raises(ConfigError, match="is a directory"):
        load_protocol(tmp_path)


@pytest.mark.parametrize("edit,match", [
    (("units: 1024", "units: 16.5"), "expected an integer, got 16.5|expected integer"),
    (("type: dense", "type: [dense]"), "expected a string"),
])
def test_circuit_values_are_strict(tmp_path, edit, match):
    circ = (ROOT / "circuits" / "mnist_fc.yaml").read_text()
    assert edit[0] in circ
    (tmp_path / "c.yaml").write_text(circ.replace(edit[0], edit[1], 1))
    p = tmp_path / "p.yaml"
    text = GEVB.read_text()
    assert "  file: mnist_fc.yaml" in text
    p.write_text(text.replace("  file: mnist_fc.yaml", f"  file: {tmp_path / 'c.yaml'}"))
    with pytest.raises(ConfigError, match=match):
        load_protocol(p)


def test_cross_section_checks(tmp_path):
    with pytest.raises(ConfigError, match="recording.trajectories.*explicit circuits"):
        load_protocol(GEVB, parse_set(["recording.trajectories.every=5"]))
    with pytest.raises(ConfigError, match="data.options.target"):
        load_protocol(GEVB, parse_set(["data.options.target=input"]))
    with pytest.raises(ConfigError, match="rule.name.*needs a vectorized"):
        load_protocol(GEVB, parse_set(["circuit.vectorized=false"]))


def test_memory_estimate_refuses_what_cannot_fit():
    with pytest.raises(ConfigError, match=r"needs about .* GiB of memory.*budget is 1\.0 GiB"):
        load_protocol(GEVB, parse_set(["circuit.layers=[{type: dense, units: 1000000000}]",
                                       "training.memory_gib=1"]))
    p = load_protocol(GEVB, parse_set(["training.memory_gib=1"]))
    assert p["training"]["eval_batch_size"] is None  # chosen at run time from the budget


def test_every_registered_component_declares_its_options():
    from neurosim import data, losses, optim
    from neurosim.model import layers as layermod
    from neurosim.realizations import REALIZATIONS
    from neurosim.rules import RULES

    skip = {"self", "net", "backend", "in_shape", "K", "first", "root", "options", "backend_",
            "optimizer_options", "rule", "optimizer", "loss_fn"}
    for reg in (RULES, layermod.LAYERS, optim.OPTIMIZERS):
        for name, cls in reg.items():
            assert isinstance(cls.OPTIONS, Section), name
            params = [k for k, v in inspect.signature(cls.__init__).parameters.items()
                      if k not in skip and v.kind not in (v.VAR_KEYWORD, v.VAR_POSITIONAL)]
            assert sorted(params) == sorted(cls.OPTIONS.fields), (name, params)
            for k in params:  # declared defaults are the constructor's defaults
                d = inspect.signature(cls.__init__).parameters[k].default
                f = cls.OPTIONS.fields[k]
                if d is not inspect.Parameter.empty and f.default not in (None, MISSING):
                    assert list(d) == f.default if isinstance(d, tuple) else d == f.default, (name, k)
    for name, cls in REALIZATIONS.items():
        assert isinstance(cls.OPTIONS, Section), name
    assert set(data.OPTIONS) == set(data.DATASETS)
    for name, loader in data.DATASETS.items():  # declared defaults are the loader's defaults
        fn = getattr(loader, "__wrapped__", loader)
        for k, v in inspect.signature(fn).parameters.items():
            if k in ("root", "path") or v.kind == v.VAR_KEYWORD:  # path: data.path of npz
                continue
            f = data.OPTIONS[name].fields[k]
            assert (list(v.default) if isinstance(v.default, tuple) else v.default) == f.default, (name, k)
    assert set(losses.LOSSES)


def test_tagged_section_validates_by_its_tag():
    t = Tagged("name", {"a": Section({"x": Field(int, default=1, min=0)}), "b": Section({})})
    assert t.validate({"name": "a"}, "s") == {"name": "a", "x": 1}
    with pytest.raises(ConfigError, match="unknown key for name 'b'.*takes no options"):
        t.validate({"name": "b", "x": 2}, "s")
    with pytest.raises(ConfigError, match="did you mean 'a'"):
        t.validate({"name": "aa"}, "s")
    with pytest.raises(ConfigError, match="must be >= 0"):
        t.validate({"name": "a", "x": -1}, "s")


def test_protocol_reference_is_generated_and_current():
    from neurosim.reference import markdown

    text = markdown()
    for key in ("`training.memory_gib`", "`rule.noise`", "`recording.trajectories.every`",
                "`layers[i].channels`", "`metrics.feedback_every`", "`data.options.n_train`"):
        assert key in text, key
    doc = ROOT / "docs" / "protocol.md"
    assert doc.read_text(encoding="utf-8") == text, \
        "docs/protocol.md is stale: run python -m neurosim.reference docs/protocol.md"


def test_an_internal_error_is_one_line_and_logged(tmp_path, monkeypatch):
    from neurosim import train

    def broken(*a, **k):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(train, "run_protocol", broken)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("NEUROSIM_DEBUG", raising=False)
    res = CliRunner().invoke(main, ["run", str(GEVB), "--out", str(tmp_path / "s.zarr"), "--quiet"])
    assert res.exit_code == 1
    line = res.output.strip()
    assert line.startswith("internal error: ZeroDivisionError: a bug") and "\n" not in line, line
    logs = list((tmp_path / "cache" / "neurosim" / "logs").glob("*.log"))
    assert len(logs) == 1 and "ZeroDivisionError" in logs[0].read_text()
    res = CliRunner().invoke(main, ["--debug", "run", str(GEVB), "--out", str(tmp_path / "t.zarr"),
                                    "--quiet"])
    assert isinstance(res.exception, ZeroDivisionError)
