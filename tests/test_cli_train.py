"""The `learnflux train / evaluate / predict / summary` commands, end to end on small runs."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import learnflux as lf
from learnflux.cli import main

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--epochs", "2", "--out", str(out)]) == 0
    return out


def test_train_writes_the_run_folder(run_dir, capsys):
    for name in ("model.lf", "metrics.json", "history.csv", "curves.png", "config.toml"):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"test_accuracy", "test_loss", "epochs", "seconds", "model_path"} <= set(metrics)
    assert metrics["epochs"] == 2 and metrics["samples"]["test"] == 270
    assert 0.5 < metrics["test_accuracy"] <= 1.0  # two epochs already learn most digits
    assert Path(metrics["model_path"]) == run_dir / "model.lf"
    with open(run_dir / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr"} <= set(rows[0])
    assert (run_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model = lf.load(run_dir / "model.lf")
    x, y = lf.data.load_digits()
    assert model.predict(x[:5]).shape == (5, 10)


def test_evaluate_reproduces_the_test_accuracy(run_dir, capsys):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    capsys.readouterr()
    assert main(["evaluate", str(run_dir / "model.lf"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["samples"] == 270
    assert result["accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert result["loss"] == pytest.approx(metrics["test_loss"], rel=1e-5)
    x, y = lf.data.load_digits()
    np.save(run_dir / "x.npy", x[:40])
    np.save(run_dir / "y.npy", y[:40])
    assert (
        main(
            [
                "evaluate",
                str(run_dir / "model.lf"),
                "--data",
                str(run_dir / "x.npy"),
                "--labels",
                str(run_dir / "y.npy"),
            ]
        )
        == 0
    )
    assert "40 samples: loss" in capsys.readouterr().out


def test_predict_on_arrays_and_images(run_dir, capsys):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model = lf.load(run_dir / "model.lf")
    x, _ = lf.data.load_digits()
    expected = model.predict(x[:3]).argmax(axis=1)
    np.save(run_dir / "three.npy", x[:3])
    np.save(run_dir / "one.npy", x[0])  # a single sample, without the batch axis
    capsys.readouterr()
    assert main(["predict", str(run_dir / "model.lf"), str(run_dir / "three.npy"), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["class"] for r in lines] == list(expected)
    assert len(lines[0]["top"]) == 3 and sum(p for _, p in lines[0]["top"]) <= 1.0 + 1e-9
    assert main(["predict", str(run_dir / "model.lf"), str(run_dir / "one.npy")]) == 0
    assert capsys.readouterr().out.startswith(f"sample 0: class {expected[0]} (p = ")
    # dark ink on white paper, 4× larger: grey, inverted and area-resized back to 8×8
    image = 1.0 - np.kron(x[0, 0], np.ones((4, 4)))
    plt.imsave(run_dir / "digit.png", image, cmap="gray", vmin=0, vmax=1)
    from learnflux.cli.predict import load_image

    loaded = load_image(run_dir / "digit.png", (1, 8, 8))
    np.testing.assert_allclose(loaded, x[0], atol=2 / 255)
    assert main(["predict", str(run_dir / "model.lf"), str(run_dir / "digit.png"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["class"] == expected[0]


def test_summary_of_a_model_and_of_a_config(run_dir, capsys):
    capsys.readouterr()
    assert main(["summary", str(run_dir / "model.lf")]) == 0
    text = capsys.readouterr().out
    assert "Conv2d(1 → 32" in text and "total" in text and "FLOPs" in text
    assert main(["summary", str(EXAMPLES / "mlp_digits.toml"), "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    # Flatten, Linear(64 → 128), ReLU, Dropout, Linear(128 → 10)
    assert table["total_params"] == 64 * 128 + 128 + 128 * 10 + 10
    assert table["total_flops"] == (2 * 64 * 128 + 128) + 128 + (2 * 128 * 10 + 10)
    assert table["layers"][-1]["output_shape"] == [10]


def test_config_errors_stop_before_training(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    text = (EXAMPLES / "mlp_digits.toml").read_text()
    bad.write_text(text.replace("out_features = 10", "out_features = 7"))
    out = tmp_path / "out"
    assert main(["train", "--config", str(bad), "--out", str(out)]) == 2  # a config error
    err = capsys.readouterr().err
    assert f"{bad}:" in err and "model.layers[4]" in err and "10 classes" in err
    assert not out.exists()  # nothing was trained or written


def test_a_per_step_schedule_lasts_as_many_updates_as_the_run_makes(tmp_path, capsys):
    # 1,297 training samples: 21 batches of 64 per epoch, in groups of 2 that is 11 updates (the
    # last group holds one batch); a schedule 10 updates per epoch long stopped the second epoch
    text = (EXAMPLES / "mlp_digits.toml").read_text().replace("batch_size = 32", "batch_size = 64")
    text = text.replace("epochs = 40", "epochs = 2\naccumulate = 2").replace('dir = "runs/mlp-digits"', "")
    text += '[schedule]\ntype = "OneCycleLR"\nmax_lr = 0.01\ninterval = "step"\n'
    (tmp_path / "c.toml").write_text(text)
    out = tmp_path / "run"
    args = ["train", "--config", str(tmp_path / "c.toml"), "--out", str(out), "--quiet", "--no-plot"]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["samples"]["train"] == 1297 and metrics["epochs"] == 2


def test_help_documents_the_config_format(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert "[[model.layers]]" in text and "metrics.json" in text and "curves.png" in text


def test_train_on_mnist_format_files(tmp_path, capsys):
    rng = np.random.default_rng(0)
    root = tmp_path / "mnist"
    root.mkdir()
    for split, n in (("train", 120), ("t10k", 30)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):  # a bright bar whose row tells the class
            images[i, 2 + 2 * label : 4 + 2 * label, 4:24] = 250
        lf.data.write_idx(root / f"{split}-images-idx3-ubyte.gz", images)
        lf.data.write_idx(root / f"{split}-labels-idx1-ubyte.gz", labels)
    cfg = (EXAMPLES / "cnn_mnist.toml").read_text().replace('root = "data/mnist"', f'root = "{root}"')
    (tmp_path / "mnist.toml").write_text(cfg)
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--config",
                str(tmp_path / "mnist.toml"),
                "--out",
                str(out),
                "--epochs",
                "1",
                "--no-plot",
                "--quiet",
            ]
        )
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["samples"] == {"train": 108, "val": 12, "test": 30}
    assert not (out / "curves.png").exists()
    assert capsys.readouterr().out.startswith("test accuracy: ")


def test_the_main_job_reaches_its_target(tmp_path, capsys):
    """`learnflux train` with no argument: the full default run (about 5 s) reaches 0.98."""
    assert main(["train", "--out", str(tmp_path), "--quiet", "--no-plot"]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["epochs"] == 30
    assert metrics["test_accuracy"] >= 0.98


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == f"learnflux {lf.__version__}"
    assert lines[1].startswith(f"kernels: {lf.info()['kernels']} (")  # which set runs, and why
