"""Integrity of run stores: content hashes of checkpoints, checks of the committed records,
damaged stores refused by ``--resume`` (before anything is written) and by ``inspect`` with one
line naming the damaged file; a finished run keeps one checkpoint slot."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from neurosim.recording import MARKER, Recorder, StoreError, commit_record, store_sizes, verify_store
from neurosim.recording.store import content_hash

from ._reliability import assert_same_store, cli, finished_run, one_line_error


def tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None
            for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    return finished_run(tmp_path_factory)


# --------------------------------------------------------------------------------------------
# the Recorder: hashes in the commit record, verified on load, no silent fallback
# --------------------------------------------------------------------------------------------
def record(i):
    return xr.Dataset({"loss": ("epoch", [float(i)])}, coords={"epoch": ("epoch", [float(i)])})


@pytest.fixture
def two_slots(tmp_path):
    """A store with two commits: checkpoint_a (epoch 0), then checkpoint_b (epoch 1, committed)."""
    rec = Recorder(tmp_path / "s.zarr")
    rec.create({"title": "t"})
    rng = np.random.default_rng(0)
    states = []
    for i in range(2):
        state = {"net.W": rng.normal(size=(4, 3)), "opt.v.W": rng.random((4, 3)),
                 "opt.t": np.array(i + 1), "flag": np.zeros(2, bool)}
        rec.append(record(i), "epoch")
        rec.commit_checkpoint(state, {"epoch": i, "step": 2 * i})
        states.append(state)
    return rec, states


def _chunk(store: Path, key: str) -> Path:
    files = [p for p in (store / key / "c").rglob("*") if p.is_file()] \
        if (store / key / "c").is_dir() else [store / key / "c"]
    assert len(files) == 1, files
    return files[0]


def test_commit_record_holds_a_content_hash_per_checkpoint_array(two_slots):
    rec, states = two_slots
    c = rec.commit
    assert c["slot"] == "checkpoint_b" and c["format"] == 3
    assert c["hashes"] == {k: content_hash(np.asarray(v)) for k, v in states[1].items()}
    state, info = rec.load_checkpoint()
    assert info == {"epoch": 1, "step": 2}
    for k, v in states[1].items():
        assert state[k].dtype == v.dtype and np.array_equal(state[k], v)
    # the hash sees dtype and shape, not only bytes
    a = np.arange(6, dtype=np.int64)
    assert len({content_hash(a), content_hash(a.reshape(2, 3)), content_hash(a.view(np.float64)),
                content_hash(a.copy())}) == 3
    # every chunk is written with a Zstandard checksum
    meta = json.loads((rec.path / "checkpoint_b" / "net.W" / "zarr.json").read_text())
    assert {"name": "zstd", "configuration": {"level": 0, "checksum": True}} in meta["codecs"]
    assert _chunk(rec.path, "checkpoint_b/flag").exists()  # all-False: written all the same


def _deleted(f: Path):
    f.unlink()


def _garbage16(f: Path):
    raw = bytearray(f.read_bytes())
    mid = len(raw) // 2
    raw[mid - 8: mid + 8] = bytes(range(16))
    f.write_bytes(bytes(raw))


def _bitflip(f: Path):
    raw = bytearray(f.read_bytes())
    raw[len(raw) // 2] ^= 0x04
    f.write_bytes(bytes(raw))


@pytest.mark.parametrize("damage", [_deleted, _garbage16, _bitflip])
@pytest.mark.parametrize("name", ["net.W", "opt.v.W", "opt.t"])
def test_a_damaged_checkpoint_is_refused_naming_array_and_slot(two_slots, damage, name):
    rec, _ = two_slots
    damage(_chunk(rec.path, f"checkpoint_b/{name}"))
    for call in (rec.load_checkpoint, lambda: verify_store(rec.path)):
        with pytest.raises(StoreError) as e:
            call()
        msg = str(e.value)
        assert f"checkpoint array {name} in slot checkpoint_b" in msg
        # the older slot is offered, never used
        assert "other slot, checkpoint_a (epoch 0, step 0), is intact" in msg


def test_a_chunk_that_decodes_but_is_not_the_committed_one_is_caught_by_the_hash(two_slots):
    """Chunks swapped between arrays of the same shape decode cleanly: only the hash sees it."""
    rec, states = two_slots
    src, dst = (_chunk(rec.path, f"checkpoint_b/{k}") for k in ("net.W", "opt.v.W"))
    shutil.copyfile(src, dst)
    assert np.array_equal(zarr.open_array(str(rec.path / "checkpoint_b" / "opt.v.W"))[...],
                          states[1]["net.W"])  # it reads fine...
    with pytest.raises(StoreError, match="opt.v.W in slot checkpoint_b is corrupt: its content "
                                         "does not match the hash"):
        rec.load_checkpoint()
    # when the other slot is damaged too, it is not offered
    _bitflip(_chunk(rec.path, "checkpoint_a/net.W"))
    with pytest.raises(StoreError) as e:
        rec.load_checkpoint()
    assert "other slot" not in str(e.value)


def _unchecksummed(store: Path, meta: dict) -> None:
    """Root arrays compressed without Zstandard checksums, as format 1 wrote them."""
    for key, node in meta["consolidated_metadata"]["metadata"].items():
        if node.get("node_type") != "array" or key.startswith("checkpoint_"):
            continue
        for m in (node, json.loads((store / key / "zarr.json").read_text())):
            for c in m["codecs"]:
                if c["name"] == "zstd":
                    c["configuration"]["checksum"] = False
            if m is not node:
                (store / key / "zarr.json").write_text(json.dumps(m))


def test_stores_without_hashes_still_load(two_slots):
    """A store written before content hashes (format 1) loads and verifies as 'unverified'."""
    rec, states = two_slots
    meta = json.loads((rec.path / "zarr.json").read_text())
    record = commit_record(meta["attributes"])
    del record["hashes"], record["record_hashes"], meta["attributes"]["neurosim_seal"]
    meta["attributes"][MARKER] = record | {"format": 1}  # (a mapping, as older stores have it)
    _unchecksummed(rec.path, meta)
    (rec.path / "zarr.json").write_text(json.dumps(meta))
    state, _ = rec.load_checkpoint()
    assert np.array_equal(state["net.W"], states[1]["net.W"])
    assert verify_store(rec.path)["checkpoint"] == "unverified"
    # a format-2 record without hashes is damage, not an old store
    meta["attributes"][MARKER] = json.dumps(record | {"format": 2})
    (rec.path / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="no checkpoint hashes"):
        rec.load_checkpoint()


# --------------------------------------------------------------------------------------------
# damaged run stores: inspect and --resume refuse, naming the file; resume writes nothing
# --------------------------------------------------------------------------------------------
def _slot(store: Path) -> str:
    return commit_record(json.loads((store / "zarr.json").read_text())["attributes"])["slot"]


def _truncate(f: Path, n: int = 40):
    f.write_bytes(f.read_bytes()[:n])


def _edit_json(f: Path, **items):
    meta = json.loads(f.read_text())
    meta.update(items)
    f.write_text(json.dumps(meta))


DAMAGE = {
    # name: (damage(store), needle(store) in the message)
    "checkpoint chunk deleted": (
        lambda s: _deleted(_chunk(s, f"{_slot(s)}/net.L1.W")),
        lambda s: f"checkpoint array net.L1.W in slot {_slot(s)}"),
    "16 garbage bytes in a weight chunk": (
        lambda s: _garbage16(_chunk(s, f"{_slot(s)}/net.L0.W")),
        lambda s: f"checkpoint array net.L0.W in slot {_slot(s)}"),
    "one flipped bit in Adam's v": (
        lambda s: _bitflip(_chunk(s, f"{_slot(s)}/opt.v.L1.W")),
        lambda s: f"checkpoint array opt.v.L1.W in slot {_slot(s)}"),
    "Adam's m chunk in place of v": (
        lambda s: shutil.copyfile(_chunk(s, f"{_slot(s)}/opt.m.L1.W"),
                                  _chunk(s, f"{_slot(s)}/opt.v.L1.W")),
        lambda s: "opt.v.L1.W"),
    "committed slot deleted": (
        lambda s: shutil.rmtree(s / _slot(s)),
        lambda s: f"{s / _slot(s) / 'zarr.json'} is missing"),
    "checkpoint array zarr.json truncated": (
        lambda s: _truncate(s / _slot(s) / "net.L0.W" / "zarr.json"),
        lambda s: f"{s / _slot(s) / 'net.L0.W' / 'zarr.json'} is damaged"),
    "epoch/ deleted": (
        lambda s: shutil.rmtree(s / "epoch"),
        lambda s: f"{s / 'epoch' / 'zarr.json'} is missing"),
    "garbage root chunk": (
        lambda s: (s / "train_error" / "c" / "1").write_bytes(np.random.default_rng(0).bytes(30)),
        lambda s: f"{s / 'train_error' / 'c' / '1'} is damaged"),
    "root chunk bit flip": (
        lambda s: _bitflip(s / "W_1" / "c" / "1" / "0" / "0"),
        lambda s: f"{s / 'W_1' / 'c' / '1' / '0' / '0'} is damaged"),
    "root chunk deleted": (
        lambda s: _deleted(s / "test_error" / "c" / "0"),
        lambda s: f"{s / 'test_error' / 'c' / '0'} is missing"),
    "array zarr.json truncated": (
        lambda s: _truncate(s / "train_loss" / "zarr.json"),
        lambda s: f"{s / 'train_loss' / 'zarr.json'} is damaged"),
    "array shorter than committed": (
        lambda s: _edit_json(s / "n_steps" / "zarr.json", shape=[1]),
        lambda s: f"{s / 'n_steps' / 'zarr.json'} does not match the last commit"),
    "root zarr.json truncated": (
        lambda s: _truncate(s / "zarr.json", 200),
        lambda s: f"{s / 'zarr.json'} is damaged"),
    "root zarr.json emptied": (
        lambda s: (s / "zarr.json").write_text(""),
        lambda s: f"{s / 'zarr.json'} is damaged"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damaged_store_is_refused_by_inspect_and_resume(tmp_path, made, case):
    proto, src = made
    store = tmp_path / "run.zarr"
    shutil.copytree(src, store)
    damage, needle = DAMAGE[case]
    expect = needle(store)
    damage(store)
    before = tree(tmp_path)
    one_line_error(cli("inspect", store), expect)
    one_line_error(cli("run", proto, "--out", store, "--quiet", "--resume",
                       "--set", "training.epochs=2"), expect)
    assert tree(tmp_path) == before  # nothing written, nothing made worse


def test_inspect_refuses_what_is_not_a_run_store(tmp_path):
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w").create_array("x", shape=(2,), dtype="i4")
    one_line_error(cli("inspect", tmp_path / "plain.zarr"), "not a neurosim run store")
    zarr.open_group(str(tmp_path / "sweep.zarr"), mode="w").attrs["kind"] = "sweep"
    one_line_error(cli("inspect", tmp_path / "sweep.zarr"), "sweep store")
    (tmp_path / "folder").mkdir()
    one_line_error(cli("inspect", tmp_path / "folder"), "no zarr.json")


def test_intact_store_inspects_verified_with_sizes(made):
    _, store = made
    res = cli("inspect", store)
    assert res.exit_code == 0, res.output
    assert "integrity  intact" in res.output and "every array matches its content hash" in res.output
    assert "size       recordings" in res.output and "(1 slot)" in res.output
    info = json.loads(cli("inspect", store, "--json").output)
    assert info["integrity"]["checkpoint"] == "verified"
    total = sum(p.stat().st_size for p in store.rglob("*") if p.is_file())
    sizes = info["size_bytes"]
    assert sizes["recordings"] + sizes["checkpoints"] == total
    slot = _slot(store)
    assert sizes["checkpoints"] == sum(p.stat().st_size for p in (store / slot).rglob("*")
                                       if p.is_file())


def test_inspect_names_the_fractional_epoch_of_a_run_cut_short(made, tmp_path):
    proto, _ = made
    store = tmp_path / "cut.zarr"
    res = cli("run", proto, "--out", store, "--quiet", "--set", "training.epochs=3",
              "--set", "training.max_steps=5")
    assert res.exit_code == 0, res.output
    info = json.loads(cli("inspect", store, "--json").output)
    last = info["epochs"][-1]
    assert 1 < last < 3 and not float(last).is_integer()
    assert info["integrity"]["step"] == 5 and info["integrity"]["epoch"] == round(last, 3)
    assert f"(epoch {round(last, 3)}, step 5)" in cli("inspect", store).output


# --------------------------------------------------------------------------------------------
# a finished run keeps one slot, and can be extended from it
# --------------------------------------------------------------------------------------------
def test_finished_run_keeps_one_slot_and_extends_bit_identical(tmp_path, made):
    proto, src = made
    store = tmp_path / "run.zarr"
    shutil.copytree(src, store)
    slot = _slot(store)
    assert sorted(p.name for p in store.iterdir() if p.name.startswith("checkpoint_")) == [slot]
    meta = json.loads((store / "zarr.json").read_text())
    assert not [k for k in meta["consolidated_metadata"]["metadata"]
                if k.startswith("checkpoint_") and not k.startswith(slot)]
    assert store_sizes(store)["slots"] == [slot]
    res = cli("run", proto, "--out", store, "--quiet", "--resume", "--set", "training.epochs=2")
    assert res.exit_code == 0, res.output
    ref = tmp_path / "ref.zarr"
    assert cli("run", proto, "--out", ref, "--quiet", "--set", "training.epochs=2").exit_code == 0
    assert_same_store(ref, store)
    assert len(store_sizes(store)["slots"]) == 1


def test_inspect_of_a_store_being_written_is_not_mistaken_for_damage(two_slots, monkeypatch):
    """A writer that commits twice while a reader checks the store rewrites the slot the reader
    was checking; the reader sees the commit change and checks again."""
    from neurosim.recording.store import verify as verify_mod

    rec, _ = two_slots
    real = verify_mod.load_slot
    calls = []

    def racing(path, slot, hashes, offer=True):
        if not calls:  # the writer goes on under the reader's feet
            for i in (2, 3):
                rec.append(record(i), "epoch")
                rec.commit_checkpoint({"net.W": np.full((4, 3), float(i)), "opt.v.W": np.ones((4, 3)),
                                       "opt.t": np.array(i + 1), "flag": np.ones(2, bool)},
                                      {"epoch": i, "step": 2 * i})
        calls.append(slot)
        return real(path, slot, hashes, offer)

    monkeypatch.setattr(verify_mod, "load_slot", racing)
    info = verify_store(rec.path)
    assert calls[0] == calls[-1] == "checkpoint_b" and len(calls) > 1 and info["epoch"] == 3


def test_root_attrs_are_netcdf_values_and_the_store_exports(tmp_path, made):
    """The commit record is a JSON string (it was a mapping: ``to_netcdf`` failed on it)."""
    from neurosim.recording import open_store

    _, store = made
    with open_store(store) as ds:
        assert all(isinstance(v, (str, int, float)) for v in ds.attrs.values()), ds.attrs
        record = commit_record(ds.attrs)
        assert record["slot"] == _slot(store) and set(record["hashes"]) >= {"net.L0.W"}
        ds.to_netcdf(tmp_path / "run.nc")
    assert commit_record({MARKER: {"slot": "checkpoint_a"}}) == {"slot": "checkpoint_a"}  # older
    assert commit_record({MARKER: "{not json"}) is None
