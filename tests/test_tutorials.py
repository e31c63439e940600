"""The tutorials (docs/tutorials/): each page's Python blocks run in order in one namespace (as a
reader runs them), and a ``text`` block right after a Python block is what that block prints.
A picture a page shows (docs/img/tutorials/) and writes is the one its code writes, byte for byte.

tests/test_docs.py also runs every block (each with the blocks it continues from) and checks the
``print(...)  # value`` comments; this test adds the multi-line printouts and the pictures.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = sorted((ROOT / "docs" / "tutorials").glob("*.md"))
IMAGES = ROOT / "docs" / "img" / "tutorials"
FENCE = re.compile(r"^```(\w*)\s*$")


def blocks(path: Path) -> list[tuple[str, str, int]]:
    """``(language, code, line)`` of every fenced block of a page (fences at column 0)."""
    out, lines, i = [], path.read_text(encoding="utf-8").splitlines(), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m and m.group(1):
            j = i + 1
            while not lines[j].startswith("```"):
                j += 1
            out.append((m.group(1), "\n".join(lines[i + 1 : j]) + "\n", i + 1))
            i = j
        i += 1
    return out


def run_page(path: Path, folder: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, int]]:
    """Run a page's Python blocks in order in ``folder``; return ``(printed, expected, line)``
    for each Python block followed by a text block."""
    monkeypatch.chdir(folder)
    ns: dict = {"__name__": "__tutorial__"}
    checks, previous = [], None
    for lang, code, line in blocks(path):
        if lang == "python":
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                exec(compile(code, f"{path.name}:{line}", "exec"), ns)
            previous = (buf.getvalue(), line)
        elif lang == "text" and previous is not None:
            checks.append((previous[0], code, previous[1]))
            previous = None
        else:
            previous = None
    return checks


def test_there_are_tutorials():
    names = {p.name for p in TUTORIALS}
    assert {"01-the-weights.md", "04-the-second-dimension.md", "07-looking-at-a-cnn.md"} <= names


@pytest.mark.parametrize("page", TUTORIALS, ids=[p.name for p in TUTORIALS])
def test_printouts_are_what_the_code_prints(page, tmp_path, monkeypatch):
    for printed, expected, line in run_page(page, tmp_path, monkeypatch):
        got = [row.rstrip() for row in printed.rstrip("\n").splitlines()]
        want = [row.rstrip() for row in expected.rstrip("\n").splitlines()]
        assert got == want, f"{page.name}:{line} prints\n" + "\n".join(got)
    text = page.read_text(encoding="utf-8")
    for png in tmp_path.glob("*.png"):  # a picture the page shows and writes: the committed one
        if f"img/tutorials/{png.name}" in text:
            committed = IMAGES / png.name
            assert committed.read_bytes() == png.read_bytes(), f"{committed} is not what {page.name} writes"
    for name in re.findall(r"\]\(\.\./img/([\w/.-]+)\)", text):
        assert (ROOT / "docs" / "img" / name).is_file(), f"{page.name} shows img/{name}, which is missing"
