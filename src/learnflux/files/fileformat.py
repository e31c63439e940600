"""The checks a learnflux file's header passes before anything it describes is built.

A header is JSON text stored as the ``__learnflux__`` member of the archive. Reading it:

* :func:`parse_header`: at most :data:`MAX_HEADER_BYTES` of UTF-8, no ``NaN``/``Infinity``, no
  number of more than :data:`MAX_DIGITS` digits, no repeated key, at most
  :data:`MAX_CONTAINERS` objects and lists (counted before parsing), nesting bounded;
* :func:`plan_model`: walks the model description (``{"class", "config"}``, nested
  ``Sequential`` layers and ``Model`` nodes) and checks, for every layer, that its class is a
  concrete layer (not ``Layer`` or ``Activation``, nor a private base class), that every argument
  is one its constructor takes with a value of the type its signature declares, that sizes are
  positive and other integers in range, that graph references point to earlier nodes and that
  every model input is used; the layers are counted (:data:`MAX_LAYERS`) and nested at most
  :data:`MAX_DEPTH` deep;
* for the built-in layers that hold weights, the shapes their arguments imply are compared with
  the arrays the archive declares **before** the layer is built, so no argument can make the
  loader allocate more than the file really holds (each layer's ``state_shapes``, read through
  :class:`Arguments`);
* :func:`build` then constructs the layers (linear in their number).

Every failure is a :class:`~learnflux.errors.FileFormatError` naming the file, the key path in
the header (``model.config.layers[3].config.in_features``) and the value at fault.
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
import json
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, NoReturn, Optional, Union

from ..core.layer import LAYER_REGISTRY, Layer, layer_class
from ..core.model import Model, Sequential
from ..errors import FileFormatError, LearnfluxError

#: the size of a header (a model of 100,000 layers takes about 6 MB)
MAX_HEADER_BYTES = 8 << 20
#: JSON objects and lists in a header, counted before it is parsed
MAX_CONTAINERS = 1_000_000
#: digits of one integer in a header (a random generator's state holds 128-bit integers)
MAX_DIGITS = 100
#: layers in a model, nested ones included
MAX_LAYERS = 100_000
#: models nested in models
MAX_DEPTH = 32
#: items of a list argument (a kernel size, a shape)
MAX_LIST = 32
#: the length of a string argument
MAX_STRING = 256
#: the largest size (features, channels...) and the largest other integer argument
MAX_SIZE = 2**31 - 1
MAX_INT = 1 << 16
#: Conv2d: zero padding beyond the kernel's reach only adds rows of zeros; it is refused above
#: ``max(MAX_PADDING, dilation·(kernel − 1))`` and dilation above ``MAX_DILATION``
MAX_PADDING = 64
MAX_DILATION = 1024
#: inputs of a functional model
MAX_INPUTS = 1024


# ---------------------------------------------------------------------------- JSON
def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a learnflux file may hold")


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise ValueError(f"an integer of {len(text)} digits (at most {MAX_DIGITS})")
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > 64:
        raise ValueError(f"a number written with {len(text)} characters (at most 64)")
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} overflows a float")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key!r} appears twice in one object")
        out[key] = value
    return out


def parse_header(raw: bytes, path: str) -> dict[str, Any]:
    """The header's JSON object, read with the limits above."""
    if len(raw) > MAX_HEADER_BYTES:
        raise FileFormatError(
            f"{path}: the header is {len(raw):,} bytes (at most {MAX_HEADER_BYTES:,} are read)"
        )
    layers = raw.count(b'"class"')  # a cheap bound before parsing: one per layer (and a few more)
    if layers > MAX_LAYERS + 1000:
        raise FileFormatError(
            f"{path}: the header describes about {layers:,} layers (at most {MAX_LAYERS:,})"
        )
    containers = raw.count(b"{") + raw.count(b"[")
    if containers > MAX_CONTAINERS:
        raise FileFormatError(
            f"{path}: the header holds {containers:,} objects and lists (at most {MAX_CONTAINERS:,})"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileFormatError(
            f"{path}: the header is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    try:
        header = json.loads(
            text,
            parse_constant=_refuse_constant,
            parse_int=_parse_int,
            parse_float=_parse_float,
            object_pairs_hook=_unique_keys,
        )
    except RecursionError:
        raise FileFormatError(f"{path}: the header is nested too deeply") from None
    except ValueError as exc:  # json.JSONDecodeError is a ValueError, as are the hooks' refusals
        raise FileFormatError(f"{path}: corrupt header ({exc})") from None
    if not isinstance(header, dict):
        raise FileFormatError(f"{path}: the header is {type(header).__name__}, not a JSON object")
    return header


# ---------------------------------------------------------------------------- helpers
def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _plain(value: Any, depth: int = 0) -> bool:
    """A JSON scalar, or a short list of them (what an ``Any`` argument may hold)."""
    if value is None or isinstance(value, (bool, float)):
        return True
    if _is_int(value):
        return abs(value) <= MAX_SIZE
    if isinstance(value, str):
        return len(value) <= MAX_STRING
    if isinstance(value, list) and depth < 2 and len(value) <= MAX_LIST:
        return all(_plain(v, depth + 1) for v in value)
    if isinstance(value, dict) and depth < 2 and len(value) <= MAX_LIST:
        return all(_plain(v, depth + 1) for v in value.values())
    return False


def _matches(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a constructor's type hint (a list stands for a tuple)."""
    if hint is Any:
        return _plain(value)
    origin = typing.get_origin(hint)
    if origin is Union or origin is getattr(types, "UnionType", None):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return _is_int(value)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str) and len(value) <= MAX_STRING
    sequence = hint in (tuple, list) or origin in (tuple, list, collections.abc.Sequence)
    if sequence:
        if not isinstance(value, list) or len(value) > MAX_LIST:
            return False
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        if origin is tuple and args and Ellipsis not in typing.get_args(hint) and len(value) != len(args):
            return False
        item = args[0] if args else Any
        return all(_matches(v, item) and not isinstance(v, list) for v in value)
    return False  # a Node, a Layer, a Generator...: never in a file


@functools.cache
def _signature(cls: type) -> tuple[Any, dict[str, Any]]:
    """``(parameters of cls.__init__, their type hints)``, computed once per class."""
    params = inspect.signature(cls.__init__).parameters
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # an annotation that does not resolve: accept any plain value
        hints = {}
    hints.pop("return", None)
    return params, hints


def _is_base_class_name(name: str) -> bool:
    """``name`` is a subclass of ``Layer`` in learnflux that is not registered (``Activation``,
    ``_BatchNorm``...): a base class."""
    todo, seen = list(Layer.__subclasses__()), set()
    while todo:
        cls = todo.pop()
        if cls.__name__ == name and cls.__module__.startswith("learnflux."):
            return True
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.add(sub)
                todo.append(sub)
    return False


#: The layers learnflux.distributed registers (``import learnflux`` does not import that package):
#: a file naming one imports it first, so a model trained with SyncBatchNorm loads without
#: ``import learnflux.distributed`` (importing it imports no MPI; tests/test_floors.py lists this
#: upward call, tests/test_layer_registry.py checks the list is complete).
DISTRIBUTED_LAYERS = ("SyncBatchNorm1d", "SyncBatchNorm2d")


def _layer_class(name: str) -> Optional[type[Layer]]:
    """:func:`layer_class`, importing learnflux.distributed first for a name it registers."""
    if name in DISTRIBUTED_LAYERS and name not in LAYER_REGISTRY:
        from .. import distributed  # noqa: F401  registers its layers

    return layer_class(name)


def is_loadable(cls: type) -> bool:
    """A concrete layer class: not ``Layer`` itself, not a base class whose ``forward`` or
    ``backward`` is left to subclasses (``Activation``), not private (``_BatchNorm``)."""
    if cls.__name__.startswith("_") or not issubclass(cls, Layer) or cls is Layer:
        return False
    return cls.forward is not Layer.forward and cls.backward is not Layer.backward


# ---------------------------------------------------------------------------- state shapes
class _Bad(Exception):
    """An argument at fault: ``(key, message)``; turned into a FileFormatError with its path."""

    def __init__(self, key: Optional[str], message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


class Arguments:
    """A layer's arguments as a file gives them, read one at a time by the layer's
    ``state_shapes`` (:meth:`learnflux.core.layer.Layer.state_shapes`): each read checks its value and
    a bad one raises the loader's error naming the key, before anything is built."""

    max_size = MAX_SIZE
    max_int = MAX_INT
    max_list = MAX_LIST
    max_dilation = MAX_DILATION
    max_padding = MAX_PADDING

    def __init__(self, config: dict) -> None:
        self.config = config

    def get(self, key: str, default: Any) -> Any:
        """The raw value (unchecked)."""
        return self.config.get(key, default)

    @staticmethod
    def show(value: Any) -> str:
        """A bounded display of a value for an error message."""
        return _show(value)

    @staticmethod
    def is_size(value: Any) -> bool:
        return _is_int(value) and 1 <= value <= MAX_SIZE

    def fail(self, key: Optional[str], message: str) -> NoReturn:
        raise _Bad(key, message)

    def size(self, key: str, default: Optional[int] = None) -> int:
        """A positive integer (at most ``max_size``)."""
        value = self.config.get(key, default)
        if not self.is_size(value):
            self.fail(key, f"expected a positive integer (at most {MAX_SIZE}), got {_show(value)}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.config.get(key, default)
        if not isinstance(value, bool):
            self.fail(key, f"expected true or false, got {_show(value)}")
        return value

    def pair(self, key: str, default: Any, low: int, high: int) -> tuple[int, int]:
        """An integer in ``[low, high]`` or a list of two."""
        value = self.config.get(key, default)
        items = value if isinstance(value, list) else [value, value]
        if len(items) != 2 or not all(_is_int(v) and low <= v <= high for v in items):
            self.fail(key, f"expected an integer in [{low}, {high}] or a pair of them, got {_show(value)}")
        return items[0], items[1]


#: integer arguments of built-in layers that are axes (a small range is enough)
_AXES = {"dim", "axis", "start_dim", "end_dim"}
MAX_AXIS = 32
#: arguments of built-in layers that are sizes or shapes (bounded by MAX_SIZE; those of layers
#: with weights are also checked against the archive)
_SIZES = {
    "in_features",
    "out_features",
    "in_channels",
    "out_channels",
    "num_features",
    "normalized_shape",
    "num_embeddings",
    "embedding_dim",
    "kernel_size",
    "groups",
    "shape",
}


def _check_input_shape(c: dict) -> None:
    shape = c.get("shape")
    if shape is None:
        return
    items = shape if isinstance(shape, list) else [shape]
    ok = 1 <= len(items) <= MAX_LIST and all(s is None or (_is_int(s) and 1 <= s <= MAX_SIZE) for s in items)
    if not ok:
        raise _Bad(
            "shape", f"expected null, a positive integer or a non-empty list of them, got {_show(shape)}"
        )


def _check_ints(c: dict, builtin: bool) -> None:
    """Integer arguments: for a built-in layer, axes within ±MAX_AXIS and other arguments within
    ±MAX_INT, except sizes (checked by the layers' state_shapes against the archive) and shapes; for any
    other layer, within ±MAX_SIZE."""
    for key, value in c.items():
        values = value if isinstance(value, list) else [value]
        if not builtin or key in _SIZES:
            limit = MAX_SIZE
        else:
            limit = MAX_AXIS if key in _AXES else MAX_INT
        for v in values:
            if _is_int(v) and abs(v) > limit:
                raise _Bad(key, f"{v} is out of range (at most {limit} in absolute value)")


# ---------------------------------------------------------------------------- the plan
@dataclass
class LayerPlan:
    """One validated layer: its class and arguments, where it is (``where``: the header path,
    ``prefix``: the prefix of its arrays' names), its children for a model, and the shapes of
    the arrays it will hold when known before building it."""

    cls: type
    config: dict[str, Any]
    where: str
    prefix: str
    children: list[LayerPlan] = field(default_factory=list)
    inbound: list[list[int]] = field(default_factory=list)
    state: Optional[dict[str, tuple]] = None


class _Walker:
    def __init__(self, path: str) -> None:
        self.path = path
        self.count = 0

    def error(self, where: str, message: str) -> FileFormatError:
        return FileFormatError(f"{self.path}: header key {where!r}: {message}")

    def layer(self, spec: Any, where: str, prefix: str, depth: int) -> LayerPlan:
        if depth > MAX_DEPTH:
            raise self.error(where, f"models are nested more than {MAX_DEPTH} deep")
        self.count += 1
        if self.count > MAX_LAYERS:
            raise self.error(where, f"the model has more than {MAX_LAYERS:,} layers")
        if not isinstance(spec, dict) or set(spec) - {"class", "config"} or "class" not in spec:
            raise self.error(where, f'expected {{"class": ..., "config": {{...}}}}, got {_show(spec)}')
        name = spec["class"]
        config = spec.get("config", {})
        cls = _layer_class(name) if isinstance(name, str) else None
        if cls is None and isinstance(name, str) and _is_base_class_name(name):
            raise self.error(f"{where}.class", f"{name} is an abstract base class, not a layer a model holds")
        if cls is None:
            known = sorted(n for n, c in LAYER_REGISTRY.items() if is_loadable(c))
            shown = _show(name)
            raise self.error(f"{where}.class", f"unknown layer class {shown}; known: {known}")
        if not is_loadable(cls):
            raise self.error(f"{where}.class", f"{name} is an abstract base class, not a layer a model holds")
        if not isinstance(config, dict):
            raise self.error(f"{where}.config", f"expected an object of arguments, got {_show(config)}")
        plan = LayerPlan(cls, config, where, prefix)
        builder = getattr(cls.from_config, "__func__", None)
        if issubclass(cls, Model) and builder in (
            Model.from_config.__func__,  # type: ignore[attr-defined]
            Sequential.from_config.__func__,  # type: ignore[attr-defined]
        ):
            self._container(plan, depth)
        else:
            self._arguments(plan)
        return plan

    def _arguments(self, plan: LayerPlan) -> None:
        cls, config, where = plan.cls, plan.config, plan.where
        params, hints = _signature(cls)
        takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
        for key, value in config.items():
            at = f"{where}.config.{key}"
            if key == "rng" or (key not in params and not takes_any) or key == "self":
                expected = [p for p in params if p not in ("self", "rng")]
                raise self.error(at, f"{cls.__name__} takes no argument {key!r} (it takes {expected})")
            hint = hints.get(key, Any)
            if not _matches(value, hint):
                raise self.error(at, f"expected {_describe_hint(hint)}, got {_show(value)}")
        missing = [
            p.name
            for p in params.values()
            if p.default is p.empty
            and p.name != "self"
            and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
            and p.name not in config
        ]
        if missing:
            raise self.error(f"{where}.config", f"{cls.__name__} needs the argument(s) {missing}")
        builtin = cls.__module__.startswith("learnflux.")
        try:
            _check_ints(config, builtin)
            if cls.__name__ == "Input" and builtin:
                _check_input_shape(config)
            # the layer's own declaration (Layer.state_shapes): its arrays' shapes, compared
            # with the archive's before the layer is built
            plan.state = cls.state_shapes(Arguments(config))
        except _Bad as bad:
            at = f"{where}.config" + (f".{bad.key}" if bad.key else "")
            raise self.error(at, bad.message) from None

    def _container(self, plan: LayerPlan, depth: int) -> None:
        config, where = plan.config, plan.where
        key = "layers" if issubclass(plan.cls, Sequential) else "nodes"
        if set(config) != {key}:
            raise self.error(f"{where}.config", f"a {plan.cls.__name__} holds exactly one key, {key!r}")
        items = config[key]
        if not isinstance(items, list) or not items:
            raise self.error(f"{where}.config.{key}", f"expected a non-empty list, got {_show(items)}")
        inputs_used: set[int] = set()
        for i, item in enumerate(items):
            at = f"{where}.config.{key}[{i}]"
            if key == "layers":
                child = self.layer(item, at, f"{plan.prefix}{i}.", depth + 1)
                if child.cls.n_inputs != 1:
                    raise self.error(
                        f"{at}.class", f"{child.cls.__name__} takes several inputs: not in a Sequential"
                    )
                plan.children.append(child)
                continue
            if not isinstance(item, dict) or set(item) != {"layer", "inbound"}:
                raise self.error(at, f'expected {{"layer": ..., "inbound": [...]}}, got {_show(item)}')
            inbound = item["inbound"]
            if not isinstance(inbound, list) or not inbound or len(inbound) > MAX_LIST:
                raise self.error(
                    f"{at}.inbound", f"expected a non-empty list of node indices, got {_show(inbound)}"
                )
            for j in inbound:
                if not _is_int(j) or j >= i or j < -MAX_INPUTS:
                    raise self.error(
                        f"{at}.inbound",
                        f"{_show(j)} is not an earlier node (0 to {i - 1}) nor a model input "
                        f"(-1 to -{MAX_INPUTS})",
                    )
                if j < 0:
                    inputs_used.add(-j)
            child = self.layer(item["layer"], f"{at}.layer", f"{plan.prefix}{i}.", depth + 1)
            if child.cls.n_inputs == 1 and not 1 <= len(inbound) <= child.cls.max_inputs:
                takes = "one input" if child.cls.max_inputs == 1 else f"1 to {child.cls.max_inputs} inputs"
                raise self.error(f"{at}.inbound", f"{child.cls.__name__} takes {takes}, got {len(inbound)}")
            plan.children.append(child)
            plan.inbound.append(list(inbound))
        if key == "nodes":
            n = max(inputs_used, default=0)
            if n == 0 or inputs_used != set(range(1, n + 1)):
                raise self.error(
                    f"{where}.config.nodes",
                    "the model's inputs must be numbered -1 to -n and all used, got "
                    f"{sorted(-k for k in inputs_used)}",
                )


def _describe_hint(hint: Any) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "null"}
    if hint in names:
        return names[hint]
    origin = typing.get_origin(hint)
    if origin is Union or origin is getattr(types, "UnionType", None):
        return " or ".join(dict.fromkeys(_describe_hint(h) for h in typing.get_args(hint)))
    if hint in (tuple, list) or origin in (tuple, list, collections.abc.Sequence):
        return "a list"
    return "a plain value"


def plan_model(spec: Any, path: str) -> tuple[LayerPlan, int]:
    """Validate a model description; return its plan and the number of layers in it."""
    walker = _Walker(path)
    plan = walker.layer(spec, "model", "", 0)
    return plan, walker.count


def expected_shapes(plan: LayerPlan) -> dict[str, tuple]:
    """The arrays (name → shape) the built-in layers of ``plan`` will hold, known before building."""
    out: dict[str, tuple] = {}
    stack = [plan]
    while stack:
        p = stack.pop()
        if p.state:
            out.update({p.prefix + k: s for k, s in p.state.items()})
        stack.extend(p.children)
    return out


# ---------------------------------------------------------------------------- building
def build(plan: LayerPlan, path: str) -> Any:
    """Construct the layers of a validated plan (children first; linear in their number)."""
    cls = plan.cls
    if plan.children:
        layers = [build(child, path) for child in plan.children]
        try:
            if issubclass(cls, Sequential):
                return cls(*layers)
            model = cls.__new__(cls)
            Layer.__init__(model)
            plan_ = [tuple(ins) for ins in plan.inbound]
            model._build(layers, plan_, single_input=max(-j for ins in plan_ for j in ins if j < 0) == 1)
            return model
        except LearnfluxError as exc:
            raise FileFormatError(f"{path}: header key {plan.where!r}: {exc}") from None
    try:
        return cls.from_config(dict(plan.config))
    except LearnfluxError as exc:
        raise FileFormatError(f"{path}: header key {plan.where!r}: {exc}") from None
    except (
        TypeError,
        ValueError,
        OverflowError,
        ArithmeticError,
        KeyError,
        IndexError,
        AttributeError,
    ) as exc:
        error = FileFormatError(
            f"{path}: header key {plan.where!r}: {cls.__name__} cannot be built from "
            f"{_show(plan.config)} ({type(exc).__name__}: {exc})"
        )
        error.unexpected = type(exc).__name__  # type: ignore[attr-defined]
        raise error from None
