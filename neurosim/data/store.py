"""Where datasets live and how their files are read: a data directory,
regular files only, checksums of the bytes actually parsed, optional download.

The directory is ``$NEUROSIM_DATA_DIR`` if set, else a per-user cache
(``$XDG_CACHE_HOME/neurosim`` or ``~/.cache/neurosim``).  Each dataset is a
sub-folder (``mnist/``, ``cifar10/``).

Every dataset file is read whole by :func:`read_bytes`, which opens only
regular files (a FIFO, a device such as ``/dev/zero`` reached through a
symbolic link, a directory or a socket is refused at once, never read), and a
file with a known MD5 is checked by :func:`read_verified` on the very bytes
that are then parsed — on every load, so no cached verdict can vouch for a
file that changed since (hashing all of MNIST takes milliseconds).  Missing
files are downloaded by pooch, checked against their MD5, when a network is
reachable (never when ``$NEUROSIM_OFFLINE`` is set); otherwise a
:class:`DataError` says which files to put where.  Every problem with a data
file is a one-line :class:`DataError` naming the file.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path


class DataError(RuntimeError):
    """A dataset file is missing, unreadable, not a regular file, truncated or corrupt."""


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("NEUROSIM_DATA_DIR")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "neurosim"


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _refuse(path: Path, mode: int):
    shown = f"{path} (a link to {os.path.realpath(path)})" if path.is_symlink() else str(path)
    return DataError(f"{shown} is {_kind(mode)}, not a regular file; put the dataset file itself "
                     f"there")


def open_regular(path: Path):
    """Open ``path`` for binary reading if it is a regular file (after symbolic links).

    Anything else is refused before a byte is read: reading a FIFO or a
    character device would block or never end.  The file is opened
    non-blocking and checked again on the open descriptor, so a file swapped
    for a FIFO between the two checks is refused too.
    """
    path = Path(path)
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(path, st.st_mode)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        if path.is_symlink():
            raise DataError(f"{path} is a symbolic link to {os.readlink(path)}, which does not "
                            f"exist") from None
        raise DataError(f"{path} is missing") from None
    except OSError as exc:
        raise DataError(f"{path} cannot be read ({exc.strerror or exc}); check its permissions "
                        f"or put a readable copy there") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _refuse(path, mode)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: Path) -> bytes:
    """Whole content of the regular file ``path`` (DataError for anything else)."""
    with open_regular(path) as f:
        try:
            return f.read()
        except OSError as exc:
            raise DataError(f"{path} cannot be read ({exc.strerror or exc})") from None


def md5(path: Path, chunk: int = 1 << 20) -> str:
    """MD5 of a regular file, read in chunks."""
    h = hashlib.md5()
    with open_regular(path) as f:
        try:
            while block := f.read(chunk):
                h.update(block)
        except OSError as exc:
            raise DataError(f"{path} cannot be read ({exc.strerror or exc})") from None
    return h.hexdigest()


def _corrupt(path: Path, got: str, expected: str) -> DataError:
    return DataError(f"{path} is corrupt or truncated (md5 {got}, expected {expected}). "
                     f"Delete it and put a fresh copy of the official file there.")


def read_verified(path: Path, expected_md5: str) -> bytes:
    """Content of ``path``, checked against its known MD5 (the bytes returned
    are the bytes hashed)."""
    raw = read_bytes(path)
    got = hashlib.md5(raw).hexdigest()
    if got != expected_md5:
        raise _corrupt(path, got, expected_md5)
    return raw


def verify(path: Path, expected_md5: str) -> None:
    """Raise DataError unless ``path`` is a regular file with the expected MD5."""
    got = md5(path)
    if got != expected_md5:
        raise _corrupt(path, got, expected_md5)


def fetch(folder: Path, filename: str, expected_md5: str, urls: list[str], how_to: str) -> Path:
    """Path of a dataset file, downloading it (checked) if missing.

    The caller reads an existing file with :func:`read_verified` or
    :func:`verify`: its content is checked on every use, not here.
    """
    path = folder / filename
    if not path.exists() and not path.is_symlink():
        errors = []
        if os.environ.get("NEUROSIM_OFFLINE"):
            urls, errors = [], ["no download attempted: NEUROSIM_OFFLINE is set"]
        for url in urls:
            try:
                _download(url, path, expected_md5)
                break
            except Exception as exc:  # network down, 404, checksum mismatch...
                errors.append(f"{url}: {_brief(exc)}")
        else:
            raise DataError(
                f"dataset file {filename} not found in {folder} and could not be downloaded "
                f"({'; '.join(errors) or 'no source'}). {how_to} "
                f"Set NEUROSIM_DATA_DIR to the folder that contains {folder.name}/, or copy the "
                f"files there."
            )
    return path


def _download(url: str, path: Path, expected_md5: str, timeout: float = 30.0) -> None:
    """Download ``url`` to ``path`` with pooch: into a temporary file of its own beside ``path``
    (concurrent downloads never share one), checked against the MD5, then moved into place."""
    import pooch

    log = pooch.get_logger()
    level = log.level
    log.setLevel("WARNING")  # its "Downloading data from ..." for every source tried; the
    try:  # outcome is neurosim's to say (the file, or one line naming each source's failure)
        pooch.retrieve(url, known_hash=f"md5:{expected_md5}", fname=path.name, path=path.parent,
                       downloader=pooch.HTTPDownloader(timeout=timeout, progressbar=False))
    finally:
        log.setLevel(level)


def _brief(exc: Exception) -> str:
    """Why one source failed, in a few words (the HTTP library's own text is a paragraph)."""
    import requests

    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.ConnectionError):
        text = str(exc)
        if "NameResolution" in text or "Name or service not known" in text:
            return "no network (the host name does not resolve)"
        if "Connection refused" in text:
            return "connection refused"
        return "could not connect"
    return " ".join(str(exc).split())  # e.g. pooch's checksum mismatch, with both hashes
