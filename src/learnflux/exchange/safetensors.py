"""safetensors weights: ``lf.save_safetensors(model, path)`` / ``lf.load_safetensors(model, path)``.

The file holds the model's ``state_dict()``: every parameter and buffer (batch-norm running
statistics and ``num_batches_tracked``) under PyTorch's key names (``"0.weight"``,
``"1.running_mean"``), in the model's dtype. So the same file loads into the ``lf.to_torch``
module (``module.load_state_dict(safetensors.torch.load_file(path))``), and a file saved from a
PyTorch module with the same layers loads here. The architecture is not in the file (as with
PyTorch's ``state_dict``): build the model first (or keep the ``lf.save`` file, which holds both).

Saving writes atomically (:func:`learnflux.files.io.atomic_write`: a crash while saving keeps the
previous file). Loading parses nothing but the safetensors header (JSON) and raw little-endian
numbers: no code runs, no pickle. Before any array is copied into the model, every name, shape and
dtype is checked against the model, and the values as :func:`learnflux.load` checks them (finite
floats of the model's own precision, variances ≥ 0, counts ≥ 0); any failure is a
:class:`~learnflux.errors.FileFormatError` naming the file and the entry, and leaves the model as
it was.

The ``safetensors`` package (``pip install 'learnflux[safetensors]'``) is imported only here.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Any, Optional

import numpy as np

from ..core.layer import Layer
from ..errors import ConfigError, DtypeError, FileFormatError, LearnfluxError
from ..files.archive import ArrayInfo
from ..files.io import PathLike, atomic_write, read_array
from ..numbers import is_exact
from ..version import __version__

#: safetensors dtype codes learnflux reads (others, e.g. BF16, are refused before any read)
_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U64": np.uint64,
    "U32": np.uint32,
    "U16": np.uint16,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


def _import_safetensors() -> Any:
    try:
        import safetensors
        import safetensors.numpy
    except ImportError:
        raise ConfigError(
            "safetensors files need the safetensors package, which is not installed: "
            "pip install 'learnflux[safetensors]'"
        ) from None
    return safetensors


def save_safetensors(model: Layer, path: PathLike, metadata: Optional[dict[str, str]] = None) -> None:
    """Write ``model.state_dict()`` to ``path`` as safetensors (atomically).

    Args:
        model: a learnflux model or layer, in float32 or float64.
        path: the file to write (``.safetensors``).
        metadata: extra text entries for the file's ``__metadata__`` (string keys and values).
            learnflux adds ``format: pt`` (PyTorch's layouts and names, as model hubs expect) and
            ``producer: learnflux <version>``.

    Raises:
        DtypeError: an exact model (safetensors stores numbers, not fractions): convert it first
            with ``model.astype("float64")``.
    """
    st = _import_safetensors()
    if is_exact(model.dtype):
        raise DtypeError(
            "save_safetensors: the model computes in exact arithmetic, which safetensors cannot "
            "store; convert it first with model.astype('float64')"
        )
    meta = {"format": "pt", "producer": f"learnflux {__version__}"}
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ConfigError(
                f"save_safetensors: metadata must map strings to strings, got {key!r}: {value!r}"
            )
        meta[key] = value
    arrays = {
        name: np.ascontiguousarray(value).reshape(value.shape) for name, value in model.state_dict().items()
    }
    data = st.numpy.save(arrays, metadata=meta)
    atomic_write(path, lambda fh: fh.write(data))


class _SafetensorsFile:
    """An open safetensors file, seen through the interface :func:`learnflux.files.io.read_array`
    reads archives with (``path``, ``info(key)``, ``read(key)``)."""

    def __init__(self, path: PathLike) -> None:
        st = _import_safetensors()
        self.path = os.fspath(path)
        try:
            mode = os.stat(self.path).st_mode
        except FileNotFoundError:
            raise FileNotFoundError(errno.ENOENT, "no such safetensors file", self.path) from None
        if not stat.S_ISREG(mode):
            raise FileFormatError(f"{self.path}: not a safetensors file: not a regular file")
        try:
            self._file = st.safe_open(self.path, framework="numpy")
            self._handle = self._file.__enter__()
            self._keys = list(self._handle.keys())
        except st.SafetensorError as exc:
            raise FileFormatError(f"{self.path}: not a valid safetensors file ({exc})") from None
        self._infos: dict[str, ArrayInfo] = {}

    def keys(self) -> list[str]:
        return self._keys

    def info(self, key: str) -> ArrayInfo:
        """The shape and dtype the header declares for ``key`` (nothing read yet)."""
        if key not in self._infos:
            view = self._handle.get_slice(key)
            code = view.get_dtype()
            if code not in _DTYPES:
                raise FileFormatError(
                    f"{self.path}: entry {key!r} holds {code} values, which learnflux does not read "
                    f"(it reads {', '.join(_DTYPES)})"
                )
            self._infos[key] = ArrayInfo(np.dtype(_DTYPES[code]), tuple(view.get_shape()), False, 0)
        return self._infos[key]

    def read(self, key: str) -> np.ndarray:
        return np.array(self._handle.get_tensor(key))

    def close(self) -> None:
        self._file.__exit__(None, None, None)

    def __enter__(self) -> _SafetensorsFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def load_safetensors(
    model: Layer, path: PathLike, strict: bool = True, allow_non_finite: bool = False
) -> None:
    """Load the safetensors file ``path`` into ``model``'s parameters and buffers.

    Args:
        model: the model to fill (built with the architecture the weights come from).
        path: a ``.safetensors`` file, written by :func:`save_safetensors` or by PyTorch
            (``safetensors.torch.save_file(module.state_dict(), path)``).
        strict: the file's names must be exactly the model's ``state_dict()`` keys (PyTorch's
            ``load_state_dict(strict=True)``). With ``strict=False`` the names the model has and the
            file does not keep their values, and names the model does not have are ignored.
        allow_non_finite: accept NaN and infinite values (refused by default, as ``lf.load``).

    Raises:
        FileFormatError: not a safetensors file (truncated, corrupt header), names that do not
            match, a shape or dtype that differs from the model's (a float64 file for a float32
            model: convert the model with ``model.astype``), non-finite values, a negative
            variance or count. Nothing is loaded then.
        FileNotFoundError: no such file.
    """
    if is_exact(model.dtype):
        raise DtypeError(
            "load_safetensors: the model computes in exact arithmetic; safetensors files hold "
            "floats: load them into model.astype('float64') (then convert it back if you wish)"
        )
    own = model.state_dict()
    with _SafetensorsFile(path) as f:
        stored = set(f.keys())
        missing, unexpected = sorted(set(own) - stored), sorted(stored - set(own))
        if strict and (missing or unexpected):
            raise FileFormatError(
                f"{f.path}: the tensors do not match the model: missing {_few(missing)}, "
                f"unexpected {_few(unexpected)}"
            )
        state = {}
        for key, like in own.items():
            if key in stored:
                state[key] = read_array(f, key, like, allow_non_finite)  # type: ignore[arg-type]
    try:
        model.load_state_dict(state, strict=False)
    except LearnfluxError as exc:
        raise FileFormatError(f"{f.path}: {exc}") from None


def _few(keys: list[str]) -> str:
    return f"{keys[:5]}{' ...' if len(keys) > 5 else ''}"


__all__ = ["load_safetensors", "save_safetensors"]
