"""The downloader and load_mnist(download=True), against a local HTTP server on 127.0.0.1.

No test touches the internet: a ``http.server`` in a thread serves small IDX files generated here,
with Range support (``/range/``), without it (``/norange/``), cutting the first transfer of each
file short (``/cut/``), answering too slowly (``/slow/``), a byte at a time (``/trickle/``),
without a length (``/nolength/``), without a validator (``/noetag/``), and 404 for anything else.
Each file has a strong ETag (from its content) and honours ``If-Range``.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from learnflux.data import download, load_mnist, write_idx
from learnflux.errors import ConfigError, DownloadError


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):  # noqa: N802 (http.server's name)
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        server.if_range.append(self.headers.get("If-Range"))
        m = re.fullmatch(r"/(range|norange|cut|slow|trickle|nolength|noetag)/(.+)", self.path)
        body = server.files.get(m.group(2)) if m else None
        if body is None:
            self.send_error(404, "Not Found")
            return
        mode = m.group(1)
        if mode == "slow":
            time.sleep(1.0)
        start = 0
        rng = self.headers.get("Range")
        etag = f'"{hashlib.sha256(body).hexdigest()[:16]}"'
        if_range = self.headers.get("If-Range")
        if if_range is not None and if_range != etag:
            rng = None  # the file changed since the partial copy: send it whole
        if rng and mode in ("range", "cut", "noetag"):
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        if mode != "noetag":
            self.send_header("ETag", etag)
        if mode == "nolength":
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if mode == "trickle":
            for i in range(len(payload)):
                self.wfile.write(payload[i : i + 1])
                self.wfile.flush()
                time.sleep(0.05)
            return
        if mode == "cut" and server.cut_once.get(m.group(2), True):
            server.cut_once[m.group(2)] = False
            self.wfile.write(payload[: len(payload) // 2])  # then drop the connection
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(payload)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # a client that timed out and left: expected
        pass


@pytest.fixture
def server():
    srv = _QuietServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.requests, srv.cut_once, srv.if_range = {}, [], {}, []
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    srv.base = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def _blob(n=50_000, seed=0):
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def _sha(b):
    return hashlib.sha256(b).hexdigest()


def test_download_verifies_and_renames(server, tmp_path):
    body = _blob()
    server.files["f.bin"] = body
    seen = []
    path = download(
        f"{server.base}/range/f.bin",
        tmp_path / "f.bin",
        sha256=_sha(body),
        progress=lambda d, t: seen.append((d, t)),
    )
    assert path == tmp_path / "f.bin" and path.read_bytes() == body
    assert not (tmp_path / "f.bin.part").exists()
    assert seen[-1] == (len(body), len(body))
    # already there with the right checksum: no new request
    n = len(server.requests)
    assert download(f"{server.base}/range/f.bin", tmp_path / "f.bin", sha256=_sha(body)) == path
    assert len(server.requests) == n
    # a directory as dest: named after the URL
    assert download(f"{server.base}/range/f.bin", tmp_path) == path


def test_bad_checksum_deletes_the_file_and_names_both_digests(server, tmp_path):
    body = _blob()
    server.files["f.bin"] = body
    wrong = "0" * 64
    with pytest.raises(DownloadError, match=f"expected {wrong}, got {_sha(body)}"):
        download(f"{server.base}/range/f.bin", tmp_path / "f.bin", sha256=wrong)
    assert not (tmp_path / "f.bin").exists() and not (tmp_path / "f.bin.part").exists()
    with pytest.raises(ConfigError, match="64 hexadecimal"):
        download(f"{server.base}/range/f.bin", tmp_path / "f.bin", sha256="abc")


def test_http_404_is_a_clear_error(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{server.base}/range/missing.gz", tmp_path / "m.gz")
    assert not (tmp_path / "m.gz").exists()


def test_unreachable_host_and_timeout(server, tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there any more: connection refused
    with pytest.raises(DownloadError, match="cannot reach"):
        download(f"http://127.0.0.1:{port}/x", tmp_path / "x", timeout=5)
    server.files["f.bin"] = _blob(100)
    with pytest.raises(DownloadError, match="timed out"):
        download(f"{server.base}/slow/f.bin", tmp_path / "f.bin", timeout=0.2)


def test_interrupted_transfer_resumes_with_range(server, tmp_path):
    body = _blob(80_000, seed=1)
    server.files["f.bin"] = body
    url = f"{server.base}/cut/f.bin"
    with pytest.raises(DownloadError, match="interrupted.*resume"):
        download(url, tmp_path / "f.bin", sha256=_sha(body))
    part = tmp_path / "f.bin.part"
    kept = part.stat().st_size
    assert 0 < kept < len(body) and part.read_bytes() == body[:kept]
    assert not (tmp_path / "f.bin").exists()  # never a half file under the final name
    path = download(url, tmp_path / "f.bin", sha256=_sha(body))
    assert path.read_bytes() == body and not part.exists()
    assert server.requests[-1] == ("/cut/f.bin", f"bytes={kept}-")  # it asked only for the rest
    assert server.if_range[-1] == f'"{_sha(body)[:16]}"'  # ... of the same file
    assert not (tmp_path / "f.bin.part.json").exists()


def test_server_ignoring_range_sends_the_whole_file_again(server, tmp_path):
    body = _blob(30_000, seed=2)
    server.files["f.bin"] = body
    url = f"{server.base}/norange/f.bin"
    (tmp_path / "f.bin.part").write_bytes(body[:1000])
    meta = {"url": url, "validator": f'"{_sha(body)[:16]}"', "total": len(body)}
    (tmp_path / "f.bin.part.json").write_text(json.dumps(meta))
    path = download(url, tmp_path / "f.bin", sha256=_sha(body))
    assert path.read_bytes() == body
    assert server.requests[-1][1] == "bytes=1000-"  # asked, was ignored, coped


def test_a_partial_file_of_a_changed_file_is_not_spliced(server, tmp_path):
    old, new = _blob(60_000, seed=5), _blob(60_000, seed=6)
    server.files["f.bin"] = old
    url = f"{server.base}/cut/f.bin"
    with pytest.raises(DownloadError, match="interrupted"):
        download(url, tmp_path / "f.bin")
    server.files["f.bin"] = new  # the file changed on the server before the retry
    path = download(url, tmp_path / "f.bin")  # no checksum: only the validator can tell
    assert path.read_bytes() == new
    assert server.requests[-1][1] is not None and server.if_range[-1] == f'"{_sha(old)[:16]}"'


def test_a_partial_file_without_validator_is_restarted(server, tmp_path):
    body = _blob(40_000, seed=7)
    server.files["f.bin"] = body
    (tmp_path / "f.bin.part").write_bytes(_blob(1000, seed=8))  # a stale part: no .part.json
    path = download(f"{server.base}/noetag/f.bin", tmp_path / "f.bin")
    assert path.read_bytes() == body
    assert server.requests[-1][1] is None  # not resumed: nothing said it was the same file


def test_deadline_stops_a_trickling_server(server, tmp_path):
    server.files["f.bin"] = _blob(2000, seed=9)
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match="deadline of 0.4 s.*partial file .* is kept"):
        download(f"{server.base}/trickle/f.bin", tmp_path / "f.bin", timeout=5, deadline=0.4)
    assert time.monotonic() - t0 < 3
    with pytest.raises(ConfigError, match="deadline"):
        download(f"{server.base}/trickle/f.bin", tmp_path / "f.bin", deadline=0)


def test_a_body_of_unknown_length_needs_a_checksum(server, tmp_path):
    body = _blob(5000, seed=10)
    server.files["f.bin"] = body
    url = f"{server.base}/nolength/f.bin"
    with pytest.raises(DownloadError, match="cannot tell the file is complete.*sha256"):
        download(url, tmp_path / "f.bin")
    assert not (tmp_path / "f.bin").exists() and not (tmp_path / "f.bin.part").exists()
    assert download(url, tmp_path / "f.bin", sha256=_sha(body)).read_bytes() == body


def test_stale_partial_file_is_restarted(server, tmp_path):
    body = _blob(1000, seed=3)
    server.files["f.bin"] = body
    (tmp_path / "f.bin.part").write_bytes(_blob(5000, seed=4))  # longer than the file: 416
    path = download(f"{server.base}/range/f.bin", tmp_path / "f.bin", sha256=_sha(body))
    assert path.read_bytes() == body
    # resume=False ignores a partial file
    (tmp_path / "g.part").write_bytes(b"junk")
    path = download(f"{server.base}/range/f.bin", tmp_path / "g", resume=False)
    assert path.read_bytes() == body


def _serve_mnist(server, n=9, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    checksums = {}
    for name, arr in (("t10k-images-idx3-ubyte.gz", images), ("t10k-labels-idx1-ubyte.gz", labels)):
        served = server.tmp / name
        write_idx(served, arr)
        server.files[name] = served.read_bytes()
        checksums[name] = _sha(server.files[name])
    return images, labels, checksums


def test_load_mnist_downloads_verifies_and_reads(server, tmp_path):
    server.tmp = tmp_path / "served"
    server.tmp.mkdir()
    images, labels, checksums = _serve_mnist(server)
    root = tmp_path / "mnist"
    x, y = load_mnist(
        root, split="test", download=True, base_url=f"{server.base}/range/", checksums=checksums
    )
    assert x.shape == (9, 1, 28, 28) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(x[:, 0], images / np.float32(255))
    np.testing.assert_array_equal(y, labels)
    assert sorted(p.name for p in root.iterdir()) == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]
    # the official checksums reject files that are not the official ones
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        load_mnist(tmp_path / "other", split="test", download=True, base_url=f"{server.base}/range")
    assert not any((tmp_path / "other").iterdir())
    # an unreachable mirror: the error names the file and the reason
    with pytest.raises(DownloadError, match="(?s)could not download t10k-images-idx3-ubyte.gz.*HTTP 404"):
        load_mnist(tmp_path / "x", split="test", download=True, base_url=f"{server.base}/nothing/")
