"""A run's data, ready for training: a dataset loaded by name, then split and standardised.

This is what ``learnflux train`` does with the ``[data]`` table of its config
(:func:`learnflux.config.load_data` calls these two with its values)::

    x, y, test, description = load_dataset("digits")
    data = split_dataset(x, y, test, val_fraction=0.15, test_fraction=0.15, seed=0)
    model.fit(*data.train, validation_data=data.val)

The order is fixed, so that a seed always gives the same parts: the test part is held out first
(unless the dataset has its own test files), then ``limit`` cuts the rest, then the validation
part is held out of it (seed + 1), and the standardisation is fitted on what is left for training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from .csvdata import load_csv
from .datasets import MNIST_FILES, _find, load_digits, load_mnist
from .split import train_val_split
from .transforms import Standardizer

Split = tuple[np.ndarray, np.ndarray]


@dataclass
class Dataset:
    """The splits of a run, ready for ``fit``: arrays ``(x, y)`` per split. ``vocabulary``: the
    :class:`~learnflux.data.text.CharVocabulary` of a text dataset (None otherwise)."""

    train: Split
    val: Optional[Split]
    test: Optional[Split]
    sample_shape: tuple[int, ...]
    n_classes: Optional[int]
    standardizer: Any = None
    description: str = ""
    vocabulary: Any = None


def load_dataset(
    kind: str,
    root: Optional[Union[str, Path]] = None,
    path: Optional[Union[str, Path]] = None,
    target: Union[int, str] = -1,
    download: bool = False,
    base_url: Optional[str] = None,
) -> tuple[np.ndarray, Optional[np.ndarray], Optional[Split], str]:
    """``(x, y, test, description)`` of the dataset ``kind``: ``"digits"`` (embedded images
    1×8×8), ``"mnist"`` / ``"fashion"`` (the IDX files in ``root``; ``test`` is their test
    split) or ``"csv"`` (the file ``path``, its column ``target``; ``y`` is None without one).
    ``test`` is None unless the dataset has its own test files."""
    if kind == "digits":
        x, y = load_digits(images=True)
        return x, y, None, "digits (embedded, 1,797 images 8×8)"
    if kind in ("mnist", "fashion"):
        kw: dict[str, Any] = {"kind": kind, "download": download, "base_url": base_url}
        x, y = load_mnist(root, split="train", **kw)
        return x, y, load_mnist(root, split="test", **kw), f"{kind} from {root}"
    x, y = load_csv(path, target=target)
    return x, y, None, f"csv {path}"


def split_dataset(
    x: np.ndarray,
    y: np.ndarray,
    test: Optional[Split] = None,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    stratify: bool = True,
    standardize: bool = False,
    limit: int = 0,
    seed: int = 0,
    description: str = "",
) -> Dataset:
    """The training, validation and test parts of ``(x, y)`` (see the module docstring for the
    order). Integer labels make a classification: the splits keep the class proportions when
    ``stratify``, and ``n_classes`` is the largest label of all parts + 1."""
    classification = y.dtype.kind in "iu"
    strat = stratify and classification
    if test is None and test_fraction > 0:
        x, x_test, y, y_test = train_val_split(x, y, test_fraction, seed=seed, stratify=strat)
        test = (x_test, y_test)
    if limit:
        x, y = x[:limit], y[:limit]
    val = None
    if val_fraction > 0:
        x, x_val, y, y_val = train_val_split(x, y, val_fraction, seed=seed + 1, stratify=strat)
        val = (x_val, y_val)
    std = None
    if standardize:
        std = Standardizer(axis=0 if x.ndim == 2 else (0, *range(2, x.ndim)))
        x = std.fit_transform(x)
        val = (std.transform(val[0]), val[1]) if val else None
        test = (std.transform(test[0]), test[1]) if test else None
    # the largest label of every split (a run may hold out no validation nor test part)
    n_classes = int(max(s[1].max() for s in ((x, y), val, test) if s)) + 1 if classification else None
    return Dataset((x, y), val, test, tuple(x.shape[1:]), n_classes, std, description)


def missing_idx_files(root: Union[str, Path], kind: str = "mnist") -> list[str]:
    """The names of the four IDX files of ``kind`` (``"mnist"`` or ``"fashion"``) that are not in
    ``root`` (gzipped or not, or in torchvision's sub-folder)."""
    return [
        n for split in ("train", "test") for n in MNIST_FILES[split] if _find(Path(root), kind, n) is None
    ]
