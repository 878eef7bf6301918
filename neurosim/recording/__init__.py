"""Recording: the run store (commit protocol, lock), observers and their registry, the
metric / feedback observers.  Everything a run writes goes through this package."""

from .store import (  # noqa: F401
    _FAULT,
    MARKER,
    Recorder,
    StoreError,
    StoreLock,
    _jsonable,
    consolidate,
    open_store,
    versions,
)
