"""One writer per store: an exclusive ``flock`` held on the store directory itself.

The lock belongs to the store, not to a name beside it: it is taken on the store
directory's own inode (opened read-only), so every path that reaches the store — a
symlink, a second name of a parent folder, a bind mount — meets the same lock, and there
is no lock file that could be deleted, followed or confused with a user's file.  Nothing
is created, truncated or deleted to take it; the kernel drops it when the process dies, so
a killed run never blocks its resume.

A store that does not exist yet has nothing to lock: its writer locks the directory it
builds beside the destination (``.NAME.<id>.creating``) and renames it into place; a
second writer that decided to create the same store at the same moment finds the
destination taken and is refused (see :meth:`Recorder.create`).  A store replaced by
``--overwrite`` stays locked until its writer has removed it, and the new one is locked
before it is renamed into place.

Older neurosim versions locked ``STORE.lock`` beside the store.  That file is never
created, written or deleted now; when one is there, it is probed read-only (a shared
``flock`` that conflicts with an older writer's exclusive one), so a run of an older
version still in progress is refused too.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from pathlib import Path

from .errors import StoreError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no locking
    fcntl = None


def real_path(path) -> Path:
    """Absolute path with every symlink resolved: a store's identity (where it is created),
    whatever name it is reached by."""
    return Path(os.path.realpath(os.fspath(path)))


_HELD: dict = {}  # real path -> [fd or None, count]
_HELD_LOCK = threading.Lock()
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def holder_pid(fd: int) -> str:
    """The pid holding a ``flock`` on the file open at ``fd`` (from ``/proc/locks``), or "?"."""
    st = os.fstat(fd)
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    ino = f":{st.st_ino}"
    best = "?"
    try:
        with open("/proc/locks") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 5 and parts[1] == "FLOCK" and parts[5].endswith(ino):
                    if parts[5] == dev:
                        return parts[4]
                    best = parts[4]
    except OSError:
        pass
    return best


def lock_dir(path: Path, named: str) -> int | None:
    """Open the directory ``path`` (no symlink followed, never blocking) and take an exclusive
    ``flock`` on it; the descriptor, or None if no directory is there (nothing to lock).
    StoreError if another process holds it."""
    for _ in range(100):
        try:
            fd = os.open(path, _DIR_FLAGS)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # a symlink put there after the path was resolved
                return None
            raise StoreError(f"cannot open {named} to lock it: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = holder_pid(fd)
            os.close(fd)
            raise StoreError(
                f"{named} is being written by another process (pid {pid}; it holds the lock on "
                f"the store directory). A store has one writer at a time: wait for that run to "
                f"finish or stop it, then resume with --resume.") from None
        except OSError as exc:
            os.close(fd)
            raise StoreError(f"cannot lock {named}: {exc.strerror or exc} (the file system does "
                             f"not support flock on a directory; write the store to a local "
                             f"disk)") from None
        try:  # the same directory is still at the path (not replaced between open and flock)
            here = os.stat(path, follow_symlinks=False)
            mine = os.fstat(fd)
            if (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino):
                return fd
        except OSError:
            pass
        os.close(fd)
    raise StoreError(f"cannot lock {named}: it keeps being replaced by another process")


def lock_new_dir(path: Path) -> int:
    """Lock a directory this process just made (nobody else holds it)."""
    fd = os.open(path, _DIR_FLAGS)
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pass
    return fd


def probe_legacy_lock(store: Path, named: str) -> None:
    """Refuse if an older neurosim holds ``STORE.lock`` beside the store.  The file is only
    opened read-only (never created, followed if a symlink, truncated or deleted)."""
    legacy = store.with_name(store.name + ".lock")
    try:
        if not stat.S_ISREG(os.lstat(legacy).st_mode):
            return
        fd = os.open(legacy, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.read(fd, 64).decode(errors="replace").strip() or "?"
            if not pid.isdigit():
                pid = "?"
            raise StoreError(
                f"{named} is being written by another process (pid {pid}; an older neurosim "
                f"holding {legacy}). A store has one writer at a time: wait for that run to "
                f"finish or stop it, then resume with --resume.") from None
        except OSError:
            return
    finally:
        os.close(fd)


class StoreLock:
    """Exclusive writer lock of the store at ``store`` (re-entrant within a process).

    Held on the store directory's inode (see the module doc); when nothing is at the path
    yet, holding it reserves nothing, and :meth:`adopt` takes over the lock of the directory
    that the writer then renames into place."""

    def __init__(self, store):
        self.given = Path(store)
        self.store = real_path(store)
        if not self.store.name or self.store.name in (".", ".."):
            raise StoreError(f"{store} cannot be a store: give a path below a directory, "
                             f"e.g. runs/name.zarr")

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()

    def _key(self):
        return str(self.store)

    def _named(self) -> str:
        same = os.path.abspath(self.given) == str(self.store)
        return str(self.given) if same else f"{self.given} (the store {self.store})"

    def acquire(self) -> None:
        if fcntl is None:  # pragma: no cover
            return
        with _HELD_LOCK:
            key = self._key()
            if key in _HELD:
                _HELD[key][1] += 1
                return
            probe_legacy_lock(self.store, self._named())
            fd = lock_dir(self.store, self._named())
            _HELD[key] = [fd, 1]

    def ensure(self) -> None:
        """Lock the store directory if it appeared since :meth:`acquire` found nothing there
        (StoreError if another process got it first)."""
        if fcntl is None:  # pragma: no cover
            return
        with _HELD_LOCK:
            entry = _HELD.get(self._key())
            if entry is not None and entry[0] is None:
                entry[0] = lock_dir(self.store, self._named())

    def adopt(self, fd: int) -> int | None:
        """Hold the lock of the directory open at ``fd`` (now at this store's path) in place of
        the one held so far; returns the descriptor given up (the caller closes it once the old
        directory is gone), or ``fd`` itself if this process does not hold the lock."""
        with _HELD_LOCK:
            entry = _HELD.get(self._key())
            if entry is None:
                return fd
            old, entry[0] = entry[0], fd
            return old

    def release(self) -> None:
        with _HELD_LOCK:
            key = self._key()
            entry = _HELD.get(key)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] == 0:
                if entry[0] is not None:
                    os.close(entry[0])
                del _HELD[key]

    @property
    def held(self) -> bool:
        return self._key() in _HELD


def try_lock_dir(path: Path) -> int | None:
    """An exclusive ``flock`` on the directory ``path`` if nobody holds it (its descriptor),
    else None.  Used to tell a live writer's temporary directory from a dead one's."""
    try:
        fd = os.open(path, _DIR_FLAGS)
    except OSError:
        return None
    if fcntl is None:  # pragma: no cover
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except OSError:
        os.close(fd)
        return None
