"""The run session's typed status and stop reason (the texts stores have always held), the
resume policy's reading of keys newer than a store, and the one non-finite scan."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neurosim.core.finite import DivergenceError, check_parameters, nonfinite
from neurosim.core.progress import Progress, watch
from neurosim.recording import StoreError
from neurosim.recording.session import Status, Stop, check_resumable, protocol_differences
from neurosim.recording.store.layout import is_sweep_store
from neurosim.train import declared_default


def test_stop_texts_are_those_old_stores_hold():
    assert Stop.EPOCHS.text() == "epochs"
    assert Stop.EARLY_STOP.text() == "early stop (zero train error)"
    assert Stop.MAX_STEPS.text(7) == "max_steps 7"
    for text, kind in [(None, Stop.EPOCHS), ("", Stop.EPOCHS), ("epochs", Stop.EPOCHS),
                       ("early stop (zero train error)", Stop.EARLY_STOP),
                       ("max_steps 7", Stop.MAX_STEPS), ("something else", None)]:
        assert Stop.parse(text) is kind, text
    assert Stop.limit("max_steps 7") == "7"
    assert [s.value for s in Status] == ["running", "finished", "diverged", "interrupted"]
    assert json.dumps({"status": Status.FINISHED}) == '{"status": "finished"}'


def test_a_key_newer_than_the_store_is_no_difference_at_its_declared_default():
    old = {"training": {"epochs": 2, "max_steps": 0}}
    new = {"training": {"epochs": 2, "max_steps": 0, "input_noise": 0.0}}
    assert declared_default("training.input_noise") == 0.0
    assert protocol_differences(old, new, default=declared_default) == []
    new["training"]["input_noise"] = 0.3
    assert protocol_differences(old, new, default=declared_default) == ["training.input_noise"]
    assert protocol_differences(old, {"training": {**old["training"], "input_noise": 0.0}}) == \
        ["training.input_noise"]  # without the schema's defaults, any new value differs

    class Store:  # what check_resumable reads of a recorder
        path = "run.zarr"
        attrs = {"protocol": json.dumps(old)}

    with pytest.raises(StoreError, match=r"training.input_noise: store has \(absent\), given 0.3"):
        check_resumable(new, Store(), declared_default)


def test_one_scan_names_every_nonfinite_array_in_order():
    xp = np
    named = [("a", np.ones(3)), ("b", np.array([1.0, np.nan])), ("c", None),
             ("d", np.array([np.inf]))]
    assert nonfinite(xp, named) == ["b", "d"]
    assert nonfinite(xp, named[:1]) == [] and nonfinite(xp, []) == []
    with pytest.raises(DivergenceError, match="at step 3: first non-finite value in layer 1 "
                                              "parameter W"):
        check_parameters(xp, [(0, "W", np.ones(2)), (1, "W", np.array([np.nan]))], "step 3")


def test_a_progress_object_gets_the_parts_it_lacks(capsys):
    steps, lines = [], []
    p = watch(lambda *a: steps.append(a))  # a bare step callback (the sweep's worker)
    p.phase("x"), p.evaluated(1, {}), p.write("dropped"), p.step(1, 2, 3, 0.5)
    p.warn("signal 2: stopping")
    assert steps == [(1, 2, 3, 0.5)] and capsys.readouterr().err == "\nsignal 2: stopping\n"

    class Notes:
        def write(self, text):
            lines.append(text)

    n = watch(Notes())
    n.write("note"), n.warn("signal"), n.step(1, 1, 1, 0.0)
    assert lines == ["note", "signal"]
    shown = Progress(1, enabled=False)
    assert watch(shown) is shown and watch(None).step(1, 1, 1, 0.0) is None


def test_is_a_sweep_store_is_read_without_blocking(tmp_path):
    import os

    (tmp_path / "s.zarr").mkdir()
    (tmp_path / "s.zarr" / "zarr.json").write_text(json.dumps({"attributes": {"kind": "sweep"}}))
    (tmp_path / "r.zarr").mkdir()
    (tmp_path / "r.zarr" / "zarr.json").write_text(json.dumps({"attributes": {"kind": "run"}}))
    (tmp_path / "f.zarr").mkdir()
    os.mkfifo(tmp_path / "f.zarr" / "zarr.json")
    assert is_sweep_store(tmp_path / "s.zarr")
    assert not is_sweep_store(tmp_path / "r.zarr") and not is_sweep_store(tmp_path / "f.zarr")
    assert not is_sweep_store(tmp_path / "none.zarr")
