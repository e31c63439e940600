"""Normalization layers: batch normalization (1d and 2d), layer normalization and RMS normalization.

Batch norm and layer norm standardise their input, ``x̂ = (x − μ) / σ`` with
``σ = √(biased variance + ε)``, then apply a learnable affine map ``o = γ·x̂ + β``. They differ in
the axes ``μ`` and ``σ`` are taken over: the batch (and spatial) axes for batch norm, the trailing
feature axes for layer norm. RMS norm (:class:`RMSNorm`) only divides by the root mean square of
the trailing axes, ``o = γ·x/√(mean(x²) + ε)``.

The backward pass is the fused formula (``m`` = number of values sharing one ``μ, σ``, means over
those values)::

    δx̂ = γ·δ
    δx  = (1/σ)·(δx̂ − mean(δx̂) − x̂·mean(δx̂·x̂))
    δγ  = Σ δ·x̂          δβ = Σ δ

which is what the chain rule through ``μ`` and ``σ`` gives once simplified; it needs only ``x̂``
and ``1/σ`` from the forward pass.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import numpy as np

from .. import kernels
from ..core.layer import Layer, register_layer
from ..errors import ConfigError
from ..numbers import scalar_like


class _BatchNorm(Layer):
    """Shared machinery of BatchNorm1d and BatchNorm2d (channel axis 1)."""

    _ndims: tuple[int, ...] = ()
    _layout: str = ""
    flops_per_element = 2  # inference: a scale and a shift per value

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: Optional[float] = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__()
        if int(num_features) <= 0:
            raise ConfigError(f"{type(self).__name__}: num_features must be positive, got {num_features}")
        if eps <= 0:
            raise ConfigError(f"{type(self).__name__}: eps must be positive, got {eps}")
        if momentum is not None and not 0 <= momentum <= 1:
            raise ConfigError(f"{type(self).__name__}: momentum must be in [0, 1] or None, got {momentum}")
        self.num_features = int(num_features)
        self.eps = float(eps)
        self.momentum = None if momentum is None else float(momentum)
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        c = self.num_features
        if self.affine:
            self.add_param("weight", np.ones(c))
            self.add_param("bias", np.zeros(c))
        if self.track_running_stats:
            self.add_buffer("running_mean", np.zeros(c, dtype=self.dtype))
            self.add_buffer("running_var", np.ones(c, dtype=self.dtype))
            self.add_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        self._xhat: Optional[np.ndarray] = None
        self._inv_std: Optional[np.ndarray] = None

    # ------------------------------------------------------------------ buffers as attributes
    @property
    def running_mean(self) -> Optional[np.ndarray]:
        return self._buffers.get("running_mean")

    @property
    def running_var(self) -> Optional[np.ndarray]:
        return self._buffers.get("running_var")

    @property
    def num_batches_tracked(self) -> Optional[np.ndarray]:
        return self._buffers.get("num_batches_tracked")

    # ------------------------------------------------------------------ helpers
    def _check(self, x: np.ndarray) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Validate the input; return the reduction axes and the broadcast shape of (C,)."""
        if x.ndim not in self._ndims or x.shape[1] != self.num_features:
            raise self.shape_error(
                f"expected input of shape {self._layout.format(c=self.num_features)}, got {tuple(x.shape)}"
            )
        axes = (0,) + tuple(range(2, x.ndim))
        bshape = (1, self.num_features) + (1,) * (x.ndim - 2)
        return axes, bshape

    def _update_running_stats(self, mean: np.ndarray, var: np.ndarray, m: int) -> None:
        dt = self.dtype
        count = self._buffers["num_batches_tracked"] + 1
        self._buffers["num_batches_tracked"] = np.array(count, dtype=np.int64)
        factor = 1.0 / float(count) if self.momentum is None else self.momentum
        f = scalar_like(factor, dt)
        keep = scalar_like(1.0 - factor, dt)
        unbiased = var * scalar_like(m / (m - 1), dt)
        self._buffers["running_mean"] = keep * self._buffers["running_mean"] + f * mean
        self._buffers["running_var"] = keep * self._buffers["running_var"] + f * unbiased

    # ------------------------------------------------------------------ the contract
    def forward(self, x: np.ndarray) -> np.ndarray:
        return self._forward(x, False)[0]

    def forward_relu(self, x: np.ndarray) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """``ReLU(forward(x))`` and, in training, ReLU's mask ``[o ≥ 0]`` (for
        :meth:`ReLU.forward_fused`): the compiled kernels write both in the normalisation's
        output pass, with the same values as the two layers one after the other. A
        ``Sequential`` calls it for a batch norm followed by a ``ReLU`` when nothing records the
        pre-activation, and its backward pass then hands the ReLU's δ and mask to
        :meth:`backward_relu`."""
        return self._forward(x, True)

    def _forward(self, x: np.ndarray, relu: bool) -> tuple[np.ndarray, Optional[np.ndarray]]:
        axes, bshape = self._check(x)
        dt = self.dtype
        eps = scalar_like(self.eps, dt)
        use_batch = self.training or not self.track_running_stats
        if not use_batch:
            # inference phase: the running statistics stand in for the batch's
            scale = 1 / np.sqrt(self._buffers["running_var"] + eps)
            if self.affine:
                scale = scale * self.weight.value
            out = x - self._buffers["running_mean"].reshape(bshape)
            out *= scale.reshape(bshape)
            if self.affine:
                out += self.bias.value.reshape(bshape)
            return kernels.ops().relu_forward(out, self.training) if relu else (out, None)
        m = x.size // self.num_features
        if self.training and m <= 1:
            raise self.shape_error(
                f"expected more than 1 value per channel in the training phase, "
                f"got input of shape {tuple(x.shape)}"
            )
        # one row of values per (sample, channel): statistics, x̂ and o in the kernels
        x3 = x.reshape(x.shape[0], self.num_features, -1)
        gamma = self.weight.value if self.affine else None
        beta = self.bias.value if self.affine else None
        mask, ops = None, kernels.ops()
        if relu:
            out, mask, xhat, mean, var, inv_std = ops.batchnorm_relu_forward(x3, gamma, beta, self.eps)
            mask = mask.reshape(x.shape) if self.training else None
        else:
            out, xhat, mean, var, inv_std = ops.batchnorm_forward(x3, gamma, beta, self.eps)
        if self.training:
            if self.track_running_stats:
                self._update_running_stats(mean, var, m)
            self._xhat = xhat.reshape(x.shape)
            self._inv_std = inv_std
        return out.reshape(x.shape), mask

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> Optional[np.ndarray]:
        return self.backward_relu(delta_out, None, need_input_delta)

    def backward_relu(
        self, delta_out: np.ndarray, relu_mask: Optional[np.ndarray], need_input_delta: bool = True
    ) -> Optional[np.ndarray]:
        """:meth:`backward` of ``δ_out ⊙ relu_mask``: the backward pass of this batch norm and the
        ``ReLU`` after it (``relu_mask`` its ``[o ≥ 0]``, ``delta_out`` the ReLU's output δ), the
        mask read in the same C pass (``None``: no ReLU, plain :meth:`backward`)."""
        xhat = self._xhat
        self.check_trainable(xhat)
        if delta_out.shape != xhat.shape:
            raise self.shape_error(f"δ has shape {tuple(delta_out.shape)}, expected {xhat.shape}")
        n, c = xhat.shape[0], self.num_features
        gain = self._inv_std if not self.affine else self._inv_std * self.weight.value
        mask3 = None if relu_mask is None else relu_mask.reshape(n, c, -1)
        # δx = gain·(δ − mean(δ) − x̂·mean(δ·x̂)) and the sums Σδ, Σδ·x̂ per channel
        d_in, sum_d, sum_dx = kernels.ops().batchnorm_backward(
            delta_out.reshape(n, c, -1), xhat.reshape(n, c, -1), gain, need_input_delta, mask3
        )
        if self.affine:
            self.weight.set_grad(sum_dx)
            self.bias.set_grad(sum_d)
        return None if d_in is None else d_in.reshape(xhat.shape)

    def _cache_attrs(self) -> tuple[str, ...]:
        return ("_xhat", "_inv_std")

    def output_shape(self, input_shape: tuple) -> tuple:
        if len(input_shape) + 1 not in self._ndims or input_shape[0] != self.num_features:
            raise self.shape_error(
                f"expected input of shape {self._layout.format(c=self.num_features)}, "
                f"got per-sample shape {tuple(input_shape)}"
            )
        return tuple(input_shape)

    @classmethod
    def state_shapes(cls, args: Any) -> dict[str, tuple]:
        n = args.size("num_features")
        state: dict[str, tuple] = {}
        if args.flag("affine", True):
            state.update(weight=(n,), bias=(n,))
        if args.flag("track_running_stats", True):
            state.update(running_mean=(n,), running_var=(n,), num_batches_tracked=())
        return state

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"num_features": self.num_features}
        if self.eps != 1e-5:
            config["eps"] = self.eps
        if self.momentum != 0.1:
            config["momentum"] = self.momentum
        if not self.affine:
            config["affine"] = False
        if not self.track_running_stats:
            config["track_running_stats"] = False
        return config


@register_layer
class BatchNorm1d(_BatchNorm):
    """Batch normalization over a batch of vectors (after a Linear) or of sequences.

    Training phase, for each feature ``c`` (over the batch, and the length ``L`` if present;
    ``m`` values per feature)::

        μ_c = mean(x_c)      σ_c = √(mean((x_c − μ_c)²) + ε)      x̂ = (x − μ_c) / σ_c
        o   = γ_c · x̂ + β_c

    and the running statistics are updated as PyTorch does (unbiased variance, and
    ``momentum = None`` means a cumulative average)::

        running_mean ← (1 − momentum)·running_mean + momentum·μ
        running_var  ← (1 − momentum)·running_var  + momentum·σ²_biased·m/(m − 1)

    Inference phase: ``o = γ·(x − running_mean)/√(running_var + ε) + β`` (no cache, nothing
    updated). Without running statistics (``track_running_stats=False``) the batch statistics are
    used in both phases.

    Backward (fused): ``δx = (γ/σ)·(δ − mean(δ) − x̂·mean(δ·x̂))``, ``δγ = Σ δ·x̂``, ``δβ = Σ δ``.

    Args:
        num_features: ``C``, the number of features (channels).
        eps: added to the variance before the square root.
        momentum: weight of the new batch in the running statistics (``None``: cumulative mean).
        affine: learn ``γ`` (``weight``, starts at 1) and ``β`` (``bias``, starts at 0).
        track_running_stats: keep ``running_mean``, ``running_var`` and ``num_batches_tracked``
            buffers (PyTorch's names) and use them in the inference phase.

    Input shape: ``(batch, C)`` or ``(batch, C, L)``. Output shape: the same.
    """

    _ndims = (2, 3)
    _layout = "(batch, {c}) or (batch, {c}, length)"
    torch_twins = ("BatchNorm1d",)


@register_layer
class BatchNorm2d(_BatchNorm):
    """Batch normalization of images, per channel over batch × height × width
    (docs/conventions.md, 'Batch normalization').

    Same maths, arguments, buffers and phases as :class:`BatchNorm1d`; ``μ_c`` and ``σ_c`` are
    taken over the ``m = batch·H·W`` values of channel ``c``::

        x̂ = (x − μ_c)/σ_c,   o = γ_c·x̂ + β_c
        δx = (γ_c/σ_c)·(δ − mean(δ) − x̂·mean(δ·x̂)),   δγ_c = Σ δ·x̂,   δβ_c = Σ δ

    Input shape: ``(batch, C, H, W)``. Output shape: the same.
    """

    _ndims = (4,)
    _layout = "(batch, {c}, height, width)"
    torch_twins = ("BatchNorm2d",)


@register_layer
class LayerNorm(Layer):
    """Layer normalization: each sample is standardised over its last ``len(normalized_shape)``
    axes (independently of the rest of the batch, so training and inference agree).

    Forward, per sample over the ``D`` values of the normalized axes::

        μ = mean(x)      σ = √(mean((x − μ)²) + ε)      x̂ = (x − μ)/σ      o = γ ⊙ x̂ + β

    Backward, with ``g = γ ⊙ δ``::

        δx = (1/σ)·(g − mean(g) − x̂·mean(g ⊙ x̂))
        δγ = Σ_batch δ ⊙ x̂       δβ = Σ_batch δ

    Args:
        normalized_shape: the trailing shape to normalize over (an int for the last axis).
        eps: added to the variance before the square root.
        elementwise_affine: learn ``γ`` (``weight``, ones) and ``β`` (``bias``, zeros), each of
            shape ``normalized_shape``.
        bias: with ``elementwise_affine``, also learn ``β`` (as PyTorch's ``bias=``).

    Input shape: ``(batch, ..., *normalized_shape)``. Output shape: the same.
    """

    flops_per_element = 5
    torch_twins = ("LayerNorm",)

    def __init__(
        self,
        normalized_shape: Union[int, Sequence[int]],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if isinstance(normalized_shape, (int, np.integer)):
            normalized_shape = (int(normalized_shape),)
        self.normalized_shape = tuple(int(s) for s in normalized_shape)
        if not self.normalized_shape or any(s <= 0 for s in self.normalized_shape):
            raise ConfigError(f"LayerNorm: invalid normalized_shape {normalized_shape!r}")
        if eps <= 0:
            raise ConfigError(f"LayerNorm: eps must be positive, got {eps}")
        self.eps = float(eps)
        self.elementwise_affine = bool(elementwise_affine)
        self.use_bias = bool(bias) and self.elementwise_affine
        if self.elementwise_affine:
            self.add_param("weight", np.ones(self.normalized_shape))
            if self.use_bias:
                self.add_param("bias", np.zeros(self.normalized_shape))
        self._xhat: Optional[np.ndarray] = None
        self._inv_std: Optional[np.ndarray] = None

    def _axes(self, shape: tuple) -> tuple[int, ...]:
        k = len(self.normalized_shape)
        if len(shape) <= k or tuple(shape[-k:]) != self.normalized_shape:
            raise self.shape_error(
                f"expected input of shape (batch, ..., "
                f"{', '.join(map(str, self.normalized_shape))}), got {tuple(shape)}"
            )
        return tuple(range(len(shape) - k, len(shape)))

    def forward(self, x: np.ndarray) -> np.ndarray:
        axes = self._axes(x.shape)
        mean = x.mean(axis=axes, keepdims=True)
        xhat = x - mean
        var = np.mean(xhat * xhat, axis=axes, keepdims=True)
        inv_std = 1 / np.sqrt(var + scalar_like(self.eps, self.dtype))
        xhat *= inv_std
        if self.training:
            self._xhat = xhat
            self._inv_std = inv_std
        if not self.elementwise_affine:
            return xhat.copy() if self.training else xhat
        out = xhat * self.weight.value
        if self.use_bias:
            out += self.bias.value
        return out

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> Optional[np.ndarray]:
        xhat = self._xhat
        self.check_trainable(xhat)
        if delta_out.shape != xhat.shape:
            raise self.shape_error(f"δ has shape {tuple(delta_out.shape)}, expected {xhat.shape}")
        axes = self._axes(xhat.shape)
        lead = tuple(range(xhat.ndim - len(axes)))
        if self.elementwise_affine:
            self.weight.set_grad((delta_out * xhat).sum(axis=lead))
            if self.use_bias:
                self.bias.set_grad(delta_out.sum(axis=lead))
            g = delta_out * self.weight.value
        else:
            g = delta_out
        if not need_input_delta:
            return None
        mean_g = g.mean(axis=axes, keepdims=True)
        mean_gx = (g * xhat).mean(axis=axes, keepdims=True)
        d_in = xhat * mean_gx
        np.subtract(g, d_in, out=d_in)
        d_in -= mean_g
        d_in *= self._inv_std
        return d_in

    def _cache_attrs(self) -> tuple[str, ...]:
        return ("_xhat", "_inv_std")

    def output_shape(self, input_shape: tuple) -> tuple:
        self._axes((1, *input_shape))
        return tuple(input_shape)

    @classmethod
    def state_shapes(cls, args: Any) -> dict[str, tuple]:
        shape = _normalized_shape_arg(args)
        if not args.flag("elementwise_affine", True):
            return {}
        return {"weight": shape, **({"bias": shape} if args.flag("bias", True) else {})}

    @classmethod
    def from_torch_module(cls, module: Any) -> Layer:
        bias = getattr(module, "bias", None) is not None or not module.elementwise_affine
        return cls(
            tuple(module.normalized_shape),
            eps=module.eps,
            elementwise_affine=module.elementwise_affine,
            bias=bias,
        )

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"normalized_shape": list(self.normalized_shape)}
        if self.eps != 1e-5:
            config["eps"] = self.eps
        if not self.elementwise_affine:
            config["elementwise_affine"] = False
        elif not self.use_bias:
            config["bias"] = False
        return config


def _normalized_shape_arg(args: Any) -> tuple[int, ...]:
    """A file's ``normalized_shape`` (an int or a list of them), checked (``Layer.state_shapes``)."""
    value = args.get("normalized_shape", None)
    items = value if isinstance(value, list) else [value]
    if not items or len(items) > args.max_list or not all(args.is_size(v) for v in items):
        args.fail(
            "normalized_shape", f"expected a positive integer or a list of them, got {args.show(value)}"
        )
    return tuple(items)


@register_layer
class RMSNorm(Layer):
    """Root-mean-square normalization (Zhang & Sennrich 2019; PyTorch's ``nn.RMSNorm``, the norm of
    Llama and the small language models): each sample is divided by the root mean square of its
    last ``len(normalized_shape)`` axes; unlike LayerNorm nothing is subtracted and there is no β.

    Forward, per sample over the ``D`` values of the normalized axes::

        r = 1/√(mean(x²) + ε)      x̂ = x·r      o = γ ⊙ x̂

    Backward, with ``g = γ ⊙ δ`` (the path through ``r`` gives the second term)::

        δx = r·(g − x̂·mean(g ⊙ x̂))
        δγ = Σ_batch δ ⊙ x̂

    Args:
        normalized_shape: the trailing shape to normalize over (an int for the last axis).
        eps: added to the mean square; None (PyTorch's default): the machine epsilon of the
            input's dtype (``np.finfo(dtype).eps``: 1.2e-7 in float32, 2.2e-16 in float64).
        elementwise_affine: learn ``γ`` (``weight``, ones, of shape ``normalized_shape``).

    Input shape: ``(batch, ..., *normalized_shape)``. Output shape: the same. Not exact (√).
    """

    flops_per_element = 4
    torch_twins = ("RMSNorm",)

    def __init__(
        self,
        normalized_shape: Union[int, Sequence[int]],
        eps: Optional[float] = None,
        elementwise_affine: bool = True,
    ) -> None:
        super().__init__()
        if isinstance(normalized_shape, (int, np.integer)):
            normalized_shape = (int(normalized_shape),)
        self.normalized_shape = tuple(int(s) for s in normalized_shape)
        if not self.normalized_shape or any(s <= 0 for s in self.normalized_shape):
            raise ConfigError(f"RMSNorm: invalid normalized_shape {normalized_shape!r}")
        if eps is not None and eps <= 0:
            raise ConfigError(f"RMSNorm: eps must be positive (or None), got {eps}")
        self.eps = None if eps is None else float(eps)
        self.elementwise_affine = bool(elementwise_affine)
        if self.elementwise_affine:
            self.add_param("weight", np.ones(self.normalized_shape))
        self._xhat: Optional[np.ndarray] = None
        self._inv_rms: Optional[np.ndarray] = None

    _axes = LayerNorm._axes

    def forward(self, x: np.ndarray) -> np.ndarray:
        axes = self._axes(x.shape)
        eps = np.finfo(x.dtype).eps if self.eps is None else self.eps
        inv_rms = 1 / np.sqrt(np.mean(x * x, axis=axes, keepdims=True) + scalar_like(eps, x.dtype))
        xhat = x * inv_rms
        if self.training:
            self._xhat = xhat
            self._inv_rms = inv_rms
        return xhat * self.weight.value if self.elementwise_affine else xhat

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> Optional[np.ndarray]:
        xhat = self._xhat
        self.check_trainable(xhat)
        if delta_out.shape != xhat.shape:
            raise self.shape_error(f"δ has shape {tuple(delta_out.shape)}, expected {xhat.shape}")
        axes = self._axes(xhat.shape)
        if self.elementwise_affine:
            lead = tuple(range(xhat.ndim - len(axes)))
            self.weight.set_grad((delta_out * xhat).sum(axis=lead))
            g = delta_out * self.weight.value
        else:
            g = delta_out
        if not need_input_delta:
            return None
        d_in = xhat * (g * xhat).mean(axis=axes, keepdims=True)
        np.subtract(g, d_in, out=d_in)
        d_in *= self._inv_rms
        return d_in

    def _cache_attrs(self) -> tuple[str, ...]:
        return ("_xhat", "_inv_rms")

    output_shape = LayerNorm.output_shape

    @classmethod
    def state_shapes(cls, args: Any) -> dict[str, tuple]:
        shape = _normalized_shape_arg(args)
        return {"weight": shape} if args.flag("elementwise_affine", True) else {}

    @classmethod
    def from_torch_module(cls, module: Any) -> Layer:
        return cls(
            tuple(module.normalized_shape), eps=module.eps, elementwise_affine=module.elementwise_affine
        )

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"normalized_shape": list(self.normalized_shape)}
        if self.eps is not None:
            config["eps"] = self.eps
        if not self.elementwise_affine:
            config["elementwise_affine"] = False
        return config


__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm", "RMSNorm"]
