"""Build of learnflux's optional compiled kernels (everything else is in pyproject.toml).

The C extension ``learnflux.kernels._lfk`` is ``optional=True``: without a working C compiler the
build prints a warning and the install still succeeds; learnflux then runs its NumPy kernels and
``lf.info()`` says why. It uses only the CPython buffer protocol (no NumPy headers, so no NumPy
build dependency) and no ``-march=native``: the hot loops carry target clones (AVX-512, AVX2,
baseline) chosen at load time for the CPU that runs them (see ``_c/lfk.h``).
"""

import os
import sys
from concurrent.futures import ThreadPoolExecutor

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class ParallelBuildExt(build_ext):
    """Compiles the extension's C files side by side, one per CPU (the compiler's ``compile``
    called once per file from a thread pool; setuptools itself runs them one after the other, and
    its ``--parallel`` only builds several extensions at once): 14 files with three target clones
    each take ~18 s one after the other, ~9 s on 2 cores (the longest file ~4 s)."""

    def build_extension(self, ext: Extension) -> None:
        compile_each = self.compiler.compile

        def compile_all(sources: list, *args: object, **kwargs: object) -> list:
            with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
                groups = list(pool.map(lambda src: compile_each([src], *args, **kwargs), sources))
            return [obj for group in groups for obj in group]

        self.compiler.compile = compile_all
        try:
            super().build_extension(ext)
        finally:
            self.compiler.compile = compile_each


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
    "wino_mk_t.h",
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
    cmdclass={"build_ext": ParallelBuildExt},
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
    ],
)
