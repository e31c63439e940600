"""A small, careful downloader (urllib only): resumes, verifies SHA-256, renames atomically."""

from __future__ import annotations

import hashlib
import os
import socket
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


def _open(url: str, start: int, timeout: float):
    import urllib.error  # imported on first use: keeps `import learnflux` fast
    import urllib.request
    from http.client import HTTPException

    headers = {"User-Agent": USER_AGENT}
    if start > 0:
        headers["Range"] = f"bytes={start}-"
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


def _resume_offset(resp, start: int) -> int:
    """Where the response body starts in the file: ``start`` if the server honoured Range, else 0."""
    status = getattr(resp, "status", None) or resp.getcode() or 200
    if start > 0 and status == 206:
        content_range = resp.headers.get("Content-Range", "")
        if content_range.startswith(f"bytes {start}-"):
            return start
        return -1  # a range we did not ask for: start over
    return 0  # 200 (server ignores Range, or no partial file): the whole file comes again


def download(
    url: str,
    dest: PathLike,
    sha256: Optional[str] = None,
    resume: bool = True,
    timeout: float = 60.0,
    progress: Optional[ProgressFn] = None,
) -> Path:
    """Download ``url`` to ``dest`` safely.

    The bytes go to ``<dest>.part``; when that file exists (an earlier transfer was interrupted)
    and ``resume`` is true, the transfer continues from its end with an HTTP ``Range`` request (a
    server that ignores Range sends the whole file again, which is handled). When the transfer is
    complete its SHA-256 is checked against ``sha256`` (if given; a mismatch deletes the file and
    raises, naming the expected and actual digests) and the file is renamed to ``dest`` atomically,
    so ``dest`` is either absent or complete. An existing ``dest`` whose checksum matches (or with
    no ``sha256`` given) is kept and not downloaded again.

    Args:
        url: the address (``http://``, ``https://``, ``file://``).
        dest: the file to write, or an existing directory (the file is named after the URL).
        sha256: expected SHA-256 hex digest, or ``None`` not to check.
        resume: continue a partial ``.part`` file instead of starting over.
        timeout: seconds to wait for the connection and for each read.
        progress: optional ``progress(bytes_done, total_bytes_or_None)`` called after each chunk.

    Returns:
        the path of the downloaded file.

    Raises:
        DownloadError: HTTP errors (404...), timeouts, unreachable host, an interrupted transfer
            (the partial data is kept for the next call to resume), or a checksum mismatch.
    """
    from http.client import HTTPException

    dest = _target(url, dest)
    expected = None if sha256 is None else str(sha256).strip().lower()
    if expected is not None and (len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected)):
        raise ConfigError(f"download: sha256 must be 64 hexadecimal digits, got {sha256!r}")
    if dest.is_file():
        if expected is None or sha256_file(dest) == expected:
            return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    start = part.stat().st_size if (resume and part.is_file()) else 0

    resp = _open(url, start, timeout)
    if resp is None:  # 416: start over without Range
        start = 0
        resp = _open(url, 0, timeout)
    offset = _resume_offset(resp, start)
    if offset < 0:  # the server answered a range we did not ask for: start over
        resp.close()
        resp = _open(url, 0, timeout)
        offset = 0
    with resp:
        length = resp.headers.get("Content-Length")
        total = offset + int(length) if length is not None and length.isdigit() else None
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
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"download of {url}: SHA-256 mismatch (expected {expected}, got {actual}); "
            f"the bad file was deleted"
        )
    os.replace(part, dest)
    return dest
