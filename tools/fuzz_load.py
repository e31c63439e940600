"""The large run of the model-file fuzzer (``tests/fuzz_mutants.py``; the test suite runs a
bounded one, ``tests/test_fuzz_load.py``).

Usage (from the repository root; Linux)::

    .venv/bin/python tools/fuzz_load.py                       # 5,000 mutants, seed 11, the big cases
    .venv/bin/python tools/fuzz_load.py --mutants 20000 --seed 3 --json fuzz.json

Each mutant of the saved seed models is loaded in a forked child (then predicted on once when it
loads) under a time limit and an address-space limit; the report gives the outcomes by mutation,
every escape (an exception that is not a learnflux error, a learnflux error wrapping one the
loader did not foresee, a hang, a crash), the largest peak memory a child added to its own at its
start, and the slowest case. Exit status 0 when there is no escape, hang, crash or blow-up, 1 otherwise.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fuzz_mutants import fuzz  # noqa: E402


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mutants", type=int, default=5000)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--time-cap", type=float, default=30.0, help="seconds before a case is a hang")
    p.add_argument("--memory-cap", type=int, default=2048, help="MiB of address space a child may add")
    p.add_argument("--blowup", type=float, default=512.0, help="MiB of peak memory that count as a blow-up")
    p.add_argument("--no-big", action="store_true", help="leave out the large cases (100,000 members...)")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = p.parse_args(argv)

    t0 = time.perf_counter()

    def progress(i: int, out) -> None:  # type: ignore[no-untyped-def]
        if (i + 1) % 500 == 0:
            print(f"  {i + 1} mutants, {time.perf_counter() - t0:.0f} s", flush=True)

    with tempfile.TemporaryDirectory() as folder:
        s = fuzz(
            Path(folder),
            args.mutants,
            args.seed,
            time_cap=args.time_cap,
            mem_cap=args.memory_cap << 20,
            big=not args.no_big,
            progress=progress,
        )
    blowups = [o for o in [s.hungriest] if o is not None and o.rss_mib > args.blowup]
    print(f"mutants: {s.mutants} (seed {args.seed}) in {time.perf_counter() - t0:.0f} s")
    print(f"outcomes: {dict(sorted(s.kinds.items()))}")
    for op, kinds in sorted(s.by_op.items()):
        print(f"  {op:13s} {dict(sorted(kinds.items()))}")
    print(f"escapes (incl. hangs, crashes): {len(s.escapes)}")
    for key, n in collections.Counter(
        f"{e.op}: {e.kind} {e.error}: {e.message[:160]}" for e in s.escapes
    ).most_common(20):
        print(f"  {n} × {key}")
    hungriest = s.hungriest.op if s.hungriest else "-"
    print(f"max peak memory a child added to its own at its start: {s.max_rss_mib:.1f} MiB ({hungriest})")
    slowest = f"{s.slowest.op}, {s.slowest.kind}" if s.slowest else "-"
    print(f"max time: {s.max_seconds:.2f} s ({slowest})")
    print(f"blow-ups over {args.blowup:g} MiB: {len(blowups)}; a pickle ran: {s.pickle_ran}")
    if args.json:
        figures = {
            "mutants": s.mutants,
            "seed": args.seed,
            "outcomes": s.kinds,
            "by_op": s.by_op,
            "escapes": [asdict(e) for e in s.escapes],
            "max_rss_mib": s.max_rss_mib,
            "max_seconds": s.max_seconds,
            "slowest": asdict(s.slowest) if s.slowest else None,
            "hungriest": asdict(s.hungriest) if s.hungriest else None,
            "pickle_ran": s.pickle_ran,
        }
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if not s.escapes and not blowups and not s.pickle_ran else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
