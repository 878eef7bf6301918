"""Crosstalk of the neuromodulator (``realization.dynamics.neuromodulator.crosstalk`` and
``crosstalk_structure``): the mixing matrices against matrices built entry by entry, their
analytic spectra, and the uniform prediction on one training step of the grouped circuit —
at χ = (K − 1)/K the update vanishes, beyond it it is reversed.  (The engine's plasticity with
either structure against brute-force traces: tests/test_dynamics_circuits.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from neurosim.core.options import ConfigError
from neurosim.protocol import validate_protocol
from neurosim.realizations.dynamics.neuromodulator import mix
from neurosim.train import Run


def hand_built(K: int, chi: float, structure: str) -> np.ndarray:
    """C[μ, ν]: the fraction of component μ delivered to place ν, entry by entry."""
    C = np.zeros((K, K))
    for mu in range(K):
        for nu in range(K):
            if nu == mu:
                C[mu, nu] = 1.0 - chi
            elif structure == "uniform":
                C[mu, nu] = chi / (K - 1)
            elif abs(nu - mu) == 1:  # neighbours on an open chain: no wrap-around
                C[mu, nu] = chi / 2.0
    return C


@pytest.mark.parametrize("structure", ["uniform", "neighbours"])
@pytest.mark.parametrize("K", [2, 3, 10])
@pytest.mark.parametrize("chi", [0.2, 0.9, 1.0])
def test_mixing_is_the_hand_built_matrix(structure, K, chi):
    eps = np.random.default_rng(K).standard_normal((7, K))
    C = hand_built(K, chi, structure)
    np.testing.assert_allclose(mix(eps, chi, structure), eps @ C, rtol=0, atol=1e-14)
    e32 = eps.astype(np.float32)
    assert mix(e32, chi, structure).dtype == np.float32
    assert mix(eps, 0.0, structure) is eps  # χ = 0 mixes nothing


def test_neighbours_spectrum_is_the_open_chains():
    """Eigenvalues 1 − χ + χ cos(πj/(K + 1)) with eigenvectors sin(πjμ/(K + 1)): not a rescaling;
    the alternating mode is reversed once χ > 1/(1 + cos(π/(K + 1)))."""
    K = 10
    mu = np.arange(1, K + 1)
    for chi in (0.3, 0.6, 0.9):
        C = mix(np.eye(K), chi, "neighbours")
        for j in range(1, K + 1):
            v = np.sin(np.pi * j * mu / (K + 1))
            np.testing.assert_allclose(v @ C, (1 - chi + chi * np.cos(np.pi * j / (K + 1))) * v,
                                       atol=1e-14)
    edge = 1.0 / (1.0 + np.cos(np.pi / (K + 1)))
    assert np.linalg.eigvalsh(mix(np.eye(K), edge - 1e-6, "neighbours")).min() > 0
    assert np.linalg.eigvalsh(mix(np.eye(K), edge + 1e-6, "neighbours")).min() < 0


def test_uniform_crosstalk_only_rescales_a_sum_zero_error():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((64, 10))
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    eps = p - np.eye(10)[rng.integers(0, 10, 64)]  # the softmax error: each row sums to 0
    for chi in (0.3, 0.6, 0.95):
        np.testing.assert_allclose(mix(eps, chi), (1 - chi * 10 / 9) * eps, rtol=0, atol=1e-15)
    assert np.abs(mix(eps, 0.9)).max() <= 1e-15 * np.abs(eps).max()  # exactly 0 up to rounding
    assert np.abs(mix(eps, 0.9, "neighbours")).max() > 0.1  # neighbours do not cancel it


# ----------------------------------------------------------------------------------- a step
IDEAL = {"dt_ms": 1.0, "presentation_ms": 2.0, "settle_ms": 0.0, "interval_ms": 0.0,
         "neurons": {"model": "rate", "tau_m_ms": 0.0}, "code": {"rectify": False},
         "gating": {"tau_inh_ms": 0.0}, "eligibility": {"tau_e_ms": 0.0},
         "neuromodulator": {"delay_ms": 0.0, "tau_ms": 0.0, "noise": 0.0}}


def _protocol(chi, structure="uniform"):
    nm = {**IDEAL["neuromodulator"], "crosstalk": chi, "crosstalk_structure": structure}
    # mixed sign: no clamp at 0, so the update is linear in the error
    return validate_protocol({
        "name": "xt", "seed": 5, "dtype": "float64",
        "circuit": {"vectorized": True, "sign": "mixed", "init": "he",
                    "layers": [{"type": "dense", "units": 12}, {"type": "dense", "units": 8}]},
        "realization": {"type": "grouped", "dynamics": {**IDEAL, "neuromodulator": nm}},
        "rule": {"name": "gevb"},
        "data": {"dataset": "synthetic", "options": {"n_train": 64, "n_test": 32, "shape": [1, 4, 4]}},
        "optimizer": {"name": "sgd", "lr": 0.1},
        "training": {"epochs": 1, "batch_size": 16},
        "recording": {"out": "unused.zarr"}})


def _one_step(chi, structure="uniform") -> dict:
    """The change of every weight by one training step on the first 16 examples."""
    r = Run(_protocol(chi, structure))
    before = {(i, n): np.array(p) for i, n, p in r.exp.net.parameters()}
    r.exp.realization.step(r.exp.x_train[:16], r.exp.y_train[:16])
    return {k: np.array(p) - before[k] for k, p in
            (((i, n), p) for i, n, p in r.exp.net.parameters())}, before


def test_one_step_stops_at_09_and_reverses_at_095():
    d0, w0 = _one_step(0.0)
    d90, _ = _one_step(0.9)
    d95, _ = _one_step(0.95)
    dn, _ = _one_step(0.9, "neighbours")
    scale = max(np.abs(d).max() for d in d0.values())
    assert scale > 1e-4  # the reference step does change the weights
    for k in d0:
        wmax = np.abs(w0[k]).max()
        assert np.abs(d90[k]).max() <= 1e-12 * max(wmax, scale), k  # no change beyond rounding
        np.testing.assert_allclose(d95[k], -d0[k] / 18.0, rtol=1e-9, atol=1e-12 * scale, err_msg=str(k))
    # neighbours at the same χ: a change that is not a multiple of the reference's
    a = np.concatenate([d.ravel() for d in d0.values()])
    b = np.concatenate([d.ravel() for d in dn.values()])
    assert np.abs(b).max() > 0.05 * scale
    assert abs(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b)) < 1 - 1e-3


def test_bad_structure_names_the_key():
    with pytest.raises(ConfigError) as exc:
        _protocol(0.3, "ring")
    assert "crosstalk_structure" in str(exc.value)


def test_stores_made_before_the_option_resume_and_count_as_done():
    """A run store written before ``crosstalk_structure`` existed (its protocol lacks the key) is
    the same protocol as ``uniform``, and a different one from ``neighbours``."""
    import copy
    import json

    from neurosim.core.jsonable import jsonable as _jsonable
    from neurosim.recording.session import protocol_differences as differences
    from neurosim.sweep.execute import run_is_done
    from neurosim.train import declared_default

    def protocol_differences(a, b):
        return differences(a, b, default=declared_default)

    new = _jsonable(_protocol(0.6))
    old = copy.deepcopy(new)
    del old["realization"]["dynamics"]["neuromodulator"]["crosstalk_structure"]
    assert protocol_differences(old, new) == []
    attrs = {"status": "finished", "stopped": "epochs", "protocol": json.dumps(old)}
    assert run_is_done(attrs, _protocol(0.6))
    assert not run_is_done(attrs, _protocol(0.6, "neighbours"))
    assert protocol_differences(old, _jsonable(_protocol(0.6, "neighbours"))) == [
        "realization.dynamics.neuromodulator.crosstalk_structure"]
