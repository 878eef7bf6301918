"""``training.input_noise``: the denoising autoencoder's Gaussian input corruption
(Lansdell et al. 2020, appendix C.2): x̃ = x + σξ on every training batch, the target
and the evaluation clean, the noise keyed by the step."""

import numpy as np
import pytest

from neurosim.core.options import ConfigError
from neurosim.protocol import validate_protocol
from neurosim.train import Run

SEED = 3
SIGMA = 0.3


def protocol(tmp_path, **training):
    return validate_protocol({
        "circuit": {"vectorized": False, "sign": "mixed", "init": "he",
                    "layers": [{"type": "dense", "units": 6, "nonlinearity": "tanh"},
                               {"type": "dense", "units": 2, "nonlinearity": "identity"}],
                    "output": {"units": 64, "nonlinearity": "relu"}},
        "rule": {"name": "bp"}, "loss": "mse", "seed": SEED, "dtype": "float64",
        "data": {"dataset": "synthetic", "options": {"target": "input", "n_train": 64, "n_test": 32}},
        "optimizer": {"name": "sgd", "lr": 0.01},
        "training": {"epochs": 1, "batch_size": 16, "eval_every": 1, "early_stop": False,
                     **training},
        "recording": {"out": str(tmp_path / "dae.zarr")}})


def captured_batches(run):
    """Train ``run``, recording the (x, y) every realization step received."""
    seen = []
    step = run.exp.realization.step

    def spy(x, y, *a, **k):
        seen.append((np.array(x), np.array(y)))
        return step(x, y, *a, **k)

    run.exp.realization.step = spy
    run.train()
    return seen


def test_inputs_get_gaussian_noise_and_targets_stay_clean(tmp_path):
    run = Run(protocol(tmp_path, input_noise=SIGMA))
    x_train = np.array(run.exp.x_train)
    y_train = np.array(run.exp.y_train)
    seen = captured_batches(run)
    assert len(seen) == 4
    # the batch order of epoch 0, from the data stream (independent of the noise)
    order = np.random.default_rng(np.random.SeedSequence([SEED, 3, 0])).permutation(64)
    for step, (x, y) in enumerate(seen, start=1):
        idx = order[(step - 1) * 16: step * 16]
        # ξ from the "noise" stream (id 5), sub-stream 3, keyed by the step
        xi = np.random.default_rng(np.random.SeedSequence([SEED, 5, 3, step])).standard_normal(x.shape)
        np.testing.assert_allclose(x, x_train[idx] + SIGMA * xi, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(y, y_train[idx])  # the target is the clean input
        np.testing.assert_array_equal(y, x_train[idx].reshape(16, -1))
    np.testing.assert_array_equal(np.array(run.exp.x_train), x_train)  # data untouched
    # the evaluation sees clean inputs: the recorded train loss is the clean loss
    import xarray as xr
    ds = xr.open_zarr(tmp_path / "dae.zarr")
    logits = run.exp.realization.predict(run.exp.x_train, 64)
    clean, _ = run.exp.loss_fn(logits, run.exp.y_train)
    assert float(ds.train_loss.values[-1]) == pytest.approx(float(clean), rel=1e-12)


def test_no_input_noise_by_default(tmp_path):
    run = Run(protocol(tmp_path))
    assert run.exp.training["input_noise"] == 0
    x_train = np.array(run.exp.x_train)
    order = np.random.default_rng(np.random.SeedSequence([SEED, 3, 0])).permutation(64)
    for step, (x, _) in enumerate(captured_batches(run), start=1):
        np.testing.assert_array_equal(x, x_train[order[(step - 1) * 16: step * 16]])


def test_negative_input_noise_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="input_noise"):
        protocol(tmp_path, input_noise=-0.1)
