"""Every code block of README.md and docs/**/*.md runs, and what the docs say it prints is what
it prints. One test per fenced block, named ``FILE:LINE`` (the line of the opening fence).

How a block is treated depends on its language tag (an untagged block is an error):

* ``python``: executed statement by statement in a fresh namespace, in a temporary working folder
  (which holds a small MNIST-format fixture in ``data/mnist``). A **trailing comment on a
  ``print(...)`` line is the expected output**: ``# about 0.94`` accepts a number within one unit
  of the last quoted digit (``0.94 ± 0.01``), ``# about 0.95 ± 0.02`` within the tolerance given
  (a remark in parentheses may follow); anything else must equal the printed text, where ``...``
  stands for any text. A statement whose trailing comment reads ``# SomeError: message``
  must raise that error with that message (``...`` allowed). Other comments are free text.
* ``bash`` / ``sh`` / ``console`` (``$ `` lines): each command runs, in order, in a temporary
  folder holding copies of the repository's ``examples/`` and ``benchmarks/``, a link ``.venv``
  to this virtual environment, the MNIST fixture in ``data/mnist``, with the venv's ``bin`` first
  on the ``PATH``; every command must exit with 0.
* ``toml``: parsed by learnflux's config loader (``learnflux.config.parse_config``); ``json``:
  parsed; ``text``: not run.

HTML comments right before a block (blank lines allowed between) change that, and say why:

* ``<!-- doc-test: skip (reason) -->``: not run; the reason is required and the paragraph above
  must tell the reader that the block is not run.
* ``<!-- doc-test: continue -->``: runs in the namespace left by the page's previous Python block
  (the blocks before it are re-run first, so each test stands alone).
* ``<!-- doc-test: setup`` + Python lines + ``-->``: hidden set-up run before the block (the
  variables a fragment or a signature uses).
* ``<!-- doc-test: output-of (COMMAND) -->`` on a ``text`` or ``json`` block: the block is (a
  part of) what COMMAND prints (a ``json`` block: a sub-object of its JSON output).
* ``<!-- doc-test: time (about N seconds) -->``: the block takes N/4 to 10 × N seconds of CPU time
  (wall time on a loaded machine says little), and the paragraph above quotes "about N seconds".

The last tests compare the numbers the prose quotes (the main job's accuracy and duration, the
README's speed table against ``benchmarks/results/latest.json``) with what the code produces.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import io
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
VENV_BIN = Path(sys.executable).parent  # not resolved: the venv's bin, not the base interpreter's
PYTHON_LANGS = {"python", "py", "python3"}
SHELL_LANGS = {"bash", "sh", "shell", "console"}
DATA_LANGS = {"text", "toml", "json", "csv", "markdown", "ini"}
OPTIONAL_MODULES = {"torch"}  # test extras: a block that imports them is skipped without them
# How much slower than quoted a timed block may run. Durations are compared in CPU time, yet on the
# shared 2-core machine (load average 7 to 10) the main job still took 5-7x the CPU time of an idle
# run (OpenBLAS threads spin while they wait): the check catches a quote off by an order of
# magnitude, not a 20% drift. Quoted times are idle-machine times.
SLOWDOWN = 10

FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,})(?P<info>[^`]*)$")
MARKER = re.compile(r"<!--\s*doc-test:\s*(?P<body>.*?)\s*-->", re.S)


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    markers: list[str] = field(default_factory=list)
    before: str = ""  # the prose paragraph right above the markers / the block

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT).as_posix()}:{self.line}"

    def marker(self, kind: str) -> Optional[str]:
        for m in self.markers:
            if m == kind or m.startswith(kind + " ") or m.startswith(kind + "\n"):
                return m[len(kind) :].strip()
        return None


def _preceding(lines: list[str], i: int) -> tuple[list[str], str]:
    """The doc-test markers right above line ``i`` (in order) and the prose paragraph above them."""
    markers: list[str] = []
    j = i - 1
    while j >= 0:
        if not lines[j].strip():
            j -= 1
            continue
        if lines[j].rstrip().endswith("-->"):
            k = j
            while k >= 0 and "<!--" not in lines[k]:
                k -= 1
            m = MARKER.search("\n".join(lines[k : j + 1]))
            if m is None:
                break
            markers.insert(0, m.group("body"))
            j = k - 1
            continue
        break
    end = j + 1
    while j >= 0 and lines[j].strip() and not FENCE.match(lines[j]):
        j -= 1
    return markers, "\n".join(lines[j + 1 : end])


def parse_blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence = len(m.group("indent")), m.group("fence")
        info = m.group("info").strip()
        body, j = [], i + 1
        while j < len(lines) and not re.match(rf"^ {{0,{indent + 3}}}{fence}`*\s*$", lines[j]):
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
            j += 1
        markers, before = _preceding(lines, i)
        blocks.append(
            Block(path, i + 1, info.split()[0] if info else "", "\n".join(body) + "\n", markers, before)
        )
        i = j + 1
    return blocks


BLOCKS = [b for path in DOCS for b in parse_blocks(path)]


# ------------------------------------------------------------------------------- the sandbox
def write_mnist_fixture(root: Path, n_train: int = 200, n_test: int = 50) -> None:
    """A small MNIST-format data set (gzipped IDX files with the official names): 28×28 uint8
    images whose class is a bright bar's row, so a model can learn it in a few epochs."""
    import learnflux as lf

    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for k, label in enumerate(labels):
            images[k, 2 + 2 * label : 4 + 2 * label, 4:24] = 250
        lf.data.write_idx(root / f"{split}-images-idx3-ubyte.gz", images)
        lf.data.write_idx(root / f"{split}-labels-idx1-ubyte.gz", labels)


def make_sandbox(tmp: Path) -> Path:
    for name in ("examples", "benchmarks"):
        shutil.copytree(ROOT / name, tmp / name, ignore=shutil.ignore_patterns("results", "__pycache__"))
    (tmp / ".venv").symlink_to(VENV_BIN.parent, target_is_directory=True)
    write_mnist_fixture(tmp / "data" / "mnist")
    return tmp


def shell_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["MPLBACKEND"] = "Agg"
    env["HOME"] = str(home)
    env.pop("PYTHONPATH", None)
    return env


def shell_commands(block: Block) -> list[str]:
    commands, current = [], ""
    for raw in block.code.splitlines():
        line = raw.rstrip()
        if block.lang == "console":
            if not (line.startswith("$ ") or current):
                continue
            line = line[2:] if line.startswith("$ ") else line
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        commands.append(current + line)
        current = ""
    return commands


def run_shell(command: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        cwd=cwd,
        env=shell_env(cwd),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def children_cpu_seconds() -> float:
    """CPU time (user + system) of the finished child processes so far. Durations are checked in
    CPU time: on a shared machine the wall time of a run can be several times its CPU time."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# ------------------------------------------------------------------------------- Python blocks
def _print_lines(tree: ast.AST) -> dict[int, int]:
    """first line -> last line of every ``print(...)`` statement."""
    out = {}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and node.value.func.id == "print"
        ):
            out[node.lineno] = node.end_lineno
    return out


def _comments(code: str) -> dict[int, str]:
    found = {}
    for tok in tokenize.generate_tokens(io.StringIO(code).readline):
        if tok.type == tokenize.COMMENT:
            found[tok.start[0]] = tok.string[1:].strip()
    return found


def _matches(expected: str, got: str) -> bool:
    pattern = ".*?".join(re.escape(part.strip()) for part in expected.split("..."))
    return re.fullmatch(pattern, got.strip(), re.S) is not None


def check_printed(expected: str, got: str) -> None:
    about = re.fullmatch(r"about (-?\d+(?:\.(\d+))?)(?: ± (\d+(?:\.\d+)?))?(?: \(.*\))?", expected)
    if about:
        value, decimals = float(about.group(1)), len(about.group(2) or "")
        tolerance = float(about.group(3)) if about.group(3) else 10.0**-decimals
        assert abs(float(got) - value) <= tolerance + 1e-12, f"printed {got}, the doc says {expected}"
        return
    assert _matches(expected, got), f"printed:\n{got}\nthe doc says:\n{expected}"


ERROR_COMMENT = re.compile(r"^(?P<name>[A-Z]\w*(?:Error|Exception)): (?P<message>.*)$")


def exec_python(code: str, ns: dict[str, Any], filename: str, compare: bool) -> None:
    """Run ``code`` statement by statement in ``ns``; with ``compare``, check the printed values
    and the expected errors its comments announce."""
    tree = ast.parse(code, filename)
    prints = _print_lines(tree)
    comments = _comments(code) if compare else {}
    printed: dict[int, list[str]] = {}

    def doc_print(
        *args: Any, sep: Optional[str] = " ", end: Optional[str] = "\n", file: Any = None, **kw: Any
    ):
        frame = sys._getframe(1)
        if file is None and frame.f_code.co_filename == filename:
            printed.setdefault(frame.f_lineno, []).append((" " if sep is None else sep).join(map(str, args)))
        builtins.print(*args, sep=sep, end=end, file=file, **kw)

    ns["print"] = doc_print
    for stmt in tree.body:
        comment = comments.get(stmt.end_lineno, "")
        error = ERROR_COMMENT.match(comment) if stmt.lineno not in prints else None
        compiled = compile(ast.Module(body=[stmt], type_ignores=[]), filename, "exec")
        if error:
            with pytest.raises(Exception) as info:
                exec(compiled, ns)
            assert type(info.value).__name__ == error.group("name"), f"line {stmt.lineno}: {info.value!r}"
            assert _matches(error.group("message"), str(info.value)), f"line {stmt.lineno}: {info.value}"
            continue
        exec(compiled, ns)
    del ns["print"]
    for first, last in prints.items():
        if last in comments and comments[last]:
            assert first in printed, f"line {first}: the print never ran"
            check_printed(comments[last], printed[first][-1])


def python_chain(block: Block) -> list[Block]:
    """The page's Python blocks this one continues from (oldest first), then itself."""
    page = [b for b in BLOCKS if b.path == block.path and b.lang in PYTHON_LANGS and b.line <= block.line]
    chain = [page[-1]]
    for b in reversed(page[:-1]):
        if chain[0].marker("continue") is None:
            break
        chain.insert(0, b)
    return chain


@contextlib.contextmanager
def restored_metrics():
    import learnflux as lf

    saved = dict(lf.metrics.METRICS)
    try:
        yield
    finally:
        lf.metrics.METRICS.clear()
        lf.metrics.METRICS.update(saved)


def run_python(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_sandbox(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    ns: dict[str, Any] = {"__name__": "__doc_block__"}
    start = time.process_time()
    try:
        with restored_metrics():
            for b in python_chain(block):
                setup = b.marker("setup")
                if setup:
                    exec_python(setup, ns, f"<setup {b.id}>", compare=False)
                start = time.process_time()  # the last one counts: the block itself
                exec_python(b.code, ns, f"<doc {b.id}>", compare=b is block)
    except ModuleNotFoundError as exc:
        if exc.name in OPTIONAL_MODULES:
            pytest.skip(f"needs {exc.name}, which is not installed (a test extra)")
        raise
    check_time(block, time.process_time() - start)


def check_time(block: Block, seconds: float) -> None:
    """``seconds``: the CPU time the block took (all threads of the process, or its commands)."""
    claim = block.marker("time")
    if claim is None:
        return
    m = re.fullmatch(r"\(about (\d+(?:\.\d+)?) seconds?\)", claim)
    assert m, f"{block.id}: write <!-- doc-test: time (about N seconds) -->"
    assert f"about {m.group(1)} second" in block.before, f"{block.id}: the prose does not quote {claim}"
    # a loaded machine only slows things down: a wide margin above, a narrower one below
    quoted = float(m.group(1))
    assert quoted / 4 <= seconds <= SLOWDOWN * quoted, (
        f"{block.id}: took {seconds:.1f} s, the doc says {claim}"
    )


# ------------------------------------------------------------------------------- data blocks
def _contains_json(haystack: Any, needle: Any) -> bool:
    if haystack == needle:
        return True
    if isinstance(haystack, dict):
        return any(_contains_json(v, needle) for v in haystack.values())
    if isinstance(haystack, list):
        return any(_contains_json(v, needle) for v in haystack)
    return False


def check_output_of(block: Block, tmp_path: Path) -> None:
    command = block.marker("output-of")
    m = re.fullmatch(r"\((.+)\)", command or "", re.S)
    assert m, f"{block.id}: write <!-- doc-test: output-of (COMMAND) -->"
    done = run_shell(m.group(1), make_sandbox(tmp_path))
    assert done.returncode == 0, done.stderr
    if block.lang == "json":
        assert _contains_json(json.loads(done.stdout), json.loads(block.code)), (
            f"not in the output of {command}"
        )
    else:
        shown = "\n".join(line.rstrip() for line in block.code.strip("\n").splitlines())
        output = "\n".join(line.rstrip() for line in done.stdout.splitlines())
        assert shown in output, f"{block.id} is not what `{m.group(1)}` prints:\n{done.stdout}"


# ------------------------------------------------------------------------------- the tests
@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_block(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    skip = block.marker("skip")
    if skip is not None:
        pytest.skip(f"marked in the doc: {skip}")
    if block.lang in PYTHON_LANGS:
        run_python(block, tmp_path, monkeypatch)
    elif block.lang in SHELL_LANGS:
        sandbox = make_sandbox(tmp_path)
        start = children_cpu_seconds()
        for command in shell_commands(block):
            cpu = children_cpu_seconds()
            done = run_shell(command, sandbox)
            cpu = children_cpu_seconds() - cpu
            assert done.returncode == 0, f"`{command}` exited with {done.returncode}:\n{done.stderr[-3000:]}"
            if command.split("#")[0].strip() in ("learnflux train", ".venv/bin/learnflux train"):
                _remember_main_job(sandbox, cpu)
        check_time(block, children_cpu_seconds() - start)
    elif block.marker("output-of") is not None:
        check_output_of(block, tmp_path)
    elif block.lang == "toml":
        from learnflux.config import parse_config

        parse_config(block.code, source=block.id)
    elif block.lang == "json":
        json.loads(block.code)
    else:
        assert block.lang in DATA_LANGS, f"{block.id}: unknown language {block.lang!r}"


def test_every_block_is_tagged_and_every_marker_is_well_formed() -> None:
    problems = []
    for b in BLOCKS:
        if not b.lang:
            problems.append(f"{b.id}: no language tag (```python, ```bash, ```text, ```toml ...)")
        elif b.lang not in PYTHON_LANGS | SHELL_LANGS | DATA_LANGS:
            problems.append(f"{b.id}: unknown language {b.lang!r}")
        for m in b.markers:
            kind = m.split(None, 1)[0] if m else ""
            if kind not in ("skip", "continue", "setup", "output-of", "time"):
                problems.append(f"{b.id}: unknown doc-test marker {m!r}")
        skip = b.marker("skip")
        if skip is not None:
            if not re.fullmatch(r"\(.*\S.*\)", skip, re.S):
                problems.append(f"{b.id}: a skip needs a reason: <!-- doc-test: skip (why) -->")
            if "not run" not in b.before.lower():
                problems.append(
                    f"{b.id}: skipped, but the paragraph above does not tell the reader it is not run"
                )
        if b.marker("output-of") is not None and b.lang not in ("text", "json"):
            problems.append(f"{b.id}: output-of applies to text and json blocks")
    assert not problems, "\n".join(problems)
    assert len(BLOCKS) > 50 and {b.path.name for b in BLOCKS} >= {"README.md", "explain.md", "conv.md"}


# ------------------------------------------------------------------------------- quoted numbers
_MAIN_JOB: dict[str, Any] = {}


def _remember_main_job(sandbox: Path, cpu_seconds: float) -> None:
    """Keep the metrics and the CPU time of a shell block's `learnflux train` (the README's)."""
    for path in sorted(sandbox.glob("runs/*/metrics.json")):
        metrics = json.loads(path.read_text())
        if metrics.get("config") == "<default>" and "metrics" not in _MAIN_JOB:
            _MAIN_JOB.update(metrics=metrics, cpu_seconds=cpu_seconds)


@pytest.fixture(scope="module")
def main_job(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`learnflux train` with no argument: its metrics and CPU time (run here unless a README
    block already ran it in this session)."""
    if "metrics" not in _MAIN_JOB:
        out = tmp_path_factory.mktemp("main-job")
        cpu = children_cpu_seconds()
        done = run_shell("learnflux train", out)
        cpu = children_cpu_seconds() - cpu
        assert done.returncode == 0, done.stderr
        _remember_main_job(out, cpu)
    return _MAIN_JOB


def _quoted(path: str, pattern: str) -> list[str]:
    text = re.sub(r"\s+", " ", (ROOT / path).read_text(encoding="utf-8"))
    return re.findall(pattern, text)


def _close(quoted: str, value: float) -> bool:
    """``quoted`` is ``value`` written to its number of decimals (one unit of slack)."""
    decimals = len(quoted.split(".")[1]) if "." in quoted else 0
    return abs(float(quoted) - value) <= 10.0**-decimals + 1e-12


def test_the_main_jobs_accuracy_and_duration_are_the_ones_quoted(main_job: dict[str, Any]) -> None:
    claims = _quoted("docs/training.md", r"test accuracy of (\d\.\d+) \(.*?\) in about (\d+) seconds")
    readme = _quoted("README.md", r"prints the test accuracy \((\d\.\d+), in about (\d+) seconds")
    assert claims, "docs/training.md no longer quotes the main job's accuracy and duration"
    metrics, cpu = main_job["metrics"], main_job["cpu_seconds"]
    for accuracy, seconds in claims + readme:
        assert _close(accuracy, metrics["test_accuracy"]), (accuracy, metrics["test_accuracy"])
        # in CPU time (the wall time of a loaded machine says little), with a wide margin
        assert int(seconds) / 4 <= cpu <= SLOWDOWN * int(seconds), (seconds, cpu)
    assert metrics["epochs"] == 30 and metrics["parameters"] == 21_418


def _latest() -> dict[str, Any]:
    return json.loads((ROOT / "benchmarks" / "results" / "latest.json").read_text())


def test_the_readme_speed_table_quotes_the_committed_benchmark_run() -> None:
    res = _latest()
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([\w-]+)`: [^|]*\| ([^|]*)\| ([^|]*)\| (\d+)% \|$", text, re.M)
    assert {r[0] for r in rows} == {"tiny", "mlp", "predict-mlp", "cnn", "cnn-cifar", "predict-cnn"}
    for case, vs_torch, vs_numpy, rss in rows:
        ratios = res["cases"][case]["ratios"]
        quoted = re.match(r"\**([\d.]+)×", vs_torch.strip())
        assert quoted and _close(quoted.group(1), ratios["torch"]["median"]), (case, vs_torch)
        cl = re.search(r"channels_last ([\d.]+)×", vs_torch)
        if cl:
            assert _close(cl.group(1), ratios["torch-cl"]["median"]), (case, vs_torch)
        if vs_numpy.strip() != "–":
            quoted = re.match(r"\**([\d.]+)×", vs_numpy.strip())
            assert quoted and _close(quoted.group(1), ratios["numpy"]["median"]), (case, vs_numpy)
        else:
            assert "numpy" not in ratios
        peak = res["memory"][case]["torch"]["learnflux_peak_ratio"]
        assert abs(int(rss) - 100 * peak) <= 1, (case, rss, peak)
    m = res["machine"]
    head = re.sub(r"\s+", " ", text.split("## Speed and memory", 1)[1].split("|", 1)[0])
    assert f"PyTorch eager ({m['torch'].split('+')[0]}, CPU)" in head
    assert f"on {m['date_utc'][:10]}" in head and f"NumPy {m['numpy']}" in head
    blas = next(p for p in m["thread_pools"] if p.get("user_api") == "blas")
    assert f"OpenBLAS {'.'.join(blas['version'].split('.')[:3])}" in head


def test_performance_md_quotes_the_committed_benchmark_run() -> None:
    lim = _latest()["limit"]
    ach = lim["achieved"]
    quoted = _quoted(
        "docs/performance.md",
        r"in the committed run ([\d.]+) GFLOP/s achieved, against ([\d.]+) for the reference, "
        r"of the ([\d.]+) GFLOP/s",
    )
    assert quoted, "docs/performance.md no longer quotes the committed run's GFLOP/s"
    for q, value in zip(
        quoted[0],
        (ach["learnflux"]["gflops"], ach["numpy"]["gflops"], lim["numpy_floor_gflops"]),
        strict=True,
    ):
        assert _close(q, value), (q, value)
    floors = _quoted("docs/performance.md", r"add up to ([\d.]+) ms with OpenBLAS and ([\d.]+) ms with MKL")
    assert floors and _close(floors[0][0], 1000 * lim["numpy_floor_s"])
    assert _close(floors[0][1], 1000 * lim["torch_floor_s"])
    steps = _quoted(
        "docs/performance.md",
        r"PyTorch's whole step took ([\d.]+) ms, the hand-written NumPy reference's ([\d.]+) ms and "
        r"learnflux's ([\d.]+) ms",
    )
    assert steps
    for q, fw in zip(steps[0], ("torch", "numpy", "learnflux"), strict=True):
        assert _close(q, 1000 * ach[fw]["step_s"]), (fw, q)


@pytest.mark.parametrize("dtype", ["exact", "float32"])
def test_explain_json_types_are_the_documented_ones(dtype: str, tmp_path: Path) -> None:
    """docs/explain.md, 'The JSON contract': computed numbers (and lr) are strings in exact mode
    and JSON numbers in float mode; the data x, y and the counts are integers in every mode."""
    done = run_shell(f"learnflux explain --format json --dtype {dtype}", tmp_path)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)

    def leaves(obj: Any) -> list[Any]:
        if isinstance(obj, dict):
            return [x for v in obj.values() for x in leaves(v)]
        if isinstance(obj, list):
            return [x for v in obj for x in leaves(v)]
        return [obj]

    computed = [doc["lr"], *leaves(doc["initial"]), *leaves(doc["final"])]
    for step in doc["steps"]:
        computed += [
            step["loss"],
            *leaves([step[k] for k in ("outputs", "deltas", "grads", "weights_after")]),
        ]
    kind = str if dtype == "exact" else float
    assert computed and all(isinstance(v, kind) for v in computed)
    counts = [doc["batch_size"], doc["epochs"], *leaves([doc["x"], doc["y"]])]
    counts += [v for s in doc["steps"] for v in (s["step"], s["epoch"], *s["samples"])]
    assert all(type(v) is int for v in counts)


def _close_sig(quoted: str, value: float) -> bool:
    """``quoted`` (``−1.496e−17``, ``0.0869543``) is ``value`` to its last digit (one unit of slack)."""
    q = quoted.replace("−", "-").replace("+", "")
    mantissa, _, exponent = q.lower().partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return abs(float(q) - value) <= 10.0 ** (int(exponent or 0) - decimals) * 1.000001


def _seed_trace(dtype: Any, lr: Any = 1, rows: slice = slice(None)) -> Any:
    from fractions import Fraction

    import learnflux as lf

    model = lf.Sequential(lf.Input(3), lf.Linear(3, 1, bias=False), lf.ReLU()).astype("exact")
    model.layers[1].weight.value = [[Fraction(1, 200), Fraction(-3000, 11_600_000), Fraction(1, 5800)]]
    model.astype(dtype)
    x = np.array([[100, 2000, 100], [200, 0, 0], [0, 2000, 3000]])[rows]
    y = np.array([[0], [1], [1]])[rows]
    opt = lf.SGD(model.parameters(), lr=lr)
    return lf.trace.record(model, lf.SquaredError(), opt, x, y, batch_size=1, epochs=1)


def test_numbers_md_quotes_the_residues_and_weights_the_code_computes() -> None:
    text = (ROOT / "docs" / "numbers.md").read_text(encoding="utf-8")
    num = r"[−+]?\d[\d.]*(?:e[−+]?\d+)?"
    rows = dict(re.findall(rf"^\| (sample [13], [^|]+?) \| 0 \| ({num} \| {num}) \|$", text, re.M))
    assert len(rows) == 4, rows
    for dtype, column in ((np.float64, 0), (np.float32, 1)):
        full, alone3 = _seed_trace(dtype), _seed_trace(dtype, rows=slice(2, 3))
        computed = {
            "sample 1, alone (training step 1)": full.steps[0].output(2)[0, 0],
            "sample 1, in the batch of 3 (forward table)": full.initial.outputs[1][0, 0],
            "sample 3, alone, article's weights": alone3.steps[0].output(2)[0, 0],
            "sample 3, in the batch of 3 (forward table)": full.initial.outputs[1][2, 0],
        }
        for name, value in computed.items():
            quoted = re.findall(num, rows[name])[column]
            assert _close_sig(quoted, float(value)), (dtype.__name__, name, quoted, float(value))
    # the two "final `w2`" rows: float32 with α = 1, then float32 with --lr 1e-7
    finals = re.findall(r"^\| final `w2` \|.*$", text, re.M)
    assert len(finals) == 2
    for row, cell, lr in ((finals[0], 4, 1), (finals[1], 3, 1e-7)):
        quoted = re.findall(num, row.split("|")[cell])
        weights = _seed_trace(np.float32, lr=lr).final.weights["w2"].ravel()
        assert len(quoted) == 3 and all(
            _close_sig(q, float(v)) for q, v in zip(quoted, weights, strict=True)
        ), (quoted, weights)
