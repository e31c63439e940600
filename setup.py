"""Build of learnflux's optional compiled kernels (everything else is in pyproject.toml).

The C extension ``learnflux.kernels._lfk`` is ``optional=True``: without a working C compiler the
build prints a warning and the install still succeeds; learnflux then runs its NumPy kernels and
``lf.info()`` says why. It uses only the CPython buffer protocol (no NumPy headers, so no NumPy
build dependency) and no ``-march=native``: the hot loops carry target clones (AVX-512, AVX2,
baseline) chosen at load time for the CPU that runs them (see ``_c/lfk.h``).
"""

import sys

from setuptools import Extension, setup

C_DIR = "src/learnflux/kernels/_c"
SOURCES = [
    "module.c",
    "parallel.c",
    "conv.c",
    "dconv.c",
    "thinconv.c",
    "wino.c",
    "winowg.c",
    "pool.c",
    "pool2.c",
    "eltwise.c",
    "bn.c",
    "dense.c",
    "update.c",
    "finite.c",
]
HEADERS = [
    "lfk.h",
    "conv_t.h",
    "dconv_t.h",
    "dconv_drv_t.h",
    "thin_t.h",
    "thin_drv_t.h",
    "wino_t.h",
    "winowg_t.h",
    "pool_t.h",
    "pool2_t.h",
    "eltwise_t.h",
    "bn_t.h",
    "dense_t.h",
    "update_t.h",
]
# -fno-trapping-math: no FP exception is ever trapped, so compares may become vector selects (the
# max pooling loops vectorise only with it); it changes no result
UNIX_FLAGS = ["-O3", "-std=gnu11", "-fno-strict-aliasing", "-fno-trapping-math"]
compile_args = [] if sys.platform == "win32" else UNIX_FLAGS
link_args = [] if sys.platform == "win32" else ["-pthread"]
libraries = [] if sys.platform == "win32" else ["m"]  # tanh, tanhf (GELU's tanh approximation)

setup(
    ext_modules=[
        Extension(
            "learnflux.kernels._lfk",
            sources=[f"{C_DIR}/{name}" for name in SOURCES],
            depends=[f"{C_DIR}/{name}" for name in HEADERS],
            extra_compile_args=compile_args,
            extra_link_args=link_args,
            libraries=libraries,
            optional=True,
        )
    ]
)
