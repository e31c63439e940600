"""The pieces an ONNX converter works with: the graph being built and the registry of converters.

A converter turns one learnflux layer into ONNX nodes. It is a function
``convert(g, layer, inputs, shapes) -> str``: ``g`` is the :class:`OnnxGraph` under
construction, ``inputs`` the names of the tensors the layer reads (one per input), ``shapes``
their per-sample shapes (no batch axis, known at export time); it adds nodes with ``g.op`` and
weights with ``g.weight`` and returns the name of the tensor holding the layer's output. It is
registered for one or more layer classes with :func:`converter`::

    @converter(MyLayer)
    def my_layer(g, layer, inputs, shapes):
        return g.op("Relu", inputs)

The registry is keyed by class (never by name); a subclass that does not override ``forward``
uses its base class's converter, one that does needs its own (it computes something else).

The ``onnx`` package is imported only when a graph is built, so ``import learnflux`` never
imports it.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np

from ..errors import ConfigError

#: the ONNX operator set the exported graphs use (LayerNormalization appeared in opset 17)
OPSET = 17
#: the ONNX IR version written in the file (the one that goes with opset 17: readable by ONNX
#: Runtime 1.13 and later, and by most other runtimes)
IR_VERSION = 8

Converter = Callable[["OnnxGraph", Any, list[str], list[tuple]], str]

#: layer class -> converter
CONVERTERS: dict[type, Converter] = {}


def converter(*classes: type) -> Callable[[Converter], Converter]:
    """Register the decorated function as the ONNX converter of ``classes``."""

    def register(fn: Converter) -> Converter:
        for cls in classes:
            CONVERTERS[cls] = fn
        return fn

    return register


def lookup(layer: Any) -> Optional[Converter]:
    """The converter of ``type(layer)``, or of the nearest base class when the subclass keeps its
    base's ``forward`` (a subclass that computes something else is never converted silently)."""
    kind = type(layer)
    if kind in CONVERTERS:
        return CONVERTERS[kind]
    for base in kind.__mro__[1:]:
        if base in CONVERTERS and getattr(kind, "forward", None) is getattr(base, "forward", None):
            return CONVERTERS[base]
    return None


def import_onnx() -> Any:
    """The ``onnx`` package, or a :class:`ConfigError` saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise ConfigError(
            "ONNX export needs the onnx package, which is not installed: "
            "pip install 'learnflux[onnx]' (onnx and onnxruntime)"
        ) from None
    return onnx


class OnnxGraph:
    """An ONNX graph under construction: nodes in topological order, initializers (weights and
    constants), and the scope (the layer's path in the model) that names the nodes."""

    def __init__(self) -> None:
        self.onnx = import_onnx()
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._names: set[str] = set()  # tensors
        self._node_names: set[str] = set()
        self.scope = ""

    # ------------------------------------------------------------------ names
    def _unique(self, taken: set[str], hint: str) -> str:
        base = f"{self.scope}/{hint}" if self.scope else hint
        name, k = base, 0
        while name in taken:
            k += 1
            name = f"{base}_{k}"
        taken.add(name)
        return name

    def fresh(self, hint: str) -> str:
        """A tensor name not used yet, ``<scope>/<hint>`` (``2/shape``, ``2/shape_1``...)."""
        return self._unique(self._names, hint)

    def reserve(self, name: str) -> None:
        """Claim the tensor name ``name`` (an input, an output, a weight)."""
        if name in self._names:
            raise ConfigError(f"to_onnx: the name {name!r} is used twice")
        self._names.add(name)

    # ------------------------------------------------------------------ nodes and tensors
    def op(self, op_type: str, inputs: Sequence[str], output: Optional[str] = None, **attrs: Any) -> str:
        """Add one node ``op_type(inputs)`` with attributes ``attrs``, named ``<scope>/<op_type>``
        (PyTorch's style: ``3/Conv``); return its output's name (``output`` if given, else
        ``<node name>_output_0``). An empty string in ``inputs`` is an omitted optional input."""
        node_name = self._unique(self._node_names, op_type)
        if output is None:
            output = node_name + "_output_0"
            self.reserve(output)
        node = self.onnx.helper.make_node(op_type, list(inputs), [output], name=node_name, **attrs)
        self.nodes.append(node)
        return output

    def weight(self, key: str, value: Any) -> str:
        """A float32 initializer holding ``value`` (any float or exact array, rounded to float32),
        named as in the model's ``state_dict``: the layer's path and ``key`` (``"3.weight"``)."""
        name = f"{self.scope}.{key}" if self.scope else key
        self.reserve(name)
        arr = np.asarray(value, dtype=np.float64 if np.asarray(value).dtype == object else None)
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        self.initializers.append(self.onnx.numpy_helper.from_array(arr, name))
        return name

    def const(self, value: Any, hint: str, dtype: Any = np.float32) -> str:
        """A constant initializer (a shape, an axis list, a scalar) with a fresh name."""
        name = self.fresh(hint)
        arr = np.ascontiguousarray(np.asarray(value, dtype=dtype))
        self.initializers.append(self.onnx.numpy_helper.from_array(arr, name))
        return name

    # ------------------------------------------------------------------ the model
    def value_info(self, name: str, elem: int, per_sample: Sequence[int]) -> Any:
        """A tensor declaration ``name: elem[batch, *per_sample]`` (the batch axis is dynamic)."""
        return self.onnx.helper.make_tensor_value_info(name, elem, ["batch", *[int(s) for s in per_sample]])

    def model(self, inputs: list[Any], outputs: list[Any], graph_name: str, doc: str) -> Any:
        """The ``ModelProto`` of everything added, checked by ``onnx.checker``."""
        helper = self.onnx.helper
        graph = helper.make_graph(self.nodes, graph_name, inputs, outputs, self.initializers)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="learnflux",
            doc_string=doc,
        )
        model.ir_version = IR_VERSION
        self.onnx.checker.check_model(model, full_check=True)
        return model


__all__ = ["CONVERTERS", "IR_VERSION", "OPSET", "OnnxGraph", "converter", "lookup"]
