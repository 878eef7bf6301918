"""Fault injection for the crash tests: die at the N-th store mutation of this process.

The recorder's writes, renames and deletes call :func:`fault_point` first (through this
module, ``faults.fault_point(...)``, so that a test can replace it).  Tests of write failures
replace it with one that raises ``OSError``: every call site turns that into a
:class:`~neurosim.recording.store.errors.StoreWriteError`.
"""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

#: store mutations counted so far by this process (while ``$NEUROSIM_FAULT_KILL_AT`` is set)
COUNT = {"n": 0}


def fault_point(path: Path | None = None) -> None:
    """Count one store mutation; SIGKILL this process at ``$NEUROSIM_FAULT_KILL_AT``.

    Used by the crash tests to stop a run between any two writes, leaving a
    half-written temporary file as a kill inside a write would.  A value that
    is not a number is a file that receives the count when the process exits.
    """
    at = os.environ.get("NEUROSIM_FAULT_KILL_AT")
    if not at:
        return
    COUNT["n"] += 1
    if not at.isdigit():
        if COUNT["n"] == 1:
            import atexit

            atexit.register(lambda: Path(at).write_text(str(COUNT["n"])))
        return
    if COUNT["n"] == int(at):
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.with_name(path.name + f".{uuid.uuid4().hex}.partial").write_bytes(b"\x00" * 7)
            except OSError:
                pass
        os.kill(os.getpid(), signal.SIGKILL)
