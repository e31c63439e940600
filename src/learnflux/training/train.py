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

Who owns what:

:class:`FitOptions`
    everything ``fit`` is told besides the data, checked once when it is built: the components as
    given (loss, optimizer, metrics, callbacks, scheduler: names or objects), how the loop runs
    (epochs, batch_size, shuffle, drop_last, initial_epoch, validation_split, verbose, seed) and
    how an update is made (accumulate, clip_norm, clip_value, scheduler_interval).
    :func:`fit_options` is the one place that builds it from the keyword (or positional)
    arguments of ``fit``, ``Model.fit``, ``Trainer`` and ``Trainer.fit``.
:class:`_EpochBatches`
    the training data: arrays (or a loader of ``(xb, yb)`` batches), the batches of one epoch in
    their order (drawn from the run's generator), how many there are, the state an epoch starts
    from and the replay of an epoch from its k-th batch (a resumed run).
:class:`_Scoring`
    the loss and the metrics, resolved (a name becomes an object, the metrics are chosen from
    the first targets when not given), and their running sums over an epoch (:class:`_Meter`).
:class:`_Accumulation`
    which batches share one update: groups of ``accumulate`` batches, the last group of an epoch
    shorter, δ scaled by ``1/(group size)``.
:class:`Trainer`
    the optimizer and the callbacks resolved against the model; the run's state (``epoch``,
    ``global_step``, ``stop_training`` / ``stop_reason``, ``history``, the shuffling generator
    ``rng``); the epoch loop and the training step, each step a method:

    .. code-block:: text

        fit                      prepare the data, restore a backup, run the epochs
          _train_epoch           on_epoch_begin, the batches, the epoch's logs
            _train_batch         on_batch_begin
              _batch_pass        the batch's work (a rank without samples: none), its logs
                _forward_loss    o = forward(xb); loss(o, yb)   (TerminateOnNaN: a refused loss stops)
                _backward        δ·1/(group size) flows back, adding into grad within a group
              _step              a complete group: _reduce_gradients, on_after_backward,
                                 _update (clip, optimizer.step), on_step_end
            on_batch_end, a backup when due
          _end_epoch             lr, validation (Evaluator), history, on_epoch_end, backup

:class:`Evaluator`
    the inference loop: loss and metrics over data in the inference phase; no optimizer, no
    backward pass, no callbacks. :func:`predict` gives the model's output the same way.

Seams for data-parallel training: the gradients of a complete group pass through
:meth:`Trainer._reduce_gradients` once per update, before any callback reads them and before
clipping (the place to average them across workers); an epoch's loss and metrics are plain sums
(:meth:`_Meter.state`) turned into the logs in :meth:`Trainer._epoch_logs` (the place to add the
workers' sums first); the callbacks are assembled in :meth:`Trainer._callback_list`.

Determinism: the batches are drawn from ``np.random.default_rng(seed)`` (or from the library's
global generator, ``lf.seed``, when ``seed`` is None), so the same model, data and seed give
bit-identical weights.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import io
import math
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, Union

import numpy as np

from .. import losses, optim
from ..core.model import Model
from ..errors import ConfigError, NonFiniteError, ShapeError
from ..files.io import atomic_write
from ..losses.base import Loss
from ..numbers import scalar_like
from ..optim.clip import clip_grad_norm_, clip_grad_value_
from ..seeding import get_rng
from .callbacks import Callback, CallbackList, LearningRateScheduler, TerminateOnNaN
from .checkpoint import BackupAndRestore, _rng_states, _set_rng_states
from .metrics import Metric, get_metric, looks_like_class_labels
from .progress import Progress, Verbose, format_logs, resolve_verbose


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
            atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))
        return text

    def __repr__(self) -> str:
        return f"History({len(self.epoch)} epochs, keys={list(self.history)})"


# ---------------------------------------------------------------------------- the options
def _count(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int, refused unless it is an integer (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        kind = "a positive" if minimum == 1 else "a non-negative"
        raise ConfigError(f"{name} must be {kind} integer, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class FitOptions:
    """Everything ``fit`` is told besides the data, checked once when built (a bad value is a
    :class:`~learnflux.errors.ConfigError` naming it). ``options.replace(epochs=5)`` gives a
    checked copy. ``Trainer(model, options=FitOptions(...))`` takes one; ``fit``, ``Model.fit``,
    ``Trainer`` and ``Trainer.fit`` build it from their keyword arguments (:func:`fit_options`).

    Attributes:
        epochs: passes over the data (``>= 0``).
        batch_size: samples per batch (arrays only; a loader has its own).
        loss: a loss object or a name (``"cross_entropy"``, ``"mse"``...); ``None`` means
            ``SquaredError``, the series' ½(o − y)², for numeric targets. The default does not
            switch to cross-entropy for integer targets: integers may be numbers to regress (the
            seed example's 0/1 targets are), and a loss that changed with the data would change
            the meaning of working code. Class labels with the default loss stop at the first
            batch with an error that names ``loss=lf.CrossEntropyLoss()``.
        optimizer: an optimizer or a name; ``None`` means ``SGD(lr=0.01)``. An optimizer object
            must hold this model's parameters (all, or a subset to freeze the rest): ``fit``
            refuses one built over another model's parameters, which would train nothing.
        shuffle: draw a new order of the samples every epoch.
        callbacks: :class:`~learnflux.callbacks.Callback` objects.
        metrics: names or functions (see :mod:`learnflux.metrics`); ``None`` means
            ``("accuracy",)`` when the targets are class labels and none otherwise.
        seed: seeds the shuffling; ``None`` draws from the global generator (``lf.seed``).
        verbose: 0, 1, 2 or ``"auto"`` (see :mod:`learnflux.training.progress`).
        accumulate: average the gradients of this many batches per update.
        clip_norm / clip_value: clip the gradients by global norm / by value before each update.
        scheduler: a learning-rate schedule (``learnflux.optim.schedules``), stepped after each
            epoch (``scheduler_interval="epoch"``) or each update (``"step"``).
        drop_last: drop the last, incomplete batch of each epoch.
        validation_split: hold out this fraction of the samples, the last ones (as Keras), as
            the validation data; ``0`` holds out nothing.
        initial_epoch: the number of the first epoch (the epochs run are ``initial_epoch`` to
            ``initial_epoch + epochs - 1``).
    """

    epochs: int = 1
    batch_size: int = 32
    loss: Any = None
    optimizer: Any = None
    shuffle: bool = True
    callbacks: tuple[Callback, ...] = ()
    metrics: Optional[Sequence[Union[str, Metric]]] = None
    seed: Optional[int] = None
    verbose: Verbose = "auto"
    accumulate: int = 1
    clip_norm: Optional[float] = None
    clip_value: Optional[float] = None
    scheduler: Any = None
    scheduler_interval: str = "epoch"
    drop_last: bool = False
    validation_split: float = 0.0
    initial_epoch: int = 0

    def __post_init__(self) -> None:
        fix = self._set
        fix("epochs", _count("epochs", self.epochs, 0))
        fix("batch_size", _count("batch_size", self.batch_size, 1))
        fix("accumulate", _count("accumulate", self.accumulate, 1))
        fix("initial_epoch", _count("initial_epoch", self.initial_epoch, 0))
        fix("shuffle", bool(self.shuffle))
        fix("drop_last", bool(self.drop_last))
        fix("callbacks", tuple(self.callbacks or ()))
        for name in ("clip_norm", "clip_value"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"{name} must be positive, got {value!r}")
        if self.scheduler_interval not in ("epoch", "step"):
            raise ConfigError(
                f"scheduler_interval must be 'epoch' or 'step', got {self.scheduler_interval!r}"
            )
        if self.verbose != "auto" and self.verbose not in (0, 1, 2):
            raise ConfigError(f"verbose must be 0, 1, 2 or 'auto', got {self.verbose!r}")
        split = self.validation_split
        if split and (isinstance(split, bool) or not isinstance(split, (int, float)) or not 0 < split < 1):
            raise ConfigError(f"fit: validation_split must be a fraction in (0, 1), got {split!r}")

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def replace(self, **changes: Any) -> FitOptions:
        """A copy with ``changes``, checked again."""
        return dataclasses.replace(self, **changes) if changes else self


#: the arguments of ``fit(model, x, y, ...)`` after ``y``, in their positional order
FIT_ARGUMENTS = tuple(
    (
        "epochs batch_size loss optimizer validation_data shuffle callbacks metrics seed verbose "
        "accumulate clip_norm clip_value scheduler scheduler_interval drop_last validation_split "
        "initial_epoch"
    ).split()
)
#: those of ``Trainer(model, ...)``: what the trainer keeps from one fit to the next
TRAINER_ARGUMENTS = tuple(
    (
        "loss optimizer metrics callbacks scheduler scheduler_interval clip_norm clip_value "
        "accumulate seed verbose"
    ).split()
)
#: those of ``Trainer.fit(x, y, ...)``: what may change from one fit to the next
CALL_ARGUMENTS = tuple(
    "epochs batch_size validation_data shuffle drop_last initial_epoch validation_split".split()
)


def fit_options(
    caller: str,
    accepted: Sequence[str],
    args: Sequence[Any],
    kwargs: dict[str, Any],
    base: Optional[FitOptions] = None,
) -> tuple[FitOptions, Any]:
    """``(options, validation_data)`` from the arguments ``caller`` was given: positional ones in
    the order of ``accepted``, keyword ones by name; what is not given comes from ``base`` (else
    the defaults). An unknown name is a TypeError, as for any Python function, that suggests the
    closest known one."""
    if len(args) > len(accepted):
        raise TypeError(f"{caller}() takes at most {len(accepted)} arguments after the data, got {len(args)}")
    given = dict(zip(accepted, args, strict=False))
    for name, value in kwargs.items():
        if name not in accepted:
            close = difflib.get_close_matches(name, accepted, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"it takes {', '.join(accepted)}"
            raise TypeError(f"{caller}() got an unexpected keyword argument {name!r}; {hint}")
        if name in given:
            raise TypeError(f"{caller}() got multiple values for argument {name!r}")
        given[name] = value
    validation_data = given.pop("validation_data", None)
    options = FitOptions(**given) if base is None else base.replace(**given)
    return options, validation_data


# ---------------------------------------------------------------------------- components
def _resolve_loss(loss: Any) -> Loss:
    if loss is None:
        return losses.SquaredError()
    if isinstance(loss, str):
        names = {n.lower(): n for n in losses.registry}  # the public loss classes, by name
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
        if key is None or key not in losses.registry:
            known = sorted(names.values()) + sorted(aliases)
            raise ConfigError(f"unknown loss {loss!r}; known: {', '.join(known)}")
        return losses.registry[key]()
    if not hasattr(loss, "forward") or not hasattr(loss, "backward"):
        raise ConfigError(f"loss must be a learnflux loss (forward/backward), got {loss!r}")
    return loss


def _resolve_optimizer(optimizer: Any, model: Any) -> Any:
    if optimizer is None:
        return optim.SGD(model.parameters(), lr=0.01)
    if isinstance(optimizer, str):
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
        return  # a custom optimizer without groups: nothing to compare
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


class _Meter:
    """Running sums of the loss and the metrics over an epoch: plain sums (:meth:`state`), turned
    into means by :meth:`result`."""

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

    def state(self) -> dict[str, Any]:
        """The sums (what a backup keeps, what workers would add up)."""
        return {"loss_total": self.loss_total, "n": self.n, "totals": self.totals}

    def load_state(self, state: dict[str, Any]) -> None:
        self.loss_total = state["loss_total"]
        self.n = state["n"]
        self.totals = {k: list(v) for k, v in state["totals"].items()}


class _Scoring:
    """The loss and the metrics of a model: the loss resolved once (a name or ``None`` becomes an
    object), the metrics chosen from the first targets seen when none were given (accuracy for
    class labels, none otherwise)."""

    def __init__(self, loss: Any, metrics: Optional[Sequence[Union[str, Metric]]]) -> None:
        self.loss_defaulted = loss is None
        self.loss = _resolve_loss(loss)
        self.metric_spec = metrics
        self.metrics: Optional[list[tuple[str, Metric]]] = (
            None if metrics is None else [get_metric(m) for m in metrics]
        )
        self.per_sample_loss = getattr(self.loss, "reduction", "mean") == "sum"

    def resolve_metrics(self, y: Any) -> None:
        if self.metrics is None:
            self.metrics = [get_metric("accuracy")] if looks_like_class_labels(y) else []

    def meter(self) -> _Meter:
        return _Meter(self.metrics or [], self.per_sample_loss)

    def value(self, out: Any, yb: Any) -> Any:
        """``loss.forward``; when no loss was given, a mismatch says that the default is used."""
        try:
            return self.loss.forward(out, yb)
        except ShapeError as exc:
            if not self.loss_defaulted:
                raise
            raise ShapeError(
                f"{exc} (no loss= was given: the default loss is {type(self.loss).__name__}, "
                "½(o − y)² against numeric targets)"
            ) from None


# ---------------------------------------------------------------------------- data
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


def _arrays(model: Any, caller: str, x: Any, y: Any, no_targets: str) -> tuple[Any, np.ndarray]:
    """``x`` as the model's input and ``y`` as an array, checked to hold the same number of
    samples (``no_targets`` is the error when ``y`` is missing)."""
    if y is None:
        raise ConfigError(no_targets)
    x = _as_model_input(x, model)
    y = np.asarray(y)
    if _n_samples(x) != y.shape[0]:
        raise ShapeError(f"{caller}: x has {_n_samples(x)} samples but y has {y.shape[0]}")
    return x, y


def iterate_batches(
    x: Any,
    y: Any,
    batch_size: int,
    shuffle: bool = False,
    rng: Optional[np.random.Generator] = None,
    drop_last: bool = False,
) -> Iterator[tuple[Any, Any]]:
    """``(xb, yb)`` batches over arrays (``x`` may be a list of arrays for multi-input models)."""
    order = (rng or get_rng()).permutation(_n_samples(x)) if shuffle else None
    yield from _batches_from(x, y, batch_size, order, drop_last, 0)


def _batches_from(
    x: Any, y: Any, batch_size: int, order: Optional[np.ndarray], drop_last: bool, start: int
) -> Iterator[tuple[Any, Any]]:
    """The batches of one epoch in ``order`` (``None``: dataset order), from batch ``start`` on
    (a run resumed mid-epoch)."""
    n = _n_samples(x)
    stop = n - n % batch_size if drop_last else n
    for begin in range(start * batch_size, stop, batch_size):
        end = min(begin + batch_size, n)
        idx = order[begin:end] if order is not None else slice(begin, end)
        yield _take(x, idx), (None if y is None else y[idx])


class _EpochBatches:
    """The training data and the batches of each epoch: arrays ``x`` and ``y`` (or ``x`` a loader
    of ``(xb, yb)`` batches), the batch size, shuffling, ``drop_last`` and the generator each
    epoch's order is drawn from (a loader has its own)."""

    def __init__(self, x: Any, y: Any, loader: bool, options: FitOptions, rng: np.random.Generator) -> None:
        self.x, self.y, self.loader, self.rng = x, y, loader, rng
        self.batch_size, self.shuffle, self.drop_last = options.batch_size, options.shuffle, options.drop_last

    @property
    def n_batches(self) -> Optional[int]:
        """Batches per epoch (None: a loader without ``len``)."""
        if self.loader:
            return len(self.x) if hasattr(self.x, "__len__") else None
        n = _n_samples(self.x)
        return (n // self.batch_size) if self.drop_last else -(-n // self.batch_size)

    def loader_epoch(self) -> Optional[int]:
        """A loader's epoch counter (``lf.data.ArrayLoader.epoch``), if it has one."""
        return getattr(self.x, "epoch", None) if self.loader else None

    def set_loader_epoch(self, epoch: Optional[int]) -> None:
        if self.loader and epoch is not None and hasattr(self.x, "set_epoch"):
            self.x.set_epoch(epoch)

    def start_state(self) -> dict[str, Any]:
        """What an epoch's batches are drawn from, kept to replay the epoch after a resume."""
        return {"rng": self.rng.bit_generator.state, "loader_epoch": self.loader_epoch()}

    def epoch(self) -> Iterable[tuple[Any, Any]]:
        """The batches of the next epoch."""
        if self.loader:
            return self.x
        return iterate_batches(self.x, self.y, self.batch_size, self.shuffle, self.rng, self.drop_last)

    def replay(self, start: int, start_state: dict[str, Any], seen: Callable[[Any], None]) -> Iterator:
        """The batches of an epoch from batch ``start`` on, its order drawn again from the state
        it started from (``seen`` receives the targets of the batches a loader skips)."""
        if self.loader:
            self.set_loader_epoch(start_state.get("loader_epoch"))
            it = iter(self.x)
            for _ in range(start):
                _, yb = next(it)
                seen(yb)
            return it
        self.rng.bit_generator.state = start_state["rng"]
        order = self.rng.permutation(_n_samples(self.x)) if self.shuffle else None
        return _batches_from(self.x, self.y, self.batch_size, order, self.drop_last, start)


class _Accumulation:
    """Which batches share one update: groups of ``k`` batches; when the number of batches left
    in the epoch is known, the last group is shorter. The group's δ are scaled by
    ``1/(group size)`` so that the summed gradients are the group's mean."""

    def __init__(self, k: int, n_batches: Optional[int], start: int) -> None:
        self.k = k
        self.remaining = None if n_batches is None else n_batches - start
        self.done = 0  # batches of the current group already through backward
        self.size = 1

    def begin_batch(self) -> None:
        if self.done == 0:
            self.size = self.k if self.remaining is None else max(1, min(self.k, self.remaining))

    @property
    def first(self) -> bool:
        """The batch starts a group (its backward pass replaces the gradients)."""
        return self.done == 0

    @property
    def pending(self) -> bool:
        """Gradients accumulated that no update has used yet."""
        return self.done > 0

    def end_batch(self) -> bool:
        """Count the batch; True when it completes its group (time for an update)."""
        self.done += 1
        if self.remaining is not None:
            self.remaining -= 1
        if self.done == self.size:
            self.done = 0
            return True
        return False


@dataclass
class _Epoch:
    """The epoch in progress: its batches, the first one's index, its accumulation group, its
    running sums (created at the first batch) and the state it started from (for a backup)."""

    number: int
    batches: Any
    start: int
    group: _Accumulation
    start_state: dict[str, Any]
    meter: Optional[_Meter] = None


@dataclass
class _Run:
    """One call of ``Trainer.fit``: its options, data, backup callback, the position a backup
    gave to resume from, and the progress display."""

    options: FitOptions
    data: _EpochBatches
    validation_data: Any
    backup: Any
    resume: Optional[dict[str, Any]]
    progress: Optional[Progress] = None

    def epochs(self) -> range:
        first = self.options.initial_epoch if self.resume is None else int(self.resume["epoch"])
        return range(first, self.options.initial_epoch + self.options.epochs)

    def resumes_mid(self, epoch: int) -> bool:
        """This epoch is the one a backup stopped in, after some of its batches."""
        r = self.resume
        return r is not None and epoch == int(r["epoch"]) and int(r["batch"]) > 0


# ---------------------------------------------------------------------------- the trainer
class Trainer:
    """Trains ``model``; ``model.fit`` builds one and calls :meth:`fit`. Build one yourself to
    reuse its state across calls (``trainer.fit`` twice continues training; the optimizer keeps
    its moments).

    ``Trainer(model, loss=None, optimizer=None, metrics=None, callbacks=(), scheduler=None,
    scheduler_interval="epoch", clip_norm=None, clip_value=None, accumulate=1, seed=None,
    verbose="auto")``, or ``Trainer(model, options=FitOptions(...))``: :class:`FitOptions` says
    what each argument does. The optimizer must hold this model's parameters (all, or a subset
    to freeze the rest).

    State a callback may read: ``model``, ``loss``, ``optimizer``, ``callbacks``, ``options``,
    ``epoch``, ``global_step`` (updates so far), ``history``, ``rng``; it may set
    ``stop_training`` (and ``stop_reason``) to end training after the current batch or epoch.
    """

    def __init__(self, model: Any, *args: Any, options: Optional[FitOptions] = None, **kwargs: Any) -> None:
        self.model = model
        self.options, _ = fit_options("Trainer", TRAINER_ARGUMENTS, args, kwargs, options)
        self._is_model = _is_model(model)
        if self.options.accumulate > 1 and not self._is_model:
            raise ConfigError("accumulate > 1 needs a model (Sequential or Model), not a bare layer")
        self.scoring = _Scoring(self.options.loss, self.options.metrics)
        self.optimizer = _resolve_optimizer(self.options.optimizer, model)
        self.callbacks = self._callback_list(self.options)
        self.evaluator = Evaluator(model, scoring=self.scoring)
        self.rng = np.random.default_rng(self.options.seed) if self.options.seed is not None else get_rng()
        self.stop_training = False
        self.stop_reason: Optional[str] = None
        self.history = History()
        self.epoch = 0
        self.global_step = 0

    @property
    def loss(self) -> Loss:
        return self.scoring.loss

    @property
    def metrics(self) -> Optional[list[tuple[str, Metric]]]:
        return self.scoring.metrics

    def _callback_list(self, options: FitOptions) -> CallbackList:
        """The run's callbacks: the given ones, then the scheduler's."""
        callbacks = list(options.callbacks)
        if options.scheduler is not None:
            callbacks.append(LearningRateScheduler(options.scheduler, interval=options.scheduler_interval))
        return CallbackList(callbacks, self)

    # ------------------------------------------------------------------ public API
    def fit(self, x: Any, y: Any = None, *args: Any, **kwargs: Any) -> History:
        """Train for ``epochs`` passes over ``(x, y)`` (arrays, or ``x`` an iterable of
        ``(xb, yb)`` batches such as ``lf.data.ArrayLoader``, with ``y=None``).

        ``fit(x, y, epochs, batch_size, validation_data, shuffle, drop_last, initial_epoch,
        validation_split)``: what is not given is the trainer's :attr:`options` (``epochs=1``,
        ``batch_size=32``, ``shuffle=True``... unless it was built with others).

        ``validation_split`` (as in Keras): hold out that fraction of the samples, the **last**
        ones of ``x`` and ``y`` as given (before any shuffling), as the validation data. For a
        random, stratified hold-out use ``lf.data.train_val_split`` and ``validation_data``.

        ``initial_epoch``: the number of the first epoch. With a
        :class:`~learnflux.training.checkpoint.BackupAndRestore` callback whose folder holds a backup, the
        run resumes from it instead (same epoch, same batch, same state: the result is the
        uninterrupted run's, bit for bit)."""
        options, validation_data = fit_options("Trainer.fit", CALL_ARGUMENTS, args, kwargs, self.options)
        run = self._prepare(x, y, options, validation_data)
        self._restore(run)
        return self._run_epochs(run)

    def evaluate(self, x: Any, y: Any = None, batch_size: int = 256) -> dict[str, float]:
        """Loss and metrics over ``(x, y)`` in the inference phase: ``{"loss": ..., "accuracy": ...}``
        (the :class:`Evaluator` with this trainer's loss and metrics)."""
        return self.evaluator.evaluate(x, y, batch_size=batch_size)

    # ------------------------------------------------------------------ a run
    def _prepare(self, x: Any, y: Any, options: FitOptions, validation_data: Any) -> _Run:
        """Check the data against the options and the model; reset the run's state."""
        loader = _is_loader(x, y)
        if not loader:
            x, y = _arrays(self.model, "fit", x, y, "fit needs targets y (or an iterable of (x, y) batches)")
            if _n_samples(x) == 0:
                raise ConfigError("fit: no training samples")
            if options.validation_split:
                x, y, validation_data = _hold_out(x, y, options.validation_split, validation_data)
            self.scoring.resolve_metrics(y)
        elif options.validation_split:
            raise ConfigError("fit: validation_split needs arrays x and y, not an iterable of batches")
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ConfigError("validation_data must be a pair (x_val, y_val)")
        _check_optimizer_params(self.model, self.optimizer)
        self.history.params = {
            "epochs": options.epochs,
            "batch_size": options.batch_size,
            "accumulate": options.accumulate,
        }
        self.stop_training = False
        self.stop_reason = None
        self._run_signature = {  # what a backup must have been written by (BackupAndRestore)
            "samples": None if loader else _n_samples(x),
            "batch_size": None if loader else options.batch_size,
            "shuffle": options.shuffle,
            "drop_last": options.drop_last,
            "accumulate": options.accumulate,
            "initial_epoch": options.initial_epoch,
        }
        return _Run(options, _EpochBatches(x, y, loader, options, self.rng), validation_data, None, None)

    def _backup_callback(self) -> Any:
        """The run's BackupAndRestore callback (at most one), or None."""
        found = [cb for cb in self.callbacks.callbacks if isinstance(cb, BackupAndRestore)]
        if len(found) > 1:
            raise ConfigError("fit: give at most one BackupAndRestore callback")
        return found[0] if found else None

    def _restore(self, run: _Run) -> None:
        """With a BackupAndRestore callback whose folder holds a backup: the whole training
        state restored from it, and the position to resume from."""
        run.backup = self._backup_callback()
        if run.backup is not None:
            run.resume = run.backup.restore(self)
            if run.resume is not None:
                run.data.set_loader_epoch(run.resume.get("loader_epoch"))

    def _run_epochs(self, run: _Run) -> History:
        """The epochs, in the training phase (the model's phase is restored after)."""
        model, history = self.model, self.history
        was_training = model.training
        model.set_phase(True)
        run.progress = Progress(run.options.verbose)
        t0 = time.perf_counter()
        self.callbacks.on_train_begin()
        try:
            for epoch in run.epochs():
                if self.stop_training:  # a resumed run that had been asked to stop
                    break
                logs = self._train_epoch(epoch, run)
                if logs is None:  # stopped before any batch
                    break
                self._end_epoch(epoch, logs, run)
                if self.stop_training:
                    break
        finally:
            run.progress.close()
            history.seconds += time.perf_counter() - t0
            history.stop_reason = self.stop_reason
            model.set_phase(was_training)
        self.callbacks.on_train_end()
        return history

    # ------------------------------------------------------------------ an epoch
    def _train_epoch(self, number: int, run: _Run) -> Optional[dict[str, float]]:
        """One epoch's batches; returns the epoch's loss and metrics (None: it was stopped before
        its first batch)."""
        self.epoch = number
        options, data = run.options, run.data
        run.progress.epoch_begin(number - options.initial_epoch, options.epochs, data.n_batches or 0)
        epoch = self._resumed_epoch(number, run) if run.resumes_mid(number) else self._new_epoch(number, run)
        for index, (xb, yb) in enumerate(epoch.batches, epoch.start):
            if not self._train_batch(index, xb, yb, epoch, run):
                break
        if epoch.group.pending:  # a loader without len() ended mid-group, or a stop cut it short
            self._reduce_gradients()
            self._update()
        if epoch.meter is None:
            if self.stop_training:
                return None
            raise ConfigError("fit: the data gave no batch")
        return self._epoch_logs(epoch.meter)

    def _new_epoch(self, number: int, run: _Run) -> _Epoch:
        self.callbacks.on_epoch_begin(number)
        start_state = run.data.start_state()
        group = _Accumulation(run.options.accumulate, run.data.n_batches, 0)
        return _Epoch(number, run.data.epoch(), 0, group, start_state)

    def _resumed_epoch(self, number: int, run: _Run) -> _Epoch:
        """The epoch a backup stopped in, from its first batch not yet done (its
        ``on_epoch_begin`` ran before the interruption: its effects are in the restored state).
        Replaying the epoch's order draws from the generators; they are put back after."""
        resume = run.resume
        start, start_state = int(resume["batch"]), resume["epoch_start"]
        now = _rng_states(self)
        batches = run.data.replay(start, start_state, self.scoring.resolve_metrics)
        _set_rng_states(self, now, "resume")
        group = _Accumulation(run.options.accumulate, run.data.n_batches, start)
        epoch = _Epoch(number, batches, start, group, start_state, self.scoring.meter())
        epoch.meter.load_state(resume["meter"])
        return epoch

    def _epoch_logs(self, meter: _Meter) -> dict[str, float]:
        """The epoch's mean loss and metrics from its sums (a data-parallel trainer adds the
        workers' sums here first)."""
        return meter.result()

    def _end_epoch(self, number: int, logs: dict[str, Any], run: _Run) -> None:
        """The learning rate, the validation values, the history, ``on_epoch_end``, a backup."""
        logs["lr"] = float(self._lr())
        if run.validation_data is not None:
            val = self.evaluate(*run.validation_data, batch_size=max(run.options.batch_size, 256))
            logs.update({"val_" + k: v for k, v in val.items()})
        self.history.append(number, logs)
        run.progress.epoch_end(logs)
        self.callbacks.on_epoch_end(number, logs)
        if run.backup is not None:  # after every callback: the state holds their epoch's work
            run.backup.save(self, {"epoch": number + 1, "batch": 0, "loader_epoch": run.data.loader_epoch()})

    # ------------------------------------------------------------------ a batch
    def _train_batch(self, index: int, xb: Any, yb: Any, epoch: _Epoch, run: _Run) -> bool:
        """batch → forward → loss → backward → (group complete: step) → callbacks. Returns
        False when training stops at this batch."""
        if epoch.meter is None:
            self.scoring.resolve_metrics(yb)
            epoch.meter = self.scoring.meter()
        self.callbacks.on_batch_begin(index)
        epoch.group.begin_batch()
        logs = self._batch_pass(index, xb, yb, epoch)
        if logs is None:
            return False
        stepped = epoch.group.end_batch()
        if stepped and not self._step(index, logs):
            return False
        if run.progress.use_bar:
            run.progress.batch_end(epoch.meter.result())
        self.callbacks.on_batch_end(index, logs)
        if self.stop_training:
            return False
        if stepped and run.backup is not None and run.backup.due(self.global_step):
            position = {"epoch": self.epoch, "batch": index + 1, "meter": epoch.meter.state()}
            run.backup.save(self, {**position, "epoch_start": epoch.start_state})
        return True

    def _batch_pass(self, index: int, xb: Any, yb: Any, epoch: _Epoch) -> Optional[dict[str, Any]]:
        """The batch's own work: forward, loss, backward, the meter; returns the batch's logs, or
        None when training stops at this batch (a refused loss)."""
        scored = self._forward_loss(index, xb, yb)
        if scored is None:
            return None
        out, value = scored
        self._backward(epoch.group)
        epoch.meter.update(value, out, yb)
        return {"batch": index, "loss": float(value)}

    def _forward_loss(self, index: int, xb: Any, yb: Any) -> Optional[tuple[Any, Any]]:
        """``(o, loss value)``; None when the loss refused a NaN or an infinity and a
        TerminateOnNaN callback took it (it stops training, or raises)."""
        out = self.model.forward(xb)
        try:
            return out, self.scoring.value(out, yb)
        except NonFiniteError as exc:
            watcher = next((cb for cb in self.callbacks.callbacks if isinstance(cb, TerminateOnNaN)), None)
            if watcher is None:
                raise
            watcher.loss_failed(index, exc)
            return None

    def _backward(self, group: _Accumulation) -> None:
        """δ of the loss, scaled by ``1/(group size)``, flows back; within a group the gradients
        add up (a bare layer's are replaced: it has no accumulation)."""
        delta = self.scoring.loss.backward()
        if group.size > 1:
            delta = delta * _scalar(1.0 / group.size, delta)
        if self._is_model:
            self.model.backward(delta, need_input_delta=False, accumulate=not group.first)
        else:
            self.model.backward(delta, need_input_delta=False)

    def _step(self, index: int, logs: dict[str, Any]) -> bool:
        """A complete group: its gradients are final; ``on_after_backward``, then the update and
        ``on_step_end``. Returns False when a callback stopped training before the update."""
        self._reduce_gradients()
        self.callbacks.on_after_backward(index, logs)
        if self.stop_training:
            return False
        self._update()
        self.callbacks.on_step_end(self.global_step, logs)
        return True

    def _reduce_gradients(self) -> None:
        """Called once per update with the gradients of the complete group in ``param.grad``,
        before any callback reads them and before clipping: where a data-parallel trainer
        averages them across its workers. One process has nothing to do here."""

    def _update(self) -> None:
        """One update: clip the gradients, step the optimizer, count the step."""
        self._clip()
        self.optimizer.step()
        self.global_step += 1

    def _clip(self) -> None:
        clip_norm, clip_value = self.options.clip_norm, self.options.clip_value
        if clip_norm is None and clip_value is None:
            return
        params = self.model.parameters()
        if clip_value is not None:
            clip_grad_value_(params, clip_value)
        if clip_norm is not None:
            clip_grad_norm_(params, clip_norm)

    def _lr(self) -> float:
        groups = getattr(self.optimizer, "param_groups", None)
        return groups[0].get("lr", math.nan) if groups else math.nan


def _scalar(value: float, like: np.ndarray) -> Any:
    return scalar_like(value, like.dtype)


def _is_model(layer: Any) -> bool:
    return isinstance(layer, Model)


# ---------------------------------------------------------------------------- inference
class Evaluator:
    """The inference loop: the loss and the metrics over data, in the inference phase (the
    model's phase is restored after). No optimizer, no backward pass, no callbacks.

    ``Evaluator(model, loss=None, metrics=None)``: the loss as in :class:`FitOptions` (``None``:
    ``SquaredError``); the metrics (``None``: accuracy for class labels, none otherwise)."""

    def __init__(
        self,
        model: Any,
        loss: Any = None,
        metrics: Optional[Sequence[Union[str, Metric]]] = None,
        *,
        scoring: Optional[_Scoring] = None,
    ) -> None:
        self.model = model
        self.scoring = scoring if scoring is not None else _Scoring(loss, metrics)

    def evaluate(self, x: Any, y: Any = None, batch_size: int = 256) -> dict[str, float]:
        """``{"loss": ..., <metric>: ...}`` over ``(x, y)`` (arrays, or ``x`` an iterable of
        ``(xb, yb)`` batches and ``y=None``)."""
        batch_size = _count("batch_size", batch_size, 1)
        if _is_loader(x, y):
            batches: Any = x
        else:
            x, y = _arrays(self.model, "evaluate", x, y, "evaluate needs targets y")
            self.scoring.resolve_metrics(y)
            batches = iterate_batches(x, y, batch_size)
        meter: Optional[_Meter] = None
        with self.model.inference():
            for xb, yb in batches:
                if meter is None:
                    self.scoring.resolve_metrics(yb)
                    meter = self.scoring.meter()
                out = self.model.forward(xb)
                meter.update(self.scoring.value(out, yb), out, yb)
        if meter is None:
            raise ConfigError("evaluate: no samples")
        return meter.result()


# ---------------------------------------------------------------------------- functions
def fit(model: Any, x: Any, y: Any = None, *args: Any, **kwargs: Any) -> History:
    """Train ``model`` on ``(x, y)``: ``fit(model, x, y, epochs=1, batch_size=32, loss=None,
    optimizer=None, validation_data=None, shuffle=True, callbacks=(), metrics=None, seed=None,
    verbose="auto", accumulate=1, clip_norm=None, clip_value=None, scheduler=None,
    scheduler_interval="epoch", drop_last=False, validation_split=0.0, initial_epoch=0)`` (in that
    order when given by position; :class:`FitOptions` says what each does, :meth:`Trainer.fit`
    how the data is read). The loss and metrics are remembered on the model, so a later
    ``model.evaluate(x, y)`` uses them. To resume an interrupted run, give it a
    :class:`~learnflux.training.checkpoint.BackupAndRestore` callback (``docs/training.md``)."""
    options, validation_data = fit_options("fit", FIT_ARGUMENTS, args, kwargs)
    trainer = Trainer(model, options=options)
    history = trainer.fit(x, y, validation_data=validation_data)
    model._fit_defaults = {"loss": trainer.loss, "metrics": options.metrics}
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
    result = Evaluator(model, loss, metrics).evaluate(x, y, batch_size=batch_size)
    if resolve_verbose(verbose, sys.stdout) >= 1:
        print(f"evaluate: {format_logs(result)}", flush=True)
    return result


def predict(model: Any, x: Any, batch_size: Optional[int] = 256) -> Any:
    """The model's output for ``x`` in the inference phase, ``batch_size`` samples at a time
    (``None``: all at once)."""
    x = _as_model_input(x, model, cast=False)
    with model.inference():
        if batch_size is None:
            return model.forward(x)
        batch_size = _count("batch_size", batch_size, 1)
        n = _n_samples(x)
        if n <= batch_size:
            return model.forward(x)
        outs = [model.forward(_take(x, slice(s, s + batch_size))) for s in range(0, n, batch_size)]
        return np.concatenate(outs, axis=0)
