"""The install promises of the README (two commands, Python 3.10 to 3.13), checked on pyproject.toml.

The extras pin exact versions with environment markers: for every supported Python, each package
must get exactly one pin, the `train` extra (the README's first command) must stay light, and the
PyTorch oracle is pinned only where its CPU build is at hand.
"""

from __future__ import annotations

import fnmatch
import subprocess
import sys
from pathlib import Path

import pytest

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

requirements = pytest.importorskip("packaging.requirements")

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]
SUPPORTED = ("3.10", "3.11", "3.12", "3.13")
#: what `learnflux train` needs, and nothing more
TRAIN_PACKAGES = {"numpy", "tqdm", "matplotlib"}
#: heavy or test-only packages that must not reach the main job's install
NOT_IN_TRAIN = {"torch", "scikit-learn", "scipy", "ruff", "pytest", "sympy", "threadpoolctl"}


def _pins(extra: str, python: str) -> dict[str, str]:
    """name -> pinned version of ``extra`` on ``python``, with self-references expanded."""
    env = {"python_version": python, "python_full_version": python + ".0", "extra": ""}
    pins: dict[str, str] = {}
    for line in PROJECT["optional-dependencies"][extra]:
        req = requirements.Requirement(line)
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        if req.name == PROJECT["name"]:
            for sub in sorted(req.extras):
                for name, version in _pins(sub, python).items():
                    assert name not in pins, f"{name} pinned twice for Python {python}"
                    pins[name] = version
            continue
        assert req.name not in pins, f"{req.name} pinned twice in [{extra}] for Python {python}"
        (spec,) = req.specifier  # exactly one `==` pin
        assert spec.operator == "==", line
        pins[req.name] = spec.version
    return pins


def _core(python: str) -> set[str]:
    env = {"python_version": python, "python_full_version": python + ".0", "extra": ""}
    reqs = [requirements.Requirement(line) for line in PROJECT["dependencies"]]
    return {r.name for r in reqs if r.marker is None or r.marker.evaluate(env)}


@pytest.mark.parametrize("python", SUPPORTED)
def test_train_extra_is_light_and_complete(python: str) -> None:
    pins = _pins("train", python)
    expected = TRAIN_PACKAGES | ({"tomli"} if python == "3.10" else set())
    assert set(pins) == expected
    assert not NOT_IN_TRAIN & set(pins)


@pytest.mark.parametrize("python", SUPPORTED)
def test_test_extra_includes_train_and_torch_only_on_311(python: str) -> None:
    train, test = _pins("train", python), _pins("test", python)
    assert train.items() <= test.items()
    assert {"pytest", "scikit-learn", "threadpoolctl"} <= set(test)
    assert ("torch" in test) == (python == "3.11")


@pytest.mark.parametrize("python", SUPPORTED)
def test_core_dependencies_read_toml_on_every_python(python: str) -> None:
    # `import learnflux` imports learnflux.config, which reads TOML: tomllib from 3.11 on
    assert _core(python) == ({"numpy", "tomli"} if python == "3.10" else {"numpy"})


@pytest.mark.parametrize("python", SUPPORTED)
def test_mkl_extra_pins_only_mkl(python: str) -> None:
    # MKL stays optional (about 1 GB): neither the train nor the test extra pulls it in
    assert set(_pins("mkl", python)) == {"mkl"}
    assert "mkl" not in _pins("test", python)


@pytest.mark.parametrize("python", SUPPORTED)
def test_exchange_extras_are_in_the_test_extra(python: str) -> None:
    # ONNX export and safetensors stay optional, and CI tests them on every Python
    onnx, st, test = _pins("onnx", python), _pins("safetensors", python), _pins("test", python)
    assert set(onnx) == {"onnx", "onnxruntime"} and set(st) == {"safetensors"}
    assert onnx.items() <= test.items() and st.items() <= test.items()
    assert not {"onnx", "onnxruntime", "safetensors"} & set(_pins("train", python))
    # onnxruntime 1.24 dropped Python 3.10
    assert onnx["onnxruntime"].startswith("1.23.") == (python == "3.10")


def test_python_310_gets_releases_that_support_it() -> None:
    # the newest releases with Python 3.10 wheels (numpy 2.3, matplotlib 3.11, scikit-learn 1.8
    # dropped it)
    pins = _pins("test", "3.10")
    assert pins["numpy"].startswith("2.2.") and pins["matplotlib"].startswith("3.10.")
    assert pins["scikit-learn"].startswith("1.7.")


def test_supported_pythons_are_declared() -> None:
    assert PROJECT["requires-python"] == ">=3.10"


def test_import_needs_only_the_core_dependencies() -> None:
    # `import learnflux` with the optional packages hidden: matplotlib, tqdm, torch, ... are imported
    # only when a feature needs them
    hidden = ("matplotlib", "tqdm", "torch", "sklearn", "scipy", "PIL", "onnx", "onnxruntime", "safetensors")
    code = f"""
import importlib.abc, sys
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {hidden!r}:
            raise ModuleNotFoundError(name)
        return None
sys.meta_path.insert(0, Hide())
import learnflux as lf
model = lf.Sequential(lf.Input(2), lf.Linear(2, 1))
print(model(__import__("numpy").ones((1, 2), dtype="float32")).shape)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(1, 1)"


def test_package_data_ships_every_data_file_of_the_package() -> None:
    # a wheel holds the .py files and the package-data patterns: a data file they miss (the
    # default run's config/default.toml, the learning-flow page's script ...) would be absent
    # after `pip install .`; the C sources are built into the extension instead (setup.py)
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["learnflux"]
    package = ROOT / "src" / "learnflux"
    data = [
        path.relative_to(package).as_posix()
        for path in package.rglob("*")
        if path.is_file()
        and path.suffix not in (".py", ".pyc", ".so", ".pyd", ".c", ".h")
        and "__pycache__" not in path.parts
    ]
    assert "config/default.toml" in data
    missing = [name for name in data if not any(fnmatch.fnmatch(name, p) for p in patterns)]
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"
