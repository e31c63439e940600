"""Sequence layers as their 2-D layers: a ``(batch, C, L)`` input is run as the ``(batch, C, 1, L)``
view of it, with a ``1×k`` window.

``Conv1d``, ``MaxPool1d`` and ``AvgPool1d`` are ``Conv2d``, ``MaxPool2d`` and ``AvgPool2d`` with
this mixin first among their bases: the forward and backward passes are the 2-D ones (both kernel
sets, exact arithmetic), on views that cost no copy. The 2-D layer keeps its arguments as the
pairs ``(1, k)``, ``(1, s)``, ``(0, p)``, ``(1, d)``; configs and messages give the 1-D values.
"""

from __future__ import annotations

from typing import Any, Optional, Union

import numpy as np

from ..errors import ConfigError, ShapeError

#: a 1-D size: ``k``, or PyTorch's ``(k,)``
IntOr1 = Union[int, tuple[int], list[int]]


def single(value: Any, name: str, owner: str, minimum: int = 1) -> int:
    """``3 → 3``, ``(3,) → 3`` (PyTorch's 1-tuples); a :class:`ConfigError` naming ``owner``
    otherwise."""
    item = value[0] if isinstance(value, (tuple, list)) and len(value) == 1 else value
    if not isinstance(item, (int, np.integer)) or isinstance(item, bool) or item < minimum:
        what = "positive" if minimum == 1 else "non-negative"
        raise ConfigError(f"{owner}: {name} must be a {what} int, got {value!r}")
    return int(item)


class _On1d:
    """Mixin: the 2-D layer after it in the bases, run on ``(batch, C, 1, L)`` views.

    ``_shape_in_cache``: where the 2-D layer's cache holds the 4-D input shape (the pools':
    ``(aux, input shape, H_out, W_out)``)."""

    _shape_in_cache = 1
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    _cache: Any

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 3:
            raise self.shape_error(  # type: ignore[attr-defined]
                f"expected input of shape (batch, channels, length), got {tuple(x.shape)}"
            )
        self.output_shape(tuple(x.shape[1:]))  # the checks, in 1-D words
        out = super().forward(x[:, :, None, :])  # type: ignore[misc]
        return out.reshape(out.shape[0], out.shape[1], out.shape[3])

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> Optional[np.ndarray]:
        self.check_trainable(self._cache)  # type: ignore[attr-defined]
        n, c, _, length = self._cache[self._shape_in_cache]
        expected = (n, *self.output_shape((c, length)))
        if tuple(delta_out.shape) != expected:
            raise self.shape_error(  # type: ignore[attr-defined]
                f"δ has shape {tuple(delta_out.shape)}, expected {expected}"
            )
        d_in = super().backward(delta_out[:, :, None, :], need_input_delta)  # type: ignore[misc]
        return None if d_in is None else d_in.reshape(n, c, length)

    def output_shape(self, input_shape: tuple) -> tuple:
        if len(input_shape) != 2:
            raise self.shape_error(  # type: ignore[attr-defined]
                f"expected inputs of shape (channels, length), got {tuple(input_shape)}"
            )
        c, length = input_shape
        try:
            out = super().output_shape((c, 1, length))  # type: ignore[misc]
        except ShapeError:
            k, d = self.kernel_size[1], getattr(self, "dilation", (1, 1))[1]
            padding = self.get_config().get("padding", 0)
            span = f"{d * (k - 1) + 1} values (kernel {k}, dilation {d})" if d > 1 else f"{k} values"
            raise self.shape_error(  # type: ignore[attr-defined]
                f"the window of {span} does not fit in the input of length {length} with padding {padding}"
            ) from None
        return (out[0], out[2])

    def get_config(self) -> dict[str, Any]:
        """The 2-D layer's config with the 1-D values of its ``(1, v)`` / ``(0, p)`` pairs."""
        config = super().get_config()  # type: ignore[misc]
        for key in ("kernel_size", "stride", "padding", "dilation"):
            if key in config and not isinstance(config[key], str):
                config[key] = getattr(self, key)[1]
        return config

    def summary_name(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"
