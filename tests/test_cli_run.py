"""`neurosim run` / `inspect` end to end on a synthetic task, validation, stores."""

import json
from pathlib import Path

import pytest
import xarray as xr
import yaml
from click.testing import CliRunner

from neurosim.cli import main
from neurosim.protocol import load_protocol

REPO = Path(__file__).resolve().parents[1]


def synthetic_protocol(tmp_path, **over):
    p = {
        "name": "tiny",
        "circuit": {"vectorized": True, "sign": "nonnegative", "init": "on_off",
                    "layers": [{"type": "dense", "units": 16}, {"type": "dense", "units": 8}]},
        "rule": {"name": "gevb"},
        "data": {"dataset": "synthetic",
                 "options": {"n_train": 256, "n_test": 128, "n_classes": 4, "shape": [1, 4, 4]}},
        "optimizer": {"name": "adam", "lr": 3e-3},
        "training": {"epochs": 4, "batch_size": 32, "eval_every": 2},
        "dtype": "float64",
        "recording": {"out": str(tmp_path / "tiny.zarr"), "weights": True},
    }
    for k, v in over.items():
        node = p
        *head, last = k.split(".")
        for h in head:
            node = node.setdefault(h, {})
        node[last] = v
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(p))
    return path


def run_cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_run_records_a_self_describing_store(tmp_path):
    proto = synthetic_protocol(tmp_path)
    r = run_cli("run", proto, "--quiet")
    assert r.exit_code == 0, r.output
    assert "test error" in r.output
    ds = xr.open_zarr(tmp_path / "tiny.zarr")
    assert list(ds["epoch"].values) == [0, 2, 4]
    assert ds["test_error"].attrs["units"] == "%"
    assert ds["W_1"].dims == ("epoch", "post_1", "pre_1")
    assert ds["W_0"].dims == ("epoch", "component", "post_0", "pre_0")
    assert ds.attrs["status"] == "finished"
    assert json.loads(ds.attrs["protocol"])["rule"]["name"] == "gevb"
    assert ds["test_error"].values[-1] < ds["test_error"].values[0]
    out = run_cli("inspect", tmp_path / "tiny.zarr")
    assert out.exit_code == 0 and "parameters" in out.output and "dense" in out.output


def test_existing_store_is_not_overwritten(tmp_path):
    proto = synthetic_protocol(tmp_path, **{"training.epochs": 1})
    assert run_cli("run", proto, "--quiet").exit_code == 0
    r = CliRunner().invoke(main, ["run", str(proto), "--quiet"])
    assert r.exit_code == 2 and "already exists" in r.output
    assert run_cli("run", proto, "--quiet", "--overwrite").exit_code == 0


@pytest.mark.parametrize("bad,needle", [
    ({"training.epocs": 3}, "did you mean 'epochs'"),
    ({"optimizer.lr": -1.0}, "optimizer.lr"),
    ({"rule.name": "gevbb"}, "did you mean 'gevb'"),
    ({"training.batch_size": "big"}, "training.batch_size"),
    ({"rule.sign": "mixed"}, "rule.sign"),
    ({"data.dataset": "mnits"}, "did you mean 'mnist'"),
])
def test_bad_protocol_exit_2_and_no_store(tmp_path, bad, needle):
    proto = synthetic_protocol(tmp_path, **bad)
    r = CliRunner().invoke(main, ["run", str(proto)])
    assert r.exit_code == 2
    assert needle in r.output
    assert not (tmp_path / "tiny.zarr").exists()


def test_gevb_on_conventional_circuit_is_rejected(tmp_path):
    proto = synthetic_protocol(tmp_path, **{"circuit.vectorized": False})
    r = CliRunner().invoke(main, ["run", str(proto)])
    assert r.exit_code == 2 and "vectorized" in r.output


def test_error_names_line(tmp_path):
    proto = synthetic_protocol(tmp_path, **{"training.epocs": 3})
    r = CliRunner().invoke(main, ["run", str(proto)])
    line = next(i for i, s in enumerate(proto.read_text().splitlines(), 1) if "epocs" in s)
    assert f"tiny.yaml:{line}" in r.output


@pytest.mark.parametrize("path", sorted((REPO / "protocols").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_protocols_validate(path):
    if "sweep:" in path.read_text():  # sweep protocols: validated run by run in tests/test_sweep.py
        return
    p = load_protocol(path)
    assert p["circuit"]["layers"]
