"""A short real training run: GEVB on the nonnegative FC VNN learns MNIST in a fraction of an
epoch (250 steps; evaluation on 2,000 test and 2,000 training images keeps it quick)."""

from pathlib import Path

import xarray as xr

from neurosim.protocol import load_protocol
from neurosim.train import run_protocol

from .conftest import requires_mnist

REPO = Path(__file__).resolve().parents[1]


@requires_mnist
def test_gevb_fc_vnn_learns_mnist_within_one_epoch(tmp_path):
    proto = load_protocol(REPO / "protocols" / "gevb_mnist_fc.yaml", {
        "training": {"epochs": 1, "max_steps": 250, "eval_train_subset": 2000},
        "data": {"test_subset": 2000},
        "recording": {"out": str(tmp_path / "g.zarr")},
    })
    summary = run_protocol(proto)
    assert summary.steps == 250  # ≈ 0.53 epoch of 128-example batches
    assert summary.test_error < 10.0, summary.line()
    ds = xr.open_zarr(tmp_path / "g.zarr")
    assert ds["test_error"].values[0] > 50  # chance level before training
    assert float(ds["test_error"].values[-1]) == summary.test_error
