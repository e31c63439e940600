"""A table of a model's layers: output shapes, parameter counts and FLOPs per sample.

``print(lf.summary(model))`` (or ``learnflux summary MODEL|CONFIG``)::

      #  layer                              output shape       params      FLOPs
      0  Input((1, 8, 8))                   (1, 8, 8)               0          0
      1  Conv2d(1 → 16, 3×3, padding=1)     (16, 8, 8)            144     18,432
    ...
         total                                                  9,306    171,648

FLOPs count the floating-point operations of one forward pass for one sample, a multiply-add
being 2 (the usual convention): ``Linear`` 2·in·out (+ out for the bias), ``Conv2d``
2·(C_in/groups)·k_h·k_w·C_out·H_out·W_out (+ C_out·H_out·W_out for the bias), pooling one
operation per window element, normalisation 2 per element (scale and shift, inference), an
activation one per element (a few for exp-based ones), shape layers 0. A layer can state its own
count with a ``flops(input_shape) -> int`` method.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from .errors import ConfigError, LearnfluxError

_PER_ELEMENT = {
    "ReLU": 1,
    "LeakyReLU": 2,
    "Sigmoid": 4,
    "Tanh": 4,
    "GELU": 8,
    "SiLU": 5,
    "Softmax": 4,
    "LogSoftmax": 4,
    "Add": 1,
    "Dropout": 0,
    "Flatten": 0,
    "Reshape": 0,
    "Input": 0,
    "Concat": 0,
    "BatchNorm1d": 2,
    "BatchNorm2d": 2,
    "LayerNorm": 5,
    "Identity": 0,
}


def layer_flops(layer: Any, input_shape: Any, output_shape: tuple) -> Optional[int]:
    """FLOPs of one forward pass for one sample (None when unknown)."""
    if hasattr(layer, "flops"):
        return int(layer.flops(input_shape))
    name = type(layer).__name__
    out_size = math.prod(output_shape)
    if name == "Linear":
        rows = math.prod(output_shape[:-1]) if len(output_shape) > 1 else 1
        bias = layer.out_features if layer.use_bias else 0
        return rows * (2 * layer.in_features * layer.out_features + bias)
    if name == "Conv2d":
        kh, kw = layer.kernel_size
        per_out = 2 * (layer.in_channels // layer.groups) * kh * kw
        has_bias = bool(getattr(layer, "use_bias", "bias" in layer._params))
        return out_size * (per_out + (1 if has_bias else 0))
    if name in ("MaxPool2d", "AvgPool2d"):
        kh, kw = layer.kernel_size if isinstance(layer.kernel_size, tuple) else (layer.kernel_size,) * 2
        return out_size * kh * kw
    if name in ("GlobalAvgPool2d", "AdaptiveAvgPool2d"):
        return math.prod(input_shape)
    if name == "Embedding":
        return 0
    if name in _PER_ELEMENT:
        return _PER_ELEMENT[name] * out_size
    from .model import Model

    if isinstance(layer, Model):
        try:
            return summary(layer, input_shape).total_flops
        except LearnfluxError:
            return None
    return None


@dataclass
class Row:
    index: int
    name: str
    output_shape: tuple
    params: int
    flops: Optional[int]


class Summary:
    """Rows (one per layer) and totals; ``str(summary)`` is the table."""

    def __init__(self, model: Any, rows: list[Row], input_shape: Any) -> None:
        self.model = model
        self.rows = rows
        self.input_shape = input_shape
        self.total_params = sum(p.size for p in model.parameters())
        self.total_buffers = sum(int(np.size(b)) for _, b in model.named_buffers())
        known = [r.flops for r in rows if r.flops is not None]
        self.total_flops = sum(known)
        self.flops_complete = len(known) == len(rows)
        self.param_bytes = sum(p.value.nbytes for p in model.parameters() if p.value.dtype != object)

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_shape": list(self.input_shape),
            "layers": [
                {
                    "index": r.index,
                    "layer": r.name,
                    "output_shape": list(r.output_shape),
                    "params": r.params,
                    "flops": r.flops,
                }
                for r in self.rows
            ],
            "total_params": self.total_params,
            "total_buffers": self.total_buffers,
            "total_flops": self.total_flops,
        }

    def __str__(self) -> str:
        head = ("#", "layer", "output shape", "params", "FLOPs")
        body = [
            (
                str(r.index),
                r.name,
                str(r.output_shape),
                f"{r.params:,}",
                "?" if r.flops is None else f"{r.flops:,}",
            )
            for r in self.rows
        ]
        flops = f"{self.total_flops:,}" + ("" if self.flops_complete else " + ?")
        total = ("", "total", "", f"{self.total_params:,}", flops)
        widths = [max(len(row[i]) for row in [head, *body, total]) for i in range(5)]
        right = {0, 3, 4}

        def fmt(row: Sequence[str]) -> str:
            cells = (
                c.rjust(w) if i in right else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
            return "  ".join(cells)

        rule = "-" * len(fmt(head))
        lines = [
            f"{type(self.model).__name__}: input shape {tuple(self.input_shape)} per sample",
            fmt(head),
            rule,
            *map(fmt, body),
            rule,
            fmt(total),
        ]
        lines.append(
            f"parameters: {self.total_params:,} ({self.param_bytes / 1024:.1f} KiB), "
            f"buffers: {self.total_buffers:,}, FLOPs per sample (forward): {flops}"
        )
        return "\n".join(lines)

    __repr__ = __str__


def _infer_input_shape(model: Any) -> Optional[tuple]:
    first = model.layers[0] if hasattr(model, "layers") else model
    shape = getattr(first, "shape", None)
    if type(first).__name__ == "Input" and shape is not None and all(s is not None for s in shape):
        return tuple(shape)
    return None


def _shape_of(layer: Any, in_shapes: list[tuple]) -> tuple:
    if len(in_shapes) == 1:
        return tuple(int(s) for s in layer.output_shape(in_shapes[0]))
    with_probe = [np.zeros((1, *s), dtype=np.float32) for s in in_shapes]
    was = layer.training
    layer.set_phase(False)
    try:
        return tuple(layer.forward(with_probe).shape[1:])
    finally:
        layer.set_phase(was)


def summary(model: Any, input_shape: Any = None) -> Summary:
    """The per-layer table of ``model`` for per-sample inputs of ``input_shape`` (taken from the
    model's ``Input`` layer when left out)."""
    shape = tuple(input_shape) if input_shape is not None else _infer_input_shape(model)
    if shape is None:
        raise ConfigError(
            "summary: the model does not start with an Input layer of known shape; "
            "give the per-sample input shape (input_shape=... / --input-shape C,H,W)"
        )
    layers = getattr(model, "layers", None)
    plan = getattr(model, "_plan", None)
    if layers is None:
        layers, plan = [model], [(-1,)]
    multi = isinstance(shape[0], (tuple, list)) if shape else False
    inputs = [tuple(s) for s in shape] if multi else [shape]
    shapes: list[tuple] = []
    rows = []
    for i, (layer, ins) in enumerate(zip(layers, plan, strict=True)):
        in_shapes = [shapes[j] if j >= 0 else inputs[-1 - j] for j in ins]
        try:
            out = _shape_of(layer, in_shapes)
        except (LearnfluxError, ValueError, TypeError, IndexError) as exc:
            raise ConfigError(
                f"summary: {layer.describe()} cannot take input of shape "
                f"{in_shapes[0] if len(in_shapes) == 1 else in_shapes}: {exc}"
            ) from None
        shapes.append(out)
        flops = layer_flops(layer, in_shapes[0] if len(in_shapes) == 1 else in_shapes, out)
        rows.append(Row(i, layer.summary_name(), out, sum(p.size for p in layer.parameters()), flops))
    return Summary(model, rows, shape)
