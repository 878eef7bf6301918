"""A researcher's own data (arrays in Python, an .npz file in a protocol) and the trained network
back from a store (``neurosim.load``): the data get the built-in datasets' checks, one line each;
a loaded checkpoint predicts exactly the error the run recorded at that checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

import neurosim
from neurosim.cli import main
from neurosim.data import DataError
from neurosim.data.arrays import coerce, from_arrays, load_npz
from neurosim.recording import StoreError

from ._reliability import write_protocol


def blobs(seed=0, n_train=120, n_test=60, d=12, k=3):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 2.0
    y = rng.integers(0, k, n_train + n_test)
    x = centres[y] + rng.normal(size=(y.size, d))
    return {"x_train": x[:n_train], "y_train": y[:n_train], "x_test": x[n_train:], "y_test": y[n_train:]}


PROTO = {"name": "own", "circuit": {"vectorized": True, "layers": [{"type": "dense", "units": 8}]},
         "rule": {"name": "gevb"}, "data": {"dataset": "synthetic"},
         "optimizer": {"name": "adam", "lr": 0.01},
         "training": {"epochs": 3, "batch_size": 40, "eval_every": 1, "early_stop": False},
         "recording": {"weights": True}, "dtype": "float64"}


def _bad(data, **change):
    d = dict(data)
    d.update(change)
    return d


@pytest.mark.parametrize("change, words", [
    (lambda d: _bad(d, x_train=np.where(np.arange(d["x_train"].size).reshape(d["x_train"].shape) == 30,
                                        np.nan, d["x_train"])), "x_train has non-finite values"),
    (lambda d: _bad(d, y_test=np.r_[d["y_test"][:-1], 3], n_classes=3),
     "y_test: label 59 is 3, outside 0..2"),
    (lambda d: _bad(d, y_train=d["y_train"] - 1), "y_train: label"),
    (lambda d: _bad(d, y_train=d["y_train"] + 0.5), "y_train must be integer class labels"),
    (lambda d: _bad(d, y_train=d["y_train"][:-1]), "y_train has 119 labels for 120 examples"),
    (lambda d: _bad(d, x_test=d["x_test"][:, :5]), "x_train examples have shape (1, 1, 12) but x_test"),
    (lambda d: _bad(d, x_train=d["x_train"][:, 0]), "x_train must have shape (N, D)"),
    (lambda d: _bad(d, x_train=d["x_train"].astype(object)), "x_train must hold numbers"),
    (lambda d: {k: v for k, v in d.items() if k != "y_test"}, "missing y_test"),
    (lambda d: _bad(d, y_train=0 * d["y_train"], y_test=0 * d["y_test"]), "at least 2 classes"),
])
def test_bad_arrays_are_one_line_each(change, words):
    with pytest.raises(DataError) as exc:
        coerce(change(blobs()))
    msg = str(exc.value)
    assert words in msg and "\n" not in msg


def test_arrays_are_shaped_and_kept_as_given():
    d = blobs()
    ds = from_arrays(**d)
    assert ds.in_shape == (1, 1, 12) and ds.n_classes == 3 and ds.x_train.dtype == np.float32
    np.testing.assert_array_equal(ds.x_train[:, 0, 0], d["x_train"].astype(np.float32))
    assert from_arrays(d["x_train"].reshape(120, 3, 4), d["y_train"], d["x_test"].reshape(60, 3, 4),
                       d["y_test"], n_classes=5).in_shape == (1, 3, 4)
    pair = coerce(((d["x_train"], d["y_train"]), (d["x_test"], d["y_test"])))
    np.testing.assert_array_equal(pair.y_test, d["y_test"])


def test_npz_in_a_protocol_runs_and_a_bad_one_is_one_line(tmp_path):
    np.savez(tmp_path / "mine.npz", **blobs())
    proto = ("name: mine\ncircuit: {vectorized: true, layers: [{type: dense, units: 8}]}\n"
             "rule: {name: gevb}\ndata:\n  dataset: npz\n  path: mine.npz\n"
             "training: {epochs: 1, batch_size: 40, eval_every: 1, early_stop: false}\n")
    p = write_protocol(tmp_path, proto)
    r = CliRunner().invoke(main, ["run", str(p), "--out", str(tmp_path / "mine.zarr"), "--quiet"])
    assert r.exit_code == 0, r.output
    ds = neurosim.open(tmp_path / "mine.zarr")
    assert ds.attrs["dataset"] == "npz" and ds.sizes["epoch"] == 2
    bad = blobs()
    bad["x_test"][7, 3] = np.inf
    np.savez(tmp_path / "bad.npz", **bad)
    r = CliRunner().invoke(main, ["run", str(p), "--set", "data.path=bad.npz", "--out",
                                  str(tmp_path / "bad.zarr")])
    assert r.exit_code == 2 and r.output.count("\n") == 1, r.output
    assert "--set data.path=bad.npz" in r.output
    assert "x_test has non-finite values (NaN or Inf), the first in example 7" in r.output
    r = CliRunner().invoke(main, ["run", str(p), "--set", "data.path=null"])
    assert r.exit_code == 2 and r.output.count("\n") == 1, r.output
    assert "key 'data.path': dataset npz needs path" in r.output
    assert not (tmp_path / "bad.zarr").exists()


def test_npz_refuses_pickles_and_names_missing_arrays(tmp_path):
    d = blobs()
    np.savez(tmp_path / "obj.npz", **{**d, "x_train": d["x_train"].astype(object)})
    with pytest.raises(DataError, match="without pickles"):
        load_npz(tmp_path / "obj.npz")
    np.savez(tmp_path / "few.npz", x_train=d["x_train"])
    with pytest.raises(DataError, match="missing y_train, x_test, y_test"):
        load_npz(tmp_path / "few.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_npz(tmp_path / "junk.npz")


def test_run_with_arrays_and_every_loaded_checkpoint_predicts_its_recorded_errors(tmp_path):
    d = blobs()
    ds = neurosim.run(PROTO, out=tmp_path / "own.zarr", data=d, progress=False)
    assert ds.attrs["dataset"] == "arrays" and ds.sizes["epoch"] == 4
    assert float(ds.test_error[-1]) < float(ds.test_error[0])  # it learned
    for k in range(ds.sizes["epoch"]):
        net = neurosim.load(tmp_path / "own.zarr", checkpoint=k)
        assert net.step == int(ds.n_steps[k])
        assert net.error(d["x_test"], d["y_test"]) == pytest.approx(float(ds.test_error[k]), abs=1e-9)
        assert net.error(d["x_train"], d["y_train"]) == pytest.approx(float(ds.train_error[k]), abs=1e-9)
    last = neurosim.load(tmp_path / "own.zarr")
    np.testing.assert_array_equal(last.weights[1], ds["W_1"].isel(epoch=-1).values)
    t = last.gates[0]
    assert t.shape == (3, 8) and set(np.unique(t)) == {-1.0, 1.0}
    G = last.gate_states(d["x_test"])[0]  # eq. 8 by hand: open where t_i . h_i >= 0
    W, b = last.weights[0], last.biases[0]
    h = np.einsum("kij,nj->nki", W, d["x_test"]) + b  # first layer: K input populations
    np.testing.assert_array_equal(G, np.einsum("ki,nki->ni", t, h) >= 0)
    assert last.predict(d["x_test"]).shape == (60, 3)
    # a different set of arrays is not the run's data: a resume refuses it, naming the key
    with pytest.raises(StoreError, match="data.options.fingerprint"):
        neurosim.run({**PROTO, "training": {**PROTO["training"], "epochs": 4}},
                     out=tmp_path / "own.zarr", data=blobs(seed=1), resume=True, progress=False)


def test_load_names_what_a_checkpoint_needs(tmp_path):
    proto = {**PROTO, "recording": {"weights": False}, "training": {**PROTO["training"], "epochs": 1}}
    neurosim.run(proto, out=tmp_path / "s.zarr", data=blobs(), progress=False)
    assert neurosim.load(tmp_path / "s.zarr").step == 3
    with pytest.raises(StoreError, match="needs the weight snapshots of a run with recording.weights"):
        neurosim.load(tmp_path / "s.zarr", checkpoint=0)
    with pytest.raises(StoreError, match="checkpoints 0..1"):
        neurosim.load(tmp_path / "s.zarr", checkpoint=5)


def test_load_a_grouped_circuit_predicts_its_recorded_error(tmp_path):
    d = blobs(n_train=80, n_test=40)
    proto = {**PROTO, "realization": {"type": "grouped"}, "recording": {"weights": False},
             "training": {**PROTO["training"], "epochs": 1}}
    ds = neurosim.run(proto, out=tmp_path / "g.zarr", data=d, progress=False)
    net = neurosim.load(tmp_path / "g.zarr")
    assert net.error(d["x_test"], d["y_test"]) == pytest.approx(float(ds.test_error[-1]), abs=1e-9)
