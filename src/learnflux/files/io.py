"""Save and load models: architecture as JSON, weights as arrays, one ``.npz`` file, no pickle.

File layout (a standard NumPy ``.npz`` archive, readable with ``np.load(path, allow_pickle=False)``):

* ``__learnflux__``: UTF-8 JSON bytes ``{"format": "learnflux", "version": 1, "dtype": ...,
  "model": {"class": ..., "config": ...}}``, and ``"metadata": {...}`` when ``save`` was given
  some (plain JSON data that travels with the model: a language model's vocabulary);
* one array per parameter or buffer, named as in ``model.state_dict()`` (``"1.weight"``). Exact
  (Fraction) values are stored as strings ``"p/q"``.

Writing goes to a temporary file in the same folder, flushed to disk, then renamed over the
target: a crash mid-write leaves the previous file intact (:func:`atomic_write`).

Reading checks the archive (:mod:`learnflux.files.archive`) and the header (:mod:`learnflux.files.fileformat`)
before anything is built: a hostile or corrupt file costs time and memory bounded by its real
size, and fails with a :class:`~learnflux.errors.FileFormatError`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
import time
from fractions import Fraction
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from ..core.layer import Layer
from ..core.model import serialize_layer
from ..errors import ConfigError, FileFormatError, LearnfluxError
from ..numbers import dtype_name, resolve_dtype
from .archive import Archive
from .fileformat import MAX_HEADER_BYTES, build, expected_shapes, parse_header, plan_model

FORMAT = "learnflux"
VERSION = 1
_HEADER = "__learnflux__"
PathLike = Union[str, "os.PathLike[str]"]


def atomic_write(path: PathLike, write: Any) -> None:
    """Call ``write(file_object)`` on a temporary file beside ``path``, then rename it over
    ``path``. The previous file survives any exception or crash before the rename.

    * The temporary file is ``.<name>.<pid>.<random>.tmp`` in the target's folder; it is removed
      when ``write`` fails, and one left by a killed process (its pid no longer runs) is removed
      by the next write to the same path.
    * The file's mode follows the umask (``0o666 & ~umask``, as ``open()`` would make it); an
      existing file keeps its mode.
    * A symbolic link is written through: the file it points to is replaced, the link stays.
    * The data and then the folder (after the rename) are flushed to disk.
    """
    target = Path(path)
    if target.is_symlink():
        target = Path(os.path.realpath(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(target)
    try:
        mode: Optional[int] = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None
    fd, tmp = _create_temporary(target)
    _IN_FLIGHT.add(tmp)
    try:
        if mode is not None and hasattr(os, "fchmod"):
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        _fsync_folder(target.parent)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    finally:
        _IN_FLIGHT.discard(tmp)


#: temporary files this process is writing now (never removed as stale)
_IN_FLIGHT: set[str] = set()
_STALE_AGE = 3600.0  # seconds: a temporary file of the older naming (no pid) counts as stale


def _temporary_prefix(target: Path) -> str:
    return f".{target.name[:120]}."


def _create_temporary(target: Path) -> tuple[int, str]:
    """Create ``.<name>.<pid>.<random>.tmp`` beside ``target`` (mode ``0o666 & ~umask``)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    prefix = _temporary_prefix(target)
    for _ in range(100):
        name = f"{prefix}{os.getpid()}.{secrets.token_hex(4)}.tmp"
        tmp = os.path.join(target.parent, name)
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file beside {target}")


def _remove_stale_temporaries(target: Path) -> None:
    """Remove the temporary files a killed writer of ``target`` left (its pid is gone, or an
    older-style name more than an hour old). Best effort: errors are ignored."""
    prefix = _temporary_prefix(target)
    try:
        entries = [
            e for e in os.scandir(target.parent) if e.name.startswith(prefix) and e.name.endswith(".tmp")
        ]
    except OSError:
        return
    for entry in entries:
        middle = entry.name[len(prefix) : -len(".tmp")]
        pid_text, _, token = middle.partition(".")
        try:
            if pid_text.isdigit() and token:
                if entry.path in _IN_FLIGHT or not _process_gone(int(pid_text)):
                    continue
            elif len(middle) == 8 and "." not in middle:  # tempfile.mkstemp's name, older saves
                if time.time() - entry.stat(follow_symlinks=False).st_mtime < _STALE_AGE:
                    continue
            else:
                continue
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
        except OSError:
            continue


def _process_gone(pid: int) -> bool:
    """Whether no process ``pid`` runs on this machine (False when that cannot be known)."""
    if pid == os.getpid():
        return True  # ours, not in flight: a write of this process that failed to clean up
    if os.name != "posix" or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: it runs, under another user
        return False
    return False


def _fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (the rename) to disk; not possible on every system."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save(model: Layer, path: PathLike, metadata: Optional[dict[str, Any]] = None) -> None:
    """Write ``model`` (architecture + weights + buffers) to ``path`` atomically.

    ``metadata``: plain JSON data kept in the header beside the model (a dict with string keys
    holding strings, finite numbers, booleans, None, lists and dicts), read back by
    :func:`load_metadata`; ``learnflux train`` keeps a language model's vocabulary there."""
    header: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "dtype": dtype_name(model.dtype),
        "model": serialize_layer(model),
    }
    if metadata is not None:
        header["metadata"] = _plain_metadata(metadata)
    arrays: dict[str, np.ndarray] = {}
    for name, value in model.state_dict().items():
        if value.dtype == object:
            value = np.array([str(v) for v in value.reshape(-1)], dtype=str).reshape(value.shape)
        # (ascontiguousarray alone would turn a 0-d buffer, e.g. num_batches_tracked, into 1-d)
        arrays[name] = np.ascontiguousarray(value).reshape(value.shape)
    arrays[_HEADER] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    atomic_write(path, lambda fh: np.savez(fh, **arrays))


def load(path: PathLike, allow_non_finite: bool = False) -> Layer:
    """Rebuild the model saved at ``path``. Never runs code from the file (no pickle).

    The file is checked before anything it describes is built or allocated (see
    ``docs/files.md``): any malformed, truncated, hostile or oversized file raises
    :class:`~learnflux.errors.FileFormatError` (a ``ConfigError``) naming the file and the entry
    at fault; a missing file is ``FileNotFoundError``. Weights and statistics that are NaN or
    infinite are refused unless ``allow_non_finite=True``."""
    with Archive(path, "learnflux model file") as archive:
        where = archive.path
        header = read_header(archive)
        kind = header.get("kind", "model")
        if kind != "model":
            raise FileFormatError(
                f"{where}: this is a {kind} (written by BackupAndRestore), not a model: resume "
                "it with fit(callbacks=[lf.BackupAndRestore(folder)]) or `learnflux train --resume`"
            )
        unknown = sorted(set(header) - {"format", "version", "dtype", "model", "kind", "metadata"})
        if unknown:
            raise FileFormatError(f"{where}: unknown header key(s) {unknown}")
        if "model" not in header:
            raise FileFormatError(f"{where}: the header has no 'model' key (the architecture)")
        dtype = header_dtype(header, where)
        return read_model(archive, header["model"], dtype, allow_non_finite)


def _plain_metadata(metadata: Any) -> dict[str, Any]:
    """``metadata`` checked to be plain JSON data (what the header can hold and give back)."""
    if not isinstance(metadata, dict) or not all(isinstance(k, str) for k in metadata):
        raise ConfigError(f"save: metadata must be a dict with string keys, got {type(metadata).__name__}")
    try:
        text = json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"save: metadata must be plain JSON data (no NaN): {exc}") from None
    return json.loads(text)


def load_metadata(path: PathLike) -> dict[str, Any]:
    """The metadata saved with the model at ``path`` (``save(..., metadata=...)``), ``{}`` when
    it has none. Reads the header only, with the checks of :func:`load`."""
    with Archive(path, "learnflux model file") as archive:
        metadata = read_header(archive).get("metadata", {})
        if not isinstance(metadata, dict):
            raise FileFormatError(
                f"{archive.path}: header key 'metadata': expected an object, got {type(metadata).__name__}"
            )
        return metadata


def read_header(archive: Archive) -> dict[str, Any]:
    """The header of an archive: its ``__learnflux__`` member, parsed and checked for format
    and version."""
    where = archive.path
    if _HEADER not in archive:
        raise FileFormatError(f"{where}: not a learnflux file (no {_HEADER} entry)")
    info = archive.info(_HEADER)
    if info.dtype != np.uint8 or len(info.shape) != 1:
        raise FileFormatError(
            f"{where}: entry {_HEADER!r}: expected UTF-8 bytes (uint8), got {info.dtype.str} {info.shape}"
        )
    if info.size > MAX_HEADER_BYTES:
        raise FileFormatError(
            f"{where}: the header is {info.size:,} bytes (at most {MAX_HEADER_BYTES:,} are read)"
        )
    header = parse_header(archive.read(_HEADER).tobytes(), where)
    if header.get("format") != FORMAT:
        raise FileFormatError(f"{where}: not a learnflux file (format {header.get('format')!r})")
    version = header.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= VERSION:
        raise FileFormatError(
            f"{where}: unsupported version {version!r} (this learnflux reads version {VERSION})"
        )
    return header


def header_dtype(header: dict[str, Any], where: str) -> np.dtype:
    """The model dtype a header names (``float32``, ``float64`` or ``exact``)."""
    name = header.get("dtype", "float32")
    if name not in ("float32", "float64", "exact"):
        raise FileFormatError(
            f"{where}: header key 'dtype': expected float32, float64 or exact, got {name!r}"
        )
    return resolve_dtype(name)


def read_model(
    archive: Archive, spec: Any, dtype: np.dtype, allow_non_finite: bool = False, prefix: str = ""
) -> Layer:
    """Validate the model description ``spec``, check the arrays it implies against the archive
    (members named ``prefix + state key``), build the model and load its arrays."""
    where = archive.path
    plan, _ = plan_model(spec, where)
    for key, shape in expected_shapes(plan).items():
        name = prefix + key
        if name not in archive:
            raise FileFormatError(f"{where}: entry {name!r} is missing (the model's layers need it)")
        info = archive.info(name)
        if info.shape != shape:
            raise FileFormatError(
                f"{where}: entry {name!r} declares shape {info.shape}, the layer described in the "
                f"header holds {shape}"
            )
    model = build(plan, where)
    try:
        model.astype(dtype)
    except LearnfluxError as exc:
        raise FileFormatError(f"{where}: header key 'dtype': {exc}") from None
    own = model.state_dict()
    stored = {k[len(prefix) :] for k in archive.keys() if k.startswith(prefix) and k != _HEADER}
    missing, unexpected = sorted(set(own) - stored), sorted(stored - set(own))
    if missing or unexpected:
        raise FileFormatError(
            f"{where}: the arrays do not match the model: missing {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            f"{' ...' if len(unexpected) > 5 else ''}"
        )
    state = {key: read_array(archive, prefix + key, value, allow_non_finite) for key, value in own.items()}
    try:
        model.load_state_dict(state)
    except LearnfluxError as exc:
        raise FileFormatError(f"{where}: {exc}") from None
    return model


_EXACT = re.compile(r"-?[0-9]{1,4000}(?:/[0-9]{1,4000})?")


def read_array(archive: Archive, name: str, like: np.ndarray, allow_non_finite: bool = False) -> np.ndarray:
    """Member ``name`` as an array to put in place of ``like`` (a parameter or buffer of the
    model): same shape, a dtype of the same kind (the model's own float dtype; ``"p/q"`` strings
    for exact values; non-negative integers for counters), finite unless ``allow_non_finite``."""
    where = archive.path
    info = archive.info(name)
    if info.shape != like.shape:
        raise FileFormatError(f"{where}: entry {name!r} has shape {info.shape}, the model holds {like.shape}")
    kind = like.dtype.kind
    if kind == "f" and not (info.dtype.kind == "f" and info.dtype.itemsize == like.dtype.itemsize):
        raise FileFormatError(
            f"{where}: entry {name!r} holds {info.dtype.name} values; the model computes in {like.dtype.name}"
        )
    if kind == "O" and info.dtype.kind != "U":
        raise FileFormatError(
            f"{where}: entry {name!r} holds {info.dtype.name} values; an exact model stores "
            'fractions as strings "p/q"'
        )
    if kind in "iu" and not (info.dtype.kind in "iu" and info.dtype.itemsize <= 8):
        raise FileFormatError(f"{where}: entry {name!r} holds {info.dtype.name} values, not integers")
    if kind == "b" and info.dtype.kind != "b":
        raise FileFormatError(f"{where}: entry {name!r} holds {info.dtype.name} values, not booleans")
    if kind not in "fOiub":
        raise FileFormatError(
            f"{where}: entry {name!r}: the model holds {like.dtype} here, which files do not store"
        )
    arr = archive.read(name)
    if kind == "O":
        return _exact_values(arr, where, name)
    if kind in "iu":
        if (
            arr.size
            and arr.dtype.kind == "u"
            and like.dtype.kind == "i"
            and arr.max() > np.iinfo(like.dtype).max
        ):
            raise FileFormatError(f"{where}: entry {name!r}: {arr.max()} does not fit in {like.dtype}")
        if arr.size and name.endswith("num_batches_tracked") and arr.min() < 0:
            raise FileFormatError(f"{where}: entry {name!r}: a count must be >= 0, got {arr.min()}")
        return arr.astype(like.dtype)
    if kind == "b":
        return arr
    if not allow_non_finite and arr.size:
        bad = ~np.isfinite(arr)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise FileFormatError(
                f"{where}: entry {name!r} holds {int(bad.sum())} non-finite value(s) (first: "
                f"{arr[first]} at index {first}); load(..., allow_non_finite=True) accepts them"
            )
    if name.endswith("running_var") and arr.size and np.nanmin(arr) < 0:
        raise FileFormatError(f"{where}: entry {name!r}: a variance must be >= 0, got {np.nanmin(arr)}")
    return arr


def _exact_values(arr: np.ndarray, where: str, name: str) -> np.ndarray:
    out = np.empty(arr.shape, dtype=object)
    flat_in, flat_out = arr.reshape(-1), out.reshape(-1)
    for i in range(flat_in.size):
        text = str(flat_in[i])
        if not _EXACT.fullmatch(text):
            shown = text if len(text) <= 40 else text[:37] + "..."
            raise FileFormatError(f'{where}: entry {name!r}: {shown!r} is not an exact value "p/q"')
        num, _, den = text.partition("/")
        if den and int(den) == 0:
            raise FileFormatError(f"{where}: entry {name!r}: {text!r} divides by zero")
        flat_out[i] = Fraction(int(num), int(den) if den else 1)
    return out
