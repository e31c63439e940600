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
