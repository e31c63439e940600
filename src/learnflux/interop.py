"""PyTorch interop: ``lf.from_torch(module)`` and ``lf.to_torch(model)``.

Both directions keep the structure, the weights, the buffers (batch-norm running statistics),
the float dtype and the phase (``module.training`` ↔ ``model.training``). Parameter names follow
PyTorch's ``state_dict`` keys, so after ``model = lf.from_torch(module)``::

    set(dict(model.named_parameters())) == set(dict(module.named_parameters()))
    model.load_state_dict(module.state_dict())          # tensors or NumPy arrays

torch stays optional: this module imports it only inside the two functions, so ``import
learnflux`` never imports torch.

Supported modules: ``nn.Sequential`` (nested, becomes a nested ``lf.Sequential``) and the
``torch.nn`` classes the layers declare as their ``torch_twins``. Each layer builds itself from
its twin (``Layer.from_torch_module``, which refuses the options it cannot reproduce) and builds
its twin (``Layer.to_torch_module``), in its own file; this module only walks the structure,
copies the arrays and names the path of a failure. ``docs/layers.md#pytorch-interop`` lists them.
Anything else raises a :class:`~learnflux.errors.ConfigError` naming the module and its path.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .core.layer import LAYER_REGISTRY, Layer
from .core.model import Model, Sequential
from .errors import ConfigError, DtypeError, LearnfluxError, UnsupportedTorchOption
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
def _from_torch_table(nn: Any) -> dict[type, type[Layer]]:
    """torch.nn class → the registered learnflux layer that declares it among its ``torch_twins``."""
    table: dict[type, type[Layer]] = {}
    for cls in LAYER_REGISTRY.values():
        for name in cls.torch_twins:
            twin = getattr(nn, name, None)
            if twin is None:
                continue  # a class this version of torch does not have
            if twin in table and table[twin] is not cls:
                raise ConfigError(
                    f"from_torch: both {table[twin].__name__} and {cls.__name__} declare nn.{name} "
                    "as their torch twin"
                )
            table[twin] = cls
    return table


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


def _convert_module(m: Any, path: str, nn: Any, table: dict[type, type[Layer]]) -> Layer:
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
        return build.from_torch_module(m)
    except UnsupportedTorchOption as exc:
        raise _unsupported(m, path, str(exc)) from None
    except ConfigError as exc:
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
def _declares_twin(cls: type) -> bool:
    return "torch_twins" in vars(cls) or "to_torch_module" in vars(cls)


def _twin_applies(layer: Layer) -> bool:
    """The torch twin a layer inherits describes what it computes: the class declaring the twin
    is the one whose ``forward`` runs, or a subclass of it (a subclass overriding ``forward`` is
    never converted silently)."""
    mro = type(layer).__mro__
    owner = next((c for c in mro if _declares_twin(c)), None)
    runs = next(c for c in mro if "forward" in vars(c))
    return owner is not None and owner is not Layer and issubclass(owner, runs)


def _to_torch_layer(layer: Layer, path: str, nn: Any) -> Any:
    if isinstance(layer, Sequential):
        prefix = f"{path}." if path else ""
        return nn.Sequential(
            *[_to_torch_layer(child, f"{prefix}{i}", nn) for i, child in enumerate(layer.layers)]
        )
    module = layer.to_torch_module(nn) if _twin_applies(layer) else None
    if module is not None:
        return module
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
