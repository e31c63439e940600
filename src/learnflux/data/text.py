"""Text for character-level language models: the embedded novel, a character vocabulary, a
contiguous split and the ``(x, y)`` windows ``fit`` trains on.

The pipeline, as ``learnflux train`` runs it for ``[data] dataset = "text"``
(:func:`text_dataset` does all of it)::

    text = load_text("pride-and-prejudice")       # a str (embedded, no download)
    vocab = CharVocabulary.from_text(text)         # its sorted distinct characters
    ids = vocab.encode(text)                       # one int64 id per character
    train, val, test = split_text(ids, 0.1, 0.0)   # contiguous: train first, then val, then test
    x, y = char_windows(train, context=64)         # x[i] = ids[s:s+64], y[i] = ids[s+1:s+65]

* **Split**: contiguous, never shuffled: the first ``1 − val_fraction − test_fraction`` of the
  characters train, the next ``val_fraction`` validate, the last ``test_fraction`` test. A random
  split of overlapping windows would put the same sentences on both sides; a contiguous one holds
  out text the model has never read (here the novel's last chapters).
* **Windows**: a fixed tiling of each part: window ``i`` starts at ``s = i·stride``
  (``stride = context`` by default: back-to-back windows, each character predicted once) and
  holds ``context`` ids; its target is the same window shifted by one character. ``fit`` then
  shuffles the training windows every epoch (seeded by ``[training] seed``), so a run is
  reproducible; a ``stride`` below ``context`` gives overlapping windows (more of them, each
  character seen at several positions).
* **Vocabulary**: the distinct characters of the whole text (all parts), sorted by code point; it
  travels with the trained model (:meth:`CharVocabulary.to_config`, stored in ``model.lf``'s
  metadata by ``learnflux train``). Encoding a character outside it is a
  :class:`~learnflux.errors.DataError` that names the characters and where they are.
* **Bits per character**: the cross-entropy in base 2, ``loss / ln 2`` (the metric
  ``"bits_per_char"`` of :mod:`learnflux.metrics` computes it from the logits).
"""

from __future__ import annotations

import gzip
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from ..errors import ConfigError, DataError
from .csvdata import _read_text
from .prepare import Dataset

PathLike = Union[str, "os.PathLike[str]"]

#: the texts embedded in learnflux: name -> (file in learnflux/data/files, description)
TEXTS: dict[str, tuple[str, str]] = {
    "pride-and-prejudice": (
        "pride-and-prejudice.txt.gz",
        "Jane Austen, Pride and Prejudice (1813; public domain)",
    ),
}


@lru_cache(maxsize=4)
def load_text(name: str = "pride-and-prejudice") -> str:
    """An embedded text by name (see :data:`TEXTS` and ``learnflux/data/files/README.md`` for its
    source and licence): *Pride and Prejudice*, 684,768 characters, no download."""
    if name not in TEXTS:
        raise ConfigError(f"load_text: unknown text {name!r}; embedded: {sorted(TEXTS)}")
    raw = resources.files("learnflux.data").joinpath("files", TEXTS[name][0]).read_bytes()
    return gzip.decompress(raw).decode("utf-8")


def read_text_file(path: PathLike) -> str:
    """A UTF-8 text file (gzipped or not), with errors that name the file."""
    return _read_text(Path(path), "text")


def _show(ch: str) -> str:
    return repr(ch) if ch.isprintable() else f"{ch!r} (U+{ord(ch):04X})"


class CharVocabulary:
    """A character vocabulary: id ``i`` is the ``i``-th character of ``chars``.

    ``encode`` maps a string to an int64 array of ids, ``decode`` maps ids back; the two are
    inverse on any text made of the vocabulary's characters.
    """

    def __init__(self, chars: str) -> None:
        if not isinstance(chars, str) or not chars:
            raise ConfigError(f"CharVocabulary: chars must be a non-empty string, got {chars!r}")
        twice = [c for i, c in enumerate(chars) if c in chars[:i]]
        if twice:
            raise ConfigError(f"CharVocabulary: the character {_show(twice[0])} appears twice in chars")
        self.chars = chars
        self._ids = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> CharVocabulary:
        """The distinct characters of ``text``, sorted by code point."""
        if not text:
            raise DataError("CharVocabulary.from_text: the text is empty")
        return cls("".join(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharVocabulary) and other.chars == self.chars

    def __repr__(self) -> str:
        return f"CharVocabulary({len(self)} characters)"

    def unknown(self, text: str) -> list[str]:
        """The characters of ``text`` that are not in the vocabulary, in order of appearance."""
        return list(dict.fromkeys(c for c in text if c not in self._ids))

    def encode(self, text: str, what: str = "the text") -> np.ndarray:
        """The ids of ``text`` (int64). A character outside the vocabulary is a DataError naming
        it, where it first appears in ``text`` and the vocabulary."""
        missing = self.unknown(text)
        if missing:
            shown = ", ".join(f"{_show(c)} (first at position {text.index(c)})" for c in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise DataError(
                f"{what} holds {len(missing)} character{'s' if len(missing) > 1 else ''} the "
                f"vocabulary lacks: {shown}{more}; the vocabulary's {len(self)} characters are "
                f"{self.chars!r}"
            )
        return np.fromiter((self._ids[c] for c in text), dtype=np.int64, count=len(text))

    def decode(self, ids: Any) -> str:
        """The text of ``ids`` (integers in ``[0, len(self))``)."""
        arr = np.asarray(ids)
        if arr.size and (arr.dtype.kind not in "iu" or arr.min() < 0 or arr.max() >= len(self)):
            raise DataError(
                f"CharVocabulary.decode: ids must be integers in [0, {len(self) - 1}], got "
                f"{arr.dtype} values in [{arr.min()}, {arr.max()}]"
            )
        return "".join(self.chars[i] for i in arr.reshape(-1).tolist())

    def to_config(self) -> dict[str, Any]:
        """Plain JSON data (what ``model.lf``'s metadata keeps): ``{"kind": "characters",
        "chars": "..."}``."""
        return {"kind": "characters", "chars": self.chars}

    @classmethod
    def from_config(cls, config: Any) -> CharVocabulary:
        """The vocabulary of :meth:`to_config`'s data (checked: a DataError if malformed)."""
        if (
            not isinstance(config, dict)
            or config.get("kind") != "characters"
            or not isinstance(config.get("chars"), str)
        ):
            raise DataError(
                f"not a character vocabulary: expected {{'kind': 'characters', 'chars': '...'}}, "
                f"got {str(config)[:120]}"
            )
        try:
            return cls(config["chars"])
        except ConfigError as exc:
            raise DataError(str(exc)) from None


def split_text(
    ids: np.ndarray, val_fraction: float = 0.1, test_fraction: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(train, val, test)``: contiguous parts of ``ids`` in that order (see the module
    docstring); a part of fraction 0 is empty. Views, no copies."""
    for name, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= f < 1:
            raise ConfigError(f"split_text: {name} must be in [0, 1), got {f!r}")
    if val_fraction + test_fraction >= 1:
        raise ConfigError("split_text: val_fraction + test_fraction must stay below 1")
    n = len(ids)
    n_test = int(round(n * test_fraction))
    n_val = int(round(n * val_fraction))
    a, b = n - n_val - n_test, n - n_test
    return ids[:a], ids[a:b], ids[b:]


def char_windows(
    ids: np.ndarray, context: int, stride: Optional[int] = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of shape ``(n, context)``: ``x[i] = ids[s : s + context]`` and
    ``y[i] = ids[s + 1 : s + context + 1]`` for ``s = i·stride`` (default ``stride = context``),
    every window that fits (a tail shorter than a window is left out)."""
    if isinstance(context, bool) or not isinstance(context, (int, np.integer)) or context < 1:
        raise ConfigError(f"char_windows: context must be a positive integer, got {context!r}")
    stride = context if stride is None else stride
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 1:
        raise ConfigError(f"char_windows: stride must be a positive integer, got {stride!r}")
    ids = np.asarray(ids)
    n = (len(ids) - context - 1) // stride + 1 if len(ids) > context else 0
    starts = np.arange(n) * stride
    offsets = np.arange(context)
    x = ids[starts[:, None] + offsets]
    y = ids[starts[:, None] + offsets + 1]
    return x, y


def bits_per_char(loss: float) -> float:
    """A cross-entropy in nats per character as bits per character: ``loss / ln 2``."""
    return float(loss) / math.log(2)


@dataclass
class TextParts:
    """What :func:`text_dataset` read: the vocabulary, the ids of each part and a description."""

    vocabulary: CharVocabulary
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    description: str


def text_parts(
    name: Optional[str] = None,
    path: Optional[PathLike] = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.0,
) -> TextParts:
    """The embedded text ``name`` (default ``"pride-and-prejudice"``) or the UTF-8 file
    ``path``, encoded with its own vocabulary and split (:func:`split_text`)."""
    if name is not None and path is not None:
        raise ConfigError("text: give the name of an embedded text or a path, not both")
    if path is not None:
        text, what = read_text_file(path), f"text file {path}"
    else:
        name = name or "pride-and-prejudice"
        text, what = load_text(name), f"{TEXTS[name][1]}, embedded"
    vocab = CharVocabulary.from_text(text)
    train, val, test = split_text(vocab.encode(text), val_fraction, test_fraction)
    description = f"{what}: {len(text):,} characters, {len(vocab)} distinct"
    return TextParts(vocab, train, val, test, description)


def text_dataset(
    name: Optional[str] = None,
    path: Optional[PathLike] = None,
    context: int = 64,
    stride: Optional[int] = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.0,
    limit: int = 0,
) -> Dataset:
    """The :class:`~learnflux.data.prepare.Dataset` of a character-level language model, ready
    for ``fit``: training windows of ``context`` characters every ``stride`` (default: back to
    back), validation and test windows back to back (each of their characters predicted once),
    ``y`` the windows shifted by one; ``limit`` > 0 keeps only the first ``limit`` training
    windows (quick runs). ``n_classes`` is the vocabulary's size, ``vocabulary`` the
    :class:`CharVocabulary`; a part of fraction 0 (or too short for one window) is None."""
    parts = text_parts(name, path, val_fraction, test_fraction)
    train = char_windows(parts.train, context, stride)
    if limit:
        train = (train[0][:limit], train[1][:limit])
    if not len(train[0]):
        raise DataError(
            f"{parts.description}: the training part ({len(parts.train):,} characters) is shorter "
            f"than one window of context = {context} characters"
        )
    val, test = (char_windows(p, context) for p in (parts.val, parts.test))
    return Dataset(
        train,
        val if len(val[0]) else None,
        test if len(test[0]) else None,
        (int(context),),
        len(parts.vocabulary),
        description=parts.description,
        vocabulary=parts.vocabulary,
    )


__all__ = [
    "TEXTS",
    "CharVocabulary",
    "TextParts",
    "bits_per_char",
    "char_windows",
    "load_text",
    "read_text_file",
    "split_text",
    "text_dataset",
    "text_parts",
]
