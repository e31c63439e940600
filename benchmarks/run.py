"""Run the benchmark suite: ``.venv/bin/python -m benchmarks.run`` (about 5 minutes on 2 cores).

Options: ``--cases mlp,cnn,...`` (names or groups: ``mlp cnn cnn-cifar tiny predict scaling
limit``), ``--quick`` (one step per run, two rounds: checks that everything runs, measures
nothing), ``--no-memory``, ``--unset-env auto|always|never``.

Where the results go: by default into a new folder ``benchmarks/results/<UTC timestamp>/``
(``benchmarks/results/quick/`` with ``--quick``), or the folder given by ``--out``:
``results.json``, ``benchmarks.md`` and ``img/bench_*.png``. Nothing tracked by git is written.
``--update-docs`` also regenerates the committed copies the documentation reads:
``benchmarks/results/latest.json``, ``docs/benchmarks.md`` and ``docs/img/bench_*.png`` (the
README's speed table quotes that run and is edited by hand). ``--json``, ``--docs`` and
``--img-dir`` set single paths.

What runs where:

* **timing**: in this process, all frameworks interleaved (see ``benchmarks.common``), with
  PyTorch's threads set to the number of threads of NumPy's BLAS (found with threadpoolctl);
* **peak RSS**: one fresh child process per (case, framework) that imports only what that
  framework needs (``--worker memory``), builds the model and its data, runs a few steps and
  reports ``VmHWM`` (peak resident set size) from ``/proc/self/status``, plus the RSS right after
  its imports so that the price of ``import torch`` is visible on its own;
* **environment as it is vs unset**: when ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` are set,
  the timed cases and the GEMM limit are run a second time in a child process with both removed
  (``--worker timing``), which records the OpenBLAS kernel it then gets. The variables are
  never changed in this process, in tests or in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Optional

from . import cases as cases_mod
from .common import (
    OPENBLAS_ENV_VARS,
    TimingConfig,
    machine_info,
    numpy_blas_architecture,
    numpy_blas_threads,
    paired_ratio,
    rss_kib,
    run_interleaved,
    setup_torch_threads,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"
QUICK_DIR = RESULTS_DIR / "quick"
# The committed copies the documentation reads: written only with --update-docs.
DOCS_JSON = RESULTS_DIR / "latest.json"
DOCS_MD = ROOT / "docs" / "benchmarks.md"
DOCS_IMG = ROOT / "docs" / "img"
MEMORY_STEPS = 5


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def lf_has_cross_entropy() -> bool:
    from . import learnflux_ref

    return learnflux_ref.has_cross_entropy()


# ---------------------------------------------------------------------------------------- timing
def time_case(
    case: cases_mod.Case, cfg: TimingConfig, has_torch: bool, frameworks: Optional[list[str]] = None
) -> dict[str, Any]:
    """Build every framework's step for ``case``, time them interleaved, compute paired ratios
    of learnflux against each other framework and check the targets (issue 10's)."""
    from .learnflux_ref import Unavailable

    data = cases_mod.make_data(case)
    kind = cases_mod.loss_kind(case, lf_has_cross_entropy())
    result: dict[str, Any] = {
        "title": case.title,
        "unit": case.unit,
        "batch": case.batch,
        "mode": case.mode,
        "group": case.group,
        "loss": kind,
        "frameworks": {},
        "ratios": {},
        "targets": {},
    }
    if case.classes and kind == "squared_error":
        result["loss_note"] = (
            "learnflux has no CrossEntropyLoss yet: every framework uses the squared error on one-hot targets"
        )
    steps = {}
    for fw in case.frameworks:
        if frameworks and fw not in frameworks:
            continue
        if fw.startswith("torch") and not has_torch:
            result["frameworks"][fw] = {"unavailable": "torch is not installed"}
            continue
        try:
            step = cases_mod.make_step(fw, case, data, kind)
            step()  # a step that fails is reported, not timed
            steps[fw] = step
        except Unavailable as exc:
            result["frameworks"][fw] = {"unavailable": str(exc)}
        except Exception as exc:  # a bug in one framework must not stop the suite
            last = traceback.extract_tb(exc.__traceback__)[-1]
            result["frameworks"][fw] = {
                "failed": f"{type(exc).__name__}: {exc} ({Path(last.filename).name}:{last.lineno})"
            }
    timings = run_interleaved(steps, case.batch, cfg) if steps else {}
    for fw, timing in timings.items():
        result["frameworks"][fw] = timing.summary()
    if "learnflux" in timings:
        for fw, timing in timings.items():
            if fw != "learnflux":
                result["ratios"][fw] = paired_ratio(timings["learnflux"], timing)
    for fw, target in case.targets.items():
        ratio = result["ratios"].get(fw)
        result["targets"][fw] = {
            "target": target,
            "ratio": ratio["median"] if ratio else None,
            "met": (ratio["median"] >= target) if ratio else None,
        }
    return result


def _fmt(res: dict[str, Any]) -> str:
    parts = []
    for fw, r in res["frameworks"].items():
        if "median" in r:
            parts.append(f"{fw} {r['median']:.4g}")
        else:
            parts.append(f"{fw} ({'unavailable' if 'unavailable' in r else 'FAILED'})")
    ratios = ", ".join(f"lf/{fw} {r['median']:.2f}" for fw, r in res["ratios"].items())
    return f"{res['unit']}: " + "; ".join(parts) + (f" | {ratios}" if ratios else "")


def run_timing(
    selected: list[cases_mod.Case],
    cfg: TimingConfig,
    scaling_cfg: TimingConfig,
    has_torch: bool,
    frameworks: Optional[list[str]] = None,
) -> dict[str, Any]:
    out = {}
    for case in selected:
        t0 = time.perf_counter()
        res = time_case(case, scaling_cfg if case.group == "scaling" else cfg, has_torch, frameworks)
        res["wall_s"] = time.perf_counter() - t0
        out[case.name] = res
        log(f"  {case.name:<17} {_fmt(res)}  [{res['wall_s']:.0f}s]")
    return out


def run_limit(timed: dict[str, Any], cfg: TimingConfig, has_torch: bool, quick: bool) -> dict[str, Any]:
    from . import limit

    res = limit.measure(
        cases_mod.MLP_SIZES,
        128,
        repeats=2 if quick else 5,
        min_s=0.0 if quick else 0.02,
        with_torch=has_torch,
    )
    mlp = timed.get("mlp")
    if mlp is None:  # the limit needs the MLP step's time: time it here
        mlp = time_case(next(c for c in cases_mod.all_cases() if c.name == "mlp"), cfg, has_torch)
        res["mlp_timed_here"] = True
    res["achieved"] = limit.achieved(res, mlp)
    res["target"] = {"target": 0.9, "ratio": res["achieved"].get("learnflux_vs_numpy")}
    ratio = res["target"]["ratio"]
    res["target"]["met"] = None if ratio is None else ratio >= 0.9
    log(
        f"  limit             numpy GEMM floor {res['numpy_floor_gflops']:.1f} GFLOP/s; achieved "
        + ", ".join(f"{fw} {a['gflops']:.1f}" for fw, a in res["achieved"].items() if isinstance(a, dict))
    )
    return res


# ---------------------------------------------------------------------------------------- memory
def memory_worker(case_name: str, framework: str, quick: bool) -> dict[str, Any]:
    """Runs in a fresh child process: imports only ``framework``'s modules, builds the case and
    runs a few steps; returns RSS figures in KiB."""
    start = rss_kib()
    case = next(c for c in cases_mod.all_cases() if c.name == case_name)
    if framework.startswith("torch"):
        import torch  # noqa: F401

        setup_torch_threads(numpy_blas_threads())
    elif framework.startswith("learnflux"):
        import learnflux  # noqa: F401
    imported = rss_kib()
    data = cases_mod.make_data(case)
    kind = cases_mod.loss_kind(
        case, lf_has_cross_entropy() if framework.startswith("learnflux") else _parent_has_ce()
    )
    step = cases_mod.make_step(framework, case, data, kind)
    for _ in range(2 if quick else MEMORY_STEPS):
        step()
    end = rss_kib()
    return {
        "start_rss_kib": start["rss"],
        "import_rss_kib": imported["rss"],
        "peak_rss_kib": end["peak"],
        "loss": kind,
    }


def _parent_has_ce() -> bool:
    # A torch/numpy worker must use the same loss as the learnflux one without importing
    # learnflux (which would add to its RSS): the parent passes the choice in the environment.
    return os.environ.get("LEARNFLUX_BENCH_CE", "1") == "1"


def run_memory(selected: list[cases_mod.Case], timed: dict[str, Any], quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    env = dict(os.environ, LEARNFLUX_BENCH_CE="1" if lf_has_cross_entropy() else "0")
    for case in selected:
        if not case.memory:
            continue
        res = timed.get(case.name, {}).get("frameworks", {})
        row: dict[str, Any] = {}
        for fw in case.frameworks:
            if fw in res and "median" not in res[fw]:
                row[fw] = {"skipped": "not timed (unavailable or failed)"}
                continue
            cmd = [
                sys.executable,
                "-m",
                "benchmarks.run",
                "--worker",
                "memory",
                "--cases",
                case.name,
                "--frameworks",
                fw,
            ] + (["--quick"] if quick else [])
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                row[fw] = {"failed": proc.stderr.strip().splitlines()[-1:] or ["?"]}
                continue
            row[fw] = json.loads(proc.stdout.strip().splitlines()[-1])
        lf_peak = row.get("learnflux", {}).get("peak_rss_kib")
        for fw, r in row.items():
            if fw != "learnflux" and lf_peak and r.get("peak_rss_kib"):
                r["learnflux_peak_ratio"] = lf_peak / r["peak_rss_kib"]
                lf_inc = lf_peak - row["learnflux"]["start_rss_kib"]
                r["learnflux_increment_ratio"] = lf_inc / (r["peak_rss_kib"] - r["start_rss_kib"])
        torch_row = row.get("torch", {})
        if "learnflux_peak_ratio" in torch_row:
            row["target"] = {
                "target": 0.4,
                "ratio": torch_row["learnflux_peak_ratio"],
                "met": torch_row["learnflux_peak_ratio"] <= 0.4,
            }
        out[case.name] = row
        log(
            f"  memory {case.name:<10} "
            + ", ".join(
                f"{fw} {r['peak_rss_kib'] / 1024:.0f} MiB"
                for fw, r in row.items()
                if isinstance(r, dict) and "peak_rss_kib" in r
            )
        )
    return out


# ---------------------------------------------------------------------------------------- env unset
def run_env_unset(names: list[str], quick: bool, mode: str, timing_args: list[str]) -> dict[str, Any]:
    set_vars = {k: os.environ[k] for k in OPENBLAS_ENV_VARS if k in os.environ}
    if mode == "never":
        return {"skipped": "--unset-env never"}
    if not set_vars and mode == "auto":
        return {
            "skipped": "neither OPENBLAS_CORETYPE nor OPENBLAS_L2_SIZE is set: the run as it "
            "is already is the unset run"
        }
    env = {k: v for k, v in os.environ.items() if k not in OPENBLAS_ENV_VARS}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "unset.json"
        cmd = (
            [
                sys.executable,
                "-m",
                "benchmarks.run",
                "--worker",
                "timing",
                "--cases",
                ",".join(names),
                "--json",
                str(path),
            ]
            + (["--quick"] if quick else [])
            + timing_args
        )
        log(
            f"  env unset: re-running {', '.join(names)} in a child process without "
            f"{', '.join(OPENBLAS_ENV_VARS)}"
        )
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, stderr=sys.stderr, stdout=subprocess.DEVNULL, timeout=900
        )
        if proc.returncode != 0:
            return {"failed": f"child exited with {proc.returncode}"}
        out = json.loads(path.read_text())
    out["unset_vars"] = set_vars
    return out


# ---------------------------------------------------------------------------------------- main
def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    p.add_argument("--cases", default="", help="comma-separated case names or groups (default: all)")
    p.add_argument("--frameworks", default="", help="comma-separated subset of frameworks")
    p.add_argument("--quick", action="store_true", help="one step per run: a smoke test, no timing")
    p.add_argument("--repeats", type=int, default=None, help="interleaved rounds per case (7)")
    p.add_argument("--target-s", type=float, default=None, help="seconds per timed run (0.25)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-RSS child processes")
    p.add_argument(
        "--unset-env",
        choices=("auto", "always", "never"),
        default="auto",
        help="re-run without OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE (auto: when set)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for results.json, benchmarks.md and img/ (default: a new "
        "benchmarks/results/<UTC timestamp>/, or benchmarks/results/quick/ with --quick)",
    )
    p.add_argument(
        "--update-docs",
        action="store_true",
        help="also regenerate the committed benchmarks/results/latest.json, docs/benchmarks.md and "
        "docs/img/bench_*.png (never with --quick)",
    )
    p.add_argument("--json", type=Path, default=None, help="results JSON (overrides --out for this file)")
    p.add_argument("--docs", type=Path, default=None, help="markdown report (overrides --out for this file)")
    p.add_argument("--img-dir", type=Path, default=None, help="plots folder (overrides --out for the plots)")
    p.add_argument("--worker", choices=("memory", "timing"), default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _configs(args: argparse.Namespace) -> tuple[TimingConfig, TimingConfig]:
    if args.quick:
        return TimingConfig.quick(), TimingConfig.quick()
    cfg = TimingConfig()
    scaling = TimingConfig(repeats=3, target_s=0.15, warmup=1, calibrate_s=0.05)
    if args.repeats:
        cfg.repeats = scaling.repeats = args.repeats
    if args.target_s is not None:
        cfg.target_s = scaling.target_s = args.target_s
    return cfg, scaling


def output_paths(args: argparse.Namespace, now: Optional[float] = None) -> dict[str, Path]:
    """Where a run writes: ``json``, ``docs`` and ``img`` in the results folder, plus, with
    ``--update-docs``, ``docs_json``, ``docs_md`` and ``docs_img`` (the tracked copies)."""
    if args.out is not None:
        folder = args.out
    elif args.quick:
        folder = QUICK_DIR
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
        folder = RESULTS_DIR / stamp
        n = 1
        while folder.exists():  # never overwrite an earlier run
            n += 1
            folder = RESULTS_DIR / f"{stamp}-{n}"
    paths = {
        "json": args.json or folder / "results.json",
        "docs": args.docs or folder / "benchmarks.md",
        "img": args.img_dir or folder / "img",
    }
    if args.update_docs:
        paths.update(docs_json=DOCS_JSON, docs_md=DOCS_MD, docs_img=DOCS_IMG)
    return paths


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    if args.update_docs and args.quick:
        log("--update-docs with --quick: a quick run measures nothing; the docs are not regenerated from it")
        return 2
    names = [n for n in args.cases.split(",") if n]
    frameworks = [f for f in args.frameworks.split(",") if f] or None
    if args.worker == "memory":
        print(json.dumps(memory_worker(names[0], frameworks[0], args.quick)))
        return 0

    t_start = time.perf_counter()
    selected = cases_mod.select(names)
    want_limit = not names or "limit" in names
    cfg, scaling_cfg = _configs(args)
    n_threads = numpy_blas_threads()
    has_torch = torch_available()
    threads: dict[str, Any] = {"blas_threads": n_threads}
    if has_torch:
        threads.update(setup_torch_threads(n_threads))

    if args.worker == "timing":  # the env-unset child: timing only
        out = {
            "architecture": numpy_blas_architecture(),
            "env": {k: os.environ.get(k) for k in OPENBLAS_ENV_VARS},
            "threads": threads,
            "cases": run_timing(selected, cfg, scaling_cfg, has_torch, frameworks),
        }
        if want_limit:
            out["limit"] = run_limit(out["cases"], cfg, has_torch, args.quick)
        args.json.write_text(json.dumps(out, default=float))
        return 0

    from . import report

    paths = output_paths(args)

    log(
        f"learnflux benchmarks: {len(selected)} case(s){' + limit' if want_limit else ''}, "
        f"{n_threads} BLAS thread(s), torch {'yes' if has_torch else 'not installed'}"
        + (" [quick: measures nothing]" if args.quick else "")
    )
    results: dict[str, Any] = {
        "machine": machine_info(has_torch),
        "threads": threads,
        "architecture": numpy_blas_architecture(),
        "quick": args.quick,
        "timing_config": {"main": vars(cfg), "scaling": vars(scaling_cfg)},
        "command": " ".join(["python -m benchmarks.run", *(argv if argv is not None else sys.argv[1:])]),
    }
    results["cases"] = run_timing(selected, cfg, scaling_cfg, has_torch, frameworks)
    if want_limit:
        results["limit"] = run_limit(results["cases"], cfg, has_torch, args.quick)
    unset_names = [c.name for c in selected if c.group != "scaling"] + (["limit"] if want_limit else [])
    timing_args = []
    if args.repeats:
        timing_args += ["--repeats", str(args.repeats)]
    if args.target_s is not None:
        timing_args += ["--target-s", str(args.target_s)]
    if frameworks:
        timing_args += ["--frameworks", ",".join(frameworks)]
    results["env_unset"] = (
        run_env_unset(unset_names, args.quick, args.unset_env, timing_args)
        if unset_names
        else {"skipped": "no case selected"}
    )
    results["memory"] = {} if args.no_memory else run_memory(selected, results["cases"], args.quick)
    results["machine"]["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    results["wall_s"] = time.perf_counter() - t_start

    written = report.write_all(results, paths["json"], paths["docs"], paths["img"])
    if args.update_docs:
        written += report.write_all(results, paths["docs_json"], paths["docs_md"], paths["docs_img"])
    log(f"wrote {', '.join(str(p) for p in written)} in {results['wall_s']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
