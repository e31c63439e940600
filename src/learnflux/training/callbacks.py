"""Callbacks: code that ``fit`` runs at fixed points of training.

A callback subclasses :class:`Callback` and overrides some of the hooks below; ``self.trainer``
(the :class:`~learnflux.train.Trainer`) and ``self.model`` are set before training starts. Setting
``self.trainer.stop_training = True`` ends training after the current batch or epoch.

Hooks, in the order ``fit`` calls them::

    on_train_begin()
      on_epoch_begin(epoch)
        on_batch_begin(batch)
          (forward, loss, backward)
          on_after_backward(batch, logs)     # gradients are there, the update is not done yet
          (clipping, optimizer.step())
          on_step_end(step, logs)            # after each update (global step count)
        on_batch_end(batch, logs)            # logs: {"batch", "loss"}
      on_epoch_end(epoch, logs)              # logs: loss, metrics, lr, val_loss, val_<metric>
    on_train_end()

Built in: :class:`EarlyStopping`, :class:`ModelCheckpoint`, :class:`LearningRateScheduler`,
:class:`CSVLogger`, :class:`JSONLogger`, :class:`TerminateOnNaN`; and
:class:`~learnflux.training.checkpoint.BackupAndRestore`, which resumes an interrupted ``fit`` (a callback
that has a state to keep across a resume returns it from :meth:`Callback.state_dict`).
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union

import numpy as np

from ..errors import ConfigError, NonFiniteError
from ..files.io import atomic_write, save


class Callback:
    """Base class: every hook does nothing."""

    trainer: Any = None
    model: Any = None

    def set_trainer(self, trainer: Any) -> None:
        self.trainer = trainer
        self.model = trainer.model

    def on_train_begin(self) -> None: ...
    def on_train_end(self) -> None: ...
    def on_epoch_begin(self, epoch: int) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None: ...
    def on_batch_begin(self, batch: int) -> None: ...
    def on_after_backward(self, batch: int, logs: dict[str, Any]) -> None: ...
    def on_step_end(self, step: int, logs: dict[str, Any]) -> None: ...
    def on_batch_end(self, batch: int, logs: dict[str, Any]) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        """What this callback must keep for a resumed run to go on as the interrupted one would
        have (``BackupAndRestore`` saves it): plain data (numbers, strings, lists, dicts, NumPy
        arrays). Nothing by default."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned. Called before ``on_train_begin`` of the
        resumed run, which must then keep it (``self.resuming`` is True until then)."""
        self.resuming = bool(state)

    def _take_resuming(self) -> bool:
        """True once after :meth:`load_state_dict` (for ``on_train_begin``)."""
        resuming = getattr(self, "resuming", False)
        self.resuming = False
        return resuming


class CallbackList:
    """Calls a hook on every callback, in order."""

    def __init__(self, callbacks: Iterable[Callback], trainer: Any) -> None:
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise ConfigError(f"callbacks must be learnflux Callback objects, got {cb!r}")
            cb.set_trainer(trainer)

    def __getattr__(self, hook: str) -> Callable[..., None]:
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call(*args: Any) -> None:
            for cb in self.callbacks:
                getattr(cb, hook)(*args)

        return call


def _mode_for(monitor: str, mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ConfigError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    return "max" if any(w in monitor for w in ("acc", "auc", "f1", "precision", "recall")) else "min"


class _Monitor:
    """Tracks the best value of a logged quantity."""

    def __init__(self, monitor: str, mode: str, min_delta: float = 0.0) -> None:
        self.monitor = monitor
        self.mode = _mode_for(monitor, mode)
        self.min_delta = abs(min_delta)
        self.best = math.inf if self.mode == "min" else -math.inf

    def value(self, logs: dict[str, Any]) -> float:
        if self.monitor not in logs:
            raise ConfigError(
                f"cannot monitor {self.monitor!r}: the logs have {sorted(logs)} (val_* needs validation_data)"
            )
        return float(logs[self.monitor])

    def improved(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


def _copy_state(model: Any) -> dict[str, np.ndarray]:
    return {k: np.array(v, copy=True) for k, v in model.state_dict().items()}


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs
    in a row (Keras' rule: ``patience=0`` stops at the first epoch without improvement).

    Args:
        monitor: a key of the epoch logs (``"val_loss"``, ``"val_accuracy"``, ``"loss"``...).
        patience: epochs without improvement tolerated before stopping.
        min_delta: the smallest change that counts as an improvement.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (max for accuracies, min otherwise).
        restore_best: at the end, put back the weights (and buffers) of the best epoch.

    After training, ``best``, ``best_epoch`` and ``stopped_epoch`` (None if it never stopped).
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 0,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best: bool = False,
    ) -> None:
        if patience < 0:
            raise ConfigError(f"EarlyStopping: patience must be >= 0, got {patience}")
        self.tracker = _Monitor(monitor, mode, min_delta)
        self.patience = patience
        self.restore_best = restore_best

    def on_train_begin(self) -> None:
        if self._take_resuming():
            return
        self.tracker.best = math.inf if self.tracker.mode == "min" else -math.inf
        self.wait = 0
        self.best_epoch: Optional[int] = None
        self.stopped_epoch: Optional[int] = None
        self.best_state: Optional[dict[str, np.ndarray]] = None

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self.tracker.best,
            "wait": self.wait,
            "best_epoch": self.best_epoch,
            "stopped_epoch": self.stopped_epoch,
            "best_state": self.best_state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tracker.best = float(state["best"])
        self.wait = int(state["wait"])
        self.best_epoch = state["best_epoch"]
        self.stopped_epoch = state["stopped_epoch"]
        self.best_state = state["best_state"]
        self.resuming = True

    @property
    def best(self) -> float:
        return self.tracker.best

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        value = self.tracker.value(logs)
        if self.tracker.improved(value):
            self.tracker.best = value
            self.best_epoch = epoch
            self.wait = 0
            if self.restore_best:
                self.best_state = _copy_state(self.model)
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.trainer.stop_training = True
            self.trainer.stop_reason = (
                f"early stopping: {self.tracker.monitor} did not improve for {self.wait} epochs "
                f"(best {self.tracker.best:.6g} at epoch {(self.best_epoch or 0) + 1})"
            )

    def on_train_end(self) -> None:
        if self.restore_best and self.best_state is not None:
            self.model.load_state_dict(self.best_state)


class ModelCheckpoint(Callback):
    """Save the model (``lf.save`` format, written atomically) after epochs.

    Args:
        filepath: where to save; may hold ``{epoch}`` and log keys, e.g.
            ``"ckpt-{epoch:02d}-{val_loss:.3f}.lf"`` (epochs counted from 1).
        monitor / mode / min_delta: what "best" means (as in :class:`EarlyStopping`).
        save_best_only: save only when ``monitor`` improved (the file then always holds the best
            model so far).
    """

    def __init__(
        self,
        filepath: Union[str, os.PathLike],
        monitor: str = "val_loss",
        save_best_only: bool = False,
        mode: str = "auto",
        min_delta: float = 0.0,
    ) -> None:
        self.filepath = str(filepath)
        self.tracker = _Monitor(monitor, mode, min_delta)
        self.save_best_only = save_best_only
        self.saved: list[str] = []
        self.best_epoch: Optional[int] = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        if self.save_best_only:
            value = self.tracker.value(logs)
            if not self.tracker.improved(value):
                return
            self.tracker.best = value
            self.best_epoch = epoch
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"ModelCheckpoint: cannot format {self.filepath!r}: {exc}") from None
        save(self.model, path)
        self.saved.append(path)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.tracker.best, "best_epoch": self.best_epoch, "saved": list(self.saved)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tracker.best = float(state["best"])
        self.best_epoch = state["best_epoch"]
        self.saved = [str(p) for p in state["saved"]]


def _needs_metric(schedule: Any) -> bool:
    return any(c.__name__ == "ReduceLROnPlateau" for c in type(schedule).__mro__)


class LearningRateScheduler(Callback):
    """Change the learning rate during training.

    Args:
        schedule: a schedule of ``learnflux.optim.schedules`` (``StepLR``, ``OneCycleLR``,
            ``ReduceLROnPlateau``...) built on the trainer's optimizer, whose ``step()`` this
            callback calls; or a function ``f(epoch, lr) -> new lr`` (Keras style) applied to
            every parameter group at the start of each epoch.
        interval: ``"epoch"`` (step after each epoch) or ``"step"`` (after each update, for
            warm-up and one-cycle schedules).
        monitor: for ``ReduceLROnPlateau``, the log key passed to ``step(value)``.
    """

    def __init__(self, schedule: Any, interval: str = "epoch", monitor: str = "val_loss") -> None:
        if interval not in ("epoch", "step"):
            raise ConfigError(f"LearningRateScheduler: interval must be 'epoch' or 'step', got {interval!r}")
        if not (hasattr(schedule, "step") or callable(schedule)):
            raise ConfigError(f"LearningRateScheduler: {schedule!r} is neither a schedule nor a function")
        self.schedule = schedule
        self.interval = interval
        self.monitor = monitor
        self.is_function = not hasattr(schedule, "step")
        if _needs_metric(schedule) and interval != "epoch":
            raise ConfigError("ReduceLROnPlateau steps once per epoch on a monitored value")

    def state_dict(self) -> dict[str, Any]:
        if self.is_function or not hasattr(self.schedule, "state_dict"):
            return {}
        return {"schedule": self.schedule.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "schedule" in state:
            self.schedule.load_state_dict(state["schedule"])

    def on_epoch_begin(self, epoch: int) -> None:
        if self.is_function:
            for group in self.trainer.optimizer.param_groups:
                group["lr"] = float(self.schedule(epoch, group["lr"]))

    def on_step_end(self, step: int, logs: dict[str, Any]) -> None:
        if self.interval == "step" and not self.is_function:
            self.schedule.step()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        if self.interval != "epoch" or self.is_function:
            return
        if _needs_metric(self.schedule):
            key = self.monitor if self.monitor in logs else "loss"
            self.schedule.step(float(logs[key]))
        else:
            self.schedule.step()


def _plain(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    return value


def _count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as fh:
            return sum(1 for _ in fh)
    except FileNotFoundError:
        return 0


def _keep_rows(path: Path, rows: int, header: bool) -> int:
    """Cut a log file to its first ``rows`` rows (after its header line): the rows of the epochs
    a resumed run had completed; later ones are written again. Returns the rows kept."""
    try:
        with open(path, "rb") as fh:
            lines = fh.read().splitlines(keepends=True)
    except FileNotFoundError:
        lines = []
    keep = lines[: rows + (1 if header else 0)] if rows > 0 else []
    kept = max(0, len(keep) - (1 if header and keep else 0))
    atomic_write(path, lambda fh: fh.write(b"".join(keep)))
    return kept


class _RowLogger(Callback):
    """A log file with one row per epoch (:class:`CSVLogger`, :class:`JSONLogger`): its state is
    the rows written, so that a resumed run cuts the file back to them; closed at the end."""

    _fh: Any
    _rows: int

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self._rows}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._rows = int(state["rows"])
        self.resuming = True

    def on_train_end(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class CSVLogger(_RowLogger):
    """Append one row per epoch (``epoch`` counted from 1, then every log key) to a CSV file,
    flushed after each epoch so it can be watched while training runs. ``append=True`` keeps an
    existing file (resuming); otherwise it is overwritten."""

    def __init__(self, filename: Union[str, os.PathLike], append: bool = False) -> None:
        self.filename = Path(filename)
        self.append = append
        self._fh: Any = None
        self._writer: Any = None

    def on_train_begin(self) -> None:
        self.filename.parent.mkdir(parents=True, exist_ok=True)
        if self._take_resuming():  # keep the rows of the epochs the backup holds, drop later ones
            self._rows = _keep_rows(self.filename, self._rows, header=True)
            exists, append = self._rows > 0, True
        else:
            exists = self.append and self.filename.exists() and self.filename.stat().st_size > 0
            append = self.append
            self._rows = max(0, _count_lines(self.filename) - 1) if exists else 0
        self._fh = open(self.filename, "a" if append else "w", newline="", encoding="utf-8")
        self._writer = None
        self._header_written = exists

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        row = {"epoch": epoch + 1, **{k: _plain(v) for k, v in logs.items()}}
        if self._writer is None:
            self._writer = csv.DictWriter(
                self._fh, fieldnames=list(row), extrasaction="ignore", lineterminator="\n"
            )
            if not self._header_written:
                self._writer.writeheader()
        self._writer.writerow(row)
        self._fh.flush()
        self._rows += 1


class JSONLogger(_RowLogger):
    """Write one JSON object per epoch (JSON Lines: ``{"epoch": 1, "loss": ..., ...}``), flushed
    after each epoch; non-finite values are written as ``null`` / ``"inf"``."""

    def __init__(self, filename: Union[str, os.PathLike], append: bool = False) -> None:
        self.filename = Path(filename)
        self.append = append
        self._fh: Any = None

    def on_train_begin(self) -> None:
        self.filename.parent.mkdir(parents=True, exist_ok=True)
        if self._take_resuming():  # keep the lines of the epochs the backup holds
            self._rows = _keep_rows(self.filename, self._rows, header=False)
            append = True
        else:
            append = self.append
            self._rows = _count_lines(self.filename) if append else 0
        self._fh = open(self.filename, "a" if append else "w", encoding="utf-8")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        row = {"epoch": epoch + 1, **{k: _plain(v) for k, v in logs.items()}}
        self._fh.write(json.dumps(row) + "\n")
        self._fh.flush()
        self._rows += 1


def _first_bad(arrays: Any) -> Optional[str]:
    """``"NaN"`` / ``"inf"`` if an array holds one, else None."""
    if arrays is None:
        return None
    for arr in arrays if isinstance(arrays, (list, tuple)) else [arrays]:
        if arr is None or not isinstance(arr, np.ndarray) or arr.dtype.kind != "f":
            continue
        if not np.isfinite(arr.sum()):
            return "NaN" if np.isnan(arr).any() else "inf"
    return None


def find_non_finite(model: Any) -> Optional[str]:
    """Name the first layer whose output (in forward order), then whose δ or weight gradient
    (in backward order), is NaN or infinite, from what the last training step recorded
    (``model.record_intermediates``). None if everything is finite."""
    layers = getattr(model, "layers", [model])
    outputs = getattr(model, "last_outputs", None)
    if outputs is not None:
        for layer, out in zip(layers, outputs, strict=True):
            bad = _first_bad(out)
            if bad:
                return f"the output of {layer.describe()} became {bad} in the forward pass"
    deltas = getattr(model, "last_deltas", None)
    plan = getattr(model, "_plan", [(i - 1,) for i in range(len(layers))])
    for i in range(len(layers) - 1, -1, -1):
        layer = layers[i]
        if deltas is not None and i < len(layers) - 1:
            bad = _first_bad(deltas[i])
            if bad:
                consumers = [layers[k].describe() for k, ins in enumerate(plan) if i in ins]
                by = f" in the backward pass of {' and '.join(consumers)}" if consumers else ""
                return f"the δ for the output of {layer.describe()} became {bad}{by}"
        for name, p in layer.named_parameters():
            bad = _first_bad(p.grad)
            if bad:
                return f"the gradient of {layer.describe()} parameter '{name}' became {bad}"
    return None


class TerminateOnNaN(Callback):
    """Stop as soon as the loss, a layer output or a gradient is NaN or infinite, before the
    optimizer applies that step, with a message naming the first layer where it appeared (found
    from the outputs and δ the model records while this callback is active).

    Every loss refuses a NaN or an infinity in the model output or the target with a
    :class:`~learnflux.errors.NonFiniteError` naming the loss; with this callback, ``fit``
    reports that as a non-finite step too (naming the layer whose output broke) and follows
    ``raise_error``.

    Args:
        check_gradients: also check every weight gradient at each step (one sum per parameter),
            not only the loss.
        raise_error: raise :class:`~learnflux.errors.NonFiniteError` (default); with False, stop
            training, print the message and keep the history (``history.stop_reason``).
    """

    def __init__(self, check_gradients: bool = True, raise_error: bool = True) -> None:
        self.check_gradients = check_gradients
        self.raise_error = raise_error
        self.message: Optional[str] = None

    def on_train_begin(self) -> None:
        self._was_recording = getattr(self.model, "record_intermediates", None)
        if self._was_recording is not None:
            self.model.record_intermediates = True
        self.message = None

    def on_after_backward(self, batch: int, logs: dict[str, Any]) -> None:
        loss = logs.get("loss", 0.0)
        bad = not math.isfinite(loss)
        if not bad and self.check_gradients:
            bad = any(_first_bad(p.grad) for p in self.model.parameters())
        if not bad:
            return
        where = find_non_finite(self.model)
        if where is None:
            where = f"the loss {type(self.trainer.loss).__name__} is {loss} although the outputs are finite"
        self._stop(batch, f"loss {loss}", where)

    def loss_failed(self, batch: int, error: NonFiniteError) -> None:
        """The loss refused a NaN or an infinity in the model output or the target (it raises
        :class:`~learnflux.errors.NonFiniteError`): report it as a non-finite step, naming the
        first layer whose output broke when there is one, and stop (or raise)."""
        where = find_non_finite(self.model) or str(error)
        self._stop(batch, "the loss refused it", where)

    def _stop(self, batch: int, what: str, where: str) -> None:
        self.message = (
            f"non-finite value at epoch {self.trainer.epoch + 1}, batch {batch + 1} "
            f"({what}): {where}; the update was not applied. Lower the learning rate, "
            "clip gradients (clip_norm=...) or check the data."
        )
        self.trainer.stop_training = True
        self.trainer.stop_reason = self.message
        if self.raise_error:
            self._restore()
            raise NonFiniteError(self.message)
        print(self.message, file=sys.stderr)

    def _restore(self) -> None:
        if self._was_recording is not None:
            self.model.record_intermediates = self._was_recording
            self.model.last_outputs = self.model.last_deltas = None

    def on_train_end(self) -> None:
        self._restore()
