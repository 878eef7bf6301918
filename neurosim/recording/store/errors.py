"""The errors of a store: :class:`StoreError` (a store cannot be used as asked) and
:class:`StoreWriteError` (writing failed), each one line naming the path and what to do."""

from __future__ import annotations

import errno
from pathlib import Path

from .format import ROOT


class StoreError(RuntimeError):
    """A store cannot be used as asked; the message names the path and what to do."""


class StoreWriteError(StoreError):
    """Writing a store failed (disk full, file too large, not writable, ...)."""


def write_error(exc: OSError, store: Path, doing: str = "write") -> StoreWriteError:
    """One line for a failed write, with what to do next."""
    why = exc.strerror or str(exc) or type(exc).__name__
    where = exc.filename or store
    msg = f"cannot {doing} {where}: {why}"
    if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        fix = ("raise the file size limit (ulimit -f) or write elsewhere" if exc.errno == errno.EFBIG
               else "free some space")
        if (store / ROOT).is_file():
            msg += f"; the store keeps its last checkpoint: {fix}, then continue the run with --resume"
        else:
            msg += f"; nothing was recorded: {fix}, then run again"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        msg += " (the store or its directory is not writable; choose another --out)"
    return StoreWriteError(msg)


def why(exc: BaseException) -> str:
    """An exception in a few words: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
