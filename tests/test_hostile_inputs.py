"""Hostile inputs, as an attacker or a careless user would try them: protocols, overrides, data
files, stores and paths.  Every one must end in one clear line on stderr and exit code 2 (no
traceback, no hang), accept nothing silently, and delete or change no file that is not a
neurosim store.  Each case runs ``neurosim`` in-process under a time limit.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner

from neurosim.cli import main

from ._reliability import CIRCUIT, PROTOCOL, write_protocol

ROOT = Path(__file__).resolve().parents[1]
MNIST = Path(os.environ.get("NEUROSIM_DATA_DIR", "/nonexistent")) / "mnist"
LIMIT_S = 60


def P(old, new):
    """The tiny protocol with one text replacement."""
    assert old in PROTOCOL, old
    return ("proto", PROTOCOL.replace(old, new))


def RAW(text: str | bytes):
    return ("raw", text)


# (id, how to build the input, extra CLI args, text the message must contain)
CASES = [
    # --- protocol files ------------------------------------------------------------------
    ("alias bomb", RAW("a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{n}: &{n} [" + ",".join([f"*{p}"] * 9) + "]\n" for p, n in zip("abcdefgh", "bcdefghi"))),
     [], "aliases"),
    ("20,000 nested brackets", RAW("a: " + "[" * 20000 + "]" * 20000 + "\n"), [], "nested more than"),
    ("not UTF-8", RAW(b"name: caf\xe9\n"), [], "not UTF-8"),
    ("binary garbage", RAW(bytes(range(256)) * 4), [], "not UTF-8"),
    ("duplicate key", P("seed: 0", "seed: 0\nseed: 1"), [], "duplicate key 'seed'"),
    ("empty file", RAW(""), [], "must be a YAML mapping"),
    ("a list at the top", RAW("- a\n- b\n"), [], "must be a YAML mapping"),
    ("2 MiB protocol", RAW("x: '" + "y" * (2 << 20) + "'\n"), [], "larger than"),
    ("protocol is a FIFO", ("fifo", None), [], "not a regular file"),
    ("protocol is a directory", ("dir", None), [], "is a directory"),
    ("protocol missing", ("missing", None), [], "not found"),
    ("YAML syntax error", RAW("name: [unclosed\n"), [], "not valid YAML"),
    ("python tag", RAW("name: !!python/object/apply:os.system ['true']\n"), [], "not valid YAML"),
    ("lr NaN", P("lr: 1.0e-3", "lr: .nan"), [], "finite"),
    ("lr inf", P("lr: 1.0e-3", "lr: .inf"), [], "finite"),
    ("negative epochs", P("epochs: 1", "epochs: -3"), [], ">= 1"),
    ("float epochs", P("epochs: 1", "epochs: 2.5"), [], "integer"),
    ("units 16.5", ("circuit", CIRCUIT.replace("units: 8", "units: 16.5")), [], "integer"),
    ("layer type as a list", ("circuit", CIRCUIT.replace("type: dense, units: 8", "type: [dense], units: 8")),
     [], "expected a string"),
    ("unknown rule", P("name: gevb", "name: gevvb"), [], "did you mean 'gevb'"),
    ("rule option for another rule", P("rule: {name: gevb}", "rule: {name: gevb, noise: -1}"), [],
     "unknown key for name 'gevb'"),
    ("trajectories under batched", P("seed: 0", "seed: 0\nrecording: {trajectories: {every: 5}}"), [],
     "explicit circuits"),
    ("autoencoder target with gevb", P("n_classes: 4,", "n_classes: 4, target: input,"), [],
     "data.options.target"),
    ("a billion units", ("circuit", CIRCUIT.replace("units: 8", "units: 1000000000")), [], "GiB of memory"),
    ("sweep given to run", P("seed: 0", "seed: 0\nseeds: [0, 1]"), [], "neurosim sweep"),
    ("per-bin plasticity with Adam",
     P("rule: {name: gevb}", "rule: {name: gevb}\nrealization: {type: temporal, plasticity: per_bin}"),
     [], "optimizer.name"),
    ("gevb on a conventional circuit", ("circuit", CIRCUIT.replace("vectorized: true", "vectorized: false")),
     [], "vectorized"),
    ("hidden nonlinearity none with gevb",
     ("circuit", CIRCUIT.replace("units: 8}", "units: 8, nonlinearity: none}")), [], "gated hidden units"),
    ("circuit file missing", P("file: tiny_circuit.yaml", "file: nowhere.yaml"), [], "not found"),
    ("data options of another dataset", P("shape: [1, 4, 4]}", "shape: [1, 4, 4], check_md5: false}"), [],
     "unknown key"),
    # --- overrides ---------------------------------------------------------------------
    ("--set without =", P("seed: 0", "seed: 0"), ["--set", "training.epochs"], "--set expects key=value"),
    ("--set empty key", P("seed: 0", "seed: 0"), ["--set", "=3"], "dotted key"),
    ("--set typo", P("seed: 0", "seed: 0"), ["--set", "recording.wieghts=true"], "did you mean 'weights'"),
    ("--set NaN", P("seed: 0", "seed: 0"), ["--set", "optimizer.lr=.nan"], "--set optimizer.lr=.nan"),
    ("--set into a scalar", P("seed: 0", "seed: 0"), ["--set", "seed.x=1"], "'seed'"),
    ("--set huge YAML value", P("seed: 0", "seed: 0"), ["--set", "name=" + "[" * 5000 + "]" * 5000],
     "name"),
    # --- stores and paths --------------------------------------------------------------
    ("--out is a user's file", P("seed: 0", "seed: 0"), ["--out", "@user_file"], "already exists"),
    ("--overwrite a user's file", P("seed: 0", "seed: 0"), ["--out", "@user_file", "--overwrite"],
     "not a neurosim store"),
    ("--overwrite a folder with a thesis", P("seed: 0", "seed: 0"), ["--out", "@user_dir", "--overwrite"],
     "not a neurosim store"),
    ("--overwrite the home directory", P("seed: 0", "seed: 0"), ["--out", "@home", "--overwrite"],
     "not a neurosim store"),
    ("--resume a missing store", P("seed: 0", "seed: 0"), ["--out", "@new", "--resume"], "does not exist"),
    ("--resume and --overwrite", P("seed: 0", "seed: 0"), ["--out", "@new", "--resume", "--overwrite"],
     "--overwrite"),
    ("--resume onto a user's file", P("seed: 0", "seed: 0"), ["--out", "@user_file", "--resume"],
     "not a neurosim store"),
    ("--out below a regular file", P("seed: 0", "seed: 0"), ["--out", "@below_file"], "not a directory"),
    ("--out in a read-only folder", P("seed: 0", "seed: 0"), ["--out", "@readonly"], "writ"),
    ("--device gpu without CuPy", P("seed: 0", "seed: 0"), ["--device", "gpu"], ".[gpu]"),
    ("name escaping runs/", P("name: tiny", "name: ../../escaped"), ["--out", "@none"], "name"),
]


def _cupy():
    try:
        import cupy  # noqa: F401
        return True
    except Exception:
        return False


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A working directory with a user's files that must survive every case."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "user_file.txt").write_text("precious\n")
    (work / "thesis").mkdir()
    (work / "thesis" / "thesis.tex").write_text("\\documentclass{article}\n")
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("# mine\n")
    monkeypatch.chdir(work)
    return work, home


def _snapshot(*folders):
    out = {}
    for f in folders:
        for p in sorted(Path(f).rglob("*")):
            if p.is_file() and not p.is_symlink():
                out[str(p)] = p.read_bytes()
    return out


def _alarm(signum, frame):
    raise TimeoutError("the command hung")


@pytest.mark.parametrize("name,build,args,expect", CASES, ids=[c[0] for c in CASES])
def test_hostile_input_is_one_line_exit_2_and_harmless(sandbox, tmp_path, name, build, args, expect):
    work, home = sandbox
    if name == "--device gpu without CuPy" and _cupy():
        pytest.skip("CuPy is installed here")
    if name == "--out in a read-only folder" and os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    kind, payload = build
    proto = write_protocol(work / "p", PROTOCOL)
    if kind == "proto":
        proto.write_text(payload)
    elif kind == "circuit":
        (work / "p" / "tiny_circuit.yaml").write_text(payload)
    elif kind == "raw":
        proto.write_bytes(payload if isinstance(payload, bytes) else payload.encode())
    elif kind == "fifo":
        proto.unlink()
        os.mkfifo(proto)
    elif kind == "dir":
        proto.unlink()
        proto.mkdir()
    elif kind == "missing":
        proto.unlink()
    readonly = work / "readonly"
    readonly.mkdir()
    places = {"@user_file": work / "user_file.txt", "@user_dir": work / "thesis", "@home": home,
              "@new": work / "new.zarr", "@below_file": work / "user_file.txt" / "x.zarr",
              "@readonly": readonly / "x.zarr", "@none": None}
    argv, i = [], 0
    while i < len(args):
        a = args[i]
        if a == "--out" and args[i + 1] == "@none":
            i += 2
            continue
        argv.append(str(places[a]) if a in places else a)
        i += 1
    if "--out" not in argv:
        argv += ["--out", str(work / "out.zarr")] if "@none" not in args else []
    readonly.chmod(0o555)
    before = _snapshot(work / "user_file.txt", work / "thesis", home)
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(LIMIT_S)
    try:
        res = CliRunner().invoke(main, ["run", str(proto), "--quiet", *argv])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        readonly.chmod(0o755)
    out = res.output
    assert not isinstance(res.exception, TimeoutError), f"{name}: hung"
    assert res.exit_code == 2, (name, res.exit_code, out[-2000:], res.exception)
    assert out.startswith("error: ") and out.count("\n") == 1, (name, out[-2000:])
    assert "Traceback" not in out
    assert expect in out, (name, expect, out)
    assert _snapshot(work / "user_file.txt", work / "thesis", home) == before, f"{name}: a user file changed"
    assert not (work / "out.zarr").exists() and not (work / "new.zarr").exists(), f"{name}: a store was made"
    assert not list(tmp_path.parent.glob("escaped*")) and not list(work.parent.glob("escaped*"))


@pytest.mark.skipif(not (MNIST / "train-labels-idx1-ubyte.gz").exists(), reason="real MNIST not found")
@pytest.mark.parametrize("damage", ["fifo", "directory", "shifted labels", "truncated", "missing"])
def test_hostile_data_files(tmp_path, damage):
    data = tmp_path / "data" / "mnist"
    data.mkdir(parents=True)
    for f in MNIST.glob("*.gz"):
        shutil.copy2(f, data / f.name)
    target = data / "train-labels-idx1-ubyte.gz"
    if damage == "fifo":
        target.unlink()
        os.mkfifo(target)
    elif damage == "directory":
        target.unlink()
        target.mkdir()
    elif damage == "shifted labels":  # same size, same mtime, other content
        import gzip

        st = target.stat()
        raw = bytearray(gzip.decompress(target.read_bytes()))
        raw[8:] = bytes((b + 1) % 10 for b in raw[8:])
        blob = gzip.compress(bytes(raw))
        target.write_bytes(blob[: st.st_size].ljust(st.st_size, b"\0"))
        os.utime(target, (st.st_atime, st.st_mtime))
    elif damage == "truncated":
        target.write_bytes(target.read_bytes()[:1000])
    else:
        target.unlink()
    proto = ROOT / "protocols" / "gevb_mnist_fc.yaml"
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(LIMIT_S)
    try:
        res = CliRunner(env={"NEUROSIM_DATA_DIR": str(tmp_path / "data"),
                             "XDG_CACHE_HOME": str(tmp_path / "cache")}).invoke(
            main, ["run", str(proto), "--out", str(tmp_path / "s.zarr"), "--quiet"])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert res.exit_code == 2, (damage, res.output[-2000:], res.exception)
    assert res.output.startswith("error: ") and res.output.count("\n") == 1 and "train-labels" in res.output
    assert not (tmp_path / "s.zarr").exists()
