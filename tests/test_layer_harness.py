"""The shared harness: every registered layer case goes through the same checks."""

from __future__ import annotations

import numpy as np
import pytest

import learnflux as lf

from .layer_cases import ALL_CASES

CASE_IDS = [c.id for c in ALL_CASES]


def _as_list(x):
    return x if isinstance(x, list) else [x]


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
        if case.input_kind == "float":
            for xi, di in zip(_as_list(x), _as_list(d_in)):
                assert di.shape == xi.shape and di.dtype == dtype
        for p in layer.params():
            assert p.grad.shape == p.value.shape and p.grad.dtype == dtype


@pytest.mark.parametrize("case", [c for c in ALL_CASES if c.gradcheck], ids=lambda c: c.id)
def test_gradcheck(case):
    rng = np.random.default_rng(1)
    x = case.sample(2, rng)
    report = lf.gradcheck(case.make(), x, **case.gradcheck_kwargs)
    assert report.passed, str(report)
    names = {c.name for c in report.checks}
    assert {name for name, _ in case.make().named_parameters()} <= names


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
    out = exact(x)
    assert out.dtype == object and all(isinstance(v, Fraction) for v in out.reshape(-1))
    np.testing.assert_allclose(out.astype(np.float64), out64, rtol=1e-12, atol=1e-12)
    d = exact.backward(np.full(out.shape, Fraction(1, 4), dtype=object))
    for a, b in zip(_as_list(d), _as_list(d64)):
        np.testing.assert_allclose(np.asarray(a, dtype=np.float64), b, rtol=1e-12, atol=1e-12)


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
