"""Divergence guard: NaN/Inf stops the run with a message naming step, layer and
quantity (exit code 3); the store keeps everything up to the last good
checkpoint and records ``status='diverged'`` and the failure in its attrs."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from neurosim.cli import main
from neurosim.recording import Recorder, observers, registry

from ._reliability import PROTOCOL, write_protocol

# 2 steps per epoch, a checkpoint every epoch
DIV_PROTOCOL = PROTOCOL.replace("epochs: 1,", "epochs: 4,")


def run(tmp_path, *sets):
    path = write_protocol(tmp_path, DIV_PROTOCOL)
    out = tmp_path / "out.zarr"
    args = ["run", str(path), "--out", str(out), "--quiet"] + [a for s in sets for a in ("--set", s)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's overflow warnings
        res = CliRunner().invoke(main, args)
    return res, out


def check_store(out, n_records):
    """The store opens, shows exactly the committed records, all finite, and says why it stopped."""
    rec = Recorder(out)
    commit = rec.commit
    with xr.open_zarr(out) as ds:
        assert ds.sizes["epoch"] == n_records == commit["records"]["epoch"]
        for k in ("train_error", "test_error", "train_loss", "test_loss"):
            assert np.isfinite(ds[k].values).all()
        assert ds.attrs["status"] == "diverged"
        failure = ds.attrs["failure"]
        step = ds.attrs["failed_step"]
    state, info = rec.load_checkpoint()
    assert all(np.isfinite(v).all() for v in state.values())
    assert info["step"] == commit["step"] < step
    return failure, step


def test_huge_learning_rate_stops_with_exit_3(tmp_path):
    res, out = run(tmp_path, "optimizer.lr=1e200")
    assert res.exit_code == 3, res.output
    m = re.search(r"run diverged: non-finite loss \((nan|inf|-inf)\) at step (\d+) \(epoch (\d+), "
                  r"batch (\d+)\): first non-finite value in layer (\d+) (pre-activation h|activation a)",
                  res.output)
    assert m, res.output
    assert "The store keeps every checkpoint before it" in res.output and str(out) in res.output
    failure, step = check_store(out, n_records=int(m.group(3)))
    assert step == int(m.group(2)) and failure in res.output


class _Poison(observers.Observer):
    """Writes ``value`` into one weight of ``layer`` at ``step`` (before the update)."""

    def __init__(self, step, layer, value):
        self.at, self.layer, self.value = step, layer, value

    def due(self, step):
        return step == self.at

    def observe(self, exp, ctx):
        W = exp.net.layers[self.layer].params["W"]
        W.reshape(-1)[0] = self.value
        return []


@pytest.mark.parametrize("layer,value", [(0, np.nan), (1, np.inf), (2, np.nan)])
def test_injected_nan_names_step_and_layer(tmp_path, monkeypatch, layer, value):
    # poisoned during step 3 (epoch 2, batch 1): step 4's forward pass is non-finite
    monkeypatch.setattr(registry, "FACTORIES", registry.FACTORIES + [lambda r: _Poison(3, layer, value)])
    res, out = run(tmp_path)
    assert res.exit_code == 3, res.output
    assert f"non-finite loss (nan) at step 4 (epoch 2, batch 2): first non-finite value in layer {layer} " \
           f"pre-activation h" in res.output, res.output
    assert f"layer {layer} W" in res.output.split("after the update:")[1]
    failure, step = check_store(out, n_records=2)  # epoch 0 and epoch 1 were committed
    assert step == 4 and failure.startswith("non-finite loss (nan) at step 4")


def test_nan_in_weights_is_never_checkpointed(tmp_path, monkeypatch):
    """Poisoned on the last step of an epoch: the loss of that step is still finite, but
    the checkpoint that would follow is refused."""
    monkeypatch.setattr(registry, "FACTORIES", registry.FACTORIES + [lambda r: _Poison(2, 1, np.nan)])
    res, out = run(tmp_path)
    assert res.exit_code == 3, res.output
    assert "non-finite parameter at step 2 (epoch 1, batch 0): first non-finite value in layer 1 " \
           "parameter W" in res.output, res.output
    failure, step = check_store(out, n_records=1)  # only the initial evaluation
    assert step == 2


def test_resuming_a_diverged_store_diverges_again_the_same_way(tmp_path):
    res, out = run(tmp_path, "optimizer.lr=1e200")
    assert res.exit_code == 3
    path = write_protocol(tmp_path, DIV_PROTOCOL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        again = CliRunner().invoke(main, ["run", str(path), "--out", str(out), "--quiet", "--resume",
                                          "--set", "optimizer.lr=1e200"])
    assert again.exit_code == 3
    assert again.output.split("run diverged:")[1] == res.output.split("run diverged:")[1]
