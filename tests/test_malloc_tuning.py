"""glibc's malloc thresholds, set once when learnflux.kernels is imported (kernels/workspace.py,
tune_malloc): done by default on glibc, left alone when asked or when the environment tunes
malloc itself; lf.info()["malloc"] says which. Each case runs in a fresh interpreter (the tuning
happens at import)."""

import os
import subprocess
import sys

import pytest

from learnflux.kernels import workspace


def _malloc_line(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("LEARNFLUX_MALLOC_TUNING", "GLIBC_TUNABLES")}
    done = subprocess.run(
        [sys.executable, "-c", "import learnflux as lf; print(lf.info()['malloc'])"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.skipif(not workspace._is_glibc(), reason="the thresholds are glibc's")
def test_glibc_thresholds_are_set_by_default():
    assert _malloc_line() == "arrays up to 32 MiB from the heap, 128 MiB of free heap kept"


def test_opting_out_keeps_the_c_library_defaults():
    assert _malloc_line(LEARNFLUX_MALLOC_TUNING="0") == "LEARNFLUX_MALLOC_TUNING=0: glibc's defaults"


def test_an_environment_that_tunes_malloc_is_left_alone():
    line = _malloc_line(GLIBC_TUNABLES="glibc.malloc.trim_threshold=1048576")
    assert line == "the environment tunes malloc"
