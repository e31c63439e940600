"""The BLAS dispatch (learnflux.kernels.blas): NumPy's BLAS by default, Intel MKL where it is
installed and chosen; the same products either way. The MKL tests run where the ``mkl`` wheel is
installed (``pip install "learnflux[mkl]"``) and skip elsewhere."""

import warnings

import numpy as np
import pytest

import learnflux as lf
from learnflux.kernels import blas, gemm


@pytest.fixture
def restore_blas():
    before = blas.active()
    yield
    blas.use(before)


def _mkl_or_skip():
    with warnings.catch_warnings():  # "MKL is not installed": the skip says it
        warnings.simplefilter("ignore", RuntimeWarning)
        chosen = blas.use("mkl")
    if chosen != "mkl":
        pytest.skip("Intel MKL is not installed (pip install 'learnflux[mkl]')")


def test_numpy_choice_runs_np_matmul(restore_blas):
    assert blas.use("numpy") == "numpy"
    assert "LEARNFLUX_BLAS" not in blas.info()["blas_reason"]
    a = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(blas.matmul(a, a.T), a @ a.T)


def test_unknown_choice_warns_and_uses_auto(restore_blas):
    with pytest.warns(RuntimeWarning, match="'openblas' is not one of auto, numpy, mkl"):
        blas.use("openblas")
    assert blas.active() in ("numpy", "mkl")


def test_auto_keeps_numpy_blas_off_intel(restore_blas, monkeypatch):
    monkeypatch.setattr(blas, "_cpu_vendor", lambda: "AuthenticAMD")
    assert blas.use("auto") == "numpy"
    assert "AuthenticAMD" in blas.info()["blas_reason"]


def test_mkl_asked_without_mkl_warns_and_falls_back(restore_blas, monkeypatch):
    monkeypatch.setitem(blas._state, "lib", None)
    monkeypatch.setitem(blas._state, "lib_error", "Intel MKL is not installed (pip install 'learnflux[mkl]')")
    with pytest.warns(RuntimeWarning, match="MKL is not installed"):
        assert blas.use("mkl") == "numpy"
    assert "not installed" in blas.info()["blas_reason"]


def test_info_names_the_blas():
    info = lf.info()
    assert info["blas"] in ("numpy", "mkl")
    assert info["blas_reason"] and info["numpy_blas"]


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("layout", ["nn", "tn", "nt", "tt"])
def test_mkl_products_equal_numpy(restore_blas, dtype, rtol, layout):
    _mkl_or_skip()
    rng = np.random.default_rng(0)
    m, k, n = 67, 129, 65  # odd sizes, above MIN_WORK
    a = rng.standard_normal((k, m) if layout[0] == "t" else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if layout[1] == "t" else (k, n)).astype(dtype)
    a = a.T if layout[0] == "t" else a  # a Fortran-ordered view: MKL reads it transposed
    b = b.T if layout[1] == "t" else b
    expected = a.astype(np.float64) @ b.astype(np.float64)
    out = np.empty((m, n), dtype)
    got = blas.matmul(a, b, out)
    assert got is out and got.dtype == dtype
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol * 10)


def test_mkl_leaves_small_strided_and_exact_products_to_numpy(restore_blas):
    _mkl_or_skip()
    from fractions import Fraction

    small = np.ones((4, 4), np.float32)
    np.testing.assert_array_equal(blas.matmul(small, small), small @ small)
    strided = np.ones((200, 400), np.float32)[:, ::2]
    np.testing.assert_array_equal(blas.matmul(strided, strided.T), strided @ strided.T)
    exact = np.array([[Fraction(1, 3)] * 2] * 2, dtype=object)
    assert blas.matmul(exact, exact)[0, 0] == Fraction(2, 9)


def test_mkl_stacked_groups_equal_numpy(restore_blas):
    _mkl_or_skip()
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 40, 90))
    b = rng.standard_normal((3, 90, 100))
    np.testing.assert_allclose(gemm.matmul(a, b), np.matmul(a, b), rtol=1e-12)


def test_mkl_training_matches_numpy_blas(restore_blas):
    """A CNN and an MLP step through MKL give the NumPy-BLAS gradients (float64, 1e-10)."""
    _mkl_or_skip()

    def grads(which):
        blas.use(which)
        lf.seed(3)
        model = lf.Sequential(
            lf.Input((1, 12, 12)),
            lf.Conv2d(1, 8, 3, padding=1),
            lf.ReLU(),
            lf.Flatten(),
            lf.Linear(8 * 12 * 12, 64),
            lf.ReLU(),
            lf.Linear(64, 10),
        ).astype("float64")
        x = np.random.default_rng(4).standard_normal((32, 1, 12, 12))
        y = np.random.default_rng(5).integers(0, 10, 32)
        loss = lf.CrossEntropyLoss()
        loss.forward(model.forward(x), y)
        model.backward(loss.backward())
        return [p.grad.copy() for p in model.parameters()]

    for got, want in zip(grads("mkl"), grads("numpy"), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_small_products_run_on_one_openblas_thread_and_restore_the_count(restore_blas, monkeypatch):
    blas.use("numpy")
    threads = blas._openblas_threads()
    if threads is None:
        pytest.skip("NumPy's BLAS is not its bundled OpenBLAS")
    get, set_ = threads
    before = get()
    seen = []
    real = np.matmul

    def spy(a, b, out=None):
        seen.append(get())
        return real(a, b, out=out)

    monkeypatch.setattr(blas.np, "matmul", spy)
    rng = np.random.default_rng(0)
    set_(2)
    try:
        small = rng.standard_normal((64, 128)), rng.standard_normal((128, 64))  # 2^19 multiply-adds
        np.testing.assert_array_equal(blas.matmul(*small), real(*small))
        assert seen == [1] and get() == 2  # one thread inside, the count restored after
        large = rng.standard_normal((256, 256)), rng.standard_normal((256, 256))
        np.testing.assert_array_equal(blas.matmul(*large), real(*large))
        assert seen == [1, 2]
        # below OpenBLAS's own threshold it runs one thread by itself: no switch, no ctypes calls
        tiny = rng.standard_normal((10, 64)), rng.standard_normal((64, 20))
        np.testing.assert_array_equal(blas.matmul(*tiny), real(*tiny))
        assert seen == [1, 2, 2]
    finally:
        set_(before)
