"""PyTorch interop: ``lf.from_torch(module)`` and ``lf.to_torch(model)``.

Both directions keep the structure, the weights, the buffers (batch-norm running statistics),
the float dtype and the phase (``module.training`` ↔ ``model.training``). Parameter names follow
PyTorch's ``state_dict`` keys, so after ``model = lf.from_torch(module)``::

    set(dict(model.named_parameters())) == set(dict(module.named_parameters()))
    model.load_state_dict(module.state_dict())          # tensors or NumPy arrays

torch stays optional: this module imports it only inside the two functions, so ``import
learnflux`` never imports torch.

Supported modules (both directions): ``nn.Sequential`` (nested, becomes a nested
``lf.Sequential``), ``Linear``, ``Conv2d`` (zero padding), ``BatchNorm1d``, ``BatchNorm2d``,
``LayerNorm``, ``ReLU``, ``LeakyReLU``, ``Sigmoid``, ``Tanh``, ``GELU``, ``SiLU``, ``Softmax``,
``LogSoftmax`` (with an explicit ``dim``), ``MaxPool2d`` (no dilation), ``AvgPool2d`` (no
``divisor_override``), ``AdaptiveAvgPool2d(1)``, ``Flatten``, ``Unflatten(1, sizes)`` (→
``Reshape``), ``Dropout``, ``Embedding`` (plain: no ``padding_idx``/``max_norm``) and ``Identity``
(→ ``Input()``, the identity layer). ``lf.GlobalAvgPool2d()`` becomes
``nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())`` and ``lf.Reshape(shape)`` becomes
``nn.Sequential(nn.Flatten(), nn.Unflatten(1, shape))`` (no parameters, so no key moves).
Anything else raises a :class:`~learnflux.errors.ConfigError` naming the module and its path.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from .errors import ConfigError, DtypeError, LearnfluxError
from .layer import Layer
from .model import Model, Sequential
from .numbers import is_exact


def _import_torch() -> Any:
    try:
        import torch
    except ImportError:  # pragma: no cover - depends on the environment
        raise ConfigError("PyTorch interop needs torch, which is not installed (pip install torch)") from None
    return torch


def _where(path: str) -> str:
    return f"'{path}'" if path else "the top level"


# ---------------------------------------------------------------------------- torch → learnflux
def _from_torch_table(nn: Any) -> dict[type, Callable[[Any, str], Layer]]:
    from . import layers as L

    def linear(m: Any, path: str) -> Layer:
        return L.Linear(m.in_features, m.out_features, bias=m.bias is not None)

    def conv2d(m: Any, path: str) -> Layer:
        if m.padding_mode != "zeros":
            raise _unsupported(m, path, f"padding_mode={m.padding_mode!r} (only 'zeros')")
        return L.Conv2d(
            m.in_channels,
            m.out_channels,
            tuple(m.kernel_size),
            stride=tuple(m.stride),
            padding=m.padding if isinstance(m.padding, str) else tuple(m.padding),
            dilation=tuple(m.dilation),
            groups=m.groups,
            bias=m.bias is not None,
        )

    def batchnorm(cls: type) -> Callable[[Any, str], Layer]:
        def build(m: Any, path: str) -> Layer:
            return cls(
                m.num_features,
                eps=m.eps,
                momentum=m.momentum,
                affine=m.affine,
                track_running_stats=m.track_running_stats,
            )

        return build

    def layernorm(m: Any, path: str) -> Layer:
        bias = getattr(m, "bias", None) is not None or not m.elementwise_affine
        return L.LayerNorm(
            tuple(m.normalized_shape), eps=m.eps, elementwise_affine=m.elementwise_affine, bias=bias
        )

    def along_axis(cls: type) -> Callable[[Any, str], Layer]:
        def build(m: Any, path: str) -> Layer:
            if m.dim is None:
                raise _unsupported(
                    m,
                    path,
                    "dim=None (PyTorch's implicit, deprecated choice of "
                    "axis); give the axis explicitly, e.g. dim=1",
                )
            return cls(dim=m.dim)

        return build

    def maxpool(m: Any, path: str) -> Layer:
        if m.dilation not in (1, (1, 1)):
            raise _unsupported(m, path, f"dilation={m.dilation}")
        if m.return_indices:
            raise _unsupported(m, path, "return_indices=True")
        return L.MaxPool2d(m.kernel_size, stride=m.stride, padding=m.padding, ceil_mode=m.ceil_mode)

    def avgpool(m: Any, path: str) -> Layer:
        if m.divisor_override is not None:
            raise _unsupported(m, path, f"divisor_override={m.divisor_override}")
        return L.AvgPool2d(
            m.kernel_size,
            stride=m.stride,
            padding=m.padding,
            ceil_mode=m.ceil_mode,
            count_include_pad=m.count_include_pad,
        )

    def unflatten(m: Any, path: str) -> Layer:
        sizes = tuple(int(s) for s in m.unflattened_size)
        if m.dim != 1 or -1 in sizes:
            raise _unsupported(
                m, path, "only Unflatten(1, sizes) with explicit sizes (it becomes lf.Reshape(sizes))"
            )
        return L.Reshape(sizes)

    def embedding(m: Any, path: str) -> Layer:
        extras = {"padding_idx": m.padding_idx, "max_norm": m.max_norm}
        bad = [f"{k}={v}" for k, v in extras.items() if v is not None]
        bad += ["scale_grad_by_freq=True"] if m.scale_grad_by_freq else []
        bad += ["sparse=True"] if m.sparse else []
        if bad:
            raise _unsupported(m, path, ", ".join(bad))
        return L.Embedding(m.num_embeddings, m.embedding_dim)

    return {
        nn.Linear: linear,
        nn.Conv2d: conv2d,
        nn.BatchNorm1d: batchnorm(L.BatchNorm1d),
        nn.BatchNorm2d: batchnorm(L.BatchNorm2d),
        nn.LayerNorm: layernorm,
        nn.ReLU: lambda m, path: L.ReLU(),
        nn.LeakyReLU: lambda m, path: L.LeakyReLU(m.negative_slope),
        nn.Sigmoid: lambda m, path: L.Sigmoid(),
        nn.Tanh: lambda m, path: L.Tanh(),
        nn.GELU: lambda m, path: L.GELU(approximate=m.approximate),
        nn.SiLU: lambda m, path: L.SiLU(),
        nn.Softmax: along_axis(L.Softmax),
        nn.LogSoftmax: along_axis(L.LogSoftmax),
        nn.MaxPool2d: maxpool,
        nn.AvgPool2d: avgpool,
        nn.AdaptiveAvgPool2d: lambda m, path: L.AdaptiveAvgPool2d(m.output_size),
        nn.Flatten: lambda m, path: L.Flatten(m.start_dim, m.end_dim),
        nn.Unflatten: unflatten,
        nn.Dropout: lambda m, path: L.Dropout(m.p),
        nn.Embedding: embedding,
        nn.Identity: lambda m, path: L.Input(),
    }


def _unsupported(m: Any, path: str, detail: str) -> ConfigError:
    return ConfigError(f"from_torch: {type(m).__name__} at {_where(path)} is not supported with {detail}")


def _lookup(table: dict[type, Any], obj: Any) -> Optional[Any]:
    """The converter for ``type(obj)``, or for a base class when the subclass does not override
    ``forward`` (a subclass that computes something else is never converted silently)."""
    if type(obj) in table:
        return table[type(obj)]
    for base in type(obj).__mro__[1:]:
        if base in table and getattr(type(obj), "forward", None) is getattr(base, "forward", None):
            return table[base]
    return None


def _convert_module(m: Any, path: str, nn: Any, table: dict[type, Any]) -> Layer:
    if isinstance(m, nn.Sequential) and type(m).forward is nn.Sequential.forward:
        children = list(m.named_children())
        if not children:
            raise ConfigError(f"from_torch: the nn.Sequential at {_where(path)} is empty")
        for i, (name, _) in enumerate(children):
            if name != str(i):
                raise ConfigError(
                    f"from_torch: the nn.Sequential at {_where(path)} names its child {i} "
                    f"{name!r} (an OrderedDict); learnflux numbers layers 0, 1, 2..., so "
                    "state_dict keys would not line up"
                )
        prefix = f"{path}." if path else ""
        return Sequential(*[_convert_module(c, f"{prefix}{n}", nn, table) for n, c in children])
    build = _lookup(table, m)
    if build is None:
        supported = sorted({t.__name__ for t in table} | {"Sequential"})
        raise ConfigError(
            f"from_torch: unsupported module {type(m).__name__} at {_where(path)}; supported: "
            f"{', '.join(supported)}"
        )
    try:
        return build(m, path)
    except ConfigError as exc:
        if str(exc).startswith("from_torch:"):
            raise
        raise ConfigError(f"from_torch: {type(m).__name__} at {_where(path)}: {exc}") from None


def _module_dtype(module: Any, torch: Any) -> np.dtype:
    dtypes = {
        t.dtype for t in list(module.parameters()) + list(module.buffers()) if t.dtype.is_floating_point
    }
    if not dtypes:
        return np.dtype(np.float32)
    if len(dtypes) > 1:
        raise DtypeError(
            f"from_torch: the module mixes dtypes {sorted(map(str, dtypes))}; "
            "convert it with .float() or .double() first"
        )
    dt = dtypes.pop()
    if dt == torch.float64:
        return np.dtype(np.float64)
    if dt == torch.float32:
        return np.dtype(np.float32)
    raise DtypeError(
        f"from_torch: learnflux computes in float32 or float64, the module is {dt}; "
        "convert it with .float() or .double() first"
    )


def from_torch(module: Any) -> Layer:
    """Convert a PyTorch module into learnflux, with the same weights and buffers.

    Args:
        module: an ``nn.Sequential`` (nested ones allowed) of supported modules, or one
            supported module.

    Returns:
        An ``lf.Sequential`` for an ``nn.Sequential`` (nested ``nn.Sequential`` → nested
        ``lf.Sequential``), else the single learnflux layer. Its dtype is the module's (a
        ``.double()`` module gives a float64 model), its phase the module's (``module.training``),
        and its ``state_dict`` keys are the module's.

    Raises:
        ConfigError: an unsupported module or option, naming it and its path (``'features.3'``).
        DtypeError: a module in float16/bfloat16 or with mixed dtypes.

    The arrays are copied: training one afterwards does not change the other.
    """
    torch = _import_torch()
    nn = torch.nn
    if not isinstance(module, nn.Module):
        raise ConfigError(f"from_torch: expects a torch.nn.Module, got {type(module).__name__}")
    dtype = _module_dtype(module, torch)
    model = _convert_module(module, "", nn, _from_torch_table(nn))
    model.astype(dtype)
    state = {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}
    model.load_state_dict(state)
    model.set_phase(module.training)
    return model


# ---------------------------------------------------------------------------- learnflux → torch
def _to_torch_layer(layer: Layer, path: str, nn: Any) -> Any:
    from . import layers as L

    kind = type(layer)
    if isinstance(layer, Sequential):
        prefix = f"{path}." if path else ""
        return nn.Sequential(
            *[_to_torch_layer(child, f"{prefix}{i}", nn) for i, child in enumerate(layer.layers)]
        )
    if kind is L.Input:
        return nn.Identity()
    if kind is L.Linear:
        return nn.Linear(layer.in_features, layer.out_features, bias=layer.use_bias)
    if kind is L.Conv2d:
        padding = layer.padding if isinstance(layer.padding, str) else tuple(layer.padding)
        return nn.Conv2d(
            layer.in_channels,
            layer.out_channels,
            tuple(layer.kernel_size),
            stride=tuple(layer.stride),
            padding=padding,
            dilation=tuple(layer.dilation),
            groups=layer.groups,
            bias=layer.use_bias,
        )
    if kind in (L.BatchNorm1d, L.BatchNorm2d):
        cls = nn.BatchNorm1d if kind is L.BatchNorm1d else nn.BatchNorm2d
        return cls(
            layer.num_features,
            eps=layer.eps,
            momentum=layer.momentum,
            affine=layer.affine,
            track_running_stats=layer.track_running_stats,
        )
    if kind is L.LayerNorm:
        return nn.LayerNorm(
            layer.normalized_shape,
            eps=layer.eps,
            elementwise_affine=layer.elementwise_affine,
            bias=layer.use_bias or not layer.elementwise_affine,
        )
    simple = {L.ReLU: nn.ReLU, L.Sigmoid: nn.Sigmoid, L.Tanh: nn.Tanh, L.SiLU: nn.SiLU}
    if kind in simple:
        return simple[kind]()
    if kind is L.LeakyReLU:
        return nn.LeakyReLU(layer.negative_slope)
    if kind is L.GELU:
        return nn.GELU(approximate=layer.approximate)
    if kind is L.Softmax:
        return nn.Softmax(dim=layer.dim)
    if kind is L.LogSoftmax:
        return nn.LogSoftmax(dim=layer.dim)
    if kind is L.MaxPool2d:
        return nn.MaxPool2d(
            tuple(layer.kernel_size),
            stride=tuple(layer.stride),
            padding=tuple(layer.padding),
            ceil_mode=layer.ceil_mode,
        )
    if kind is L.AvgPool2d:
        return nn.AvgPool2d(
            tuple(layer.kernel_size),
            stride=tuple(layer.stride),
            padding=tuple(layer.padding),
            ceil_mode=layer.ceil_mode,
            count_include_pad=layer.count_include_pad,
        )
    if kind is L.AdaptiveAvgPool2d or (kind is L.GlobalAvgPool2d and layer.keepdims):
        return nn.AdaptiveAvgPool2d(1)
    if kind is L.GlobalAvgPool2d:
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
    if kind is L.Flatten:
        return nn.Flatten(layer.start_dim, layer.end_dim)
    if kind is L.Reshape:
        return nn.Sequential(nn.Flatten(), nn.Unflatten(1, tuple(layer.shape)))
    if kind is L.Dropout:
        return nn.Dropout(layer.p)
    if kind is L.Embedding:
        return nn.Embedding(layer.num_embeddings, layer.embedding_dim)
    what = "a graph model (functional API)" if isinstance(layer, Model) else type(layer).__name__
    raise ConfigError(
        f"to_torch: {what} at {_where(path)} has no PyTorch equivalent here; to_torch converts "
        "Sequential models of the layers from_torch supports"
    )


def to_torch(model: Layer) -> Any:
    """Convert a learnflux ``Sequential`` (or one layer) into the equivalent PyTorch module.

    The result has the same structure (nested ``Sequential`` → nested ``nn.Sequential``), the
    same weights and buffers (copied), the same state_dict keys, the model's float dtype
    (float64 → ``.double()``) and its phase (``train()`` / ``eval()``).

    Raises:
        ConfigError: a layer without a PyTorch twin here (merge layers, graph models), naming it.
        DtypeError: a model in exact arithmetic (convert it with ``model.astype("float64")``).
    """
    torch = _import_torch()
    nn = torch.nn
    if not isinstance(model, Layer):
        raise ConfigError(f"to_torch: expects a learnflux layer or model, got {type(model).__name__}")
    if is_exact(model.dtype):
        raise DtypeError(
            "to_torch: the model computes in exact arithmetic; convert it first with model.astype('float64')"
        )
    try:
        module = _to_torch_layer(model, "", nn)
    except LearnfluxError:
        raise
    except (TypeError, ValueError) as exc:  # a torch constructor refused the arguments
        raise ConfigError(f"to_torch: {exc}") from None
    module = module.double() if model.dtype == np.float64 else module.float()
    target = module.state_dict()
    ours = model.state_dict()
    missing = sorted(set(target) - set(ours))
    if missing or set(ours) - set(target):
        raise ConfigError(
            f"to_torch: state dict keys do not line up (torch only: {missing}, "
            f"learnflux only: {sorted(set(ours) - set(target))})"
        )
    module.load_state_dict({k: torch.tensor(np.array(ours[k]), dtype=target[k].dtype) for k in target})
    module.train(model.training)
    return module


__all__ = ["from_torch", "to_torch"]
