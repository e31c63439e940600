"""Linear (fully connected / dense) layer."""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from .. import kernels
from ..core.layer import Layer, register_layer
from ..init import initialize
from ..kernels.gemm import matmul
from ..seeding import RngLike


@register_layer
class Linear(Layer):
    """``o = x · Wᵀ + b``: every output neuron is a weighted sum of every input.

    Forward (per sample): ``o_j = Σ_i W_ji · x_i + b_j``.

    Backward, with ``δ = ∂Loss/∂o`` of shape (batch, out):

    * ``δx_i = Σ_j δ_j · W_ji``  → ``δ_in = δ · W``
    * ``δW_ji = Σ_batch δ_j · x_i``  → ``W.grad = δᵀ · x`` (summed over the batch: the 1/n of
      the mean is already inside δ, docs/conventions.md, 'Loss and batches')
    * ``δb_j = Σ_batch δ_j``

    Args:
        in_features, out_features: sizes of the input and output vectors.
        bias: add a learnable bias per output neuron (starts at 0).
        init: weight initialiser (name from :mod:`learnflux.init` or a callable). Default
            ``"torch_default"``: U(−1/√in, 1/√in), as PyTorch.
        rng: generator or seed for the initialisation (default: the global one, ``lf.seed``).

    Weights: ``weight`` of shape ``(out_features, in_features)`` (``W[out][in]``, PyTorch's layout)
    and ``bias`` of shape ``(out_features,)``. Set them with ``layer.weight.value = ...``.

    Input shape: ``(batch, in_features)``, or ``(batch, …, in_features)`` as PyTorch: a sequence
    ``(batch, T, in_features)`` applies the same weights at every position (the leading axes are
    flattened into one batch of rows, so the weight gradient sums over them too). Output shape:
    ``(batch, out_features)``, or ``(batch, …, out_features)``.
    """

    supports_exact = True
    torch_twins = ("Linear",)

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        init: Any = "torch_default",
        rng: RngLike = None,
    ) -> None:
        super().__init__()
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.use_bias = bool(bias)
        self.init = init
        w = initialize(init, (self.out_features, self.in_features), self.in_features, self.out_features, rng)
        self.add_param("weight", w)
        if self.use_bias:
            self.add_param("bias", np.zeros(self.out_features))
        self._x: Optional[np.ndarray] = None
        self._lead: Optional[tuple] = None  # the leading axes of an input with more than 2

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self._forward(x, relu=False)[0]

    def forward_relu(self, x: np.ndarray) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """``ReLU(forward(x))`` and, in training, ReLU's mask ``[o ≥ 0]`` of the pre-activation
        (for :meth:`ReLU.forward_fused`): the compiled kernels add the bias and apply the ReLU in
        the one pass that writes the output, with the same values as the two layers one after the
        other. A ``Sequential`` calls it for a ``Linear`` followed by a ``ReLU`` when nothing
        records the pre-activation (see ``Sequential.forward``)."""
        return self._forward(x, relu=True)

    def _forward(self, x: np.ndarray, relu: bool) -> tuple[np.ndarray, Optional[np.ndarray]]:
        if x.ndim > 2 and x.shape[-1] == self.in_features:
            # (batch, …, in): the same product on the rows of a (batch·…, in) view
            lead = x.shape[:-1]
            out, mask = self._forward(x.reshape(-1, self.in_features), relu)
            if self.training:
                self._lead = lead
            shape = (*lead, self.out_features)
            return out.reshape(shape), (None if mask is None else mask.reshape(shape))
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise self.shape_error(
                f"expected input of shape (batch, {self.in_features}) or (batch, …, {self.in_features}), "
                f"got {tuple(x.shape)}"
            )
        # o = x·Wᵀ + b, computed as oᵀ = W·xᵀ (the operand order BLAS runs fastest; the kernel's
        # docstring, kernels/reference/dense.py, says which layout each phase returns)
        bias = self.bias.value if self.use_bias else None
        out, mask = kernels.ops().linear_forward(x, self.weight.value, bias, self.training, relu)
        if self.training:
            self._x = x
        return out, mask

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> Optional[np.ndarray]:
        return self._backward(delta_out, None, need_input_delta)

    def backward_relu(
        self, delta_out: np.ndarray, relu_mask: Optional[np.ndarray], need_input_delta: bool = True
    ) -> Optional[np.ndarray]:
        """:meth:`backward` of ``δ_out ⊙ relu_mask``: the backward pass of this layer and the
        ``ReLU`` after it (``relu_mask`` its ``[o ≥ 0]``, ``delta_out`` the ReLU's output δ); the
        compiled kernels apply the mask and sum the bias gradient in one pass (the same values
        as ``ReLU.backward`` then :meth:`backward`). A ``Sequential`` calls it for a ``Linear``
        followed by a ``ReLU`` when nothing records the δ of every layer."""
        return self._backward(delta_out, relu_mask, need_input_delta)

    def _backward(
        self, delta_out: np.ndarray, relu_mask: Optional[np.ndarray], need_input_delta: bool
    ) -> Optional[np.ndarray]:
        x = self._x
        self.check_trainable(x)
        if delta_out.ndim > 2 and self._lead is not None:
            lead = self._lead
            if delta_out.shape != (*lead, self.out_features):
                raise self.shape_error(
                    f"δ has shape {tuple(delta_out.shape)}, expected {(*lead, self.out_features)}"
                )
            mask = None if relu_mask is None else relu_mask.reshape(-1, self.out_features)
            d_in = self._backward(delta_out.reshape(-1, self.out_features), mask, need_input_delta)
            return None if d_in is None else d_in.reshape(*lead, self.in_features)
        if delta_out.shape != (x.shape[0], self.out_features):
            raise self.shape_error(
                f"δ has shape {tuple(delta_out.shape)}, expected {(x.shape[0], self.out_features)}"
            )
        # written into the previous step's gradient arrays (Param.grad_buffer): no allocation
        bias_grad = None
        if relu_mask is not None:  # δz = δ ⊙ [z ≥ 0], with Σ_batch δz for the bias in one pass
            bias_grad = self.bias.grad_buffer() if self.use_bias else None
            if self.use_bias and bias_grad is None:  # accumulating, or exact: NumPy allocates
                bias_grad = np.empty(self.out_features, delta_out.dtype)
            delta_out = kernels.ops().relu_backward_colsum(delta_out, relu_mask, bias_grad)
        if x.shape[0] == 1:
            # a batch of one: δWᵀx is an outer product, which np.matmul runs through a slow
            # non-BLAS loop (measured 5× slower than this broadcast product for 512×784)
            grad = np.multiply(delta_out.T, x, out=self.weight.grad_buffer())
        else:
            grad = matmul(delta_out.T, x, out=self.weight.grad_buffer())
        self.weight.set_grad(grad)
        if self.use_bias:
            if bias_grad is None:
                bias_grad = np.sum(delta_out, axis=0, out=self.bias.grad_buffer())
            self.bias.set_grad(bias_grad)
        return matmul(delta_out, self.weight.value) if need_input_delta else None

    def output_shape(self, input_shape: tuple) -> tuple:
        shape = tuple(input_shape)
        if not shape or shape[-1] != self.in_features:
            raise self.shape_error(f"expected inputs of size {self.in_features}, got {input_shape}")
        return (*shape[:-1], self.out_features)

    def _cache_attrs(self) -> tuple[str, ...]:
        return ("_x", "_lead")

    def flops(self, input_shape: tuple) -> int:
        """``2·in·out`` per row (a multiply-add per weight), ``+ out`` for the bias; a sample of
        shape ``(…, in)`` holds ``∏ …`` rows."""
        rows = math.prod(tuple(input_shape)[:-1])
        return rows * (2 * self.in_features * self.out_features + (self.out_features if self.use_bias else 0))

    @classmethod
    def state_shapes(cls, args: Any) -> dict[str, tuple]:
        i, o = args.size("in_features"), args.size("out_features")
        return {"weight": (o, i), **({"bias": (o,)} if args.flag("bias", True) else {})}

    @classmethod
    def from_torch_module(cls, module: Any) -> Layer:
        return cls(module.in_features, module.out_features, bias=module.bias is not None)

    def to_torch_module(self, nn: Any) -> Any:
        return nn.Linear(self.in_features, self.out_features, bias=self.use_bias)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"in_features": self.in_features, "out_features": self.out_features}
        if not self.use_bias:
            config["bias"] = False
        if isinstance(self.init, str) and self.init != "torch_default":
            config["init"] = self.init
        return config

    def summary_name(self) -> str:
        bias = "" if self.use_bias else ", bias=False"
        return f"Linear({self.in_features} → {self.out_features}{bias})"
