"""Recording: the run store (commit protocol, lock), observers and their registry, the
metric / feedback observers.  Everything a run writes goes through this package."""

from .store import (  # noqa: F401
    MARKER,
    Recorder,
    StoreError,
    StoreLock,
    StoreWriteError,
    commit_record,
    open_store,
    prepare_store,
    read_root,
    real_path,
    store_sizes,
    verify_store,
    versions,
)
