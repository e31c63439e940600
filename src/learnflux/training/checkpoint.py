"""Resuming an interrupted training run, bit for bit: :class:`BackupAndRestore`.

A **training state** is everything the rest of a run depends on:

* the model's parameters and buffers (BatchNorm's running statistics and counts);
* the optimizer's state (moments, step counts) and its parameter groups (the current rates);
* the state of every callback that has one (a schedule's position, early stopping's best value
  and best weights, a checkpoint's best, the rows a CSV or JSON logger has written);
* every random generator the run draws from: the library's global one (``lf.seed``), the one
  ``fit(seed=...)`` shuffles with, and those layers hold (``Dropout(rng=...)``);
* where the run stands: the epoch, the batch within it, the update count, the running sums of the
  epoch's loss and metrics, the history so far, whether training was asked to stop.

It is written as one file, ``<folder>/train_state.lfs``, in the ``lf.save`` format (a ``.npz``
archive: a JSON header and plain arrays, no pickle; read with the same checks as a model file),
atomically (``learnflux.files.io.atomic_write``): a run killed at any point, even while writing it, leaves
the previous complete state.

Resuming restores all of it before the first hook runs; a run resumed mid-epoch redraws that
epoch's shuffled order from the generator's state at the epoch's start and skips the batches
already done. The resumed run then computes exactly what the uninterrupted run would have: the
final weights are identical bit for bit (``tests/test_resume.py`` kills runs with ``SIGKILL`` at
random points and checks it).
"""

from __future__ import annotations

import json
import math
import os
from fractions import Fraction
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from ..core.model import serialize_layer
from ..errors import ConfigError, FileFormatError, LearnfluxError
from ..files.archive import Archive
from ..files.io import (
    FORMAT,
    VERSION,
    _exact_values,
    _remove_stale_temporaries,
    atomic_write,
    read_array,
    read_header,
)
from ..numbers import dtype_name
from ..seeding import get_rng
from .callbacks import Callback

STATE_FILE = "train_state.lfs"
KIND = "training state"
_TAGS = ("__float__", "__scalar__", "__array__", "__exact__", "__tuple__", "__dict__", "__fraction__")


# ---------------------------------------------------------------------------- plain-data trees
class _Encoder:
    """Turns a state (dicts, lists, tuples, numbers, NumPy arrays and scalars, Fractions) into
    JSON-safe data whose arrays are stored aside, so that decoding gives back the same values
    and types (a float32 scalar stays float32, an int dict key stays an int)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.arrays: dict[str, np.ndarray] = {}

    def encode(self, value: Any, where: str = "") -> Any:
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else {"__float__": repr(value)}
        if isinstance(value, np.ndarray):
            key = f"{self.prefix}{len(self.arrays)}"
            if value.dtype == object:
                self.arrays[key] = np.array([str(v) for v in value.reshape(-1)], dtype=str).reshape(
                    value.shape
                )
                return {"__exact__": key}
            if value.dtype.kind not in "fiub":
                raise ConfigError(f"BackupAndRestore: cannot store an array of dtype {value.dtype} ({where})")
            self.arrays[key] = np.ascontiguousarray(value).reshape(value.shape)
            return {"__array__": key}
        if isinstance(value, np.generic):
            if value.dtype.kind not in "fiub":
                raise ConfigError(f"BackupAndRestore: cannot store a {value.dtype} value ({where})")
            return {"__scalar__": value.dtype.str, "value": self.encode(value.item(), where)}
        if isinstance(value, Fraction):
            return {"__fraction__": str(value)}
        if isinstance(value, tuple):
            return {"__tuple__": [self.encode(v, where) for v in value]}
        if isinstance(value, list):
            return [self.encode(v, where) for v in value]
        if isinstance(value, dict):
            return {
                "__dict__": [
                    [self.encode(k, where), self.encode(v, f"{where}.{k}")] for k, v in value.items()
                ]
            }
        raise ConfigError(
            f"BackupAndRestore: cannot store a {type(value).__name__} ({where}); a state holds "
            "numbers, strings, lists, dicts and NumPy arrays"
        )


class _Decoder:
    """The inverse of :class:`_Encoder`, reading the arrays from the archive (every value checked:
    a malformed tree is a FileFormatError)."""

    def __init__(self, archive: Archive, depth_limit: int = 64) -> None:
        self.archive = archive
        self.depth_limit = depth_limit

    def error(self, message: str) -> FileFormatError:
        return FileFormatError(f"{self.archive.path}: {message}")

    def decode(self, value: Any, depth: int = 0) -> Any:
        if depth > self.depth_limit:
            raise self.error("the training state is nested too deeply")
        if value is None or isinstance(value, (bool, str, int, float)):
            return value
        if isinstance(value, list):
            return [self.decode(v, depth + 1) for v in value]
        if not isinstance(value, dict) or len(value) not in (1, 2) or not any(t in value for t in _TAGS):
            raise self.error(f"unexpected value in the training state: {str(value)[:60]}")
        if "__float__" in value:
            text = value["__float__"]
            if text not in ("nan", "inf", "-inf"):
                raise self.error(f"bad float {text!r} in the training state")
            return float(text)
        if "__tuple__" in value:
            return tuple(self.decode(value["__tuple__"], depth + 1))
        if "__dict__" in value:
            pairs = value["__dict__"]
            if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
                raise self.error("a malformed mapping in the training state")
            out = {}
            for k, v in pairs:
                key = self.decode(k, depth + 1)
                if not isinstance(key, (str, int, float, bool, tuple)) and key is not None:
                    raise self.error("a malformed key in the training state")
                out[key] = self.decode(v, depth + 1)
            return out
        if "__fraction__" in value:
            return _exact_values(np.array([str(value["__fraction__"])]), self.archive.path, "fraction")[0]
        if "__scalar__" in value:
            try:
                dtype = np.dtype(str(value["__scalar__"]))
            except TypeError:
                dtype = None
            if (
                dtype is None
                or dtype.kind not in "fiub"
                or not isinstance(value.get("value"), (int, float, bool, dict))
            ):
                raise self.error(f"a malformed scalar in the training state: {str(value)[:60]}")
            return dtype.type(self.decode(value["value"], depth + 1))
        key = value.get("__array__", value.get("__exact__"))
        if not isinstance(key, str) or key not in self.archive:
            raise self.error(f"the training state refers to a missing array {str(key)[:60]!r}")
        arr = self.archive.read(key)
        if "__exact__" in value:
            if arr.dtype.kind != "U":
                raise self.error(f"entry {key!r}: exact values are stored as strings")
            return _exact_values(arr, self.archive.path, key)
        if arr.dtype.kind not in "fiub":
            raise self.error(f"entry {key!r} holds {arr.dtype} values")
        return arr


# ---------------------------------------------------------------------------- what a run holds
def generators(trainer: Any) -> dict[str, np.random.Generator]:
    """Every random generator a run draws from, by a stable name: ``"global"`` (``lf.seed``),
    ``"fit"`` (``fit(seed=...)``'s own), ``"layer:<name>.<attribute>"`` (``Dropout(rng=...)``)."""
    found: dict[str, np.random.Generator] = {}
    seen: set[int] = set()

    def add(name: str, gen: Any) -> None:
        if isinstance(gen, np.random.Generator) and id(gen) not in seen:
            seen.add(id(gen))
            found[name] = gen

    add("global", get_rng())
    add("fit", trainer.rng)
    stack = [("", trainer.model)]
    while stack:
        prefix, layer = stack.pop()
        for attr, value in sorted(vars(layer).items()):
            add(f"layer:{prefix}{attr}", value)
        for i, child in enumerate(getattr(layer, "layers", []) or []):
            stack.append((f"{prefix}{i}.", child))
    return found


def _rng_states(trainer: Any) -> dict[str, Any]:
    return {name: gen.bit_generator.state for name, gen in generators(trainer).items()}


def _set_rng_states(trainer: Any, states: dict[str, Any], where: str) -> None:
    gens = generators(trainer)
    if set(gens) != set(states):
        raise ConfigError(
            f"{where}: the training state holds the random generators {sorted(states)}, this run "
            f"draws from {sorted(gens)}: it was written by a different run"
        )
    for name, gen in gens.items():
        try:
            gen.bit_generator.state = states[name]
        except (TypeError, ValueError, KeyError) as exc:
            raise FileFormatError(f"{where}: the state of generator {name!r} is invalid ({exc})") from None


def _model_spec(model: Any) -> Any:
    return json.loads(json.dumps(serialize_layer(model)))


# ---------------------------------------------------------------------------- the callback
class BackupAndRestore(Callback):
    """Back up the whole training state to ``backup_dir`` and resume from it (Keras'
    ``BackupAndRestore``).

    At each epoch end (and every ``save_freq`` updates when ``save_freq`` is an int) the state
    is written atomically to ``<backup_dir>/train_state.lfs``. A ``fit`` that starts with such a
    file there resumes from it: same model, optimizer, schedule, callbacks' states, random
    generators, epoch and batch; it then ends exactly as the uninterrupted run would have. The
    file is deleted when ``fit`` completes (``delete_checkpoint=True``), so the next ``fit`` with
    the same folder starts afresh.

    Resuming needs the same run: the same model architecture, optimizer kind, data size, batch
    size and shuffling, and the callbacks that have a state (the k-th saved callback of a class
    goes to the k-th callback of that class; a callback without state may come and go);
    ``epochs`` may differ (training then continues to the new count). Data given as an iterable
    of batches resumes exactly when it replays the same batches (``lf.data.ArrayLoader`` does,
    through its ``epoch``). ``resumed_from`` then holds the ``(epoch, batch)`` it resumed at.

    Args:
        backup_dir: the folder of the backup (created if needed).
        save_freq: ``"epoch"``, or an int: also back up after every that many updates.
        delete_checkpoint: delete the backup when training completes.
    """

    def __init__(
        self,
        backup_dir: Union[str, os.PathLike],
        save_freq: Union[str, int] = "epoch",
        delete_checkpoint: bool = True,
    ) -> None:
        if save_freq != "epoch" and (
            isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq < 1
        ):
            raise ConfigError(
                f"BackupAndRestore: save_freq must be 'epoch' or a positive int, got {save_freq!r}"
            )
        self.backup_dir = Path(backup_dir)
        self.save_freq = save_freq
        self.delete_checkpoint = bool(delete_checkpoint)
        #: the epoch and batch the last fit resumed from (None: it started afresh)
        self.resumed_from: Optional[tuple[int, int]] = None

    @property
    def path(self) -> Path:
        """``<backup_dir>/train_state.lfs``."""
        return self.backup_dir / STATE_FILE

    def due(self, step: int) -> bool:
        """Whether to back up after update number ``step``."""
        return isinstance(self.save_freq, int) and step % self.save_freq == 0

    def on_train_end(self) -> None:
        if self.delete_checkpoint:
            self.path.unlink(missing_ok=True)
        _remove_stale_temporaries(self.path)  # one a killed run left while writing the backup

    # ------------------------------------------------------------------ writing
    def save(self, trainer: Any, position: dict[str, Any]) -> None:
        """Write the state of ``trainer`` (at ``position``: epoch, batch, meter...) atomically."""
        enc = _Encoder("state/")
        model = trainer.model
        arrays = {f"model/{k}": _storable(v) for k, v in model.state_dict().items()}
        optimizer = trainer.optimizer
        callbacks = trainer.callbacks.callbacks
        header = {
            "format": FORMAT,
            "version": VERSION,
            "kind": KIND,
            "dtype": dtype_name(model.dtype),
            "model": _model_spec(model),
            "run": enc.encode(trainer._run_signature, "run"),
            "position": enc.encode(position, "position"),
            "trainer": enc.encode(
                {
                    "epoch": trainer.epoch,
                    "global_step": trainer.global_step,
                    "stop_training": trainer.stop_training,
                    "stop_reason": trainer.stop_reason,
                },
                "trainer",
            ),
            "history": enc.encode(
                {
                    "history": trainer.history.history,
                    "epoch": trainer.history.epoch,
                    "seconds": trainer.history.seconds,
                },
                "history",
            ),
            "optimizer": {
                "class": type(optimizer).__name__,
                "state": enc.encode(
                    optimizer.state_dict() if hasattr(optimizer, "state_dict") else {}, "optimizer"
                ),
            },
            "callbacks": [
                {"class": type(cb).__name__, "state": enc.encode(cb.state_dict(), type(cb).__name__)}
                for cb in callbacks
            ],
            "rng": enc.encode(_rng_states(trainer), "rng"),
        }
        arrays.update(enc.arrays)
        arrays["__learnflux__"] = np.frombuffer(
            json.dumps(header, allow_nan=False).encode("utf-8"), dtype=np.uint8
        )
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, lambda fh: np.savez(fh, **arrays))

    # ------------------------------------------------------------------ reading
    def restore(self, trainer: Any) -> Optional[dict[str, Any]]:
        """Restore ``trainer`` from the backup, if there is one; return the position it stood at
        (None: no backup, start afresh)."""
        if not self.path.is_file():
            self.resumed_from = None
            return None
        where = str(self.path)
        with Archive(self.path, "learnflux training state") as archive:
            header = read_header(archive)
            if header.get("kind") != KIND:
                raise FileFormatError(f"{where}: not a training state (a model file? load it with lf.load)")
            dec = _Decoder(archive)
            model = trainer.model
            if header.get("model") != _model_spec(model):
                raise ConfigError(
                    f"{where}: the backup was written for another model architecture; delete it "
                    "(or use another backup folder) to start afresh"
                )
            run = dec.decode(header.get("run"))
            if not isinstance(run, dict) or run != trainer._run_signature:
                raise ConfigError(
                    f"{where}: the backup was written by a different run ({_describe_run(run)}); this "
                    f"fit asks for {_describe_run(trainer._run_signature)}: delete the backup to start afresh"
                )
            state = {
                k: read_array(archive, f"model/{k}", v, allow_non_finite=True)
                for k, v in model.state_dict().items()
            }
            stored = {k for k in archive.keys() if k.startswith("model/")}
            if stored != {f"model/{k}" for k in state}:
                raise FileFormatError(f"{where}: the model's arrays do not match the model")
            opt_entry = header.get("optimizer")
            optimizer = trainer.optimizer
            if not isinstance(opt_entry, dict) or opt_entry.get("class") != type(optimizer).__name__:
                saved = opt_entry.get("class") if isinstance(opt_entry, dict) else "?"
                raise ConfigError(
                    f"{where}: the backup holds the state of a {saved} optimizer, this run uses "
                    f"{type(optimizer).__name__}"
                )
            opt_state = dec.decode(opt_entry.get("state"))
            callbacks = trainer.callbacks.callbacks
            pairs = _pair_callbacks(header.get("callbacks"), callbacks, dec, where)
            rng = dec.decode(header.get("rng"))
            position = dec.decode(header.get("position"))
            tr = dec.decode(header.get("trainer"))
            history = dec.decode(header.get("history"))
        try:
            model.load_state_dict(state)
            if hasattr(optimizer, "load_state_dict"):
                optimizer.load_state_dict(opt_state)
            for cb, st in pairs:
                cb.load_state_dict(st)
            _set_rng_states(trainer, rng, where)
            trainer.epoch = int(tr["epoch"])
            trainer.global_step = int(tr["global_step"])
            trainer.stop_training = bool(tr["stop_training"])
            trainer.stop_reason = tr["stop_reason"]
            trainer.history.history = {str(k): list(v) for k, v in history["history"].items()}
            trainer.history.epoch = [int(e) for e in history["epoch"]]
            trainer.history.seconds = float(history["seconds"])
        except LearnfluxError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise FileFormatError(
                f"{where}: a malformed training state ({type(exc).__name__}: {exc})"
            ) from None
        if not isinstance(position, dict):
            raise FileFormatError(f"{where}: a malformed training state (position)")
        self.resumed_from = (int(position["epoch"]), int(position["batch"]))
        return position


def _pair_callbacks(saved: Any, callbacks: list, dec: _Decoder, where: str) -> list[tuple[Any, Any]]:
    """Match the saved callback states to this run's callbacks: the k-th saved callback of a
    class goes to the k-th callback of that class here. Every saved state must find its
    callback (a callback without state, such as one that stopped the first run, may come and
    go; one whose state is missing starts afresh)."""
    if not isinstance(saved, list) or not all(
        isinstance(c, dict) and isinstance(c.get("class"), str) for c in saved
    ):
        raise FileFormatError(f"{where}: a malformed training state (callbacks)")
    here: dict[str, list[Any]] = {}
    for cb in callbacks:
        here.setdefault(type(cb).__name__, []).append(cb)
    seen: dict[str, int] = {}
    pairs = []
    for entry in saved:
        name = entry["class"]
        k = seen.get(name, 0)
        seen[name] = k + 1
        state = dec.decode(entry.get("state"))
        if not state:
            continue
        if k >= len(here.get(name, [])):
            raise ConfigError(
                f"{where}: the backup holds the state of a {name} callback (number {k + 1} of that "
                f"class) that this run does not have; its callbacks: "
                f"{[type(cb).__name__ for cb in callbacks]}"
            )
        pairs.append((here[name][k], state))
    return pairs


def _storable(value: np.ndarray) -> np.ndarray:
    if value.dtype == object:
        value = np.array([str(v) for v in value.reshape(-1)], dtype=str).reshape(value.shape)
    return np.ascontiguousarray(value).reshape(value.shape)


def _describe_run(run: Any) -> str:
    if not isinstance(run, dict):
        return "?"
    return ", ".join(f"{k}={v}" for k, v in run.items())
