"""Build of learnflux's optional compiled kernels (everything else is in pyproject.toml).

The C extension ``learnflux.kernels._lfk`` is ``optional=True``: without a working C compiler the
build prints a warning and the install still succeeds; learnflux then runs its NumPy kernels and
``lf.info()`` says why. It uses only the CPython buffer protocol (no NumPy headers, so no NumPy
build dependency) and no ``-march=native``: the hot loops carry target clones (AVX-512, AVX2,
baseline) chosen at load time for the CPU that runs them.
"""

import sys

from setuptools import Extension, setup

SOURCES = ["module.c", "parallel.c", "conv.c", "pool.c", "eltwise.c", "bn.c"]
compile_args = [] if sys.platform == "win32" else ["-O3", "-std=gnu11", "-fno-strict-aliasing"]
link_args = [] if sys.platform == "win32" else ["-pthread"]

setup(
    ext_modules=[
        Extension(
            "learnflux.kernels._lfk",
            sources=[f"src/learnflux/kernels/_c/{name}" for name in SOURCES],
            depends=[f"src/learnflux/kernels/_c/{h}" for h in ("lfk.h", "conv_t.h", "pool_t.h", "eltwise_t.h", "bn_t.h")],
            extra_compile_args=compile_args,
            extra_link_args=link_args,
            optional=True,
        )
    ]
)
