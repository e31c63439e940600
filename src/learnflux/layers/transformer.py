"""The transformer encoder block: PyTorch's ``nn.TransformerEncoderLayer``."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..core.layer import Layer, register_layer
from ..errors import ConfigError, UnsupportedTorchOption
from ..seeding import RngLike, get_rng
from ._composite import _Composite
from .activations import GELU, ReLU
from .attention import MultiheadAttention
from .dropout import Dropout
from .linear import Linear
from .norm import LayerNorm

_ACTIVATIONS = {"relu": ReLU, "gelu": GELU}


@register_layer
class TransformerEncoderLayer(_Composite):
    """One transformer block: self-attention then a position-wise feed-forward network, each
    wrapped in a residual connection and a layer normalization (PyTorch's
    ``nn.TransformerEncoderLayer``, same arguments, children and ``state_dict`` names).

    Forward, with ``SA(x) = dropout1(self_attn(x))`` and
    ``FF(x) = dropout2(linear2(dropout(activation(linear1(x)))))``::

        post-norm (norm_first=False, the original):   h = norm1(x + SA(x))     o = norm2(h + FF(h))
        pre-norm  (norm_first=True, GPT-2 and later): h = x + SA(norm1(x))     o = h + FF(norm2(h))

    Backward, the chain rule through the same steps in reverse; each residual connection adds the
    δ of its two branches (the identity passes δ unchanged)::

        post-norm:  g = norm2ᵀ(δ)        δh = g + FFᵀ(g)
                    k = norm1ᵀ(δh)       δx = k + SAᵀ(k)
        pre-norm:   δh = δ + norm2ᵀ(FFᵀ(δ))
                    δx = δh + norm1ᵀ(SAᵀ(δh))

    where ``Lᵀ(δ)`` is layer ``L``'s backward pass (it also fills that layer's weight gradients).

    Args (PyTorch's):
        d_model: ``E``, the width of the sequence's vectors.
        nhead: heads of the self-attention.
        dim_feedforward: width of the hidden layer of the feed-forward network.
        dropout: probability of the four dropouts (attention weights, after the attention, inside
            and after the feed-forward network).
        activation: ``"relu"`` or ``"gelu"``.
        layer_norm_eps: the ``eps`` of both layer norms.
        batch_first: inputs are ``(batch, T, E)`` (default **True**, learnflux's batch-first
            convention; PyTorch's default is False). False: ``(T, batch, E)``.
        norm_first: pre-norm (True) or post-norm (False).
        bias: the linear layers and the layer norms learn biases.
        is_causal, rotary, rotary_base: learnflux's options of the self-attention
            (:class:`MultiheadAttention`): causal masking in every call (a language model in a
            ``Sequential``) and rotary position embeddings.
        rng: generator or seed for the initialisation and the dropout masks.

    Calling it: ``layer(x)``, or as PyTorch ``layer.forward(src, src_mask=…,
    src_key_padding_mask=…, is_causal=…)`` (the masks of :class:`MultiheadAttention`).
    """

    torch_twins = ("TransformerEncoderLayer",)

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str = "relu",
        layer_norm_eps: float = 1e-5,
        batch_first: bool = True,
        norm_first: bool = False,
        bias: bool = True,
        *,
        is_causal: bool = False,
        rotary: bool = False,
        rotary_base: float = 10000.0,
        rng: RngLike = None,
    ) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ConfigError(
                f"TransformerEncoderLayer: activation must be 'relu' or 'gelu', got {activation!r}"
            )
        self.d_model = int(d_model)
        self.nhead = int(nhead)
        self.dim_feedforward = int(dim_feedforward)
        if self.dim_feedforward <= 0:
            raise ConfigError(
                f"TransformerEncoderLayer: dim_feedforward must be positive, got {dim_feedforward}"
            )
        self.dropout_p = float(dropout)
        self.activation_name = activation
        self.layer_norm_eps = float(layer_norm_eps)
        self.batch_first = bool(batch_first)
        self.norm_first = bool(norm_first)
        self.use_bias = bool(bias)
        self.rng: np.random.Generator = get_rng(rng)
        p, rng_ = self.dropout_p, self.rng
        self.add_child(
            "self_attn",
            MultiheadAttention(
                self.d_model,
                self.nhead,
                dropout=p,
                bias=self.use_bias,
                batch_first=self.batch_first,
                is_causal=is_causal,
                rotary=rotary,
                rotary_base=rotary_base,
                rng=rng_,
            ),
        )
        self.add_child("linear1", Linear(self.d_model, self.dim_feedforward, bias=self.use_bias, rng=rng_))
        self.add_child("dropout", Dropout(p, rng=rng_))
        self.add_child("linear2", Linear(self.dim_feedforward, self.d_model, bias=self.use_bias, rng=rng_))
        eps, bias_ = self.layer_norm_eps, self.use_bias
        self.add_child("norm1", LayerNorm(self.d_model, eps=eps, bias=bias_))
        self.add_child("norm2", LayerNorm(self.d_model, eps=eps, bias=bias_))
        self.add_child("dropout1", Dropout(p, rng=rng_))
        self.add_child("dropout2", Dropout(p, rng=rng_))
        self.add_child("activation", _ACTIVATIONS[activation]())
        self._ran: Optional[bool] = None

    # the sub-layers, with the types the forward pass relies on
    self_attn: MultiheadAttention
    linear1: Linear
    linear2: Linear
    norm1: LayerNorm
    norm2: LayerNorm
    dropout: Dropout
    dropout1: Dropout
    dropout2: Dropout
    activation: Layer

    def _sa(self, x: np.ndarray, **masks: Any) -> np.ndarray:
        return self.dropout1.forward(self.self_attn.forward(x, **masks))

    def _sa_backward(self, delta: np.ndarray, need_input_delta: bool = True) -> Optional[np.ndarray]:
        return self.self_attn.backward(self.dropout1.backward(delta), need_input_delta)

    def _ff(self, x: np.ndarray) -> np.ndarray:
        h = self.activation.forward(self.linear1.forward(x))
        return self.dropout2.forward(self.linear2.forward(self.dropout.forward(h)))

    def _ff_backward(self, delta: np.ndarray) -> np.ndarray:
        d = self.dropout.backward(self.linear2.backward(self.dropout2.backward(delta)))
        return self.linear1.backward(self.activation.backward(d))

    def forward(
        self,
        src: np.ndarray,
        src_mask: Optional[np.ndarray] = None,
        src_key_padding_mask: Optional[np.ndarray] = None,
        is_causal: bool = False,
    ) -> np.ndarray:
        if src.ndim != 3 or src.shape[-1] != self.d_model:
            layout = "(batch, T, d_model)" if self.batch_first else "(T, batch, d_model)"
            raise self.shape_error(
                f"expected input of shape {layout} with d_model={self.d_model}, got {tuple(src.shape)}"
            )
        masks = {"attn_mask": src_mask, "key_padding_mask": src_key_padding_mask, "is_causal": is_causal}
        if self.norm_first:
            h = src + self._sa(self.norm1.forward(src), **masks)
            out = h + self._ff(self.norm2.forward(h))
        else:
            h = self.norm1.forward(src + self._sa(src, **masks))
            out = self.norm2.forward(h + self._ff(h))
        if self.training:
            self._ran = True
        return out

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> Optional[np.ndarray]:
        self.check_trainable(self._ran)
        if self.norm_first:
            d_h = delta_out + self.norm2.backward(self._ff_backward(delta_out))
            d_sa = self._sa_backward(d_h)
            return d_h + self.norm1.backward(d_sa) if need_input_delta else None
        g = self.norm2.backward(delta_out)
        d_h = g + self._ff_backward(g)
        k = self.norm1.backward(d_h)
        d_sa = self._sa_backward(k, need_input_delta)
        return k + d_sa if need_input_delta else None

    def _cache_attrs(self) -> tuple[str, ...]:
        return ("_ran",)

    # ------------------------------------------------------------------ declarations
    def output_shape(self, input_shape: tuple) -> tuple:
        shape = tuple(input_shape)
        if len(shape) != 2 or shape[-1] != self.d_model:
            raise self.shape_error(f"expected inputs of shape (T, {self.d_model}) per sample, got {shape}")
        return shape

    def flops(self, input_shape: tuple) -> int:
        """The self-attention's, the two linear layers', the activation's and the norms' (5 per
        value each), and the two residual additions."""
        t, e = int(input_shape[0]), self.d_model
        shape = (t, e)
        total = self.self_attn.flops(shape) + self.linear1.flops(shape)
        total += self.linear2.flops((t, self.dim_feedforward))
        total += (self.activation.flops_per_element or 0) * t * self.dim_feedforward
        return total + 2 * 5 * t * e + 2 * t * e

    @classmethod
    def state_shapes(cls, args: Any) -> dict[str, tuple]:
        e = args.size("d_model")
        f = args.size("dim_feedforward", 2048)
        bias = args.flag("bias", True)
        shapes: dict[str, tuple] = {
            "self_attn.in_proj_weight": (3 * e, e),
            "self_attn.out_proj.weight": (e, e),
            "linear1.weight": (f, e),
            "linear2.weight": (e, f),
            "norm1.weight": (e,),
            "norm2.weight": (e,),
        }
        if bias:
            shapes.update(
                {
                    "self_attn.in_proj_bias": (3 * e,),
                    "self_attn.out_proj.bias": (e,),
                    "linear1.bias": (f,),
                    "linear2.bias": (e,),
                    "norm1.bias": (e,),
                    "norm2.bias": (e,),
                }
            )
        return shapes

    @classmethod
    def from_torch_module(cls, module: Any) -> Layer:
        kind = getattr(module, "activation_relu_or_gelu", 0)
        act = getattr(module, "activation", None)
        if kind == 2 and getattr(act, "approximate", "none") != "none":
            kind = 0
        if kind not in (1, 2):
            raise UnsupportedTorchOption(f"activation={act!r} (learnflux takes 'relu' or 'gelu')")
        attn = module.self_attn
        if attn.bias_k is not None or attn.add_zero_attn:
            raise UnsupportedTorchOption("an attention with add_bias_kv or add_zero_attn")
        return cls(
            attn.embed_dim,
            attn.num_heads,
            dim_feedforward=module.linear1.out_features,
            dropout=module.dropout.p,
            activation="relu" if kind == 1 else "gelu",
            layer_norm_eps=module.norm1.eps,
            batch_first=attn.batch_first,
            norm_first=module.norm_first,
            bias=module.linear1.bias is not None,
        )

    def to_torch_module(self, nn: Any) -> Any:
        if self.self_attn.rotary:
            raise ConfigError(
                f"to_torch: {self.describe()}: PyTorch's nn.TransformerEncoderLayer has no rotary embedding"
            )
        base = nn.TransformerEncoderLayer
        if self.self_attn.is_causal:
            base = _causal_torch_class(nn)
        return base(
            self.d_model,
            self.nhead,
            dim_feedforward=self.dim_feedforward,
            dropout=self.dropout_p,
            activation=self.activation_name,
            layer_norm_eps=self.layer_norm_eps,
            batch_first=self.batch_first,
            norm_first=self.norm_first,
            bias=self.use_bias,
        )

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"d_model": self.d_model, "nhead": self.nhead}
        defaults = {
            "dim_feedforward": (self.dim_feedforward, 2048),
            "dropout": (self.dropout_p, 0.1),
            "activation": (self.activation_name, "relu"),
            "layer_norm_eps": (self.layer_norm_eps, 1e-5),
            "batch_first": (self.batch_first, True),
            "norm_first": (self.norm_first, False),
            "bias": (self.use_bias, True),
            "is_causal": (self.self_attn.is_causal, False),
            "rotary": (self.self_attn.rotary, False),
            "rotary_base": (self.self_attn.rotary_base, 10000.0),
        }
        config.update({k: v for k, (v, default) in defaults.items() if v != default})
        return config

    def summary_name(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.get_config().items() if k not in ("d_model", "nhead"))
        return f"TransformerEncoderLayer({self.d_model}, nhead={self.nhead}{extra})"


def _causal_torch_class(nn: Any) -> type:
    """``nn.TransformerEncoderLayer`` whose every call is causal (``lf.to_torch`` of a layer built
    with ``is_causal=True``: a plain PyTorch layer would attend to the future in an
    ``nn.Sequential``). It converts one way: ``lf.from_torch`` does not take it back."""

    class CausalTransformerEncoderLayer(nn.TransformerEncoderLayer):
        def forward(
            self, src: Any, src_mask: Any = None, src_key_padding_mask: Any = None, is_causal: bool = False
        ) -> Any:
            if src_mask is None:
                t = src.shape[1 if self.self_attn.batch_first else 0]
                src_mask = nn.Transformer.generate_square_subsequent_mask(
                    t, device=src.device, dtype=src.dtype
                )
            return super().forward(src, src_mask, src_key_padding_mask, is_causal=True)

    return CausalTransformerEncoderLayer


__all__ = ["TransformerEncoderLayer"]
