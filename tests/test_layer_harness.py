"""The shared harness: every registered layer case goes through the same checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

import learnflux as lf

from .layer_cases import ALL_CASES

CASE_IDS = [c.id for c in ALL_CASES]


def _as_list(x):
    return x if isinstance(x, list) else [x]


def _deltas(case, x, d_in):
    """The δ a backward pass returned, one per input: a list as long as the inputs for a merge
    layer (a layer returning fewer would leave a branch without gradient), a single array
    otherwise; ``None`` only for integer inputs (indices take no δ)."""
    xs = _as_list(x)
    if isinstance(case.input_shape, list):
        assert isinstance(d_in, (list, tuple)), f"{case.id}: backward returned {type(d_in).__name__}"
        assert len(d_in) == len(xs), f"{case.id}: {len(d_in)} δ for {len(xs)} inputs"
        ds = list(d_in)
    else:
        ds = [d_in]
    for k, (xi, di) in enumerate(zip(xs, ds, strict=True)):
        if case.input_kind == "index":
            assert di is None, f"{case.id}: δ[{k}] for integer indices"
        else:
            assert isinstance(di, np.ndarray), f"{case.id}: δ[{k}] is {di!r}"
            assert di.shape == xi.shape, f"{case.id}: δ[{k}] has shape {di.shape}, input {xi.shape}"
    return ds


def _assert_every_parameter_has_a_gradient(case, layer):
    for name, p in layer.named_parameters():
        assert p.grad is not None, f"{case.id}: {name} has no gradient after backward"
        assert p.grad.shape == p.value.shape, f"{case.id}: {name}.grad has shape {p.grad.shape}"


def _settings(layer):
    """A layer's public attributes that are plain values (numbers, strings, tuples of them...):
    what its constructor kept from its arguments."""

    def plain(v):
        if isinstance(v, (list, tuple)):
            return all(plain(i) for i in v)
        return v is None or isinstance(v, (bool, int, float, str, np.dtype))

    return {k: v for k, v in vars(layer).items() if not k.startswith("_") and plain(v)}


def _wrap_in_model(case, layer):
    """A model around the layer so that save/load sees a whole model."""
    if isinstance(case.input_shape, list):
        inputs = [lf.Input(s) for s in case.input_shape]
        return lf.Model(inputs, layer(inputs))
    return lf.Sequential(layer)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", ALL_CASES, ids=CASE_IDS)
def test_shapes_and_dtype(case, dtype):
    rng = np.random.default_rng(0)
    layer = case.make().astype(dtype)
    for batch in case.batch_sizes:
        x = case.sample(batch, rng, dtype)
        out = layer(x)
        assert out.dtype == dtype, f"{case.id}: output dtype {out.dtype}"
        assert out.shape[0] == batch
        if not isinstance(case.input_shape, list):
            assert out.shape[1:] == tuple(layer.output_shape(case.input_shape))
        d_in = layer.backward(np.ones_like(out))
        for di in _deltas(case, x, d_in):
            assert di is None or di.dtype == dtype
        _assert_every_parameter_has_a_gradient(case, layer)
        for p in layer.parameters():
            assert p.grad.dtype == dtype


@pytest.mark.parametrize("case", [c for c in ALL_CASES if c.gradcheck], ids=lambda c: c.id)
def test_gradcheck(case):
    rng = np.random.default_rng(1)
    x = case.sample(2, rng)
    report = lf.gradcheck(case.make(), x, **case.gradcheck_kwargs)
    assert report.passed, str(report)
    names = {c.name for c in report.checks}
    assert {name for name, _ in case.make().named_parameters()} <= names
    if case.input_kind == "float":  # every input's δ was checked, none skipped
        n = len(case.input_shape) if isinstance(case.input_shape, list) else 0
        assert ({f"input[{k}]" for k in range(n)} if n else {"input"}) <= names


@pytest.mark.parametrize("case", ALL_CASES, ids=CASE_IDS)
def test_inference_phase(case):
    rng = np.random.default_rng(2)
    layer = case.make().astype(np.float64)
    x = case.sample(3, rng)
    train_out = layer(x)
    layer.eval()
    for attr in layer._cache_attrs():
        assert getattr(layer, attr) is None, f"{case.id}: cache {attr} kept after eval()"
    eval_out = layer(x)
    for attr in layer._cache_attrs():
        assert getattr(layer, attr) is None, f"{case.id}: cache {attr} kept in inference"
    with pytest.raises(lf.PhaseError, match="inference phase"):
        layer.backward(np.ones_like(eval_out))
    if case.deterministic:
        np.testing.assert_array_equal(train_out, eval_out)


@pytest.mark.parametrize("case", ALL_CASES, ids=CASE_IDS)
def test_save_load_round_trip(case, tmp_path):
    rng = np.random.default_rng(3)
    model = _wrap_in_model(case, case.make())
    x = case.sample(3, rng, np.float32)
    path = tmp_path / "model.lf"
    lf.save(model, path)
    loaded = lf.load(path)
    np.testing.assert_array_equal(model.predict(x), loaded.predict(x))
    assert set(loaded.state_dict()) == set(model.state_dict())


@pytest.mark.parametrize("case", ALL_CASES, ids=CASE_IDS)
def test_config_round_trip(case):
    """``get_config → from_config → get_config`` gives the same config (through JSON, as a file
    stores it), and the rebuilt layer, given the same weights, computes the same training step
    (output, δ, gradients, buffers such as running statistics) and the same inference output: a
    constructor argument that get_config drops fails here even when the weights restore."""
    layer = case.make().astype(np.float64)
    config = layer.get_config()
    rebuilt = type(layer).from_config(json.loads(json.dumps(config))).astype(np.float64)
    assert type(rebuilt) is type(layer)
    assert rebuilt.get_config() == config, f"{case.id}: {config} came back as {rebuilt.get_config()}"
    # what the constructor kept (init, slopes, sizes...): an argument only the first weights
    # depend on would otherwise go unnoticed once the weights are copied
    kept, back = _settings(layer), _settings(rebuilt)
    assert back == kept, f"{case.id}: rebuilt from {config}: {back} instead of {kept}"
    rebuilt.load_state_dict(layer.state_dict())
    rng = np.random.default_rng(7)
    x = case.sample(3, rng)

    def same(a, b, what):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=f"{case.id}: {what} differs")

    # a random layer draws from its own generator, which a config does not hold: inference only
    if not hasattr(layer, "rng"):
        out = layer(x)
        same(rebuilt(x), out, "training output")
        up = rng.standard_normal(out.shape)
        for k, (a, b) in enumerate(
            zip(_as_list(layer.backward(up)), _as_list(rebuilt.backward(up)), strict=True)
        ):
            same(a, b, f"δ[{k}]")
        for (name, p), (_, q) in zip(layer.named_parameters(), rebuilt.named_parameters(), strict=True):
            same(p.grad, q.grad, f"gradient of {name}")
        for name, buffer in layer.state_dict().items():
            same(rebuilt.state_dict()[name], buffer, name)
    layer.eval()
    rebuilt.eval()
    same(rebuilt(x), layer(x), "inference output")


@pytest.mark.parametrize("case", [c for c in ALL_CASES if c.exact], ids=lambda c: c.id)
def test_exact_arithmetic_agrees_with_float64(case):
    from fractions import Fraction

    rng = np.random.default_rng(4)
    layer64 = case.make().astype(np.float64)
    x = case.sample(2, rng)
    x = [np.round(xi * 8) / 8 for xi in _as_list(x)]  # dyadic values: exact in both
    x = x if isinstance(case.input_shape, list) else x[0]
    out64 = layer64.forward(x)
    d64 = layer64.backward(np.ones_like(out64) / 4)
    exact = case.make().astype(np.float64)
    exact.load_state_dict(layer64.state_dict())
    exact.astype("exact")
    grads64 = {name: p.grad for name, p in layer64.named_parameters()}

    def assert_exact_and_close(what, a, b):
        # Fractions end to end: a float (or int) slipping in anywhere is a bug, even when the
        # value is right; the values agree with float64 within its rounding
        assert isinstance(a, np.ndarray) and a.dtype == object, f"{case.id}: {what} is not exact"
        kinds = {type(v).__name__ for v in a.reshape(-1)}
        assert kinds <= {"Fraction"}, f"{case.id}: {what} holds {sorted(kinds)}, not Fractions"
        assert a.shape == b.shape, f"{case.id}: {what} has shape {a.shape}, float64 {b.shape}"
        np.testing.assert_allclose(a.astype(np.float64), b, rtol=1e-12, atol=1e-12, err_msg=what)

    out = exact(x)
    assert_exact_and_close("output", out, out64)
    d = exact.backward(np.full(out.shape, Fraction(1, 4), dtype=object))
    ds, ds64 = _deltas(case, x, d), _deltas(case, x, d64)
    for k, (a, b) in enumerate(zip(ds, ds64, strict=True)):
        if b is not None:
            assert_exact_and_close(f"δ[{k}]", a, b)
    _assert_every_parameter_has_a_gradient(case, exact)
    for name, p in exact.named_parameters():
        assert_exact_and_close(f"gradient of {name}", p.grad, grads64[name])
        assert_exact_and_close(f"{name}", p.value, layer64.state_dict()[name])


TORCH_CASES = [c for c in ALL_CASES if c.torch is not None]


@pytest.mark.parametrize(
    "dtype,rtol,atol",
    [(np.float64, 1e-10, 1e-12), (np.float32, 1e-4, 1e-5)],
    ids=["float64", "float32"],
)
@pytest.mark.parametrize("case", TORCH_CASES, ids=lambda c: c.id)
def test_torch_parity(case, dtype, rtol, atol):
    torch = pytest.importorskip("torch")
    from .torch_parity import compare_with_torch

    compare_with_torch(case, dtype, rtol, atol, torch)


# ---------------------------------------------------------------------------- declarations
@pytest.mark.parametrize("case", ALL_CASES, ids=CASE_IDS)
def test_declares_its_flops(case):
    """Every layer states its cost per sample (lf.summary's FLOPs column): an int, no '?'."""
    flops = case.make().flops(case.input_shape)
    assert isinstance(flops, int) and flops >= 0, f"{case.id}: flops {flops!r}"


@pytest.mark.parametrize("case", TORCH_CASES, ids=lambda c: c.id)
def test_torch_twin_declaration(case):
    """A layer whose case is its declared torch twin converts both ways: from_torch builds the
    same class with the same config, to_torch a module computing the same output."""
    torch = pytest.importorskip("torch")
    layer = case.make().astype(np.float64)
    module = case.torch()
    if type(module).__name__ not in type(layer).torch_twins:
        pytest.skip(f"{case.id}: the case's torch module is not {type(layer).__name__}'s twin")
    back = lf.from_torch(module)
    assert type(back) is type(layer) and back.get_config() == layer.get_config()
    twin = lf.to_torch(layer.eval()).eval()
    x = case.sample(2, np.random.default_rng(6))
    with torch.no_grad():
        expected = twin(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12, atol=1e-14)
