"""`learnflux export MODEL --format onnx|safetensors --out FILE`, end to end on small models."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import learnflux as lf
from learnflux.cli import main
from learnflux.cli.failures import EXIT_DATA, EXIT_FILES, EXIT_USAGE

try:
    import onnxruntime as ort
except ImportError:
    ort = None
try:
    import safetensors
except ImportError:
    safetensors = None

needs_ort = pytest.mark.skipif(ort is None, reason="onnx / onnxruntime (the `onnx` extra) are not installed")
needs_st = pytest.mark.skipif(safetensors is None, reason="safetensors is not installed")


@pytest.fixture
def saved(tmp_path):
    """A small CNN with moved running statistics, saved with lf.save."""
    lf.seed(0)
    model = lf.Sequential(
        lf.Input((1, 8, 8)),
        lf.Conv2d(1, 4, 3, padding="same"),
        lf.BatchNorm2d(4),
        lf.ReLU(),
        lf.MaxPool2d(2),
        lf.Flatten(),
        lf.Dropout(0.2),
        lf.Linear(64, 10),
    )
    with model.training_phase():
        model(np.random.default_rng(0).standard_normal((8, 1, 8, 8)))
    path = tmp_path / "model.lf"
    lf.save(model, path)
    return path


def _x(n=6):
    return np.random.default_rng(1).standard_normal((n, 1, 8, 8)).astype(np.float32)


@needs_ort
def test_export_onnx_runs_in_onnx_runtime(saved, tmp_path, capsys):
    out = tmp_path / "digits.onnx"
    assert main(["export", str(saved), "--format", "onnx", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"wrote {out}: ONNX opset 17, 6 nodes, input 'input' (batch, 1, 8, 8) float32" in text
    assert "-> output 'output' (batch, 10) float32" in text
    assert f"checked in ONNX Runtime {ort.__version__} on 8 random samples" in text
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": _x()})[0]
    np.testing.assert_allclose(got, lf.load(saved).predict(_x()), rtol=1e-5, atol=1e-6)


@needs_ort
def test_format_and_out_default_from_each_other(saved, tmp_path, capsys):
    assert main(["export", str(saved), "--format", "onnx", "--no-check"]) == 0
    assert (tmp_path / "model.onnx").is_file()
    assert "checked" not in capsys.readouterr().out
    assert main(["export", str(saved), "--out", str(tmp_path / "b.onnx"), "--no-check"]) == 0
    assert (tmp_path / "b.onnx").is_file()


@needs_st
def test_export_safetensors(saved, tmp_path, capsys):
    out = tmp_path / "w.safetensors"
    assert main(["export", str(saved), "--out", str(out)]) == 0
    assert f"wrote {out}: 9 tensors, 707 values" in capsys.readouterr().out
    model, fresh = lf.load(saved), lf.load(saved)
    for p in fresh.parameters():
        p.value = np.zeros(p.shape)
    lf.load_safetensors(fresh, out)
    np.testing.assert_array_equal(fresh.predict(_x()), model.predict(_x()))


@needs_ort
def test_input_shape_for_a_model_without_input_layer(tmp_path, capsys):
    path = tmp_path / "mlp.lf"
    lf.save(lf.Sequential(lf.Linear(3, 2), lf.Tanh()), path)
    assert main(["export", str(path), "--format", "onnx"]) == EXIT_USAGE
    assert "give it: to_onnx(model, input_shape=" in capsys.readouterr().err
    assert main(["export", str(path), "--format", "onnx", "--input-shape", "3"]) == 0
    assert "input 'input' (batch, 3) float32 -> output 'output' (batch, 2)" in capsys.readouterr().out
    assert main(["export", str(path), "--format", "onnx", "--input-shape", "4"]) == EXIT_USAGE
    assert "Linear at '0' cannot take input of shape (4,)" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["{model}"], EXIT_USAGE, "give --format onnx or --format safetensors"),
        (["{model}", "--out", "{tmp}/x.npz"], EXIT_USAGE, "give --format onnx or --format safetensors"),
        (["{tmp}/missing.lf", "--format", "onnx"], EXIT_USAGE, "missing.lf: no such model file"),
        (
            ["{model}", "--format", "safetensors", "--input-shape", "1,8,8"],
            EXIT_USAGE,
            "--input-shape is for",
        ),
        (["{model}", "--format", "onnx", "--out", "{model}"], EXIT_USAGE, "is the model file itself"),
        (["{tmp}/bad.lf", "--format", "onnx"], EXIT_DATA, "not a learnflux model file"),
        (["{model}", "--format", "onnx", "--input-shape", "1,a"], EXIT_USAGE, "expected integers"),
    ],
)
def test_errors(saved, tmp_path, capsys, args, code, message):
    (tmp_path / "bad.lf").write_bytes(b"not a model")
    argv = ["export"] + [a.format(model=saved, tmp=tmp_path) for a in args]
    assert main(argv) == code
    err = capsys.readouterr().err
    assert err.startswith("learnflux export: error: ") and message in err, err


@needs_st
def test_unwritable_out_is_a_file_error(saved, capsys):
    out = saved / "w.safetensors"  # inside a file, not a folder
    assert main(["export", str(saved), "--out", str(out)]) == EXIT_FILES
    err = capsys.readouterr().err
    assert err.startswith("learnflux export: error: ") and str(saved) in err


@needs_ort
def test_the_check_fails_on_a_graph_that_disagrees(saved, tmp_path):
    from learnflux.cli.export import check_in_onnx_runtime

    model = lf.load(saved)
    proto = lf.export_onnx(model, tmp_path / "m.onnx")
    assert "largest difference" in check_in_onnx_runtime(model, tmp_path / "m.onnx", proto)
    model.layers[-1].bias.value = model.layers[-1].bias.value + 1  # learnflux moves, the file does not
    with pytest.raises(lf.LearnfluxError, match="the exported graph disagrees with learnflux"):
        check_in_onnx_runtime(model, tmp_path / "m.onnx", proto)


@needs_ort
def test_without_onnx_runtime_the_graph_is_written_unchecked(saved, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert main(["export", str(saved), "--format", "onnx"]) == 0
    assert (
        "not checked in ONNX Runtime (not installed: pip install 'learnflux[onnx]')"
        in capsys.readouterr().out
    )


def test_help_lists_export(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "export" in capsys.readouterr().out
