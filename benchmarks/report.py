"""Writers for the suite's results: JSON, PNG plots (matplotlib, Agg) and the markdown page."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

import numpy as np

FW_NAMES = {
    "learnflux": "learnflux",
    "learnflux-numpy": "learnflux, NumPy kernels",
    "torch": "PyTorch eager",
    "torch-cl": "PyTorch channels_last",
    "numpy": "NumPy reference",
}
MAIN_CASES = ("mlp", "cnn", "cnn-cifar", "transformer", "lstm", "tiny", "predict-mlp", "predict-cnn")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, default=_jsonable, ensure_ascii=False) + "\n")


def write_all(results: dict[str, Any], json_path: Path, md_path: Path, img_dir: Path) -> list[Path]:
    """The JSON, the plots and the markdown page of one run; returns the paths written."""
    write_json(results, json_path)
    images = write_plots(results, img_dir)
    write_markdown(results, md_path, images)
    return [json_path, md_path, *images]


# ------------------------------------------------------------------------------------------ plots
def write_plots(results: dict[str, Any], img_dir: Path) -> list[Path]:
    """One PNG per scaling study found in the results (batch size, hidden width)."""
    studies = {
        "batch": ("scale-batch-", "batch size", "MLP 784-512-512-10: training throughput vs batch"),
        "width": ("scale-width-", "hidden width", "MLP 784-w-w-10, batch 128: training throughput vs width"),
    }
    written = []
    for key, (prefix, xlabel, title) in studies.items():
        points = sorted(
            (int(name[len(prefix) :]), res)
            for name, res in results.get("cases", {}).items()
            if name.startswith(prefix)
        )
        if not points:
            continue
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
        for fw in ("learnflux", "torch", "numpy"):
            xs = [x for x, r in points if "median" in r["frameworks"].get(fw, {})]
            if not xs:
                continue
            med = np.array([r["frameworks"][fw]["median"] for _, r in points if x_in(r, fw)])
            lo = np.array([r["frameworks"][fw]["min"] for _, r in points if x_in(r, fw)])
            hi = np.array([r["frameworks"][fw]["max"] for _, r in points if x_in(r, fw)])
            ax.errorbar(xs, med, yerr=[med - lo, hi - med], marker="o", capsize=3, label=FW_NAMES[fw])
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("samples/s (median, min–max)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        img_dir.mkdir(parents=True, exist_ok=True)
        path = img_dir / f"bench_scaling_{key}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def x_in(res: dict[str, Any], fw: str) -> bool:
    return "median" in res["frameworks"].get(fw, {})


# ------------------------------------------------------------------------------------------ markdown
def _num(x: Optional[float]) -> str:
    if x is None:
        return "–"
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 100:
        return f"{x:.0f}"
    return f"{x:.3g}"


def _ratio(r: Optional[dict[str, float]]) -> str:
    if not r:
        return "–"
    return f"{r['median']:.2f}× ({r['min']:.2f}–{r['max']:.2f})"


def _met(t: Optional[dict[str, Any]]) -> str:
    if not t or t.get("met") is None:
        return "n/a"
    return "yes" if t["met"] else "**no**"


def _fw_cell(res: dict[str, Any]) -> tuple[str, str]:
    if "median" in res:
        return _num(res["median"]), f"{_num(res['min'])}–{_num(res['max'])}"
    if "unavailable" in res:
        return "unavailable", res["unavailable"]
    if "failed" in res:
        return "**failed**", str(res["failed"])
    return "–", ""


def _case_table(name: str, res: dict[str, Any], unset: Optional[dict[str, Any]]) -> list[str]:
    lines = [f"### `{name}`: {res['title']}", ""]
    if res.get("loss_note"):
        lines += [f"Loss: {res['loss']} ({res['loss_note']}).", ""]
    head = f"| framework | {res['unit']} median | min–max | learnflux ÷ it (paired) | target | met? |"
    if unset:
        head += " median, env unset | learnflux ÷ it, env unset |"
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for fw, r in res["frameworks"].items():
        med, rng = _fw_cell(r)
        target = res["targets"].get(fw)
        row = (
            f"| {FW_NAMES.get(fw, fw)} | {med} | {rng} | {_ratio(res['ratios'].get(fw))} | "
            f"{'≥ ' + format(target['target'], 'g') + '×' if target else ''} | "
            f"{_met(target) if target else ''} |"
        )
        if unset:
            u = unset["frameworks"].get(fw, {})
            row += f" {_fw_cell(u)[0]} | {_ratio(unset['ratios'].get(fw))} |"
        lines.append(row)
    return lines + [""]


def write_markdown(results: dict[str, Any], path: Path, images: list[Path]) -> None:
    m = results["machine"]
    cases = results.get("cases", {})
    unset = results.get("env_unset", {})
    unset_cases = unset.get("cases", {}) if isinstance(unset, dict) else {}
    env = ", ".join(f"`{k}={v}`" if v is not None else f"`{k}` unset" for k, v in m["env"].items())
    lines = [
        "# Benchmarks: learnflux vs PyTorch eager vs plain NumPy",
        "",
        "<!-- generated by `python -m benchmarks.run --update-docs`; do not edit by hand -->",
        "",
        f"Generated {m['date_utc']} by `{results.get('command', 'python -m benchmarks.run')}`"
        f" (commit {m.get('git_commit') or '?'}) in {results.get('wall_s', 0):.0f} s."
        + (
            " **Quick mode: one step per run, these numbers measure nothing.**"
            if results.get("quick")
            else ""
        ),
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu_model']}, {m['logical_cpus']} logical CPUs ({m.get('usable_cpus')} usable); "
        f"{m['platform']}",
        f"- Python {m['python']}, NumPy {m['numpy']}, learnflux {m.get('learnflux')}, "
        f"PyTorch {m.get('torch', 'not installed')}"
        + (f" (BLAS: {m.get('torch_blas')}, oneDNN: {m.get('torch_mkldnn')})" if m.get("torch") else ""),
        *(
            [
                f'- learnflux {m["learnflux_kernels"]} (the row "learnflux, NumPy kernels" runs the '
                "same models on the NumPy kernels)"
            ]
            if m.get("learnflux_kernels")
            else []
        ),
        *([f"- learnflux's {m['learnflux_blas']}"] if m.get("learnflux_blas") else []),
        "- NumPy's BLAS: "
        + "; ".join(
            f"{p.get('internal_api')} {p.get('version')} ({p.get('architecture')} kernel, "
            f"{p.get('num_threads')} threads)"
            for p in m["thread_pools"]
            if p.get("user_api") == "blas"
        ),
        f"- Threads: {results['threads']}; environment: {env}",
        f"- Load average at start / end: {m.get('loadavg_start')} / {m.get('loadavg_end')}",
        "",
        "## How it is measured",
        "",
        "Each case trains (or runs inference on) the same model with the same synthetic float32 "
        "batches, the same loss and plain SGD (lr 0.01) in every framework, with PyTorch's thread "
        "count set to NumPy's BLAS thread count. After a warm-up, each framework's step count per "
        "run is calibrated to about "
        f"{results['timing_config']['main']['target_s']} s; then "
        f"{results['timing_config']['main']['repeats']} rounds run interleaved (A B C A B C ...). "
        "We report the median throughput with min–max, and ratios **paired round by round** "
        "(learnflux's throughput in round r ÷ the other framework's in round r; median and "
        "min–max). Every timed run starts after a "
        f"{results['timing_config']['main'].get('cooldown_s', 0)} s pause: OpenBLAS's threads "
        "busy-wait ~0.1 s after a call (and PyTorch's OpenMP threads spin briefly), which on 2 "
        "cores slowed the next framework's run several-fold in our tests. The machine is "
        "shared and noisy: quote ratios from one interleaved run, never a lone absolute time. "
        "The NumPy reference (`benchmarks/numpy_ref.py`) is a hand-written forward/backward "
        "with buffers allocated once and in-place updates: the floor of what NumPy can do. "
        "Peak RSS is measured in a fresh child process per (case, framework) that imports "
        "only that framework (`VmHWM` from `/proc/self/status`).",
        "",
        "Where the time goes, what we tried and what stands in the way of the targets not met: "
        "[performance.md](performance.md).",
        "",
    ]
    lines += _headline(results)
    lines += ["## Results per case", ""]
    for name, res in cases.items():
        if res["group"] == "scaling":
            continue
        lines += _case_table(name, res, unset_cases.get(name))
    if isinstance(unset, dict):
        lines += ["## Environment as it is vs OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset", ""]
        if "skipped" in unset or "failed" in unset:
            lines += [f"Not run: {unset.get('skipped') or unset.get('failed')}.", ""]
        else:
            lines += [
                f"The columns *env unset* above come from a child process started without "
                f"{', '.join('`' + k + '`' for k in unset.get('unset_vars', {}))} "
                f"(set here to {unset.get('unset_vars')}). OpenBLAS kernel as it is: "
                f"**{results.get('architecture')}**; with both unset: "
                f"**{unset.get('architecture')}**. Never change them in tests or CI.",
                "",
            ]
    lines += _memory(results.get("memory", {}))
    lines += _limit(results.get("limit"), unset.get("limit") if isinstance(unset, dict) else None)
    lines += _scaling(cases, images, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines).rstrip() + "\n")


def _headline(results: dict[str, Any]) -> list[str]:
    cases = results.get("cases", {})
    lines = [
        "## Headline: the speed targets (issue 10; issue 15 for the sequence cases)",
        "",
        "| case | learnflux ÷ | ratio (paired median, min–max) | target | met? |",
        "|---|---|---|---|---|",
    ]
    for name in MAIN_CASES:
        res = cases.get(name)
        if not res:
            continue
        for fw, t in res["targets"].items():
            lines.append(
                f"| {name} | {FW_NAMES.get(fw, fw)} | {_ratio(res['ratios'].get(fw))} | "
                f"≥ {t['target']:g}× | {_met(t)} |"
            )
    for name, row in results.get("memory", {}).items():
        t = row.get("target")
        if t:
            lines.append(
                f"| memory {name} | PyTorch eager peak RSS | {t['ratio']:.0%} of PyTorch's "
                f"| ≤ 40% | {_met(t)} |"
            )
    lim = results.get("limit")
    if lim and lim.get("target", {}).get("ratio") is not None:
        lines.append(
            f"| limit | NumPy reference, achieved GFLOP/s | {lim['target']['ratio']:.2f}× "
            f"| ≥ 0.9× | {_met(lim['target'])} |"
        )
    return lines + [""]


def _memory(mem: dict[str, Any]) -> list[str]:
    if not mem:
        return []
    lines = [
        "## Peak memory (RSS)",
        "",
        "One fresh process per (case, framework): RSS right after importing the framework "
        "(Python + NumPy + the framework: `import torch` alone costs a lot), then the peak "
        "(`VmHWM`) after building the model and data and running a few steps. The ratio is "
        "learnflux's peak ÷ the other's peak (the target compares with PyTorch eager); "
        "*increment* compares what each adds above the bare interpreter at start.",
        "",
        "| case | framework | after imports MiB | peak MiB | learnflux peak ÷ it | increment ratio |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in mem.items():
        for fw, r in row.items():
            if fw == "target":
                continue
            if "peak_rss_kib" not in r:
                why = r.get("skipped") or "failed: " + " ".join(r.get("failed", ["?"]))
                lines.append(f"| {name} | {FW_NAMES.get(fw, fw)} | ({why}) | | | |")
                continue
            ratio = r.get("learnflux_peak_ratio")
            inc = r.get("learnflux_increment_ratio")
            lines.append(
                f"| {name} | {FW_NAMES.get(fw, fw)} | {r['import_rss_kib'] / 1024:.0f} | "
                f"{r['peak_rss_kib'] / 1024:.0f} | {f'{ratio:.0%}' if ratio else ''} | "
                f"{f'{inc:.0%}' if inc else ''} |"
            )
    return lines + [""]


def _limit(lim: Optional[dict[str, Any]], lim_unset: Optional[dict[str, Any]]) -> list[str]:
    if not lim:
        return []
    lines = [
        "## The limit: GEMM throughput of the BLAS on the MLP's own shapes",
        "",
        f"One training step of MLP {'-'.join(map(str, lim['sizes']))} at batch {lim['batch']} "
        f"is {lim['step_flops'] / 1e6:.0f} MFLOP of GEMMs. Each product timed alone, best of 5 "
        "(`np.matmul(a, b, out=c)` with the operand layouts the step uses; `torch.mm` for "
        "PyTorch's own BLAS):",
        "",
        "| GEMM | m×k·k×n | NumPy GFLOP/s | PyTorch GFLOP/s |"
        + (" NumPy GFLOP/s, env unset |" if lim_unset else ""),
        "|---|---|---|---|" + ("---|" if lim_unset else ""),
    ]
    unset_g = {g["name"]: g for g in (lim_unset or {}).get("gemms", [])}
    for g in lim["gemms"]:
        row = (
            f"| {g['name']} | {g['m']}×{g['k']}·{g['k']}×{g['n']} | {g['numpy_gflops']:.1f} | "
            f"{_num(g.get('torch_gflops'))} |"
        )
        if lim_unset:
            row += f" {_num(unset_g.get(g['name'], {}).get('numpy_gflops'))} |"
        lines.append(row)
    lines += [
        "",
        f"GEMM floor of one step (sum of the products' times): NumPy "
        f"{lim['numpy_floor_s'] * 1e3:.2f} ms = {lim['numpy_floor_gflops']:.1f} GFLOP/s"
        + (
            f"; PyTorch {lim['torch_floor_s'] * 1e3:.2f} ms = {lim['torch_floor_gflops']:.1f} GFLOP/s"
            if "torch_floor_s" in lim
            else ""
        )
        + (f"; NumPy with the env unset {lim_unset['numpy_floor_gflops']:.1f} GFLOP/s" if lim_unset else "")
        + ".",
        "",
        "| framework | MLP step ms (median) | achieved GFLOP/s | fraction of NumPy's GEMM floor |",
        "|---|---|---|---|",
    ]
    for fw, a in lim.get("achieved", {}).items():
        if isinstance(a, dict):
            lines.append(
                f"| {FW_NAMES.get(fw, fw)} | {a['step_s'] * 1e3:.2f} | {a['gflops']:.1f} | "
                f"{a['fraction_of_numpy_floor']:.0%} |"
            )
    t = lim.get("target", {})
    if t.get("ratio") is not None:
        lines += [
            "",
            f"learnflux's achieved GFLOP/s ÷ the NumPy reference's: {t['ratio']:.2f} "
            f"(target ≥ 0.9: {_met(t)}).",
        ]
    return lines + [""]


def _scaling(cases: dict[str, Any], images: list[Path], md_path: Path) -> list[str]:
    scaling = {n: r for n, r in cases.items() if r["group"] == "scaling"}
    if not scaling:
        return []
    lines = [
        "## Scaling: throughput against batch size and hidden width",
        "",
        "At batch 1 the NumPy reference's weight gradient `np.matmul(δᵀ, x)` is an outer "
        "product, which NumPy runs through a slow non-BLAS loop; learnflux's `Linear` broadcasts "
        "it instead (`δᵀ * x`), which is why it beats the reference there.",
        "",
    ]
    for img in images:
        rel = os.path.relpath(img, md_path.parent)
        lines += [f"![{img.stem}]({rel})", ""]
    head = "| case | learnflux samples/s | PyTorch samples/s | NumPy samples/s | learnflux ÷ PyTorch |"
    lines += [head, "|---|---|---|---|---|"]
    for name, r in scaling.items():
        cells = [_fw_cell(r["frameworks"].get(fw, {}))[0] for fw in ("learnflux", "torch", "numpy")]
        lines.append(f"| {name} | {' | '.join(cells)} | {_ratio(r['ratios'].get('torch'))} |")
    return lines + [""]


def main(argv: Optional[list[str]] = None) -> int:
    """Re-render the markdown and plots from a stored JSON (no measurement):
    ``python -m benchmarks.report [RESULTS.json] [--out DIR | --update-docs]``.

    The JSON defaults to the committed ``benchmarks/results/latest.json``; the page and plots go
    to ``--out`` (default: the JSON's folder, as ``benchmarks.md`` and ``img/``), or, with
    ``--update-docs``, to ``docs/benchmarks.md`` and ``docs/img/``."""
    import argparse

    root = Path(__file__).resolve().parent.parent
    p = argparse.ArgumentParser(prog="python -m benchmarks.report", description=main.__doc__.split("\n")[0])
    p.add_argument("json", nargs="?", type=Path, default=root / "benchmarks" / "results" / "latest.json")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--out", type=Path, default=None, help="folder for benchmarks.md and img/")
    where.add_argument("--update-docs", action="store_true", help="write docs/benchmarks.md and docs/img/")
    args = p.parse_args(argv)
    results = json.loads(args.json.read_text())
    if args.update_docs:
        md, img = root / "docs" / "benchmarks.md", root / "docs" / "img"
    else:
        folder = args.out or args.json.parent
        md, img = folder / "benchmarks.md", folder / "img"
    images = write_plots(results, img)
    write_markdown(results, md, images)
    print(f"wrote {md} and {len(images)} plot(s) from {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
