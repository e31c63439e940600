"""Identity: a layer that passes its input through, PyTorch's ``nn.Identity``."""

from __future__ import annotations

from typing import Any

from ..core.layer import Layer, register_layer


@register_layer
class Identity(Layer):
    """``o = x``; backward ``δ_in = δ_out`` (∂o/∂x = 1 element-wise).

    A placeholder where a layer is optional (a residual branch that does nothing, a head removed
    from a network); ``lf.from_torch`` turns PyTorch's ``nn.Identity`` into it. Unlike
    :class:`~learnflux.layers.input.Input` it checks no shape and never starts a graph.

    Input shape: any, ``(batch, ...)``. Output shape: the same (the very array, no copy).
    Exact arithmetic: yes.
    """

    supports_exact = True
    flops_per_element = 0
    torch_twins = ("Identity",)

    def forward(self, x: Any) -> Any:
        return x

    def backward(self, delta_out: Any, need_input_delta: bool = True) -> Any:
        self.check_trainable(cache=True)  # nothing cached, but the phase must allow it
        return delta_out

    def output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)


__all__ = ["Identity"]
