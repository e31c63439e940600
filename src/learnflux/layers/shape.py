"""Shape layers: Flatten, Reshape and Permute. They move no value, only the way values are
indexed, so they run in every arithmetic (including exact ``Fraction`` arithmetic)."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from ..core.layer import Layer, register_layer
from ..errors import ConfigError, UnsupportedTorchOption


@register_layer
class Flatten(Layer):
    """Merge the axes ``start_dim … end_dim`` into one (PyTorch's ``nn.Flatten``).

    Axes count the batch axis (axis 0), as in PyTorch, so the default ``Flatten()`` turns
    ``(batch, C, H, W)`` into ``(batch, C·H·W)``. Negative axes count from the end.

    Forward: ``o = reshape(x, (batch, …, ∏ shape[start_dim:end_dim+1], …))`` (a view, no copy).
    Backward: ``δ_in = reshape(δ_out, shape of x)``.

    Args:
        start_dim: first axis to flatten (not the batch axis 0).
        end_dim: last axis to flatten (inclusive).

    Input shape: ``(batch, d1, …, dk)``. Output shape: ``(batch, d1·…·dk)`` by default.
    """

    supports_exact = True
    flops_per_element = 0
    torch_twins = ("Flatten",)

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = int(start_dim)
        self.end_dim = int(end_dim)
        if self.start_dim == 0 or self.end_dim == 0:
            raise ConfigError(
                "Flatten: axis 0 is the batch axis and is never flattened; "
                "use start_dim >= 1 (or a negative axis)"
            )
        self._in_shape: Optional[tuple] = None

    def _target(self, shape: tuple) -> tuple:
        ndim = len(shape)
        start = self.start_dim + ndim if self.start_dim < 0 else self.start_dim
        end = self.end_dim + ndim if self.end_dim < 0 else self.end_dim
        if not 1 <= start < ndim or not 1 <= end < ndim or start > end:
            raise self.shape_error(
                f"cannot flatten axes {self.start_dim}..{self.end_dim} of an input of shape "
                f"{tuple(shape)} (axis 0 is the batch axis)"
            )
        merged = 1
        for s in shape[start : end + 1]:
            merged *= s
        return tuple(shape[:start]) + (merged,) + tuple(shape[end + 1 :])

    def forward(self, x: np.ndarray) -> np.ndarray:
        target = self._target(x.shape)
        if self.training:
            self._in_shape = x.shape
        return x.reshape(target)

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> np.ndarray:
        shape = self._in_shape
        self.check_trainable(shape)
        if delta_out.shape != self._target(shape):
            raise self.shape_error(f"δ has shape {tuple(delta_out.shape)}, expected {self._target(shape)}")
        return delta_out.reshape(shape)

    def _cache_attrs(self) -> tuple[str, ...]:
        return ("_in_shape",)

    def output_shape(self, input_shape: tuple) -> tuple:
        return self._target((1, *input_shape))[1:]

    def get_config(self) -> dict[str, Any]:
        return {"start_dim": self.start_dim, "end_dim": self.end_dim}


@register_layer
class Reshape(Layer):
    """Give each sample a new shape: ``(batch, *in_shape) → (batch, *shape)``.

    ``shape`` is the per-sample target shape (no batch axis, as in Keras); one entry may be
    ``-1``, inferred from the sample's size.

    Forward: ``o = reshape(x, (batch, *shape))`` (a view when possible).
    Backward: ``δ_in = reshape(δ_out, shape of x)``.

    Args:
        shape: the per-sample output shape, e.g. ``(1, 28, 28)`` or ``(16, -1)``.

    Input shape: ``(batch, *in_shape)`` with ``∏ in_shape = ∏ shape``.
    Output shape: ``(batch, *shape)``.
    """

    supports_exact = True
    flops_per_element = 0
    torch_twins = ("Unflatten",)

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__()
        if isinstance(shape, (int, np.integer)):
            shape = (int(shape),)
        self.shape = tuple(int(s) for s in shape)
        if sum(1 for s in self.shape if s == -1) > 1 or any(s < -1 or s == 0 for s in self.shape):
            raise ConfigError(f"Reshape: invalid target shape {self.shape} (positive sizes, at most one -1)")
        self._in_shape: Optional[tuple] = None

    def _target(self, sample_shape: tuple) -> tuple:
        size = 1
        for s in sample_shape:
            size *= s
        known = 1
        for s in self.shape:
            if s != -1:
                known *= s
        if -1 in self.shape:
            if known == 0 or size % known:
                raise self.shape_error(
                    f"cannot reshape a sample of shape {tuple(sample_shape)} ({size} values) to {self.shape}"
                )
            return tuple(size // known if s == -1 else s for s in self.shape)
        if known != size:
            raise self.shape_error(
                f"cannot reshape a sample of shape {tuple(sample_shape)} ({size} values) "
                f"to {self.shape} ({known} values)"
            )
        return self.shape

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim < 1:
            raise self.shape_error(f"expected a batch (batch, ...), got shape {tuple(x.shape)}")
        target = self._target(x.shape[1:])
        if self.training:
            self._in_shape = x.shape
        return x.reshape((x.shape[0], *target))

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> np.ndarray:
        shape = self._in_shape
        self.check_trainable(shape)
        expected = (shape[0], *self._target(shape[1:]))
        if delta_out.shape != expected:
            raise self.shape_error(f"δ has shape {tuple(delta_out.shape)}, expected {expected}")
        return delta_out.reshape(shape)

    def _cache_attrs(self) -> tuple[str, ...]:
        return ("_in_shape",)

    def output_shape(self, input_shape: tuple) -> tuple:
        return self._target(tuple(input_shape))

    @classmethod
    def from_torch_module(cls, module: Any) -> Layer:
        sizes = tuple(int(s) for s in module.unflattened_size)
        if module.dim != 1 or -1 in sizes:
            raise UnsupportedTorchOption(
                "only Unflatten(1, sizes) with explicit sizes (it becomes lf.Reshape(sizes))"
            )
        return cls(sizes)

    def to_torch_module(self, nn: Any) -> Any:
        """``nn.Sequential(nn.Flatten(), nn.Unflatten(1, shape))`` (no parameters, so no key moves)."""
        return nn.Sequential(nn.Flatten(), nn.Unflatten(1, tuple(self.shape)))

    def get_config(self) -> dict[str, Any]:
        return {"shape": list(self.shape)}


@register_layer
class Permute(Layer):
    """Reorder the axes of each sample: ``o = x.permute(*dims)`` (torchvision's
    ``ops.Permute``; PyTorch's ``torch.permute`` as a layer).

    ``dims`` counts the batch axis, as PyTorch does, and keeps it first (``dims[0] == 0``): a
    language model's logits ``(batch, T, classes)`` become ``Permute([0, 2, 1])`` →
    ``(batch, classes, T)``, the layout ``CrossEntropyLoss`` takes for sequences; the same layer
    turns ``(batch, T, C)`` into the ``(batch, C, L)`` that ``Conv1d`` takes.

    Forward: ``o[i_0, i_1, …] = x[i_{p⁻¹(0)}, …]``, i.e. ``o = transpose(x, dims)`` (a view, no
    copy). Backward: the inverse permutation, ``δ_in = transpose(δ_out, argsort(dims))``.

    Args:
        dims: a permutation of ``0 … ndim − 1`` (the batch axis included) that starts with 0.

    Input shape: ``(batch, d1, …, dk)`` with ``k = len(dims) − 1``. Output shape:
    ``(batch, d_{dims[1]}, …, d_{dims[k]})``.
    """

    supports_exact = True
    flops_per_element = 0

    def __init__(self, dims: Sequence[int]) -> None:
        super().__init__()
        if isinstance(dims, (int, np.integer)) or not all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in dims
        ):
            raise ConfigError(f"Permute: dims must be a list of axes, e.g. [0, 2, 1], got {dims!r}")
        self.dims = tuple(int(d) for d in dims)
        if sorted(self.dims) != list(range(len(self.dims))) or len(self.dims) < 2:
            raise ConfigError(
                f"Permute: dims must be a permutation of 0 … n − 1 (n >= 2 axes, the batch axis "
                f"included), got {list(self.dims)}"
            )
        if self.dims[0] != 0:
            raise ConfigError(
                f"Permute: axis 0 is the batch axis and stays first: dims must start with 0, "
                f"got {list(self.dims)}"
            )
        self.inverse = tuple(int(i) for i in np.argsort(self.dims))
        self._in_shape: Optional[tuple] = None

    def _check(self, shape: tuple) -> None:
        if len(shape) != len(self.dims):
            raise self.shape_error(
                f"dims={list(self.dims)} permutes {len(self.dims)} axes (the batch axis included), "
                f"but the input has shape {tuple(shape)}"
            )

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._check(x.shape)
        if self.training:
            self._in_shape = x.shape
        return np.transpose(x, self.dims)

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> np.ndarray:
        shape = self._in_shape
        self.check_trainable(shape)
        expected = tuple(shape[d] for d in self.dims)
        if delta_out.shape != expected:
            raise self.shape_error(f"δ has shape {tuple(delta_out.shape)}, expected {expected}")
        return np.transpose(delta_out, self.inverse)

    def _cache_attrs(self) -> tuple[str, ...]:
        return ("_in_shape",)

    def output_shape(self, input_shape: tuple) -> tuple:
        shape = (1, *input_shape)
        self._check(shape)
        return tuple(shape[d] for d in self.dims[1:])

    def to_torch_module(self, nn: Any) -> Any:
        """A ``torch.nn.Module`` computing ``x.permute(*dims)`` (torch.nn has no Permute;
        torchvision's ``ops.Permute`` is the same module)."""
        return _torch_permute_class(nn)(list(self.dims))

    def get_config(self) -> dict[str, Any]:
        return {"dims": list(self.dims)}


def _torch_permute_class(nn: Any) -> type:
    class Permute(nn.Module):
        def __init__(self, dims: list) -> None:
            super().__init__()
            self.dims = dims

        def forward(self, x: Any) -> Any:
            return x.permute(*self.dims)

    return Permute


__all__ = ["Flatten", "Permute", "Reshape"]
