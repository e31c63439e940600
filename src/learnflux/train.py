"""The fit loop: batches, the training step, metrics, validation, callbacks, history.

One training step is the series' data path, nothing more::

    o     = model.forward(xb)                       # forward pass (training phase: caches kept)
    value = loss.forward(o, yb)                     # the indicator (mean over the batch)
    model.backward(loss.backward(), need_input_delta=False)   # δ flows back, param.grad filled
    optimizer.step()                                # ŵ = update(w, δw)

``model.fit(x, y, ...)`` (a :class:`Trainer` under the hood) repeats it over shuffled batches for a
number of epochs, evaluates on validation data after each epoch, calls the callbacks and returns a
:class:`History`. With ``accumulate=k`` the gradients of ``k`` consecutive batches are averaged
before one update (δ is scaled by ``1/k`` and the backward passes add into ``param.grad``), which
equals one step on a batch ``k`` times larger.

Determinism: the batches are drawn from ``np.random.default_rng(seed)`` (or from the library's
global generator, ``lf.seed``, when ``seed`` is None), so the same model, data and seed give
bit-identical weights.
"""

from __future__ import annotations

import csv
import io
import math
import sys
import time
from typing import Any, Iterable, Iterator, Optional, Sequence, Union

import numpy as np

from .callbacks import Callback, CallbackList, LearningRateScheduler, TerminateOnNaN
from .errors import ConfigError, NonFiniteError, ShapeError
from .losses.base import Loss
from .metrics import Metric, get_metric, looks_like_class_labels
from .progress import Progress, Verbose, format_logs, resolve_verbose
from .seeding import get_rng


class History:
    """What ``fit`` returns: ``history.history`` maps ``"loss"``, ``"accuracy"``, ``"val_loss"``,
    ``"val_accuracy"``, ``"lr"``... to one value per epoch (like Keras); ``history.epoch`` lists
    the epoch numbers (0-based). ``stopped_epoch`` / ``stop_reason`` say why training ended early,
    if it did."""

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.params: dict[str, Any] = {}
        self.stop_reason: Optional[str] = None
        self.seconds = 0.0

    def append(self, epoch: int, logs: dict[str, Any]) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            column = self.history.setdefault(key, [math.nan] * (len(self.epoch) - 1))
            column.append(value)
        for column in self.history.values():
            if len(column) < len(self.epoch):
                column.append(math.nan)

    def __getitem__(self, key: str) -> list[float]:
        return self.history[key]

    def __len__(self) -> int:
        return len(self.epoch)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per epoch: ``{"epoch": 1, "loss": ..., ...}`` (epochs counted from 1)."""
        return [
            {"epoch": e + 1, **{k: v[i] for k, v in self.history.items()}} for i, e in enumerate(self.epoch)
        ]

    def to_csv(self, path: Any = None) -> str:
        """The history as CSV text (one row per epoch); written atomically to ``path`` if given."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=["epoch", *self.history], lineterminator="\n")
        writer.writeheader()
        for row in self.rows():
            writer.writerow(row)
        text = buf.getvalue()
        if path is not None:
            from .io import atomic_write

            atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))
        return text

    def __repr__(self) -> str:
        return f"History({len(self.epoch)} epochs, keys={list(self.history)})"


# ---------------------------------------------------------------------------- helpers
def _resolve_loss(loss: Any) -> Loss:
    if loss is None:
        from .losses import SquaredError

        return SquaredError()
    if isinstance(loss, str):
        from . import losses

        names = {n.lower(): n for n in dir(losses) if isinstance(getattr(losses, n), type)}
        aliases = {
            "mse": "MSELoss",
            "cross_entropy": "CrossEntropyLoss",
            "crossentropy": "CrossEntropyLoss",
            "squared_error": "SquaredError",
            "l1": "L1Loss",
            "bce": "BCEWithLogitsLoss",
            "nll": "NLLLoss",
            "multi_margin": "MultiMarginLoss",
            "huber": "HuberLoss",
            "smooth_l1": "SmoothL1Loss",
            "kl_div": "KLDivLoss",
        }
        key = aliases.get(loss.lower(), names.get(loss.lower()))
        if key is None or not hasattr(losses, key):
            raise ConfigError(f"unknown loss {loss!r}; known: {sorted(names.values())}")
        return getattr(losses, key)()
    if not hasattr(loss, "forward") or not hasattr(loss, "backward"):
        raise ConfigError(f"loss must be a learnflux loss (forward/backward), got {loss!r}")
    return loss


def _resolve_optimizer(optimizer: Any, model: Any) -> Any:
    if optimizer is None:
        from .optim import SGD

        return SGD(model.parameters(), lr=0.01)
    if isinstance(optimizer, str):
        from . import optim

        names = {n.lower(): n for n in dir(optim) if isinstance(getattr(optim, n), type)}
        if optimizer.lower() not in names or optimizer.lower() == "optimizer":
            raise ConfigError(f"unknown optimizer {optimizer!r}; known: {sorted(names.values())}")
        cls = getattr(optim, names[optimizer.lower()])
        return cls(model.parameters()) if cls.__name__ != "SGD" else cls(model.parameters(), lr=0.01)
    if not hasattr(optimizer, "step"):
        raise ConfigError(f"optimizer must have a step() method, got {optimizer!r}")
    return optimizer


def _check_optimizer_params(model: Any, optimizer: Any) -> None:
    """The optimizer must update this model: an optimizer built over another model's parameters
    (``opt = lf.SGD(other.parameters())``) would step weights that never get this model's
    gradients while the model itself never changes. Some of the model's parameters may be left
    out (that is how a part of a model is frozen, as in PyTorch); parameters that are not the
    model's may not be in it."""
    groups = getattr(optimizer, "param_groups", None)
    if not groups or not hasattr(model, "parameters"):
        return  # a custom optimizer without groups, or evaluate's stand-in: nothing to compare
    held = [p for g in groups for p in g.get("params", ())]
    own = {id(p) for p in model.parameters()}
    if not held or not own:
        return
    foreign = [p for p in held if id(p) not in own]
    if not foreign:
        return
    name, model_name = type(optimizer).__name__, type(model).__name__
    if len(foreign) == len(held):
        raise ConfigError(
            f"fit: the optimizer {name} holds {len(held)} parameters, none of which belong to "
            f"the model being trained ({model_name} with {len(own)} parameters): it would update "
            f"nothing of this model. Build it over this model's parameters: "
            f"{name}(model.parameters(), ...)"
        )
    example = getattr(foreign[0], "describe", lambda: "a parameter")()
    raise ConfigError(
        f"fit: {len(foreign)} of the {len(held)} parameters of the optimizer {name} do not belong "
        f"to the model being trained ({model_name}), e.g. {example}: this model's backward pass "
        "never fills their gradients (a stale one would keep moving them). Build the optimizer "
        "over this model's parameters (a subset of them freezes the rest)"
    )


def _is_loader(x: Any, y: Any) -> bool:
    return y is None and not isinstance(x, (np.ndarray, list, tuple)) and hasattr(x, "__iter__")


def _n_samples(x: Any) -> int:
    if isinstance(x, list):
        return int(np.shape(x[0])[0])
    return int(np.shape(x)[0])


def _take(x: Any, idx: Any) -> Any:
    if isinstance(x, list):
        return [xi[idx] for xi in x]
    return x[idx]


def _hold_out(x: Any, y: np.ndarray, fraction: Any, validation_data: Any) -> tuple[Any, np.ndarray, Any]:
    """Keras's ``validation_split``: the last ``fraction`` of the samples become the
    validation data; returns ``(x_train, y_train, (x_val, y_val))``."""
    if validation_data is not None:
        raise ConfigError("fit: give validation_data or validation_split, not both")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ConfigError(f"fit: validation_split must be a fraction in (0, 1), got {fraction!r}")
    n = _n_samples(x)
    split_at = int(n * (1 - fraction))
    if split_at < 1 or split_at >= n:
        raise ConfigError(
            f"fit: validation_split={fraction} of {n} samples leaves "
            f"{split_at} for training and {n - split_at} for validation; both need at least one"
        )
    train, val = slice(0, split_at), slice(split_at, n)
    return _take(x, train), y[train], (_take(x, val), y[val])


def _multi_input(model: Any) -> bool:
    return getattr(model, "n_model_inputs", 1) > 1


def _as_model_input(x: Any, model: Any, cast: bool = True) -> Any:
    """Arrays (a list of arrays for a multi-input model), float inputs cast to the model's dtype
    once rather than once per batch."""
    if isinstance(x, (list, tuple)) and _multi_input(model):
        return [_as_model_input(xi, model, cast) for xi in x]
    arr = np.asarray(x)
    if not cast:
        return arr
    if arr.dtype.kind == "f" and model.dtype != object and arr.dtype != model.dtype:
        return arr.astype(model.dtype)
    return arr


def iterate_batches(
    x: Any,
    y: Any,
    batch_size: int,
    shuffle: bool = False,
    rng: Optional[np.random.Generator] = None,
    drop_last: bool = False,
) -> Iterator[tuple[Any, Any]]:
    """``(xb, yb)`` batches over arrays (``x`` may be a list of arrays for multi-input models)."""
    n = _n_samples(x)
    order = (rng or get_rng()).permutation(n) if shuffle else None
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        end = min(start + batch_size, n)
        idx = order[start:end] if order is not None else slice(start, end)
        yield _take(x, idx), (None if y is None else y[idx])


def _batches_from(
    x: Any, y: Any, batch_size: int, order: Optional[np.ndarray], drop_last: bool, start: int
) -> Iterator[tuple[Any, Any]]:
    """The batches of one epoch in ``order`` (``None``: dataset order), from batch ``start`` on:
    the same batches :func:`iterate_batches` gives, for a run resumed mid-epoch."""
    n = _n_samples(x)
    stop = n - n % batch_size if drop_last else n
    for begin in range(start * batch_size, stop, batch_size):
        end = min(begin + batch_size, n)
        idx = order[begin:end] if order is not None else slice(begin, end)
        yield _take(x, idx), (None if y is None else y[idx])


def _check_batch_size(batch_size: Any) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)


class _Meter:
    """Running sums of the loss and the metrics over an epoch."""

    def __init__(self, metrics: Sequence[tuple[str, Metric]], per_sample_loss: bool) -> None:
        self.metrics = metrics
        self.loss_total = 0.0
        self.n = 0
        self.totals = {name: [0.0, 0] for name, _ in metrics}
        self.per_sample_loss = per_sample_loss

    def update(self, value: float, output: np.ndarray, target: Any) -> None:
        n = int(output.shape[0])
        self.loss_total += float(value) * (1 if self.per_sample_loss else n)
        self.n += n
        for name, fn in self.metrics:
            total, count = fn(output, target)
            acc = self.totals[name]
            acc[0] += total
            acc[1] += count

    def result(self, prefix: str = "") -> dict[str, float]:
        out = {prefix + "loss": self.loss_total / self.n if self.n else math.nan}
        for name, (total, count) in self.totals.items():
            out[prefix + name] = total / count if count else math.nan
        return out


# ---------------------------------------------------------------------------- the trainer
class Trainer:
    """Trains ``model`` with ``loss`` and ``optimizer``; ``model.fit`` builds one and calls
    :meth:`fit`. Build one yourself to reuse its state across calls (``trainer.fit`` twice
    continues training; the optimizer keeps its moments).

    Args:
        model: a learnflux model (or any layer).
        loss: a loss object or a name (``"cross_entropy"``, ``"mse"``...); default
            ``SquaredError``, the series' ½(o − y)², for numeric targets. The default does not
            switch to cross-entropy for integer targets: integers may be numbers to regress (the
            seed example's 0/1 targets are), and a loss that changed with the data would change
            the meaning of working code. Class labels with the default loss stop at the first
            batch with an error that names ``loss=lf.CrossEntropyLoss()``.
        optimizer: an optimizer or a name; default ``SGD(lr=0.01)``. An optimizer object must
            hold this model's parameters (all, or a subset to freeze the rest): ``fit`` refuses one
            built over another model's parameters, which would train nothing.
        metrics: names or functions (see :mod:`learnflux.metrics`); ``None`` means
            ``("accuracy",)`` when the targets are class labels and none otherwise.
        callbacks: :class:`~learnflux.callbacks.Callback` objects.
        scheduler: a learning-rate schedule (``learnflux.optim.schedules``), stepped after each
            epoch (``scheduler_interval="epoch"``) or each update (``"step"``).
        clip_norm / clip_value: clip the gradients by global norm / by value before each update.
        accumulate: average the gradients of this many batches per update.
        seed: seeds the shuffling; ``None`` draws from the global generator (``lf.seed``).
        verbose: 0, 1, 2 or ``"auto"`` (see :mod:`learnflux.progress`).
    """

    def __init__(
        self,
        model: Any,
        loss: Any = None,
        optimizer: Any = None,
        metrics: Optional[Sequence[Union[str, Metric]]] = None,
        callbacks: Iterable[Callback] = (),
        scheduler: Any = None,
        scheduler_interval: str = "epoch",
        clip_norm: Optional[float] = None,
        clip_value: Optional[float] = None,
        accumulate: int = 1,
        seed: Optional[int] = None,
        verbose: Verbose = "auto",
    ) -> None:
        self.model = model
        self._loss_defaulted = loss is None
        self.loss = _resolve_loss(loss)
        self.optimizer = _resolve_optimizer(optimizer, model)
        self._metric_spec = metrics
        self.metrics: Optional[list[tuple[str, Metric]]] = (
            None if metrics is None else [get_metric(m) for m in metrics]
        )
        callbacks = list(callbacks)
        if scheduler is not None:
            callbacks.append(LearningRateScheduler(scheduler, interval=scheduler_interval))
        self.callbacks = CallbackList(callbacks, self)
        if isinstance(accumulate, bool) or not isinstance(accumulate, (int, np.integer)) or accumulate < 1:
            raise ConfigError(f"accumulate must be a positive integer, got {accumulate!r}")
        self.accumulate = int(accumulate)
        if self.accumulate > 1 and not _is_model(model):
            raise ConfigError("accumulate > 1 needs a model (Sequential or Model), not a bare layer")
        for name, value in (("clip_norm", clip_norm), ("clip_value", clip_value)):
            if value is not None and not value > 0:
                raise ConfigError(f"{name} must be positive, got {value!r}")
        self.clip_norm = clip_norm
        self.clip_value = clip_value
        self.rng = np.random.default_rng(seed) if seed is not None else get_rng()
        self.verbose = verbose
        self.stop_training = False
        self.stop_reason: Optional[str] = None
        self.history = History()
        self.epoch = 0
        self.global_step = 0
        self._per_sample_loss = getattr(self.loss, "reduction", "mean") == "sum"

    # ------------------------------------------------------------------ public API
    def fit(
        self,
        x: Any,
        y: Any = None,
        epochs: int = 1,
        batch_size: int = 32,
        validation_data: Any = None,
        shuffle: bool = True,
        drop_last: bool = False,
        initial_epoch: int = 0,
        validation_split: float = 0.0,
    ) -> History:
        """Train for ``epochs`` passes over ``(x, y)`` (arrays, or ``x`` an iterable of
        ``(xb, yb)`` batches such as ``lf.data.ArrayLoader``, with ``y=None``).

        ``validation_split`` (as in Keras): hold out that fraction of the samples, the **last**
        ones of ``x`` and ``y`` as given (before any shuffling), as the validation data. For a
        random, stratified hold-out use ``lf.data.train_val_split`` and ``validation_data``.

        ``initial_epoch``: the number of the first epoch (the epochs run are ``initial_epoch`` to
        ``initial_epoch + epochs - 1``). With a :class:`~learnflux.checkpoint.BackupAndRestore`
        callback whose folder holds a backup, the run resumes from it instead (same epoch, same
        batch, same state: the result is the uninterrupted run's, bit for bit)."""
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ConfigError(f"epochs must be a non-negative integer, got {epochs!r}")
        batch_size = _check_batch_size(batch_size)
        loader = _is_loader(x, y)
        if not loader:
            x, y = self._arrays("fit", x, y, "fit needs targets y (or an iterable of (x, y) batches)")
            if _n_samples(x) == 0:
                raise ConfigError("fit: no training samples")
            if validation_split:
                x, y, validation_data = _hold_out(x, y, validation_split, validation_data)
            self._resolve_metrics(y)
        elif validation_split:
            raise ConfigError("fit: validation_split needs arrays x and y, not an iterable of batches")
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ConfigError("validation_data must be a pair (x_val, y_val)")
        _check_optimizer_params(self.model, self.optimizer)
        history = self.history
        history.params = {"epochs": epochs, "batch_size": batch_size, "accumulate": self.accumulate}
        self.stop_training = False
        self.stop_reason = None
        self._run_signature = {
            "samples": None if loader else _n_samples(x),
            "batch_size": None if loader else batch_size,
            "shuffle": bool(shuffle),
            "drop_last": bool(drop_last),
            "accumulate": self.accumulate,
            "initial_epoch": int(initial_epoch),
        }
        backup = self._backup_callback()
        resume = backup.restore(self) if backup is not None else None
        start_epoch, start_batch = initial_epoch, 0
        if resume is not None:
            start_epoch, start_batch = int(resume["epoch"]), int(resume["batch"])
            if loader and resume.get("loader_epoch") is not None and hasattr(x, "set_epoch"):
                x.set_epoch(resume["loader_epoch"])
        model = self.model
        was_training = model.training
        model.set_phase(True)
        progress = Progress(self.verbose)
        t0 = time.perf_counter()
        self.callbacks.on_train_begin()
        try:
            for epoch in range(start_epoch, initial_epoch + epochs):
                if self.stop_training:  # a resumed run that had been asked to stop
                    break
                self.epoch = epoch
                mid = resume is not None and epoch == start_epoch and start_batch > 0
                if loader:
                    n_batches = len(x) if hasattr(x, "__len__") else None
                else:
                    n = _n_samples(x)
                    n_batches = (n // batch_size) if drop_last else -(-n // batch_size)
                progress.epoch_begin(epoch - initial_epoch, epochs, n_batches or 0)
                if mid:  # on_epoch_begin ran before the interruption; its effects are in the state
                    epoch_start = resume["epoch_start"]
                    batches = self._resumed_batches(x, y, batch_size, shuffle, drop_last, loader, resume)
                    meter = self._restored_meter(resume["meter"])
                else:
                    self.callbacks.on_epoch_begin(epoch)
                    epoch_start = {
                        "rng": self.rng.bit_generator.state,
                        "loader_epoch": getattr(x, "epoch", None) if loader else None,
                    }
                    batches = x if loader else iterate_batches(x, y, batch_size, shuffle, self.rng, drop_last)
                    meter = None
                logs = self._train_epoch(
                    batches,
                    n_batches,
                    progress,
                    start=start_batch if mid else 0,
                    meter=meter,
                    backup=backup,
                    epoch_start=epoch_start,
                )
                if self.stop_training and not logs:
                    break
                logs["lr"] = float(self._lr())
                if validation_data is not None:
                    val = self.evaluate(*validation_data, batch_size=max(batch_size, 256))
                    logs.update({"val_" + k: v for k, v in val.items()})
                history.append(epoch, logs)
                progress.epoch_end(logs)
                self.callbacks.on_epoch_end(epoch, logs)
                if backup is not None:  # after every callback: the state holds their epoch's work
                    loader_epoch = getattr(x, "epoch", None) if loader else None
                    backup.save(self, {"epoch": epoch + 1, "batch": 0, "loader_epoch": loader_epoch})
                if self.stop_training:
                    break
        finally:
            progress.close()
            history.seconds += time.perf_counter() - t0
            history.stop_reason = self.stop_reason
            model.set_phase(was_training)
        self.callbacks.on_train_end()
        return history

    def _backup_callback(self) -> Any:
        """The run's BackupAndRestore callback (at most one), or None."""
        from .checkpoint import BackupAndRestore

        found = [cb for cb in self.callbacks.callbacks if isinstance(cb, BackupAndRestore)]
        if len(found) > 1:
            raise ConfigError("fit: give at most one BackupAndRestore callback")
        return found[0] if found else None

    def _resumed_batches(
        self, x: Any, y: Any, batch_size: int, shuffle: bool, drop_last: bool, loader: bool, resume: dict
    ) -> Iterator[tuple[Any, Any]]:
        """The batches of an epoch resumed mid-way, from the first not yet done: the epoch's order is
        redrawn from the generator's state at the epoch's start, then every generator is put back
        where the interrupted run stood."""
        from .checkpoint import _rng_states, _set_rng_states

        now = _rng_states(self)
        start, epoch_start = int(resume["batch"]), resume["epoch_start"]
        if loader:
            if epoch_start.get("loader_epoch") is not None and hasattr(x, "set_epoch"):
                x.set_epoch(epoch_start["loader_epoch"])
            it = iter(x)
            for _ in range(start):
                xb, yb = next(it)
                if self.metrics is None:
                    self._resolve_metrics(yb)
        else:
            self.rng.bit_generator.state = epoch_start["rng"]
            n = _n_samples(x)
            order = self.rng.permutation(n) if shuffle else None
            it = _batches_from(x, y, batch_size, order, drop_last, start)
        _set_rng_states(self, now, "resume")
        return it

    def _restored_meter(self, state: dict) -> _Meter:
        meter = _Meter(self.metrics or [], self._per_sample_loss)
        meter.loss_total = state["loss_total"]
        meter.n = state["n"]
        meter.totals = {k: list(v) for k, v in state["totals"].items()}
        return meter

    def evaluate(self, x: Any, y: Any = None, batch_size: int = 256) -> dict[str, float]:
        """Loss and metrics over ``(x, y)`` in the inference phase: ``{"loss": ..., "accuracy": ...}``."""
        batch_size = _check_batch_size(batch_size)
        loader = _is_loader(x, y)
        if not loader:
            x, y = self._arrays("evaluate", x, y, "evaluate needs targets y")
            self._resolve_metrics(y)
            batches: Any = iterate_batches(x, y, batch_size)
        else:
            batches = x
        meter: Optional[_Meter] = None
        with _inference(self.model):
            for xb, yb in batches:
                if self.metrics is None:
                    self._resolve_metrics(yb)
                if meter is None:
                    meter = _Meter(self.metrics or [], self._per_sample_loss)
                out = self.model.forward(xb)
                meter.update(self._loss_value(out, yb), out, yb)
        if meter is None:
            raise ConfigError("evaluate: no samples")
        return meter.result()

    # ------------------------------------------------------------------ internals
    def _arrays(self, caller: str, x: Any, y: Any, no_targets: str) -> tuple[Any, np.ndarray]:
        """``x`` as the model's input and ``y`` as an array, checked to hold the same number of
        samples (``no_targets`` is the error when ``y`` is missing)."""
        if y is None:
            raise ConfigError(no_targets)
        x = _as_model_input(x, self.model)
        y = np.asarray(y)
        if _n_samples(x) != y.shape[0]:
            raise ShapeError(f"{caller}: x has {_n_samples(x)} samples but y has {y.shape[0]}")
        return x, y

    def _loss_value(self, out: Any, yb: Any) -> Any:
        """``loss.forward``; when no loss was given, a mismatch says that the default is used."""
        try:
            return self.loss.forward(out, yb)
        except ShapeError as exc:
            if not self._loss_defaulted:
                raise
            raise ShapeError(
                f"{exc} (no loss= was given: the default loss is {type(self.loss).__name__}, "
                "½(o − y)² against numeric targets)"
            ) from None

    def _resolve_metrics(self, y: Any) -> None:
        if self.metrics is None:
            self.metrics = [get_metric("accuracy")] if looks_like_class_labels(y) else []

    def _lr(self) -> float:
        groups = getattr(self.optimizer, "param_groups", None)
        return groups[0].get("lr", math.nan) if groups else math.nan

    def _train_epoch(
        self,
        batches: Any,
        n_batches: Optional[int],
        progress: Progress,
        start: int = 0,
        meter: Optional[_Meter] = None,
        backup: Any = None,
        epoch_start: Optional[dict] = None,
    ) -> dict:
        model, loss, opt = self.model, self.loss, self.optimizer
        k = self.accumulate
        in_group = 0  # batches already accumulated in the current update
        group_size = 1
        remaining = None if n_batches is None else n_batches - start
        for batch_index, (xb, yb) in enumerate(batches, start):
            if self.metrics is None:
                self._resolve_metrics(yb)
            if meter is None:
                meter = _Meter(self.metrics or [], self._per_sample_loss)
            self.callbacks.on_batch_begin(batch_index)
            if in_group == 0:
                group_size = k if remaining is None else max(1, min(k, remaining))
            out = model.forward(xb)
            try:
                value = self._loss_value(out, yb)
            except NonFiniteError as exc:  # NaN or inf reached the loss: TerminateOnNaN reports it
                watcher = next(
                    (cb for cb in self.callbacks.callbacks if isinstance(cb, TerminateOnNaN)), None
                )
                if watcher is None:
                    raise
                watcher.loss_failed(batch_index, exc)
                break
            delta = loss.backward()
            if group_size > 1:
                delta = delta * _scalar(1.0 / group_size, delta)
            if _is_model(model):
                model.backward(delta, need_input_delta=False, accumulate=in_group > 0)
            else:  # a bare layer: gradients are replaced, so no accumulation
                model.backward(delta, need_input_delta=False)
            in_group += 1
            if remaining is not None:
                remaining -= 1
            meter.update(value, out, yb)
            logs = {"batch": batch_index, "loss": float(value)}
            stepped = False
            if in_group == group_size:
                in_group = 0
                self.callbacks.on_after_backward(batch_index, logs)
                if self.stop_training:
                    break
                self._clip()
                opt.step()
                self.global_step += 1
                stepped = True
                self.callbacks.on_step_end(self.global_step, logs)
            if progress.use_bar:
                progress.batch_end(meter.result())
            self.callbacks.on_batch_end(batch_index, logs)
            if self.stop_training:
                break
            if stepped and backup is not None and backup.due(self.global_step):
                position = {
                    "epoch": self.epoch,
                    "batch": batch_index + 1,
                    "meter": {"loss_total": meter.loss_total, "n": meter.n, "totals": meter.totals},
                    "epoch_start": epoch_start,
                }
                backup.save(self, position)
        if in_group:  # a loader without len() ended mid-group: apply what was accumulated
            self._clip()
            opt.step()
            self.global_step += 1
        if meter is None:
            if self.stop_training:
                return {}
            raise ConfigError("fit: the data gave no batch")
        return meter.result()

    def _clip(self) -> None:
        if self.clip_norm is None and self.clip_value is None:
            return
        from .optim import clip

        params = self.model.parameters()
        if self.clip_value is not None:
            clip.clip_grad_value_(params, self.clip_value)
        if self.clip_norm is not None:
            clip.clip_grad_norm_(params, self.clip_norm)


def _scalar(value: float, like: np.ndarray) -> Any:
    from .numbers import scalar_like

    return scalar_like(value, like.dtype)


def _is_model(layer: Any) -> bool:
    from .model import Model

    return isinstance(layer, Model)


class _inference:
    """Run a block in the inference phase and restore the phase after."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def __enter__(self) -> Any:
        self.was = self.model.training
        self.model.set_phase(False)
        return self.model

    def __exit__(self, *exc: Any) -> None:
        self.model.set_phase(self.was)


# ---------------------------------------------------------------------------- functions
def fit(
    model: Any,
    x: Any,
    y: Any = None,
    epochs: int = 1,
    batch_size: int = 32,
    loss: Any = None,
    optimizer: Any = None,
    validation_data: Any = None,
    shuffle: bool = True,
    callbacks: Iterable[Callback] = (),
    metrics: Optional[Sequence[Union[str, Metric]]] = None,
    seed: Optional[int] = None,
    verbose: Verbose = "auto",
    accumulate: int = 1,
    clip_norm: Optional[float] = None,
    clip_value: Optional[float] = None,
    scheduler: Any = None,
    scheduler_interval: str = "epoch",
    drop_last: bool = False,
    validation_split: float = 0.0,
    initial_epoch: int = 0,
) -> History:
    """Train ``model`` on ``(x, y)``; see :class:`Trainer` and :meth:`Trainer.fit` for the
    arguments. The loss and metrics are remembered on the model, so a later
    ``model.evaluate(x, y)`` uses them. To resume an interrupted run, give it a
    :class:`~learnflux.checkpoint.BackupAndRestore` callback (``docs/training.md``)."""
    trainer = Trainer(
        model,
        loss=loss,
        optimizer=optimizer,
        metrics=metrics,
        callbacks=callbacks,
        scheduler=scheduler,
        scheduler_interval=scheduler_interval,
        clip_norm=clip_norm,
        clip_value=clip_value,
        accumulate=accumulate,
        seed=seed,
        verbose=verbose,
    )
    history = trainer.fit(
        x,
        y,
        epochs=epochs,
        batch_size=batch_size,
        validation_data=validation_data,
        shuffle=shuffle,
        drop_last=drop_last,
        validation_split=validation_split,
        initial_epoch=initial_epoch,
    )
    model._fit_defaults = {"loss": trainer.loss, "metrics": trainer._metric_spec}
    return history


def evaluate(
    model: Any,
    x: Any,
    y: Any = None,
    loss: Any = None,
    metrics: Optional[Sequence[Union[str, Metric]]] = None,
    batch_size: int = 256,
    verbose: Verbose = 0,
) -> dict[str, float]:
    """``{"loss": ..., <metric>: ...}`` over ``(x, y)`` in the inference phase. Without ``loss``
    / ``metrics``, those of the last ``fit`` are used (else ``SquaredError`` and accuracy for
    class labels). ``verbose=1`` (or ``"auto"`` on a terminal) also prints the result line."""
    defaults = getattr(model, "_fit_defaults", {})
    if loss is None:
        loss = defaults.get("loss")
    if metrics is None:
        metrics = defaults.get("metrics")
    trainer = Trainer(model, loss=loss, optimizer=_NoOptimizer(), metrics=metrics, verbose=0)
    result = trainer.evaluate(x, y, batch_size=batch_size)
    if resolve_verbose(verbose, sys.stdout) >= 1:
        print(f"evaluate: {format_logs(result)}", flush=True)
    return result


class _NoOptimizer:
    param_groups: list = []

    def step(self) -> None:  # pragma: no cover - evaluate never steps
        raise RuntimeError("no optimizer")


def predict(model: Any, x: Any, batch_size: Optional[int] = 256) -> Any:
    """The model's output for ``x`` in the inference phase, ``batch_size`` samples at a time
    (``None``: all at once)."""
    x = _as_model_input(x, model, cast=False)
    with _inference(model):
        if batch_size is None:
            return model.forward(x)
        batch_size = _check_batch_size(batch_size)
        n = _n_samples(x)
        if n <= batch_size:
            return model.forward(x)
        outs = [model.forward(_take(x, slice(s, s + batch_size))) for s in range(0, n, batch_size)]
        return np.concatenate(outs, axis=0)
