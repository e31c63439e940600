"""A small, careful downloader (urllib only): resumes, verifies SHA-256, renames atomically.

What it trusts and what it does not:

* a transfer has an overall ``deadline`` (a server trickling a byte at a time cannot hold it past
  that), besides the ``timeout`` of each connection and read;
* a body is kept only when it can be shown complete: its SHA-256 matches the one given, or,
  without one, its length matches the ``Content-Length`` the server announced (a body of unknown
  length without a checksum is refused);
* an interrupted transfer resumes only when the server confirms it still sends the same file:
  the partial file's validator (a strong ``ETag``, else ``Last-Modified``) is kept beside it in
  ``<dest>.part.json`` and sent back as ``If-Range``; any other answer starts over.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Callable, Optional, Union
from urllib.parse import urlparse

from ..errors import ConfigError, DownloadError

PathLike = Union[str, "os.PathLike[str]"]
ProgressFn = Callable[[int, Optional[int]], None]

CHUNK = 1 << 20
USER_AGENT = "learnflux-downloader/1"


def sha256_file(path: PathLike, chunk: int = CHUNK) -> str:
    """The SHA-256 hex digest of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _target(url: str, dest: PathLike) -> Path:
    dest = Path(dest)
    if dest.is_dir():
        name = os.path.basename(urlparse(url).path)
        if not name:
            raise DownloadError(f"download: cannot name a file after {url!r}; give a file path as dest")
        dest = dest / name
    return dest


def _open(url: str, start: int, timeout: float, validator: Optional[str] = None):
    import urllib.error  # imported on first use: keeps `import learnflux` fast
    import urllib.request
    from http.client import HTTPException

    headers = {"User-Agent": USER_AGENT}
    if start > 0:
        headers["Range"] = f"bytes={start}-"
        if validator:
            headers["If-Range"] = validator
    req = urllib.request.Request(url, headers=headers)
    try:
        return urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and start > 0:
            e.close()
            return None  # Range not satisfiable: the partial file is unusable; start over
        raise DownloadError(f"download of {url} failed: HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        reason = e.reason
        if isinstance(reason, (socket.timeout, TimeoutError)):
            raise DownloadError(
                f"download of {url} failed: no answer within {timeout} s (timed out)"
            ) from None
        raise DownloadError(f"download of {url} failed: cannot reach the server ({reason})") from None
    except TimeoutError:
        raise DownloadError(f"download of {url} failed: no answer within {timeout} s (timed out)") from None
    except (HTTPException, OSError, ValueError) as e:
        raise DownloadError(f"download of {url} failed: {type(e).__name__}: {e}") from None


def _resume_offset(resp, start: int, total: Optional[int] = None) -> int:
    """Where the response body starts in the file: ``start`` if the server honoured Range (for
    the same file: the total size it gives is the one recorded), else 0; -1 for a range that
    does not fit (start over)."""
    status = getattr(resp, "status", None) or resp.getcode() or 200
    if start > 0 and status == 206:
        content_range = resp.headers.get("Content-Range", "")
        if not content_range.startswith(f"bytes {start}-"):
            return -1  # a range we did not ask for: start over
        size = content_range.rpartition("/")[2]
        if total is not None and size.isdigit() and int(size) != total:
            return -1  # another file now
        return start
    return 0  # 200 (server ignores Range, or no partial file): the whole file comes again


def _validator(resp) -> Optional[str]:
    """What identifies the version of the file a response sends: a strong ETag, else its
    Last-Modified date (a weak ETag cannot be used with If-Range)."""
    etag = resp.headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return resp.headers.get("Last-Modified") or None


def _read_meta(meta: Path) -> dict:
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _total_size(resp, offset: int) -> Optional[int]:
    """The file's whole size, from Content-Range (a resumed answer) or Content-Length."""
    if offset > 0:
        size = resp.headers.get("Content-Range", "").rpartition("/")[2]
        if size.isdigit():
            return int(size)
    length = resp.headers.get("Content-Length")
    return offset + int(length) if length is not None and length.isdigit() else None


def download(
    url: str,
    dest: PathLike,
    sha256: Optional[str] = None,
    resume: bool = True,
    timeout: float = 60.0,
    progress: Optional[ProgressFn] = None,
    deadline: Optional[float] = 900.0,
) -> Path:
    """Download ``url`` to ``dest`` safely.

    The bytes go to ``<dest>.part``; when that file exists (an earlier transfer was interrupted)
    and ``resume`` is true, the transfer continues from its end with an HTTP ``Range`` request,
    sent with ``If-Range`` and the validator the server gave for it (kept in
    ``<dest>.part.json``): a server that sends the whole file instead (it changed, or ignores
    Range) is handled by starting over, and so is a partial file without a validator. When the
    transfer is complete its SHA-256 is checked against ``sha256`` (if given; a mismatch deletes
    the file and raises, naming the expected and actual digests); without ``sha256`` its length
    must match the length the server announced (a body of unknown length is refused, as it
    cannot be told complete). The file is then renamed to ``dest`` atomically, so ``dest`` is
    either absent or complete. An existing ``dest`` whose checksum matches (or with no
    ``sha256`` given) is kept and not downloaded again.

    Args:
        url: the address (``http://``, ``https://``, ``file://``).
        dest: the file to write, or an existing directory (the file is named after the URL).
        sha256: expected SHA-256 hex digest, or ``None`` not to check.
        resume: continue a partial ``.part`` file instead of starting over.
        timeout: seconds to wait for the connection and for each read.
        progress: optional ``progress(bytes_done, total_bytes_or_None)`` called after each chunk.
        deadline: seconds the whole transfer may take (checked after each read, so it can be
            overrun by at most ``timeout``); ``None`` for no limit. A transfer stopped by it keeps
            its partial file for the next call.

    Returns:
        the path of the downloaded file.

    Raises:
        DownloadError: HTTP errors (404...), timeouts, the deadline, unreachable host, an
            interrupted transfer (the partial data is kept for the next call to resume), a
            checksum or length mismatch, a body of unknown length without ``sha256``.
    """
    from http.client import HTTPException

    dest = _target(url, dest)
    expected = None if sha256 is None else str(sha256).strip().lower()
    if expected is not None and (len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected)):
        raise ConfigError(f"download: sha256 must be 64 hexadecimal digits, got {sha256!r}")
    if dest.is_file():
        if expected is None or sha256_file(dest) == expected:
            return dest
    if deadline is not None and not deadline > 0:
        raise ConfigError(
            f"download: deadline must be a positive number of seconds or None, got {deadline!r}"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    meta = dest.with_name(dest.name + ".part.json")
    started = time.monotonic()
    start = part.stat().st_size if (resume and part.is_file()) else 0
    saved = _read_meta(meta) if start > 0 else {}
    validator = saved.get("validator") if saved.get("url") == url else None
    if start > 0 and not validator:
        start = 0  # nothing proves the server still sends the file the partial one began: start over

    resp = _open(url, start, timeout, validator)
    if resp is None:  # 416: start over without Range
        start = 0
        resp = _open(url, 0, timeout)
    recorded = saved.get("total") if isinstance(saved.get("total"), int) else None
    offset = _resume_offset(resp, start, recorded)
    if offset < 0:  # the server answered a range we did not ask for, or for another file
        resp.close()
        resp = _open(url, 0, timeout)
        offset = 0
    with resp:
        total = _total_size(resp, offset)
        if offset == 0:  # a new transfer: remember what identifies this version of the file
            meta.write_text(
                json.dumps({"url": url, "validator": _validator(resp), "total": total}), encoding="utf-8"
            )
        h = hashlib.sha256()
        if offset > 0:  # hash what we already have, then append
            with open(part, "rb") as f:
                for block in iter(lambda: f.read(CHUNK), b""):
                    h.update(block)
        done = offset
        try:
            with open(part, "ab" if offset > 0 else "wb") as f:
                # read1: whatever has arrived, so bytes received before a cut are kept for resuming
                read = getattr(resp, "read1", None) or resp.read
                while True:
                    if deadline is not None and time.monotonic() - started > deadline:
                        raise DownloadError(
                            f"download of {url} passed its deadline of {deadline:g} s after {done} of "
                            f"{total or '?'} bytes; the partial file {part} is kept: call download "
                            "again to resume (or give a longer deadline)"
                        )
                    block = read(CHUNK)
                    if not block:
                        break
                    f.write(block)
                    h.update(block)
                    done += len(block)
                    if progress is not None:
                        progress(done, total)
        except TimeoutError:
            raise DownloadError(
                f"download of {url} timed out after {done} bytes (no data for {timeout} s); "
                f"the partial file {part} is kept: call download again to resume"
            ) from None
        except (HTTPException, OSError) as e:
            if isinstance(e, DownloadError):
                raise
            raise DownloadError(
                f"download of {url} was interrupted after {done} of {total or '?'} bytes "
                f"({type(e).__name__}: {e}); the partial file {part} is kept: call download again to resume"
            ) from None
    if total is not None and done < total:
        raise DownloadError(
            f"download of {url} was interrupted after {done} of {total} bytes; "
            f"the partial file {part} is kept: call download again to resume"
        )
    actual = h.hexdigest()
    if expected is not None and actual != expected:
        _discard(part, meta)
        raise DownloadError(
            f"download of {url}: SHA-256 mismatch (expected {expected}, got {actual}); "
            f"the bad file was deleted"
        )
    if expected is None and (total is None or done != total):
        _discard(part, meta)
        got = "no Content-Length" if total is None else f"{done} bytes for the {total} announced"
        raise DownloadError(
            f"download of {url}: cannot tell the file is complete ({got}) and no sha256 was given "
            "to check it; the partial data was deleted. Pass sha256=... (the file's SHA-256)"
        )
    os.replace(part, dest)
    meta.unlink(missing_ok=True)
    return dest


def _discard(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
