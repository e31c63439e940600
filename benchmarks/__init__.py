"""learnflux's benchmark suite: learnflux vs PyTorch eager vs a plain hand-written NumPy reference.

Run it with ``.venv/bin/python -m benchmarks.run`` (see ``docs/benchmarks.md`` and
``python -m benchmarks.run --help``). Nothing here is imported by the library itself.
"""
