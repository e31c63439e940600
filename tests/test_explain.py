"""``learnflux explain``: the seed's worked example replayed by the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction as F
from pathlib import Path

import pytest

from learnflux.cli import main

ARTICLE_FINAL = ["1/200", "23199997/11600", "17400001/5800"]


def explain(capsys, *args: str) -> str:
    rc = main(["explain", *args])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    return captured.out


def explain_json(capsys, *args: str) -> dict:
    return json.loads(explain(capsys, *args, "--format", "json"))


def test_text_replays_the_article(capsys):
    out = explain(capsys)
    assert "replayed in exact arithmetic" in out
    # the forward table before training
    assert "│ x                │ o1               │ o2  │ o3  │ y   │ loss" in out
    assert "3      │ (0, 2000, 3000)  │ (0, 2000, 3000)  │ (0) │ (0) │ (1) │ 1/2 ≈ 0.5" in out
    # every step with δ4, δ3, δ2, δ1, δw2, ŵ2, their formulas and a line of explanation
    assert out.count("Step ") == 3
    for line in (
        "δ4   o3 − y               = (-1)",
        "δ3   δ4 if o2 ≥ 0 else 0  = (-1)",
        "δ2   δ3 · w2              = (-1/200, 3/11600, -1/5800) ≈ (-0.005, 0.00025862069, -0.000172413793)",
        "δw2  δ3 · o1              = (0, -2000, -3000)",
        "ŵ2   w2 − α·δw2           = (1/200, 23199997/11600, 17400001/5800) ≈ (0.005, "
        "1999.99974, 3000.00017)",
    ):
        assert line in out, line
    assert "ReLU's derivative at 0 is 1" in out
    assert "nothing to learn, w2 is unchanged" in out
    # the forward table after training
    after = out.split("3. Forward pass after training")[1]
    assert "(4300000)" in after and "(13000000)" in after
    assert "Final weights: w2 = (1/200, 23199997/11600, 17400001/5800)" in after


def test_markdown(capsys):
    out = explain(capsys, "--format", "markdown")
    assert out.startswith("## learnflux explain")
    assert "| sample | x | o1 | o2 | o3 | y | loss |" in out
    assert "| 3 | (0, 2000, 3000) | (0, 2000, 3000) | (0) | (0) | (1) | 1/2 ≈ 0.5 |" in out
    assert "| `δ3` | `δ4 if o2 ≥ 0 else 0` | (-1) |" in out
    assert (
        "| `ŵ2` | `w2 − α·δw2` | (1/200, 23199997/11600, 17400001/5800) ≈ (0.005, 1999.99974, 3000.00017) |"
    ) in out
    assert "### 3. Forward pass after training" in out


def test_json_contract(capsys):
    doc = explain_json(capsys)
    assert doc["dtype"] == "exact" and doc["lr"] == "1" and doc["batch_size"] == 1
    assert len(doc["steps"]) == 3
    for i, step in enumerate(doc["steps"]):
        assert step["epoch"] == 1 and step["samples"] == [i]
        assert set(step["outputs"]) == {"o1", "o2", "o3"}
        assert set(step["deltas"]) == {"d1", "d2", "d3", "d4"}
        assert set(step["grads"]) == {"w2"} and set(step["weights_after"]) == {"w2"}
        assert len(step["grads"]["w2"]) == 3 and len(step["weights_after"]["w2"]) == 3
    s3 = doc["steps"][2]
    assert s3["outputs"] == {"o1": [["0", "2000", "3000"]], "o2": [["0"]], "o3": [["0"]]}
    assert s3["loss"] == "1/2"
    assert s3["deltas"]["d4"] == [["-1"]] and s3["deltas"]["d3"] == [["-1"]]
    assert s3["deltas"]["d2"] == [["-1/200", "3/11600", "-1/5800"]] == s3["deltas"]["d1"]
    assert s3["grads"]["w2"] == ["0", "-2000", "-3000"]
    assert s3["weights_after"]["w2"] == ARTICLE_FINAL
    assert doc["steps"][0]["weights_after"]["w2"] == ["1/200", "-3/11600", "1/5800"]
    final = doc["final"]
    assert final["weights"]["w2"] == ARTICLE_FINAL
    assert final["outputs"]["o3"] == [["4300000"], ["1"], ["13000000"]]
    assert final["losses"] == ["9245000000000", "0", "168999974000001/2"]


def test_lr_1e_7_is_exact(capsys):
    doc = explain_json(capsys, "--lr", "1e-7")
    assert doc["lr"] == "1/10000000"
    assert doc["final"]["weights"]["w2"] == ["1/200", "-17/290000", "137/290000"]
    text = explain(capsys, "--lr", "1e-7")
    assert "(1/200, -17/290000, 137/290000) ≈ (0.005, -5.86206897e-05, 0.000472413793)" in text


def test_batch_size_3_gives_one_step_with_the_mean_gradient(capsys):
    doc = explain_json(capsys, "--batch-size", "3")
    assert doc["batch_size"] == 3 and len(doc["steps"]) == 1
    step = doc["steps"][0]
    assert step["samples"] == [0, 1, 2]
    assert step["loss"] == "1/6"  # the batch mean
    assert step["deltas"]["d4"] == [["0"], ["0"], ["-1/3"]]  # 1/n once, in the loss δ
    assert step["grads"]["w2"] == ["0", "-2000/3", "-1000"]  # mean of the per-sample gradients
    expected = [F(1, 200), F(-3, 11600) + F(2000, 3), F(1, 5800) + 1000]
    assert step["weights_after"]["w2"] == [str(v) for v in expected]
    text = explain(capsys, "--batch-size", "3")
    assert "(1/n)(o3 − y)" in text and "Σ_batch δ3 · o1" in text
    assert "sample 3: (-1/3) ≈ (-0.333333333)" in text


def test_two_epochs(capsys):
    doc = explain_json(capsys, "--epochs", "2")
    assert [s["epoch"] for s in doc["steps"]] == [1, 1, 1, 2, 2, 2]
    assert [s["samples"] for s in doc["steps"]] == [[0], [1], [2]] * 2
    assert doc["steps"][2]["weights_after"]["w2"] == ARTICLE_FINAL
    assert doc["steps"][3]["outputs"]["o2"] == [["4300000"]]  # epoch 2 starts from epoch 1's w2
    assert "epoch 2 · sample 1" in explain(capsys, "--epochs", "2")


def test_float64_explains_why_nothing_is_learned(capsys):
    out = explain(capsys, "--dtype", "float64")
    assert "replayed in float64" in out
    assert "4. float64 versus exact arithmetic: how and why they differ" in out
    assert "53 significant bits" in out
    assert "Step 3 (sample 3): exact o2 = 0, float64 o2 = -" in out
    assert "ReLU blocks the flow: δ3 = 0 instead of -1" in out
    assert "float64 does not reproduce the exact result" in out
    doc = explain_json(capsys, "--dtype", "float64")
    assert doc["dtype"] == "float64" and doc["lr"] == 1.0
    assert doc["final"]["weights"]["w2"] == [1 / 200, -3000 / 11600000, 1 / 5800]
    assert doc["steps"][2]["deltas"]["d3"] == [[0.0]]
    assert any("ReLU" in note for note in doc["notes"])


def test_float32_explains_the_rounding_residues(capsys):
    out = explain(capsys, "--dtype", "float32")
    assert "4. float32 versus exact arithmetic" in out
    assert "24 significant bits" in out
    assert "Step 1 (sample 1): exact o2 = 0, float32 o2 = " in out
    doc = explain_json(capsys, "--dtype", "float32", "--lr", "1e-7")
    assert doc["lr"] == pytest.approx(1e-7)
    w = doc["final"]["weights"]["w2"]
    assert w == pytest.approx([1 / 200, -17 / 290000, 137 / 290000], rel=1e-6)
    assert "float32 reproduces the exact result approximately" in " ".join(doc["notes"])


def test_bad_arguments(capsys):
    assert main(["explain", "--lr", "fast"]) == 2  # a config error
    assert "not a number" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["explain", "--batch-size", "0"])
    with pytest.raises(SystemExit):
        main(["explain", "--dtype", "float16"])
    capsys.readouterr()


def test_the_installed_command_runs():
    script = Path(sys.executable).with_name("learnflux")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "learnflux"]
    done = subprocess.run([*cmd, "explain"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Final weights: w2 = (1/200, 23199997/11600, 17400001/5800)" in done.stdout


def test_docs_show_the_real_output(capsys):
    doc = Path(__file__).resolve().parents[1] / "docs" / "explain.md"
    assert explain(capsys).rstrip() in doc.read_text(encoding="utf-8")
