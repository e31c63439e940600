"""Issue 9, the command line a newcomer follows and its traps, each with its regression test:
``train --download`` (against a local HTTP server, never the internet), the missing-files hint,
``predict --sample`` / ``--save-image``, runs that never overwrite another, ``evaluate --split
all``, ``evaluate`` on a model without its run folder, an optimizer over another model's
parameters, the default loss with class labels, and ``train --help`` generated from the real
defaults."""

from __future__ import annotations

import functools
import hashlib
import json
import re
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

import learnflux as lf
from learnflux.cli import main
from learnflux.config import (
    DATA_DEFAULTS,
    DEFAULT_CONFIG,
    OPTIMIZER_DEFAULT,
    TRAINING_DEFAULTS,
    build_model,
    default_config,
    load_config,
    load_data,
    parse_config,
)
from learnflux.data import datasets
from learnflux.errors import ConfigError, DataError, ShapeError

EXAMPLES = Path(__file__).parent.parent / "examples"

# a small MLP on the digits: a run takes a fraction of a second
MLP_DIGITS = """\
[data]
dataset = "digits"

[model]
[[model.layers]]
type = "Flatten"
[[model.layers]]
type = "Linear"
out_features = 10

[training]
epochs = 2
seed = 0
"""

MLP_MNIST = """\
[data]
dataset = "mnist"
root = "{root}"
{extra}

[model]
[[model.layers]]
type = "Flatten"
[[model.layers]]
type = "Linear"
out_features = 10

[training]
epochs = 1
"""

MNIST_NAMES = [n for split in ("train", "test") for n in datasets.MNIST_FILES[split]]


def _write_mnist(root: Path, n_train: int = 60, n_test: int = 20) -> None:
    """Small MNIST-format files (gzipped IDX): a bright bar whose row tells the class."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):
            images[i, 2 + 2 * label : 4 + 2 * label, 4:24] = 250
        lf.data.write_idx(root / f"{split}-images-idx3-ubyte.gz", images)
        lf.data.write_idx(root / f"{split}-labels-idx1-ubyte.gz", labels)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture
def mirror(tmp_path):
    """A local HTTP server serving MNIST-format files from tmp_path/served; yields
    ``(base_url, checksums, requests)``."""
    served = tmp_path / "served"
    _write_mnist(served)
    requests: list[str] = []

    class Handler(_Quiet):
        def do_GET(self):  # noqa: N802 (http.server's name)
            requests.append(self.path)
            super().do_GET()

    srv = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(served)))
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    checksums = {n: hashlib.sha256((served / n).read_bytes()).hexdigest() for n in MNIST_NAMES}
    yield f"http://127.0.0.1:{srv.server_address[1]}/", checksums, requests
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def _train(args) -> int:
    return main(["train", *args, "--quiet", "--no-plot"])


# ---------------------------------------------------------------------------- a. --download
def test_train_download_fetches_mnist_with_checksums(tmp_path, mirror, monkeypatch, capsys):
    base, checksums, requests = mirror
    root = tmp_path / "data" / "mnist"
    cfg = tmp_path / "mnist.toml"
    cfg.write_text(MLP_MNIST.format(root=root.as_posix(), extra=f'base_url = "{base}"'))
    # the official checksums reject files that are not the official ones: nothing is kept
    assert _train(["--config", str(cfg), "--download", "--out", str(tmp_path / "r0")]) == 2  # a config error
    err = capsys.readouterr().err
    assert "SHA-256 mismatch" in err and "train-images-idx3-ubyte.gz" in err
    assert not [p for p in root.iterdir() if not p.name.endswith(".part")]
    assert not (tmp_path / "r0").exists()
    # the same files, declared as the official ones (as they would be from a real mirror)
    monkeypatch.setitem(datasets.MNIST_SHA256, "mnist", checksums)
    assert _train(["--config", str(cfg), "--download", "--out", str(tmp_path / "r1")]) == 0
    assert sorted(p.name for p in root.iterdir()) == sorted(MNIST_NAMES)
    metrics = json.loads((tmp_path / "r1" / "metrics.json").read_text())
    assert metrics["samples"] == {"train": 51, "val": 9, "test": 20}
    # files present: --download fetches nothing again and does not re-verify them
    n = len(requests)
    assert _train(["--config", str(cfg), "--download", "--out", str(tmp_path / "r2")]) == 0
    assert len(requests) == n


def test_train_download_uses_the_official_mirrors_by_default(tmp_path, mirror, monkeypatch, capsys):
    base, checksums, _ = mirror
    monkeypatch.setitem(datasets.MNIST_MIRRORS, "mnist", (base + "missing/", base))
    monkeypatch.setitem(datasets.MNIST_SHA256, "mnist", checksums)
    root = tmp_path / "data" / "mnist"
    cfg = tmp_path / "mnist.toml"
    cfg.write_text(MLP_MNIST.format(root=root.as_posix(), extra=""))
    assert _train(["--config", str(cfg), "--download", "--out", str(tmp_path / "run")]) == 0
    assert sorted(p.name for p in root.iterdir()) == sorted(MNIST_NAMES)


def test_missing_mnist_files_hint_speaks_the_callers_language(tmp_path, capsys):
    root = tmp_path / "nothing"
    cfg = tmp_path / "mnist.toml"
    cfg.write_text(MLP_MNIST.format(root=root.as_posix(), extra=""))
    # command line: the flag
    assert _train(["--config", str(cfg), "--out", str(tmp_path / "run")]) == 2  # a config error
    err = capsys.readouterr().err
    assert "pass --download" in err and "download=True" not in err
    assert f"{cfg}:3: data.root:" in err and "train-images-idx3-ubyte.gz" in err
    assert not (tmp_path / "run").exists()
    # a config loaded from Python: the config key
    with pytest.raises(ConfigError, match=r"set download = true in \[data\]") as info:
        load_data(load_config(cfg))
    assert "--download" not in str(info.value)
    # load_mnist itself: its argument
    with pytest.raises(DataError, match="download=True"):
        lf.data.load_mnist(root)
    # evaluate --data mnist:DIR has the flag too
    model = tmp_path / "m.lf"
    lf.save(lf.Sequential(lf.Input((1, 28, 28)), lf.Flatten(), lf.Linear(784, 10)), model)
    assert main(["evaluate", str(model), "--data", f"mnist:{root}"]) == 2  # a config error
    assert "pass --download" in capsys.readouterr().err


# ---------------------------------------------------------------------------- b. predict --sample
@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("small")
    (folder / "mlp.toml").write_text(MLP_DIGITS)
    out = folder / "run"
    assert _train(["--config", str(folder / "mlp.toml"), "--out", str(out)]) == 0
    return out


def test_predict_sample_and_save_image(small_run, tmp_path, capsys):
    model_path = small_run / "model.lf"
    capsys.readouterr()
    png = tmp_path / "digit.png"
    assert main(["predict", str(model_path), "--sample", "3", "--save-image", str(png)]) == 0
    out = capsys.readouterr().out.splitlines()
    cfg = load_config(small_run / "config.toml")
    x_test, y_test = load_data(cfg).test
    predicted = int(lf.load(model_path).predict(x_test[3:4]).argmax())
    assert out[0] == f"wrote {png}: sample 3, label {y_test[3]}"
    assert out[1].startswith(f"sample 3: class {predicted} (p = ") and out[1].endswith(f"label {y_test[3]}")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from learnflux.cli.predict import load_image

    np.testing.assert_allclose(load_image(png, (1, 8, 8)), x_test[3], atol=1 / 255)
    assert main(["predict", str(model_path), str(png), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["class"] == predicted
    # --json keeps stdout to JSON lines
    assert main(["predict", str(model_path), "--sample", "0", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["sample"] == 0 and record["label"] == int(y_test[0])


def test_predict_sample_errors(small_run, tmp_path, capsys):
    model_path = str(small_run / "model.lf")
    capsys.readouterr()
    assert main(["predict", model_path]) == 2  # a config error
    assert "--sample N" in capsys.readouterr().err
    assert main(["predict", model_path, "x.npy", "--sample", "0"]) == 2  # a config error
    assert "not both" in capsys.readouterr().err
    assert main(["predict", model_path, "--sample", "5000"]) == 2  # a config error
    assert "numbered 0 to 269" in capsys.readouterr().err
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 8, 8), np.float32))
    assert main(["predict", model_path, str(tmp_path / "x.npy"), "--save-image", "d.png"]) == 2
    assert "needs --sample" in capsys.readouterr().err


# ---------------------------------------------------------------------------- c. no silent overwrite
def test_a_run_never_overwrites_another(tmp_path, capsys):
    cfg = tmp_path / "mlp.toml"
    cfg.write_text(MLP_DIGITS)
    out = tmp_path / "run"
    assert _train(["--config", str(cfg), "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert _train(["--config", str(cfg), "--out", str(out), "--seed", "1"]) == 2  # a config error
    err = capsys.readouterr().err
    assert f"run folder {out} (from --out) already holds config.toml" in err and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # untouched
    # --overwrite replaces the run, and its files only
    (out / "notes.txt").write_text("mine")
    (out / "curves.png").write_bytes(b"old")  # not drawn again with --no-plot: removed, not stale
    assert _train(["--config", str(cfg), "--out", str(out), "--seed", "1", "--overwrite"]) == 0
    assert json.loads((out / "metrics.json").read_text())["seed"] == 1
    assert (out / "notes.txt").read_text() == "mine" and not (out / "curves.png").exists()
    # [output] dir of a config: refused the same way, naming where the folder came from
    cfg.write_text(MLP_DIGITS + f'\n[output]\ndir = "{out.as_posix()}"\n')
    capsys.readouterr()
    assert _train(["--config", str(cfg)]) == 2  # a config error
    assert f"(from [output] dir of {cfg})" in capsys.readouterr().err
    # an empty folder is fine
    (tmp_path / "empty").mkdir()
    assert _train(["--config", str(cfg), "--out", str(tmp_path / "empty")]) == 0


def test_overrides_are_recorded_in_the_runs_config(tmp_path, capsys):
    """evaluate rebuilds the split from config.toml: a --seed override must be in it, else the
    evaluation would run on a split whose test part overlaps the run's training data."""
    cfg = tmp_path / "mlp.toml"
    cfg.write_text(MLP_DIGITS)
    out = tmp_path / "run"
    assert _train(["--config", str(cfg), "--out", str(out), "--seed", "3", "--lr", "0.01"]) == 0
    saved = load_config(out / "config.toml")
    assert saved.seed == 3 and saved.optimizer["args"]["lr"] == 0.01
    metrics = json.loads((out / "metrics.json").read_text())
    capsys.readouterr()
    assert main(["evaluate", str(out / "model.lf"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert "seed 3" in result["data"]
    assert result["accuracy"] == pytest.approx(metrics["test_accuracy"])


# ---------------------------------------------------------------------------- d. --split all
def test_evaluate_split_all_and_a_config_without_val_or_test(small_run, tmp_path, capsys):
    capsys.readouterr()
    assert main(["evaluate", str(small_run / "model.lf"), "--split", "all", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["samples"] == 1797
    text = MLP_DIGITS.replace('dataset = "digits"', 'dataset = "digits"\nval_fraction = 0\ntest_fraction = 0')
    ds = load_data(parse_config(text))
    assert ds.val is None and ds.test is None and ds.n_classes == 10 and len(ds.train[0]) == 1797
    (tmp_path / "all.toml").write_text(text)
    assert _train(["--config", str(tmp_path / "all.toml"), "--out", str(tmp_path / "run")]) == 0
    assert capsys.readouterr().out.startswith("no test split (test_fraction = 0): training accuracy: ")
    assert "test_accuracy" not in json.loads((tmp_path / "run" / "metrics.json").read_text())


# ---------------------------------------------------------------------------- e. model without its run
def test_evaluate_refuses_a_model_without_its_run_folder(tmp_path, capsys):
    x, y = lf.data.load_digits()
    model = lf.Sequential(lf.Input((1, 8, 8)), lf.Flatten(), lf.Linear(64, 10))
    model.fit(x, y, epochs=1, loss=lf.CrossEntropyLoss(), verbose=0)  # trained on every digit
    lf.save(model, tmp_path / "model.lf")
    assert main(["evaluate", str(tmp_path / "model.lf")]) == 2  # a config error
    err = capsys.readouterr().err
    assert "no config.toml beside the model" in err and "--data" in err
    assert main(["predict", str(tmp_path / "model.lf"), "--sample", "0"]) == 2  # a config error
    assert "no config.toml beside the model" in capsys.readouterr().err
    # said explicitly, it runs
    assert main(["evaluate", str(tmp_path / "model.lf"), "--data", "digits", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["samples"] == 270


# ---------------------------------------------------------------------------- f. foreign optimizer
def _mlp():
    return lf.Sequential(lf.Input(64), lf.Linear(64, 16), lf.ReLU(), lf.Linear(16, 10))


def test_fit_refuses_an_optimizer_over_another_models_parameters():
    x, y = lf.data.load_digits(images=False)
    model, other = _mlp(), _mlp()
    loss = lf.CrossEntropyLoss()
    with pytest.raises(ConfigError, match=r"none of which belong to the model being trained"):
        model.fit(x[:64], y[:64], loss=loss, optimizer=lf.SGD(other.parameters()), verbose=0)
    mixed = lf.SGD(model.parameters() + other.parameters())
    with pytest.raises(ConfigError, match=r"4 of the 8 parameters of the optimizer SGD do not belong"):
        model.fit(x[:64], y[:64], loss=loss, optimizer=mixed, verbose=0)
    with pytest.raises(ConfigError, match="none of which belong"):
        lf.Trainer(model, loss=loss, optimizer=lf.Adam(other.parameters())).fit(x[:64], y[:64])
    # a subset (the rest frozen), in parameter groups: allowed, and only it moves
    frozen = model.layers[1].weight.value.copy()
    head = model.layers[3].parameters()
    opt = lf.SGD([{"params": head[:1], "lr": 0.1}, {"params": head[1:]}], lr=0.05)
    model.fit(x[:64], y[:64], loss=loss, optimizer=opt, verbose=0)
    np.testing.assert_array_equal(model.layers[1].weight.value, frozen)


# ---------------------------------------------------------------------------- g. default loss
def test_default_loss_with_class_labels_points_to_cross_entropy():
    x, y = lf.data.load_digits(images=False)
    model = _mlp()
    with pytest.raises(ShapeError) as info:
        model.fit(x[:64], y[:64], verbose=0)
    text = str(info.value)
    assert "loss=lf.CrossEntropyLoss()" in text and "class labels" in text
    assert "no loss= was given: the default loss is SquaredError" in text
    # the loss alone says it too; numeric targets of the right shape keep working
    with pytest.raises(ShapeError, match=r"CrossEntropyLoss\(\)"):
        lf.SquaredError()(np.zeros((4, 10), np.float32), np.arange(4))
    model.fit(x[:64], np.eye(10, dtype=np.float32)[y[:64]], verbose=0)


# ---------------------------------------------------------------------------- h. help from defaults
def _help(capsys) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    return capsys.readouterr().out


def test_train_help_is_generated_from_the_real_defaults(capsys):
    text = _help(capsys)
    cfg = default_config()
    model = build_model(cfg, (1, 8, 8))
    n_params = sum(p.size for p in model.parameters())
    assert n_params == 21_418
    assert f"{n_params:,} parameters" in text
    flat = re.sub(r"\s+", " ", text)
    chain = " → ".join(repr(layer).replace("()", "") for layer in model.layers[1:])
    assert chain in flat  # every layer of the default model, in order
    assert "conv 16" not in text
    t = cfg.training
    assert f"{t['epochs']} epochs of batches of {t['batch_size']}, seed {t['seed']}" in text
    assert "CrossEntropyLoss(label_smoothing=0.1)" in text and "Adam(lr=0.003)" in text
    assert "--print-config` prints its config" in text and DEFAULT_CONFIG.count("[[model.layers]]") == 10
    # the defaults of the keys a config leaves out
    for key, value in {**DATA_DEFAULTS, **TRAINING_DEFAULTS}.items():
        if value is None:  # metrics: accuracy for class labels
            shown = '["accuracy"]'
        elif isinstance(value, bool):
            shown = "true" if value else "false"
        else:
            shown = f'"{value}"' if isinstance(value, str) else repr(value)
        assert re.search(rf"^  {key} = {re.escape(shown)}\s", text, re.M), key
    opt = OPTIMIZER_DEFAULT
    assert f"# default: {opt['type']}(lr={opt['args']['lr']})" in text
    # and those are what parsing gives
    bare = parse_config("[model]\n[[model.layers]]\ntype = 'Flatten'\n")
    assert {k: bare.data[k] for k in DATA_DEFAULTS} == DATA_DEFAULTS
    assert bare.training == TRAINING_DEFAULTS and bare.optimizer == OPTIMIZER_DEFAULT


def test_help_does_not_disturb_the_global_generator(capsys):
    lf.seed(5)
    first = lf.seeding.get_rng().random()
    lf.seed(5)
    _help(capsys)
    assert lf.seeding.get_rng().random() == first
