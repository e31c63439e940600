"""Attention: scaled dot-product attention (a function pair and a layer) and PyTorch's
``MultiheadAttention``.

Scaled dot-product attention, for queries ``Q`` (L × d), keys ``K`` (S × d) and values ``V``
(S × d_v), with an additive mask ``M`` (0 where allowed, −∞ where not)::

    A = Q·Kᵀ·c + M          c = 1/√d (the scale)
    P = softmax(A)          along the keys: each row of P is a distribution over the S keys
    P̃ = P ⊙ m/(1 − p)       dropout on the weights (training phase only; P̃ = P without it)
    O = P̃·V

and its backward pass, from ``δO``, written out::

    δV = P̃ᵀ·δO
    δP̃ = δO·Vᵀ         δP = δP̃ ⊙ m/(1 − p)
    δA = P ⊙ (δP − Σ_s δP ⊙ P)          (softmax's backward, row by row)
    δQ = c·δA·K        δK = c·δAᵀ·Q

Every product runs batched (``np.matmul`` on ``(batch, heads, T, d)`` stacks): no Python loop over
positions or heads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np

from ..core.layer import Layer, register_layer
from ..core.node import Node, symbolic_inputs
from ..errors import ConfigError, DtypeError, UnsupportedTorchOption
from ..init import xavier_uniform
from ..kernels.gemm import matmul
from ..numbers import scalar_like
from ..seeding import RngLike, get_rng
from ._composite import _Composite
from .activations import softmax, softmax_backward
from .linear import Linear
from .positional import rotary_tables, rotate, rotate_backward


# ---------------------------------------------------------------------------- the function pair
@dataclass
class AttentionCache:
    """What :func:`scaled_dot_product_attention` keeps for its backward pass."""

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    p: np.ndarray  #: the attention weights P = softmax(A), before dropout
    drop: Optional[np.ndarray]  #: the dropout multipliers m/(1 − p), or None
    scale: float


def scaled_dot_product_attention(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    mask: Optional[np.ndarray] = None,
    *,
    scale: Optional[float] = None,
    dropout_p: float = 0.0,
    rng: RngLike = None,
    keep_cache: bool = True,
) -> tuple[np.ndarray, Optional[AttentionCache]]:
    """``O = dropout(softmax(Q·Kᵀ·c + M))·V``; returns ``(O, cache)`` (cache None unless
    ``keep_cache``).

    Args:
        q, k, v: ``(…, L, d)``, ``(…, S, d)``, ``(…, S, d_v)`` (the leading axes broadcast, e.g.
            ``(batch, heads)``).
        mask: an additive float mask broadcasting to ``(…, L, S)``: 0 where a query may look at
            a key, −∞ where it may not (a row that is −∞ everywhere gives NaN, as PyTorch's
            softmax). Build one from a boolean mask with :func:`additive_mask`.
        scale: ``c``; default ``1/√d``.
        dropout_p: probability of zeroing each attention weight (the others are scaled by
            ``1/(1 − p)``); draws from ``rng`` (a generator, a seed, or the global one).
        keep_cache: keep what :func:`scaled_dot_product_attention_backward` needs.
    """
    c = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    a = np.matmul(q, np.swapaxes(k, -1, -2))
    a *= scalar_like(c, a.dtype)
    if mask is not None:
        if np.broadcast_shapes(a.shape, mask.shape) == a.shape:
            a += mask
        else:
            a = a + mask
    p = softmax(a, axis=-1)
    drop = None
    if dropout_p > 0.0:
        keep = get_rng(rng).random(p.shape, dtype=np.float32) >= np.float32(dropout_p)
        multiplier = 0.0 if dropout_p >= 1.0 else 1.0 / (1.0 - dropout_p)
        drop = np.multiply(keep, multiplier, dtype=p.dtype)
    out = np.matmul(p if drop is None else p * drop, v)
    return out, (AttentionCache(q, k, v, p, drop, c) if keep_cache else None)


def scaled_dot_product_attention_backward(
    delta_out: np.ndarray, cache: AttentionCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(δQ, δK, δV)`` from ``δO`` (the formulas of this module's docstring)."""
    p_used = cache.p if cache.drop is None else cache.p * cache.drop
    d_v = np.matmul(np.swapaxes(p_used, -1, -2), delta_out)
    d_p = np.matmul(delta_out, np.swapaxes(cache.v, -1, -2))
    if cache.drop is not None:
        d_p *= cache.drop
    d_a = softmax_backward(cache.p, d_p, axis=-1)
    d_a *= scalar_like(cache.scale, d_a.dtype)
    d_q = np.matmul(d_a, cache.k)
    d_k = np.matmul(np.swapaxes(d_a, -1, -2), cache.q)
    # a mask or a broadcast may have widened the stack: sum back to each operand's shape
    return _sum_to(d_q, cache.q.shape), _sum_to(d_k, cache.k.shape), _sum_to(d_v, cache.v.shape)


def _sum_to(d: np.ndarray, shape: tuple) -> np.ndarray:
    if d.shape == shape:
        return d
    extra = d.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(
        i + extra for i, n in enumerate(shape) if n == 1 and d.shape[i + extra] != 1
    )
    return d.sum(axis=axes).reshape(shape)


def additive_mask(mask: np.ndarray, dtype: Any, *, true_means: str = "blocked") -> np.ndarray:
    """A boolean or float mask as the additive float mask attention adds to its scores.

    Boolean: ``true_means="blocked"`` (PyTorch's ``MultiheadAttention``: True = not allowed)
    gives −∞ where True, 0 elsewhere; ``"allowed"`` (PyTorch's ``scaled_dot_product_attention``)
    the opposite. A float mask is returned as it is (cast to ``dtype``)."""
    mask = np.asarray(mask)
    if mask.dtype == bool:
        blocked = mask if true_means == "blocked" else ~mask
        return np.where(blocked, -np.inf, 0.0).astype(dtype)
    return mask.astype(dtype, copy=False)


def causal_mask(length: int, source_length: int, dtype: Any) -> np.ndarray:
    """The ``(L, S)`` additive mask of causal attention: query ``i`` sees keys ``j ≤ i``
    (−∞ above the diagonal), aligned at the top left as PyTorch's ``is_causal``."""
    return np.triu(np.full((length, source_length), -np.inf, dtype=dtype), k=1)


# ---------------------------------------------------------------------------- the layer
@register_layer
class ScaledDotProductAttention(Layer):
    """Scaled dot-product attention as a layer of a graph, on three inputs ``[q, k, v]`` of shapes
    ``(batch, …, L, d)``, ``(batch, …, S, d)``, ``(batch, …, S, d_v)`` (e.g. ``(batch, heads, T,
    d)``); no weights. PyTorch's ``F.scaled_dot_product_attention(q, k, v, dropout_p=…,
    is_causal=…, scale=…)``.

    Forward ``O = dropout(softmax(Q·Kᵀ·c + M))·V`` (``M`` the causal mask when ``is_causal``);
    backward ``δQ = c·δA·K``, ``δK = c·δAᵀ·Q``, ``δV = P̃ᵀ·δO`` with
    ``δA = P ⊙ (δP − Σ δP ⊙ P)``: see :mod:`learnflux.layers.attention`.

    Args:
        dropout_p: dropout on the attention weights, training phase only.
        is_causal: query ``i`` sees only keys ``j ≤ i``.
        scale: ``c`` (default ``1/√d``).
        rng: generator or seed for the dropout masks (default: the global one).

    Output shape: ``(batch, …, L, d_v)``. The weights of the last forward pass are in
    ``self.attn_weights`` when ``keep_weights`` is set (``layer.keep_weights = True``).
    """

    n_inputs = None

    def __init__(
        self,
        dropout_p: float = 0.0,
        is_causal: bool = False,
        scale: Optional[float] = None,
        rng: RngLike = None,
    ) -> None:
        super().__init__()
        self.dropout_p = float(dropout_p)
        if not 0.0 <= self.dropout_p <= 1.0:
            raise ConfigError(f"ScaledDotProductAttention: dropout_p must be in [0, 1], got {dropout_p}")
        self.is_causal = bool(is_causal)
        self.scale = None if scale is None else float(scale)
        self.rng: np.random.Generator = get_rng(rng)
        self.keep_weights = False
        self.attn_weights: Optional[np.ndarray] = None
        self._cache: Optional[AttentionCache] = None

    def _check(self, shapes: list[tuple]) -> None:
        if len(shapes) != 3:
            raise self.shape_error(f"takes 3 inputs [q, k, v], got {len(shapes)}")
        q, k, v = shapes
        ok = len(q) == len(k) == len(v) >= 2 and q[-1] == k[-1] and k[-2] == v[-2]
        if ok:
            try:
                np.broadcast_shapes(q[:-2], k[:-2], v[:-2])
            except ValueError:
                ok = False
        if not ok:
            raise self.shape_error(
                f"expected q (…, L, d), k (…, S, d), v (…, S, d_v), got shapes {[tuple(s) for s in shapes]}"
            )

    def forward(self, xs: list[np.ndarray]) -> np.ndarray:
        self._check([x.shape for x in xs])
        q, k, v = xs
        mask = causal_mask(q.shape[-2], k.shape[-2], q.dtype) if self.is_causal else None
        out, cache = scaled_dot_product_attention(
            q,
            k,
            v,
            mask,
            scale=self.scale,
            dropout_p=self.dropout_p if self.training else 0.0,
            rng=self.rng,
            keep_cache=self.training or self.keep_weights,
        )
        self.attn_weights = cache.p if self.keep_weights and cache is not None else None
        self._cache = cache if self.training else None
        return out

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> list[np.ndarray]:
        cache = self._cache
        self.check_trainable(cache)
        expected = (
            *np.broadcast_shapes(cache.p.shape[:-2], cache.v.shape[:-2]),
            *cache.p.shape[-2:-1],
            cache.v.shape[-1],
        )
        if delta_out.shape != expected:
            raise self.shape_error(f"δ has shape {tuple(delta_out.shape)}, expected {expected}")
        return list(scaled_dot_product_attention_backward(delta_out, cache))

    def _cache_attrs(self) -> tuple[str, ...]:
        return ("_cache",)

    def output_shape(self, input_shape: list[tuple]) -> tuple:
        shapes = [tuple(s) for s in input_shape]
        self._check(shapes)
        q, k, v = shapes
        return (*np.broadcast_shapes(q[:-2], k[:-2], v[:-2]), q[-2], v[-1])

    def flops(self, input_shape: list[tuple]) -> int:
        """``2·L·S·d`` (scores) ``+ 5·L·S`` (scale, softmax) ``+ 2·L·S·d_v`` (weights × values)
        per head, for each of the leading positions."""
        shapes = [tuple(s) for s in input_shape]
        q, k, v = shapes
        heads = math.prod(np.broadcast_shapes(q[:-2], k[:-2], v[:-2]))
        big_l, big_s, d, dv = q[-2], k[-2], q[-1], v[-1]
        return heads * (2 * big_l * big_s * d + 5 * big_l * big_s + 2 * big_l * big_s * dv)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {}
        if self.dropout_p:
            config["dropout_p"] = self.dropout_p
        if self.is_causal:
            config["is_causal"] = True
        if self.scale is not None:
            config["scale"] = self.scale
        return config


@register_layer
class MultiheadAttention(_Composite):
    """PyTorch's ``nn.MultiheadAttention``: ``num_heads`` attentions side by side on projections
    of the input, their outputs joined and projected back.

    Forward, for ``query`` (N, L, E), ``key`` (N, S, kdim), ``value`` (N, S, vdim) (batch first;
    ``key`` and ``value`` default to ``query``: self-attention)::

        Q = query·W_qᵀ + b_q    K = key·W_kᵀ + b_k    V = value·W_vᵀ + b_v        (N, T, E)
        split E into H heads of d = E/H:                                     (N, H, T, d)
        O_h = dropout(softmax(Q_h·K_hᵀ/√d + M))·V_h                          (N, H, L, d)
        o = concat_h(O_h)·W_oᵀ + b_o                                        (N, L, E)

    ``M`` is the additive mask built from ``attn_mask``, ``key_padding_mask`` and ``is_causal``.

    Backward: ``out_proj``'s (a :class:`Linear`) gives ``δO``; each head runs
    :func:`scaled_dot_product_attention_backward` (``δQ_h, δK_h, δV_h``); the heads are joined
    back and each projection is a Linear's backward:
    ``δW_q = Σ δQᵀ·query``, ``δb_q = Σ δQ``, ``δquery = δQ·W_q`` (the same for K and V). In
    self-attention the three δ add up into the one input: ``δx = δQ·W_q + δK·W_k + δV·W_v``.

    Args (PyTorch's, in its order):
        embed_dim: ``E``, the model's width (the size of the query's last axis).
        num_heads: ``H``; must divide ``E``.
        dropout: dropout probability on the attention weights (training phase).
        bias: learn ``in_proj_bias`` and ``out_proj.bias``.
        kdim, vdim: sizes of the key's and the value's last axis (default ``E``).
        batch_first: inputs are ``(batch, T, E)`` (default **True**, learnflux's batch-first
            convention; PyTorch's default is False). False: ``(T, batch, E)``.
        is_causal: learnflux's: every call masks the future (query ``i`` sees keys ``j ≤ i``),
            so that a causal self-attention fits in a ``Sequential``.
        rotary: learnflux's: rotate each head's queries and keys by their positions (RoPE,
            :func:`learnflux.layers.positional.rotate`) before the scores; ``rotary_base`` is the
            base of the angles. PyTorch's module has neither option.
        rng: generator or seed for the initialisation and the dropout masks.

    Weights (PyTorch's names and layouts): ``in_proj_weight`` ``(3E, E)`` = ``[W_q; W_k; W_v]``
    (or ``q_proj_weight`` ``(E, E)``, ``k_proj_weight`` ``(E, kdim)``, ``v_proj_weight``
    ``(E, vdim)`` when kdim or vdim differs from E), ``in_proj_bias`` ``(3E,)``,
    ``out_proj.weight`` ``(E, E)``, ``out_proj.bias`` ``(E,)``. Initialisation as PyTorch: Xavier
    uniform projections, zero biases, ``out_proj.weight`` U(−1/√E, 1/√E).

    Calling it: ``mha(x)`` (self-attention), ``mha(query, key, value, key_padding_mask=…,
    attn_mask=…, need_weights=…, average_attn_weights=…, is_causal=…)`` as PyTorch, or in a graph
    ``mha(x_node)``, ``mha([q_node, kv_node])``, ``mha([q_node, k_node, v_node])``. Unlike
    PyTorch it returns the output alone (a layer has one output); with ``need_weights=True`` the
    attention weights (after dropout; averaged over the heads when ``average_attn_weights``) are
    kept in ``self.attn_weights``. ``backward`` returns one δ per input it was given.
    """

    max_inputs = 3
    torch_twins = ("MultiheadAttention",)

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        *,
        kdim: Optional[int] = None,
        vdim: Optional[int] = None,
        batch_first: bool = True,
        is_causal: bool = False,
        rotary: bool = False,
        rotary_base: float = 10000.0,
        rng: RngLike = None,
    ) -> None:
        super().__init__()
        self.embed_dim = int(embed_dim)
        self.num_heads = int(num_heads)
        if self.embed_dim <= 0 or self.num_heads <= 0:
            raise ConfigError(
                f"MultiheadAttention: embed_dim and num_heads must be positive, got {embed_dim}, {num_heads}"
            )
        if self.embed_dim % self.num_heads:
            raise ConfigError(
                f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})"
            )
        self.head_dim = self.embed_dim // self.num_heads
        self.dropout = float(dropout)
        if not 0.0 <= self.dropout <= 1.0:
            raise ConfigError(f"MultiheadAttention: dropout must be a probability in [0, 1], got {dropout}")
        self.use_bias = bool(bias)
        self.kdim = self.embed_dim if kdim is None else int(kdim)
        self.vdim = self.embed_dim if vdim is None else int(vdim)
        if self.kdim <= 0 or self.vdim <= 0:
            raise ConfigError(f"MultiheadAttention: kdim and vdim must be positive, got {kdim}, {vdim}")
        self.packed = self.kdim == self.embed_dim and self.vdim == self.embed_dim
        self.batch_first = bool(batch_first)
        self.is_causal = bool(is_causal)
        self.rotary = bool(rotary)
        self.rotary_base = float(rotary_base)
        if self.rotary and self.head_dim % 2:
            raise ConfigError(
                "MultiheadAttention: rotary needs an even head size, got "
                f"embed_dim/num_heads = {self.head_dim}"
            )
        if self.rotary_base <= 0:
            raise ConfigError(f"MultiheadAttention: rotary_base must be positive, got {rotary_base}")
        self.rng: np.random.Generator = get_rng(rng)
        e = self.embed_dim
        if self.packed:
            self.add_param("in_proj_weight", xavier_uniform((3 * e, e), e, 3 * e, self.rng))
        else:
            self.add_param("q_proj_weight", xavier_uniform((e, e), e, e, self.rng))
            self.add_param("k_proj_weight", xavier_uniform((e, self.kdim), self.kdim, e, self.rng))
            self.add_param("v_proj_weight", xavier_uniform((e, self.vdim), self.vdim, e, self.rng))
        if self.use_bias:
            self.add_param("in_proj_bias", np.zeros(3 * e))
        self.add_child("out_proj", Linear(e, e, bias=self.use_bias, rng=self.rng))
        self.attn_weights: Optional[np.ndarray] = None
        self._cache: Optional[dict[str, Any]] = None

    # ------------------------------------------------------------------ weights
    def _weight(self, j: int) -> np.ndarray:
        """``W_q``, ``W_k`` or ``W_v`` (j = 0, 1, 2): a view of the packed matrix, or its own."""
        e = self.embed_dim
        if self.packed:
            return self.in_proj_weight.value[j * e : (j + 1) * e]
        return (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)[j].value

    def _rows(self, js: list[int]) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """The stacked weights and biases of the projections ``js`` that read one input: one
        product computes them all (self-attention: ``x·W_inᵀ`` gives Q, K and V at once)."""
        e = self.embed_dim
        if self.packed and js == list(range(js[0], js[-1] + 1)):
            w = self.in_proj_weight.value[js[0] * e : (js[-1] + 1) * e]
        else:
            w = np.concatenate([self._weight(j) for j in js]) if len(js) > 1 else self._weight(js[0])
        b = None
        if self.use_bias:
            bias = self.in_proj_bias.value
            b = np.concatenate([bias[j * e : (j + 1) * e] for j in js])
        return w, b

    # ------------------------------------------------------------------ calling
    def __call__(self, query: Any, key: Any = None, value: Any = None, **kwargs: Any) -> Any:
        items = list(query) if isinstance(query, (list, tuple)) else [query]
        items += [a for a in (key, value) if a is not None]
        nodes = symbolic_inputs(items)
        if nodes is not None:
            if kwargs:
                raise ConfigError(
                    f"{self.describe()}: masks and options are arguments of a call on arrays; "
                    "in a graph use the constructor's is_causal"
                )
            return Node.create(self, nodes)
        checked = [self.check_input(x) for x in items]
        if isinstance(query, (list, tuple)):
            return self.forward(checked, **kwargs)
        return self.forward(*checked, **kwargs)

    def _inputs(self, query: Any, key: Any, value: Any) -> tuple[list[np.ndarray], list[int], bool]:
        """The distinct inputs, which of them feeds Q, K and V, and whether they came as a list."""
        as_list = isinstance(query, (list, tuple))
        if as_list:
            if key is not None or value is not None:
                raise ConfigError(f"{self.describe()}: give the inputs as a list or as arguments, not both")
            inputs = list(query)
            if not 1 <= len(inputs) <= 3:
                raise self.shape_error(f"takes 1 to 3 inputs [query, key, value], got {len(inputs)}")
        else:
            inputs = [query] + [a for a in (key, value) if a is not None]
        if len(inputs) == 1:
            source = [0, 0, 0]
        elif len(inputs) == 2:
            source = [0, 1, 1] if as_list or key is not None else [0, 0, 1]
        else:
            source = [0, 1, 2]
        return inputs, source, as_list

    def _check_shapes(self, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> None:
        shapes = [tuple(a.shape) for a in (q, k, v)]
        sizes = (self.embed_dim, self.kdim, self.vdim)
        layout = "(batch, T, features)" if self.batch_first else "(T, batch, features)"
        names = ("query", "key", "value")
        given = dict(zip(names, shapes, strict=True))
        for name, shape, size in zip(names, shapes, sizes, strict=True):
            if len(shape) != 3 or shape[-1] != size:
                raise self.shape_error(f"{name} must be {layout} with {size} features, got shapes {given}")
        b = 0 if self.batch_first else 1
        if not shapes[0][b] == shapes[1][b] == shapes[2][b] or shapes[1][1 - b] != shapes[2][1 - b]:
            raise self.shape_error(
                f"query, key and value must share the batch size, key and value the length; "
                f"got shapes {given} {layout}"
            )

    def _mask(
        self,
        batch: int,
        length: int,
        source_length: int,
        dtype: Any,
        key_padding_mask: Any,
        attn_mask: Any,
        is_causal: bool,
    ) -> Optional[np.ndarray]:
        """The additive mask broadcasting to ``(batch, heads, L, S)``, or None."""
        h = self.num_heads
        parts = []
        if attn_mask is not None:
            m = np.asarray(attn_mask)
            if m.dtype != bool and m.dtype.kind != "f":
                raise DtypeError(
                    f"{self.describe()}: attn_mask must be boolean or float, got dtype {m.dtype}"
                )
            if m.shape == (length, source_length):
                parts.append(additive_mask(m, dtype)[None, None])
            elif m.shape == (batch * h, length, source_length):
                parts.append(additive_mask(m, dtype).reshape(batch, h, length, source_length))
            else:
                raise self.shape_error(
                    f"attn_mask must have shape (L, S) = {(length, source_length)} or "
                    f"(batch·heads, L, S) = {(batch * h, length, source_length)}, got {m.shape}"
                )
        if key_padding_mask is not None:
            m = np.asarray(key_padding_mask)
            if m.dtype != bool and m.dtype.kind != "f":
                raise DtypeError(
                    f"{self.describe()}: key_padding_mask must be boolean or float, got dtype {m.dtype}"
                )
            if m.shape != (batch, source_length):
                raise self.shape_error(
                    f"key_padding_mask must have shape (batch, S) = {(batch, source_length)}, got {m.shape}"
                )
            parts.append(additive_mask(m, dtype)[:, None, None, :])
        if is_causal:
            parts.append(causal_mask(length, source_length, dtype)[None, None])
        if not parts:
            return None
        mask = parts[0]
        for part in parts[1:]:
            mask = mask + part
        return mask

    def _heads(self, x: np.ndarray) -> np.ndarray:
        """``(N, T, E)`` → ``(N, H, T, d)``."""
        n, t, _ = x.shape
        return x.reshape(n, t, self.num_heads, self.head_dim).transpose(0, 2, 1, 3)

    def _join(self, x: np.ndarray) -> np.ndarray:
        """``(N, H, T, d)`` → ``(N, T, E)``."""
        n, _, t, _ = x.shape
        return x.transpose(0, 2, 1, 3).reshape(n, t, self.embed_dim)

    # ------------------------------------------------------------------ forward / backward
    def forward(
        self,
        query: Any,
        key: Optional[np.ndarray] = None,
        value: Optional[np.ndarray] = None,
        key_padding_mask: Optional[np.ndarray] = None,
        need_weights: bool = False,
        attn_mask: Optional[np.ndarray] = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> np.ndarray:
        inputs, source, as_list = self._inputs(query, key, value)
        q_in, k_in, v_in = (inputs[s] for s in source)
        self._check_shapes(q_in, k_in, v_in)
        if not self.batch_first:
            inputs = [x.swapaxes(0, 1) for x in inputs]
        batch, length = inputs[source[0]].shape[:2]
        source_length = inputs[source[1]].shape[1]
        dtype = inputs[0].dtype
        # the projections: one product per distinct input (self-attention: one for Q, K and V)
        projected: list[Any] = [None, None, None]
        flat_inputs = []
        for s, x in enumerate(inputs):
            js = [j for j in range(3) if source[j] == s]
            x2 = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
            flat_inputs.append(x2)
            if not js:
                continue
            w, b = self._rows(js)
            y = matmul(x2, w.T)
            if b is not None:
                y += b
            y = y.reshape(x.shape[0], x.shape[1], len(js) * self.embed_dim)
            for i, j in enumerate(js):
                projected[j] = self._heads(y[..., i * self.embed_dim : (i + 1) * self.embed_dim])
        qh, kh, vh = projected
        tables = None
        if self.rotary:
            cos_q, sin_q = rotary_tables(length, self.head_dim, self.rotary_base, dtype)
            cos_k, sin_k = rotary_tables(source_length, self.head_dim, self.rotary_base, dtype)
            tables = (cos_q, sin_q, cos_k, sin_k)
            qh, kh = rotate(qh, cos_q, sin_q), rotate(kh, cos_k, sin_k)
        mask = self._mask(
            batch, length, source_length, dtype, key_padding_mask, attn_mask, is_causal or self.is_causal
        )
        heads, cache = scaled_dot_product_attention(
            qh,
            kh,
            vh,
            mask,
            dropout_p=self.dropout if self.training else 0.0,
            rng=self.rng,
            keep_cache=self.training or need_weights,
        )
        self.attn_weights = None
        if need_weights and cache is not None:
            weights = cache.p if cache.drop is None else cache.p * cache.drop
            self.attn_weights = weights.mean(axis=1) if average_attn_weights else weights
        out = self.out_proj.forward(self._join(heads))
        if self.training:
            self._cache = {
                "attention": cache,
                "inputs": flat_inputs,
                "source": source,
                "as_list": as_list,
                "shapes": [x.shape for x in inputs],
                "tables": tables,
            }
        return out if self.batch_first else out.swapaxes(0, 1)

    def backward(self, delta_out: np.ndarray, need_input_delta: bool = True) -> Any:
        cache = self._cache
        self.check_trainable(cache)
        shapes, source = cache["shapes"], cache["source"]
        expected = (shapes[source[0]][0], shapes[source[0]][1], self.embed_dim)
        if not self.batch_first:
            expected = (expected[1], expected[0], expected[2])
        if delta_out.shape != expected:
            raise self.shape_error(f"δ has shape {tuple(delta_out.shape)}, expected {expected}")
        if not self.batch_first:
            delta_out = delta_out.swapaxes(0, 1)
        d_heads = self._heads(self.out_proj.backward(np.ascontiguousarray(delta_out)))
        d_q, d_k, d_v = scaled_dot_product_attention_backward(d_heads, cache["attention"])
        if cache["tables"] is not None:
            cos_q, sin_q, cos_k, sin_k = cache["tables"]
            d_q, d_k = rotate_backward(d_q, cos_q, sin_q), rotate_backward(d_k, cos_k, sin_k)
        d_proj = [self._join(d) for d in (d_q, d_k, d_v)]
        e = self.embed_dim
        w_grads: list[Any] = [None, None, None]
        b_grads: list[Any] = [None, None, None]
        deltas = []
        for s, x2 in enumerate(cache["inputs"]):
            js = [j for j in range(3) if source[j] == s]
            d = d_proj[js[0]] if len(js) == 1 else np.concatenate([d_proj[j] for j in js], axis=-1)
            d2 = d.reshape(-1, len(js) * e)
            gw = matmul(d2.T, x2)
            gb = d2.sum(axis=0) if self.use_bias else None
            for i, j in enumerate(js):
                w_grads[j] = gw[i * e : (i + 1) * e]
                if gb is not None:
                    b_grads[j] = gb[i * e : (i + 1) * e]
            if need_input_delta:
                w, _ = self._rows(js)
                dx = matmul(d2, w).reshape(shapes[s])
                deltas.append(dx if self.batch_first else dx.swapaxes(0, 1))
        if self.packed:
            self.in_proj_weight.set_grad(np.concatenate(w_grads))
        else:
            for p, g in zip(
                (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight), w_grads, strict=True
            ):
                p.set_grad(g)
        if self.use_bias:
            self.in_proj_bias.set_grad(np.concatenate(b_grads))
        if not need_input_delta:
            return None
        return deltas if cache["as_list"] or len(deltas) > 1 else deltas[0]

    def _cache_attrs(self) -> tuple[str, ...]:
        return ("_cache",)

    # ------------------------------------------------------------------ declarations
    def output_shape(self, input_shape: Union[tuple, list]) -> tuple:
        shape = tuple(input_shape)
        if len(shape) != 2 or shape[-1] != self.embed_dim:
            raise self.shape_error(f"expected inputs of shape (T, {self.embed_dim}) per sample, got {shape}")
        return shape

    def flops(self, input_shape: Union[tuple, list]) -> int:
        """For ``L`` queries and ``S`` keys: the projections ``2·E·(L·E + S·kdim + S·vdim)``, the
        scores and the weighted sum ``4·L·S·E``, the softmax ``5·H·L·S``, the output projection
        ``2·L·E²``. ``input_shape``: the query's per-sample shape ``(L, E)``, or the list of the
        inputs' shapes."""
        shapes = [tuple(s) for s in input_shape] if isinstance(input_shape, list) else [tuple(input_shape)]
        big_l = int(shapes[0][0])
        big_s = int(shapes[1][0]) if len(shapes) > 1 else big_l
        e = self.embed_dim
        projections = 2 * e * (big_l * e + big_s * self.kdim + big_s * self.vdim) + 2 * big_l * e * e
        return projections + 4 * big_l * big_s * e + 5 * self.num_heads * big_l * big_s

    @classmethod
    def state_shapes(cls, args: Any) -> dict[str, tuple]:
        e = args.size("embed_dim")
        kdim = args.size("kdim", e) if args.get("kdim", None) is not None else e
        vdim = args.size("vdim", e) if args.get("vdim", None) is not None else e
        bias = args.flag("bias", True)
        shapes: dict[str, tuple] = {}
        if kdim == e and vdim == e:
            shapes["in_proj_weight"] = (3 * e, e)
        else:
            shapes.update(q_proj_weight=(e, e), k_proj_weight=(e, kdim), v_proj_weight=(e, vdim))
        if bias:
            shapes.update({"in_proj_bias": (3 * e,), "out_proj.bias": (e,)})
        shapes["out_proj.weight"] = (e, e)
        return shapes

    @classmethod
    def from_torch_module(cls, module: Any) -> Layer:
        if module.bias_k is not None or module.add_zero_attn:
            raise UnsupportedTorchOption("add_bias_kv=True or add_zero_attn=True")
        return cls(
            module.embed_dim,
            module.num_heads,
            dropout=module.dropout,
            bias=module.in_proj_bias is not None,
            kdim=module.kdim,
            vdim=module.vdim,
            batch_first=module.batch_first,
        )

    def to_torch_module(self, nn: Any) -> Any:
        own = [name for name in ("is_causal", "rotary") if getattr(self, name)]
        if own:
            raise ConfigError(
                f"to_torch: {self.describe()}: PyTorch's nn.MultiheadAttention has no {own[0]}=True "
                "option (it takes a causal attn_mask in each call and has no rotary embedding)"
            )
        return nn.MultiheadAttention(
            self.embed_dim,
            self.num_heads,
            dropout=self.dropout,
            bias=self.use_bias,
            kdim=self.kdim,
            vdim=self.vdim,
            batch_first=self.batch_first,
        )

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"embed_dim": self.embed_dim, "num_heads": self.num_heads}
        if self.dropout:
            config["dropout"] = self.dropout
        if not self.use_bias:
            config["bias"] = False
        if self.kdim != self.embed_dim:
            config["kdim"] = self.kdim
        if self.vdim != self.embed_dim:
            config["vdim"] = self.vdim
        if not self.batch_first:
            config["batch_first"] = False
        if self.is_causal:
            config["is_causal"] = True
        if self.rotary:
            config["rotary"] = True
        if self.rotary_base != 10000.0:
            config["rotary_base"] = self.rotary_base
        return config

    def summary_name(self) -> str:
        extra = "".join(
            f", {k}={v!r}" for k, v in self.get_config().items() if k not in ("embed_dim", "num_heads")
        )
        return f"MultiheadAttention({self.embed_dim}, heads={self.num_heads}{extra})"


__all__ = [
    "AttentionCache",
    "MultiheadAttention",
    "ScaledDotProductAttention",
    "additive_mask",
    "causal_mask",
    "scaled_dot_product_attention",
    "scaled_dot_product_attention_backward",
]
