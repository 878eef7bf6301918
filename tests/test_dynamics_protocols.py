"""The dynamics protocols: they validate, the study sweep expands, and the ideal-limit protocols
give bitwise the weights of the circuits without dynamics after 20 MNIST steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neurosim.protocol import load_protocol
from tests.conftest import requires_mnist

PROTOCOLS = Path(__file__).resolve().parent.parent / "protocols"


@pytest.mark.parametrize("name", ["dynamics_ideal_grouped", "dynamics_ideal_temporal",
                                  "dynamics_grouped_mnist", "dynamics_temporal_mnist"])
def test_dynamics_protocols_validate(name):
    p = load_protocol(PROTOCOLS / f"{name}.yaml")
    dyn = p["realization"]["dynamics"]
    assert dyn is not None
    if "ideal" in name:
        base = load_protocol(PROTOCOLS / f"{name.split('_')[-1]}_mnist.yaml")
        # the ideal protocol is the circuit's protocol plus an ideal dynamics section
        strip = {k: v for k, v in p.items() if k not in ("name", "recording")}
        strip["realization"] = {k: v for k, v in p["realization"].items() if k != "dynamics"}
        ref = {k: v for k, v in base.items() if k not in ("name", "recording")}
        ref["realization"] = {k: v for k, v in base["realization"].items() if k != "dynamics"}
        assert strip == ref
        assert dyn["eligibility"]["tau_e_ms"] == 0 and dyn["neurons"]["tau_m_ms"] == 0
        assert dyn["neuromodulator"] == {"delay_ms": 0.0, "tau_ms": 0.0, "noise": 0.0, "crosstalk": 0.0,
                                         "crosstalk_structure": "uniform"}
    else:  # plausible: membrane 10-20 ms, traces of hundreds of ms, ~100 ms delay
        assert 10 <= dyn["neurons"]["tau_m_ms"] <= 20
        assert 100 <= dyn["eligibility"]["tau_e_ms"] <= 5000
        assert 50 <= dyn["neuromodulator"]["delay_ms"] <= 200


def test_study_sweep_expands():
    from neurosim.sweep import load_sweep

    sw = load_sweep(PROTOCOLS / "dynamics_study.yaml", validate=False)
    assert len(sw.runs) == 66 and len({r.name for r in sw.runs}) == 66
    cells = {r.cell for r in sw.runs}
    assert any("type_temporal" in c and "crosstalk=0.6" in c for c in cells)
    assert any("rule=bp" in c for c in cells)
    # every run validates (as in --list)
    full = load_sweep(PROTOCOLS / "dynamics_study.yaml")
    assert len(full.runs) == 66 and {r.overrides["seed"] for r in full.runs} == {0, 1}


def _steps(path, n=20):
    from neurosim.train import Run

    r = Run(load_protocol(path))
    B = r.protocol["training"]["batch_size"]
    perm = r.exp.backend.rng("data", 0).permutation(r.exp.x_train.shape[0])
    for s in range(n):
        idx = perm[s * B:(s + 1) * B]
        r.exp.realization.step(r.exp.x_train[idx], r.exp.y_train[idx])
    return r


@pytest.mark.slow
@requires_mnist
@pytest.mark.parametrize("circuit", ["grouped", "temporal"])
def test_ideal_protocol_equals_the_circuit_after_20_steps(circuit):
    ref = _steps(PROTOCOLS / f"{circuit}_mnist.yaml")
    run = _steps(PROTOCOLS / f"dynamics_ideal_{circuit}.yaml")
    assert run.exp.realization.dynamics is not None
    for i, n, p in ref.exp.net.parameters():
        assert p.dtype == np.float32
        assert np.array_equal(p, run.exp.net.layers[i].params[n]), (i, n)  # bitwise
    if circuit == "grouped":
        for i in ref.exp.realization.layers[1:]:
            assert np.array_equal(ref.exp.realization.w(i), run.exp.realization.w(i))
