"""Param: a weight tensor of a layer, with the gradient its backward pass wrote."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..errors import PhaseError, ShapeError
from ..numbers import cast


class Param:
    """A learnable tensor ``W`` and its gradient ``δw = ∂Loss/∂W``.

    * ``value``: the current weights (settable; the new value must have the same shape and is
      cast to the parameter's dtype).
    * ``grad``: the gradient of the last backward pass, same shape as ``value``; ``None`` before the
      first one. A backward pass **replaces** it (one batch, one gradient) unless the model's
      backward is called with ``accumulate=True``, which **adds** to it. A backward pass may
      write the new gradient **into** the array of the previous one (as PyTorch's in-place
      ``.grad``), when that array is the parameter's own buffer (:meth:`grad_buffer`): copy a
      ``grad`` you want to keep across steps. An array you assign to ``grad`` yourself, or one left
      by ``zero_grad``/gradient clipping/accumulation, is never written into.
    * ``name``: its name inside its layer (``"weight"``, ``"bias"``); models prefix it with the
      layer's position (``"1.weight"``).
    * ``training``: follows the phase of the layer that owns it; an optimizer refuses to update a
      parameter in the inference phase.
    """

    __slots__ = ("_value", "grad", "name", "training", "accumulate", "owner", "_own_grad")

    def __init__(self, value: np.ndarray, name: str = "", owner: Any = None) -> None:
        self._value = value
        self.grad: Optional[np.ndarray] = None
        self.name = name
        self.training = True
        self.accumulate = False
        self.owner = owner
        self._own_grad: Optional[np.ndarray] = None  # the buffer grad_buffer() handed out last

    @property
    def value(self) -> np.ndarray:
        return self._value

    @value.setter
    def value(self, new: Any) -> None:
        if new is self._value:  # in-place update (``p.value -= ...``): nothing to check
            return
        arr = cast(new, self._value.dtype)
        if arr.shape != self._value.shape:
            raise ShapeError(
                f"{self.describe()}: cannot set a value of shape {arr.shape}, "
                f"the parameter has shape {self._value.shape}"
            )
        self._value = arr

    @property
    def shape(self) -> tuple:
        return self._value.shape

    @property
    def dtype(self) -> np.dtype:
        return self._value.dtype

    @property
    def size(self) -> int:
        return self._value.size

    def grad_buffer(self) -> Optional[np.ndarray]:
        """An array shaped like the parameter for a layer to write this pass's gradient into
        (``np.matmul(..., out=p.grad_buffer())``), then hand to :meth:`set_grad`.

        It is the previous gradient's array when that is the parameter's own buffer (so the
        steady state of training allocates nothing), a new buffer when ``grad`` is ``None`` or an
        array from elsewhere, and ``None`` (let NumPy allocate) when the pass accumulates or the
        parameter holds exact (object) numbers."""
        if self.accumulate or self._value.dtype == object:
            return None
        g = self.grad
        if g is None or g is not self._own_grad:
            g = self._own_grad = np.empty_like(self._value)
        return g

    def set_grad(self, g: np.ndarray) -> None:
        """Store the gradient of this backward pass (or add it when accumulating)."""
        if not self.training:
            raise PhaseError(f"{self.describe()}: no gradient in the inference phase")
        if self.accumulate and self.grad is not None:
            self.grad = self.grad + g  # a new array: never writes into a buffer a layer owns
        else:
            self.grad = g

    def zero_grad(self) -> None:
        """Forget the gradient (the next backward pass starts from nothing)."""
        self.grad = None

    def describe(self) -> str:
        owner = self.owner.describe() if self.owner is not None else "parameter"
        return f"{owner} parameter '{self.name}'"

    def __repr__(self) -> str:
        return f"Param(name={self.name!r}, shape={self.shape}, dtype={self.dtype})"
