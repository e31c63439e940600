"""Shared pytest set-up: the layer tests run once per kernel set.

Every test in ``KERNEL_MODULES`` is parametrised over the kernel sets (``numpy``, ``compiled``;
see ``learnflux.kernels``), so the shared harness, the layer tests and the gradient checks run on
both in the same pytest run. Where the compiled kernels are not built, their tests are skipped,
unless ``LEARNFLUX_REQUIRE_COMPILED=1`` (CI sets it) turns that into a failure.
"""

from __future__ import annotations

import os

import pytest

from learnflux import kernels

KERNEL_MODULES = {"test_layer_harness", "test_conv", "test_pool", "test_norm", "test_seed_example"}
KERNEL_SETS = ("numpy", "compiled")


@pytest.fixture(autouse=True)
def kernel_set(request):
    """The kernel set a test runs on (None: the default one, for tests outside KERNEL_MODULES)."""
    name = getattr(request, "param", None)
    if name is None:
        yield None
        return
    if name == "compiled" and not kernels.available():
        message = f"compiled kernels not built: {kernels.info().get('build_error')}"
        if os.environ.get("LEARNFLUX_REQUIRE_COMPILED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    with kernels.using(name):
        yield name


def pytest_generate_tests(metafunc):
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    if module in KERNEL_MODULES and "kernel_set" in metafunc.fixturenames:
        metafunc.parametrize("kernel_set", KERNEL_SETS, indirect=True)


# ------------------------------------------------------------------ compiled-kernel fixtures
# (shared by test_kernels.py and the fusion tests)
def _isas(select: str) -> list[str]:
    """The instruction sets of the kernel family ``_lfk.<select>`` this CPU runs (AVX-512, AVX2,
    baseline): ``dconv_isa`` (the direct, thin and Winograd convolutions) or ``pool2_isa``."""
    if not kernels.available():
        return ["auto"]
    from learnflux.kernels import _lfk

    choose = getattr(_lfk, select)
    found = []
    for name in ("avx512", "avx2", "baseline"):
        try:
            found.append(choose(name))
        except ValueError:
            pass
    choose("auto")
    return found


def _each_isa(select: str, request):
    if not kernels.available():
        yield request.param
        return
    from learnflux.kernels import _lfk

    choose = getattr(_lfk, select)
    choose(request.param)
    try:
        yield request.param
    finally:
        choose("auto")


@pytest.fixture(params=_isas("dconv_isa"))
def dconv_isa(request):
    """Each instruction set's convolution micro-kernels in turn (the best one is restored after)."""
    yield from _each_isa("dconv_isa", request)


@pytest.fixture(params=_isas("pool2_isa"))
def pool2_isa(request):
    """Each instruction set's 2×2 pooling kernels in turn (the best one is restored afterwards)."""
    yield from _each_isa("pool2_isa", request)


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def kernel_threads(request):
    """The compiled calls on one thread (the default) and split over two (``set_threads(2)``):
    both paths must give the NumPy kernels' results."""
    if not kernels.available():
        yield 1
        return
    before = kernels.info()["threads"]
    kernels.set_threads(request.param)
    try:
        yield request.param
    finally:
        kernels.set_threads(before)
