"""Models: graphs of layers run in topological order.

Forward: every node computes ``o = L(inputs)`` once its inputs are known.
Backward: δ flows in reverse order; when one output feeds several layers (fan-out), its δ is the
**sum** of the δ coming back from each of them (the chain rule over every path).

Two ways to build one:

* ``Sequential(layer1, layer2, ...)``: a chain.
* The functional way, for graphs: ``x = Input(4); h = Linear(4, 4)(x); y = Add()([x, h]);
  model = Model(x, y)``: calling a layer on a node (instead of an array) records an edge.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional, Union

import numpy as np

from ..errors import ConfigError, PhaseError, ShapeError
from ..numbers import DTypeLike, resolve_dtype
from .layer import LAYER_REGISTRY, Layer, layer_class, prepare_input, register_layer
from .node import Node, symbolic_inputs
from .param import Param


def serialize_layer(layer: Layer) -> dict[str, Any]:
    """``{"class": "Linear", "config": {...}}`` (JSON-serialisable)."""
    return {"class": type(layer).__name__, "config": layer.get_config()}


def deserialize_layer(spec: dict[str, Any]) -> Layer:
    name = spec.get("class")
    cls = layer_class(name) if isinstance(name, str) else None
    if cls is None:
        raise ConfigError(f"unknown layer class {name!r}; known: {sorted(LAYER_REGISTRY)}")
    return cls.from_config(dict(spec.get("config", {})))


@register_layer
class Model(Layer):
    """A graph of layers with one or more inputs and one output.

    ``inputs``: the ``Input`` layer(s) (or nodes) where data enters. ``outputs``: the node whose
    value the model returns. Layers are numbered in topological order; ``model.layers[i]`` is
    named ``str(i)`` and its parameters ``"i.weight"``, ``"i.bias"``...
    """

    supports_exact = True
    n_inputs = None

    def __init__(self, inputs: Any, outputs: Node) -> None:
        super().__init__()
        input_nodes = symbolic_inputs(inputs)
        if input_nodes is None:
            raise ConfigError("Model(inputs, outputs): inputs must be Input layers or nodes")
        out_node = symbolic_inputs(outputs)
        if out_node is None or len(out_node) != 1:
            raise ConfigError("Model(inputs, outputs): outputs must be one node")
        order = _topological_order(out_node[0])
        position = {id(node): i for i, node in enumerate(order)}
        missing = [n for n in input_nodes if id(n) not in position]
        if missing:
            raise ConfigError(f"Model: input {missing[0]!r} does not lead to the output")
        self._build(
            [node.layer for node in order],
            [
                tuple(position[id(src)] for src in node.inbound)
                if node.inbound
                else (-1 - input_nodes.index(node),)
                for node in order
            ],
            single_input=len(input_nodes) == 1,
        )
        for node in order:
            if not node.inbound and node not in input_nodes:
                raise ConfigError(f"Model: {node.layer.describe()} is a source but not an input")

    # ------------------------------------------------------------------ construction
    def _build(self, layers: list[Layer], plan: list[tuple[int, ...]], single_input: bool) -> None:
        seen: set[int] = set()
        for layer in layers:
            if id(layer) in seen:
                raise ConfigError(f"{layer.describe()} appears twice in the model; create a new one")
            seen.add(id(layer))
        self.layers: list[Layer] = layers
        self._plan = plan
        self._single_input = single_input
        self.n_inputs = 1 if single_input else None  # a single-input model nests in a Sequential
        self.n_model_inputs = max(-j for ins in plan for j in ins if j < 0)
        for i, layer in enumerate(layers):
            layer.name = str(i)
        # A model computes in one kind of number: the first layer's unless it is float32 and
        # another layer was already converted.
        self.dtype = next((l.dtype for l in layers if l.dtype != np.float32), layers[0].dtype)
        # A node's input δ is worth computing only if something upstream learns (or the
        # caller asked for the model input's δ).
        upstream_learns = []
        for layer, ins in zip(layers, plan, strict=True):
            learns = bool(layer.parameters()) or any(j >= 0 and upstream_learns[j] for j in ins)
            upstream_learns.append(learns)
        self._input_delta_useful = [any(j >= 0 and upstream_learns[j] for j in ins) for ins in plan]
        reaches_input: list[bool] = []
        for ins in plan:
            reaches_input.append(any(j < 0 or reaches_input[j] for j in ins))
        self._reaches_input = reaches_input
        # the first layer reading each model input (one pass: building is linear in the layers)
        entry: dict[int, Layer] = {}
        for layer, ins in zip(layers, plan, strict=True):
            for j in ins:
                if j < 0 and -1 - j not in entry:
                    entry[-1 - j] = layer
        missing = [k for k in range(self.n_model_inputs) if k not in entry]
        if missing:
            raise ConfigError(f"Model: input {missing[0]} of {self.n_model_inputs} is read by no layer")
        self._entry_layers = [entry[k] for k in range(self.n_model_inputs)]
        # After layer i runs, the outputs listed in _release_after[i] have no consumer left: the
        # forward pass drops them at once (layers that need them for backward keep a reference).
        last_use = {j: i for i, ins in enumerate(plan) for j in ins if j >= 0}
        release: list[list[int]] = [[] for _ in layers]
        for j, i_last in last_use.items():
            if j != len(layers) - 1:
                release[i_last].append(j)
        self._release_after: list[tuple[int, ...]] = [tuple(r) for r in release]
        self.record_intermediates = False
        self.last_outputs: Optional[list[Any]] = None
        self.last_deltas: Optional[list[Any]] = None
        if any(layer.dtype != self.dtype for layer in layers):
            self.astype(self.dtype)

    # ------------------------------------------------------------------ forward / backward
    def forward(self, x: Any) -> Any:
        """Run every layer once, in topological order; return the output node's value."""
        xs = [x] if self._single_input else list(x)
        if len(xs) != self.n_model_inputs:
            raise ShapeError(f"{self.describe()}: expects {self.n_model_inputs} inputs, got {len(xs)}")
        xs = [prepare_input(xi, entry) for xi, entry in zip(xs, self._entry_layers, strict=True)]
        values: list[Any] = [None] * len(self.layers)
        keep = self.record_intermediates and self.training
        for i, (layer, ins) in enumerate(zip(self.layers, self._plan, strict=True)):
            if len(ins) == 1:
                j = ins[0]
                values[i] = layer.forward(values[j] if j >= 0 else xs[-1 - j])
            else:
                values[i] = layer.forward([values[j] if j >= 0 else xs[-1 - j] for j in ins])
            if not keep:
                for j in self._release_after[i]:
                    values[j] = None
        if self.record_intermediates and self.training:
            self.last_outputs = values
        return values[-1]

    def backward(self, delta_out: Any, need_input_delta: bool = True, accumulate: bool = False) -> Any:
        """Propagate ``δ = ∂Loss/∂output`` back through every layer.

        Each parameter's ``grad`` receives the gradient of this batch. With ``accumulate=True``
        the gradient is **added** to the one already there (gradient accumulation over several
        batches; call ``optimizer.zero_grad()`` or ``model.zero_grad()`` to start again).
        Returns δ for the model input (a list when the model has several inputs), or None when
        ``need_input_delta`` is False.
        """
        if not self.training:
            raise PhaseError(f"{self.describe()}: backward called in the inference phase; call model.train()")
        if isinstance(delta_out, np.ndarray) and delta_out.dtype.kind == "f" and self.dtype.kind == "f":
            # δ in the model's dtype (a float64 δ for a float32 model: gradients stay float32)
            delta_out = delta_out.astype(self.dtype, copy=False)
        self._set_accumulate(accumulate)
        return self._propagate(delta_out, need_input_delta)

    def _propagate(self, delta_out: Any, need_input_delta: bool) -> Any:
        """The backward pass itself (nested models are driven through this, so that the
        outermost ``backward`` call alone decides whether gradients accumulate)."""
        deltas: list[Any] = [None] * len(self.layers)
        deltas[-1] = delta_out
        input_deltas: list[Any] = [None] * self.n_model_inputs
        folds, relu_mask = self._relu_folds(), None
        for i in range(len(self.layers) - 1, -1, -1):
            d = deltas[i]
            if d is None:
                continue
            if not self.record_intermediates:
                deltas[i] = None  # free each δ as soon as it is used: peak memory is one layer's
            ins = self._plan[i]
            need = self._input_delta_useful[i] or (need_input_delta and self._reaches_input[i])
            layer = self.layers[i]
            if folds and folds[i] == "relu":  # its mask goes into the backward of the layer before
                relu_mask = layer._saved_for(d)
                deltas[i - 1] = d
                continue
            if folds and folds[i] == "fold_prev":  # this layer's backward and the ReLU's before it
                relu = self.layers[i - 1]
                shape = layer._saved_for(d)[1]  # the input's shape, δ checked
                mask = relu._saved_for_shape(shape)  # the ReLU's mask, checked against that shape
                # the result is δ for the ReLU's input: routed as the ReLU's own would be (the
                # ReLU, "relu_next", then finds no δ and is skipped)
                r = i - 1
                ins = self._plan[r]
                need = self._input_delta_useful[r] or (need_input_delta and self._reaches_input[r])
                d_in = layer.backward_after_relu(d, mask, need)
            elif isinstance(layer, Model):
                d_in = layer._propagate(d, need)
            elif folds and folds[i] == "fold":
                d_in = layer.backward_relu(d, relu_mask, need)
                relu_mask = None
            else:
                d_in = layer.backward(d, need)
            if not need:
                continue
            if len(ins) == 1:
                d_in = (d_in,)
            elif not isinstance(d_in, (list, tuple)) or len(d_in) != len(ins):
                # one δ per input (None for an input that takes no δ, e.g. indices): a layer
                # returning fewer would leave the other branches without a gradient
                got = len(d_in) if isinstance(d_in, (list, tuple)) else type(d_in).__name__
                raise ShapeError(f"{layer.describe()}: backward returned {got} δ for {len(ins)} inputs")
            for j, dj in zip(ins, d_in, strict=True):
                if dj is None:
                    continue
                if j >= 0:
                    deltas[j] = dj if deltas[j] is None else deltas[j] + dj
                else:
                    k = -1 - j
                    input_deltas[k] = dj if input_deltas[k] is None else input_deltas[k] + dj
        if self.record_intermediates:
            self.last_deltas = deltas
            self.last_input_deltas = input_deltas
        if not need_input_delta:
            return None
        return input_deltas[0] if self._single_input else input_deltas

    def _relu_folds(self) -> tuple[str, ...]:
        """Per layer, ``"fold"`` where its backward pass also runs the ``ReLU`` after it and
        ``"relu"`` for that ReLU; ``"fold_prev"`` where it also runs the ``ReLU`` before it and
        ``"relu_next"`` for that one (see ``Sequential``); empty: every layer runs its own
        backward."""
        return ()

    def _set_accumulate(self, accumulate: bool) -> None:
        if getattr(self, "_accumulating", False) != accumulate:
            for p in self.parameters():
                p.accumulate = accumulate
            self._accumulating = accumulate

    def __call__(self, x: Any) -> Any:
        nodes = symbolic_inputs(x)
        if nodes is not None:
            return Node.create(self, nodes)
        return self.forward(x)

    def summary(self, input_shape: Any = None) -> Any:
        """The table of layers, output shapes, parameter counts and FLOPs per sample (print
        it, as Keras's ``model.summary()``); see :func:`learnflux.summary`. ``input_shape`` is the
        per-sample shape, needed unless the model starts with a sized ``Input``."""
        from ..training.summary import summary

        return summary(self, input_shape)

    def predict(self, x: Any, batch_size: Optional[int] = 256) -> Any:
        """Forward pass in the inference phase (the phase is restored afterwards),
        ``batch_size`` samples at a time (``None``: all at once)."""
        from ..training.train import predict

        return predict(self, x, batch_size=batch_size)

    def fit(self, x: Any, y: Any = None, *args: Any, **kwargs: Any) -> Any:
        """Train the model: ``fit(x, y, epochs=1, batch_size=32, loss=..., optimizer=...,
        validation_data=None, callbacks=(), ...)``; see :func:`learnflux.train.fit`.
        Returns a ``History``."""
        from ..training.train import fit

        return fit(self, x, y, *args, **kwargs)

    def evaluate(self, x: Any, y: Any = None, *args: Any, **kwargs: Any) -> dict[str, float]:
        """Loss and metrics over ``(x, y)``; see :func:`learnflux.train.evaluate`."""
        from ..training.train import evaluate

        return evaluate(self, x, y, *args, **kwargs)

    # ------------------------------------------------------------------ parameters
    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Param]]:
        for i, layer in enumerate(self.layers):
            yield from layer.named_parameters(f"{prefix}{i}.")

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        for i, layer in enumerate(self.layers):
            yield from layer.named_buffers(f"{prefix}{i}.")

    def named_buffer_owners(self, prefix: str = "") -> Iterator[tuple[str, tuple[Layer, str]]]:
        for i, layer in enumerate(self.layers):
            yield from layer.named_buffer_owners(f"{prefix}{i}.")

    # ------------------------------------------------------------------ phases and numbers
    def set_phase(self, training: bool) -> None:
        self.training = training
        for layer in self.layers:
            layer.set_phase(training)
        if not training:
            self.last_outputs = self.last_deltas = None

    def astype(self, dtype: DTypeLike) -> Model:
        """Convert every layer to float32, float64 or ``"exact"``; says which layer cannot."""
        target = resolve_dtype(dtype)
        for layer in self.layers:
            layer.astype(target)
        self.dtype = target
        self._accumulating = False
        return self

    def clear_cache(self) -> None:
        for layer in self.layers:
            layer.clear_cache()

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        return {
            "nodes": [
                {"layer": serialize_layer(layer), "inbound": list(ins)}
                for layer, ins in zip(self.layers, self._plan, strict=True)
            ]
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Model:
        model = cls.__new__(cls)
        Layer.__init__(model)
        layers = [deserialize_layer(n["layer"]) for n in config["nodes"]]
        plan = [tuple(int(j) for j in n["inbound"]) for n in config["nodes"]]
        n_inputs = max(-j for ins in plan for j in ins if j < 0)
        model._build(layers, plan, single_input=n_inputs == 1)
        return model

    def summary_name(self) -> str:
        return f"{type(self).__name__}({len(self.layers)} layers)"

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}("]
        for i, layer in enumerate(self.layers):
            lines.append(f"  ({i}) {layer!r}")
        lines.append(")")
        return "\n".join(lines)


@register_layer
class Sequential(Model):
    """A chain of layers: ``Sequential(Input(3), Linear(3, 1, bias=False), ReLU())``.

    The first layer may be an ``Input`` (which checks the per-sample shape) or any layer.
    ``Sequential`` models nest: a Sequential is itself a layer.
    """

    def __init__(self, *layers: Layer) -> None:
        Layer.__init__(self)
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        if not layers:
            raise ConfigError("Sequential() needs at least one layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise ConfigError(f"Sequential: item {i} is {layer!r}, not a layer")
            if layer.n_inputs != 1:
                raise ConfigError(f"Sequential: {layer!r} (item {i}) needs several inputs; use Model")
        self._build(list(layers), [(i - 1,) for i in range(len(layers))], single_input=True)

    def _entry(self) -> Layer:
        """The layer the model's input is checked against (:func:`prepare_input`): the first
        one, or after a leading ``Input`` (which passes anything on) an index layer, so that
        ``Sequential(Input((T,)), Embedding(...), ...)`` takes integer ids uncast."""
        first = self.layers[0]
        if type(first).__name__ == "Input" and len(self.layers) > 1 and self.layers[1].input_kind == "index":
            return self.layers[1]
        return first

    @property  # type: ignore[override]
    def input_kind(self) -> str:  # the entry layer's: "index" for a model that starts with ids
        return self._entry().input_kind

    #: run a layer with ``forward_relu`` (Conv2d, Linear, the batch norms) and the ReLU after it as one
    #: kernel call when nothing records the pre-activation (see :meth:`forward`; backward:
    #: :meth:`_relu_folds`)
    fuse_relu = True

    def forward(self, x: Any) -> Any:
        """Each layer on the output of the one before. While a trace records the outputs
        (``record_intermediates`` in the training phase) every layer runs alone; otherwise a
        layer with ``forward_relu`` (``Conv2d``, ``Linear``, the batch norms) followed by a
        ``ReLU`` runs as one call (the ReLU layer taking its output and mask with
        ``ReLU.forward_fused``): the same values, the pre-activation never stored (measured in
        docs/performance.md)."""
        out = prepare_input(x, self._entry())
        if self.record_intermediates and self.training:
            values = []
            for layer in self.layers:
                out = layer.forward(out)
                values.append(out)
            self.last_outputs = values
            return out
        layers, fused = self.layers, self._relu_fusions()
        i = 0
        while i < len(layers):
            if fused[i]:
                out = layers[i + 1].forward_fused(*layers[i].forward_relu(out))
                i += 2
            else:
                out = layers[i].forward(out)
                i += 1
        return out

    def _relu_fusions(self) -> tuple[bool, ...]:
        """``fused[i]``: layer ``i`` and the ReLU after it run as one call. Only where both
        layers' ``forward`` is the one defined beside ``forward_relu`` / ``forward_fused`` (a
        subclass with another ``forward``, e.g. ``Conv1d``, runs alone)."""
        layers = self.layers
        # the decision depends on the layers' types alone: keyed on them, so that a model whose
        # layers were replaced (look.inference_twin swaps batch norms out) decides again
        key = (tuple(map(type, layers)), self.fuse_relu)
        cached = self.__dict__.get("_fusions")
        if cached is not None and cached[0] == key:
            return cached[1]
        fused = tuple(
            self.fuse_relu
            and i + 1 < len(layers)
            and _defines(type(layer), "forward_relu", "forward")
            and _defines(type(layers[i + 1]), "forward_fused", "forward")
            for i, layer in enumerate(layers)
        )
        self._fusions = (key, fused)
        return fused

    def _relu_folds(self) -> tuple[str, ...]:
        """The backward counterpart of :meth:`_relu_fusions`: a layer with ``backward_relu``
        (``BatchNorm2d``) followed by a ``ReLU`` runs both backward passes as one call
        (``backward_relu(δ, mask)``: the ReLU's mask read in the layer's own pass, the same
        values as ``ReLU.backward`` then ``backward``): ``"fold"`` for the layer, ``"relu"`` for
        the ReLU. A ``ReLU`` followed by a layer with ``backward_after_relu`` (``MaxPool2d``)
        runs as one call too, the other way round (``backward_after_relu(δ, mask)``: the layer's
        δx ⊙ the ReLU's mask in the layer's own write, the same values as ``backward`` then
        ``ReLU.backward``): ``"relu_next"`` for the ReLU (skipped), ``"fold_prev"`` for the
        layer. A ReLU that could take part in both (BatchNorm2d → ReLU → MaxPool2d) folds into
        the batch norm; the pool then runs alone. Only where the layers' ``backward`` is the one
        defined beside these methods. Off while a trace records the δ of every layer, and with
        ``fuse_relu = False``."""
        if self.record_intermediates or not self.fuse_relu:
            return ()
        layers = self.layers
        key = tuple(map(type, layers))
        cached = self.__dict__.get("_folds")
        if cached is not None and cached[0] == key:
            return cached[1]
        folds = [""] * len(layers)
        for i in range(len(layers) - 1):
            if (
                not folds[i]
                and _defines(type(layers[i]), "backward_relu", "backward")
                and _defines(type(layers[i + 1]), "forward_fused", "backward")
            ):
                folds[i], folds[i + 1] = "fold", "relu"
            elif (
                not folds[i]
                and _defines(type(layers[i]), "forward_fused", "backward")
                and _defines(type(layers[i + 1]), "backward_after_relu", "backward")
            ):
                folds[i], folds[i + 1] = "relu_next", "fold_prev"
        result = tuple(folds) if any(folds) else ()
        self._folds = (key, result)
        return result

    def __getitem__(self, index: int) -> Layer:
        """``model[i]``: the i-th layer (negative indices count from the end)."""
        if isinstance(index, slice):
            # a layer belongs to one model (its name, its place in error messages and traces)
            raise TypeError(
                "Sequential cannot be sliced: a layer belongs to one model. For a model made of "
                "some of these layers with their weights, build it from copies: "
                "lf.Sequential(*[copy.deepcopy(l) for l in model.layers[a:b]])"
            )
        return self.layers[index]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def get_config(self) -> dict[str, Any]:
        return {"layers": [serialize_layer(layer) for layer in self.layers]}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Sequential:
        return cls(*[deserialize_layer(spec) for spec in config["layers"]])

    def append(self, layer: Layer) -> Sequential:
        """Add a layer at the end (returns the model)."""
        self._build(self.layers + [layer], [(i - 1,) for i in range(len(self.layers) + 1)], True)
        return self


def _topological_order(output: Node) -> list[Node]:
    order: list[Node] = []
    state: dict[int, int] = {}  # 1 = visiting, 2 = done
    stack: list[tuple[Node, bool]] = [(output, False)]
    while stack:
        node, expanded = stack.pop()
        key = id(node)
        if expanded:
            state[key] = 2
            order.append(node)
            continue
        if state.get(key) == 2:
            continue
        if state.get(key) == 1:
            raise ConfigError(f"Model: the graph has a cycle through {node.layer.describe()}")
        state[key] = 1
        stack.append((node, True))
        for src in reversed(node.inbound):
            if state.get(id(src)) != 2:
                stack.append((src, False))
    return order


ModelLike = Union[Model, Layer]


def _defines(cls: type, method: str, partner: str) -> bool:
    """Whether ``cls`` has ``method`` and its ``partner`` method is the one of the class defining
    ``method`` (a subclass that overrides ``partner`` alone does not get the fused path)."""
    owner = next((c for c in cls.__mro__ if method in c.__dict__), None)
    return owner is not None and getattr(cls, partner) is owner.__dict__.get(partner)
