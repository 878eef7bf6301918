"""Appendix G architectures: parameter counts (vectorized and conventional)
against a hand count, as printed by ``neurosim inspect``; protocols validate."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from neurosim.cli import main
from neurosim.core.backend import Backend
from neurosim.model.network import build_network, plan_network
from neurosim.protocol import load_protocol

ROOT = Path(__file__).resolve().parents[1]
K = 10

# Hand count per layer: weights + biases.  Vectorized (K = 10): the first
# layer has K weight sets, every bias is per component, one vector output
# unit.  Conventional: K = 1, ten scalar outputs.  Conv biases are per
# channel, LC biases per channel and position.
HAND = {
    "mnist_fc": {
        True: [10 * 1024 * 784 + 10 * 1024, 512 * 1024 + 10 * 512, 512 + 10],
        False: [1024 * 784 + 1024, 512 * 1024 + 512, 10 * 512 + 10],
    },
    "cifar10_fc": {
        True: [10 * 1024 * 3072 + 10 * 1024, 512 * 1024 + 10 * 512, 512 * 512 + 10 * 512, 512 + 10],
        False: [1024 * 3072 + 1024, 512 * 1024 + 512, 512 * 512 + 512, 10 * 512 + 10],
    },
    "mnist_conv": {  # conv64 3x3 p1 (28x28) - pool - conv32 3x3 p1 (14x14) - pool - FC1024 on 32*7*7
        True: [10 * 64 * 1 * 9 + 10 * 64, 0, 32 * 64 * 9 + 10 * 32, 0,
               1024 * 32 * 7 * 7 + 10 * 1024, 1024 + 10],
        False: [64 * 1 * 9 + 64, 0, 32 * 64 * 9 + 32, 0, 1024 * 32 * 7 * 7 + 1024, 10 * 1024 + 10],
    },
    "mnist_lc": {  # LC32 3x3 p1 (28x28 positions) - pool - LC32 3x3 p1 (14x14) - pool - FC1024
        True: [28 * 28 * 10 * 32 * 1 * 9 + 10 * 32 * 28 * 28, 0,
               14 * 14 * 32 * 32 * 9 + 10 * 32 * 14 * 14, 0,
               1024 * 32 * 7 * 7 + 10 * 1024, 1024 + 10],
        False: [28 * 28 * 32 * 9 + 32 * 28 * 28, 0, 14 * 14 * 32 * 32 * 9 + 32 * 14 * 14, 0,
                1024 * 32 * 7 * 7 + 1024, 10 * 1024 + 10],
    },
    "cifar10_conv": {  # conv128 5x5 p2 - pool - conv64 5x5 p2 - pool - conv64 2x2/2 (4x4) - FC1024
        True: [10 * 128 * 3 * 25 + 10 * 128, 0, 64 * 128 * 25 + 10 * 64, 0, 64 * 64 * 4 + 10 * 64,
               1024 * 64 * 16 + 10 * 1024, 1024 + 10],
        False: [128 * 3 * 25 + 128, 0, 64 * 128 * 25 + 64, 0, 64 * 64 * 4 + 64,
                1024 * 64 * 16 + 1024, 10 * 1024 + 10],
    },
    "cifar10_lc": {  # LC64 5x5 p2 (32x32) - pool - LC32 5x5 p2 (16x16) - pool - LC32 2x2/2 (4x4) - FC512
        True: [32 * 32 * 10 * 64 * 3 * 25 + 10 * 64 * 32 * 32, 0,
               16 * 16 * 32 * 64 * 25 + 10 * 32 * 16 * 16, 0,
               4 * 4 * 32 * 32 * 4 + 10 * 32 * 4 * 4,
               512 * 32 * 16 + 10 * 512, 512 + 10],
        False: [32 * 32 * 64 * 3 * 25 + 64 * 32 * 32, 0, 16 * 16 * 32 * 64 * 25 + 32 * 16 * 16, 0,
                4 * 4 * 32 * 32 * 4 + 32 * 4 * 4, 512 * 32 * 16 + 512, 10 * 512 + 10],
    },
}
IN_SHAPE = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


def _layer_counts(name, vectorized):
    """Per-layer parameter counts from the declared shapes (no weights drawn:
    the LC-Vec first layer alone has 49M weights)."""

    spec = yaml.safe_load((ROOT / "circuits" / f"{name}.yaml").read_text())
    spec["vectorized"] = vectorized
    plan = plan_network(spec, IN_SHAPE[name.split("_")[0]], K)
    return [sum(math.prod(s) for s in lp.layer.params.values()) for lp in plan.layers]


@pytest.mark.parametrize("name", sorted(HAND))
@pytest.mark.parametrize("vectorized", [True, False])
def test_parameter_counts_match_hand_count(name, vectorized):
    assert _layer_counts(name, vectorized) == HAND[name][vectorized]


@pytest.mark.parametrize("name", ["mnist_conv", "cifar10_conv", "mnist_lc"])
def test_built_network_summary_matches_hand_count(name):
    spec = yaml.safe_load((ROOT / "circuits" / f"{name}.yaml").read_text())
    spec.update(vectorized=False, sign="mixed", init="he")
    net = build_network(spec, Backend("cpu", "float32", 0), IN_SHAPE[name.split("_")[0]], K)
    assert [r["params"] for r in net.summary()] == HAND[name][False]


def test_inspect_prints_parameter_counts(tmp_path):
    """A one-step run of the MNIST conv VNN protocol (synthetic 1x28x28 data),
    then ``neurosim inspect`` reports the hand-counted parameters."""
    out = tmp_path / "run.zarr"
    runner = CliRunner()
    r = runner.invoke(main, [
        "run", str(ROOT / "protocols" / "gevb_mnist_conv.yaml"), "--out", str(out), "--quiet",
        "--set", "data.dataset=synthetic",
        "--set", "data.options={n_train: 16, n_test: 8, shape: [1, 28, 28]}",
        "--set", "training.batch_size=8", "--set", "training.epochs=1",
        "--set", "training.max_steps=1", "--set", "training.eval_every=1",
    ])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["inspect", str(out), "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert [row["params"] for row in info["layers"]] == HAND["mnist_conv"][True]
    assert info["n_params"] == sum(HAND["mnist_conv"][True])
    r = runner.invoke(main, ["inspect", str(out)])
    assert "conv2d" in r.output and f"parameters {sum(HAND['mnist_conv'][True])}" in r.output


@pytest.mark.parametrize("proto", ["gevb_mnist_conv", "gevb_cifar10_conv", "dfa_cifar10_conv",
                                   "bp_cifar10_lc"])
def test_protocols_validate(proto):
    p = load_protocol(ROOT / "protocols" / f"{proto}.yaml", {})
    assert p["circuit"]["layers"][0]["type"] in ("conv2d", "locally_connected2d")
    p = load_protocol(ROOT / "protocols" / f"{proto}.yaml", {"data": {"dataset": "cifar10_partial"}})
    assert p["data"]["dataset"] == "cifar10_partial"


def test_plan_names_the_layer_that_cannot_be_built():
    """One planner for the validator and build_network: a layer that cannot take its
    input, or K that is not the number of classes, fails with its circuit key."""
    from neurosim.model.network import ShapeError

    be = Backend("cpu", "float32", 0)
    spec = {"layers": [{"type": "conv2d", "channels": 4, "kernel": 3},
                       {"type": "avg_pool2d", "size": 2},
                       {"type": "conv2d", "channels": 4, "kernel": 5}]}
    with pytest.raises(ShapeError, match="kernel 5x5 does not fit the input 3x3") as exc:
        build_network(spec, be, (1, 8, 8), K)
    assert exc.value.key == "layers[2]"
    with pytest.raises(ShapeError, match=r"classes \(10\), got 3") as exc:
        plan_network({**spec, "components": 3}, (1, 8, 8), K)
    assert exc.value.key == "components"
    plan = plan_network({"layers": spec["layers"][:2]}, (1, 8, 8), K)
    assert [(lp.key, lp.role, lp.nonlinearity) for lp in plan.layers] == [
        ("layers[0]", "first", "gate"), ("layers[1]", None, None), ("output", "output", "identity")]
    assert plan.layers[-1].layer.in_shape == (4, 3, 3) and plan.K == K
