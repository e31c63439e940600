"""The IDX file format of MNIST and Fashion-MNIST: read (raw or gzip) and write.

An IDX file is a 4-byte magic number ``0x00 0x00 <type> <ndim>``, then ``ndim`` big-endian uint32
dimensions, then the values in C order, big-endian. Types: ``0x08`` uint8, ``0x09`` int8,
``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32, ``0x0E`` float64.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path
from typing import IO, Optional, Union

import numpy as np

from ..errors import DataError

PathLike = Union[str, "os.PathLike[str]"]

IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}

_GZIP_MAGIC = b"\x1f\x8b"


def _open(path: Path) -> IO[bytes]:
    with open(path, "rb") as f:
        head = f.read(2)
    return gzip.open(path, "rb") if head == _GZIP_MAGIC else open(path, "rb")


def _read_exact(f: IO[bytes], n: int, path: Path, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise DataError(f"{path}: truncated IDX file: {what} needs {n} bytes, only {len(data)} left")
    return data


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (raw, or gzip-compressed: detected from its content, not its name).

    Checks the magic number, the type code, the dimensions and that the data size matches them
    exactly; a truncated, oversized or corrupt file raises :class:`~learnflux.errors.DataError`
    naming the file and what is wrong.

    Returns:
        a writable array of the file's shape, in the file's type (native byte order).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such IDX file")
    try:
        with _open(path) as f:
            magic = _read_exact(f, 4, path, "the magic number")
            if magic[0] != 0 or magic[1] != 0:
                raise DataError(
                    f"{path}: not an IDX file (magic number {magic.hex()} should start with 0000)"
                )
            code, ndim = magic[2], magic[3]
            if code not in IDX_DTYPES:
                known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
                raise DataError(f"{path}: unknown IDX type code 0x{code:02X} (expected one of {known})")
            if ndim == 0:
                raise DataError(f"{path}: IDX file declares 0 dimensions")
            shape = struct.unpack(f">{ndim}I", _read_exact(f, 4 * ndim, path, f"{ndim} dimensions"))
            file_dtype = IDX_DTYPES[code]
            count = math.prod(shape)
            nbytes = count * file_dtype.itemsize
            if not isinstance(f, gzip.GzipFile):
                size = path.stat().st_size - 4 - 4 * ndim
                if size != nbytes:
                    state = "truncated" if size < nbytes else "has trailing data"
                    raise DataError(
                        f"{path}: IDX file {state}: shape {shape} of {file_dtype.name} needs {nbytes} data "
                        f"bytes, the file holds {size}"
                    )
            try:
                out = np.empty(count, dtype=file_dtype.newbyteorder("="))
            except (MemoryError, ValueError):
                raise DataError(
                    f"{path}: IDX header declares shape {shape} ({nbytes} bytes): too large, file corrupt?"
                ) from None
            view = memoryview(out).cast("B")
            got = 0
            while got < nbytes:
                n = f.readinto(view[got:])
                if not n:
                    raise DataError(
                        f"{path}: truncated IDX file: shape {shape} of {file_dtype.name} needs {nbytes} "
                        f"data bytes, only {got} present"
                    )
                got += n
            if f.read(1):
                raise DataError(
                    f"{path}: IDX file has trailing data after the {nbytes} bytes of shape {shape}"
                )
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: corrupt or truncated gzip data ({e})") from None
    if file_dtype.itemsize > 1 and np.little_endian:
        out.byteswap(inplace=True)  # the bytes were big-endian; swap them to native order in place
    return out.reshape(shape)


def write_idx(path: PathLike, array: np.ndarray, compress: Optional[bool] = None) -> None:
    """Write ``array`` as an IDX file (gzip-compressed when ``compress``, default: name ends in .gz).

    Supported dtypes: uint8, int8, int16, int32, float32, float64 (at least one dimension).
    """
    path = Path(path)
    a = np.asarray(array)
    native = a.dtype.newbyteorder("=")
    if native not in _CODES or a.ndim == 0 or a.ndim > 255:
        raise DataError(f"write_idx: cannot store an array of dtype {a.dtype} and shape {a.shape} as IDX")
    code = _CODES[native]
    header = bytes([0, 0, code, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
    body = np.ascontiguousarray(a, dtype=IDX_DTYPES[code]).tobytes()
    if compress is None:
        compress = path.name.endswith(".gz")
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(header)
        f.write(body)
