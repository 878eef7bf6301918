"""Fused kernels (Numba) against the NumPy reference path and independent loops.

Every optimised path keeps a pure NumPy path (``NEUROSIM_NUMBA=0``); these
tests run both and require float64 agreement (exact where the kernel keeps
NumPy's order of operations, else to 1e-12), and check the math itself
against slow, obviously correct loops / einsum.
"""

import numpy as np
import pytest

from neurosim.core import kernels
from neurosim.core.backend import Backend
from neurosim.model.layers import Dense
from neurosim.model.nonlinearity import Gate

pytestmark = pytest.mark.filterwarnings("ignore::numba.NumbaPerformanceWarning")


@pytest.fixture(params=["numba", "numpy"])
def path(request, monkeypatch):
    monkeypatch.setenv("NEUROSIM_NUMBA", "1" if request.param == "numba" else "0")
    return request.param


def test_adam_numba_matches_numpy(rng, monkeypatch):
    shape = (3, 5, 7)
    p0, g = rng.standard_normal(shape), rng.standard_normal(shape)
    m0, v0 = rng.standard_normal(shape) * 0.1, rng.random(shape) * 0.1
    out = {}
    for flag in ("1", "0"):
        monkeypatch.setenv("NEUROSIM_NUMBA", flag)
        p, m, v = p0.copy(), m0.copy(), v0.copy()
        kernels.adam_update(p, g, m, v, 0.9, 0.999, 1e-8, 3e-4 / 0.1, np.sqrt(1 - 0.999))
        out[flag] = (p, m, v)
    for a, b in zip(out["1"], out["0"]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    # independent formula (Kingma & Ba, bias-corrected)
    m = 0.9 * m0 + 0.1 * g
    v = 0.999 * v0 + 0.001 * g * g
    p = p0 - 3e-4 / 0.1 * m / (np.sqrt(v) / np.sqrt(1 - 0.999) + 1e-8)
    np.testing.assert_allclose(out["1"][0], p, rtol=1e-12)


@pytest.mark.parametrize("shape,tshape", [((6, 4, 9), (4, 9)), ((5, 3, 4, 2, 3), (3, 4, 1, 1))])
def test_gate_numba_exact_and_correct(rng, shape, tshape, monkeypatch):
    h = rng.standard_normal(shape)
    t = rng.choice([-1.0, 1.0], size=tshape)
    a, G = kernels.gate(h, t)
    a0, G0 = kernels.gate_reference(h, t)
    assert G.shape == G0.shape == (shape[0], 1) + shape[2:]
    np.testing.assert_array_equal(G, G0)
    np.testing.assert_array_equal(a, a0)
    # slow loop: G[b, u] = Θ(Σ_μ t[μ, u] h[b, μ, u])
    tt = np.broadcast_to(t, shape[1:]).reshape(shape[1], -1)
    hb = h.reshape(shape[0], shape[1], -1)
    for b in range(shape[0]):
        for u in range(hb.shape[2]):
            s = sum(tt[k, u] * hb[b, k, u] for k in range(shape[1]))
            assert G.reshape(shape[0], -1)[b, u] == (1.0 if s >= 0 else 0.0)
            assert np.all(a.reshape(hb.shape)[b, :, u] == hb[b, :, u] * (s >= 0))
    # Gate nonlinearity uses it, on both paths
    monkeypatch.setenv("NEUROSIM_NUMBA", "0")
    a1, G1 = Gate()(h, t)
    np.testing.assert_array_equal(a1, a)
    np.testing.assert_array_equal(G1, G)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gate_channel_last_layout(rng, dtype):
    """A conv output is a (B, K, C, H, W) view of channel-last memory (B, H, W, K, C):
    the gate runs on that layout directly and equals the reference bit for bit."""
    B, K, C, H, W = 3, 4, 6, 5, 2
    h = rng.standard_normal((B, H, W, K, C)).astype(dtype).transpose(0, 3, 4, 1, 2)
    t = rng.choice([-1.0, 1.0], size=(K, C, 1, 1)).astype(dtype)
    assert not h.flags.c_contiguous
    a, G = kernels.gate(h, t)
    a0, G0 = kernels.gate_reference(h, t)
    assert G.shape == G0.shape == (B, 1, C, H, W) and a.shape == h.shape
    np.testing.assert_array_equal(G, G0)
    np.testing.assert_array_equal(a, a0)
    assert a.transpose(0, 3, 4, 1, 2).flags.c_contiguous  # layout kept for the next conv
    s = np.einsum("bkchw,kc->bchw", h.astype(np.float64), t[:, :, 0, 0].astype(np.float64))
    np.testing.assert_array_equal(G[:, 0], (s >= 0).astype(dtype))


def test_gate_float32_numba_matches_numpy(rng):
    h = rng.standard_normal((8, 10, 33)).astype(np.float32)
    t = rng.choice([-1.0, 1.0], size=(10, 33)).astype(np.float32)
    a, G = kernels.gate(h, t)
    a0, G0 = kernels.gate_reference(h, t)
    assert a.dtype == np.float32 and G.dtype == np.float32
    np.testing.assert_array_equal(G, G0)
    np.testing.assert_array_equal(a, a0)


def test_contract_components(rng):
    e, a = rng.standard_normal((7, 4)), rng.standard_normal((7, 4, 11))
    P = kernels.contract_components(e, a)
    np.testing.assert_allclose(P, kernels.contract_components_reference(e, a), rtol=1e-12)
    np.testing.assert_allclose(P, np.einsum("bk,bkj->bj", e, a), rtol=1e-12)


@pytest.mark.parametrize("first", [True, False])
def test_dense_gevb_grads_both_paths(rng, path, first):
    """GEVB fast path (eq. 9) = grads with g[b,μ,i] = e[b,μ] G[b,i], on both paths,
    and = an explicit loop over the batch."""
    B, K, n_in, n = 6, 3, 5, 4
    L = Dense((n_in,), K, first=first, units=n)
    L.initialize(np.random.default_rng(1), "he", "first" if first else "hidden")
    a = rng.standard_normal((B, n_in) if first else (B, K, n_in))
    G = (rng.random((B, 1, n)) > 0.4).astype(float)
    e = rng.standard_normal((B, K))
    got = L.gevb_grads(a, G, e)
    g = e[:, :, None] * G
    ref = L.grads(a, g)
    for k in ("W", "b"):
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-12, atol=1e-14)
    # explicit loop over examples (independent of both)
    dW = np.zeros(L.params["W"].shape)
    for b in range(B):
        for mu in range(K):
            if first:
                dW[mu] += e[b, mu] * np.outer(G[b, 0], a[b])
            else:
                dW += e[b, mu] * np.outer(G[b, 0], a[b, mu])
    np.testing.assert_allclose(got["W"], dW, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got["b"], np.einsum("bk,bi->ki", e, G[:, 0]), rtol=1e-12)


def _train(monkeypatch, flag, rule):
    from neurosim import losses
    from neurosim.model.network import build_network
    from neurosim.optim import build_optimizer
    from neurosim.rules import build_rule

    monkeypatch.setenv("NEUROSIM_NUMBA", flag)
    be = Backend("cpu", "float64", seed=3)
    spec = {"vectorized": True, "layers": [{"type": "dense", "units": 12}, {"type": "dense", "units": 8}]}
    net = build_network(spec, be, (1, 3, 3), 4)
    r = build_rule(rule, net, be)
    opt = build_optimizer(net, {"name": "adam", "lr": 1e-2})
    data = np.random.default_rng(0)
    for _ in range(4):
        x = data.standard_normal((16, 1, 3, 3))
        y = data.integers(0, 4, 16)
        res = r.step(net, x, y, losses.cross_entropy)
        opt.step(res.grads)
    return {(i, k): p.copy() for i, k, p in net.parameters()}


@pytest.mark.parametrize("rule", ["gevb", "bp"])
def test_training_numba_equals_numpy(monkeypatch, rule):
    """A few Adam steps of a small VNN: Numba and pure-NumPy paths agree."""
    a = _train(monkeypatch, "1", rule)
    b = _train(monkeypatch, "0", rule)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-12, atol=1e-13)


def test_parallel_variants_match(rng, monkeypatch):
    """The multi-threaded kernels (used for large arrays) equal the serial ones."""
    monkeypatch.setattr(kernels, "PARALLEL_MIN", 0)
    h = rng.standard_normal((9, 4, 13))
    t = rng.choice([-1.0, 1.0], size=(4, 13))
    a, G = kernels.gate(h, t)
    a0, G0 = kernels.gate_reference(h, t)
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(G, G0)
    e = rng.standard_normal((9, 4))
    np.testing.assert_allclose(kernels.contract_components(e, h),
                               kernels.contract_components_reference(e, h), rtol=1e-12)
    p, g, m, v = (rng.standard_normal(50) for _ in range(4))
    v = np.abs(v)
    ref = [p.copy(), g, m.copy(), v.copy()]
    kernels.adam_update(p, g, m, v, 0.9, 0.999, 1e-8, 1e-3, 0.3)
    kernels.adam_update_numpy(*ref, 0.9, 0.999, 1e-8, 1e-3, 0.3)
    np.testing.assert_allclose(p, ref[0], rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("parallel", [False, True])
def test_adam_sets_subnormal_moments_to_zero(rng, monkeypatch, dtype, parallel):
    """Moments whose gradient stops decay to zero without passing through the subnormal
    numbers: the Numba kernel and the NumPy reference agree (the moments bit for bit), every moment is
    zero or normal, and the weights are bit for bit those of Adam without the flush."""
    monkeypatch.setattr(kernels, "PARALLEL_MIN", 0 if parallel else 1 << 60)
    tiny = np.finfo(dtype).tiny
    n = 5000
    p0 = rng.standard_normal(n).astype(dtype)
    g0 = (rng.standard_normal(n) * 1e-3).astype(dtype)
    m0 = np.zeros(n, dtype)
    v0 = np.zeros(n, dtype)
    v0[:10] = 50 * tiny  # second moments that reach the subnormals in a few steps too
    stop = rng.random(n) < 0.5  # units whose gradient stops after the first step
    steps = 900 if dtype == np.float32 else 7000  # 0.9**steps * 1e-4 < tiny
    out = {}
    for flag in ("1", "0"):
        monkeypatch.setenv("NEUROSIM_NUMBA", flag)
        p, m, v = p0.copy(), m0.copy(), v0.copy()
        for t in range(steps):
            g = np.where(stop, 0, g0).astype(dtype) if t else g0
            kernels.adam_update(p, g, m, v, 0.9, 0.999, 1e-8, 1e-3, 1.0)
            assert not np.any((m != 0) & (np.abs(m) < tiny))
            assert not np.any((v != 0) & (v < tiny))
        out[flag] = (p, m, v)
    for a, b in zip(out["1"][1:], out["0"][1:]):  # the moments bit for bit (the weight's
        assert a.tobytes() == b.tobytes()           # division is written differently)
    np.testing.assert_allclose(out["1"][0], out["0"][0], rtol=1e-4 if dtype == np.float32 else 1e-12,
                               atol=1e-5 if dtype == np.float32 else 1e-13)  # 900 or 7000 steps of rounding
    assert np.all(out["1"][1][stop] == 0) and np.all(out["1"][1][~stop] != 0)
    # the same steps without the flush (NumPy's order of operations): the same weights
    p, m, v = p0.copy(), m0.copy(), v0.copy()
    for t in range(steps):
        g = np.where(stop, 0, g0).astype(dtype) if t else g0
        m *= 0.9
        m += (1.0 - 0.9) * g
        v *= 0.999
        v += (1.0 - 0.999) * (g * g)
        p -= 1e-3 * m / (np.sqrt(v) / 1.0 + 1e-8)
    assert np.any((m != 0) & (np.abs(m) < tiny))  # the reference did pass through them
    np.testing.assert_array_equal(out["0"][0], p)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_parallel_variant_bit_identical(rng, dtype):
    """Adam runs its parallel (vectorized) variant from 4096 elements: it must give
    the serial loop's numbers bit for bit, so a run does not depend on layer sizes."""
    pytest.importorskip("numba")
    serial, parallel = kernels._numba_kernels()["adam"]
    p, g, m, v = (rng.standard_normal(kernels.PARALLEL_MIN_OF["adam"] + 7).astype(dtype)
                  for _ in range(4))
    v = np.abs(v)
    a = [x.copy() for x in (p, g, m, v)]
    b = [x.copy() for x in (p, g, m, v)]
    args = [dtype(s) for s in (0.9, 0.1, 0.999, 0.001, 1e-8, 3e-4, 1 / 0.3, np.finfo(dtype).tiny)]
    for _ in range(3):
        serial(*a, *args)
        parallel(*b, *args)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert kernels._kernel("adam", p.size) is parallel
    assert kernels._kernel("adam", 100) is serial


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, n_bin", [((3, 7, 4, 5), 7), ((4, 1, 3, 2), 9), ((1, 6, 5000), 6)])
@pytest.mark.parametrize("parallel", [False, True])
def test_relax_kernel_bit_identical_to_the_step_loop(rng, monkeypatch, dtype, shape, n_bin, parallel):
    """The circuit dynamics' relaxation filter: the Numba kernel equals the reference loop of
    timeline.relax bit for bit (float32 and float64; a target constant within segments or
    not; segments following each other without reset; more neurons than one chunk), and the
    loop is the recursion y_k = (1 - a) x_k + a y_{k-1}."""
    from neurosim.realizations.dynamics.timeline import relax

    monkeypatch.setattr(kernels, "PARALLEL_MIN", 0 if parallel else 1 << 60)
    x = rng.standard_normal(shape).astype(dtype)
    for a, init in ((0.8187307530779818, 1.0), (0.9048374180359595, 0), (0.3, 20.0)):
        monkeypatch.setenv("NEUROSIM_NUMBA", "1")
        y = relax(x, a, init, n_bin)
        assert kernels.relax(x, a, init, n_bin) is not None
        monkeypatch.setenv("NEUROSIM_NUMBA", "0")
        ref = relax(x, a, init, n_bin)
        assert y.dtype == ref.dtype == dtype and y.shape == ref.shape
        assert np.array_equal(y, ref)
        # the recursion itself, in float64 over the flattened steps
        steps = np.broadcast_to(x, (shape[0], n_bin) + shape[2:]).reshape((-1,) + shape[2:])
        prev, want = float(init), []
        for xk in steps.astype(np.float64):
            prev = (1 - a) * xk + a * prev
            want.append(prev)
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(ref.reshape(steps.shape), np.array(want), rtol=tol, atol=tol)
    # inputs the kernel does not take fall back to the loop
    assert kernels.relax(x, np.float64(0.5), 0.0, n_bin) is None
    assert kernels.relax(x, 0.5, np.float32(1.0), n_bin) is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("parallel", [False, True])
def test_relax_and_scan_flush_subnormal_values_to_zero(monkeypatch, dtype, parallel):
    """A decay that passes below the smallest normal number ends at (signed) zero instead of
    going through the subnormal numbers (slow arithmetic on many CPUs): in the Numba kernel
    and the NumPy loop alike, bit for bit, and only there — every normal value is the exact
    recursion's."""
    from neurosim.realizations.dynamics.timeline import relax, scan

    monkeypatch.setattr(kernels, "PARALLEL_MIN", 0 if parallel else 1 << 60)
    tiny = np.finfo(dtype).tiny
    n = 1100 if dtype == np.float64 else 150  # 0.5**n: far below tiny for both dtypes
    x = np.zeros((2, n, 3), dtype=dtype)
    x[0, 0] = (2.0, -2.0, 1.0)  # two decays from ±1 (a = 0.5), one from 0.5
    x[1, n - 1, 2] = 1.0  # a fresh input at the very end
    got = {}
    for numba in ("1", "0"):
        monkeypatch.setenv("NEUROSIM_NUMBA", numba)
        got[numba] = relax(x, 0.5, 0, n)
    assert got["1"].tobytes() == got["0"].tobytes()  # signed zeros included
    y = got["1"]
    assert not np.any((y != 0) & (np.abs(y) < tiny))
    exact = 0.5 ** np.arange(2 * n, dtype=np.float64)  # the decay from 1 at step 0
    normal = exact >= tiny
    flat = y.reshape(2 * n, 3)
    np.testing.assert_array_equal(flat[normal, 0], exact[normal].astype(dtype))
    np.testing.assert_array_equal(flat[normal, 1], -exact[normal].astype(dtype))
    assert np.all(flat[~normal, :2] == 0)
    assert np.signbit(flat[~normal, 1][0])  # the flushed negative value is -0 (then 0·x + -0·a)
    assert flat[-1, 2] == dtype(0.5)  # a normal value is kept after a flushed one
    # scan: y_k = a y_{k-1} + x_k, the same decay
    s = scan(x.reshape(2 * n, 3), 0.5)
    assert not np.any((s != 0) & (np.abs(s) < tiny))
    np.testing.assert_array_equal(s[normal, 0], 2 * exact[normal].astype(dtype))
    assert np.all(s[2 * exact < tiny, 0] == 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_first_dense_forward_equals_x_wt(rng, path, dtype):
    """The first dense layer computes W xᵀ and transposes it back (NumPy): the same
    h[b, μ, i] = Σ_j W[μ, i, j] x[b, j] + b[μ, i] as x Wᵀ + b and an explicit einsum."""
    B, K, n_in, n = 7, 3, 11, 5
    L = Dense((n_in,), K, first=True, units=n)
    L.initialize(np.random.default_rng(1), "he", "first")
    L.params = {"W": L.params["W"].astype(dtype),
                "b": rng.standard_normal(L.params["b"].shape).astype(dtype)}
    x = rng.standard_normal((B, n_in)).astype(dtype)
    h = L.forward(x)
    assert h.shape == (B, K, n) and h.flags.c_contiguous and h.dtype == dtype
    ref = (x @ L.params["W"].reshape(-1, n_in).T).reshape(B, K, n) + L.params["b"]
    tol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(h, ref, rtol=tol, atol=tol)
    ein = np.einsum("kij,bj->bki", L.params["W"].astype(np.float64), x.astype(np.float64))
    np.testing.assert_allclose(h, ein + L.params["b"], rtol=tol, atol=tol)
