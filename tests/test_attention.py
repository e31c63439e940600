"""Attention beyond the shared harness (tests/layer_cases/attention.py): masks, attention weights,
dropout, PyTorch-style calls, conversion both ways, errors, and a small causal language model in a
Sequential."""

from __future__ import annotations

import numpy as np
import pytest

import learnflux as lf

try:
    import torch
except ImportError:
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")

RTOL, ATOL = 1e-10, 1e-12


def _mha(*args, seed=0, **kwargs):
    """A float64 MultiheadAttention with random biases (zeros would hide a forgotten bias)."""
    layer = lf.MultiheadAttention(*args, rng=seed, **kwargs).astype(np.float64)
    rng = np.random.default_rng(seed + 100)
    for name, p in layer.named_parameters():
        if name.endswith("bias"):
            p.value = rng.normal(0.0, 0.5, p.shape)
    return layer


def _torch_copy(layer):
    module = lf.to_torch(layer)
    module.train(layer.training)
    return module


def _t(x):
    return torch.from_numpy(np.array(x))


def _masks(n, heads, length, source):
    rng = np.random.default_rng(9)
    boolean = rng.random((length, source)) < 0.3
    boolean[:, 0] = False  # every query keeps a key
    padding = np.zeros((n, source), dtype=bool)
    padding[0, -2:] = True
    padding[1, 1] = True
    return {
        "bool-attn-mask": {"attn_mask": boolean},
        "float-attn-mask": {"attn_mask": rng.normal(0.0, 1.0, (length, source))},
        "per-head-mask": {"attn_mask": np.where(rng.random((n * heads, length, source)) < 0.3, -np.inf, 0.0)},
        "bool-padding": {"key_padding_mask": padding},
        "float-padding": {"key_padding_mask": np.where(padding, -np.inf, 0.0)},
        "padding-and-mask": {"key_padding_mask": padding, "attn_mask": boolean},
    }


MASK_NAMES = list(_masks(2, 2, 4, 5))


# ---------------------------------------------------------------------------- masks vs PyTorch
@needs_torch
@pytest.mark.parametrize("which", MASK_NAMES)
@pytest.mark.parametrize("cross", [False, True], ids=["self", "cross"])
def test_masks_match_torch(which, cross):
    n, heads, length = 2, 2, 4
    source = 5 if cross else length
    kw = _masks(n, heads, length, source)[which]
    layer = _mha(8, heads, kdim=6 if cross else None, vdim=3 if cross else None)
    module = _torch_copy(layer)
    rng = np.random.default_rng(1)
    q = rng.standard_normal((n, length, 8))
    k = rng.standard_normal((n, source, 6 if cross else 8)) if cross else q
    v = rng.standard_normal((n, source, 3 if cross else 8)) if cross else q
    tq, tk, tv = (_t(a).requires_grad_(True) for a in (q, k, v))
    if not cross:
        tk = tv = tq
    t_out, t_w = module(tq, tk, tv, need_weights=True, **{k_: _t(m) for k_, m in kw.items()})
    out = (
        layer.forward(q, k, v, need_weights=True, **kw)
        if cross
        else layer.forward(q, need_weights=True, **kw)
    )
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(layer.attn_weights, t_w.detach().numpy(), rtol=RTOL, atol=ATOL)
    up = rng.standard_normal(out.shape)
    deltas = layer.backward(up)
    t_out.backward(_t(up))
    if cross:
        for d, t in zip(deltas, (tq, tk, tv), strict=True):
            np.testing.assert_allclose(d, t.grad.numpy(), rtol=RTOL, atol=ATOL)
    else:
        np.testing.assert_allclose(deltas, tq.grad.numpy(), rtol=RTOL, atol=ATOL)
    grads = dict(module.named_parameters())
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, grads[name].grad.numpy(), rtol=RTOL, atol=ATOL, err_msg=name)


class _Masked(lf.MultiheadAttention):
    """The masks bound to the layer, so that lf.gradcheck (which calls forward(x)) sees them."""

    masks: dict = {}

    def forward(self, x, *args, **kwargs):
        return super().forward(x, *args, **{**self.masks, **kwargs})


@pytest.mark.parametrize("which", MASK_NAMES)
def test_masked_attention_passes_the_gradient_check(which):
    layer = _Masked(8, 2, rng=0)
    layer.masks = _masks(2, 2, 4, 4)[which]
    x = np.random.default_rng(2).standard_normal((2, 4, 8))
    report = lf.gradcheck(layer, x)
    assert report.passed, str(report)


@needs_torch
def test_call_time_is_causal_builds_the_mask_torch_needs():
    layer = _mha(8, 2)
    module = _torch_copy(layer)
    x = np.random.default_rng(3).standard_normal((2, 5, 8))
    mask = torch.nn.Transformer.generate_square_subsequent_mask(5, dtype=torch.float64)
    expected = module(_t(x), _t(x), _t(x), attn_mask=mask, is_causal=True, need_weights=False)[0]
    np.testing.assert_allclose(layer(x, is_causal=True), expected.detach().numpy(), rtol=RTOL, atol=ATOL)
    # the constructor's is_causal does the same on every call
    causal = lf.MultiheadAttention(8, 2, is_causal=True).astype(np.float64)
    causal.load_state_dict(layer.state_dict())
    np.testing.assert_array_equal(causal(x), layer(x, is_causal=True))


def test_causal_attention_does_not_look_ahead():
    layer = lf.TransformerEncoderLayer(8, 2, 16, dropout=0.0, is_causal=True, rng=0).astype(np.float64)
    x = np.random.default_rng(4).standard_normal((1, 6, 8))
    changed = x.copy()
    changed[0, 4:] += 1.0  # the future of position 3
    a, b = layer(x), layer(changed)
    np.testing.assert_array_equal(a[0, :4], b[0, :4])
    assert not np.allclose(a[0, 4:], b[0, 4:])


@needs_torch
def test_a_fully_masked_row_is_nan_as_torch():
    """A query that may look at no key: softmax of −∞ everywhere is NaN, as PyTorch's
    MultiheadAttention with need_weights=True (its need_weights=False training path gives 0)."""
    layer = _mha(4, 2)
    module = _torch_copy(layer)
    x = np.random.default_rng(5).standard_normal((1, 3, 4))
    mask = np.array([[True, True, True], [False, True, True], [False, False, True]])
    out = layer.forward(x, attn_mask=mask)
    expected = module(_t(x), _t(x), _t(x), attn_mask=_t(mask), need_weights=True)[0].detach().numpy()
    assert np.isnan(out[0, 0]).all() and np.isnan(expected[0, 0]).all()
    np.testing.assert_allclose(out[0, 1:], expected[0, 1:], rtol=RTOL, atol=ATOL)


@needs_torch
def test_per_head_weights_and_sequence_first_layout():
    layer = _mha(8, 4, batch_first=False)
    module = _torch_copy(layer)
    x = np.random.default_rng(6).standard_normal((5, 2, 8))  # (T, batch, E)
    t_out, t_w = module(_t(x), _t(x), _t(x), average_attn_weights=False)
    out = layer.forward(x, need_weights=True, average_attn_weights=False)
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=RTOL, atol=ATOL)
    assert layer.attn_weights.shape == (2, 4, 5, 5)
    np.testing.assert_allclose(layer.attn_weights, t_w.detach().numpy(), rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------------------- dropout
def test_attention_dropout_is_seeded_and_off_in_inference():
    x = np.random.default_rng(7).standard_normal((2, 5, 8))
    a = lf.MultiheadAttention(8, 2, dropout=0.4, rng=11).astype(np.float64)
    b = lf.MultiheadAttention(8, 2, dropout=0.4, rng=11).astype(np.float64)
    out_a, out_b = a(x), b(x)
    np.testing.assert_array_equal(out_a, out_b)  # same seed, same masks
    again = a(x)
    assert not np.allclose(again, out_a)  # the next draw differs
    plain = lf.MultiheadAttention(8, 2, rng=11).astype(np.float64)
    plain.load_state_dict(a.state_dict())
    a.eval()
    np.testing.assert_array_equal(a(x), plain.eval()(x))  # inference: no dropout
    assert a._cache is None


@pytest.mark.parametrize(
    "make",
    [
        lambda: lf.MultiheadAttention(8, 2, dropout=0.3, rng=1),
        lambda: lf.TransformerEncoderLayer(8, 2, 12, dropout=0.3, rng=2),
        lambda: lf.TransformerEncoderLayer(8, 2, 12, dropout=0.2, norm_first=True, activation="gelu", rng=3),
        lambda: lf.ScaledDotProductAttention(dropout_p=0.5, rng=4),
    ],
    ids=["mha", "transformer-post", "transformer-pre", "sdpa"],
)
def test_dropout_gradients_pass_the_gradient_check(make):
    """lf.gradcheck replays the layer's generator: every forward pass draws the same masks."""
    layer = make()
    rng = np.random.default_rng(8)
    if isinstance(layer, lf.ScaledDotProductAttention):
        x = [rng.standard_normal((2, 2, 4, 3)) for _ in range(3)]
    else:
        x = rng.standard_normal((2, 4, 8))
    report = lf.gradcheck(layer, x)
    assert report.passed, str(report)


def test_transformer_dropout_is_seeded_and_off_in_inference():
    x = np.random.default_rng(9).standard_normal((2, 5, 8))
    a = lf.TransformerEncoderLayer(8, 2, 16, dropout=0.5, rng=5).astype(np.float64)
    b = lf.TransformerEncoderLayer(8, 2, 16, dropout=0.5, rng=5).astype(np.float64)
    np.testing.assert_array_equal(a(x), b(x))
    plain = lf.TransformerEncoderLayer(8, 2, 16, dropout=0.0, rng=5).astype(np.float64)
    plain.load_state_dict(a.state_dict())
    assert not np.allclose(a(x), plain(x))
    np.testing.assert_array_equal(a.eval()(x), plain.eval()(x))


# ---------------------------------------------------------------------------- interop
@needs_torch
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"bias": False, "dropout": 0.1},
        {"kdim": 5, "vdim": 3},
        {"batch_first": False},
    ],
    ids=["default", "nobias-dropout", "kdim-vdim", "seq-first"],
)
def test_multihead_attention_converts_both_ways(kwargs):
    torch.manual_seed(0)
    module = torch.nn.MultiheadAttention(8, 2, batch_first=kwargs.pop("batch_first", True), **kwargs).double()
    module.eval()
    layer = lf.from_torch(module)
    assert isinstance(layer, lf.MultiheadAttention) and not layer.training
    assert set(layer.state_dict()) == set(module.state_dict())
    rng = np.random.default_rng(10)
    b = 0 if module.batch_first else 1
    shape = [3, 3]
    shape[b] = 2
    q = rng.standard_normal((*shape, 8))
    k = rng.standard_normal((*shape[:1], 4, module.kdim) if b == 0 else (4, 2, module.kdim))
    v = rng.standard_normal((*k.shape[:2], module.vdim))
    with torch.no_grad():
        expected = module(_t(q), _t(k), _t(v), need_weights=False)[0].numpy()
    np.testing.assert_allclose(layer(q, k, v), expected, rtol=RTOL, atol=ATOL)
    back = lf.to_torch(layer)
    assert type(back) is torch.nn.MultiheadAttention and back.batch_first == module.batch_first
    with torch.no_grad():
        np.testing.assert_array_equal(
            back(_t(q), _t(k), _t(v))[0].numpy(), module(_t(q), _t(k), _t(v))[0].numpy()
        )


@needs_torch
def test_a_small_causal_language_model_converts_and_trains_like_torch():
    """Embedding → learned positions → two causal pre-norm blocks → LayerNorm → Linear, as the
    small GPTs: to_torch gives a module computing the same logits; one training step agrees."""
    vocab, t, d = 11, 6, 8
    model = lf.Sequential(
        lf.Embedding(vocab, d, rng=0),
        lf.LearnedPositionalEmbedding(t, d, rng=1),
        lf.TransformerEncoderLayer(d, 2, 16, dropout=0.0, norm_first=True, is_causal=True, rng=2),
        lf.TransformerEncoderLayer(d, 2, 16, dropout=0.0, norm_first=True, is_causal=True, rng=3),
        lf.LayerNorm(d),
        lf.Linear(d, vocab),
    ).astype(np.float64)
    ids = np.random.default_rng(11).integers(0, vocab, (3, t))
    targets = np.random.default_rng(12).integers(0, vocab, (3, t))

    class Positions(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(t, d, dtype=torch.float64))

        def forward(self, x):
            return x + self.weight[: x.shape[1]]

    blocks = [lf.to_torch(model[i]) for i in (2, 3)]
    assert type(blocks[0]).__name__ == "CausalTransformerEncoderLayer"
    module = torch.nn.Sequential(
        lf.to_torch(model[0]), Positions(), *blocks, lf.to_torch(model[4]), lf.to_torch(model[5])
    ).double()
    module.load_state_dict({k: _t(v) for k, v in model.state_dict().items()})
    logits = model.forward(ids)
    t_logits = module(torch.from_numpy(ids))
    np.testing.assert_allclose(logits, t_logits.detach().numpy(), rtol=RTOL, atol=ATOL)
    loss = lf.CrossEntropyLoss()
    value = loss(logits.reshape(-1, vocab), targets.reshape(-1))
    model.backward(loss.backward().reshape(logits.shape), need_input_delta=False)
    t_loss = torch.nn.functional.cross_entropy(
        t_logits.reshape(-1, vocab), torch.from_numpy(targets).reshape(-1)
    )
    t_loss.backward()
    assert abs(value - t_loss.item()) < 1e-12
    grads = dict(module.named_parameters())
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, grads[name].grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)
    assert lf.summary(model, (t,)).rows[2].flops > 0


@needs_torch
def test_conversions_refuse_what_torch_cannot_express():
    with pytest.raises(lf.ConfigError, match=r"MultiheadAttention.*add_bias_kv"):
        lf.from_torch(torch.nn.MultiheadAttention(4, 2, add_bias_kv=True))
    with pytest.raises(lf.ConfigError, match="no is_causal=True option"):
        lf.to_torch(lf.MultiheadAttention(4, 2, is_causal=True))
    with pytest.raises(lf.ConfigError, match="no rotary embedding"):
        lf.to_torch(lf.TransformerEncoderLayer(4, 2, rotary=True))
    with pytest.raises(lf.ConfigError, match=r"TransformerEncoderLayer.*activation"):
        lf.from_torch(torch.nn.TransformerEncoderLayer(4, 2, activation=torch.nn.SiLU()))


# ---------------------------------------------------------------------------- graphs and files
def test_cross_attention_in_a_graph_saves_and_loads(tmp_path):
    q_in, kv_in = lf.Input((4, 8)), lf.Input((6, 5))
    attn = lf.MultiheadAttention(8, 2, kdim=5, vdim=5, rng=0)
    out = lf.Linear(8, 3)(attn([q_in, kv_in]))
    model = lf.Model([q_in, kv_in], out)
    rng = np.random.default_rng(13)
    xs = [
        rng.standard_normal((2, 4, 8)).astype(np.float32),
        rng.standard_normal((2, 6, 5)).astype(np.float32),
    ]
    lf.save(model, tmp_path / "m.lf")
    loaded = lf.load(tmp_path / "m.lf")
    np.testing.assert_array_equal(loaded.predict(xs), model.predict(xs))
    assert "0.in_proj_weight" not in model.state_dict() and "2.q_proj_weight" in model.state_dict()
    with pytest.raises(lf.ShapeError, match=r"takes 1 to 3 inputs, got 4"):
        lf.MultiheadAttention(8, 2)([q_in, q_in, q_in, q_in])


def test_a_transformer_in_a_sequential_saves_and_loads(tmp_path):
    model = lf.Sequential(
        lf.Input((5, 8)),
        lf.SinusoidalPositionalEncoding(8),
        lf.TransformerEncoderLayer(8, 2, 16, norm_first=True, is_causal=True, rotary=True, rng=0),
        lf.RMSNorm(8),
    )
    x = np.random.default_rng(14).standard_normal((3, 5, 8)).astype(np.float32)
    lf.save(model, tmp_path / "t.lf")
    loaded = lf.load(tmp_path / "t.lf")
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert "2.self_attn.out_proj.weight" in loaded.state_dict()


def test_a_config_builds_a_transformer_and_infers_its_width():
    """``[model]`` layers of a TOML config: embed_dim and d_model come from the incoming shape."""
    from learnflux.config import build_model, parse_config

    text = "[model]\ninput_shape = [12]\n" + "".join(
        f"[[model.layers]]\n{body}\n"
        for body in (
            'type = "Embedding"\nnum_embeddings = 20\nembedding_dim = 16',
            'type = "LearnedPositionalEmbedding"\nmax_len = 12\nembedding_dim = 16',
            'type = "TransformerEncoderLayer"\nnhead = 4\ndim_feedforward = 32\nnorm_first = true\n'
            'is_causal = true\nrotary = true\nactivation = "gelu"',
            'type = "MultiheadAttention"\nnum_heads = 2',
            'type = "RMSNorm"\nnormalized_shape = 16',
            'type = "Linear"\nout_features = 20',
        )
    )
    model = build_model(parse_config(text))
    block, attn = model.layers[3], model.layers[4]
    assert (block.d_model, block.self_attn.is_causal, block.self_attn.rotary) == (16, True, True)
    assert attn.embed_dim == 16
    assert lf.summary(model).rows[-1].output_shape == (12, 20)


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "call,error,match",
    [
        (
            lambda m: m(np.zeros((2, 5, 6))),
            lf.ShapeError,
            r"MultiheadAttention\(8.*query must be .* 8 features",
        ),
        (lambda m: m(np.zeros((5, 8))), lf.ShapeError, r"query must be \(batch, T, features\)"),
        (
            lambda m: m(np.zeros((2, 5, 8)), np.zeros((3, 4, 8)), np.zeros((3, 4, 8))),
            lf.ShapeError,
            "share the batch size",
        ),
        (
            lambda m: m(np.zeros((2, 5, 8)), np.zeros((2, 4, 8)), np.zeros((2, 3, 8))),
            lf.ShapeError,
            "key and value the length",
        ),
        (
            lambda m: m(np.zeros((2, 5, 8)), attn_mask=np.zeros((5, 4), dtype=bool)),
            lf.ShapeError,
            r"attn_mask must have shape \(L, S\) = \(5, 5\).*got \(5, 4\)",
        ),
        (
            lambda m: m(np.zeros((2, 5, 8)), key_padding_mask=np.zeros((2, 4), dtype=bool)),
            lf.ShapeError,
            r"key_padding_mask must have shape \(batch, S\) = \(2, 5\)",
        ),
        (
            lambda m: m(np.zeros((2, 5, 8)), attn_mask=np.zeros((5, 5), dtype=np.int64)),
            lf.DtypeError,
            "attn_mask must be boolean or float",
        ),
        (lambda m: m.backward(np.zeros((2, 5, 8))), lf.PhaseError, "before forward"),
    ],
    ids=[
        "embed-dim",
        "no-batch",
        "batch",
        "kv-length",
        "mask-shape",
        "padding-shape",
        "mask-dtype",
        "no-forward",
    ],
)
def test_errors_name_the_layer_and_the_shapes(call, error, match):
    with pytest.raises(error, match=match):
        call(lf.MultiheadAttention(8, 2))


def test_constructor_errors():
    with pytest.raises(lf.ConfigError, match=r"embed_dim \(10\) must be divisible by num_heads \(4\)"):
        lf.MultiheadAttention(10, 4)
    with pytest.raises(lf.ConfigError, match="rotary needs an even head size"):
        lf.MultiheadAttention(6, 2, rotary=True)
    with pytest.raises(lf.ConfigError, match="activation must be 'relu' or 'gelu'"):
        lf.TransformerEncoderLayer(8, 2, activation="tanh")
    with pytest.raises(TypeError):
        lf.MultiheadAttention(8, 2, 0.0, True, False)  # PyTorch's add_bias_kv: not taken
    with pytest.raises(lf.ShapeError, match=r"TransformerEncoderLayer\(8.*d_model=8, got \(2, 5, 6\)"):
        lf.TransformerEncoderLayer(8, 2)(np.zeros((2, 5, 6)))
    with pytest.raises(lf.ShapeError, match=r"7 positions .* more than max_len=6"):
        lf.LearnedPositionalEmbedding(6, 4)(np.zeros((1, 7, 4)))
