"""A bounded, seeded run of the model-file fuzzer (``tests/fuzz_mutants.py``): every mutant of
the saved seed models (a CNN, an MLP, a graph model, an exact model) is loaded in a forked
child, then used for one prediction when it loads. Only learnflux errors may come out, no case
may pass the time cap (a hang) or grow its child's memory past the cap, and no pickle may run.
The larger run is ``tools/fuzz_load.py``; its figures are in ``docs/files.md``."""

from __future__ import annotations

import collections
import os
import sys

import pytest

from .fuzz_mutants import fuzz

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="forked children and /proc (Linux)"
)

MUTANTS = 210
TIME_CAP = 20.0  # seconds a case may take before it counts as a hang (under a loaded CI machine)
MEMORY_CAP_MIB = 256  # peak resident memory a child may add to the parent's


def test_fuzzed_model_files_only_raise_learnflux_errors(tmp_path):
    summary = fuzz(tmp_path, MUTANTS, seed=2024, time_cap=TIME_CAP, mem_cap=1 << 30)
    escapes = collections.Counter(f"{e.op}: {e.kind} {e.error}: {e.message[:120]}" for e in summary.escapes)
    assert not escapes, escapes.most_common(10)
    assert summary.max_rss_mib < MEMORY_CAP_MIB, summary.hungriest
    assert summary.max_seconds < TIME_CAP, summary.slowest
    assert not summary.pickle_ran
    assert summary.kinds.get("refused", 0) > MUTANTS // 2  # most mutants really are hostile
    assert os.path.exists(tmp_path / "cnn.lf")
