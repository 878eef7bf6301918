"""Downloading a missing dataset file (neurosim.data.store.fetch), against an HTTP server on
the loopback address: checked against its MD5, each download in a temporary file of its own
(two at once never share one), and a one-line DataError when no source answers."""

import hashlib
import http.server
import socket
import threading
from functools import partial
from pathlib import Path

import pytest

from neurosim.data.store import DataError, fetch

CONTENT = bytes(range(256)) * 4096  # 1 MiB
MD5 = hashlib.md5(CONTENT).hexdigest()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path, monkeypatch):
    """Base URL of a server on 127.0.0.1 that serves ``served/data.bin``."""
    monkeypatch.delenv("NEUROSIM_OFFLINE", raising=False)
    served = tmp_path / "served"
    served.mkdir()
    (served / "data.bin").write_bytes(CONTENT)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                            partial(_Quiet, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def _leftovers(folder: Path, name: str) -> list:
    return sorted(p.name for p in folder.iterdir() if p.name != name)


def test_downloads_a_missing_file_checked(server, tmp_path):
    folder = tmp_path / "data" / "mnist"
    path = fetch(folder, "data.bin", MD5, [server + "data.bin"], "how to")
    assert path == folder / "data.bin" and path.read_bytes() == CONTENT
    assert _leftovers(folder, "data.bin") == []


def test_two_downloads_at_once_share_no_temporary_file(server, tmp_path):
    folder = tmp_path / "data"
    out, errors = [], []

    def get():
        try:
            out.append(fetch(folder, "data.bin", MD5, [server + "data.bin"], "how to"))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=get) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(out) == 4
    assert (folder / "data.bin").read_bytes() == CONTENT
    assert _leftovers(folder, "data.bin") == []


def test_a_wrong_checksum_leaves_nothing_and_tries_the_next_source(server, tmp_path):
    folder = tmp_path / "data"
    with pytest.raises(DataError) as exc:
        fetch(folder, "data.bin", "0" * 32, [server + "data.bin"], "Put it there.")
    msg = str(exc.value)
    assert "\n" not in msg and "data.bin not found in" in msg and "0" * 32 in msg
    assert not folder.exists() or list(folder.iterdir()) == []
    # a source that fails (404) is followed by the next one
    path = fetch(folder, "data.bin", MD5, [server + "missing.bin", server + "data.bin"], "")
    assert path.read_bytes() == CONTENT
    with pytest.raises(DataError, match=r"missing\.bin: HTTP 404\)"):
        fetch(folder, "other.bin", MD5, [server + "missing.bin"], "")


def test_no_network_is_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("NEUROSIM_OFFLINE", raising=False)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataError) as exc:
        fetch(tmp_path / "data", "data.bin", MD5, [f"http://127.0.0.1:{port}/data.bin"],
              "Download it by hand.")
    msg = str(exc.value)
    assert "\n" not in msg and "could not be downloaded" in msg and "Download it by hand." in msg
    assert f"http://127.0.0.1:{port}/data.bin: connection refused)" in msg  # a short reason
    monkeypatch.setenv("NEUROSIM_OFFLINE", "1")
    with pytest.raises(DataError, match="NEUROSIM_OFFLINE is set"):
        fetch(tmp_path / "data", "data.bin", MD5, [f"http://127.0.0.1:{port}/data.bin"], "")
