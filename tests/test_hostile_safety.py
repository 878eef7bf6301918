"""Hostile inputs on the newest surfaces (issue 31): the circuits in time's options, stores with
hostile contents (FIFOs, links, sockets, huge or malformed metadata), loading a network from a
store, the Python API and sweeps.  Each must end in one line and exit code 2 (or the matching
exception from Python) — no internal error, no hang, nothing silently accepted — and leave every
file as it was."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from neurosim.cli import main
from neurosim.core.options import ConfigError
from neurosim.recording import MARKER, StoreError, commit_record, verify_store

from .test_kill_battery_dynamics import CIRCUIT, DYNAMICS, PROTOCOL, REALIZATION
from .test_store_safety import tree, within

D = "realization.dynamics."

#: --set overrides of a grouped circuit in time that must be refused, and what the line names
DYNAMICS_CASES = {
    "dt zero": (f"{D}dt_ms=0", "must be > 0"),
    "dt negative": (f"{D}dt_ms=-1", "must be > 0"),
    "dt NaN": (f"{D}dt_ms=.nan", "finite number"),
    "dt infinite": (f"{D}dt_ms=.inf", "finite number"),
    "dt a switch": (f"{D}dt_ms=true", "expected number"),
    "tau_m shorter than dt": (f"{D}neurons.tau_m_ms=0.5", "shorter than dt_ms"),
    "settle longer than presentation": (f"{D}presentation_ms=3.0", "must be shorter than"),
    "unknown neuron model": (f"{D}neurons.model=izhikevich", "is not one of"),
    "unknown readout": (f"{D}neurons.readout=voltage", "is not one of"),
    "negative gain": (f"{D}code.gain_hz=-10", "must be > 0"),
    "negative baseline": (f"{D}code.baseline_hz=-1", "must be >= 0"),
    "crosstalk above 1": (f"{D}neuromodulator.crosstalk=1.5", "must be <= 1"),
    "crosstalk NaN": (f"{D}neuromodulator.crosstalk=.nan", "finite number"),
    "negative noise": (f"{D}neuromodulator.noise=-0.1", "must be >= 0"),
    "negative delay": (f"{D}neuromodulator.delay_ms=-5", "must be >= 0"),
    "eligibility NaN": (f"{D}eligibility.tau_e_ms=.nan", "finite number"),
    "inhibition as text": (f"{D}gating.tau_inh_ms=fast", "expected number"),
    "replay maybe": (f"{D}replay=maybe", "expected true/false"),
    "rectify 2": (f"{D}code.rectify=2", "expected true/false"),
    "unknown dynamics key": (f"{D}wobble=1", "unknown key"),
    "dynamics a list": (f"{D[:-1]}=[1, 2]", "must be a mapping"),
    "negative refractory period": (f"{D}neurons.tau_ref_ms=-1", "must be >= 0"),
    "trajectories every -1": ("recording.trajectories.every=-1", "must be >= 0"),
    "no probe samples": ("recording.trajectories.samples=0", "must be >= 1"),
    "probe outside the test set": ("recording.trajectories.probe=[999999]", "outside the test set"),
}


@pytest.fixture(scope="module")
def dyn(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dyn")
    (folder / "tiny_circuit.yaml").write_text(CIRCUIT)
    p = folder / "dyn.yaml"
    p.write_text(PROTOCOL + REALIZATION["grouped"] + DYNAMICS)
    return p


def refused(res, *needles):
    assert res.exit_code == 2, (res.output, res.exception)
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert "internal error" not in res.output and "Traceback" not in res.output
    for n in needles:
        assert str(n) in res.output, (n, res.output)
    return res.output


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("case", sorted(DYNAMICS_CASES))
def test_circuits_in_time_options_refused(tmp_path, dyn, case):
    over, needle = DYNAMICS_CASES[case]
    (tmp_path / "mine.txt").write_text("user file")
    before = tree(tmp_path)
    refused(within(60, cli, "run", dyn, "--out", tmp_path / "s.zarr", "--quiet", "--set", over),
            needle)
    assert tree(tmp_path) == before  # no store, no lock file


# --------------------------------------------------------------------------------------------
# stores with hostile contents
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def made(tmp_path_factory):
    from ._reliability import PROTOCOL as TINY
    from ._reliability import write_protocol

    folder = tmp_path_factory.mktemp("made")
    proto = write_protocol(folder, TINY)
    res = cli("run", proto, "--out", folder / "run.zarr", "--quiet")
    assert res.exit_code == 0, res.output
    return proto, folder / "run.zarr"


def _root(s):
    return json.loads((s / "zarr.json").read_text())


def _fifo_root(s):
    (s / "zarr.json").unlink()
    os.mkfifo(s / "zarr.json")


def _link_root(s):
    (s / "zarr.json").unlink()
    (s / "zarr.json").symlink_to("/etc/hostname")


def _huge_root(s):
    with open(s / "zarr.json", "r+b") as f:
        f.truncate(300 * 2**20)  # sparse: no disk used


def _list_root(s):
    (s / "zarr.json").write_text("[1, 2, 3]")


def _record_list(s):
    meta = _root(s)
    meta["attributes"][MARKER] = "[1, 2]"
    (s / "zarr.json").write_text(json.dumps(meta))


def _format(value):
    def damage(s):
        meta = _root(s)
        r = commit_record(meta["attributes"])
        r["format"] = value
        meta["attributes"][MARKER] = json.dumps(r)
        (s / "zarr.json").write_text(json.dumps(meta))
    return damage


def _chunk_dir(s):
    c = s / "train_error" / "c" / "0"
    c.unlink()
    c.mkdir()


def _socket(s):
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(s / "epoch" / "sock"))
    sock.close()


def _slot_link(s):
    slot = commit_record(_root(s)["attributes"])["slot"]
    other = s.parent / "elsewhere"
    shutil.copytree(s / slot, other)
    shutil.rmtree(s / slot)
    (s / slot).symlink_to(other)


def _dangling(s):
    (s / "W_x").symlink_to(s.parent / "nowhere")


STORE_CASES = {
    "root zarr.json a FIFO": (_fifo_root, "is a FIFO"),
    "root zarr.json a link to a system file": (_link_root, "is a symbolic link"),
    "root zarr.json of 300 MB": (_huge_root, "too large to be store metadata"),
    "root zarr.json a JSON list": (_list_root, "not a JSON object"),
    "commit record a list": (_record_list, "not a neurosim run store"),
    "format 'three'": (_format("three"), "its seal does not match"),
    "format 99": (_format(99), "its seal does not match"),
    "a chunk replaced by a folder": (_chunk_dir, "train_error"),
    "a socket inside": (_socket, "is a socket inside the store"),
    "the slot a link to a copy": (_slot_link, "is a symbolic link inside the store"),
    "a dangling link inside": (_dangling, "is a symbolic link inside the store"),
}


#: damaged, but holding only what neurosim writes
OURS = ("a chunk replaced by a folder", "format 'three'", "format 99")


@pytest.mark.parametrize("case", sorted(STORE_CASES))
def test_hostile_store_contents(tmp_path, made, case):
    """inspect, --resume, --overwrite, report and neurosim.open: one line each, nothing
    touched, nothing blocks."""
    proto, src = made
    store = tmp_path / "run.zarr"
    shutil.copytree(src, store)
    damage, needle = STORE_CASES[case]
    damage(store)
    before = tree(tmp_path)
    refused(within(30, cli, "inspect", store), needle)
    refused(within(30, cli, "run", proto, "--out", store, "--quiet", "--resume",
                   "--set", "training.epochs=2"))
    refused(within(30, cli, "report", store, "--out", tmp_path / "rep"))
    assert tree(tmp_path) == before
    res = within(30, cli, "run", proto, "--out", store, "--quiet", "--overwrite")
    if case in OURS:  # a damaged neurosim store holding nothing else: --overwrite replaces it
        assert res.exit_code == 0, res.output
        verify_store(store)
    else:
        refused(res, "refusing to overwrite")
        assert tree(tmp_path) == before


def test_loading_a_network_from_a_damaged_store_names_the_damage(tmp_path, made):
    from neurosim.analysis.reader import open_run

    _, src = made
    store = tmp_path / "run.zarr"
    shutil.copytree(src, store)
    run = open_run(store)
    slot = commit_record(_root(store)["attributes"])["slot"]
    chunk = next(p for p in (store / slot / "net.L0.W").rglob("*") if p.is_file())
    data = bytearray(chunk.read_bytes())
    data[-5] ^= 1
    chunk.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="checkpoint array net.L0.W"):
        run.checkpoint()
    with pytest.raises(StoreError, match="net.L0.W"):
        open_run(store)


def test_neurosim_load_of_swapped_weight_snapshots_is_refused(tmp_path):
    """neurosim.load (the trained network of a store) verifies the store first: two weight
    snapshots swapped on disk decode, but break the record hash chain."""
    import neurosim

    from ._reliability import PROTOCOL as TINY
    from ._reliability import write_protocol

    proto = write_protocol(tmp_path, TINY + "recording: {weights: true}\n")
    store = tmp_path / "run.zarr"
    assert cli("run", proto, "--out", store, "--quiet").exit_code == 0
    a, b = store / "W_1" / "c" / "0" / "0" / "0", store / "W_1" / "c" / "1" / "0" / "0"
    da, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db)
    b.write_bytes(da)
    with pytest.raises(StoreError, match="W_1 does not match its record hash"):
        neurosim.load(store, checkpoint=0)


def test_neurosim_open_of_a_fifo_or_a_loop_does_not_block(tmp_path):
    import neurosim

    os.mkfifo(tmp_path / "f")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    for p in (tmp_path / "f", tmp_path / "loop"):
        with pytest.raises(StoreError):
            within(10, neurosim.open, p)


def test_out_at_a_slot_or_a_sweep_store_refused(tmp_path, made):
    proto, src = made
    store = tmp_path / "run.zarr"
    shutil.copytree(src, store)
    slot = commit_record(_root(store)["attributes"])["slot"]
    before = tree(tmp_path)
    refused(cli("run", proto, "--out", store / slot, "--quiet", "--overwrite"), "inside the store")
    sweep = tmp_path / "sw.zarr"
    zarr.open_group(str(sweep), mode="w").attrs["kind"] = "sweep"
    before = tree(tmp_path)
    refused(cli("run", proto, "--out", sweep, "--quiet", "--overwrite"), "sweep store")
    assert tree(tmp_path) == before


def test_report_of_a_store_with_a_damaged_protocol_attr(tmp_path, made):
    from neurosim.recording import Recorder

    _, src = made
    store = tmp_path / "run.zarr"
    shutil.copytree(src, store)
    Recorder(store).set_attrs(protocol="{not json", layers="[[")
    before = tree(tmp_path)
    refused(within(60, cli, "report", store, "--out", tmp_path / "rep"), "root attr 'protocol'")
    refused(cli("compare", store, src), "root attr 'protocol'")
    refused(cli("inspect", store), "layers")
    assert tree(tmp_path) == before


# --------------------------------------------------------------------------------------------
# the Python API and sweeps
# --------------------------------------------------------------------------------------------
API_CASES = {
    "a protocol that is a number": (42, None, ConfigError),
    "epochs a float NumPy scalar": (None, {"training.epochs": np.float64(1.5)}, ConfigError),
    "epochs a NumPy array": (None, {"training.epochs": np.array([1, 2])}, ConfigError),
    "a key that is a number": (None, {1: 2}, ConfigError),
    "overrides a string": (None, "training.epochs=2", TypeError),
    "overrides a list of pairs": (None, [("training.epochs", 2)], TypeError),
}


@pytest.mark.parametrize("case", sorted(API_CASES))
def test_python_api_hostile(tmp_path, made, case):
    import neurosim

    proto, _ = made
    given, over, exc = API_CASES[case]
    with pytest.raises(exc):
        neurosim.run(str(proto) if given is None else given, out=tmp_path / "x.zarr",
                     overrides=over)
    assert list(tmp_path.iterdir()) == []


SWEEP_CASES = {
    "name with a NUL": ("name: \"a\\0b\"\n", "plain name"),
    "hidden name": ("name: .hidden\n", "plain name"),
    "absolute name": ("name: /tmp/x\n", "plain name"),
    "22 x 22 x 22 values": ("sweep:\n" + "".join(
        f"  {k}: [" + ", ".join(str(i + 1) for i in range(22)) + "]\n"
        for k in ("training.epochs", "training.batch_size", "training.eval_every")), "10,648 runs"),
}


@pytest.mark.parametrize("case", sorted(SWEEP_CASES))
def test_sweep_hostile(tmp_path, case, monkeypatch):
    from ._reliability import PROTOCOL as TINY
    from ._reliability import write_protocol

    monkeypatch.chdir(tmp_path)
    text, needle = SWEEP_CASES[case]
    base = TINY.replace("name: tiny\n", "") if text.startswith("name") else TINY
    if "sweep:" not in text:
        text += "sweep: {optimizer.lr: [1.0e-3]}\n"
    f = write_protocol(tmp_path, base + text, name="sw.yaml")
    before = tree(tmp_path)
    refused(within(60, cli, "sweep", f, "--list"), needle)
    refused(within(60, cli, "sweep", f, "--workers", "1"), needle)
    assert tree(tmp_path) == before
    assert not Path("/tmp/x.zarr").exists() or case != "absolute name"
