"""ONNX converters of the sequence layers (:mod:`learnflux.layers.attention`, ``transformer``,
``positional`` and ``RMSNorm``), written with opset 17 operators.

Opset 17 has no attention nor RMS-norm operator (``Attention`` and ``RMSNormalization`` came with
opset 23), so each layer is decomposed into the steps of its own forward pass: ``MatMul``,
``Reshape``/``Transpose`` to split and join the heads, ``Softmax``, element-wise ``Mul``/``Add``.
Masks built from the layer's arguments (causal) and the position tables (sinusoidal, rotary) are
constants computed at export time from the known sequence length: the exported graph takes that
length only (the batch axis stays dynamic). Masks given per call (``attn_mask``,
``key_padding_mask``) are not part of a model, so not of its graph.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..layers.attention import MultiheadAttention, ScaledDotProductAttention, causal_mask
from ..layers.norm import RMSNorm
from ..layers.positional import (
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    rotary_tables,
    sinusoidal_table,
)
from ..layers.transformer import TransformerEncoderLayer
from .onnx_graph import OnnxGraph, converter, lookup

Shapes = list[tuple]


def _positions(table: np.ndarray, ndim: int) -> np.ndarray:
    """A ``(T, d)`` table shaped to add to a ``(batch, T, …, d)`` tensor of ``ndim`` axes."""
    return table.reshape(table.shape[0], *([1] * (ndim - 3)), table.shape[1])


def _rotate(g: OnnxGraph, x: str, cos: np.ndarray, sin: np.ndarray) -> str:
    """``x ⊙ cos + R·x ⊙ sin`` with ``R·[x₁, x₂] = [−x₂, x₁]`` (halves of the last axis)."""
    half = cos.shape[-1] // 2
    axis = g.const([-1], "axis", np.int64)
    first = g.op("Slice", [x, g.const([0], "start", np.int64), g.const([half], "end", np.int64), axis])
    second = g.op(
        "Slice", [x, g.const([half], "start", np.int64), g.const([2 * half], "end", np.int64), axis]
    )
    rotated = g.op("Concat", [g.op("Neg", [second]), first], axis=-1)
    return g.op(
        "Add",
        [
            g.op("Mul", [x, g.const(cos, "cos")]),
            g.op("Mul", [rotated, g.const(sin, "sin")]),
        ],
    )


# ---------------------------------------------------------------------- norm and positions
@converter(RMSNorm)
def rmsnorm(g: OnnxGraph, layer: RMSNorm, inputs: list[str], shapes: Shapes) -> str:
    """``x · 1/√(mean(x²) + ε) · γ``: ``Mul``, ``ReduceMean`` over the normalized axes, ``Add``,
    ``Sqrt``, ``Reciprocal``, ``Mul`` (ε = float32's machine epsilon when left None: the graph
    computes in float32)."""
    x = inputs[0]
    k = len(layer.normalized_shape)
    eps = np.finfo(np.float32).eps if layer.eps is None else layer.eps
    mean_square = g.op("ReduceMean", [g.op("Mul", [x, x])], axes=list(range(-k, 0)), keepdims=1)
    inv_rms = g.op("Reciprocal", [g.op("Sqrt", [g.op("Add", [mean_square, g.const(eps, "eps")])])])
    out = g.op("Mul", [x, inv_rms])
    if layer.elementwise_affine:
        out = g.op("Mul", [out, g.weight("weight", layer.weight.value)])
    return out


@converter(LearnedPositionalEmbedding)
def learned_positions(
    g: OnnxGraph, layer: LearnedPositionalEmbedding, inputs: list[str], shapes: Shapes
) -> str:
    """``x + W[:T]``: the whole table as the initializer ``weight``, ``Slice``d to the sequence's
    ``T`` positions and reshaped to broadcast over the axes between T and d."""
    t, ndim = shapes[0][0], len(shapes[0]) + 1
    table = g.op(
        "Slice",
        [
            g.weight("weight", layer.weight.value),
            g.const([0], "start", np.int64),
            g.const([t], "end", np.int64),
            g.const([0], "axis", np.int64),
        ],
    )
    shape = g.const(_positions(np.zeros((t, layer.embedding_dim)), ndim).shape, "shape", np.int64)
    return g.op("Add", [inputs[0], g.op("Reshape", [table, shape])])


@converter(SinusoidalPositionalEncoding)
def sinusoidal_positions(
    g: OnnxGraph, layer: SinusoidalPositionalEncoding, inputs: list[str], shapes: Shapes
) -> str:
    """``x + PE[:T]``, the table a constant of the graph."""
    t, ndim = shapes[0][0], len(shapes[0]) + 1
    table = _positions(sinusoidal_table(t, layer.d_model, layer.base), ndim)
    return g.op("Add", [inputs[0], g.const(table, "positions")])


@converter(RotaryEmbedding)
def rotary(g: OnnxGraph, layer: RotaryEmbedding, inputs: list[str], shapes: Shapes) -> str:
    """``x ⊙ cos + R·x ⊙ sin``, the tables constants of the graph."""
    t, ndim = shapes[0][0], len(shapes[0]) + 1
    cos, sin = rotary_tables(t, layer.dim, layer.base)
    return _rotate(g, inputs[0], _positions(cos, ndim), _positions(sin, ndim))


# ---------------------------------------------------------------------- attention
def _attention(g: OnnxGraph, qkv: list[str], rank: int, scale: float, causal: tuple) -> str:
    """``softmax(Q·Kᵀ·c + M)·V`` on ``(…, T, d)`` tensors of ``rank`` axes; ``causal``: ``()``,
    or ``(L, S)`` for the causal mask (a constant)."""
    q, k, v = qkv
    scores = g.op("MatMul", [q, g.op("Transpose", [k], perm=[*range(rank - 2), rank - 1, rank - 2])])
    scores = g.op("Mul", [scores, g.const(scale, "scale")])
    if causal:
        # a large negative number rather than −∞: exp() of it is 0 all the same
        mask = np.maximum(causal_mask(*causal, np.float64), -1e9)
        scores = g.op("Add", [scores, g.const(mask, "mask")])
    return g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])


@converter(ScaledDotProductAttention)
def sdpa(g: OnnxGraph, layer: ScaledDotProductAttention, inputs: list[str], shapes: Shapes) -> str:
    """The layer's three inputs through :func:`_attention` (``MatMul`` broadcasts the leading
    axes as NumPy does)."""
    scale = 1 / math.sqrt(shapes[0][-1]) if layer.scale is None else layer.scale
    causal = (shapes[0][-2], shapes[1][-2]) if layer.is_causal else ()
    return _attention(g, inputs, len(shapes[0]) + 1, scale, causal)


@converter(MultiheadAttention)
def multihead_attention(g: OnnxGraph, layer: MultiheadAttention, inputs: list[str], shapes: Shapes) -> str:
    """The projections (``MatMul`` by the transposed weights named as in the state dict, slices
    of ``in_proj_weight``), the heads split with ``Reshape`` + ``Transpose`` to ``(N, H, T, d)``,
    rotary tables and the causal mask as constants, the attention, the heads joined back and
    ``out_proj`` (the ``Linear`` converter)."""
    e, h, d = layer.embed_dim, layer.num_heads, layer.head_dim
    source = [0, 0, 0] if len(inputs) == 1 else ([0, 1, 1] if len(inputs) == 2 else [0, 1, 2])
    names = list(inputs)
    if not layer.batch_first:  # (T, N, E) → (N, T, E): the graph's batch axis is T there
        if layer.rotary or layer.is_causal:
            raise ConfigError(
                "to_onnx: a causal or rotary MultiheadAttention exports with batch_first=True only "
                "(its tables need the length, which batch_first=False puts on the dynamic axis)"
            )
        names = [g.op("Transpose", [x], perm=[1, 0, 2]) for x in names]
    length, source_length = (shapes[source[j]][0] for j in (0, 1))
    w_in = g.weight("in_proj_weight", layer.in_proj_weight.value) if layer.packed else None
    b_in = g.weight("in_proj_bias", layer.in_proj_bias.value) if layer.use_bias else None
    heads = []
    for j, key in enumerate(("q_proj_weight", "k_proj_weight", "v_proj_weight")):
        rows = [g.const([j * e], "start", np.int64), g.const([(j + 1) * e], "end", np.int64)]
        axis0 = g.const([0], "axis", np.int64)
        w = g.op("Slice", [w_in, *rows, axis0]) if layer.packed else g.weight(key, getattr(layer, key).value)
        y = g.op("MatMul", [names[source[j]], g.op("Transpose", [w], perm=[1, 0])])
        if b_in is not None:
            y = g.op("Add", [y, g.op("Slice", [b_in, *rows, axis0])])
        y = g.op("Reshape", [y, g.const([0, 0, h, d], "heads", np.int64)])
        heads.append(g.op("Transpose", [y], perm=[0, 2, 1, 3]))
    q, k, v = heads
    if layer.rotary:
        cos_q, sin_q = rotary_tables(length, d, layer.rotary_base)
        cos_k, sin_k = rotary_tables(source_length, d, layer.rotary_base)
        q, k = _rotate(g, q, cos_q, sin_q), _rotate(g, k, cos_k, sin_k)
    causal = (length, source_length) if layer.is_causal else ()
    out = _attention(g, [q, k, v], 4, 1 / math.sqrt(d), causal)
    out = g.op("Reshape", [g.op("Transpose", [out], perm=[0, 2, 1, 3]), g.const([0, 0, e], "join", np.int64)])
    out = _child(g, layer, "out_proj", out, (shapes[0][0], e))
    return g.op("Transpose", [out], perm=[1, 0, 2]) if not layer.batch_first else out


def _child(g: OnnxGraph, parent: Any, name: str, x: str, shape: tuple) -> str:
    """The converter of ``parent.<name>`` (its weights named ``<path>.<name>.weight``...)."""
    child = getattr(parent, name)
    outer = g.scope
    g.scope = f"{outer}.{name}" if outer else name
    try:
        return lookup(child)(g, child, [x], [tuple(shape)])
    finally:
        g.scope = outer


@converter(TransformerEncoderLayer)
def transformer_encoder_layer(
    g: OnnxGraph, layer: TransformerEncoderLayer, inputs: list[str], shapes: Shapes
) -> str:
    """The block's steps with its children's converters (dropout is the identity in inference):
    post-norm ``norm2(h + FF(h))``, ``h = norm1(x + SA(x))``; pre-norm ``h + FF(norm2(h))``,
    ``h = x + SA(norm1(x))``."""
    x, shape = inputs[0], shapes[0]
    hidden = (*shape[:-1], layer.dim_feedforward)

    def sa(t: str) -> str:
        return _child(g, layer, "self_attn", t, shape)

    def ff(t: str) -> str:
        a = _child(g, layer, "activation", _child(g, layer, "linear1", t, shape), hidden)
        return _child(g, layer, "linear2", a, hidden)

    if layer.norm_first:
        h = g.op("Add", [x, sa(_child(g, layer, "norm1", x, shape))])
        return g.op("Add", [h, ff(_child(g, layer, "norm2", h, shape))])
    h = _child(g, layer, "norm1", g.op("Add", [x, sa(x)]), shape)
    return _child(g, layer, "norm2", g.op("Add", [h, ff(h)]), shape)
