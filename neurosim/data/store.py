"""Where datasets live: a data directory, checksums, optional download.

The directory is ``$NEUROSIM_DATA_DIR`` if set, else a per-user cache
(``$XDG_CACHE_HOME/neurosim`` or ``~/.cache/neurosim``).  Each dataset is a
sub-folder (``mnist/``, ``cifar10/``).  Files are verified against known MD5
checksums on first use (a stamp in the user cache, never in the data
directory, records size and mtime so the hash is not recomputed every run);
missing files are downloaded when a network is reachable (never when
``$NEUROSIM_OFFLINE`` is set); otherwise a :class:`DataError` says which
files to put where.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from pathlib import Path


class DataError(RuntimeError):
    """A dataset file is missing, truncated or corrupt."""


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("NEUROSIM_DATA_DIR")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "neurosim"


def md5(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _stamp_path(path: Path) -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "neurosim" / "verified"
    key = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:20]
    return cache / f"{key}.json"


def verify(path: Path, expected_md5: str) -> None:
    """Raise DataError unless ``path`` has the expected MD5."""
    st = path.stat()
    stamp = _stamp_path(path)
    key = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "md5": expected_md5}
    try:
        if json.loads(stamp.read_text()) == key:
            return
    except (OSError, ValueError):
        pass
    got = md5(path)
    if got != expected_md5:
        raise DataError(
            f"{path} is corrupt or truncated (md5 {got}, expected {expected_md5}). "
            f"Delete it and put a fresh copy of the official file there."
        )
    try:  # no writable cache is fine: we just verify again next time
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps(key))
    except OSError:
        pass


def fetch(folder: Path, filename: str, expected_md5: str, urls: list[str], how_to: str) -> Path:
    """Path of a verified dataset file, downloading it if missing."""
    path = folder / filename
    if not path.exists():
        errors = []
        if os.environ.get("NEUROSIM_OFFLINE"):
            urls, errors = [], ["no download attempted: NEUROSIM_OFFLINE is set"]
        for url in urls:
            try:
                _download(url, path, expected_md5)
                break
            except Exception as exc:  # network down, 404, checksum mismatch...
                errors.append(f"{url}: {exc}")
        else:
            raise DataError(
                f"dataset file {filename} not found in {folder} and could not be downloaded "
                f"({'; '.join(errors) or 'no source'}).\n{how_to}\n"
                f"Set NEUROSIM_DATA_DIR to the folder that contains {folder.name}/, or copy the "
                f"files there."
            )
    verify(path, expected_md5)
    return path


def _download(url: str, path: Path, expected_md5: str, timeout: float = 30.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as f:
        while block := r.read(1 << 20):
            f.write(block)
    got = md5(tmp)
    if got != expected_md5:
        tmp.unlink(missing_ok=True)
        raise DataError(f"checksum mismatch ({got} != {expected_md5})")
    os.replace(tmp, path)
