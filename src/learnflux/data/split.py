"""Seeded train / validation (/ test) splits, optionally stratified by class."""

from __future__ import annotations

import math
import numbers
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ConfigError, ShapeError


def _check_fraction(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) < 1.0:
        raise ConfigError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def _stratified_counts(labels: np.ndarray, sizes: Sequence[int]) -> Tuple[np.ndarray, List[np.ndarray]]:
    """Per class, how many samples go to each part (largest remainder, totals exact)."""
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    n = len(labels)
    per_part = []
    for size in sizes:
        ideal = counts * size / n
        take = np.floor(ideal).astype(np.int64)
        short = size - int(take.sum())
        if short > 0:  # give the rest to the classes with the largest remainders (ties: class order)
            rank = np.argsort(-(ideal - take), kind="stable")
            take[rank[:short]] += 1
        per_part.append(take)
    return inverse.reshape(-1), per_part


def _split_indices(
    n: int, fractions: Sequence[float], seed: int, stratify_labels: Optional[np.ndarray]
) -> List[np.ndarray]:
    """Index arrays of the held-out parts (in ``fractions`` order) and, last, of the rest (train)."""
    sizes = [math.ceil(f * n) if f > 0 else 0 for f in fractions]
    if sum(sizes) >= n and n > 0:
        raise ConfigError(
            f"the split leaves no training sample: {n} samples, held-out fractions {list(fractions)} "
            f"take {sizes}"
        )
    rng = np.random.default_rng(seed)
    if stratify_labels is None:
        perm = rng.permutation(n)
        parts, start = [], 0
        for size in sizes:
            parts.append(perm[start : start + size])
            start += size
        parts.append(perm[start:])
        return parts
    inverse, per_part = _stratified_counts(stratify_labels, sizes)
    chosen: List[List[np.ndarray]] = [[] for _ in range(len(sizes) + 1)]
    for k in range(len(per_part[0])):
        members = rng.permutation(np.flatnonzero(inverse == k))
        start = 0
        for p, take in enumerate(per_part):
            chosen[p].append(members[start : start + take[k]])
            start += int(take[k])
        chosen[-1].append(members[start:])
    # shuffle each part so classes are interleaved (a loader with shuffle=False still sees mixed classes)
    return [rng.permutation(np.concatenate(c)) if c else np.empty(0, np.int64) for c in chosen]


def _prepare(
    x: Any, y: Any, stratify: bool, fn: str
) -> Tuple[np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]:
    x = np.asarray(x)
    if x.ndim == 0:
        raise ShapeError(f"{fn}: x must have a sample axis, got a scalar")
    y = None if y is None else np.asarray(y)
    if y is not None and (y.ndim == 0 or len(y) != len(x)):
        raise ShapeError(
            f"{fn}: x and y must have the same number of samples, got x shape {x.shape} and y shape {y.shape}"
        )
    labels = None
    if stratify:
        if y is None:
            raise ConfigError(f"{fn}: stratify=True needs class labels y")
        labels = y if y.ndim == 1 else y.reshape(len(y), -1).argmax(axis=1)  # one-hot / probabilities
    return x, y, labels


def train_val_split(
    x: Any, y: Any = None, val_fraction: float = 0.2, seed: int = 0, stratify: bool = False
) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]:
    """Split ``(x, y)`` at random into a training and a validation part.

    The validation part has ``ceil(val_fraction * n)`` samples; the split depends only on ``seed``.
    With ``stratify=True`` every class (the values of ``y``, or the argmax of one-hot rows) keeps
    its proportion in both parts (within one sample). Both parts come in shuffled order.

    Args:
        x: samples, first axis = samples.
        y: targets with the same number of samples, or ``None``.
        val_fraction: share of the samples held out for validation, in [0, 1).
        seed: seed of the random split.
        stratify: keep the class proportions of ``y`` in both parts.

    Returns:
        ``x_train, x_val, y_train, y_val`` (the y parts are ``None`` when ``y`` is ``None``),
        in the order of scikit-learn's ``train_test_split``.
    """
    frac = _check_fraction(val_fraction, "train_val_split: val_fraction")
    x, y, labels = _prepare(x, y, stratify, "train_val_split")
    val_idx, train_idx = _split_indices(len(x), [frac], seed, labels)
    return (
        x[train_idx],
        x[val_idx],
        None if y is None else y[train_idx],
        None if y is None else y[val_idx],
    )


def train_val_test_split(
    x: Any,
    y: Any = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    stratify: bool = False,
) -> Tuple[np.ndarray, ...]:
    """Split ``(x, y)`` at random into training, validation and test parts.

    The test part has ``ceil(test_fraction * n)`` samples, the validation part
    ``ceil(val_fraction * n)``, the training part the rest; see :func:`train_val_split`.

    Returns:
        ``x_train, x_val, x_test, y_train, y_val, y_test`` (y parts ``None`` when ``y`` is ``None``).
    """
    vf = _check_fraction(val_fraction, "train_val_test_split: val_fraction")
    tf = _check_fraction(test_fraction, "train_val_test_split: test_fraction")
    x, y, labels = _prepare(x, y, stratify, "train_val_test_split")
    val_idx, test_idx, train_idx = _split_indices(len(x), [vf, tf], seed, labels)
    parts = (train_idx, val_idx, test_idx)
    return tuple(x[i] for i in parts) + tuple(None if y is None else y[i] for i in parts)
