"""Trajectory recordings of the explicit circuits (``recording.trajectories``).

A store's trajectories must analyse cleanly: no variable named like one of its own dimensions,
long_name and units everywhere, ``.sel`` / ``to_dataframe`` / netCDF export working; the probe
set is fixed (the same test examples at every record, checked through their error vectors);
the records equal an independent computation (the batched network on the probe examples);
recording does not change learning by a single bit.

The fast tests use a synthetic data set; the MNIST ones run the shipped protocols (slow).
"""

from __future__ import annotations

import numpy as np
import pytest

import neurosim
from neurosim.core.options import ConfigError

from .conftest import requires_mnist

TRAJ = {"every": 2, "snapshot_every": 2, "samples": 3, "units": 4, "synapses": 5, "chunk": 2}


def synthetic(realization: dict, traj: dict | None = TRAJ, **train) -> dict:
    p = {
        "name": "traj",
        "circuit": {"vectorized": True, "sign": "nonnegative", "init": "on_off",
                    "layers": [{"type": "dense", "units": 12}, {"type": "dense", "units": 8}]},
        "realization": realization,
        "rule": {"name": "gevb"},
        "data": {"dataset": "synthetic", "options": {"n_train": 64, "n_test": 40, "shape": [1, 4, 4]}},
        "optimizer": {"name": "adam", "lr": 0.01},
        "training": {"epochs": 2, "batch_size": 16, "eval_every": 1, **train},
        "seed": 5,
        "recording": {"out": "unused.zarr"},
    }
    if traj is not None:
        p["recording"]["trajectories"] = dict(traj)
    return p


GROUPED = {"type": "grouped", "relaxation": {"schedule": "every_n", "every": 3}}
TEMPORAL = {"type": "temporal", "gating": "first_bin"}


def probe_labels(protocol, ds, overrides=None) -> np.ndarray:
    """The test-set labels of the store's probe examples, read from the data set."""
    from neurosim.api import load
    from neurosim.experiment import examples

    _, y = examples(load(protocol, overrides), "test")
    return np.asarray(y)[ds["probe"].values]


def check_store(ds, labels) -> None:
    """What every store with trajectories must satisfy."""
    traj = [n for n, v in ds.variables.items() if {"sim_step", "snapshot"} & set(v.dims)]
    assert traj
    # no variable shares its name with one of its dims (dimension coordinates aside)
    for name, v in ds.variables.items():
        if name in v.dims:
            assert v.dims == (name,), f"{name} is named like one of its dims {v.dims}"
    # every data variable and coordinate explains itself
    for name, v in ds.variables.items():
        for attr in ("long_name", "units"):
            assert v.attrs.get(attr) not in (None, ""), f"{name} lacks {attr}"
    # one layer numbering: the network's layer index everywhere
    layers = [int(x) for x in ds["circuit_layer"].values]
    assert layers == list(range(len(layers)))
    for prefix in ("circuit_h_", "circuit_activity_", "synapse_weight_"):
        assert sorted(int(n[len(prefix):]) for n in ds.data_vars if n.startswith(prefix)) == layers
    for n in ds.data_vars:
        if "layer" in ds[n].attrs:
            assert n.endswith(f"_{ds[n].attrs['layer']}")
    # nothing is called a rate: the activities are signed
    assert not [n for n in ds.variables if "rate" in n]
    assert float(ds["circuit_activity_1"].min()) < 0
    # sampled synapses: values on (snapshot, synapse_l[, component]), pre/post coordinates
    w = ds["synapse_weight_1"]
    assert w.dims[:2] == ("snapshot", "synapse_1")
    assert ds["synapse_1_pre"].dims == ("synapse_1",) and "synapse_1_pre" in ds.coords
    one = w.sel(synapse_1=0)
    assert one.dims[0] == "snapshot" and int(one["synapse_1_post"]) == int(ds["synapse_1_post"][0])
    for name in ("synapse_weight_1", "circuit_activity_1", "neuromodulator_bin_mean"):
        df = ds[name].to_dataframe()
        assert df.columns.is_unique and name in df.columns
        assert len(df) == ds[name].size
    assert {"synapse_1_pre", "synapse_1_post"} <= set(w.to_dataframe().columns)
    # the probe set is fixed: its labels are the data's, and the error vector the circuit
    # received at every record is that of the same label (softmax - onehot: its only
    # negative component is the label's)
    assert np.array_equal(ds["probe_label"].values, labels)
    nm = ds["neuromodulator_bin_mean"].values  # (sim_step, probe, time_bin, channel)
    if ds.attrs["realization"] == "grouped":
        e = nm[:, :, 0, :]  # channel μ carries e_μ
    else:
        e = nm[:, :, :, 0]  # bin μ carries e_μ
    assert np.array_equal(e.argmin(axis=-1), np.broadcast_to(labels, e.shape[:2]))
    assert (np.sort(e, axis=-1)[..., 1:] > 0).all()
    # an epoch coordinate along both append dims
    for dim in ("sim_step", "snapshot"):
        ep = ds[f"{dim}_epoch"]
        assert ep.dims == (dim,) and (np.diff(ep.values) > 0).all()


def checkpoint_state(path) -> dict:
    from neurosim.recording import Recorder

    state, _ = Recorder(path).load_checkpoint()
    return state


def assert_same_learning(with_traj, without) -> None:
    """Weights, synapses, optimizer state and errors bit for bit."""
    a, b = checkpoint_state(with_traj), checkpoint_state(without)
    assert sorted(a) == sorted(b)
    for k in a:
        assert np.array_equal(np.asarray(a[k]), np.asarray(b[k])), k
    da, db = neurosim.open(with_traj), neurosim.open(without)
    for k in ("train_error", "test_error", "train_loss"):
        assert np.array_equal(da[k].values, db[k].values), k


# -----------------------------------------------------------------------------------------
REALIZATIONS = {"grouped": GROUPED, "temporal": TEMPORAL}


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """A synthetic run with trajectories per circuit (shared by the tests of this module)."""
    folder = tmp_path_factory.mktemp("traj")
    out = {}
    for name, real in REALIZATIONS.items():
        out[name] = folder / f"{name}.zarr"
        neurosim.run(synthetic(real), out=out[name])
    return out


@pytest.mark.parametrize("name", list(REALIZATIONS))
def test_synthetic_store_analyses_cleanly(tmp_path, stores, name):
    ds = neurosim.open(stores[name])
    assert ds.sizes["sim_step"] == 4 and ds.sizes["snapshot"] == 4  # 8 steps, every 2
    assert list(ds["probe"].values) == [0, 1, 2]  # default: the first `samples` test examples
    check_store(ds, probe_labels(synthetic(REALIZATIONS[name]), ds))
    neurosim.run(synthetic(REALIZATIONS[name], traj=None), out=tmp_path / "plain.zarr")
    assert_same_learning(stores[name], tmp_path / "plain.zarr")


def test_chosen_probe_and_units(tmp_path):
    p = synthetic(GROUPED, traj={**TRAJ, "probe": [17, 3, 30], "unit_indices": [7, 0, 5]})
    ds = neurosim.run(p, out=tmp_path / "t.zarr")
    assert list(ds["probe"].values) == [17, 3, 30]
    check_store(ds, probe_labels(p, ds))
    assert list(ds["traj_unit_0"].values) == [7, 0, 5] == list(ds["traj_unit_1"].values)
    assert list(ds["traj_unit_2"].values) == [0]  # the readout's one vector unit
    # .sel by test-set index and unit index
    assert ds["circuit_h_1"].sel(probe=3, traj_unit_1=5).dims == ("sim_step", "time_bin", "component")


def test_seeded_units_follow_the_seed():
    from neurosim.train import Run

    def units(seed):
        p = neurosim.api.load({**synthetic(TEMPORAL), "seed": seed})
        obs = Run(p).exp.observers[0]
        return {i: u.tolist() for i, u in obs.units.items()}

    assert units(5) == units(5) != units(6)


@pytest.mark.parametrize("key, value, message", [
    ("probe", [3, 40], r"probe indices \[40\] are outside the test set \(40 examples"),
    ("probe", [3, 3], r"distinct; repeated: \[3\]"),
    ("unit_indices", [2, 8], r"unit indices \[8\] are outside layer 1 \(8 units"),
    ("unit_indices", [-1], r">= 0"),
])
def test_bad_probe_or_units_are_refused(tmp_path, key, value, message):
    p = synthetic(GROUPED, traj={**TRAJ, key: value})
    with pytest.raises(ConfigError, match=message) as err:
        neurosim.run(p, out=tmp_path / "t.zarr")
    assert err.value.key.startswith(f"recording.trajectories.{key}")
    assert not (tmp_path / "t.zarr").exists() or not any((tmp_path / "t.zarr").iterdir())


@pytest.mark.parametrize("realization", [
    {"type": "grouped", "relaxation": {"schedule": "every_step"}, "time_bins": 2},
    {"type": "temporal", "gating": "full"},
], ids=["grouped", "temporal"])
def test_probe_records_equal_the_batched_network(realization):
    """With their exact settings the circuits are the batched network: the probe's recorded
    pre-activations, activities, gates and error vectors equal the network's forward pass on
    the probe examples (an independent computation), after some learning."""
    from neurosim.train import Run

    p = neurosim.api.load({**synthetic(realization, traj={**TRAJ, "probe": [5, 1, 22, 9]}),
                           "dtype": "float64"})
    r = Run(p)
    exp, real = r.exp, r.exp.realization
    for s in range(3):
        real.step(exp.x_train[16 * s:16 * (s + 1)], exp.y_train[16 * s:16 * (s + 1)])
    obs = exp.observers[0]
    before = [p_.copy() for _, _, p_ in exp.net.parameters()]
    rec = real.trajectory(obs.px, obs.py, obs.units)
    assert all(np.array_equal(a, b) for a, (_, _, b) in zip(before, exp.net.parameters()))
    x = exp.x_test[[5, 1, 22, 9]]
    logits, states = exp.net.forward(x)
    for i in exp.net.weight_layers:
        u = obs.units[i]
        h = np.asarray(states[i].h)[:, :, u]  # (probe, component, unit)
        a = np.asarray(states[i].a)[:, :, u]
        dims, got_h, _ = rec[f"circuit_h_{i}"]
        got_a = rec[f"circuit_activity_{i}"][1]
        if "component" in dims:  # grouped: (probe, time_bin, component, unit)
            np.testing.assert_allclose(got_h, np.repeat(h[:, None], 2, axis=1), atol=1e-12)
            np.testing.assert_allclose(got_a, np.repeat(a[:, None], 2, axis=1), atol=1e-12)
        else:  # temporal: (probe, time_bin = μ, unit)
            np.testing.assert_allclose(got_h, h, atol=1e-12)
            np.testing.assert_allclose(got_a, a, atol=1e-12)
        if i != exp.net.readout:
            G = np.asarray(states[i].dphi).reshape(4, -1)[:, u]
            assert np.array_equal(rec[f"circuit_gate_{i}"][1][:, 0], G)
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    e[np.arange(4), np.asarray(exp.y_test)[[5, 1, 22, 9]]] -= 1
    nm = rec["neuromodulator_bin_mean"][1]
    got = nm[:, 0, :] if realization["type"] == "grouped" else nm[:, :, 0]
    np.testing.assert_allclose(got, e, atol=1e-12)


def test_netcdf_export_of_the_recordings(tmp_path, stores):
    """Every variable and coordinate of the recordings is netCDF-serialisable (root attrs
    dropped here; the export of the whole store is the next test)."""
    ds = neurosim.open(stores["temporal"]).copy()
    ds.attrs = {}
    ds.to_netcdf(tmp_path / "t.nc")
    import xarray as xr

    back = xr.open_dataset(tmp_path / "t.nc")
    assert back["synapse_weight_1"].sel(synapse_1=2).shape == (4,)
    assert back["probe_label"].attrs["units"] == "1"


def test_netcdf_export_of_the_whole_store(tmp_path, stores):
    """Every attr is a netCDF value (JSON strings where needed): a whole store exports."""
    import xarray as xr

    for name in ("grouped", "temporal"):
        ds = neurosim.open(stores[name])
        ds.to_netcdf(tmp_path / f"{name}.nc")
        with xr.open_dataset(tmp_path / f"{name}.nc") as back:
            assert back.attrs["protocol"] == ds.attrs["protocol"]
            assert set(back.data_vars) == set(ds.data_vars)


# -----------------------------------------------------------------------------------------
MNIST_OVERRIDES = {"training.max_steps": 40, "recording.trajectories.every": 10,
                   "recording.trajectories.snapshot_every": 10, "data.train_subset": 2000,
                   "data.test_subset": 500}


@pytest.mark.slow
@requires_mnist
@pytest.mark.parametrize("name", ["grouped", "temporal"])
def test_mnist_protocol_store_analyses_cleanly(tmp_path, name):
    """The shipped protocols on MNIST (about 1-2 minutes each on 2 CPU cores, twice)."""
    proto = f"protocols/{name}_mnist.yaml"
    ds = neurosim.run(proto, out=tmp_path / "t.zarr", overrides=MNIST_OVERRIDES)
    assert ds.sizes["sim_step"] == 4 and ds.sizes["snapshot"] == 4
    check_store(ds, probe_labels(proto, ds, MNIST_OVERRIDES))
    plain = {**MNIST_OVERRIDES, "recording.trajectories.every": 0,
             "recording.trajectories.snapshot_every": 0}
    neurosim.run(proto, out=tmp_path / "plain.zarr", overrides=plain)
    assert_same_learning(tmp_path / "t.zarr", tmp_path / "plain.zarr")
    # the probe labels seen by the circuit are the data's (first 4 test examples)
    assert list(ds["probe"].values) == [0, 1, 2, 3]
    ds.to_netcdf(tmp_path / "t.nc")
