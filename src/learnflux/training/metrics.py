"""Metrics: numbers that say how well a model does, computed batch by batch during ``fit`` and
``evaluate`` (the loss itself is always reported as ``"loss"``).

A metric is a function ``metric(output, target) -> (total, count)``: the sum of a per-sample score
over the batch and the number of samples, so that the value over a whole epoch is
``Σ total / Σ count`` whatever the batch sizes. Register a new one with::

    @lf.metrics.register_metric("mean_abs_error")
    def mean_abs_error(output, target):
        return float(np.abs(output - target.reshape(output.shape)).sum()), output.size

and ask for it by name: ``model.fit(..., metrics=("accuracy", "mean_abs_error"))``.

Built in:

* ``accuracy``: the share of samples whose predicted class is the target class. The predicted class
  is ``argmax`` over the last axis of a ``(batch, classes)`` output; the target is an integer label
  per sample, or one-hot / class probabilities (their ``argmax`` is taken). For a single output
  column (binary classification) the prediction is ``output ≥ threshold`` (0.5, for probabilities;
  use ``binary_accuracy_logits`` when the model outputs logits, threshold 0).
* ``top_k_accuracy`` (``top5_accuracy``, ``top3_accuracy``... any ``top<k>_accuracy``): the target
  class is among the ``k`` largest outputs.
* ``bits_per_char``: the cross-entropy in bits (``−log₂ p`` of the target) per position, from
  logits with the classes on axis 1: a language model's bits per character.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Union

import numpy as np

from ..errors import ConfigError, ShapeError

Metric = Callable[[np.ndarray, np.ndarray], tuple[float, int]]

#: name -> metric function
METRICS: dict[str, Metric] = {}


def register_metric(name: str) -> Callable[[Metric], Metric]:
    """Decorator: make ``fn(output, target) -> (total, count)`` available as ``name``."""

    def deco(fn: Metric) -> Metric:
        METRICS[name] = fn
        fn.metric_name = name  # type: ignore[attr-defined]
        return fn

    return deco


def _class_targets(output: np.ndarray, target: Any) -> np.ndarray:
    """Integer class labels from labels, one-hot rows or class probabilities."""
    y = np.asarray(target)
    n = output.shape[0]
    if y.ndim == output.ndim and y.shape == output.shape and output.ndim >= 2 and output.shape[-1] > 1:
        return y.argmax(axis=-1)
    if y.shape[:1] != (n,):
        raise ShapeError(f"accuracy: {n} outputs but targets of shape {tuple(y.shape)}")
    if y.dtype.kind == "f":
        if not np.all(y == np.round(y)):
            raise ConfigError(
                "accuracy needs class labels (integers) or one-hot targets, got non-integer "
                "values; pass metrics=() for a regression"
            )
    return y.reshape(n, *output.shape[1:-1]).astype(np.int64, copy=False)


def _binary(output: np.ndarray, target: Any, threshold: float) -> tuple[float, int]:
    pred = output.reshape(output.shape[0], -1) >= threshold
    y = np.asarray(target).reshape(pred.shape) >= 0.5
    return float(np.count_nonzero(pred == y)), pred.size


@register_metric("accuracy")
def accuracy(output: np.ndarray, target: Any) -> tuple[float, int]:
    """Share of samples classified correctly (see the module docstring)."""
    output = np.asarray(output)
    if output.ndim == 1 or output.shape[-1] == 1:
        return _binary(output, target, 0.5)
    y = _class_targets(output, target)
    pred = output.argmax(axis=-1)
    return float(np.count_nonzero(pred == y)), int(pred.size)


@register_metric("binary_accuracy_logits")
def binary_accuracy_logits(output: np.ndarray, target: Any) -> tuple[float, int]:
    """Binary accuracy for a model that outputs logits: predicted positive when ``output ≥ 0``."""
    return _binary(np.asarray(output), target, 0.0)


@register_metric("bits_per_char")
def bits_per_char(output: np.ndarray, target: Any) -> tuple[float, int]:
    """The cross-entropy in bits per predicted position: ``−log₂ p(target)`` summed over the
    positions, from logits with the classes on axis 1 (``(batch, classes)`` or ``(batch, classes,
    T)``, ``CrossEntropyLoss``'s layout) and integer targets ``(batch,)`` or ``(batch, T)``. The
    mean over an epoch is the language model's bits per character (``loss / ln 2``)."""
    out = np.asarray(output, dtype=np.float64)
    y = np.asarray(target)
    if out.ndim < 2 or y.shape != (out.shape[0], *out.shape[2:]) or y.dtype.kind not in "iu":
        raise ShapeError(
            f"bits_per_char needs logits (batch, classes, ...) and integer targets of shape "
            f"{(out.shape[0], *out.shape[2:]) if out.ndim >= 2 else '(batch, ...)'}, got logits "
            f"{tuple(out.shape)} and targets {y.dtype} {tuple(y.shape)}"
        )
    m = out.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(out - m).sum(axis=1)) + m[:, 0]
    picked = np.take_along_axis(out, np.expand_dims(y.astype(np.intp), 1), axis=1)[:, 0]
    return float((log_z - picked).sum() / np.log(2)), int(y.size)


def top_k_accuracy(k: int) -> Metric:
    """The metric ``top<k>_accuracy``: the target class is among the ``k`` largest outputs."""
    if k < 1:
        raise ConfigError(f"top_k_accuracy: k must be at least 1, got {k}")

    def metric(output: np.ndarray, target: Any) -> tuple[float, int]:
        output = np.asarray(output)
        if output.ndim < 2 or output.shape[-1] < 2:
            raise ShapeError(
                f"top{k}_accuracy needs outputs of shape (batch, classes), got {tuple(output.shape)}"
            )
        y = _class_targets(output, target)
        kk = min(k, output.shape[-1])
        top = np.argpartition(output, -kk, axis=-1)[..., -kk:]
        hit = (top == y[..., None]).any(axis=-1)
        return float(np.count_nonzero(hit)), int(hit.size)

    metric.metric_name = f"top{k}_accuracy"  # type: ignore[attr-defined]
    return metric


_TOP_K = re.compile(r"top_?(\d+)_accuracy$")


def get_metric(metric: Union[str, Metric]) -> tuple[str, Metric]:
    """``(name, function)`` for a registered name, ``"top<k>_accuracy"``, or a function."""
    if callable(metric):
        return getattr(metric, "metric_name", getattr(metric, "__name__", "metric")), metric
    if not isinstance(metric, str):
        raise ConfigError(f"a metric is a name or a function, got {metric!r}")
    if metric in METRICS:
        return metric, METRICS[metric]
    match = _TOP_K.match(metric)
    if match:
        return metric, top_k_accuracy(int(match.group(1)))
    raise ConfigError(
        f"unknown metric {metric!r}; known: {sorted(METRICS)} and top<k>_accuracy "
        "(register your own with learnflux.metrics.register_metric)"
    )


def looks_like_class_labels(y: Any) -> bool:
    """True for integer labels or one-hot rows: the targets ``accuracy`` makes sense for."""
    y = np.asarray(y)
    if y.dtype.kind in "iub":
        return True
    if y.dtype.kind == "f" and y.ndim == 2 and y.shape[1] > 1:
        return bool(np.all((y >= 0) & (y <= 1)))
    return False
