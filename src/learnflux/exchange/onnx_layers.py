"""ONNX converters of the built-in layers, one function per layer family (see
:mod:`learnflux.exchange.onnx_graph` for the contract). Each writes the **inference phase** of its
layer in ONNX opset 17 operators, and says where ONNX's semantics differ from learnflux's and how
the graph makes up for it.

Shapes: ``shapes`` are per-sample shapes (the batch axis, dynamic in the graph, left out), known
at export time; the converters use them to compute padding and reshape targets statically.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..layers.activations import GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, SiLU, Softmax, Tanh
from ..layers.conv import Conv2d
from ..layers.conv1d import Conv1d
from ..layers.conv_transpose import ConvTranspose2d
from ..layers.dropout import Dropout
from ..layers.embedding import Embedding
from ..layers.identity import Identity
from ..layers.input import Input
from ..layers.linear import Linear
from ..layers.merge import Add, Concat
from ..layers.norm import BatchNorm1d, BatchNorm2d, LayerNorm
from ..layers.pool import AdaptiveAvgPool2d, AvgPool2d, GlobalAvgPool2d, MaxPool2d
from ..layers.pool1d import AvgPool1d, MaxPool1d
from ..layers.prelu import PReLU
from ..layers.shape import Flatten, Permute, Reshape
from ..layers.upsample import Upsample
from .onnx_graph import OnnxGraph, converter

Shapes = list[tuple]


# ---------------------------------------------------------------------- identities
@converter(Input, Identity, Dropout)
def identity(g: OnnxGraph, layer: Any, inputs: list[str], shapes: Shapes) -> str:
    """``Input``, ``Identity`` and, in the inference phase, ``Dropout`` are the identity: no node
    at all."""
    return inputs[0]


# ---------------------------------------------------------------------- weighted layers
@converter(Linear)
def linear(g: OnnxGraph, layer: Linear, inputs: list[str], shapes: Shapes) -> str:
    """``o = x·Wᵀ + b``, W kept in PyTorch's (out, in) layout: ``Gemm(x, W, b, transB=1)`` for a
    batch of vectors; ``MatMul(x, Transpose(W)) + b`` over the last axis of a larger input
    (``Gemm`` takes matrices only)."""
    weight = g.weight("weight", layer.weight.value)
    bias = g.weight("bias", layer.bias.value) if layer.use_bias else None
    if len(shapes[0]) == 1:
        return g.op("Gemm", [inputs[0], weight] + ([bias] if bias else []), transB=1)
    out = g.op("MatMul", [inputs[0], g.op("Transpose", [weight], perm=[1, 0])])
    return g.op("Add", [out, bias]) if bias else out


def _weight_and_bias(g: OnnxGraph, layer: Any, x: str) -> list[str]:
    """``[x, weight, bias]`` for a convolution's node (``bias`` left out when the layer has none)."""
    args = [x, g.weight("weight", layer.weight.value)]
    return args + [g.weight("bias", layer.bias.value)] if layer.use_bias else args


@converter(Conv2d)
def conv2d(g: OnnxGraph, layer: Conv2d, inputs: list[str], shapes: Shapes) -> str:
    """``Conv`` with the same kernel, stride, dilation and groups. The padding is written as
    the four numbers learnflux resolved (ONNX's order: top, left, bottom, right), so
    ``padding="same"`` with an even kernel keeps its extra pixel at the bottom/right."""
    geo = layer.geometry
    top, bottom, left, right = geo.pads
    args = _weight_and_bias(g, layer, inputs[0])
    return g.op(
        "Conv",
        args,
        kernel_shape=list(geo.kernel),
        strides=list(geo.stride),
        dilations=list(geo.dilation),
        pads=[top, left, bottom, right],
        group=geo.groups,
    )


@converter(Embedding)
def embedding(g: OnnxGraph, layer: Embedding, inputs: list[str], shapes: Shapes) -> str:
    """``o[…, :] = W[ids[…], :]``: ``Gather(W, ids, axis=0)`` (the ids are an int64 input)."""
    return g.op("Gather", [g.weight("weight", layer.weight.value), inputs[0]], axis=0)


# ---------------------------------------------------------------------- pooling
def _end_padding(size: int, out: int, kernel: int, stride: int, begin: int) -> int:
    """The bottom/right padding that gives exactly ``out`` windows in ONNX's floor mode: the
    learnflux padding, plus in ceil mode the part of the last window beyond it.

    ONNX's ``ceil_mode`` is left off, explicit padding means the same everywhere: measured with
    onnx 1.23.2, its shape inference and ONNX Runtime disagree on a last window that would start
    in the padding (5×5, kernel 2, stride 3, padding 1: 3×3 inferred, 2×2 computed), and
    ``AveragePool(ceil_mode=1, count_include_pad=1)`` gives other averages in ONNX Runtime 1.23.2
    (up to 1.35 off PyTorch's on a 7×7 map) than in 1.31.1."""
    return max(begin, (out - 1) * stride + kernel - size - begin)


def _pool_pads(layer: Any, shape: tuple, size: tuple[int, int], begin: tuple[int, int]) -> list[int]:
    """ONNX ``pads`` (top, left, bottom, right) for pooling a tensor of ``size`` (height, width)
    with ``begin`` padding at the top/left into the output learnflux computes for ``shape``."""
    _, ho, wo = layer.output_shape(shape)
    (kh, kw), (sh, sw) = layer.kernel_size, layer.stride
    return [
        begin[0],
        begin[1],
        _end_padding(size[0], ho, kh, sh, begin[0]),
        _end_padding(size[1], wo, kw, sw, begin[1]),
    ]


@converter(MaxPool2d)
def maxpool2d(g: OnnxGraph, layer: MaxPool2d, inputs: list[str], shapes: Shapes) -> str:
    """``MaxPool`` (ONNX pads with −∞ for a max, as learnflux). Ceil mode becomes explicit
    bottom/right padding (see :func:`_end_padding`)."""
    _, h, w = shapes[0]
    return g.op(
        "MaxPool",
        [inputs[0]],
        kernel_shape=list(layer.kernel_size),
        strides=list(layer.stride),
        pads=_pool_pads(layer, shapes[0], (h, w), layer.padding),
    )


@converter(AvgPool2d)
def avgpool2d(g: OnnxGraph, layer: AvgPool2d, inputs: list[str], shapes: Shapes) -> str:
    """``AveragePool`` with ``count_include_pad=0``, always: its divisor is then the number of
    pixels of the window inside the tensor it reads. learnflux (as PyTorch) divides by the window
    clipped to the *padded* image when ``count_include_pad=True`` (zero padding counts, the part
    of a ceil-mode window beyond it does not): the graph then zero-pads first with ``Pad`` and
    pools the padded tensor (ONNX's ``count_include_pad=1`` with ceil mode: see
    :func:`_end_padding`)."""
    _, h, w = shapes[0]
    ph, pw = layer.padding
    x = inputs[0]
    begin = layer.padding
    if layer.count_include_pad and (ph or pw):
        pads = g.const([0, 0, ph, pw, 0, 0, ph, pw], "pads", dtype="int64")
        x = g.op("Pad", [x, pads], mode="constant")
        h, w, begin = h + 2 * ph, w + 2 * pw, (0, 0)
    return g.op(
        "AveragePool",
        [x],
        kernel_shape=list(layer.kernel_size),
        strides=list(layer.stride),
        pads=_pool_pads(layer, shapes[0], (h, w), begin),
        count_include_pad=0,
    )


@converter(GlobalAvgPool2d)
def global_avgpool2d(g: OnnxGraph, layer: GlobalAvgPool2d, inputs: list[str], shapes: Shapes) -> str:
    """``GlobalAveragePool`` (output ``(N, C, 1, 1)``), then ``Flatten`` unless ``keepdims``."""
    out = g.op("GlobalAveragePool", [inputs[0]])
    return out if layer.keepdims else g.op("Flatten", [out], axis=1)


# ---------------------------------------------------------------------- normalization
def _per_channel(g: OnnxGraph, name: str, ndim: int) -> str:
    """A ``(C,)`` tensor reshaped to ``(C, 1, …)`` so that it broadcasts over axis 1 of a tensor
    with ``ndim`` axes."""
    shape = g.const([-1] + [1] * (ndim - 2), "shape", dtype="int64")
    return g.op("Reshape", [name, shape])


@converter(BatchNorm1d, BatchNorm2d)
def batchnorm(g: OnnxGraph, layer: Any, inputs: list[str], shapes: Shapes) -> str:
    """Inference phase: ``BatchNormalization`` with the running statistics,
    ``o = γ·(x − running_mean)/√(running_var + ε) + β`` (γ = 1, β = 0 without ``affine``).

    Without running statistics (``track_running_stats=False``) learnflux normalises with the
    batch's own statistics in both phases; the graph computes them the same way:
    ``μ = ReduceMean(x)``, ``σ² = ReduceMean((x − μ)²)`` over the batch (and length or spatial)
    axes, ``o = γ·(x − μ)/√(σ² + ε) + β``."""
    c = layer.num_features
    ndim = len(shapes[0]) + 1
    if layer.affine:
        gamma, beta = g.weight("weight", layer.weight.value), g.weight("bias", layer.bias.value)
    else:
        gamma, beta = g.const([1.0] * c, "ones"), g.const([0.0] * c, "zeros")
    if layer.track_running_stats:
        mean = g.weight("running_mean", layer.running_mean)
        var = g.weight("running_var", layer.running_var)
        return g.op("BatchNormalization", [inputs[0], gamma, beta, mean, var], epsilon=layer.eps)
    axes = [0, *range(2, ndim)]
    centred = g.op("Sub", [inputs[0], g.op("ReduceMean", [inputs[0]], axes=axes, keepdims=1)])
    var = g.op("ReduceMean", [g.op("Mul", [centred, centred])], axes=axes, keepdims=1)
    std = g.op("Sqrt", [g.op("Add", [var, g.const(layer.eps, "eps")])])
    xhat = g.op("Div", [centred, std])
    scaled = g.op("Mul", [xhat, _per_channel(g, gamma, ndim)])
    return g.op("Add", [scaled, _per_channel(g, beta, ndim)])


@converter(LayerNorm)
def layernorm(g: OnnxGraph, layer: LayerNorm, inputs: list[str], shapes: Shapes) -> str:
    """``LayerNormalization`` over the last ``len(normalized_shape)`` axes (ONNX's ``axis`` is the
    first normalised axis: ``−len(normalized_shape)``), biased variance, same ε. Without
    ``elementwise_affine`` γ is a constant 1; without a bias β is left out."""
    k = len(layer.normalized_shape)
    if layer.elementwise_affine:
        args = [inputs[0], g.weight("weight", layer.weight.value)]
        if layer.use_bias:
            args.append(g.weight("bias", layer.bias.value))
    else:
        args = [inputs[0], g.const(np.ones(layer.normalized_shape), "ones")]
    return g.op("LayerNormalization", args, axis=-k, epsilon=layer.eps)


# ---------------------------------------------------------------------- activations
def _unary(op_type: str, layer_class: type) -> None:
    def convert(g: OnnxGraph, layer: Any, inputs: list[str], shapes: Shapes) -> str:
        return g.op(op_type, [inputs[0]])

    convert.__name__ = layer_class.__name__.lower()
    convert.__doc__ = f"``{layer_class.__name__}``: ONNX's ``{op_type}``."
    converter(layer_class)(convert)


# the ONNX operator of the same name (ReLU's derivative at 0, learnflux's 1, plays no part in the
# forward pass)
_unary("Relu", ReLU)
_unary("Sigmoid", Sigmoid)
_unary("Tanh", Tanh)


@converter(LeakyReLU)
def leaky_relu(g: OnnxGraph, layer: LeakyReLU, inputs: list[str], shapes: Shapes) -> str:
    """``LeakyRelu`` with ``alpha = negative_slope``."""
    return g.op("LeakyRelu", [inputs[0]], alpha=float(layer.negative_slope))


@converter(PReLU)
def prelu(g: OnnxGraph, layer: PReLU, inputs: list[str], shapes: Shapes) -> str:
    """``PRelu(x, a)``: ``x if x ≥ 0 else a·x`` (ONNX takes ``x < 0`` for the slope: the same
    values). One slope per channel is reshaped to ``(C, 1, …)`` to broadcast over axis 1 (ONNX
    broadcasts the slope from the last axis); a single slope broadcasts as it is."""
    slope = g.weight("weight", layer.weight.value)
    if layer.num_parameters > 1:
        slope = _per_channel(g, slope, len(shapes[0]) + 1)
    return g.op("PRelu", [inputs[0], slope])


@converter(SiLU)
def silu(g: OnnxGraph, layer: SiLU, inputs: list[str], shapes: Shapes) -> str:
    """``x·σ(x)``: ``Mul(x, Sigmoid(x))`` (ONNX has no SiLU operator before opset 24)."""
    return g.op("Mul", [inputs[0], g.op("Sigmoid", [inputs[0]])])


@converter(GELU)
def gelu(g: OnnxGraph, layer: GELU, inputs: list[str], shapes: Shapes) -> str:
    """``Gelu`` appeared in opset 20, so the formula itself:
    ``approximate="none"``: ``½x(1 + erf(x/√2))`` with ``Erf``;
    ``approximate="tanh"``: ``½x(1 + tanh(√(2/π)(x + 0.044715x³)))``."""
    x = inputs[0]
    if layer.approximate == "tanh":
        cube = g.op("Mul", [g.op("Mul", [x, x]), x])
        inner = g.op("Add", [x, g.op("Mul", [cube, g.const(0.044715, "c")])])
        core = g.op("Tanh", [g.op("Mul", [inner, g.const(math.sqrt(2 / math.pi), "sqrt_2_over_pi")])])
    else:
        core = g.op("Erf", [g.op("Mul", [x, g.const(math.sqrt(0.5), "inv_sqrt2")])])
    gate = g.op("Add", [core, g.const(1.0, "one")])
    return g.op("Mul", [g.op("Mul", [x, gate]), g.const(0.5, "half")])


@converter(Softmax, LogSoftmax)
def softmax(g: OnnxGraph, layer: Any, inputs: list[str], shapes: Shapes) -> str:
    """``Softmax`` / ``LogSoftmax`` along ``dim`` (from opset 13 on, ONNX's ``axis`` is one
    axis, as learnflux's, not the flattening of the older opsets)."""
    op = "Softmax" if isinstance(layer, Softmax) else "LogSoftmax"
    return g.op(op, [inputs[0]], axis=layer._axis(len(shapes[0]) + 1))


# ---------------------------------------------------------------------- shapes and merges
@converter(Flatten, Reshape)
def reshape(g: OnnxGraph, layer: Any, inputs: list[str], shapes: Shapes) -> str:
    """``Reshape`` to ``(batch, *target)``, the per-sample target computed at export (the ``0``
    in the shape keeps the input's batch size, whatever it is)."""
    target = [0, *layer.output_shape(shapes[0])]
    return g.op("Reshape", [inputs[0], g.const(target, "shape", dtype="int64")])


@converter(Permute)
def permute(g: OnnxGraph, layer: Permute, inputs: list[str], shapes: Shapes) -> str:
    """``Transpose`` with the same permutation (``dims`` counts the batch axis and keeps it
    first, as ONNX's ``perm`` does)."""
    return g.op("Transpose", [inputs[0]], perm=[int(d) for d in layer.dims])


@converter(Add)
def add(g: OnnxGraph, layer: Add, inputs: list[str], shapes: Shapes) -> str:
    """``x₁ + x₂ + …``: a chain of ``Add``, summed in learnflux's order."""
    out = g.op("Add", inputs[:2])
    for x in inputs[2:]:
        out = g.op("Add", [out, x])
    return out


@converter(Concat)
def concat(g: OnnxGraph, layer: Concat, inputs: list[str], shapes: Shapes) -> str:
    """``Concat`` along the same axis (counting the batch axis, as learnflux)."""
    return g.op("Concat", inputs, axis=layer.axis % (len(shapes[0]) + 1))


# ---------------------------------------------------------------------- sequences
@converter(Conv1d)
def conv1d(g: OnnxGraph, layer: Conv1d, inputs: list[str], shapes: Shapes) -> str:
    """``Conv`` over one spatial axis (weight ``(out, in/groups, k)``, as ONNX's), the padding as
    learnflux resolved it (``[left, right]``: ``"same"`` with an even kernel keeps its extra value
    at the end)."""
    geo = layer.geometry
    _, _, left, right = geo.pads
    args = _weight_and_bias(g, layer, inputs[0])
    return g.op(
        "Conv",
        args,
        kernel_shape=[geo.kernel[1]],
        strides=[geo.stride[1]],
        dilations=[geo.dilation[1]],
        pads=[left, right],
        group=geo.groups,
    )


@converter(MaxPool1d, AvgPool1d)
def pool1d(g: OnnxGraph, layer: Any, inputs: list[str], shapes: Shapes) -> str:
    """As learnflux runs them: the 2-D pooling of the ``(N, C, 1, L)`` view, ``Unsqueeze`` (axis
    2), the converter of the same 2-D layer with the ``1×k`` window (its explicit ceil-mode and
    ``count_include_pad`` padding included), ``Squeeze`` (axis 2)."""
    c, length = shapes[0]
    if isinstance(layer, MaxPool1d):
        as_2d: Any = MaxPool2d(layer.kernel_size, layer.stride, layer.padding, layer.ceil_mode)
        pool = maxpool2d
    else:
        as_2d = AvgPool2d(
            layer.kernel_size, layer.stride, layer.padding, layer.ceil_mode, layer.count_include_pad
        )
        pool = avgpool2d
    axis = g.const([2], "axes", dtype="int64")
    out = pool(g, as_2d, [g.op("Unsqueeze", [inputs[0], axis])], [(c, 1, length)])
    return g.op("Squeeze", [out, axis])


@converter(ConvTranspose2d)
def conv_transpose2d(g: OnnxGraph, layer: ConvTranspose2d, inputs: list[str], shapes: Shapes) -> str:
    """``ConvTranspose`` with the same kernel, stride, dilation, groups, padding (cut off each
    side) and ``output_padding``; ONNX's weight layout ``(C_in, C_out/groups, kh, kw)`` is
    PyTorch's and learnflux's.

    ONNX Runtime refuses an ``output_padding`` not below the stride, which PyTorch and learnflux
    accept below the dilation: on such an axis the rows it adds are cut less at the end
    (``pads`` end ``p − op``), and where ``op > p`` the rest is a ``Pad`` of zeros after the
    operator, the bias then added by ``Add``."""
    ends, out_pad, extra = [], [], []
    for p, op, s in zip(layer.padding, layer.output_padding, layer.stride, strict=True):
        cut = 0 if op < s else min(p, op)
        ends.append(p - cut)
        out_pad.append(op if op < s else 0)
        extra.append(0 if op < s else op - cut)
    args = _weight_and_bias(g, layer, inputs[0])
    bias = args.pop() if layer.use_bias and any(extra) else None  # added after the Pad
    out = g.op(
        "ConvTranspose",
        args,
        kernel_shape=list(layer.kernel_size),
        strides=list(layer.stride),
        dilations=list(layer.dilation),
        pads=[*layer.padding, *ends],
        output_padding=out_pad,
        group=layer.groups,
    )
    if not any(extra):
        return out
    out = g.op("Pad", [out, g.const([0, 0, 0, 0, 0, 0, *extra], "pads", dtype="int64")], mode="constant")
    return g.op("Add", [out, _per_channel(g, bias, 4)]) if bias else out


@converter(AdaptiveAvgPool2d)
def adaptive_avgpool2d(g: OnnxGraph, layer: AdaptiveAvgPool2d, inputs: list[str], shapes: Shapes) -> str:
    """ONNX has no adaptive pooling. When each output size divides the input's, the windows are
    one ``AveragePool`` with ``kernel = stride = H/H_out`` (output 1: ``GlobalAveragePool``).
    Otherwise (windows of unequal sizes) the graph computes learnflux's formula itself,
    ``o = P_h · x · P_wᵀ`` with the pooling matrices as constants: two ``MatMul``."""
    _, h, w = shapes[0]
    _, ho, wo = layer.output_shape(shapes[0])
    if (ho, wo) == (1, 1):
        return g.op("GlobalAveragePool", [inputs[0]])
    if h % ho == 0 and w % wo == 0:
        kernel = [h // ho, w // wo]
        return g.op("AveragePool", [inputs[0]], kernel_shape=kernel, strides=kernel)
    p_w = g.const(layer._matrix(w, wo, np.dtype(np.float64)).T, "pool_w")
    p_h = g.const(layer._matrix(h, ho, np.dtype(np.float64)), "pool_h")
    return g.op("MatMul", [p_h, g.op("MatMul", [inputs[0], p_w])])


# ---------------------------------------------------------------------- resizing
@converter(Upsample)
def upsample(g: OnnxGraph, layer: Upsample, inputs: list[str], shapes: Shapes) -> str:
    """``Resize``: ``nearest`` with ``coordinate_transformation_mode="asymmetric"`` and
    ``nearest_mode="floor"`` (source ``⌊i/f⌋``, PyTorch's legacy nearest); ``linear`` with
    ``"pytorch_half_pixel"`` or ``"align_corners"``. When the layer's coordinates use its scale
    factor, the graph gives ``scales`` (ONNX then computes ``⌊n·f⌋`` and ``i/f``); otherwise the
    output ``sizes`` (the batch and channel sizes read from the input by ``Shape``), so both map
    positions with ``n/m`` as learnflux."""
    spatial = tuple(shapes[0][1:])
    out, scales = layer._plan(spatial)
    attrs: dict[str, Any] = {"mode": "nearest" if layer.mode == "nearest" else "linear"}
    if layer.mode == "nearest":
        attrs.update(coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    else:
        attrs["coordinate_transformation_mode"] = (
            "align_corners" if layer.align_corners else "pytorch_half_pixel"
        )
    if scales[0] is not None:
        factors = g.const([1.0, 1.0, *scales], "scales")
        return g.op("Resize", [inputs[0], "", factors], **attrs)
    head = g.op("Shape", [inputs[0]], start=0, end=2)
    sizes = g.op("Concat", [head, g.const(list(out), "sizes", dtype="int64")], axis=0)
    return g.op("Resize", [inputs[0], "", "", sizes], **attrs)
