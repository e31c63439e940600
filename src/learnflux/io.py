"""Save and load models: architecture as JSON, weights as arrays, one ``.npz`` file, no pickle.

File layout (a standard NumPy ``.npz`` archive, readable with ``np.load(path, allow_pickle=False)``):

* ``__learnflux__``: UTF-8 JSON bytes ``{"format": "learnflux", "version": 1, "dtype": ...,
  "model": {"class": ..., "config": ...}}``;
* one array per parameter or buffer, named as in ``model.state_dict()`` (``"1.weight"``). Exact
  (Fraction) values are stored as strings ``"p/q"``.

Writing goes to a temporary file in the same folder, flushed to disk, then renamed over the
target: a crash mid-write leaves the previous file intact.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Union

import numpy as np

from .errors import ConfigError
from .layer import Layer
from .model import deserialize_layer, serialize_layer
from .numbers import cast, dtype_name, is_exact, resolve_dtype

FORMAT = "learnflux"
VERSION = 1
_HEADER = "__learnflux__"
PathLike = Union[str, "os.PathLike[str]"]


def atomic_write(path: PathLike, write: Any) -> None:
    """Call ``write(file_object)`` on a temporary file beside ``path``, then rename it over
    ``path``. The previous file survives any exception or crash before the rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def save(model: Layer, path: PathLike) -> None:
    """Write ``model`` (architecture + weights + buffers) to ``path`` atomically."""
    header = {
        "format": FORMAT,
        "version": VERSION,
        "dtype": dtype_name(model.dtype),
        "model": serialize_layer(model),
    }
    arrays: dict[str, np.ndarray] = {}
    for name, value in model.state_dict().items():
        if value.dtype == object:
            value = np.array([str(v) for v in value.reshape(-1)], dtype=str).reshape(value.shape)
        # (ascontiguousarray alone would turn a 0-d buffer, e.g. num_batches_tracked, into 1-d)
        arrays[name] = np.ascontiguousarray(value).reshape(value.shape)
    arrays[_HEADER] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    atomic_write(path, lambda fh: np.savez(fh, **arrays))


def load(path: PathLike) -> Layer:
    """Rebuild the model saved at ``path``. Never runs code from the file (no pickle)."""
    with open(path, "rb") as fh:  # a missing file is a FileNotFoundError, as for any open()
        is_archive = zipfile.is_zipfile(fh)
    if not is_archive:
        raise ConfigError(f"{path}: not a learnflux model file (not a zip archive of arrays)")
    try:
        archive = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ConfigError(f"{path}: not a learnflux model file ({exc})") from None
    with archive:
        try:
            return _read(archive, path)
        except ValueError as exc:  # e.g. an object array, which would need pickle: refused
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"{path}: not a valid learnflux model file ({exc})") from None


def _read(archive: Any, path: PathLike) -> Layer:
    """Rebuild the model from an open archive (header first, then every array)."""
    if _HEADER not in archive.files:
        raise ConfigError(f"{path}: not a learnflux model file (no {_HEADER} entry)")
    try:
        header = json.loads(archive[_HEADER].tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: corrupt header ({exc})") from None
    if header.get("format") != FORMAT or header.get("version", 0) > VERSION:
        raise ConfigError(
            f"{path}: unsupported format {header.get('format')!r} version {header.get('version')!r}"
        )
    model = deserialize_layer(header["model"])
    dtype = resolve_dtype(header.get("dtype", "float32"))
    model.astype(dtype)
    state = {}
    for name in archive.files:
        if name == _HEADER:
            continue
        arr = archive[name]
        state[name] = cast(arr, dtype) if is_exact(dtype) and arr.dtype.kind == "U" else arr
    model.load_state_dict(state)
    return model
