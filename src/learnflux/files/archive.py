"""Reading a learnflux file (a NumPy ``.npz`` zip archive) without trusting it.

:class:`Archive` opens the zip, checks its table of members before reading any of them, parses
each member's ``.npy`` header with a strict grammar (no ``eval``, no pickle), and reads an array
only after its declared shape and dtype have been checked against the member's real size. So the
time and the memory a file can cost are bounded by its real size on disk:

* every member is stored (``ZIP_STORED``: its size in the archive is its size) or deflated; a
  deflated member may not declare more than deflate can produce from its compressed bytes, and
  all the members together may not expand beyond :data:`MAX_EXPANSION` times the file's size
  (plus :data:`EXPANSION_SLACK`);
* members may not overlap, be encrypted, be duplicated, or lie outside the file;
* a member's ``.npy`` header is at most :data:`MAX_NPY_HEADER` bytes, declares one of the plain
  dtypes listed in :data:`DTYPE_NAMES` (never objects, which need pickle) and a shape whose size,
  times the item size, is exactly the member's data;
* reads are clamped to the file's size, and the CRC of every member is checked.

Every failure is a :class:`~learnflux.errors.FileFormatError` naming the file and the member.
"""

from __future__ import annotations

import os
import re
import stat
import struct
import zipfile
from dataclasses import dataclass
from typing import Any, BinaryIO, Optional, Union

import numpy as np

from ..errors import FileFormatError

PathLike = Union[str, "os.PathLike[str]"]

#: members an archive may hold (a model has two per layer with weights, plus its header)
MAX_MEMBERS = 200_000
#: the length of a member's name
MAX_NAME = 512
#: deflated members may expand, all together, to this many times the file's size...
MAX_EXPANSION = 64
#: ... plus this many bytes
EXPANSION_SLACK = 64 << 20
#: the size of one member's ``.npy`` header (NumPy writes about 128 bytes)
MAX_NPY_HEADER = 4096
#: the dimensions of one array
MAX_DIMS = 32
#: the characters of one string element (exact weights are stored as ``"p/q"`` strings)
MAX_STRING = 8192
#: deflate cannot expand data by more than this ratio (1032:1); a larger declared size is a lie
_DEFLATE_RATIO = 1032
_CHUNK = 1 << 20

#: what the accepted ``.npy`` dtypes hold, for messages
DTYPE_NAMES = {
    "f": "floating-point numbers",
    "i": "signed integers",
    "u": "unsigned integers",
    "b": "booleans",
    "U": "strings",
}
_REFUSED = {
    "O": "Python objects (they need pickle, which learnflux never runs)",
    "c": "complex numbers",
    "M": "datetimes",
    "m": "timedeltas",
    "S": "bytes",
    "V": "raw or structured records",
}
_DESCR = re.compile(r"[<>|=]?(?:f4|f8|i1|i2|i4|i8|u1|u2|u4|u8|b1|U\d{1,5})")
_SHAPE = r"\(\s*(?:\d{1,15}\s*,\s*)*(?:\d{1,15}\s*)?\)"
_PAIR = r"'(descr|fortran_order|shape)'\s*:\s*('[^'\\]{0,40}'|True|False|" + _SHAPE + ")"
_HEADER = re.compile(r"\{\s*" + _PAIR + r"\s*,\s*" + _PAIR + r"\s*,\s*" + _PAIR + r"\s*,?\s*\}\s*")
_PAIRS = re.compile(_PAIR)


@dataclass(frozen=True)
class ArrayInfo:
    """What a member's ``.npy`` header declares: dtype, shape, memory order, and where its data
    starts within the member."""

    dtype: np.dtype
    shape: tuple[int, ...]
    fortran_order: bool
    data_offset: int

    @property
    def size(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


class _Bounded:
    """A read-only view of an open file whose reads never ask for more than the file holds (a
    zip's declared sizes are not trusted to size a read buffer)."""

    def __init__(self, fh: BinaryIO, size: int) -> None:
        self._fh = fh
        self.size = size

    def read(self, n: Optional[int] = -1) -> bytes:
        left = max(0, self.size - self._fh.tell())
        return self._fh.read(left if n is None or n < 0 else min(n, left))

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        self._fh.close()


def _zip_errors() -> tuple[type[BaseException], ...]:
    """What zipfile raises on a malformed archive (its own error, and what leaks from struct,
    decoding, decompression and arithmetic on the fields it reads)."""
    import zlib

    return (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        EOFError,
        OSError,
        ValueError,
        struct.error,
        zlib.error,
        OverflowError,
        NotImplementedError,
        KeyError,
        IndexError,
        TypeError,
        RuntimeError,
    )


class Archive:
    """An open learnflux file, checked member by member before anything is read.

    ``Archive(path, what="model file")`` opens it (a missing file is ``FileNotFoundError``, as for
    any ``open``); ``keys()`` lists the array names (member names without ``.npy``); ``info(key)``
    parses one member's ``.npy`` header; ``read(key)`` returns its array. Use it as a context
    manager (or call ``close()``)."""

    def __init__(self, path: PathLike, what: str = "learnflux file") -> None:
        self.path = os.fspath(path)
        self.what = what
        self._fh = open(self.path, "rb")  # noqa: SIM115 (closed by close())
        try:
            st = os.fstat(self._fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise self.error(f"not a {what}: not a regular file")
            self.file_size = st.st_size
            self._zip = self._open_zip()
            self._members = self._check_members()
        except BaseException:
            self._fh.close()
            raise
        self._infos: dict[str, ArrayInfo] = {}

    # ------------------------------------------------------------------ errors
    def error(self, message: str, key: Optional[str] = None) -> FileFormatError:
        """``FileFormatError("<path>: entry '<key>': <message>")``."""
        where = f"{self.path}: entry {key!r}: " if key is not None else f"{self.path}: "
        return FileFormatError(where + message)

    # ------------------------------------------------------------------ the zip
    def _open_zip(self) -> zipfile.ZipFile:
        head = self._fh.read(4)
        self._fh.seek(0)
        if self.file_size < 22 or (head[:2] != b"PK" and not _has_end_record(self._fh, self.file_size)):
            raise self.error(f"not a {self.what} (not a zip archive of arrays)")
        try:
            return zipfile.ZipFile(_Bounded(self._fh, self.file_size))  # type: ignore[arg-type]
        except MemoryError:
            raise self.error(f"not a {self.what} (its table of contents is too large)") from None
        except _zip_errors() as exc:
            raise self.error(f"not a {self.what} (a corrupt zip archive: {_reason(exc)})") from None

    def _check_members(self) -> dict[str, zipfile.ZipInfo]:
        infos = self._zip.infolist()
        if len(infos) > MAX_MEMBERS:
            raise self.error(f"holds {len(infos):,} entries; a learnflux file holds at most {MAX_MEMBERS:,}")
        members: dict[str, zipfile.ZipInfo] = {}
        expanded = 0
        for info in infos:
            name = info.filename
            if len(name) > MAX_NAME or not name.endswith(".npy") or len(name) == 4:
                shown = name if len(name) <= 80 else name[:77] + "..."
                raise self.error(f"holds an entry {shown!r} that is not a .npy array")
            key = name[:-4]
            if key in members:
                raise self.error("appears twice in the archive (which one is meant is ambiguous)", key)
            if info.flag_bits & 0x1:
                raise self.error("is encrypted", key)
            if info.compress_type == zipfile.ZIP_STORED:
                if info.file_size != info.compress_size:
                    raise self.error(
                        f"is stored uncompressed but declares {info.file_size:,} bytes for "
                        f"{info.compress_size:,} in the archive",
                        key,
                    )
            elif info.compress_type == zipfile.ZIP_DEFLATED:
                if info.file_size > _DEFLATE_RATIO * info.compress_size + 1024:
                    raise self.error(
                        f"declares {info.file_size:,} bytes from {info.compress_size:,} compressed "
                        "bytes, more than deflate can produce (a zip bomb or a lie)",
                        key,
                    )
                expanded += info.file_size
            else:
                raise self.error(
                    f"uses compression method {info.compress_type}; only stored and deflated "
                    "entries are read",
                    key,
                )
            if info.header_offset + 30 + len(name) + info.compress_size > self.file_size:
                raise self.error("lies beyond the end of the file (truncated?)", key)
            members[key] = info
        limit = MAX_EXPANSION * self.file_size + EXPANSION_SLACK
        if expanded > limit:
            raise self.error(
                f"its compressed entries expand to {expanded:,} bytes, more than {MAX_EXPANSION}× "
                f"the file's {self.file_size:,} bytes (+{EXPANSION_SLACK >> 20} MiB): refused "
                "(a zip bomb)"
            )
        ordered = sorted(members.items(), key=lambda item: item[1].header_offset)
        for (key, a), (_, b) in zip(ordered[:-1], ordered[1:], strict=True):
            if a.header_offset + 30 + len(a.filename) + a.compress_size > b.header_offset:
                raise self.error("overlaps the next entry of the archive (a zip bomb?)", key)
        return members

    # ------------------------------------------------------------------ members
    def keys(self) -> list[str]:
        """The names of the arrays, in the archive's order."""
        return list(self._members)

    def __contains__(self, key: str) -> bool:
        return key in self._members

    def member_size(self, key: str) -> int:
        """The declared (uncompressed) size of a member, in bytes."""
        return int(self._members[key].file_size)

    def info(self, key: str) -> ArrayInfo:
        """The dtype, shape and order that member ``key`` declares, checked against its size."""
        cached = self._infos.get(key)
        if cached is not None:
            return cached
        member = self._members.get(key)
        if member is None:
            raise self.error("is missing", key)
        try:
            with self._zip.open(member) as f:
                head = f.read(10)
                if len(head) < 10 or head[:6] != b"\x93NUMPY":
                    raise self.error("is not a .npy array (no NumPy magic number)", key)
                major = head[6]
                if major == 1:
                    hlen = struct.unpack("<H", head[8:10])[0]
                    start = 10
                elif major in (2, 3):
                    rest = f.read(2)
                    if len(rest) < 2:
                        raise self.error("is truncated in its .npy header", key)
                    hlen = struct.unpack("<I", head[8:10] + rest)[0]
                    start = 12
                else:
                    raise self.error(f"has an unknown .npy format version {major}", key)
                if hlen > MAX_NPY_HEADER:
                    raise self.error(
                        f"has a .npy header of {hlen:,} bytes (at most {MAX_NPY_HEADER} are read)", key
                    )
                raw = f.read(hlen)
        except FileFormatError:
            raise
        except MemoryError:
            raise self.error("cannot be read (its header is too large)", key) from None
        except _zip_errors() as exc:
            raise self.error(f"is corrupt ({_reason(exc)})", key) from None
        if len(raw) < hlen:
            raise self.error("is truncated in its .npy header", key)
        info = self._parse_header(key, raw.decode("latin-1"), start + hlen)
        nbytes = info.size * info.dtype.itemsize
        if start + hlen + nbytes != member.file_size:
            raise self.error(
                f"declares an array of shape {info.shape} and dtype {info.dtype.str} "
                f"({nbytes:,} bytes) but holds {max(0, member.file_size - start - hlen):,} bytes of data",
                key,
            )
        self._infos[key] = info
        return info

    def _parse_header(self, key: str, text: str, data_offset: int) -> ArrayInfo:
        if not _HEADER.fullmatch(text):
            raise self.error("has a malformed .npy header (expected descr, fortran_order and shape)", key)
        fields = {m.group(1): m.group(2) for m in _PAIRS.finditer(text)}
        if len(fields) != 3:
            raise self.error("has a malformed .npy header (a key is repeated or missing)", key)
        descr = fields["descr"].strip("'")
        if not _DESCR.fullmatch(descr):
            kind = descr.lstrip("<>|=")[:1]
            holds = _REFUSED.get(kind, f"the dtype {descr!r}")
            raise self.error(f"holds {holds}: refused", key)
        dtype = np.dtype(descr)
        if dtype.kind == "U" and dtype.itemsize // 4 > MAX_STRING:
            raise self.error(
                f"holds strings of up to {dtype.itemsize // 4:,} characters (at most {MAX_STRING} are read)",
                key,
            )
        if fields["fortran_order"] not in ("True", "False"):
            raise self.error("has a malformed .npy header (fortran_order)", key)
        shape_text = fields["shape"]
        if not shape_text.startswith("("):
            raise self.error("has a malformed .npy header (shape)", key)
        shape = tuple(int(t) for t in shape_text.strip("()").split(",") if t.strip())
        if len(shape) > MAX_DIMS:
            raise self.error(f"has {len(shape)} dimensions (at most {MAX_DIMS})", key)
        return ArrayInfo(dtype, shape, fields["fortran_order"] == "True", data_offset)

    def read(self, key: str) -> np.ndarray:
        """The array of member ``key``, native byte order, C or Fortran order as declared."""
        info = self.info(key)
        member = self._members[key]
        nbytes = info.size * info.dtype.itemsize
        buf = np.empty(nbytes, dtype=np.uint8)
        try:
            with self._zip.open(member) as f:
                skip = f.read(info.data_offset)
                if len(skip) < info.data_offset:
                    raise self.error("is truncated", key)
                pos = 0
                while pos < nbytes:
                    chunk = f.read(min(_CHUNK, nbytes - pos))
                    if not chunk:
                        raise self.error(f"is truncated after {pos:,} of {nbytes:,} bytes of data", key)
                    buf[pos : pos + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
                    pos += len(chunk)
                if f.read(1):  # also reaches the end of the member, where zipfile checks the CRC
                    raise self.error("holds more data than its .npy header declares", key)
        except FileFormatError:
            raise
        except _zip_errors() as exc:
            raise self.error(f"is corrupt ({_reason(exc)})", key) from None
        arr = buf.view(info.dtype)
        if info.fortran_order:
            arr = arr.reshape(info.shape[::-1]).transpose()
        else:
            arr = arr.reshape(info.shape)
        if not arr.dtype.isnative:
            arr = arr.astype(arr.dtype.newbyteorder("="))
        return arr

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        try:
            self._zip.close()
        finally:
            self._fh.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _has_end_record(fh: BinaryIO, size: int) -> bool:
    """Whether the file ends with a zip's end-of-central-directory record (within the 64 KiB a
    comment may take): a zip may start with other data."""
    n = min(size, 22 + 0xFFFF)
    fh.seek(size - n)
    tail = fh.read(n)
    fh.seek(0)
    return b"PK\x05\x06" in tail


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
