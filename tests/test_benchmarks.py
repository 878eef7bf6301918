"""The benchmark suite compares like with like: the plain-PyTorch reference
computes the same update as neurosim (float64), and the analytic FLOP count
matches a direct count for the FC MNIST VNN."""

import numpy as np
import pytest

from benchmarks import core


def _small(rule, vectorized=True):
    from neurosim.core.backend import Backend
    from neurosim.model.network import build_network
    from neurosim.rules import build_rule

    be = Backend("cpu", "float64", seed=5)
    spec = {"vectorized": vectorized, "layers": [{"type": "dense", "units": 10},
                                                 {"type": "dense", "units": 6}]}
    if not vectorized:
        spec.update(sign="mixed", init="he")
    net = build_network(spec, be, (1, 3, 3), 4)
    return be, net, build_rule(rule, net, be)


@pytest.mark.parametrize("rule,vectorized", [("gevb", True), ("bp", True), ("dfa", False),
                                             ("bp", False)])
def test_torch_reference_equals_neurosim(rule, vectorized):
    torch = pytest.importorskip("torch")
    from benchmarks.torch_ref import TorchDenseNet
    from neurosim import losses

    be, net, r = _small(rule, vectorized)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 1, 3, 3)), rng.integers(0, 4, 8)
    res = r.step(net, x, y, losses.cross_entropy)
    tnet = TorchDenseNet(net, r, rule)
    tg = tnet.gradients(torch.tensor(x), torch.tensor(y))
    for pos, i in enumerate(net.weight_layers):
        for k in ("W", "b"):
            np.testing.assert_allclose(tg[(pos, k)].detach().numpy(), res.grads[(i, k)],
                                       rtol=1e-10, atol=1e-12, err_msg=f"{rule} layer {i} {k}")



@pytest.mark.parametrize("rule", ["gevb", "bp"])
def test_torch_conv_reference_equals_neurosim(rule):
    """The conv VNN in PyTorch (F.conv2d, conv2d_weight, autograd) computes
    neurosim's update: first conv (per component), avg pool, shared conv with
    padding and stride, a hidden dense layer and the readout."""
    torch = pytest.importorskip("torch")
    from benchmarks.torch_ref import TorchConvNet
    from neurosim import losses
    from neurosim.core.backend import Backend
    from neurosim.model.network import build_network
    from neurosim.rules import build_rule

    be = Backend("cpu", "float64", seed=3)
    spec = {"vectorized": True, "layers": [
        {"type": "conv2d", "channels": 4, "kernel": 3, "stride": 1, "padding": 1},
        {"type": "avg_pool2d", "size": 2},
        {"type": "conv2d", "channels": 6, "kernel": 2, "stride": 2, "padding": 0},
        {"type": "dense", "units": 6}]}
    net = build_network(spec, be, (2, 8, 8), 4)
    r = build_rule(rule, net, be)
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((6, 2, 8, 8)), rng.integers(0, 4, 6)
    res = r.step(net, x, y, losses.cross_entropy)
    tnet = TorchConvNet(net, r, rule)
    tg = tnet.gradients(torch.tensor(x), torch.tensor(y))
    for pos, i in enumerate(net.weight_layers):
        for k in ("W", "b"):
            np.testing.assert_allclose(tg[(pos, k)].detach().numpy(), res.grads[(i, k)],
                                       rtol=1e-9, atol=1e-12, err_msg=f"{rule} layer {i} {k}")

def test_step_flops_fc_mnist_vnn():
    from neurosim.core.backend import Backend
    from neurosim.model.network import build_network

    be = Backend("cpu", "float32", 0)
    spec = {"vectorized": True, "layers": [{"type": "dense", "units": 1024}, {"type": "dense", "units": 512}]}
    net = build_network(spec, be, (1, 28, 28), 10)
    B, K = 128, 10
    fwd = 2 * B * (784 * K * 1024 + K * 1024 * 512 + K * 512)
    gevb = fwd + 2 * B * K * 1024 * 784 + (2 * B * 512 * 1024 + 2 * B * K * 1024) + 2 * B * K * 512
    assert core.step_flops(net, "gevb", B) == gevb
    bp = fwd + fwd + 2 * B * (K * 1024 * 512 + K * 512)
    assert core.step_flops(net, "bp", B) == bp
    assert abs(gevb * 469 / 1e12 - 2.6) < 0.1  # the "~2.6 TFLOP per epoch"


def test_registry_skips_missing(monkeypatch):
    w = core.Workload("x", "mnist_fc.yaml", "gevb", "mnist", realization={"type": "nonexistent"})
    with pytest.raises(core.Skip, match="nonexistent"):
        core.build(w)
    w = core.Workload("y", "mnist_fc.yaml", "gevb", "mnist", needs_layers=("no_such_layer",))
    with pytest.raises(core.Skip, match="no_such_layer"):
        core.build(w)


# ----------------------------------------------------------------------------
# synaptic updates/s and simulated seconds (benchmarks/synapses.py), dynamics workloads

DYNAMICS_ROWS = ("dynamics_grouped_rate", "dynamics_temporal_rate", "dynamics_grouped_poisson")
TINY = {"layers": [{"type": "dense", "units": 6}, {"type": "dense", "units": 4}]}
SHORT = {"dt_ms": 1.0, "presentation_ms": 10.0, "settle_ms": 4.0, "interval_ms": 6.0}
K = 10
# synapses of the tiny 784-6-4-1 VNN: as trained (batched: W1 per component, shared later
# layers once), per time bin of the grouped circuit (K copies) and of the temporal circuit
# (one of the K input populations active)
BATCHED = K * 784 * 6 + 6 * 4 + 4 * 1
GROUPED_BIN = K * (784 * 6 + 6 * 4 + 4 * 1)
TEMPORAL_BIN = 784 * 6 + 6 * 4 + 4 * 1
COUNTING = 10 - 4  # steps of a presentation after settling


def _registered(name):
    return next(w for w in core.WORKLOADS if w.name == name)


def _tiny(w, realization=None, **dyn):
    """Workload ``w`` (its rule and realization, or ``realization``) on the tiny circuit, batch
    4, short trials (``dyn``: more dynamics options)."""
    import dataclasses

    real = dict(realization or w.realization)
    if "dynamics" in real:
        real["dynamics"] = {**real["dynamics"], **SHORT, **dyn}
    return dataclasses.replace(w, circuit_overrides=TINY, realization=real, batch_size=4)


@pytest.fixture
def synthetic(monkeypatch):
    """Synthetic MNIST-shaped data (no data set is loaded)."""
    def data(name, n_train, seed=0):
        x = np.random.default_rng(seed).uniform(-1, 1, (n_train, 1, 28, 28)).astype(np.float32)
        return x, np.arange(n_train) % 10, "synthetic"

    monkeypatch.setattr(core, "_dataset", data)


def test_dynamics_rows_are_the_study_circuit_and_shared_with_realizations_py():
    import yaml

    from benchmarks import realizations, synapses

    rows = [w for w in core.WORKLOADS if "dynamics" in w.realization]
    assert tuple(w.name for w in rows) == DYNAMICS_ROWS
    study = yaml.safe_load((core.ROOT / "protocols" / "dynamics_grouped_mnist.yaml").read_text())
    for w in rows:
        assert not w.torch and w.rule == "gevb" and w.dataset == "mnist" and w.batch_size == 128
        assert w.circuit == study["circuit"]["file"]
        assert w.circuit_overrides["layers"] == study["circuit"]["layers"]
    grouped, temporal, poisson = (w.realization for w in rows)
    assert grouped == {"type": "grouped", "dynamics": {}}
    assert temporal == {"type": "temporal", "gating": "first_bin", "dynamics": {}}
    assert poisson == {"type": "grouped", "dynamics": {"neurons": {"model": "poisson"}}}
    # benchmarks/realizations.py times the same rows and counts with the same functions
    assert [(r[0], r[2]) for r in realizations.ROWS if "dynamics" in r[2]] == \
        [(w.name, w.realization) for w in rows]
    assert realizations.synapse_updates_per_example is synapses.synapse_updates_per_example
    assert realizations.simulated_seconds_per_step is synapses.simulated_seconds_per_step


@pytest.mark.parametrize("name,realization,dyn,per_example,slot_ms", [
    ("dynamics_grouped_rate", None, {}, GROUPED_BIN * 2 * COUNTING, 2 * 10 + 6),
    ("dynamics_grouped_poisson", None, {}, GROUPED_BIN * 2 * COUNTING, 2 * 10 + 6),
    ("dynamics_temporal_rate", None, {}, TEMPORAL_BIN * 2 * K * COUNTING, 2 * K * 10 + 6),
    # no replay: only the presentation carries activity (the stream keeps the replay's slot)
    ("dynamics_grouped_rate", None, {"replay": False}, GROUPED_BIN * COUNTING, 2 * 10 + 6),
    ("fc_mnist_vnn_gevb", None, {}, BATCHED, None),
    ("fc_mnist_grouped_gevb", None, {}, GROUPED_BIN, None),
    ("fc_mnist_temporal_gevb", None, {}, TEMPORAL_BIN * K, None),
    ("fc_mnist_grouped_gevb", {"type": "grouped", "time_bins": 3}, {}, GROUPED_BIN * 3, None),
])
def test_synapse_updates_and_simulated_time_against_a_direct_count(synthetic, name, realization,
                                                                   dyn, per_example, slot_ms):
    from benchmarks.synapses import simulated_seconds_per_step, synapse_updates_per_example

    w = _tiny(_registered(name), realization, **dyn)
    _, net, _, _, real, *_ = core.build(w, n_train=8)
    assert synapse_updates_per_example(net, real) == per_example
    sim = simulated_seconds_per_step(real, 4)
    if slot_ms is None:
        assert sim is None
    else:
        assert sim == pytest.approx(4 * slot_ms * 1e-3, rel=1e-12)


def test_suite_table_and_json_report_synaptic_updates_and_simulated_time(synthetic, monkeypatch,
                                                                         capsys, tmp_path):
    """``python -m benchmarks`` on the dynamics rows (tiny) and a batched one: every column of
    the table, the JSON's rates, and the rates are the direct counts over the step time."""
    import json

    from benchmarks import __main__ as cli

    work = [_tiny(_registered(n)) for n in DYNAMICS_ROWS + ("fc_mnist_vnn_gevb",)]
    monkeypatch.setattr(cli, "get_workloads", lambda names: work)
    monkeypatch.setattr(cli, "matmul_peak", lambda device, use_torch: {
        "n": 8, "neurosim_backend_gflops": 1.0, "peak_gflops": 1.0})
    out = tmp_path / "r.json"
    # the Brian2 column with numpy code generation and one trial: nothing to compile (its
    # default, a C++ program, is compiled by test_brian2.py's cpp_standalone case, -m slow)
    assert cli.main(["--steps", "1", "--warmup", "0", "--no-torch", "--n-train", "8",
                     "--brian2-target", "numpy", "--brian2-trials", "1", "--json", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("workload"))
    for col in ("ex/s", "epoch s", "GFLOP/s", "%peak", "ns/torch", "mem GiB", "syn upd/s",
                "sim s/wall s"):
        assert col in header, col
    results = {r["workload"]: r for r in json.loads(out.read_text())["results"]}
    per_example = {"dynamics_grouped_rate": GROUPED_BIN * 2 * COUNTING,
                   "dynamics_grouped_poisson": GROUPED_BIN * 2 * COUNTING,
                   "dynamics_temporal_rate": TEMPORAL_BIN * 2 * K * COUNTING,
                   "fc_mnist_vnn_gevb": BATCHED}
    slot_ms = {"dynamics_grouped_rate": 26, "dynamics_grouped_poisson": 26,
               "dynamics_temporal_rate": 2 * K * 10 + 6}
    for name, count in per_example.items():
        ns = results[name]["neurosim"]
        s = ns["mean_s_per_step"]
        assert ns["synaptic_updates_per_s"] == pytest.approx(count * 4 / s, rel=1e-12)
        assert ns["examples_per_s"] == pytest.approx(4 / s, rel=1e-12)
        row = next(line.split() for line in lines if line.startswith(name + " "))
        assert len(row) == 10, row  # workload, impl and eight numbers (or "-")
        assert float(row[8]) == pytest.approx(ns["synaptic_updates_per_s"], rel=1e-2)
        if name in slot_ms:
            assert ns["sim_s_per_wall_s"] == pytest.approx(4 * slot_ms[name] * 1e-3 / s, rel=1e-12)
            assert float(row[9]) == pytest.approx(ns["sim_s_per_wall_s"], rel=1e-2)
        else:
            assert ns["sim_s_per_wall_s"] is None and row[9] == "-"
    # the Brian2 column: the grouped circuits in time (a row under neurosim's), the temporal
    # circuit said to have no Brian2 model, the batched network none at all
    assert "brian2" not in results["fc_mnist_vnn_gevb"]
    assert "skipped" in results["dynamics_temporal_rate"]["brian2"]
    for name in ("dynamics_grouped_rate", "dynamics_grouped_poisson"):
        b = results[name]["brian2"]
        if "skipped" not in b:  # (only when the package index is unreachable)
            assert b["target"] == "numpy" and b["trials"] == 1 and b["trials_per_s"] > 0
            assert results[name]["ratio_trials_neurosim_over_brian2"] > 0
    brian2_rows = [line.split() for line in lines if line.split()[:1] == ["brian2"]]
    assert len(brian2_rows) == 3 and sum("numpy," in r for r in brian2_rows) in (0, 2)


def test_unknown_workload_is_one_line_and_exit_2(monkeypatch, capsys):
    from benchmarks import __main__ as cli

    def no_peak(*a, **k):
        raise AssertionError("measured the matmul peak before checking the names")

    monkeypatch.setattr(cli, "matmul_peak", no_peak)
    assert cli.main(["dynamics", "no_such_workload", "--no-torch"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [err.strip()] and "unknown workload 'no_such_workload'" in err
    assert "dynamics_grouped_rate" in err  # names what is known


def test_step_flops_counts_the_products_a_first_convolution_runs():
    """A first conv layer's GEVB update is the per-example weight gradient with the gate (a
    1/K pass) and then e over it (Conv2d.gevb_grads), not the full (e⊗G)ᵀx pass a first dense
    layer computes."""
    from neurosim.core.backend import Backend
    from neurosim.model.network import build_network

    be = Backend("cpu", "float32", 0)
    spec = {"vectorized": True, "layers": [{"type": "conv2d", "channels": 8, "kernel": 3, "padding": 1},
                                           {"type": "dense", "units": 16}]}
    net = build_network(spec, be, (3, 8, 8), 10)
    B, K, P, CKK = 4, 10, 64, 27
    conv_pass = 2 * B * K * (8 * P) * CKK
    dense_pass = 2 * B * K * 16 * (8 * P)
    read_pass = 2 * B * K * 16
    fwd = conv_pass + dense_pass + read_pass
    conv_update = conv_pass // K + 2 * B * K * 8 * CKK
    dense_update = dense_pass // K + 2 * B * K * (8 * P)
    assert core.step_flops(net, "gevb", B) == fwd + read_pass + conv_update + dense_update
