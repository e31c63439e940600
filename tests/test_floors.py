"""The package's floors: every module of learnflux sits on one floor and imports only from its own
floor or the ones below, with no circle of imports (CONTRIBUTING.md, "The package, floor by floor").

The import graph is read statically with ``ast`` from the sources under ``src/learnflux``, both the
imports at module level and those inside functions. The checks:

* every module has a floor (a new package or module is placed in ``FLOORS`` when it is added);
* no import reaches a higher floor, except the few upward calls listed in ``UPWARD_CALLS``
  (conveniences such as ``model.fit``: a function-level import, each with its reason);
* the module-level import graph has no cycle, and neither has the whole graph (function-level
  imports included) once the listed upward calls are set aside: a function-level import is not
  a way to hide a circle.

The checker itself is tested on planted violations (an upward import, a circle at module level,
a circle hidden in a function, an unplaced module), so that it cannot pass by checking nothing.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: floor -> (its name, the modules on it, as dotted names under learnflux: a name covers its
#: submodules). The longest matching name places a module.
FLOORS: dict[int, tuple[str, tuple[str, ...]]] = {
    0: ("ground", ("errors", "numbers", "seeding", "version")),
    1: ("core", ("core", "param", "node", "layer", "model")),
    2: ("blocks", ("kernels", "layers", "losses", "optim", "init", "gradcheck")),
    3: (
        "training",
        (
            "training",
            "train",
            "callbacks",
            "checkpoint",
            "metrics",
            "progress",
            "summary",
            "trace",
            "files",
            "io",
            "fileformat",
            "archive",
            "data",
        ),
    ),
    4: (
        "tools",
        ("flow", "look", "png", "exchange", "interop", "distributed", "config", "sampling"),
    ),
    5: ("command line", ("cli", "__main__")),
    6: ("public API", ("",)),  # learnflux/__init__.py: everything, flat
}

#: (importer, imported) -> why this import goes up a floor. Each must be a function-level import.
UPWARD_CALLS: dict[tuple[str, str], str] = {
    ("core.model", "training.train"): "Model.fit / evaluate / predict call the trainer (Keras's)",
    ("core.model", "training.summary"): "Model.summary() prints lf.summary(model)",
    ("training.trace", "flow.arrays"): "Trace.to_npz writes the arrays with the flow's layout",
    ("training.trace", "flow.page"): "Trace.to_html renders the learning-flow page",
    ("training.trace", "flow.graph"): "Trace's graph for its page",
    ("training.trace", "flow.text"): "Trace.to_text / to_markdown format with the flow's tables",
    ("files.fileformat", "distributed"): "lf.load finds SyncBatchNorm1d/2d (no MPI is imported)",
}


@dataclass(frozen=True)
class Import:
    importer: str  # dotted, without the leading "learnflux."; "" for the package itself
    imported: str
    in_function: bool
    line: int


def _module_names(root: Path) -> dict[str, tuple[Path, bool]]:
    """dotted name (under the package) -> (file, is a package's __init__)."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        names[".".join(parts)] = (path, is_pkg)
    return names


def _extension(root: Path, dotted: str) -> bool:
    """A compiled extension module (``kernels/_lfk*.so``): a leaf outside the graph."""
    folder = root.joinpath(*dotted.split(".")[:-1])
    return any(folder.glob(dotted.split(".")[-1] + ".*.so")) or any(
        folder.glob(dotted.split(".")[-1] + ".*.pyd")
    )


def _imports_of(module: str, path: Path, is_pkg: bool, names: dict, root: Path, package: str) -> list[Import]:
    """The imports of other modules of the package in one file, at module level or in functions
    (those under ``if TYPE_CHECKING:`` are annotations only and never run)."""
    here = module.split(".") if module else []
    package_parts = here if is_pkg else here[:-1]
    imports: list[Import] = []

    def target(base: str) -> Optional[str]:
        """The known module ``base`` names, or its closest known parent."""
        while base not in names and "." in base:
            base = base.rsplit(".", 1)[0]
        return base if base in names else None

    def named(child: ast.AST) -> list[str]:
        if isinstance(child, ast.Import):
            return [a.name[len(package) + 1 :] for a in child.names if a.name.startswith(package + ".")] + [
                "" for a in child.names if a.name == package
            ]
        if not isinstance(child, ast.ImportFrom):
            return []
        if child.level:
            parts = package_parts[: len(package_parts) - (child.level - 1)]
            base = ".".join(parts + (child.module.split(".") if child.module else []))
        elif child.module == package or (child.module or "").startswith(package + "."):
            base = child.module[len(package) + 1 :]
        else:
            return []
        found = []
        for alias in child.names:
            full = f"{base}.{alias.name}" if base else alias.name
            if full in names:
                found.append(full)
            elif not _extension(root, full):
                found.append(base)
        return found

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            for name in named(child):
                resolved = target(name)
                if resolved is not None and resolved != module:
                    imports.append(Import(module, resolved, inside, child.lineno))
            visit(child, inside)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), False)
    return imports


def import_graph(root: Path, package: str = "learnflux") -> tuple[set[str], list[Import]]:
    """The modules of the package at ``root`` and every import of one of them by another."""
    names = _module_names(root)
    imports = [
        imp
        for mod, (path, is_pkg) in names.items()
        for imp in _imports_of(mod, path, is_pkg, names, root, package)
    ]
    return set(names), imports


def floor_of(module: str, floors: dict[int, tuple[str, tuple[str, ...]]]) -> Optional[int]:
    best: Optional[tuple[int, int]] = None  # (length of the matching name, floor)
    for floor, (_, prefixes) in floors.items():
        for prefix in prefixes:
            if prefix == "" and module != "":
                continue
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), floor)
    return None if best is None else best[1]


def _cycle(edges: Iterable[tuple[str, str]]) -> Optional[list[str]]:
    """One cycle of the directed graph ``edges`` (as a closed path), or None."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def dfs(node: str) -> Optional[list[str]]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                found = dfs(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = dfs(start)
            if found:
                return found
    return None


def _show(module: str) -> str:
    return "learnflux" + (f".{module}" if module else "")


def check_floors(
    modules: set[str],
    imports: list[Import],
    floors: dict[int, tuple[str, tuple[str, ...]]] = FLOORS,
    upward: dict[tuple[str, str], str] = UPWARD_CALLS,
) -> list[str]:
    """Every breach of the floors, as sentences (empty: the package keeps them)."""
    problems = []
    for module in sorted(modules):
        if floor_of(module, floors) is None:
            problems.append(f"{_show(module)} has no floor: place it in FLOORS (tests/test_floors.py)")
    for imp in imports:
        a, b = floor_of(imp.importer, floors), floor_of(imp.imported, floors)
        if a is None or b is None or b <= a:
            continue
        where = f"{_show(imp.importer)} (line {imp.line})"
        up = f"{floors[b][0]} floor {b} ({_show(imp.imported)}) from the {floors[a][0]} floor {a}"
        if (imp.importer, imp.imported) not in upward:
            problems.append(f"{where} imports from the {up}")
        elif not imp.in_function:
            problems.append(f"{where}: the upward call to {_show(imp.imported)} must be inside its function")
    module_level = _cycle((i.importer, i.imported) for i in imports if not i.in_function)
    if module_level:
        problems.append("circle of module-level imports: " + " -> ".join(map(_show, module_level)))
    else:
        hidden = _cycle((i.importer, i.imported) for i in imports if (i.importer, i.imported) not in upward)
        if hidden:
            problems.append(
                "circle of imports through a function-level import: " + " -> ".join(map(_show, hidden))
            )
    return problems


def test_learnflux_keeps_its_floors():
    modules, imports = import_graph(SRC / "learnflux")
    assert len(modules) > 50 and len(imports) > 200  # the graph was read
    problems = check_floors(modules, imports)
    assert not problems, "\n".join(problems)


def test_every_listed_upward_call_exists():
    """A listed exception that no longer happens is removed from the list."""
    _, imports = import_graph(SRC / "learnflux")
    present = {(i.importer, i.imported) for i in imports}
    assert sorted(set(UPWARD_CALLS) - present) == []


# ---------------------------------------------------------------------------- the checker itself
def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "learnflux"
    for name, text in {"__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


TOY_FLOORS = {
    0: ("ground", ("errors",)),
    1: ("core", ("layer", "model")),
    2: ("training", ("train",)),
    3: ("top", ("",)),
}


def test_checker_accepts_a_clean_package(tmp_path):
    root = _package(
        tmp_path,
        {
            "errors.py": "",
            "layer.py": "from .errors import E\n",
            "model.py": "from .layer import Layer\n\ndef fit():\n    from .train import fit\n",
            "train.py": "from . import model\nfrom .errors import E\n",
        },
    )
    modules, imports = import_graph(root)
    assert modules == {"", "errors", "layer", "model", "train"}
    assert check_floors(modules, imports, TOY_FLOORS, {("model", "train"): "Model.fit"}) == []


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"layer.py": "from .train import fit\n"},
            "learnflux.layer (line 1) imports from the training floor 2",
        ),
        (  # an upward call listed, but at module level
            {"model.py": "from .train import fit\n"},
            "the upward call to learnflux.train must be inside its function",
        ),
        (  # not listed: a function-level upward import is still upward
            {"layer.py": "def f():\n    from learnflux.train import fit\n"},
            "learnflux.layer (line 2) imports from the training floor 2",
        ),
        (
            {"layer.py": "from .model import Model\n", "model.py": "from .layer import Layer\n"},
            "circle of module-level imports: learnflux.layer -> learnflux.model -> learnflux.layer",
        ),
        (  # the circle the issue found (layer <-> model), hidden in a function
            {"layer.py": "def call():\n    from .model import Node\n", "model.py": "from . import layer\n"},
            "circle of imports through a function-level import",
        ),
        ({"extra.py": ""}, "learnflux.extra has no floor"),
    ],
)
def test_checker_finds_planted_violations(tmp_path, files, message):
    clean = {"errors.py": "", "layer.py": "", "model.py": "", "train.py": ""}
    modules, imports = import_graph(_package(tmp_path, {**clean, **files}))
    problems = check_floors(modules, imports, TOY_FLOORS, {("model", "train"): "Model.fit"})
    assert any(message in p for p in problems), problems


def test_floor_of_takes_the_longest_name():
    floors = {0: ("a", ("x",)), 1: ("b", ("x.y",)), 2: ("top", ("",))}
    assert (floor_of("x.z", floors), floor_of("x.y.z", floors), floor_of("", floors)) == (0, 1, 2)
    assert floor_of("xy", floors) is None
