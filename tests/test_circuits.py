"""Explicit-circuit realizations (grouped, temporal) against batched GEVB.

Exactness: with the exact settings the circuits must reproduce the batched
GEVB run's weights to 1e-10 (float64, SGD, same seed); with the inexact ones
they must measurably differ.
"""

from __future__ import annotations

import numpy as np
import pytest

from neurosim.core.options import ConfigError
from neurosim.protocol import validate_protocol
from neurosim.train import Run


def proto(realization=None, gating="paired", sign="nonnegative", lr=0.05, opt="sgd", loss="cross_entropy",
          traj=None, layers=(12, 8), out=None, **train):
    raw = {
        "name": "t",
        "circuit": {"vectorized": True, "sign": sign, "init": "on_off", "gating": gating,
                    "layers": [{"type": "dense", "units": n} for n in layers]},
        "realization": realization or {"type": "batched"},
        "rule": {"name": "gevb"},
        "loss": loss,
        "data": {"dataset": "synthetic", "options": {"n_train": 64, "n_test": 32, "shape": [1, 4, 4]}},
        "optimizer": {"name": opt, "lr": lr},
        "training": {"epochs": 1, "batch_size": 16, "eval_every": 1, **train},
        "seed": 3,
        "dtype": "float64",
        "recording": {"out": out or "unused.zarr"},
    }
    if traj is not None:
        raw["recording"]["trajectories"] = traj
    return validate_protocol(raw)


def train_steps(p, n_steps, seed_data=0):
    """Train ``n_steps`` mini-batches (no store); returns the Run."""
    r = Run(p)
    rng = np.random.default_rng(seed_data)
    for _ in range(n_steps):
        idx = rng.choice(r.exp.x_train.shape[0], 16, replace=False)
        r.exp.realization.step(r.exp.x_train[idx], r.exp.y_train[idx])
    return r


def max_diff(r1, r2):
    return max(float(np.abs(p1 - r2.exp.net.layers[i].params[n]).max())
               for i, n, p1 in r1.exp.net.parameters())


# ----------------------------------------------------------------------------
def test_grouped_complete_relaxation_is_batched_gevb():
    ref = train_steps(proto(), 6)
    g = train_steps(proto({"type": "grouped", "relaxation": {"rate": 1.0, "schedule": "every_step"}}), 6)
    assert max_diff(ref, g) < 1e-10
    # the circuit's synapses equal the shared weights and predictions agree
    real = g.exp.realization
    for i in real.layers[1:]:
        assert np.abs(real.w(i) - g.exp.net.layers[i].params["W"][None]).max() < 1e-10
    assert np.abs(real.predict(g.exp.x_test, 100) - ref.exp.net.predict(ref.exp.x_test, 100)).max() < 1e-9
    # nonnegativity per synapse actually mattered (some clamp was active)
    assert max_diff(ref, train_steps(proto(sign="mixed"), 6)) > 1e-6


def test_grouped_without_relaxation_diverges():
    ref = train_steps(proto(), 6)
    g = train_steps(proto({"type": "grouped", "relaxation": {"schedule": "never"}}), 6)
    assert max_diff(ref, g) > 1e-4
    assert g.exp.realization.synapse_spread().min() > 1e-3
    # partial relaxation is in between
    h = train_steps(proto({"type": "grouped", "relaxation": {"rate": 0.5}}), 6)
    assert 0 < h.exp.realization.synapse_spread().max() < g.exp.realization.synapse_spread().max()


def test_grouped_relaxation_schedules():
    per_epoch = {"type": "grouped", "relaxation": {"schedule": "per_epoch"}}
    assert train_steps(proto(per_epoch), 3).exp.realization.synapse_spread().min() > 1e-4
    assert train_steps(proto(per_epoch), 4).exp.realization.synapse_spread().max() < 1e-12  # 4 steps/epoch
    every3 = {"type": "grouped", "relaxation": {"schedule": "every_n", "every": 3}}
    assert train_steps(proto(every3), 3).exp.realization.synapse_spread().max() < 1e-12
    assert train_steps(proto(every3), 4).exp.realization.synapse_spread().min() > 1e-4


def test_grouped_per_synapse_update_matches_loop():
    """Δw[μ,i,j] = −e_μ a[j,μ] G_i per synapse (×K), against explicit loops."""
    r = Run(proto({"type": "grouped", "relaxation": {"schedule": "never"}}, layers=(6,)))
    real = r.exp.realization
    x, y = r.exp.x_train[:5], r.exp.y_train[:5]
    logits, states = real._forward(x)
    _, e = r.exp.loss_fn(logits, y)
    grads = real._grads(states, e)
    i = real.layers[1]  # readout (shared, K copies)
    a_in = states[1][0]  # (K, B, n)
    K, B, n = a_in.shape
    ref = np.zeros((K, 1, n))
    for mu in range(K):
        for b in range(B):
            for j in range(n):
                ref[mu, 0, j] += K * e[b, mu] * a_in[mu, b, j]
    assert np.allclose(grads[(i, "W")], ref, atol=1e-13)
    G = states[0][3]
    ref1 = np.zeros_like(grads[(0, "W")])
    xb = x.reshape(B, -1)
    for mu in range(K):
        for b in range(B):
            ref1[mu] += e[b, mu] * np.outer(G[b], xb[b])
    assert np.allclose(grads[(0, "W")], ref1, atol=1e-13)


def test_temporal_full_gating_is_batched_gevb():
    ref = train_steps(proto(), 6)
    t = train_steps(proto({"type": "temporal", "gating": "full", "plasticity": "end_of_example"}), 6)
    assert max_diff(ref, t) < 1e-10


def test_temporal_first_bin_is_batched_first_bin_network():
    ref = train_steps(proto(gating="first_bin"), 6)
    t = train_steps(proto({"type": "temporal", "gating": "first_bin"}, gating="first_bin"), 6)
    assert max_diff(ref, t) < 1e-10
    # first_bin on a network with full (paired) gating vectors is a different network
    t2 = train_steps(proto({"type": "temporal", "gating": "first_bin"}), 6)
    assert max_diff(train_steps(proto(), 6), t2) > 1e-4


def test_temporal_per_bin_and_external_and_online():
    ref = train_steps(proto(), 4)
    pb = train_steps(proto({"type": "temporal", "plasticity": "per_bin"}), 4)
    d = max_diff(ref, pb)
    assert 1e-8 < d < 0.5  # close to GEVB (small lr) but not identical: weights move within the example
    ext = train_steps(proto({"type": "temporal", "gating": "external"}), 4)
    assert max_diff(ref, ext) > 1e-4
    # with MSE, online per-bin errors and end-of-example plasticity are exactly batched GEVB on MSE
    ref_mse = train_steps(proto(loss="mse"), 4)
    on = train_steps(proto({"type": "temporal", "error_timing": "mse_online"}, loss="mse"), 4)
    assert max_diff(ref_mse, on) < 1e-10


def test_temporal_per_bin_small_lr_limit():
    """Per-bin plasticity → end-of-example plasticity as η → 0 (difference O(η²); mixed sign,
    since a clamp at 0 within the example is an O(η) difference)."""
    diffs = []
    for lr in (1e-2, 1e-3):
        a = train_steps(proto({"type": "temporal", "plasticity": "per_bin"}, lr=lr, sign="mixed"), 1)
        b = train_steps(proto({"type": "temporal"}, lr=lr, sign="mixed"), 1)
        diffs.append(max_diff(a, b))
    assert diffs[1] < diffs[0] / 30


def test_options_are_validated():
    with pytest.raises(ConfigError, match="realization.relaxation.schedul"):
        proto({"type": "grouped", "relaxation": {"schedul": "every_n"}})
    with pytest.raises(ConfigError, match="gating"):
        proto({"type": "temporal", "gating": "sometimes"})
    with pytest.raises(ConfigError, match="recording.trajectories.evry"):
        proto({"type": "grouped"}, traj={"evry": 3})
    with pytest.raises(ValueError, match="per_bin"):
        Run(proto({"type": "temporal", "plasticity": "per_bin"}, opt="adam"))


def test_rejects_non_dense_layers():
    from neurosim.model import layers as layermod
    from neurosim.realizations.circuit import check_network

    p = proto({"type": "grouped"})
    r = Run(p)

    class Fake(layermod.Dense):
        kind = "conv"

    r.exp.net.layers[0].__class__ = Fake
    with pytest.raises(ValueError, match="dense"):
        check_network(r.exp.net, "grouped")


# ----------------------------------------------------------------------------
def _record(realization, tmp_path, name, **kw):
    import xarray as xr

    from neurosim.train import run_protocol

    out = tmp_path / f"{name}.zarr"
    p = proto(realization, out=str(out),
              traj={"every": 2, "samples": 3, "units": 5, "snapshot_every": 3, "chunk": 2,
                    "synapses": 7}, **kw)
    run_protocol(p)
    return xr.open_zarr(str(out))


def test_recorded_neuromodulator_structure(tmp_path):
    g = _record({"type": "grouped", "time_bins": 4, "relaxation": {"schedule": "every_n", "every": 3}},
                tmp_path, "g")
    t = _record({"type": "temporal"}, tmp_path, "t")
    for ds in (g, t):
        assert ds["neuromodulator_bin_mean"].dims == ("sim_step", "probe", "time_bin", "channel")
        assert ds.sizes["sim_step"] == 2  # 4 steps, every 2 (flushed at the checkpoint)
        assert ds.sizes["snapshot"] == 1
        assert ds["update_cosine"].dims == ("sim_step", "circuit_layer")
    nm = g["neuromodulator_bin_mean"].values
    assert nm.shape[2] == 4 and nm.shape[3] == 10
    assert np.all(nm == nm[:, :, :1, :])  # grouped: constant across time bins
    assert np.abs(nm - nm[:, :, :, :1]).max() > 1e-3  # ... and heterogeneous across channels
    nt = t["neuromodulator_bin_mean"].values
    assert np.all(nt == nt[:, :, :, :1])  # temporal: constant across channels within a bin
    assert np.abs(nt - nt[:, :, :1, :]).max() > 1e-3  # ... and heterogeneous across bins
    assert float(g["neuromod_temporal_var"].max()) < 1e-20 and float(g["neuromod_spatial_var"].min()) > 0
    assert float(t["neuromod_spatial_var"].max()) < 1e-20 and float(t["neuromod_temporal_var"].min()) > 0
    # the per-example neuromodulator of the temporal circuit is softmax − onehot: sums to 0
    assert np.abs(nt[:, :, :, 0].sum(axis=2)).max() < 1e-9
    # temporal full gating is GEVB: cosine 1; grouped without relaxation between records is not
    assert np.allclose(t["update_cosine"].values, 1.0, atol=1e-9)
    assert float(g["synapse_spread"].max()) > 0
    assert g["synapse_weight_2"].dims == ("snapshot", "synapse_2", "component")
    assert g["circuit_activity_1"].dims == ("sim_step", "probe", "time_bin", "component", "traj_unit_1")
    assert t["circuit_gate_1"].dims == ("sim_step", "probe", "time_bin", "traj_unit_1")
    # activities are gated pre-activations
    h, a, G = (t[f"circuit_{k}_1"].values for k in ("h", "activity", "gate"))
    assert np.allclose(a, h * G)


def test_grouped_checkpoint_resume_is_exact(tmp_path):
    import xarray as xr

    from neurosim.train import run_protocol

    r_spec = {"type": "grouped", "relaxation": {"schedule": "never"}}
    tr = {"every": 2, "snapshot_every": 3, "chunk": 4}
    full = tmp_path / "full.zarr"
    run_protocol(proto(r_spec, out=str(full), opt="adam", lr=0.01, max_steps=6, traj=tr, epochs=2))
    part = tmp_path / "part.zarr"
    run_protocol(proto(r_spec, out=str(part), opt="adam", lr=0.01, max_steps=3, traj=tr, epochs=2))
    p2 = proto(r_spec, out=str(part), opt="adam", lr=0.01, max_steps=6, traj=tr, epochs=2)
    run_protocol(p2, resume=True)
    a, b = xr.open_zarr(str(full)), xr.open_zarr(str(part))
    assert list(b["sim_step"].values) == [2, 4, 6] and list(b["snapshot"].values) == [3, 6]
    for k in ("synapse_weight_1", "neuromodulator_bin_mean", "circuit_h_1", "synapse_spread"):
        assert np.array_equal(a[k].values, b[k].values, equal_nan=True), k
    from neurosim.recording import Recorder

    s1, _ = Recorder(full).load_checkpoint()
    s2, _ = Recorder(part).load_checkpoint()
    for k in s1:
        if k.startswith(("real.syn", "net.")):
            assert np.array_equal(s1[k], s2[k]), k


def test_temporal_external_gates_ignore_preactivations():
    """External gating: G = Θ(r·x), independent of the weights; ON/OFF partners complementary."""
    r = Run(proto({"type": "temporal", "gating": "external"}))
    real = r.exp.realization
    x = r.exp.x_train[:20]
    _, s1 = real._present(x)
    for _, _, p in r.exp.net.parameters():
        p *= -1.5
    _, s2 = real._present(x)
    for a, b in zip(s1[:-1], s2[:-1]):
        assert np.array_equal(a[3], b[3])
        G = a[3]
        assert np.all(G[:, 0::2] + G[:, 1::2] == 1)
    # and the pre-activations did change
    assert np.abs(s1[0][1] - s2[0][1]).max() > 1e-3
