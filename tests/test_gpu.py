"""GPU (CuPy) results equal CPU (NumPy) results in float64 on small networks.

Run on a CUDA machine with ``pip install -e ".[gpu,test]"`` and
``python -m pytest -m gpu``; everywhere else these tests skip with a reason.
Tolerances are 1e-9 relative: cuBLAS sums in a different order than
OpenBLAS, everything else is the same arithmetic.
"""

import numpy as np
import pytest

from neurosim.core.backend import Backend, cupy_available

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not cupy_available(), reason="needs CuPy and a CUDA GPU")]

RTOL, ATOL = 1e-9, 1e-11


def _close(gpu, cpu, what=""):
    from neurosim.core.backend import to_host

    np.testing.assert_allclose(to_host(gpu), cpu, rtol=RTOL, atol=ATOL, err_msg=what)


def test_adam_kernel_gpu_equals_cpu(rng):
    import cupy

    from neurosim.core import kernels

    p, g, m = (rng.standard_normal((7, 33)) for _ in range(3))
    v = rng.random((7, 33))
    host = [a.copy() for a in (p, g, m, v)]
    dev = [cupy.asarray(a) for a in (p, g, m, v)]
    kernels.adam_update(*dev, 0.9, 0.999, 1e-8, 3e-4, 0.05)
    kernels.adam_update_numpy(*host, 0.9, 0.999, 1e-8, 3e-4, 0.05)
    for name, d, h in zip("pgmv", dev, host):
        _close(d, h, name)


def test_gate_and_contract_gpu_equal_cpu(rng):
    import cupy

    from neurosim.core import kernels

    h = rng.standard_normal((6, 4, 3, 5, 5))
    t = rng.choice([-1.0, 1.0], size=(4, 3, 1, 1))
    a, G = kernels.gate(cupy.asarray(h), cupy.asarray(t))
    a0, G0 = kernels.gate(h, t)
    np.testing.assert_array_equal(cupy.asnumpy(G), G0)
    _close(a, a0, "gate")
    e = rng.standard_normal((6, 4))
    hf = h.reshape(6, 4, -1)
    _close(kernels.contract_components(cupy.asarray(e), cupy.asarray(hf)),
           kernels.contract_components(e, hf), "contract")


def _train(device, rule, vectorized, layers, in_shape=(1, 6, 6), steps=3):
    from neurosim import losses
    from neurosim.model.network import build_network
    from neurosim.optim import build_optimizer
    from neurosim.rules import build_rule

    be = Backend(device, "float64", seed=11)
    spec = {"vectorized": vectorized, "layers": layers}
    if not vectorized:
        spec.update(sign="mixed", init="he")
    net = build_network(spec, be, in_shape, 4)
    r = build_rule(rule, net, be)
    opt = build_optimizer(net, {"name": "adam", "lr": 1e-2})
    data = np.random.default_rng(2)
    out = []
    for _ in range(steps):
        x = be.asarray(data.standard_normal((16,) + in_shape))
        y = be.xp.asarray(data.integers(0, 4, 16))
        res = r.step(net, x, y, losses.cross_entropy)
        out.append((float(res.loss), {k: be.to_host(g) for k, g in res.grads.items()}))
        opt.step(res.grads)
    params = {(i, k): be.to_host(p) for i, k, p in net.parameters()}
    return out, params


DENSE = [{"type": "dense", "units": 12}, {"type": "dense", "units": 8}]


@pytest.mark.parametrize("rule,vectorized", [("gevb", True), ("bp", True), ("fa", True),
                                             ("dfa", False), ("bp", False)])
def test_dense_training_gpu_equals_cpu(rule, vectorized):
    gpu_steps, gpu_params = _train("gpu", rule, vectorized, DENSE)
    cpu_steps, cpu_params = _train("cpu", rule, vectorized, DENSE)
    for (lg, gg), (lc, gc) in zip(gpu_steps, cpu_steps):
        assert lg == pytest.approx(lc, rel=1e-9)
        for k in gc:
            _close(gg[k], gc[k], f"grad {k}")
    for k in cpu_params:
        _close(gpu_params[k], cpu_params[k], f"param {k}")


def test_conv_training_gpu_equals_cpu():
    """A conv VNN trained on the GPU = on the CPU (GEVB and BP)."""
    layers = [{"type": "conv2d", "channels": 4, "kernel": 3, "stride": 1, "padding": 1},
              {"type": "dense", "units": 8}]
    for rule in ("gevb", "bp"):
        gpu_steps, gpu_params = _train("gpu", rule, True, layers, in_shape=(2, 6, 6), steps=2)
        cpu_steps, cpu_params = _train("cpu", rule, True, layers, in_shape=(2, 6, 6), steps=2)
        for k in cpu_params:
            _close(gpu_params[k], cpu_params[k], f"{rule} param {k}")


def test_run_end_to_end_gpu_equals_cpu(tmp_path):
    """``neurosim run --device gpu``: the recorded errors and weights equal the CPU run's."""
    import xarray as xr

    from neurosim.protocol import validate_protocol
    from neurosim.train import run_protocol

    def proto(device):
        return validate_protocol({
            "name": f"gpu_{device}",
            "circuit": {"vectorized": True, "layers": DENSE},
            "rule": {"name": "gevb"},
            "data": {"dataset": "synthetic", "options": {"n_train": 96, "n_test": 32}},
            "training": {"epochs": 2, "batch_size": 32, "eval_every": 1},
            "dtype": "float64", "device": device,
            "recording": {"out": str(tmp_path / f"{device}.zarr"), "weights": True},
        })

    s_gpu = run_protocol(proto("gpu"), device="gpu")
    s_cpu = run_protocol(proto("cpu"), device="cpu")
    assert s_gpu.steps == s_cpu.steps
    g = xr.open_zarr(s_gpu.store)
    c = xr.open_zarr(s_cpu.store)
    np.testing.assert_allclose(g["train_loss"].values, c["train_loss"].values, rtol=1e-9)
    np.testing.assert_array_equal(g["test_error"].values, c["test_error"].values)
    for v in c.data_vars:
        if v.startswith("W_"):
            np.testing.assert_allclose(g[v].values, c[v].values, rtol=RTOL, atol=ATOL)


def test_a_loaded_checkpoint_predicts_on_the_gpu_as_on_the_cpu(tmp_path):
    """neurosim.load(store, device="gpu"): the same logits as on the CPU (float64 run)."""
    import neurosim

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(120, 12)), rng.integers(0, 3, 120)
    proto = {"name": "g", "circuit": {"layers": [{"type": "dense", "units": 8}]}, "rule": {"name": "gevb"},
             "training": {"epochs": 2, "batch_size": 20, "eval_every": 1}, "dtype": "float64"}
    neurosim.run(proto, out=tmp_path / "g.zarr", data=((x[:80], y[:80]), (x[80:], y[80:])), progress=False)
    cpu = neurosim.load(tmp_path / "g.zarr").predict(x)
    gpu = neurosim.load(tmp_path / "g.zarr", device="gpu")
    assert gpu.experiment.backend.is_gpu
    np.testing.assert_allclose(gpu.predict(x), cpu, rtol=1e-10, atol=1e-12)
