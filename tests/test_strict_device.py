"""The device (CuPy) path without a GPU: every training path on the strict device.

``tests/strict_device.py`` stands in for CuPy: NumPy arithmetic, but its arrays refuse an
implicit crossing to the host (``numpy.asarray``, NumPy functions on them, mixing with NumPy
arrays) and count every host synchronisation and copy.  On it:

* the device itself refuses and counts what CuPy refuses and what makes CuPy wait;
* the CuPy kernels (Adam, the gate, the GEVB contraction), given their arguments as CuPy
  would check them, equal the NumPy reference, and the Numba kernels are never called;
* every training path (batched FC, conv, LC, pooling and dropout under GEVB, BP, FA, DFA, IFA,
  sign symmetry and node perturbation; the grouped and temporal circuits; the circuits in time
  with rate, Poisson and LIF neurons) takes its steps with no host synchronisation and no copy
  either way, evaluates, gives a host checkpoint, and computes the CPU's numbers (float64)
  where its random numbers are not drawn on the device;
* the training loop synchronises once per guard period, and otherwise only while recording
  and at the end of an epoch; a run resumed from a checkpoint equals the uninterrupted run.
"""

from __future__ import annotations

import numpy as np
import pytest

from neurosim.core import kernels
from neurosim.core.backend import Backend, array_module, to_host
from tests import strict_paths as sp
from tests.strict_device import (
    D2H,
    H2D,
    LOG,
    SYNC,
    HostSyncError,
    StrictArray,
    no_sync,
    strict_gpu,
    xp,
)


def _no_numba(name, size):
    raise AssertionError(f"the Numba kernel {name!r} ran on the device path")


# ----------------------------------------------------------------------------------------------
# the strict device


def test_refuses_implicit_host_conversion():
    a = xp.asarray(np.arange(6.0))
    host = np.ones(6)
    for f in (np.asarray, np.exp, np.sum, lambda v: np.concatenate([v, v]),
              lambda v: v + host, lambda v: host * v, lambda v: xp.exp(host),
              lambda v: xp.stack([v, host]), lambda v: v.__array__()):
        with pytest.raises(TypeError):
            f(a)
    b = a * np.float32(2) + 1.0  # host scalars are fine
    assert type(b) is StrictArray and array_module(b) is np  # (no stand-in active here)


def test_counts_syncs_and_copies():
    m = LOG.mark()
    a = xp.asarray(np.arange(6.0))
    assert (LOG.count(H2D, m), LOG.count(SYNC, m)) == (1, 0)
    s = a.sum()
    assert type(s) is StrictArray and s.ndim == 0  # a 0-d device array, as CuPy's
    b = xp.exp(a)[1:] * s
    assert LOG.count(SYNC, m) == 0 and type(b) is StrictArray
    assert float(s) == 15.0 and bool(s > 0) and s.item() == 15.0 and a.tolist()[1] == 1.0
    assert int(a[2]) == 2 and f"{s:.1f}" == "15.0"
    assert a[a > 2].shape == (3,) and xp.flatnonzero(a).shape == (5,)  # data-dependent shapes
    assert LOG.count(SYNC, m) == 8
    assert [w.split(" at ")[1].split(":")[0] for w in LOG.where(SYNC, m)] == \
        ["test_strict_device.py"] * 8
    with strict_gpu():
        assert isinstance(to_host(a), np.ndarray) and LOG.count(D2H, m) == 1
    with no_sync(), pytest.raises(HostSyncError, match="float"):
        float(s)


def test_backend_gpu_is_the_strict_device():
    with strict_gpu():
        be = Backend("gpu", "float64")
        assert be.is_gpu and be.xp is xp
        a = be.asarray(np.ones(3))
        assert array_module(a) is xp and type(be.to_host(a)) is np.ndarray
        assert be.describe()["gpu"].startswith("strict")
    assert Backend("cpu").xp is np


def test_cupy_kernels_on_the_strict_device_equal_numpy(rng, monkeypatch):
    monkeypatch.setattr(kernels, "_kernel", _no_numba)
    p, g, m = (rng.standard_normal((5, 7)) for _ in range(3))
    v = rng.random((5, 7))
    host = [x.copy() for x in (p, g, m, v)]
    dev = [xp.asarray(x) for x in (p, g, m, v)]
    with strict_gpu():
        kernels.adam_update(*dev, 0.9, 0.999, 1e-8, 3e-3, 0.7)
        kernels.adam_update_numpy(*host, 0.9, 0.999, 1e-8, 3e-3, 0.7)
        for d, h in zip(dev, host):
            np.testing.assert_allclose(to_host(d), h, rtol=1e-13, atol=1e-15)
        # the gate over a dense (B, K, n) and a conv (B, K, C, H, W) layer, and the contraction
        for h, t in (((6, 4, 5), (4, 5)), ((3, 4, 2, 3, 3), (4, 2, 1, 1))):
            h, t = rng.standard_normal(h), rng.choice([-1.0, 1.0], size=t)
            a, G = kernels.gate(xp.asarray(h), xp.asarray(t))
            a0, G0 = kernels.gate_reference(h, t)
            np.testing.assert_array_equal(to_host(G), G0)
            np.testing.assert_allclose(to_host(a), a0, rtol=1e-15)
        e, x = rng.standard_normal((6, 4)), rng.standard_normal((6, 4, 5))
        np.testing.assert_allclose(to_host(kernels.contract_components(xp.asarray(e), xp.asarray(x))),
                                   kernels.contract_components_reference(e, x), rtol=1e-13)
        # the checks CuPy makes: device arrays only, one dtype per type placeholder
        k = kernels._get_cupy_adam(xp)
        with pytest.raises(TypeError):
            k(g, 0.9, 0.99, 1e-8, 1e-3, 1.0, *dev[:1], *dev[2:])
        with pytest.raises(TypeError):
            k(dev[1].astype(np.float32), 0.9, 0.99, 1e-8, 1e-3, 1.0, dev[0], dev[2], dev[3])


# ----------------------------------------------------------------------------------------------
# every training path


@pytest.mark.parametrize("name", list(sp.PATHS))
def test_path_runs_on_the_device_without_host_syncs(name, tmp_path, monkeypatch):
    p = sp.protocol(name, tmp_path / "unused.zarr", steps=4)
    with monkeypatch.context() as mp, strict_gpu():
        mp.setattr(kernels, "_kernel", _no_numba)
        exp, per_step = sp.steps(p, "gpu")
        for s, ev in enumerate(per_step, 1):
            assert ev == [], f"step {s}: {ev}"  # no sync and no copy, either way
        logits = exp.realization.predict(exp.x_test, 8)
        assert type(logits) is StrictArray
        state = exp.state()  # a checkpoint: host arrays only
        assert not any(type(v) is StrictArray for v in state.values())
        exp.load_state(state)
        params = {(i, k): to_host(w) for i, k, w in exp.net.parameters()}
        logits = to_host(logits)
    cpu, _ = sp.steps(p, "cpu")
    assert all(np.isfinite(w).all() for w in params.values())
    if sp.same_numbers_as_cpu(name):
        for i, k, w in cpu.net.parameters():
            np.testing.assert_allclose(params[i, k], w, rtol=1e-10, atol=1e-13, err_msg=f"{i} {k}")
        np.testing.assert_allclose(logits, cpu.realization.predict(cpu.x_test, 8), rtol=1e-10, atol=1e-13)


def test_training_loop_syncs_in_the_guard_recording_and_epoch_end_only(tmp_path):
    """6 steps, the guard every 3 (steps 3 and 6), metrics and weights recorded at steps 1
    and 4, the progress display on: steps 2 and 5 neither synchronise nor copy."""
    import io

    from neurosim.commands.common import Progress

    p = sp.protocol("fc_vnn_gevb", tmp_path / "a.zarr", **sp.recording("fc_vnn_gevb", 4))
    log = io.StringIO()  # the progress display of `neurosim run` writing to a log file
    _, s, steps = sp.run_strict(p, guard_every=3, progress=Progress(1, stream=log))
    assert "epoch 1" in log.getvalue()
    assert s.steps == 6 and sorted(steps) == [1, 2, 3, 4, 5, 6]
    for k in (2, 5):
        assert steps[k] == [], steps[k]
    guard = [e for e in steps[3] if e[0] == SYNC]
    assert len(guard) == 1 and guard[0][1] == "float()" and guard[0][2].startswith("neurosim/train.py")
    assert [e for e in steps[3] if e[0] != SYNC] == []
    for k in (1, 4):  # the metrics observer reads and copies
        assert all(e[2].startswith(("neurosim/metrics", "neurosim/recording")) for e in steps[k])
        assert any(e[0] == D2H for e in steps[k])


@pytest.mark.parametrize("name", ["cnn_maxpool_dropout_np_dfa", "dynamics_poisson"])
def test_resume_on_the_device_equals_the_uninterrupted_run(name, tmp_path):
    """Noise, dropout masks and spikes drawn on the device are keyed by the step: a run cut
    after 2 of 4 steps and resumed from its checkpoint ends with the same weights."""
    p = sp.protocol(name, tmp_path / "cut.zarr", steps=4)
    with strict_gpu():
        full, _ = sp.steps(p, "gpu")  # the 4 steps as the loop takes them, without a store
        full = {(i, k): to_host(w) for i, k, w in full.net.parameters()}
    sp.run_strict(sp.protocol(name, tmp_path / "cut.zarr", steps=4, training={"max_steps": 2}))
    resumed, s, steps = sp.run_strict(p, resume=True)
    assert s.steps == 4 and sorted(steps) == [3, 4]
    for i, k, w in resumed.exp.net.parameters():
        np.testing.assert_array_equal(resumed.exp.backend.to_host(w), full[i, k], err_msg=f"{i} {k}")
