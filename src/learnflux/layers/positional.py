"""Positional information for sequence models: learned and sinusoidal position embeddings added to
the input, and rotary embeddings (RoPE) that rotate query and key vectors.

Attention by itself does not see the order of a sequence (permuting the positions of the keys and
values permutes nothing in the output); these layers give every position ``t`` its own signal.

* :class:`LearnedPositionalEmbedding`: ``o[:, t] = x[:, t] + W[t]``, a learned table (GPT-2).
* :class:`SinusoidalPositionalEncoding`: ``o[:, t] = x[:, t] + PE[t]`` with the fixed table of
  "Attention is all you need": ``PE[t, 2i] = sin(t·ω_i)``, ``PE[t, 2i+1] = cos(t·ω_i)``,
  ``ω_i = base^(−2i/d)``.
* :class:`RotaryEmbedding` and :func:`rotary_tables` / :func:`rotate` / :func:`rotate_backward`:
  RoPE (Su et al. 2021), as Llama and the small language models apply it to queries and keys:
  each pair of features ``(x_i, x_(i+d/2))`` at position ``t`` is rotated by the angle ``t·ω_i``,
  so the dot product of a query at ``t`` and a key at ``s`` depends on ``t − s`` only.
  ``MultiheadAttention(..., rotary=True)`` applies it inside attention.

All three sit at the start of the sequence (position 0 is the first step of axis 1).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..core.layer import Layer, register_layer
from ..errors import ConfigError
from ..init import normal
from ..numbers import cast
from ..seeding import RngLike, get_rng


def _frequencies(dim: int, base: float) -> np.ndarray:
    """``ω_i = base^(−2i/dim)`` for ``i = 0 … dim/2 − 1`` (float64)."""
    return base ** (-np.arange(0, dim, 2, dtype=np.float64) / dim)


def _sequence_axis_check(layer: Layer, x: np.ndarray, dim: int, max_len: Optional[int] = None) -> None:
    if x.ndim < 3 or x.shape[-1] != dim:
        raise layer.shape_error(f"expected input of shape (batch, T, ..., {dim}), got {tuple(x.shape)}")
    if max_len is not None and x.shape[1] > max_len:
        raise layer.shape_error(
            f"the sequence has {x.shape[1]} positions (axis 1 of input {tuple(x.shape)}), "
            f"more than max_len={max_len}"
        )


def _broadcast_over_positions(table: np.ndarray, ndim: int) -> np.ndarray:
    """A ``(T, d)`` table shaped ``(T, 1, …, 1, d)`` to add to a ``(batch, T, …, d)`` input."""
    return table.reshape(table.shape[0], *([1] * (ndim - 3)), table.shape[1])


@register_layer
class LearnedPositionalEmbedding(Layer):
    """A learned vector per position, added to the input (GPT-2's position embedding).

    Forward, for an input ``x`` of shape ``(batch, T, …, d)``::

        o[b, t] = x[b, t] + W[t]          (t = 0 … T − 1, T ≤ max_len)

    Backward: ``δ_in = δ`` (an addition), ``δW[t] = Σ_b δ[b, t]`` (summed over the batch and any
    axes between T and d) for ``t < T``, and 0 for the positions the batch did not reach.

    Args:
        max_len: the number of positions in the table (the longest sequence).
        embedding_dim: ``d``, the size of each vector.
        rng: generator or seed for the initialisation N(0, 0.02²) (GPT-2's).

    Weights: ``weight`` of shape ``(max_len, embedding_dim)``: the table of an
    ``nn.Embedding(max_len, d)`` applied to the positions ``0 … T − 1``.
    """

    flops_per_element = 1
    supports_exact = True

    def __init__(self, max_len: int, embedding_dim: int, rng: RngLike = None) -> None:
        super().__init__()
        self.max_len = int(max_len)
        self.embedding_dim = int(embedding_dim)
        if self.max_len <= 0 or self.embedding_dim <= 0:
            raise ConfigError(
                f"LearnedPositionalEmbedding: max_len and embedding_dim must be positive, "
                f"got {max_len}, {embedding_dim}"
            )
        shape = (self.max_len, self.embedding_dim)
        self.add_param("weight", normal(std=0.02)(shape, self.embedding_dim, self.max_len, get_rng(rng)))
        self._shape: Optional[tuple] = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        _sequence_axis_check(self, x, self.embedding_dim, self.max_len)
        if self.training:
            self._shape = x.shape
        return x + _broadcast_over_positions(self.weight.value[: x.shape[1]], x.ndim)

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> np.ndarray:
        shape = self._shape
        self.check_trainable(shape)
        if delta_out.shape != shape:
            raise self.shape_error(f"δ has shape {tuple(delta_out.shape)}, expected {shape}")
        t = shape[1]
        lead = (0, *range(2, delta_out.ndim - 1))  # every axis but the position and the feature
        grad = self.weight.grad_buffer()
        if grad is None:  # accumulating, or exact numbers (whose zeros must be Fractions)
            grad = cast(np.zeros(self.weight.shape), self.dtype)
        else:
            grad[t:] = 0
        grad[:t] = delta_out.sum(axis=lead)
        self.weight.set_grad(grad)
        return delta_out

    def _cache_attrs(self) -> tuple[str, ...]:
        return ("_shape",)

    def output_shape(self, input_shape: tuple) -> tuple:
        _sequence_axis_check(self, np.empty((1, *input_shape), dtype=bool), self.embedding_dim, self.max_len)
        return tuple(input_shape)

    @classmethod
    def state_shapes(cls, args: Any) -> dict[str, tuple]:
        return {"weight": (args.size("max_len"), args.size("embedding_dim"))}

    def get_config(self) -> dict[str, Any]:
        return {"max_len": self.max_len, "embedding_dim": self.embedding_dim}


def sinusoidal_table(length: int, dim: int, base: float = 10000.0, dtype: Any = np.float64) -> np.ndarray:
    """``PE[t, 2i] = sin(t·ω_i)``, ``PE[t, 2i+1] = cos(t·ω_i)``, ``ω_i = base^(−2i/dim)``:
    the ``(length, dim)`` table of "Attention is all you need" (computed in float64)."""
    angles = np.arange(length, dtype=np.float64)[:, None] * _frequencies(dim, base)
    table = np.empty((length, dim), dtype=np.float64)
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles[:, : dim // 2])
    return table.astype(dtype, copy=False)


@register_layer
class SinusoidalPositionalEncoding(Layer):
    """The fixed sinusoidal position encoding, added to the input (Vaswani et al. 2017; the
    ``PositionalEncoding`` of PyTorch's transformer tutorial, without its dropout: follow it with
    ``Dropout`` for that).

    Forward, for an input of shape ``(batch, T, …, d)``::

        o[b, t] = x[b, t] + PE[t]      PE[t, 2i] = sin(t·ω_i), PE[t, 2i+1] = cos(t·ω_i), ω_i = base^(−2i/d)

    Backward: ``δ_in = δ``. No weights: the table is computed from the arguments (and is not
    saved). Nearby positions get similar vectors, and ``PE[t + k]`` is a rotation of ``PE[t]``
    that depends only on ``k``.

    Args:
        d_model: ``d``, the size of the vectors.
        max_len: the longest sequence accepted.
        base: the base of the wavelengths (10000 in the paper).
    """

    flops_per_element = 1

    def __init__(self, d_model: int, max_len: int = 5000, base: float = 10000.0) -> None:
        super().__init__()
        self.d_model = int(d_model)
        self.max_len = int(max_len)
        self.base = float(base)
        if self.d_model <= 0 or self.max_len <= 0 or self.base <= 0:
            raise ConfigError(
                f"SinusoidalPositionalEncoding: d_model, max_len and base must be positive, "
                f"got {d_model}, {max_len}, {base}"
            )
        self._shape: Optional[tuple] = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        _sequence_axis_check(self, x, self.d_model, self.max_len)
        if self.training:
            self._shape = x.shape
        table = sinusoidal_table(x.shape[1], self.d_model, self.base, x.dtype)
        return x + _broadcast_over_positions(table, x.ndim)

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> np.ndarray:
        self.check_trainable(self._shape)
        if delta_out.shape != self._shape:
            raise self.shape_error(f"δ has shape {tuple(delta_out.shape)}, expected {self._shape}")
        return delta_out

    def _cache_attrs(self) -> tuple[str, ...]:
        return ("_shape",)

    def output_shape(self, input_shape: tuple) -> tuple:
        _sequence_axis_check(self, np.empty((1, *input_shape), dtype=bool), self.d_model, self.max_len)
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"d_model": self.d_model}
        if self.max_len != 5000:
            config["max_len"] = self.max_len
        if self.base != 10000.0:
            config["base"] = self.base
        return config


# ---------------------------------------------------------------------------- rotary (RoPE)
def rotary_tables(length: int, dim: int, base: float = 10000.0, dtype: Any = np.float64) -> tuple:
    """``(cos, sin)``, each ``(length, dim)``: ``cos[t, i] = cos(t·ω_(i mod dim/2))`` (the
    angle of the pair feature ``i`` belongs to), ``ω_j = base^(−2j/dim)``; computed in float64."""
    if dim % 2:
        raise ConfigError(f"rotary embedding: the dimension must be even, got {dim}")
    angles = np.arange(length, dtype=np.float64)[:, None] * _frequencies(dim, base)
    angles = np.concatenate([angles, angles], axis=1)
    return np.cos(angles).astype(dtype, copy=False), np.sin(angles).astype(dtype, copy=False)


def _rotate_half(x: np.ndarray) -> np.ndarray:
    """``R·x = [−x₂, x₁]`` for ``x = [x₁, x₂]`` split in halves along the last axis."""
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def rotate(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """RoPE's forward: ``o = x ⊙ cos + R·x ⊙ sin``, i.e. each pair ``(x_i, x_(i+d/2))`` turned by
    its angle θ: ``(x_i cos θ − x_(i+d/2) sin θ, x_(i+d/2) cos θ + x_i sin θ)`` ("rotate half", the
    pairing of Llama and GPT-NeoX). ``cos``/``sin`` broadcast against ``x`` (last axis ``d``)."""
    return x * cos + _rotate_half(x) * sin


def rotate_backward(delta_out: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """RoPE's backward: a rotation is orthogonal, so ``δ_in`` is ``δ`` turned back by the same
    angle: ``δ_in = δ ⊙ cos + Rᵀ·(δ ⊙ sin)``, with ``Rᵀ = −R`` (``Rᵀ·y = [y₂, −y₁]``)."""
    return delta_out * cos - _rotate_half(delta_out * sin)


@register_layer
class RotaryEmbedding(Layer):
    """Rotary position embedding (RoPE) as a layer: rotates the features of every position of a
    ``(batch, T, d)`` or ``(batch, T, heads, d)`` input (positions on axis 1) by angles that grow
    with the position.

    Forward, for each pair ``(i, i + d/2)`` at position ``t``, angle ``θ = t·ω_i``,
    ``ω_i = base^(−2i/d)``::

        o_i       = x_i·cos θ − x_(i+d/2)·sin θ
        o_(i+d/2) = x_(i+d/2)·cos θ + x_i·sin θ          o = x ⊙ cos + R·x ⊙ sin

    Backward (the inverse rotation): ``δ_in = δ ⊙ cos + Rᵀ·(δ ⊙ sin)``. No weights.

    Applied to queries and keys, ``⟨rot_t(q), rot_s(k)⟩`` depends on ``t − s`` only: attention
    sees relative positions. ``MultiheadAttention(..., rotary=True)`` does this to each head.

    Args:
        dim: ``d``, the size of the last axis (even).
        base: the base of the angles (10000 as RoFormer and Llama 2).
    """

    flops_per_element = 3

    def __init__(self, dim: int, base: float = 10000.0) -> None:
        super().__init__()
        self.dim = int(dim)
        self.base = float(base)
        if self.dim <= 0 or self.dim % 2:
            raise ConfigError(f"RotaryEmbedding: dim must be a positive even number, got {dim}")
        if self.base <= 0:
            raise ConfigError(f"RotaryEmbedding: base must be positive, got {base}")
        self._tables: Optional[tuple] = None

    def _tables_for(self, x: np.ndarray) -> tuple:
        cos, sin = rotary_tables(x.shape[1], self.dim, self.base, x.dtype)
        return _broadcast_over_positions(cos, x.ndim), _broadcast_over_positions(sin, x.ndim)

    def forward(self, x: np.ndarray) -> np.ndarray:
        _sequence_axis_check(self, x, self.dim)
        tables = self._tables_for(x)
        if self.training:
            self._tables = (x.shape, *tables)
        return rotate(x, *tables)

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> np.ndarray:
        self.check_trainable(self._tables)
        shape, cos, sin = self._tables
        if delta_out.shape != shape:
            raise self.shape_error(f"δ has shape {tuple(delta_out.shape)}, expected {shape}")
        return rotate_backward(delta_out, cos, sin)

    def _cache_attrs(self) -> tuple[str, ...]:
        return ("_tables",)

    def output_shape(self, input_shape: tuple) -> tuple:
        _sequence_axis_check(self, np.empty((1, *input_shape), dtype=bool), self.dim)
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"dim": self.dim}
        if self.base != 10000.0:
            config["base"] = self.base
        return config


__all__ = [
    "LearnedPositionalEmbedding",
    "SinusoidalPositionalEncoding",
    "RotaryEmbedding",
    "sinusoidal_table",
    "rotary_tables",
    "rotate",
    "rotate_backward",
]
