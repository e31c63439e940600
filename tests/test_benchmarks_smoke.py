"""Smoke tests of the benchmark suite (``benchmarks/``): every case builds and runs a step or two
in every framework (``--quick``: nothing is timed seriously, no timing is asserted), the NumPy
reference computes the same update as PyTorch, and the JSON / markdown / plot writers work.
The parts that need PyTorch skip without it."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from benchmarks import cases as bench_cases
from benchmarks import limit, numpy_ref, run
from benchmarks.common import TimingConfig, paired_ratio, run_interleaved

HAS_TORCH = importlib.util.find_spec("torch") is not None
ROOT = Path(__file__).resolve().parent.parent
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")


@pytest.mark.parametrize(
    "name",
    [
        "mlp",
        "cnn",
        "cnn-cifar",
        "transformer",
        "lstm",
        "tiny",
        "predict-mlp",
        "predict-cnn",
        "scale-batch-4",
        "scale-width-64",
    ],
)
def test_case_runs_in_every_framework(name: str) -> None:
    (case,) = bench_cases.select([name])
    case = dataclasses.replace(case, batch=min(case.batch, 8), n_batches=2)  # machinery, not speed
    res = run.time_case(case, TimingConfig.quick(), HAS_TORCH)
    assert set(res["frameworks"]) == set(case.frameworks)
    for fw, r in res["frameworks"].items():
        assert "failed" not in r, f"{fw}: {r['failed']}"
        if fw.startswith("torch") and not HAS_TORCH:
            assert "unavailable" in r
        else:  # learnflux included: every layer of every case has landed, none may be missing
            assert "unavailable" not in r, f"{fw}: {r['unavailable']}"
            assert r["median"] > 0 and len(r["runs"]) == 2
    timed = [fw for fw, r in res["frameworks"].items() if "median" in r and fw != "learnflux"]
    assert sorted(res["ratios"]) == sorted(timed)
    for fw, t in res["targets"].items():
        if fw in res["ratios"]:
            assert t["met"] == (res["ratios"][fw]["median"] >= t["target"])
        else:  # a framework that is not installed (PyTorch on Python 3.10/3.13) has no verdict
            assert not HAS_TORCH and fw.startswith("torch")
            assert t["ratio"] is None and t["met"] is None


def test_interleaving_and_paired_ratios() -> None:
    order = []
    steps = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    cfg = TimingConfig(repeats=3, target_s=0.0, warmup=0, calibrate_s=0.0, cooldown_s=0.0)
    timings = run_interleaved(steps, units_per_step=4, cfg=cfg)
    assert order == ["a", "b"] * 3  # A B A B A B, one step per run
    timings["a"].times = [1.0, 2.0, 4.0]
    timings["b"].times = [2.0, 2.0, 2.0]
    assert timings["a"].throughputs == [4.0, 2.0, 1.0]
    assert paired_ratio(timings["a"], timings["b"]) == {"median": 1.0, "min": 0.5, "max": 2.0}


def test_limit_counts_the_mlp_step_gemms() -> None:
    sizes, n = (784, 512, 512, 10), 128
    gemms = limit.mlp_gemms(sizes, n)
    pairs = list(zip(sizes[:-1], sizes[1:], strict=True))
    # forward and W.grad for every layer, input δ for every layer but the first
    expected = 3 * sum(2 * n * i * o for i, o in pairs) - 2 * n * 784 * 512
    assert len(gemms) == 8 and sum(g["flops"] for g in gemms) == expected
    res = limit.measure((16, 8, 4), 4, repeats=1, min_s=0.0, with_torch=False)
    assert res["numpy_floor_gflops"] > 0 and len(res["gemms"]) == 5
    mlp = {"batch": 4, "frameworks": {"learnflux": {"median": 4.0}, "numpy": {"median": 8.0}}}
    got = limit.achieved(res, mlp)
    assert got["learnflux_vs_numpy"] == pytest.approx(0.5)
    assert got["numpy"]["step_s"] == pytest.approx(0.5)


def _torch_step(model, x, target, loss_fn, lr=0.01):
    import torch

    opt = torch.optim.SGD(model.parameters(), lr=lr)
    opt.zero_grad()
    loss = loss_fn(model(torch.from_numpy(x)), torch.from_numpy(target))
    loss.backward()
    opt.step()
    return float(loss.detach())


@needs_torch
@pytest.mark.parametrize("loss", ["cross_entropy", "squared_error"])
def test_numpy_mlp_reference_matches_torch(loss: str) -> None:
    from benchmarks import torch_ref

    sizes, n = (20, 16, 12, 5), 8
    rng = np.random.default_rng(1)
    x = rng.random((n, sizes[0]), dtype=np.float32)
    labels = rng.integers(0, sizes[-1], n)
    target = labels if loss == "cross_entropy" else np.eye(sizes[-1], dtype=np.float32)[labels]
    tm = torch_ref.mlp(sizes)
    ref = numpy_ref.NumpyMLP(sizes, lr=0.01, loss=loss)
    state = {k: v.detach().numpy().copy() for k, v in tm.state_dict().items()}
    ref.load_weights([state[f"{2 * i}.weight"] for i in range(3)], [state[f"{2 * i}.bias"] for i in range(3)])
    loss_ref = ref.step(x, target)
    loss_torch = _torch_step(tm, x, target, torch_ref.loss_fn(loss))
    assert loss_ref == pytest.approx(loss_torch, rel=1e-5)
    for i in range(3):
        np.testing.assert_allclose(ref.W[i], tm.state_dict()[f"{2 * i}.weight"].numpy(), rtol=0, atol=1e-6)
        np.testing.assert_allclose(ref.b[i], tm.state_dict()[f"{2 * i}.bias"].numpy(), rtol=0, atol=1e-6)


@needs_torch
def test_numpy_cnn_reference_matches_torch() -> None:
    import torch
    from benchmarks import torch_ref

    kw = {"channels": (2, 4, 6), "image": 8, "classes": 3}
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 2, 8, 8), dtype=np.float32)
    y = rng.integers(0, 3, 5)
    torch.manual_seed(0)
    tm = torch_ref.lenet(**kw)
    ref = numpy_ref.NumpyCNN(lr=0.1, **kw)
    ref.load_torch_state({k: v.detach().numpy().copy() for k, v in tm.state_dict().items()})
    np.testing.assert_allclose(ref.predict(x), tm(torch.from_numpy(x)).detach().numpy(), atol=1e-5)
    loss_ref = ref.step(x, y)
    loss_torch = _torch_step(tm, x, y, torch_ref.loss_fn("cross_entropy"), lr=0.1)
    assert loss_ref == pytest.approx(loss_torch, rel=1e-5)
    after = numpy_ref.NumpyCNN(lr=0.1, **kw)
    after.load_torch_state({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    for mine, theirs in (
        (ref.conv1.W, after.conv1.W),
        (ref.conv2.W, after.conv2.W),
        (ref.conv2.b, after.conv2.b),
        (ref.Wfc, after.Wfc),
    ):
        np.testing.assert_allclose(mine, theirs, atol=1e-6)
    assert not np.allclose(ref.conv1.W, numpy_ref.NumpyCNN(lr=0.1, **kw).conv1.W)


def test_suite_writes_json_markdown_and_plots(tmp_path: Path) -> None:
    out_json, out_md, img = tmp_path / "r.json", tmp_path / "b.md", tmp_path / "img"
    rc = run.main(
        [
            "--quick",
            "--cases",
            "tiny,scale-batch-1,scale-batch-4,limit",
            "--json",
            str(out_json),
            "--docs",
            str(out_md),
            "--img-dir",
            str(img),
            "--unset-env",
            "never",
        ]
    )
    assert rc == 0
    res = json.loads(out_json.read_text())
    assert set(res["cases"]) == {"tiny", "scale-batch-1", "scale-batch-4"}
    for key in ("cpu_model", "logical_cpus", "numpy", "date_utc", "thread_pools", "env"):
        assert key in res["machine"]
    assert res["threads"]["blas_threads"] >= 1
    assert res["limit"]["step_flops"] > 0 and "learnflux_vs_numpy" in res["limit"]["achieved"]
    mem = res["memory"]["tiny"]
    assert mem["numpy"]["peak_rss_kib"] >= mem["numpy"]["import_rss_kib"] > 0
    assert mem["learnflux"]["peak_rss_kib"] > 0
    if HAS_TORCH:  # importing torch alone costs far more than numpy
        assert mem["torch"]["import_rss_kib"] > mem["numpy"]["import_rss_kib"]
        assert "target" in mem
    md = out_md.read_text()
    assert "## Headline: the speed targets (issue 10" in md and "| tiny |" in md
    assert "Quick mode" in md and "bench_scaling_batch.png" in md
    assert (img / "bench_scaling_batch.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_timing_worker_child_reports_the_blas_kernel(tmp_path: Path) -> None:
    # The same child process the suite starts with OPENBLAS_* unset, here with the environment
    # left exactly as it is (tests never change those variables).
    out = tmp_path / "child.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.run",
            "--worker",
            "timing",
            "--quick",
            "--cases",
            "tiny",
            "--frameworks",
            "learnflux,numpy",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    res = json.loads(out.read_text())
    assert "architecture" in res and set(res["env"]) == {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"}
    assert set(res["cases"]["tiny"]["frameworks"]) == {"learnflux", "numpy"}


# ------------------------------------------------------------------ where results go
def _tracked_docs() -> dict[Path, bytes]:
    """The committed files the documentation reads, which only ``--update-docs`` may rewrite."""
    files = [run.DOCS_JSON, run.DOCS_MD, *sorted(run.DOCS_IMG.glob("bench_*.png"))]
    return {p: p.read_bytes() for p in files if p.exists()}


def test_default_run_writes_a_new_results_folder_and_leaves_the_docs_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = tmp_path / "results"
    monkeypatch.setattr(run, "RESULTS_DIR", results)
    monkeypatch.setattr(run, "QUICK_DIR", results / "quick")
    before = _tracked_docs()
    assert run.DOCS_MD in before and run.DOCS_JSON in before
    args = ["--cases", "tiny", "--frameworks", "learnflux,numpy", "--no-memory", "--unset-env", "never"]
    assert run.main([*args, "--repeats", "1", "--target-s", "0.01"]) == 0  # a real (tiny) timed run
    (folder,) = results.iterdir()  # benchmarks/results/<UTC timestamp>/
    assert len(folder.name) == len("20260101-120000") and folder.name[8] == "-"
    assert json.loads((folder / "results.json").read_text())["quick"] is False
    assert "| tiny |" in (folder / "benchmarks.md").read_text()
    assert run.main([*args, "--quick"]) == 0
    assert (results / "quick" / "results.json").exists()
    assert _tracked_docs() == before


def test_output_paths_never_overwrite_and_update_docs_adds_the_tracked_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run, "RESULTS_DIR", tmp_path)
    now = 1_800_000_000.0
    first = run.output_paths(run.parse_args([]), now)
    assert first["json"] == tmp_path / "20270115-080000" / "results.json"
    assert "docs_md" not in first
    first["json"].parent.mkdir()
    second = run.output_paths(run.parse_args([]), now)
    assert second["json"].parent.name == "20270115-080000-2"
    out = run.output_paths(run.parse_args(["--out", str(tmp_path / "x")]))
    assert out["docs"] == tmp_path / "x" / "benchmarks.md" and out["img"] == tmp_path / "x" / "img"
    docs = run.output_paths(run.parse_args(["--update-docs", "--out", str(tmp_path / "y")]))
    assert (docs["docs_json"], docs["docs_md"], docs["docs_img"]) == (
        run.DOCS_JSON,
        run.DOCS_MD,
        run.DOCS_IMG,
    )
    assert docs["json"] == tmp_path / "y" / "results.json"  # the run's own copy too
    assert run.main(["--quick", "--update-docs"]) == 2  # quick numbers never reach the docs


def test_report_rerenders_outside_the_docs_by_default(tmp_path: Path) -> None:
    from benchmarks import report

    before = _tracked_docs()
    assert report.main([str(run.DOCS_JSON), "--out", str(tmp_path)]) == 0
    md = (tmp_path / "benchmarks.md").read_text()
    assert md == run.DOCS_MD.read_text()  # the committed page is what the committed JSON gives
    assert _tracked_docs() == before


def test_results_folders_are_ignored_by_git() -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    stamped = "benchmarks/results/20990101-000000/results.json"
    ignored = subprocess.run(["git", "check-ignore", "-q", stamped], cwd=ROOT)
    kept = subprocess.run(["git", "check-ignore", "-q", "benchmarks/results/latest.json"], cwd=ROOT)
    assert ignored.returncode == 0 and kept.returncode == 1
