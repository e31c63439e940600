"""Sampling text from a character-level language model, one character at a time.

Autoregressive sampling: the model reads the text so far and gives, at its last position, the
logits ``z`` of the next character; the next character is drawn from
``p = softmax(z / temperature)`` (restricted to the ``top_k`` most likely characters when
``top_k > 0``; ``temperature = 0`` takes the most likely one), appended, and the model reads
again::

    ids = vocab.encode(prompt)
    repeat length times:
        window = the last `context` ids           (a model trained on windows of `context`)
        z = model(window)[last position of the text]
        ids.append(draw from softmax(z / temperature))

**Cost.** Each new character recomputes the whole window: one forward pass of ``(1, context)``
per character, no cache of keys and values. For the small models this is meant for (a few
hundred thousand parameters, windows of 64) a forward pass takes a few milliseconds, so 500
characters take a second or two; a key/value cache would make each step cost one position
instead of ``context``, at the price of a second code path through the attention layers.

**The window.** A model whose first layer is ``Input((context,))`` takes windows of exactly
``context`` ids. While the text is shorter, the window is the text followed by filler ids (0):
a causal model's output at position ``t`` depends on positions ``≤ t`` only, so the filler
changes nothing that is read. :func:`generate` checks that the model is causal (two fillers
must give the same logits at the text's positions) and refuses one that looks ahead.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .core.layer import Layer
from .data.text import CharVocabulary
from .errors import ConfigError, ShapeError


def model_context(model: Layer, default: Optional[int] = None) -> int:
    """The window length the model takes: its ``Input``'s sequence length, else ``default``."""
    layers = getattr(model, "layers", None)
    first = layers[0] if layers else None
    shape = getattr(first, "shape", None) if type(first).__name__ == "Input" else None
    if shape and len(shape) == 1 and shape[0] is not None:
        return int(shape[0])
    if default is None:
        raise ConfigError(
            "generate: the model does not start with Input((context,)) and no context was given"
        )
    return int(default)


def _logits_at(model: Layer, window: np.ndarray, position: int, vocab_size: int) -> np.ndarray:
    """The logits of the next character after ``window[:, position]``: the model's output at
    that position, the classes on axis 1 (``(1, classes, T)``, CrossEntropyLoss's layout) or
    last (``(1, T, classes)``)."""
    out = np.asarray(model.forward(window), dtype=np.float64)
    t = window.shape[1]
    if out.ndim == 3 and out.shape[1] == vocab_size and out.shape[2] == t:
        return out[:, :, position]
    if out.ndim == 3 and out.shape[1] == t and out.shape[2] == vocab_size:
        return out[:, position, :]
    raise ShapeError(
        f"generate: the model outputs shape {tuple(out.shape)} for a window of shape "
        f"{tuple(window.shape)}; a language model over {vocab_size} characters outputs "
        f"(batch, {vocab_size}, {t}) or (batch, {t}, {vocab_size})"
    )


def check_causal(model: Layer, ids: np.ndarray, context: int, vocab_size: int) -> None:
    """Refuse a model whose output at a position depends on later positions (the filler of a
    short window would then change what is read). Runs the model in its current phase: call it
    in the inference phase."""
    n = min(len(ids), context)
    if n == context:
        return
    rng = np.random.default_rng(0)
    a = np.zeros((1, context), dtype=np.int64)
    b = rng.integers(0, vocab_size, (1, context))
    a[0, :n] = b[0, :n] = ids[-n:]
    za, zb = (_logits_at(model, w, n - 1, vocab_size) for w in (a, b))
    if not np.allclose(za, zb, rtol=1e-4, atol=1e-5):
        raise ConfigError(
            "generate: the model is not causal: its output at a position changes with the "
            "characters after it, so it cannot predict the next one (build its attention with "
            "is_causal=True, e.g. TransformerEncoderLayer(..., is_causal=True))"
        )


def generate(
    model: Layer,
    vocab: CharVocabulary,
    prompt: str,
    length: int = 200,
    temperature: float = 1.0,
    top_k: int = 0,
    seed: Optional[int] = 0,
    context: Optional[int] = None,
) -> str:
    """``length`` characters sampled after ``prompt`` (the prompt not included; see the module
    docstring). ``seed`` makes the draw reproducible (None: a fresh generator)."""
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0:
        raise ConfigError(f"generate: length must be a non-negative integer, got {length!r}")
    if not temperature >= 0:
        raise ConfigError(f"generate: temperature must be >= 0, got {temperature!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 0:
        raise ConfigError(f"generate: top_k must be 0 (all characters) or a positive count, got {top_k!r}")
    if not prompt:
        raise ConfigError("generate: the prompt is empty; give at least one character")
    ids = list(vocab.encode(prompt, what="the prompt").tolist())
    context = model_context(model, context)
    v = len(vocab)
    rng = np.random.default_rng(seed)
    window = np.zeros((1, context), dtype=np.int64)
    out: list[int] = []
    with model.inference():
        check_causal(model, np.asarray(ids), context, v)
        for _ in range(int(length)):
            n = min(len(ids), context)
            window[0, :n] = ids[-n:]
            z = _logits_at(model, window, n - 1, v)[0]
            ids.append(_draw(z, temperature, top_k, rng))
            out.append(ids[-1])
    return vocab.decode(np.asarray(out, dtype=np.int64))


def _draw(z: np.ndarray, temperature: float, top_k: int, rng: np.random.Generator) -> int:
    """One id from the logits ``z``: the arg-max at temperature 0, else a draw from
    ``softmax(z / temperature)`` over the ``top_k`` largest (all when 0)."""
    if temperature == 0:
        return int(np.argmax(z))
    z = z / temperature
    if 0 < top_k < len(z):
        cut = np.partition(z, -top_k)[-top_k]
        z = np.where(z >= cut, z, -np.inf)
    p = np.exp(z - z.max())
    p /= p.sum()
    return int(rng.choice(len(p), p=p))


def vocabulary_of(metadata: dict[str, Any], where: str) -> CharVocabulary:
    """The vocabulary a model file's metadata holds (``learnflux train`` puts it there)."""
    from .errors import DataError

    if "vocabulary" not in metadata:
        raise DataError(
            f"{where}: this model file holds no vocabulary: it is not a language model trained "
            'by `learnflux train` on a text dataset ([data] dataset = "text")'
        )
    try:
        return CharVocabulary.from_config(metadata["vocabulary"])
    except DataError as exc:
        raise DataError(f"{where}: metadata 'vocabulary': {exc}") from None


__all__ = ["check_causal", "generate", "model_context", "vocabulary_of"]
