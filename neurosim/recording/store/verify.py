"""Integrity of a run store: :func:`verify_store` checks a store against its last commit and
names the first damaged file (see :mod:`neurosim.recording.store.seal` for the hashes)."""

from __future__ import annotations

import warnings
from pathlib import Path

import xarray as xr

from .arrays import check_array_data, load_slot
from .errors import StoreError, why
from .format import FORMAT, ROOT, SLOTS
from .layout import check_tree
from .root import commit_record, load_json, read_root
from .seal import SEAL, chain_start, rows, seal_of


def verify_store(path) -> dict:
    """Check a run store against its last commit; StoreError naming the first damaged file.

    Checked: nothing inside the store is a link or a special file (found without opening
    anything, so nothing blocks); the root metadata's seal (every root attr, the commit
    record, the consolidated metadata); the format the store claims against what it holds
    (a format set back does not switch checks off); for every array of the commit (root
    records and the committed checkpoint slot) its metadata as committed (everything but a
    longer shape); the committed slot's loop position and hashes as in the commit record;
    every committed chunk of the root records is there (format 2) and decodes (Zstandard
    checksums) and every record array matches its hash chain (format 3); every array of the
    committed checkpoint matches its content hash; the store opens with xarray.  Returns
    ``{"slot", "epoch", "step", "checkpoint", "records", "sealed", "arrays", "format"}`` with
    ``checkpoint`` one of ``"verified"`` (content hashes), ``"unverified"`` (a format-1 store:
    no hashes; it decodes) or ``None`` (no commit) and ``records`` ``"verified"`` (hash chains)
    or ``"decoded"`` (older formats: every chunk decodes).

    A store that a running writer commits to while it is checked is checked again
    (what changed under the check is not damage).
    """
    path = Path(path)
    for attempt in range(3):
        check_tree(path)
        meta = read_root(path)
        try:
            return _verify(path, meta)
        except StoreError:
            if attempt == 2 or read_root(path) == meta:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


#: loop position kept both in the commit record and in the committed slot's attrs
_POSITION = ("epoch", "batch", "step", "loss_sum", "loss_n", "stopped", "elapsed")


def _same_meta(disk: dict, node: dict) -> bool:
    """An array's or group's metadata on disk as committed (an array may have grown since)."""
    skip = ("shape", "consolidated_metadata")
    return ({k: v for k, v in disk.items() if k not in skip}
            == {k: v for k, v in node.items() if k not in skip})


def _verify(path: Path, meta: dict) -> dict:
    root = path / ROOT
    attrs = meta["attributes"]
    marker = commit_record(attrs)
    seal = attrs.get(SEAL)
    if seal is not None and seal != seal_of(meta):
        raise StoreError(f"{root} is damaged: the root metadata (attrs, commit record or "
                         f"consolidated metadata) was changed outside neurosim (its seal does not "
                         f"match)")
    try:
        fmt = int(marker.get("format", 1))
    except (TypeError, ValueError):
        raise StoreError(f"{root} is damaged: its commit record has format "
                         f"{marker.get('format')!r}") from None
    chains = marker.get("record_hashes")
    if fmt >= 3 and seal is None:
        raise StoreError(f"{root} is damaged: a format-{fmt} store without its seal")
    if seal is None and chains is not None:
        raise StoreError(f"{root} is damaged: its seal was removed (its commit record holds "
                         f"record hashes, which only sealed stores have)")
    if fmt > FORMAT:
        raise StoreError(f"{root}: store format {fmt} is newer than this neurosim reads ({FORMAT}); "
                         f"update neurosim")
    slot = marker.get("slot")
    if slot is not None and slot not in SLOTS:
        raise StoreError(f"{root} is damaged: its commit record names slot {slot!r}")
    committed = (meta.get("consolidated_metadata") or {}).get("metadata")
    if not isinstance(committed, dict):
        raise StoreError(f"{root} is damaged: it has no consolidated metadata")
    if slot and slot not in committed:
        raise StoreError(f"{root} is damaged: the committed slot {slot} is not in its metadata")
    if seal is None and fmt < 2 and _all_checksummed(committed):
        raise StoreError(f"{root} is damaged: its commit record says format {fmt}, but its "
                         f"arrays were written in format 2 or later (the format was changed "
                         f"outside neurosim)")
    if fmt >= 3 and slot and not isinstance(chains, dict):
        raise StoreError(f"{root} is damaged: its commit record has no record hashes")
    n = 0
    for key in sorted(committed):
        node = committed[key]
        top = key.split("/")[0]
        if top in SLOTS and top != slot:
            continue  # the free slot: not part of the commit
        disk = load_json(path / key / ROOT, f"metadata of {key} in the last commit")
        if disk.get("node_type") != node.get("node_type"):
            raise StoreError(f"{path / key / ROOT} is damaged: it is a {disk.get('node_type')}, "
                             f"the commit has a {node.get('node_type')}")
        if not _same_meta(disk, node):
            what = ("its loop position or content hashes" if top in SLOTS and key == top
                    else "its attrs, codecs or data type")
            raise StoreError(f"{path / key / ROOT} does not match the last commit ({what} were "
                             f"changed outside neurosim)")
        if node.get("node_type") != "array":
            continue
        want = list(node.get("shape") or [])
        have = disk.get("shape")
        if (not isinstance(have, list) or len(have) != len(want)
                or any(h < w for h, w in zip(have, want))):
            raise StoreError(f"{path / key / ROOT} does not match the last commit (shape {have}, "
                             f"data type {disk.get('data_type')}; committed {want}, "
                             f"{node.get('data_type')}): the store was changed outside neurosim")
        n += 1
        if top in SLOTS:
            continue
        start = None
        if isinstance(chains, dict):
            if key not in chains:
                raise StoreError(f"{root} is damaged: its commit record has no record hash of "
                                 f"array {key}")
            start = chain_start(node.get("data_type"), want[1:])
        got = check_array_data(path, key, want, all_chunks=fmt >= 2, chain=start)
        if start is not None and [rows(want), got] != list(chains[key]):
            raise StoreError(f"{path / key} does not match its record hash in the commit record "
                             f"(a chunk was changed, swapped, truncated or deleted outside "
                             f"neurosim)")
    if isinstance(chains, dict):
        extra = sorted(set(chains) - set(committed))
        if extra:
            raise StoreError(f"{root} is damaged: its commit record has a record hash of {extra[0]}, "
                             f"which is not in the commit")
    checkpoint = None
    if slot:
        hashes = marker.get("hashes")
        if hashes is None and fmt >= 2:
            raise StoreError(f"{root} is damaged: its commit record has no checkpoint hashes")
        if hashes is not None:
            arrays = {k.split("/", 1)[1] for k, v in committed.items()
                      if k.startswith(slot + "/") and v.get("node_type") == "array"}
            if not isinstance(hashes, dict) or set(hashes) != arrays:
                missing = sorted(arrays - set(hashes or {})) or sorted(set(hashes or {}) - arrays)
                raise StoreError(f"{root} is damaged: its commit record's checkpoint hashes do not "
                                 f"list the arrays of slot {slot} (differs at {missing[:1]})")
        _, info = load_slot(path, slot, hashes)
        differ = [k for k in _POSITION if k in marker and info.get(k) != marker.get(k)]
        if differ:
            raise StoreError(f"{path / slot / ROOT} is damaged: its loop position ({differ[0]} = "
                             f"{info.get(differ[0])!r}) differs from the commit record's "
                             f"({marker.get(differ[0])!r})")
        checkpoint = "verified" if hashes is not None else "unverified"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            xr.open_zarr(str(path)).close()
    except Exception as exc:  # noqa: BLE001 - any failure to open is damage
        raise StoreError(f"{path} does not open with xarray ({why(exc)})") from None
    return {"slot": slot, "epoch": marker.get("epoch"), "step": marker.get("step"),
            "checkpoint": checkpoint, "records": "verified" if isinstance(chains, dict) else "decoded",
            "sealed": seal is not None, "arrays": n, "format": fmt}


def _all_checksummed(committed: dict) -> bool:
    """Every committed root array is compressed with Zstandard checksums (format 2 and later)."""
    arrays = [v for k, v in committed.items()
              if k.split("/")[0] not in SLOTS and v.get("node_type") == "array"]

    def checksummed(node):
        return any(isinstance(c, dict) and c.get("name") == "zstd"
                   and (c.get("configuration") or {}).get("checksum") for c in node.get("codecs") or ())

    return bool(arrays) and all(checksummed(v) for v in arrays)
