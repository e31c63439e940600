"""Layers built from named sub-layers, as a ``torch.nn.Module`` holds its children.

A :class:`_Composite` (``TransformerEncoderLayer``, ``MultiheadAttention``'s ``out_proj``) holds
its sub-layers under PyTorch's attribute names, so its ``state_dict`` keys are PyTorch's
(``self_attn.in_proj_weight``, ``linear1.weight``, ``norm1.bias``...). Its own ``forward`` and
``backward`` call the sub-layers' in order (the chain rule written out); this base class only
walks the children for what every layer must reach: parameters and buffers by name, the phase,
the number type and the cache. It is not a graph (``Model``): nothing here decides an order.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional

from ..core.layer import Layer
from ..core.param import Param
from ..numbers import DTypeLike


class _Composite(Layer):
    """Base of the layers made of named sub-layers (``self.children``, in PyTorch's order)."""

    def __init__(self) -> None:
        self.children: dict[str, Layer] = {}
        super().__init__()

    def add_child(self, name: str, layer: Layer) -> Layer:
        """Hold ``layer`` as ``self.<name>``; its weights are named ``<name>.weight``..."""
        self.children[name] = layer
        setattr(self, name, layer)
        layer.dtype = self.dtype
        layer.set_phase(self.training)
        layer.name = name if self.name in (None, "") else f"{self.name}.{name}"
        return layer

    # error messages name a sub-layer by its path in the model: '3.self_attn.out_proj'
    @property
    def name(self) -> Optional[str]:
        return self._name

    @name.setter
    def name(self, value: Optional[str]) -> None:
        self._name = value
        for child_name, child in getattr(self, "children", {}).items():
            child.name = child_name if value in (None, "") else f"{value}.{child_name}"

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Param]]:
        yield from super().named_parameters(prefix)
        for name, child in self.children.items():
            yield from child.named_parameters(f"{prefix}{name}.")

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        yield from super().named_buffers(prefix)
        for name, child in self.children.items():
            yield from child.named_buffers(f"{prefix}{name}.")

    def named_buffer_owners(self, prefix: str = "") -> Iterator[tuple[str, tuple[Layer, str]]]:
        yield from super().named_buffer_owners(prefix)
        for name, child in self.children.items():
            yield from child.named_buffer_owners(f"{prefix}{name}.")

    def set_phase(self, training: bool) -> None:
        super().set_phase(training)
        for child in self.children.values():
            child.set_phase(training)

    def clear_cache(self) -> None:
        super().clear_cache()
        for child in self.children.values():
            child.clear_cache()

    def astype(self, dtype: DTypeLike) -> Layer:
        super().astype(dtype)
        for child in self.children.values():
            child.astype(self.dtype)
        return self
