"""ONNX export: ``lf.to_onnx(model)`` (an ``onnx.ModelProto``) and ``lf.export_onnx(model, path)``.

The exported graph is the model's **inference phase** (batch norm with its running statistics,
dropout as the identity), in ONNX opset 17, float32:

* inputs ``input`` (or ``input_0``, ``input_1``... for a model with several), float32, or int64
  for a model that starts with an ``Embedding``; output ``output``. Their first axis, ``batch``,
  is dynamic; the other axes are fixed at export (the per-sample shape of the model's ``Input``
  layer, or ``input_shape=``);
* weights and buffers are initializers named as in ``model.state_dict()`` (``"0.weight"``);
* nodes are named after the layer they come from (``"3/Conv"``);
* ``onnx.checker.check_model(..., full_check=True)`` passes before anything is returned or written.

A ``Sequential`` or a functional ``Model`` (with ``Add``/``Concat`` merges, nested models) is
walked in its topological order; each layer is converted by the converter registered for its
class (:mod:`learnflux.exchange.onnx_layers`). A layer without one raises a
:class:`~learnflux.errors.ConfigError` naming it and its path in the model. Export imports
``onnx`` (never torch); running the graph is ONNX Runtime's business (``pip install
'learnflux[onnx]'`` brings both).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import numpy as np

from ..core.layer import Layer
from ..core.model import Model, Sequential
from ..errors import ConfigError, LearnfluxError
from ..files.io import PathLike, atomic_write
from ..layers.input import Input
from ..training.summary import _shape_of
from ..version import __version__
from . import onnx_attention, onnx_layers, onnx_recurrent  # noqa: F401  (register the built-in converters)
from .onnx_graph import CONVERTERS, OPSET, OnnxGraph, lookup

ShapeLike = Union[int, Sequence[int]]


def _where(path: str) -> str:
    return f"'{path}'" if path else "the top level"


def _walks(layer: Layer) -> bool:
    """A model whose graph is walked layer by layer (its own ``forward`` is Model's)."""
    return isinstance(layer, Model) and type(layer).forward in (Model.forward, Sequential.forward)


def _entry(layer: Layer, k: int = 0) -> Layer:
    """The innermost layer that reads input ``k`` of ``layer`` (through nested models)."""
    while _walks(layer):
        layer = layer._entry_layers[k]
        k = 0
    return layer


def _n_inputs(model: Layer) -> int:
    return model.n_model_inputs if _walks(model) else 1


def _input_shapes(model: Layer, input_shape: Any) -> list[tuple[int, ...]]:
    """The per-sample shape of each model input: ``input_shape`` (one shape, or a list of them
    for a model with several inputs), checked against the model's sized ``Input`` layers, or
    taken from them."""
    n = _n_inputs(model)
    declared = []
    for k in range(n):
        entry = _entry(model, k)
        shape = entry.shape if isinstance(entry, Input) else None
        declared.append(tuple(shape) if shape is not None and None not in shape else None)
    if input_shape is None:
        if None in declared:
            k = declared.index(None)
            which = "" if n == 1 else f" {k}"
            raise ConfigError(
                f"to_onnx: the per-sample shape of model input{which} is unknown (no Input layer of "
                "known shape reads it); give it: to_onnx(model, input_shape=(1, 28, 28)) / "
                "learnflux export --input-shape 1,28,28"
            )
        return declared
    if isinstance(input_shape, (int, np.integer)):
        input_shape = (input_shape,)
    shapes = list(input_shape) if n > 1 else [input_shape]
    if n > 1 and (len(shapes) != n or not all(isinstance(s, (tuple, list)) for s in shapes)):
        raise ConfigError(f"to_onnx: the model has {n} inputs; give input_shape as a list of {n} shapes")
    out = []
    for k, shape in enumerate(shapes):
        shape = (shape,) if isinstance(shape, (int, np.integer)) else shape
        if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1 for s in shape):
            raise ConfigError(f"to_onnx: input_shape {tuple(shape)!r}: expected positive integers")
        shape = tuple(int(s) for s in shape)
        if declared[k] is not None and declared[k] != shape:
            raise ConfigError(
                f"to_onnx: input_shape {shape} differs from the model's Input layer, {declared[k]}"
            )
        out.append(shape)
    return out


def _convert(g: OnnxGraph, layer: Layer, inputs: list[str], shapes: list[tuple], path: str) -> tuple:
    """Add the nodes of ``layer`` (at ``path`` in the model); return its output's name and
    per-sample shape."""
    if _walks(layer) and lookup(layer) is None:
        prefix = f"{path}." if path else ""
        values: list[tuple] = []
        for i, (child, plan) in enumerate(zip(layer.layers, layer._plan, strict=True)):
            picked = [values[j] if j >= 0 else (inputs[-1 - j], shapes[-1 - j]) for j in plan]
            names = [name for name, _ in picked]
            values.append(_convert(g, child, names, [s for _, s in picked], f"{prefix}{i}"))
        return values[-1]
    fn = lookup(layer)
    if fn is None:
        known = sorted(cls.__name__ for cls in CONVERTERS)
        raise ConfigError(
            f"to_onnx: {type(layer).__name__} at {_where(path)} ({layer.summary_name()}) has no ONNX "
            f"converter; layers that export: {', '.join(known)}, and Sequential / Model graphs of "
            "them (a converter for another layer: learnflux.exchange.onnx_graph.converter)"
        )
    try:
        out_shape = _shape_of(layer, shapes)
    except (LearnfluxError, ValueError, TypeError, IndexError) as exc:
        shown = shapes[0] if len(shapes) == 1 else shapes
        raise ConfigError(
            f"to_onnx: {type(layer).__name__} at {_where(path)} cannot take input of shape {shown}: {exc}"
        ) from None
    outer, g.scope = g.scope, path
    try:
        name = fn(g, layer, inputs, shapes)
    finally:
        g.scope = outer
    return name, out_shape


def to_onnx(
    model: Layer,
    input_shape: Optional[Any] = None,
    *,
    input_names: Optional[Sequence[str]] = None,
    output_name: str = "output",
) -> Any:
    """The ONNX graph (an ``onnx.ModelProto``) of ``model``'s inference phase.

    Args:
        model: a ``Sequential``, a functional ``Model`` or one layer.
        input_shape: the per-sample input shape (no batch axis), e.g. ``(1, 28, 28)``, or a
            list of them for a model with several inputs. Default: the shape of the model's
            ``Input`` layer(s); required without one.
        input_names: the graph's input names (default ``["input"]``, or ``["input_0", ...]``).
        output_name: the graph's output name (default ``"output"``).

    Raises:
        ConfigError: a layer without an ONNX converter (naming it and its path), an unknown
            input shape, or ``onnx`` not installed.
    """
    if not isinstance(model, Layer):
        raise ConfigError(f"to_onnx: expects a learnflux layer or model, got {type(model).__name__}")
    shapes = _input_shapes(model, input_shape)
    n = len(shapes)
    names = (
        list(input_names)
        if input_names is not None
        else (["input"] if n == 1 else [f"input_{k}" for k in range(n)])
    )
    if len(names) != n or not all(isinstance(s, str) and s for s in names):
        raise ConfigError(f"to_onnx: input_names must be {n} non-empty strings, got {input_names!r}")
    g = OnnxGraph()
    tensor = g.onnx.TensorProto
    inputs = []
    for k, (name, shape) in enumerate(zip(names, shapes, strict=True)):
        g.reserve(name)
        elem = tensor.INT64 if _entry(model, k).input_kind == "index" else tensor.FLOAT
        inputs.append(g.value_info(name, elem, shape))
    g.reserve(output_name)
    last, out_shape = _convert(g, model, names, shapes, "")
    producer = next((node for node in g.nodes if last in node.output), None)
    if producer is None:  # the model is the identity (Input, Dropout): one node to name the output
        g.op("Identity", [last], output=output_name)
    else:
        producer.output[list(producer.output).index(last)] = output_name
    doc = f"{model.summary_name()}, inference phase, exported by learnflux {__version__} (opset {OPSET})"
    proto = g.model(inputs, [g.value_info(output_name, tensor.FLOAT, out_shape)], "learnflux", doc)
    proto.producer_version = __version__
    return proto


def export_onnx(model: Layer, path: PathLike, input_shape: Optional[Any] = None, **kwargs: Any) -> Any:
    """Write :func:`to_onnx` of ``model`` to ``path`` (atomically: a crash while writing leaves
    the previous file intact); return the ``onnx.ModelProto``. Same arguments as :func:`to_onnx`."""
    proto = to_onnx(model, input_shape, **kwargs)
    data = proto.SerializeToString()
    atomic_write(path, lambda fh: fh.write(data))
    return proto


__all__ = ["export_onnx", "to_onnx"]
