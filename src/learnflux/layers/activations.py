"""Element-wise activations. Each keeps, in the training phase, the least it needs for backward
(a boolean mask, or its own output) and computes ``δ_in = δ_out ⊙ f'(x)``."""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from .. import kernels
from ..core.layer import Layer, register_layer
from ..errors import ConfigError, UnsupportedTorchOption
from ..kernels.reference import eltwise as _eltwise
from ..numbers import scalar_like

# ``max(x, 0)`` for float arrays; kept importable here (the machinery is in kernels.reference)
relu_float = _eltwise.relu_float


class Activation(Layer):
    """Base of the element-wise activations: any input shape, output of the same shape."""

    def __init__(self) -> None:
        super().__init__()
        self._cache: Optional[np.ndarray] = None

    def _cache_attrs(self) -> tuple[str, ...]:
        return ("_cache",)

    def _saved_for(self, delta_out: np.ndarray) -> Any:
        """What the forward pass kept (an array, or a tuple whose first array has the input's
        shape), once checked that backward may run and that δ has the output's shape."""
        return self._saved_for_shape(delta_out.shape)

    def _saved_for_shape(self, shape: tuple) -> Any:
        """:meth:`_saved_for` for a δ of ``shape`` (a fused backward pass that holds the shape of
        the δ this layer would receive, not the δ itself)."""
        saved = self._cache
        self.check_trainable(saved)
        ref = saved[0] if isinstance(saved, tuple) else saved
        if tuple(shape) != ref.shape:
            raise self.shape_error(f"δ has shape {tuple(shape)}, expected {ref.shape}")
        return saved

    def output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    def summary_name(self) -> str:
        return f"{type(self).__name__}()"


@register_layer
class ReLU(Activation):
    """``ReLU(x) = x if x ≥ 0 else 0``.

    Backward, evaluated on the layer's input (docs/conventions.md, 'ReLU at 0'):
    ``δ_in = δ_out if x ≥ 0 else 0``, so the derivative at exactly 0 is **1** (PyTorch uses 0
    there). This is what lets the seed's third sample (``o2 = 0``) learn.
    """

    supports_exact = True
    flops_per_element = 1
    torch_twins = ("ReLU",)

    def forward(self, x: np.ndarray) -> np.ndarray:
        # backward needs the input's sign (ReLU'(0) = 1), not the output's: a mask [x ≥ 0]
        out, mask = kernels.ops().relu_forward(x, self.training)
        if self.training:
            self._cache = mask
        return out

    def forward_fused(self, out: np.ndarray, mask: Optional[np.ndarray]) -> np.ndarray:
        """Take the output and mask that the layer before computed for this layer in one pass
        (``Conv2d.forward_relu``): the same ``ReLU(x)`` and ``[x ≥ 0]`` that :meth:`forward`
        would return and keep, so :meth:`backward` runs unchanged."""
        if self.training:
            self._cache = mask
        return out

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> np.ndarray:
        mask = self._saved_for(delta_out)
        return kernels.ops().relu_backward(delta_out, mask)


@register_layer
class LeakyReLU(Activation):
    """``LeakyReLU(x) = x if x ≥ 0 else negative_slope · x`` (default slope 0.01).

    Backward: ``δ_in = δ_out if x ≥ 0 else negative_slope · δ_out`` (derivative 1 at 0, as ReLU).
    In exact arithmetic the slope is read from its decimal text (0.01 → 1/100).
    """

    supports_exact = True
    flops_per_element = 2
    torch_twins = ("LeakyReLU",)

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def _slope(self) -> Any:
        return scalar_like(self.negative_slope, self.dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        mask = x >= 0
        if self.training:
            self._cache = mask
        return np.where(mask, x, x * self._slope())

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> np.ndarray:
        mask = self._saved_for(delta_out)
        return np.where(mask, delta_out, delta_out * self._slope())

    def get_config(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope}

    def summary_name(self) -> str:
        return f"LeakyReLU({self.negative_slope})"


@register_layer
class Sigmoid(Activation):
    """``σ(x) = 1 / (1 + e^(−x))``, computed as ``½(1 + tanh(x/2))`` (no overflow).

    Backward: ``δ_in = δ_out ⊙ σ(x)(1 − σ(x))``, from the cached output. Not exact: e^x is not a
    fraction.
    """

    flops_per_element = 4
    torch_twins = ("Sigmoid",)

    def forward(self, x: np.ndarray) -> np.ndarray:
        out = np.tanh(x * 0.5)
        out += 1
        out *= 0.5
        if self.training:
            self._cache = out
        return out

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> np.ndarray:
        out = self._saved_for(delta_out)
        return delta_out * out * (1 - out)


@register_layer
class Tanh(Activation):
    """``tanh(x)``. Backward: ``δ_in = δ_out ⊙ (1 − tanh(x)²)``, from the cached output."""

    flops_per_element = 4
    torch_twins = ("Tanh",)

    def forward(self, x: np.ndarray) -> np.ndarray:
        out = np.tanh(x)
        if self.training:
            self._cache = out
        return out

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> np.ndarray:
        out = self._saved_for(delta_out)
        return delta_out * (1 - out * out)


# ---------------------------------------------------------------------- the error function
# erfc(z) for z ≥ 0 (a Chebyshev expansion) lives with the NumPy GELU kernel in kernels.reference
_erfc_nonneg = _eltwise.erfc_nonneg
# erf(x) = (2/√π)·Σ_n (−1)ⁿ x^(2n+1) / (n!(2n+1)): exact Taylor coefficients, used for |x| < 1/2
_ERF_TAYLOR = tuple((-1) ** n * 2 / math.sqrt(math.pi) / (math.factorial(n) * (2 * n + 1)) for n in range(14))


def erfc(x: Any) -> np.ndarray:
    """The complementary error function ``erfc(x) = 1 − erf(x)``, vectorised (float32/float64),
    accurate to a few units in the last place of float64 (SciPy is not needed)."""
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    with np.errstate(over="ignore", under="ignore"):
        pos = _erfc_nonneg(np.abs(x))
    return np.where(x >= 0, pos, 2 - pos)


def erf(x: Any) -> np.ndarray:
    """The error function ``erf(x) = (2/√π)∫₀ˣ e^(−t²) dt``, vectorised (float32/float64).

    Taylor series for ``|x| < 1/2`` (no cancellation), ``±(1 − erfc(|x|))`` elsewhere; agrees with
    ``math.erf`` to about 1e-16 in float64."""
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    a = np.abs(x)
    with np.errstate(over="ignore", under="ignore"):
        out = 1 - _erfc_nonneg(a)
    np.copysign(out, x, out=out)
    small = a < 0.5
    if small.any():
        xs = x[small]
        x2 = xs * xs
        coef = np.asarray(_ERF_TAYLOR, dtype=x.dtype)
        acc = np.full_like(xs, coef[-1])
        for c in coef[-2::-1]:
            acc *= x2
            acc += c
        out[small] = acc * xs
    return out


@register_layer
class GELU(Activation):
    """Gaussian Error Linear Unit: ``GELU(x) = x·Φ(x)``, Φ the standard normal CDF.

    ``approximate="none"`` (default, PyTorch's): ``Φ(x) = ½(1 + erf(x/√2))``, computed as
    ``1 − ½erfc(x/√2)`` for x ≥ 0 and ``½erfc(−x/√2)`` for x < 0 (no cancellation in the tail).
    Backward: ``δ_in = δ_out ⊙ (Φ(x) + x·φ(x))`` with ``φ(x) = e^(−x²/2)/√(2π)``.

    ``approximate="tanh"``: ``GELU(x) ≈ ½x(1 + tanh(u))``, ``u = √(2/π)(x + 0.044715x³)``;
    backward ``δ_in = δ_out ⊙ (½(1 + tanh u) + ½x(1 − tanh² u)·√(2/π)(1 + 3·0.044715x²))``.

    Not exact (erf and tanh are not fractions).
    """

    flops_per_element = 8
    torch_twins = ("GELU",)

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ConfigError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: np.ndarray) -> np.ndarray:
        # keeps (x, Φ(x)), or (x, tanh u) for the approximation: what backward needs
        out, saved = kernels.ops().gelu_forward(x, self.approximate, self.training)
        if self.training:
            self._cache = saved
        return out

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> np.ndarray:
        saved = self._saved_for(delta_out)
        return kernels.ops().gelu_backward(delta_out, saved, self.approximate)

    def get_config(self) -> dict[str, Any]:
        return {} if self.approximate == "none" else {"approximate": self.approximate}

    def summary_name(self) -> str:
        return "GELU()" if self.approximate == "none" else f"GELU(approximate={self.approximate!r})"


@register_layer
class SiLU(Activation):
    """Sigmoid Linear Unit (swish): ``SiLU(x) = x·σ(x)``, σ computed as ``½(1 + tanh(x/2))``.

    Backward: ``δ_in = δ_out ⊙ σ(x)·(1 + x·(1 − σ(x)))``. Not exact.
    """

    flops_per_element = 5
    torch_twins = ("SiLU",)

    def forward(self, x: np.ndarray) -> np.ndarray:
        sig = np.tanh(x * 0.5)
        sig += 1
        sig *= 0.5
        if self.training:
            self._cache = (x, sig)
        return x * sig

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> np.ndarray:
        x, sig = self._saved_for(delta_out)
        d = 1 - sig
        d *= x
        d += 1
        d *= sig
        d *= delta_out
        return d


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``s_i = e^(x_i − max x) / Σ_j e^(x_j − max x)`` along ``axis`` (a new array).

    The shift by the maximum avoids overflow and does not change the result. A slice that holds
    only −∞ (every position masked out) has no maximum to shift by: its softmax is NaN, as in
    PyTorch's ``softmax``. Used by :class:`Softmax` and by the attention layers."""
    with np.errstate(invalid="ignore"):  # −∞ − (−∞) in a fully masked slice: NaN, as PyTorch
        s = np.exp(x - x.max(axis=axis, keepdims=True))
    s /= s.sum(axis=axis, keepdims=True)
    return s


def softmax_backward(s: np.ndarray, delta_out: np.ndarray, axis: int = -1) -> np.ndarray:
    """``δ_in = s ⊙ (δ_out − Σ_j δ_out,j·s_j)`` along ``axis``: the δ of softmax's input from its
    output ``s`` (Jacobian ``∂s_i/∂x_j = s_i(1[i=j] − s_j)``). A new array."""
    d = delta_out - (delta_out * s).sum(axis=axis, keepdims=True)
    d *= s
    return d


class _AlongAxis(Activation):
    """Shared by Softmax and LogSoftmax: a normalisation along one axis (not the batch axis)."""

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = int(dim)
        if self.dim == 0:
            raise ConfigError(
                f"{type(self).__name__}: dim 0 is the batch axis; use dim >= 1 (or a negative dim)"
            )

    def _axis(self, ndim: int) -> int:
        axis = self.dim + ndim if self.dim < 0 else self.dim
        if not 1 <= axis < ndim:
            raise self.shape_error(
                f"dim {self.dim} is not a feature axis of an input with {ndim} axes "
                "(axis 0 is the batch axis)"
            )
        return axis

    def _shifted_exp(self, x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
        """``x − max(x)`` and ``exp(x − max(x))`` along ``axis`` (no overflow)."""
        shifted = x - x.max(axis=axis, keepdims=True)
        return shifted, np.exp(shifted)

    def output_shape(self, input_shape: tuple) -> tuple:
        self._axis(len(input_shape) + 1)
        return tuple(input_shape)

    @classmethod
    def from_torch_module(cls, module: Any) -> Layer:
        if module.dim is None:
            raise UnsupportedTorchOption(
                "dim=None (PyTorch's implicit, deprecated choice of axis); "
                "give the axis explicitly, e.g. dim=1"
            )
        return cls(dim=module.dim)

    def get_config(self) -> dict[str, Any]:
        return {"dim": self.dim}

    def summary_name(self) -> str:
        return f"{type(self).__name__}(dim={self.dim})"


@register_layer
class Softmax(_AlongAxis):
    """``s_i = e^(x_i − max x) / Σ_j e^(x_j − max x)`` along ``dim`` (the max shift avoids
    overflow and does not change the result).

    Backward (Jacobian ``∂s_i/∂x_j = s_i(1[i=j] − s_j)``): ``δ_in = s ⊙ (δ_out − Σ_j δ_out,j·s_j)``,
    the sum along ``dim``. For classification prefer logits + ``CrossEntropyLoss``, which fuses
    softmax and its backward.

    Args:
        dim: the axis holding the classes (counting the batch axis 0; default the last).
    """

    flops_per_element = 4
    torch_twins = ("Softmax",)

    def forward(self, x: np.ndarray) -> np.ndarray:
        s = softmax(x, self._axis(x.ndim))
        if self.training:
            self._cache = s
        return s

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> np.ndarray:
        s = self._saved_for(delta_out)
        return softmax_backward(s, delta_out, self._axis(s.ndim))


@register_layer
class LogSoftmax(_AlongAxis):
    """``o_i = x_i − max x − ln Σ_j e^(x_j − max x)`` along ``dim`` (log of the softmax, stable).

    Backward: ``δ_in = δ_out − softmax(x) ⊙ Σ_j δ_out,j`` (``softmax = e^o``, from the cached
    output; the sum along ``dim``).

    Args:
        dim: the axis holding the classes (counting the batch axis 0; default the last).
    """

    flops_per_element = 4
    torch_twins = ("LogSoftmax",)

    def forward(self, x: np.ndarray) -> np.ndarray:
        axis = self._axis(x.ndim)
        shifted, e = self._shifted_exp(x, axis)
        shifted -= np.log(e.sum(axis=axis, keepdims=True))
        if self.training:
            self._cache = shifted
        return shifted

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> np.ndarray:
        out = self._saved_for(delta_out)
        axis = self._axis(out.ndim)
        d = np.exp(out)
        d *= delta_out.sum(axis=axis, keepdims=True)
        np.subtract(delta_out, d, out=d)
        return d


__all__ = [
    "Activation",
    "ReLU",
    "LeakyReLU",
    "Sigmoid",
    "Tanh",
    "GELU",
    "SiLU",
    "Softmax",
    "LogSoftmax",
    "softmax",
    "softmax_backward",
    "erf",
    "erfc",
]
