"""Cases for the sequence layers: attention, the transformer block, positional embeddings, and the
per-position layers (Linear, LayerNorm, GELU, Dropout) on ``(batch, T, d)`` inputs.

The attention cases run with dropout 0 (the harness compares with PyTorch and checks gradients on
deterministic layers; dropout > 0 is tested in tests/test_attention.py). Every bias and every norm
weight is drawn at random, so that a forgotten bias or γ cannot pass with 0 or 1. PyTorch's
``nn.MultiheadAttention`` takes (query, key, value) and returns a pair: its twin here is a subclass
that takes the inputs the harness gives and returns the output alone (same state_dict names).
"""

import numpy as np

import learnflux as lf

from ..harness import LayerCase, torch_twin


def _randomized(layer, seed=0):
    """Biases N(0, 0.5²), layer-norm weights U(0.5, 1.5), every other weight as initialised."""
    rng = np.random.default_rng(seed)
    for name, p in layer.named_parameters():
        if name.endswith("bias"):
            p.value = rng.normal(0.0, 0.5, p.shape)
        elif name.startswith("norm"):
            p.value = rng.uniform(0.5, 1.5, p.shape)
    return layer


def _torch_mha(*args, causal=False, **kwargs):
    """nn.MultiheadAttention called as the harness calls a layer: ``(x)`` self-attention,
    ``(q, kv)`` or ``(q, k, v)``; the output alone."""

    def build():
        import torch

        class Twin(torch.nn.MultiheadAttention):
            def forward(self, *xs):
                q = xs[0]
                k = xs[1] if len(xs) > 1 else q
                v = xs[2] if len(xs) > 2 else k
                mask = None
                if causal:
                    t_axis = 1 if self.batch_first else 0
                    mask = torch.nn.Transformer.generate_square_subsequent_mask(
                        q.shape[t_axis], dtype=q.dtype
                    )
                return super().forward(q, k, v, need_weights=False, attn_mask=mask, is_causal=causal)[0]

        return Twin(*args, **kwargs).double()

    return build


def _torch_sdpa(**kwargs):
    def build():
        import torch

        class SDPA(torch.nn.Module):
            def forward(self, q, k, v):
                return torch.nn.functional.scaled_dot_product_attention(q, k, v, **kwargs)

        return SDPA().double()

    return build


def _torch_causal_encoder(*args, **kwargs):
    def build():
        import torch

        from learnflux.layers.transformer import _causal_torch_class

        return _causal_torch_class(torch.nn)(*args, **kwargs).double()

    return build


def _torch_learned_positions(max_len, dim):
    def build():
        import torch

        class Positions(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.weight = torch.nn.Parameter(torch.zeros(max_len, dim))

            def forward(self, x):
                table = self.weight[: x.shape[1]]
                return x + table.reshape(table.shape[0], *([1] * (x.dim() - 3)), dim)

        return Positions().double()

    return build


def _torch_sinusoidal(d_model):
    """PyTorch's transformer tutorial's ``PositionalEncoding`` table (without its dropout)."""

    def build():
        import math

        import torch

        class Sinusoidal(torch.nn.Module):
            def forward(self, x):
                t = x.shape[1]
                position = torch.arange(t, dtype=torch.float64).unsqueeze(1)
                div_term = torch.exp(
                    torch.arange(0, d_model, 2, dtype=torch.float64) * (-math.log(10000.0) / d_model)
                )
                pe = torch.zeros(t, d_model, dtype=torch.float64)
                pe[:, 0::2] = torch.sin(position * div_term)
                pe[:, 1::2] = torch.cos(position * div_term[: d_model // 2])
                return x + pe.to(x.dtype).reshape(t, *([1] * (x.dim() - 3)), d_model)

        return Sinusoidal().double()

    return build


def _torch_rotary(dim):
    """Llama's ``rotate_half`` RoPE (Hugging Face's apply_rotary_pos_emb), positions on axis 1."""

    def build():
        import torch

        class Rotary(torch.nn.Module):
            def forward(self, x):
                t = x.shape[1]
                inv_freq = 1.0 / (10000.0 ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
                freqs = torch.outer(torch.arange(t, dtype=torch.float64), inv_freq)
                emb = torch.cat([freqs, freqs], dim=-1)
                shape = (t, *([1] * (x.dim() - 3)), dim)
                cos, sin = emb.cos().to(x.dtype).reshape(shape), emb.sin().to(x.dtype).reshape(shape)
                x1, x2 = x[..., : dim // 2], x[..., dim // 2 :]
                return x * cos + torch.cat([-x2, x1], dim=-1) * sin

        return Rotary().double()

    return build


CASES = [
    # ---- per-position layers on sequences (batch, T, d)
    LayerCase(
        "linear-seq",
        lambda: lf.Linear(4, 3),
        (5, 4),
        exact=True,
        torch=torch_twin(lambda nn: nn.Linear(4, 3)),
    ),
    LayerCase(
        "linear-seq-4d",
        lambda: _randomized(lf.Linear(4, 2)),
        (2, 3, 4),
        exact=True,
        torch=torch_twin(lambda nn: nn.Linear(4, 2)),
    ),
    LayerCase(
        "layernorm-seq",
        lambda: _randomized(lf.LayerNorm(6), 1),
        (5, 6),
        torch=torch_twin(lambda nn: nn.LayerNorm(6)),
    ),
    LayerCase("gelu-seq", lambda: lf.GELU(), (5, 6), torch=torch_twin(lambda nn: nn.GELU())),
    LayerCase("dropout-seq", lambda: lf.Dropout(0.25, rng=3), (5, 6), exact=True, deterministic=False),
    LayerCase(
        "embedding-seq",
        lambda: lf.Embedding(7, 4, rng=1),
        (6,),
        input_kind="index",
        index_high=7,
        torch=torch_twin(lambda nn: nn.Embedding(7, 4)),
    ),
    # ---- scaled dot-product attention (inputs (batch, heads, T, d))
    LayerCase(
        "sdpa",
        lambda: lf.ScaledDotProductAttention(),
        [(2, 5, 4), (2, 3, 4), (2, 3, 6)],
        torch=_torch_sdpa(),
    ),
    LayerCase(
        "sdpa-causal-scale",
        lambda: lf.ScaledDotProductAttention(is_causal=True, scale=0.3),
        [(2, 4, 3), (2, 4, 3), (2, 4, 5)],
        torch=_torch_sdpa(is_causal=True, scale=0.3),
    ),
    LayerCase(
        "sdpa-broadcast-heads",
        lambda: lf.ScaledDotProductAttention(),
        [(2, 3, 4), (1, 3, 4), (1, 3, 2)],
        torch=_torch_sdpa(),
    ),
    # ---- MultiheadAttention
    LayerCase(
        "mha-self",
        lambda: _randomized(lf.MultiheadAttention(8, 2)),
        (5, 8),
        torch=_torch_mha(8, 2, batch_first=True),
    ),
    LayerCase(
        "mha-self-nobias-1head",
        lambda: lf.MultiheadAttention(6, 1, bias=False),
        (4, 6),
        torch=_torch_mha(6, 1, bias=False, batch_first=True),
    ),
    LayerCase(
        "mha-causal",
        lambda: _randomized(lf.MultiheadAttention(8, 4, is_causal=True)),
        (5, 8),
        torch=_torch_mha(8, 4, batch_first=True, causal=True),
    ),
    LayerCase(
        "mha-cross-kv",
        lambda: _randomized(lf.MultiheadAttention(8, 2)),
        [(4, 8), (6, 8)],
        torch=_torch_mha(8, 2, batch_first=True),
    ),
    LayerCase(
        "mha-cross-kdim-vdim",
        lambda: _randomized(lf.MultiheadAttention(8, 2, kdim=5, vdim=3)),
        [(4, 8), (6, 5), (6, 3)],
        torch=_torch_mha(8, 2, kdim=5, vdim=3, batch_first=True),
    ),
    LayerCase(
        "mha-cross-same-dims",
        lambda: _randomized(lf.MultiheadAttention(6, 3)),
        [(3, 6), (4, 6), (4, 6)],
        torch=_torch_mha(6, 3, batch_first=True),
    ),
    # sequence first: the harness's batch axis is the time axis, the per-sample shape (N, E)
    LayerCase(
        "mha-seq-first",
        lambda: _randomized(lf.MultiheadAttention(8, 2, batch_first=False)),
        (2, 8),
        torch=_torch_mha(8, 2, batch_first=False),
    ),
    LayerCase(
        "mha-rotary", lambda: _randomized(lf.MultiheadAttention(8, 2, rotary=True, is_causal=True)), (5, 8)
    ),
    # ---- TransformerEncoderLayer
    LayerCase(
        "transformer-post-norm-relu",
        lambda: _randomized(lf.TransformerEncoderLayer(8, 2, 16, dropout=0.0)),
        (5, 8),
        torch=torch_twin(lambda nn: nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)),
    ),
    LayerCase(
        "transformer-pre-norm-gelu",
        lambda: _randomized(
            lf.TransformerEncoderLayer(8, 4, 12, dropout=0.0, activation="gelu", norm_first=True)
        ),
        (4, 8),
        torch=torch_twin(
            lambda nn: nn.TransformerEncoderLayer(
                8, 4, 12, dropout=0.0, activation="gelu", norm_first=True, batch_first=True
            )
        ),
    ),
    LayerCase(
        "transformer-nobias-eps",
        lambda: _randomized(
            lf.TransformerEncoderLayer(6, 2, 10, dropout=0.0, layer_norm_eps=1e-3, bias=False)
        ),
        (3, 6),
        torch=torch_twin(
            lambda nn: nn.TransformerEncoderLayer(
                6, 2, 10, dropout=0.0, layer_norm_eps=1e-3, bias=False, batch_first=True
            )
        ),
    ),
    LayerCase(
        "transformer-causal-pre-norm",
        lambda: _randomized(
            lf.TransformerEncoderLayer(8, 2, 16, dropout=0.0, norm_first=True, is_causal=True)
        ),
        (5, 8),
        torch=_torch_causal_encoder(8, 2, 16, dropout=0.0, norm_first=True, batch_first=True),
    ),
    LayerCase(
        "transformer-seq-first",
        lambda: _randomized(lf.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=False)),
        (2, 8),
        torch=torch_twin(lambda nn: nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0)),
    ),
    LayerCase(
        "transformer-rotary",
        lambda: _randomized(lf.TransformerEncoderLayer(8, 2, 12, dropout=0.0, norm_first=True, rotary=True)),
        (4, 8),
    ),
    # ---- positional embeddings
    LayerCase(
        "learned-positions",
        lambda: lf.LearnedPositionalEmbedding(10, 4, rng=0),
        (6, 4),
        exact=True,
        torch=_torch_learned_positions(10, 4),
    ),
    LayerCase(
        "learned-positions-heads",
        lambda: lf.LearnedPositionalEmbedding(5, 3, rng=1),
        (5, 2, 3),
        torch=_torch_learned_positions(5, 3),
    ),
    LayerCase(
        "sinusoidal-positions",
        lambda: lf.SinusoidalPositionalEncoding(6),
        (7, 6),
        torch=_torch_sinusoidal(6),
    ),
    LayerCase(
        "sinusoidal-positions-odd",
        lambda: lf.SinusoidalPositionalEncoding(5, max_len=9),
        (9, 5),
        torch=_torch_sinusoidal(5),
    ),
    LayerCase("rotary", lambda: lf.RotaryEmbedding(6), (5, 6), torch=_torch_rotary(6)),
    LayerCase("rotary-heads", lambda: lf.RotaryEmbedding(4, base=100.0), (5, 2, 4)),
]
