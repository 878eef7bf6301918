"""Kill battery over the circuits in time (issue 31): SIGKILLs of ``neurosim run`` on a grouped
and a temporal circuit with dynamics (Poisson neurons, neuromodulator noise and crosstalk,
trajectories, weight snapshots) on synthetic data — at seeded-random store writes, at random
moments from outside, and during ``--overwrite`` — each followed by ``--resume`` (or the
overwrite again); every end must be bit-identical to an uninterrupted run, every intermediate
store must verify, and nothing beside the store may appear (slow: ``pytest -m slow``).

Counts are printed: ``pytest -m slow -s tests/test_kill_battery_dynamics.py``."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest

from neurosim.recording import Recorder, verify_store

from ._reliability import CIRCUIT, assert_same_store, run_cli, start_cli, write_protocol

DYNAMICS = """\
  dynamics:
    dt_ms: 1.0
    presentation_ms: 10.0
    settle_ms: 4.0
    interval_ms: 10.0
    replay: true
    neurons: {model: poisson, tau_m_ms: 2.0, tau_syn_ms: 2.0, readout: counts}
    code: {baseline_hz: 20.0, gain_hz: 10.0, rectify: true}
    gating: {tau_inh_ms: 2.0}
    eligibility: {tau_e_ms: 50.0}
    neuromodulator: {delay_ms: 5.0, tau_ms: 5.0, noise: 0.1, crosstalk: 0.1}
"""

REALIZATION = {
    "grouped": "realization:\n  type: grouped\n  relaxation: {rate: 1.0, schedule: every_step}\n",
    "temporal": "realization:\n  type: temporal\n",
}

PROTOCOL = """\
name: kb
circuit: {file: tiny_circuit.yaml}
rule: {name: gevb}
data:
  dataset: synthetic
  options: {n_train: 64, n_test: 16, n_classes: 4, shape: [1, 4, 4]}
optimizer: {name: adam, lr: 1.0e-3}
training: {epochs: 3, batch_size: 8, eval_every: 1, early_stop: false}
seed: 0
dtype: float64
recording:
  weights: true
  trajectories: {every: 2, samples: 2, units: 4, snapshot_every: 4, synapses: 4, chunk: 2}
"""

TALLY = {"kills": 0, "resumed_identical": 0, "overwrite_kills": 0, "checked": 0}


def _beside(folder: Path) -> list:
    return sorted(p.name for p in folder.iterdir() if p.name != "run.zarr" and p.suffix != ".yaml"
                  and p.name not in ("ref.zarr", "writes"))


def _root_mtime(out: Path):
    try:
        return (out / "zarr.json").stat().st_mtime_ns
    except OSError:
        return None


def _check(out: Path) -> None:
    if out.exists():
        verify_store(out)
        TALLY["checked"] += 1


@pytest.mark.slow
@pytest.mark.parametrize("real", ["grouped", "temporal"])
def test_kill_battery_over_the_circuits_in_time(tmp_path, real):
    text = PROTOCOL + REALIZATION[real] + DYNAMICS
    proto = write_protocol(tmp_path, text, CIRCUIT)
    count = tmp_path / "writes"
    ref = tmp_path / "ref.zarr"
    res = run_cli("run", proto, "--out", ref, "--quiet", NEUROSIM_FAULT_KILL_AT=count)
    assert res.returncode == 0, res.stderr[-2000:]
    n_writes = int(count.read_text())
    rng = random.Random(31 if real == "grouped" else 32)
    out = tmp_path / "run.zarr"
    # 1. at seeded-random store writes (inside checkpoint writes, commits, creation)
    points = sorted(rng.sample(range(1, n_writes + 1), 6))
    for i, n in enumerate(points):
        at = n if i == 0 else max(1, n - points[i - 1])
        args = ["run", proto, "--out", out, "--quiet"] + (["--resume"] if out.exists() else [])
        res = run_cli(*args, NEUROSIM_FAULT_KILL_AT=at)
        assert res.returncode in (-signal.SIGKILL, 0), (res.returncode, res.stderr[-2000:])
        TALLY["kills"] += res.returncode == -signal.SIGKILL
        _check(out)
    res = run_cli("run", proto, "--out", out, "--quiet", "--resume")
    assert res.returncode == 0, res.stderr[-2000:]
    assert_same_store(ref, out)
    TALLY["resumed_identical"] += 1
    # 2. at random moments, from outside (a fresh store, resumed until it ends)
    out2 = tmp_path / "run2.zarr"
    kills = 0
    for _ in range(12):
        args = ["run", proto, "--out", out2, "--quiet"] + (["--resume"] if out2.exists() else [])
        before = _root_mtime(out2)
        proc = start_cli(*args)
        deadline = time.time() + 240  # a new commit of this process, then a random moment
        while proc.poll() is None and _root_mtime(out2) == before and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 1.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=300)
        _check(out2)
        if proc.returncode == 0:
            break
    TALLY["kills"] += kills
    res = run_cli("run", proto, "--out", out2, "--quiet", "--resume")
    assert res.returncode == 0, res.stderr[-2000:]
    assert_same_store(ref, out2)
    TALLY["resumed_identical"] += 1
    # 3. during --overwrite of a finished store (seed 1 replaced by seed 0)
    out3 = tmp_path / "run3.zarr"
    res = run_cli("run", proto, "--out", out3, "--quiet", "--set", "seed=1")
    assert res.returncode == 0, res.stderr[-2000:]
    for n in (1, 2, 3, 4, rng.randint(5, 40), rng.randint(41, n_writes)):
        res = run_cli("run", proto, "--out", out3, "--quiet", "--overwrite",
                      NEUROSIM_FAULT_KILL_AT=n)
        assert res.returncode in (-signal.SIGKILL, 0), (res.returncode, res.stderr[-2000:])
        if res.returncode == -signal.SIGKILL:
            TALLY["kills"] += 1
            TALLY["overwrite_kills"] += 1
        _check(out3)
        if out3.exists():  # the old store (seed 1) whole, or the new one (seed 0)
            seed = Recorder(out3).attrs["seed"]
            flags = ["--overwrite"] if seed == 1 else ["--resume"]
        else:
            flags = []  # killed between the two renames: the next writer starts afresh
        res = run_cli("run", proto, "--out", out3, "--quiet", *flags)
        assert res.returncode == 0, res.stderr[-2000:]
        assert_same_store(ref, out3)
        TALLY["resumed_identical"] += 1
        res = run_cli("run", proto, "--out", out3, "--quiet", "--overwrite", "--set", "seed=1")
        assert res.returncode == 0, res.stderr[-2000:]
    assert _beside(tmp_path) == ["run2.zarr", "run3.zarr"]  # no lock file, no leftovers
    print(f"\n{real}: {n_writes} store writes; tally {TALLY}")
    assert TALLY["kills"] >= 10
