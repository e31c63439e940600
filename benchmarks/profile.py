"""Profile one case's learnflux step with cProfile: ``python -m benchmarks.profile mlp [steps]``.

Prints the functions where the step spends its time (cumulative and own time), so that a
hot spot can be named precisely (file, function) before anything is optimised.
"""

from __future__ import annotations

import cProfile
import pstats
import sys

from . import cases as cases_mod
from .common import numpy_blas_threads


def main(argv: list[str]) -> int:
    name = argv[0] if argv else "mlp"
    steps = int(argv[1]) if len(argv) > 1 else 50
    framework = argv[2] if len(argv) > 2 else "learnflux"
    (case,) = [c for c in cases_mod.all_cases() if c.name == name]
    if framework.startswith("torch"):
        from .common import setup_torch_threads

        setup_torch_threads(numpy_blas_threads())
    from . import learnflux_ref

    data = cases_mod.make_data(case)
    kind = cases_mod.loss_kind(case, learnflux_ref.has_cross_entropy())
    step = cases_mod.make_step(framework, case, data, kind)
    for _ in range(3):
        step()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(steps):
        step()
    prof.disable()
    stats = pstats.Stats(prof, stream=sys.stdout).strip_dirs()
    print(f"# {framework} {name}: {steps} steps, loss {kind}")
    stats.sort_stats("tottime").print_stats(18)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
