"""A table of a model's layers: output shapes, parameter counts and FLOPs per sample.

``print(lf.summary(model))`` (or ``learnflux summary MODEL|CONFIG``)::

      #  layer                              output shape       params      FLOPs
      0  Input((1, 8, 8))                   (1, 8, 8)               0          0
      1  Conv2d(1 → 16, 3×3, padding=1)     (16, 8, 8)            144     18,432
    ...
         total                                                  9,306    171,648

FLOPs count the floating-point operations of one forward pass for one sample, a multiply-add
being 2 (the usual convention). Each layer declares its own count (``Layer.flops``, or
``flops_per_element`` for a constant cost per output value): ``Linear`` 2·in·out (+ out for the
bias), ``Conv2d`` 2·(C_in/groups)·k_h·k_w·C_out·H_out·W_out (+ C_out·H_out·W_out for the bias),
pooling one operation per window element, normalisation 2 per element (scale and shift,
inference), an activation one per element (a few for exp-based ones), shape layers 0. A layer that
declares nothing shows ``?``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from ..core.model import Model
from ..errors import ConfigError, LearnfluxError


def layer_flops(layer: Any, input_shape: Any) -> Optional[int]:
    """FLOPs of one forward pass of ``layer`` for one sample (None when unknown): what the layer
    declares (:meth:`learnflux.core.layer.Layer.flops`), or for a nested model its own total."""
    if isinstance(layer, Model):
        try:
            return summary(layer, input_shape).total_flops
        except LearnfluxError:
            return None
    count = layer.flops(input_shape)
    return None if count is None else int(count)


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
    """The per-sample output shape of ``layer`` given the shapes of its inputs (one per inbound
    node): what the layer declares (``Layer.output_shape``; a list of shapes for a merge layer)."""
    in_shape = in_shapes if layer.n_inputs is None else in_shapes[0]
    return tuple(int(s) for s in layer.output_shape(in_shape))


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
        in_shape = in_shapes if layer.n_inputs is None else in_shapes[0]
        try:
            out = _shape_of(layer, in_shapes)
        except (LearnfluxError, ValueError, TypeError, IndexError) as exc:
            raise ConfigError(
                f"summary: {layer.describe()} cannot take input of shape {in_shape}: {exc}"
            ) from None
        shapes.append(out)
        flops = layer_flops(layer, in_shape)
        rows.append(Row(i, layer.summary_name(), out, sum(p.size for p in layer.parameters()), flops))
    return Summary(model, rows, shape)
