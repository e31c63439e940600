"""Input: where data enters the model."""

from __future__ import annotations

from typing import Any, Union

import numpy as np

from ..core.layer import Layer, register_layer
from ..core.node import Node


@register_layer
class Input(Layer):
    """The identity layer where data enters: ``o = x`` and ``δ_in = δ_out``.

    Args:
        shape: the per-sample shape, an int for vectors (``Input(3)``) or a tuple for images
            (``Input((1, 28, 28))``); ``None`` in a position accepts any size there.

    Input shape: ``(batch, *shape)``. Output shape: the same.

    Used first in a ``Sequential``, or as the start of a graph in the functional API
    (``x = Input(4); y = Linear(4, 2)(x)``).
    """

    supports_exact = True
    flops_per_element = 0

    def __init__(self, shape: Union[int, tuple, list, None] = None) -> None:
        super().__init__()
        if isinstance(shape, int):
            shape = (shape,)
        self.shape: tuple | None = tuple(shape) if shape is not None else None
        self.node = Node(self, ())  # what the functional API calls layers on (learnflux.core.node)

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.shape is not None:
            s = x.shape
            if len(s) != len(self.shape) + 1 or any(
                e is not None and e != a for e, a in zip(self.shape, s[1:], strict=True)
            ):
                raise self.shape_error(
                    f"expected input of shape (batch, {', '.join(map(str, self.shape))}), got {tuple(s)}"
                )
        return x

    def backward(self, delta_out: Any, need_input_delta: bool = True) -> Any:
        self.check_trainable(cache=True)  # nothing cached, but the phase must allow it
        return delta_out

    def output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    def to_torch_module(self, nn: Any) -> Any:
        """``nn.Identity()`` (which ``lf.from_torch`` turns into an ``Identity``)."""
        return nn.Identity()

    def get_config(self) -> dict[str, Any]:
        return {"shape": list(self.shape) if self.shape is not None else None}

    def summary_name(self) -> str:
        return f"Input({self.shape if self.shape is None or len(self.shape) > 1 else self.shape[0]})"
