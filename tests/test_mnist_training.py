"""Short real training runs: GEVB on the nonnegative FC VNN learns MNIST in a fraction of an
epoch (evaluation on 2,000 test and 2,000 training images keeps them quick).  The default suite
trains a narrower network of the same kind (784-128-64, K = 10) for 100 steps; the paper's
network (784-1024-512) for 250 steps is a long reproduction (``-m slow``)."""

from pathlib import Path

import pytest
import xarray as xr

from neurosim.protocol import load_protocol
from neurosim.train import run_protocol

from .conftest import requires_mnist

REPO = Path(__file__).resolve().parents[1]


#: Bound on the test error (%) of the paper's network after 250 steps (float32).  Measured
#: (python -m tests.threshold_audit --only mnist; seeds 0-2 x OPENBLAS_NUM_THREADS 1/2 x
#: NEUROSIM_NUMBA 0/1): 8.85-11.4 %, seed 0 alone 9.4-11.15 %.  Hidden updates negated:
#: 89-90 %; hidden layers frozen (only the readout learns): 66-68 %.
MNIST_BOUND = 14.0

#: The narrow network of the default suite: its hidden layers and steps.
SMALL = {"units": (128, 64), "steps": 100}
#: Bound on its test error (%) after 100 steps (float32).  Measured (python -m
#: tests.threshold_audit --only 128-64; seeds 0-2 x OPENBLAS_NUM_THREADS 1/2 x NEUROSIM_NUMBA
#: 0/1): 14.55-15.8 %.  Hidden updates negated: 89.05-89.65 %; hidden layers frozen: 85.9-91.6 %.
SMALL_BOUND = 20.0


def gevb_mnist_run(out, seed: int = 0, units=None, steps: int = 250):
    """GEVB on the nonnegative FC VNN (the paper's 784-1024-512, or hidden layers ``units``),
    ``steps`` steps of real MNIST (float32); the run's summary."""
    over = {
        "training": {"epochs": 1, "max_steps": steps, "eval_train_subset": 2000},
        "data": {"test_subset": 2000},
        "recording": {"out": str(out)},
        "seed": seed,
    }
    if units is not None:
        over["circuit"] = {"layers": [{"type": "dense", "units": u} for u in units]}
    return run_protocol(load_protocol(REPO / "protocols" / "gevb_mnist_fc.yaml", over))


def _check(out, summary, steps, bound):
    assert summary.steps == steps
    assert summary.test_error < bound, summary.line()
    ds = xr.open_zarr(out)
    assert ds["test_error"].values[0] > 50  # chance level before training
    assert float(ds["test_error"].values[-1]) == summary.test_error


@requires_mnist
def test_gevb_fc_vnn_learns_mnist_in_100_steps(tmp_path):
    """784-128-64, K = 10, 100 steps (≈ 0.2 epoch of 128-example batches)."""
    summary = gevb_mnist_run(tmp_path / "g.zarr", units=SMALL["units"], steps=SMALL["steps"])
    _check(tmp_path / "g.zarr", summary, SMALL["steps"], SMALL_BOUND)


@pytest.mark.slow
@requires_mnist
def test_gevb_fc_vnn_learns_mnist_within_one_epoch(tmp_path):
    """The paper's network (784-1024-512, K = 10), 250 steps (≈ 0.53 epoch)."""
    summary = gevb_mnist_run(tmp_path / "g.zarr")
    _check(tmp_path / "g.zarr", summary, 250, MNIST_BOUND)
