"""``learnflux explain MODEL``: the learning flow of any model as text, Markdown, JSON, .npz and
the HTML page (its content checked here in Python; tests/test_flow_browser.py opens it in
Chromium)."""

from __future__ import annotations

import json
import time
from fractions import Fraction as F

import numpy as np
import pytest

import learnflux as lf
from learnflux.cli import main
from learnflux.cli.explain import run as seed_run
from learnflux.flow import describe_tensor, explain_model, render_page, summarize
from learnflux.flow.page import page_data

from .flow_fixtures import digits_run, page_payload, page_tensor


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    return digits_run(tmp_path_factory.mktemp("run") / "run").parent


@pytest.fixture(scope="module")
def cnn_trace(run_folder):
    return explain_model(str(run_folder), samples="0,1", steps=3)


def cli(capsys, *args: str) -> str:
    rc = main(list(args))
    out = capsys.readouterr()
    assert rc == 0, out.err
    return out.out


# ------------------------------------------------------------------------------ summaries
def test_summary_of_a_float_tensor():
    a = np.zeros((2, 3, 4), dtype=np.float32)
    a[1, 2, 3] = -5
    a[0, 0, 1] = 2
    s = summarize(a)
    assert s.shape == (2, 3, 4) and s.size == 24 and s.zeros == 22
    assert s.min == -5 and s.max == 2 and s.argmax_abs == (1, 2, 3) and s.at_max == -5
    assert s.mean == pytest.approx(-3 / 24) and s.norm == pytest.approx(np.sqrt(29))
    line = describe_tensor(a)
    assert line.startswith("shape (2, 3, 4) · min -5 · mean -0.125 · max 2 · ‖·‖ 5.38516")
    assert "largest |v| at [1, 2, 3] = -5" in line and "22 zeros" in line and "first (0, 2, 0, 0, …)" in line


def test_summary_of_an_exact_tensor_stays_exact():
    a = np.array([F(1, 3), F(-1, 2), F(0)], dtype=object)
    s = summarize(a)
    assert s.min == F(-1, 2) and s.max == F(1, 3) and s.mean == F(-1, 18) and s.at_max == F(-1, 2)
    assert "mean -1/18" in describe_tensor(a)


# ------------------------------------------------------------------------------ recording
def test_recording_the_digits_cnn_for_3_steps_takes_under_a_second(run_folder):
    explain_model(str(run_folder), samples="0,1", steps=1)  # warm: imports, the data set
    start = time.process_time()
    trace = explain_model(str(run_folder), samples="0,1", steps=3)
    assert time.process_time() - start < 1.0
    assert len(trace.steps) == 3 and all(s.samples == [0, 1] for s in trace.steps)


def test_every_layer_and_step_is_recorded(cnn_trace, run_folder):
    n = len(cnn_trace.model.layers)
    step = cnn_trace.steps[1]
    assert len(step.outputs) == n and len(step.deltas) == n + 1
    assert step.output(2).shape == (2, 32, 8, 8) and step.delta(1).shape == (2, 1, 8, 8)
    assert set(step.grads) == {"w2", "w3", "b3", "w6", "b6", "w11", "b11"}
    # SGD, default α = 0.01: ŵ = w − α·δw
    np.testing.assert_allclose(
        step.weights_after["w6"], step.weights_before["w6"] - np.float32(0.01) * step.grads["w6"], rtol=1e-6
    )
    # the chosen samples are the run's train split samples 0 and 1, after its preprocessing
    from learnflux.cli.evaluate import load_eval_data

    x, y, _ = load_eval_data("run", run_folder / "model.lf", "train", None, None)
    np.testing.assert_array_equal(step.x, x[:2])
    assert cnn_trace.extra["samples"] == [{"index": 0, "label": int(y[0])}, {"index": 1, "label": int(y[1])}]
    # the model file is not changed by the steps
    saved = lf.load(run_folder / "model.lf")
    np.testing.assert_array_equal(saved.layers[1].weight.value, cnn_trace.steps[0].weights_before["w2"])


def test_text_summarises_large_tensors(cnn_trace):
    text = cnn_trace.to_text()
    assert "L6 = Conv2d(32 → 64, 3×3, padding=1)" in text and "w6 (64, 32, 3, 3)" in text
    assert "Step 3 · epoch 3 · samples 1, 2" in text
    for token in (
        "o2   shape (2, 32, 8, 8) · min ",
        "δ12  shape (2, 10)",
        "δw6",
        "ŵ6 − w6",
        "largest |v| at [",
    ):
        assert token in text, token
    assert len(text) < 40_000  # summaries, not 300,000 numbers
    md = cnn_trace.to_markdown()
    assert "| `δw6` | shape (64, 32, 3, 3)" in md and "\\|v\\|" in md


def test_json_and_npz_keep_every_value(cnn_trace, tmp_path):
    doc = json.loads(cnn_trace.to_json())
    s2 = cnn_trace.steps[1]
    assert np.array(doc["steps"][1]["deltas"]["d3"], dtype=np.float32).tobytes() == s2.delta(3).tobytes()
    assert np.array(doc["steps"][1]["grads"]["w6"], dtype=np.float32).tobytes() == s2.grads["w6"].tobytes()
    assert [n["inputs"] for n in doc["graph"]] == [[0]] + [[k] for k in range(1, 11)]
    cnn_trace.to_npz(tmp_path / "t.npz")
    with np.load(tmp_path / "t.npz") as a:
        np.testing.assert_array_equal(a["step2/d3"], s2.delta(3))
        np.testing.assert_array_equal(a["step2/grad/w6"], s2.grads["w6"])
        np.testing.assert_array_equal(a["step3/after/w11"], cnn_trace.steps[2].weights_after["w11"])
        np.testing.assert_array_equal(a["initial/o11"], cnn_trace.initial.outputs[-1])
        meta = json.loads(a["__trace__"].tobytes())
    assert meta["format"] == "learnflux-trace" and len(meta["steps"]) == 3 and meta["lr"] == 0.01


def test_exact_traces_keep_fractions_in_npz(tmp_path):
    seed_run().to_npz(tmp_path / "seed.npz")
    with np.load(tmp_path / "seed.npz") as a:
        assert a["step3/after/w2"].tolist() == [["1/200", "23199997/11600", "17400001/5800"]]


def test_a_graph_model_is_shown_as_a_graph():
    lf.seed(0)
    x = lf.Input(4)
    h = lf.Linear(4, 4)(x)
    r = lf.ReLU()(h)
    s = lf.Add()([x, r])
    out = lf.Linear(4, 2)(s)
    model = lf.Model(x, out).astype(np.float64)
    rng = np.random.default_rng(0)
    xs, ys = rng.standard_normal((3, 4)), rng.standard_normal((3, 2))
    trace = lf.trace.record(
        model, lf.SquaredError(), lf.SGD(model.parameters(), lr=0.1), xs, ys, batch_size=3
    )
    assert "L4 = Add() ← o1, o3" in trace.to_text()
    graph = trace.to_dict()["graph"]
    assert graph[3] == {"k": 4, "layer": "Add()", "class": "Add", "inputs": [1, 3], "weights": []}
    page = page_payload(render_page(trace))
    assert [n["inputs"] for n in page["graph"]] == [[0], [1], [2], [1, 3], [4]]
    # the flow that reaches o1 is the sum over both paths: δ2 = ∂Loss/∂o1 = δ(Add) + δ(Linear)
    step = trace.steps[0]
    np.testing.assert_allclose(step.delta(2), step.delta(5) + step.delta(3) @ step.weights_before["w2"])


def test_record_steps_stop_where_asked():
    model = lf.Sequential(lf.Input(2), lf.Linear(2, 1)).astype(np.float64)
    x, y = np.ones((5, 2)), np.zeros((5, 1))
    trace = lf.trace.record(
        model, lf.SquaredError(), lf.SGD(model.parameters(), lr=0.1), x, y, batch_size=2, steps=4
    )
    assert [s.samples for s in trace.steps] == [[0, 1], [2, 3], [4], [0, 1]]
    assert [s.epoch for s in trace.steps] == [1, 1, 1, 2]
    with pytest.raises(lf.ConfigError, match="steps"):
        lf.trace.record(model, lf.SquaredError(), None, x, y, steps=0)


# ------------------------------------------------------------------------------ the page, in Python
def test_page_is_self_contained_and_small(cnn_trace):
    html = render_page(cnn_trace, title="digits CNN")
    assert len(html.encode("utf-8")) < 5_000_000
    lowered = html.lower()
    assert "<link" not in lowered and "@import" not in lowered and "src=" not in lowered
    assert "https://" not in lowered and "fetch(" not in lowered and "xmlhttprequest" not in lowered
    assert html.count("<script") == 2  # the data and the hand-written script, both inline


def test_page_data_equals_the_trace(cnn_trace):
    payload = page_payload(render_page(cnn_trace))
    doc = json.loads(cnn_trace.to_json())
    assert [n["layer"] for n in payload["graph"]] == doc["layers"]
    assert payload["dtype"] == "float32" and payload["optimizer"] == "SGD" and payload["lr"] == 0.01
    for s, (ps, js) in enumerate(zip(payload["steps"], doc["steps"], strict=True)):
        assert ps["loss"] == js["loss"] and ps["samples"] == js["samples"]
        for k in range(1, 12):
            o = page_tensor(payload, ps["o"][k - 1])
            assert o.tolist() == np.array(js["outputs"][f"o{k}"], dtype=np.float32).tolist()
        for k in range(1, 13):
            d = page_tensor(payload, ps["d"][k - 1])
            assert d.tolist() == np.array(js["deltas"][f"d{k}"], dtype=np.float32).tolist()
        for name in ("w2", "b3", "w6", "w11"):
            g = page_tensor(payload, ps["g"][name])
            assert g.tolist() == np.array(js["grads"][name], dtype=np.float32).tolist()
            before = page_tensor(payload, ps["w"][name])
            after = page_tensor(payload, ps["wa"][name])
            assert (
                after.tolist()
                == np.array(js["weights_after"][name], dtype=np.float32).reshape(after.shape).tolist()
            )
            update = page_tensor(payload, ps["u"][name])
            np.testing.assert_array_equal(update, after.astype(np.float64) - before.astype(np.float64))
            if s:  # the weights before a step are the previous step's ŵ, stored once
                assert ps["w"][name] == payload["steps"][s - 1]["wa"][name]


def test_seed_page_is_exact():
    payload = page_data(seed_run())
    assert payload["dtype"] == "exact" and payload["lr"] == "1" and payload["steps"][2]["loss"] == "1/2"
    s3 = payload["steps"][2]
    assert page_tensor(payload, s3["wa"]["w2"]).tolist() == [["1/200", "23199997/11600", "17400001/5800"]]
    assert page_tensor(payload, s3["u"]["w2"]).tolist() == [["0", "2000", "3000"]]
    assert page_tensor(payload, s3["d"][3]).tolist() == [["-1"]]


# ------------------------------------------------------------------------------ the command
def test_cli_explain_a_run_folder_as_text_and_json(capsys, run_folder):
    text = cli(capsys, "explain", str(run_folder), "--steps", "2")
    assert text.startswith("Model (float32), 11 layers, 21,418 weights:")
    assert "Step 2 · epoch 2 · samples 1, 2" in text and "Step 3" not in text
    doc = json.loads(
        cli(capsys, "explain", str(run_folder), "--samples", "5", "--steps", "1", "--format", "json")
    )
    assert doc["samples"] == [{"index": 5, "label": doc["samples"][0]["label"]}] and len(doc["steps"]) == 1
    assert doc["optimizer"]["name"] == "SGD"


def test_cli_explain_html_npz_and_newest_run(capsys, run_folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = cli(capsys, "explain", str(run_folder.parent), "--format", "html")
    assert (
        "wrote learning-flow.html" in out
        and "the newest run in"
        in page_payload((tmp_path / "learning-flow.html").read_text(encoding="utf-8"))["source"]
    )
    cli(
        capsys,
        "explain",
        str(run_folder),
        "--format",
        "npz",
        "--out",
        "t.npz",
        "--optimizer",
        "adam",
        "--lr",
        "0.003",
    )
    with np.load(tmp_path / "t.npz") as a:
        meta = json.loads(a["__trace__"].tobytes())
    assert meta["optimizer"]["name"] == "Adam" and meta["lr"] == 0.003
    cli(capsys, "explain", "--format", "html", "--out", "seed.html")
    assert page_payload((tmp_path / "seed.html").read_text(encoding="utf-8"))["dtype"] == "exact"


def test_cli_explain_samples_given_as_npy(capsys, run_folder, tmp_path):
    x, y = lf.data.load_digits()
    np.save(tmp_path / "x.npy", x[:5].astype(np.float32))
    np.save(tmp_path / "y.npy", y[:5])
    args = [
        "explain",
        str(run_folder),
        "--data",
        str(tmp_path / "x.npy"),
        "--labels",
        str(tmp_path / "y.npy"),
    ]
    doc = json.loads(
        cli(capsys, *args, "--samples", "3,4", "--steps", "1", "--format", "json", "--lr", "0.5")
    )
    assert doc["samples"] == [{"index": 3, "label": int(y[3])}, {"index": 4, "label": int(y[4])}]
    assert doc["x"] == x[3:5].tolist() and doc["lr"] == 0.5
    doc = json.loads(
        cli(capsys, "explain", str(run_folder), "--dtype", "float64", "--steps", "1", "--format", "json")
    )
    assert doc["dtype"] == "float64"


def test_cli_explain_a_config(capsys):
    from pathlib import Path

    config = Path(__file__).resolve().parents[1] / "examples" / "mlp_digits.toml"
    text = cli(capsys, "explain", str(config), "--steps", "1", "--samples", "0-3")
    assert "batch size 4, 1 step" in text


def test_cli_errors_name_what_is_wrong(capsys, run_folder, tmp_path):
    # an error ends the command with a message and a non-zero exit code (learnflux --help lists them)
    assert main(["explain", str(tmp_path / "nothing")]) != 0
    assert "no such model file, run folder or config" in capsys.readouterr().err
    assert main(["explain", "--samples", "0,1"]) != 0
    assert "--samples applies to a MODEL" in capsys.readouterr().err
    assert main(["explain", str(run_folder), "--samples", "99999"]) != 0
    assert "numbered 0 to" in capsys.readouterr().err
    assert main(["explain", str(run_folder), "--optimizer", "newton"]) != 0
    assert "unknown; choose one of" in capsys.readouterr().err
    assert main(["explain", str(run_folder), "--dtype", "exact"]) != 0
    assert "cannot run in exact arithmetic" in capsys.readouterr().err
