"""The contract every layer keeps.

A layer ``L^k`` computes ``o^k = L^k(o^(k-1))`` in its forward pass and, in its backward pass,
receives ``δ_out = ∂Loss/∂o^k`` and returns ``δ_in = ∂Loss/∂o^(k-1)`` (the learning flow), after
writing ``∂Loss/∂W`` into the ``grad`` of each of its parameters.

Subclasses implement ``forward``, ``backward``, ``get_config`` and, where they can,
``output_shape``. They keep what the backward pass needs only in the training phase.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import sys
import warnings
from typing import Any, ClassVar, Iterator, Optional, TypeVar

import numpy as np

from .. import kernels
from ..errors import ConfigError, DtypeError, ExactnessError, NonFiniteError, PhaseError, ShapeError
from ..numbers import DTypeLike, cast, dtype_name, is_exact, resolve_dtype
from .node import Node, symbolic_inputs
from .param import Param

#: public name -> class of every concrete layer a file or a config may name (filled by
#: :func:`register_layer`; abstract and private base classes are never in it).
LAYER_REGISTRY: dict[str, type[Layer]] = {}

#: Layer subclasses defined outside learnflux and never registered, by name: before
#: ``register_layer`` existed every subclass was registered implicitly, so ``lf.load`` still finds
#: them, with a DeprecationWarning (:func:`layer_class`). Removed in the next release.
_IMPLICIT: dict[str, type[Layer]] = {}

_L = TypeVar("_L", bound="Layer")


def register_layer(cls: type[_L]) -> type[_L]:
    """Class decorator: make a concrete layer class loadable by its name.

    ``lf.load``, ``Model.from_config`` and the TOML configs find layer classes by their class name
    in :data:`LAYER_REGISTRY`; only registered classes are found. Every public layer of learnflux is
    registered where it is defined; do the same for a layer of your own that you save::

        @lf.register_layer
        class Scale(lf.Layer):
            ...

    Raises:
        ConfigError: ``cls`` is not a Layer subclass, has a private name (``_Base``), or its name
            is already registered for another class.
    """
    if not isinstance(cls, type) or not issubclass(cls, Layer):
        raise ConfigError(f"register_layer: expects a Layer subclass, got {cls!r}")
    name = cls.__name__
    if name.startswith("_"):
        raise ConfigError(f"register_layer: {name} has a private name; a registered layer needs a public one")
    known = LAYER_REGISTRY.get(name)
    if known is not None and known is not cls and known.__module__.startswith("learnflux."):
        raise ConfigError(
            f"register_layer: the name {name!r} is learnflux's {known.__module__}.{name}; "
            "give your layer another name"
        )
    LAYER_REGISTRY[name] = cls
    _IMPLICIT.pop(name, None)
    return cls


def layer_class(name: str) -> Optional[type[Layer]]:
    """The registered layer class called ``name``, or None.

    A Layer subclass of your own that was never registered is still found, with a
    DeprecationWarning (decorate it with ``@lf.register_layer``); this fallback goes in the next
    release."""
    cls = LAYER_REGISTRY.get(name)
    if cls is None and name in _IMPLICIT:
        cls = _IMPLICIT[name]
        warnings.warn(
            f"layer class {name} ({cls.__module__}) is not registered; decorate it with "
            "@lf.register_layer (unregistered layers will not load in the next release)",
            DeprecationWarning,
            stacklevel=3,
        )
    return cls


class Layer:
    """Base class of all layers (and of models, which are layers made of layers).

    Class attributes a subclass may set:

    * ``supports_exact``: the layer only uses +, −, ×, ÷ and comparisons, so it can run on
      ``Fraction`` values (``model.astype("exact")``).
    * ``input_kind``: ``"float"`` (default) or ``"index"`` (integer inputs, e.g. Embedding).
    * ``n_inputs``: 1, or ``None`` for merge layers that take a list of arrays.
    * ``max_inputs``: for a layer with ``n_inputs = 1`` that may also be called on a list of up to
      this many nodes in a graph (attention: ``[query, key, value]``); its ``forward`` then gets
      the list and its ``backward`` returns one δ per item. 1 (the default): one input only.
    * ``flops_per_element``: the cost of the forward pass per output value (``lf.summary``), when
      it is a constant; override :meth:`flops` when it is a formula.
    * ``torch_twins``: the names of the ``torch.nn`` classes computing the same function
      (``lf.from_torch`` / ``lf.to_torch``); see :meth:`from_torch_module`.

    Everything the framework knows about a layer is declared in its class: its registration
    (``@register_layer``), its arguments (``get_config``, the constructor's signature), its output
    shape, its FLOPs, the shapes of its weights before it is built (:meth:`state_shapes`) and its
    PyTorch twin. ``summary``, ``interop`` and the file loader read these declarations.
    """

    supports_exact: ClassVar[bool] = False
    input_kind: ClassVar[str] = "float"
    n_inputs: ClassVar[Optional[int]] = 1
    max_inputs: ClassVar[int] = 1
    #: FLOPs of the forward pass per output value (a multiply-add counts 2); None: unknown
    flops_per_element: ClassVar[Optional[int]] = None
    #: names of the torch.nn classes that compute this layer (the first is what to_torch builds)
    torch_twins: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # learnflux's own classes register explicitly (register_layer); a user's public class is
        # remembered for the deprecated implicit lookup of layer_class
        if not cls.__module__.startswith("learnflux.") and not cls.__name__.startswith("_"):
            _IMPLICIT[cls.__name__] = cls

    def __init__(self) -> None:
        self.training = True
        self.name: Optional[str] = None
        self.dtype: np.dtype = np.dtype(np.float32)
        self._params: dict[str, Param] = {}
        self._buffers: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ the contract
    def forward(self, x: Any) -> Any:
        """``o = L(x)``. In the training phase, keep what ``backward`` needs."""
        raise NotImplementedError

    def backward(self, delta_out: Any, need_input_delta: bool = True) -> Any:
        """Receive ``δ_out = ∂Loss/∂o``, fill the ``grad`` of every parameter, return
        ``δ_in = ∂Loss/∂x`` (or ``None`` when ``need_input_delta`` is False and the layer
        can skip that work).

        Ownership: ``δ_out`` belongs to the caller (a loss keeps it, a user may reuse it): read
        it, never write into it. ``δ_in`` and ``forward``'s output are new arrays the caller
        owns. Weight gradients are written into ``param.grad_buffer()`` (the previous step's
        gradient array when the parameter owns it) and handed to ``param.set_grad``: the one
        place where an array is reused across steps."""
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this layer (JSON-serialisable)."""
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        try:
            return cls(**config)
        except TypeError as exc:
            raise ConfigError(f"{cls.__name__}: invalid configuration {config!r}: {exc}") from None

    def output_shape(self, input_shape: Any) -> tuple:
        """Per-sample output shape for a per-sample input shape (no batch axis; a list of shapes
        for a merge layer).

        The default runs the layer once on zeros in the inference phase; layers override it
        when the answer is a formula."""
        if self.input_kind == "index":
            dtype: Any = np.int64
        else:
            dtype = np.float32 if not is_exact(self.dtype) else object
        shapes = input_shape if self.n_inputs is None else [input_shape]
        probes = [np.zeros((1, *shape), dtype=dtype) for shape in shapes]
        was = self.training
        self.set_phase(False)
        try:
            out = self.forward(probes if self.n_inputs is None else probes[0])
        finally:
            self.set_phase(was)
        return tuple(out.shape[1:])

    # ------------------------------------------------------------------ declarations
    def flops(self, input_shape: Any) -> Optional[int]:
        """Floating-point operations of one forward pass for one sample of ``input_shape``, a
        multiply-add counting 2 (``lf.summary``'s FLOPs column); None when unknown.

        The default is ``flops_per_element`` × the size of the output; layers whose cost is a
        formula (Linear, Conv2d, pooling) override this method."""
        if self.flops_per_element is None:
            return None
        return self.flops_per_element * math.prod(self.output_shape(input_shape))

    @classmethod
    def state_shapes(cls, args: Any) -> Optional[dict[str, tuple]]:
        """The shapes of the weights and buffers a layer built from a file's arguments holds,
        computed from the arguments alone, so that ``lf.load`` compares them with the file's
        arrays **before** the constructor allocates anything.

        ``args`` reads and checks one argument at a time and raises the loader's error naming it:
        ``args.size(key, default)`` (a positive int), ``args.flag(key, default)`` (a bool),
        ``args.pair(key, default, low, high)``, ``args.get(key, default)`` (unchecked) and
        ``args.fail(key, message)``; see :class:`learnflux.files.fileformat.Arguments`.

        None (the default): the layer holds no array whose size an argument sets, or its arrays
        are compared after it is built. A layer whose constructor calls ``add_param`` or
        ``add_buffer`` with sizes from its arguments must override this."""
        return None

    def flow_through_time(self) -> Optional[dict[str, np.ndarray]]:
        """For a layer that loops over time steps (``RNN``, ``LSTM``, ``GRU``): what each time step
        held in its last training step, by name (``"h_l0"``: the states ``h_t``, ``"dh_l0"``: the
        learning flow ``δh_t`` reaching them), each array ``(batch, T, …)``; the trace
        (``lf.Recorder``, ``learnflux explain``) shows them step by step. A layer that has them
        keeps them only while its ``record_time_steps`` attribute is true (the recorder sets it
        around one step). None (the default): the layer has no time steps."""
        return None

    @classmethod
    def from_torch_module(cls, module: Any) -> Layer:
        """This layer built from ``module``, an instance of one of ``torch_twins`` (``lf.from_torch``
        copies the weights afterwards, by ``state_dict`` name).

        The default passes each constructor argument the module has as an attribute of the same
        name (``nn.LeakyReLU(0.2).negative_slope`` → ``LeakyReLU(negative_slope=0.2)``). Layers
        whose arguments differ from PyTorch's override it, and raise
        :class:`~learnflux.errors.UnsupportedTorchOption` for an option they cannot reproduce."""
        params = [name for name in inspect.signature(cls.__init__).parameters if name != "self"]
        return cls(**{name: getattr(module, name) for name in params if hasattr(module, name)})

    def to_torch_module(self, nn: Any) -> Any:
        """The ``torch.nn`` module computing this layer (``lf.to_torch`` copies the weights
        afterwards), built with the ``nn`` namespace it is given (torch is never imported here);
        None when there is none.

        The default builds ``nn.<torch_twins[0]>(**self.get_config())``: right when the layer's
        arguments are PyTorch's; other layers override it."""
        if not self.torch_twins:
            return None
        return getattr(nn, self.torch_twins[0])(**self.get_config())

    # ------------------------------------------------------------------ parameters
    def add_param(self, name: str, value: np.ndarray) -> Param:
        """Declare a weight tensor; it becomes ``self.<name>`` and appears in ``parameters()``."""
        param = Param(np.ascontiguousarray(value, dtype=self.dtype), name=name, owner=self)
        param.training = self.training
        self._params[name] = param
        setattr(self, name, param)
        return param

    def add_buffer(self, name: str, value: np.ndarray) -> None:
        """Declare a non-learned state tensor saved with the model (e.g. running statistics)."""
        self._buffers[name] = value

    def parameters(self) -> list[Param]:
        """The layer's parameters (for a model: of all its layers), in a fixed order."""
        return [p for _, p in self.named_parameters()]

    def params(self) -> list[Param]:
        """Deprecated: :meth:`parameters` (PyTorch's name, ``docs/vocabulary.md``). Warns, and goes
        in the next release. learnflux's own callers do not warn (an optimizer accepts any object
        with ``params()``): the user could not act on that warning."""
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if caller != "learnflux" and not caller.startswith("learnflux."):
            warnings.warn(
                "Layer.params() is deprecated and goes in the next release; use parameters()",
                DeprecationWarning,
                stacklevel=2,
            )
        return self.parameters()

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Param]]:
        for name, p in self._params.items():
            yield prefix + name, p

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        for name, b in self._buffers.items():
            yield prefix + name, b

    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameters and buffers by name (``"1.weight"``, ``"2.running_mean"``...)."""
        state = {name: p.value for name, p in self.named_parameters()}
        state.update(dict(self.named_buffers()))
        return state

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Copy arrays (NumPy, or anything ``np.asarray`` accepts) into parameters and buffers."""
        own_params = dict(self.named_parameters())
        own_buffers = dict(self.named_buffer_owners())
        if strict:
            expected = set(own_params) | set(own_buffers)
            missing = sorted(expected - set(state))
            unexpected = sorted(set(state) - expected)
            if missing or unexpected:
                raise ConfigError(
                    f"{self.describe()}: state dict does not match: missing keys {missing}, "
                    f"unexpected keys {unexpected}"
                )
        for key, value in state.items():
            # a copy, as PyTorch: in-place optimizer updates must not write into the caller's
            # arrays (nor into the tensors a torch state dict shares its memory with)
            arr = np.array(value.detach().cpu().numpy() if hasattr(value, "detach") else value)
            if key in own_params:
                own_params[key].value = arr
            elif key in own_buffers:
                layer, local = own_buffers[key]
                layer.set_buffer(local, arr)

    def named_buffer_owners(self, prefix: str = "") -> Iterator[tuple[str, tuple[Layer, str]]]:
        for name in self._buffers:
            yield prefix + name, (self, name)

    def set_buffer(self, name: str, value: np.ndarray) -> None:
        old = self._buffers[name]
        value = np.asarray(value)
        if value.shape != old.shape:
            raise ShapeError(f"{self.describe()}: buffer '{name}' has shape {old.shape}, got {value.shape}")
        self._buffers[name] = value.astype(old.dtype) if old.dtype != object else cast(value, old.dtype)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    # ------------------------------------------------------------------ phases and numbers
    def set_phase(self, training: bool) -> None:
        """Training phase (``True``): caches are kept, gradients and updates allowed.
        Inference phase (``False``): forward only, no cache."""
        self.training = training
        for p in self._params.values():
            p.training = training
        if not training:
            self.clear_cache()

    def train(self, mode: bool = True) -> Layer:
        """``set_phase(mode)`` (PyTorch's name); returns the layer."""
        self.set_phase(mode)
        return self

    def eval(self) -> Layer:
        """The inference phase (PyTorch's name); returns the layer."""
        self.set_phase(False)
        return self

    @contextlib.contextmanager
    def inference(self: _L) -> Iterator[_L]:
        """``with model.inference(): ...`` runs the block in the inference phase, then restores
        the phase the layer (or model) had."""
        was = self.training
        self.set_phase(False)
        try:
            yield self
        finally:
            self.set_phase(was)

    @contextlib.contextmanager
    def training_phase(self: _L) -> Iterator[_L]:
        """``with model.training_phase(): ...``: the block runs in the training phase."""
        was = self.training
        self.set_phase(True)
        try:
            yield self
        finally:
            self.set_phase(was)

    def clear_cache(self) -> None:
        """Drop what the forward pass kept for the backward pass. Layers with a cache override
        ``_cache_attrs``."""
        for attr in self._cache_attrs():
            setattr(self, attr, None)

    def _cache_attrs(self) -> tuple[str, ...]:
        return ()

    def astype(self, dtype: DTypeLike) -> Layer:
        """Convert parameters and buffers to float32, float64 or ``"exact"`` (Fractions)."""
        target = resolve_dtype(dtype)
        if is_exact(target) and not self.supports_exact:
            raise ExactnessError(
                f"{self.describe()} cannot run in exact arithmetic (it needs functions such as "
                "exp or sqrt whose results are not fractions); use float32 or float64"
            )
        self.dtype = target
        for p in self._params.values():
            p._value = cast(p._value, target)
            p.grad = None
        for name, b in self._buffers.items():
            if b.dtype.kind == "f" or b.dtype == object:
                self._buffers[name] = cast(b, target)
        self.clear_cache()
        return self

    # ------------------------------------------------------------------ helpers for subclasses
    def describe(self) -> str:
        """How error messages name the layer: ``Linear(3 → 1) at '1'``."""
        where = f" at '{self.name}'" if self.name not in (None, "") else ""
        return f"{self.summary_name()}{where}"

    def summary_name(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __repr__(self) -> str:
        return self.summary_name()

    def shape_error(self, message: str) -> ShapeError:
        return ShapeError(f"{self.describe()}: {message}")

    def check_trainable(self, cache: Any) -> None:
        """Raise a clear error if ``backward`` cannot run now."""
        if not self.training:
            raise PhaseError(
                f"{self.describe()}: backward called in the inference phase; "
                "call model.train() before training"
            )
        if cache is None:
            raise PhaseError(
                f"{self.describe()}: backward called before forward (no cached input); "
                "run forward in the training phase first"
            )

    def check_input(self, x: Any) -> np.ndarray:
        """Validate and convert data entering this layer from outside a model:
        real numbers only, cast to the layer's dtype, no NaN or infinity."""
        return prepare_input(x, self)

    # ------------------------------------------------------------------ calling
    def __call__(self, x: Any) -> Any:
        nodes = symbolic_inputs(x)
        if nodes is not None:
            return Node.create(self, nodes)
        if self.n_inputs is None:
            return self.forward([self.check_input(xi) for xi in x])
        return self.forward(self.check_input(x))


def prepare_input(x: Any, layer: Layer) -> np.ndarray:
    """Check data at the entry of ``layer`` and cast it to the layer's dtype."""
    arr = x if isinstance(x, np.ndarray) else np.asarray(x)
    kind = arr.dtype.kind
    if layer.input_kind == "index":
        if kind not in "iu":
            raise DtypeError(
                f"{layer.describe()}: expects integer indices, got an array of dtype {arr.dtype}"
            )
        return arr
    if kind not in "fiub" and not (kind == "O" and is_exact(layer.dtype)):
        raise DtypeError(
            f"{layer.describe()}: expects real numbers ({dtype_name(layer.dtype)}), "
            f"got an array of dtype {arr.dtype}"
        )
    if arr.dtype != layer.dtype:
        arr = cast(arr, layer.dtype)
    if kind == "f" and arr.dtype != object and arr.size and not _surely_finite(arr):
        bad = np.argwhere(~np.isfinite(arr))
        if len(bad):
            where = tuple(int(i) for i in bad[0])
            raise NonFiniteError(
                f"{layer.describe()}: input contains {len(bad)} non-finite value(s) "
                f"(first: {arr[where]} at index {where})"
            )
    return arr


def _surely_finite(arr: np.ndarray) -> bool:
    """True when the float array ``arr`` holds no NaN and no infinity (False: it may hold one,
    and the caller looks element by element): the active kernel set's ``surely_finite`` (the
    NumPy kernels: one dot product ``Σ x²``; the compiled ones: one pass over the bits)."""
    return kernels.ops().surely_finite(arr)
