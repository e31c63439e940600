"""The character-level language model job: the embedded text, the vocabulary, the contiguous
split and the windows, the bits-per-character metric, the text dataset of a config,
``learnflux train`` on it (run folder, vocabulary in model.lf's metadata, the sample) and
``learnflux generate`` (sampling, its options, its errors)."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

import learnflux as lf
from learnflux.cli import main as cli_main
from learnflux.config import build_model, check_output, load_data, parse_config
from learnflux.data.text import (
    CharVocabulary,
    char_windows,
    load_text,
    split_text,
    text_dataset,
)
from learnflux.files.io import load_metadata
from learnflux.metrics import bits_per_char
from learnflux.sampling import generate

ROOT = Path(__file__).resolve().parent.parent

# a small model of the same shape as examples/charlm.toml's, trained on 64 windows for 1 epoch
TINY = """
[data]
dataset = "text"
context = 16
val_fraction = 0.02
test_fraction = 0.01
limit = 64

[model]
[[model.layers]]
type = "Embedding"
num_embeddings = 75
embedding_dim = 16
[[model.layers]]
type = "LearnedPositionalEmbedding"
max_len = 16
embedding_dim = 16
[[model.layers]]
type = "TransformerEncoderLayer"
nhead = 2
dim_feedforward = 32
dropout = 0.0
norm_first = true
is_causal = true
[[model.layers]]
type = "LayerNorm"
normalized_shape = [16]
[[model.layers]]
type = "Linear"
out_features = 75
[[model.layers]]
type = "Permute"
dims = [0, 2, 1]

[optimizer]
type = "Adam"
lr = 0.01

[training]
epochs = 1
batch_size = 16
"""


# ---------------------------------------------------------------------------- the text
def test_the_embedded_text_is_the_documented_file():
    text = load_text()
    assert len(text) == 684_768 and text.startswith("PRIDE AND PREJUDICE\n\nBy Jane Austen")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert (
        digest == "dfc684d4f857fa938268f9ab9c5567b64bd0691251eca959644adeabe6287a4d"
    )  # data/files/README.md
    readme = (ROOT / "src/learnflux/data/files/README.md").read_text(encoding="utf-8")
    assert digest in readme and "public domain" in readme
    with pytest.raises(
        lf.ConfigError, match=r"unknown text 'moby-dick'; embedded: \['pride-and-prejudice'\]"
    ):
        load_text("moby-dick")


# ---------------------------------------------------------------------------- vocabulary
def test_vocabulary_round_trip_and_its_metadata_form():
    text = load_text()
    vocab = CharVocabulary.from_text(text)
    assert len(vocab) == 75 and vocab.chars == "".join(sorted(set(text)))
    ids = vocab.encode(text)
    assert ids.dtype == np.int64 and ids.shape == (len(text),) and ids.max() == 74
    assert vocab.decode(ids) == text
    again = CharVocabulary.from_config(json.loads(json.dumps(vocab.to_config())))
    assert again == vocab and again.encode("Mr. Darcy").tolist() == vocab.encode("Mr. Darcy").tolist()


def test_vocabulary_errors_name_the_characters():
    vocab = CharVocabulary("abc ")
    with pytest.raises(
        lf.DataError,
        match=r"the prompt holds 2 characters the vocabulary lacks: 'é' \(first at position 1\), "
        r"'z' \(first at position 4\); the vocabulary's 4 characters are 'abc '",
    ):
        vocab.encode("cé bz", what="the prompt")
    with pytest.raises(lf.DataError, match=r"ids must be integers in \[0, 3\]"):
        vocab.decode([0, 4])
    with pytest.raises(lf.ConfigError, match="the character 'a' appears twice"):
        CharVocabulary("aba")
    with pytest.raises(lf.DataError, match="not a character vocabulary"):
        CharVocabulary.from_config({"kind": "words", "chars": "ab"})


# ---------------------------------------------------------------------------- split, windows
def test_the_split_is_contiguous_train_then_val_then_test():
    ids = np.arange(1000)
    train, val, test = split_text(ids, 0.1, 0.05)
    assert (len(train), len(val), len(test)) == (850, 100, 50)
    assert np.array_equal(np.concatenate([train, val, test]), ids)  # in order, nothing lost
    assert len(split_text(ids, 0.1, 0.0)[2]) == 0
    with pytest.raises(lf.ConfigError, match="must stay below 1"):
        split_text(ids, 0.5, 0.5)


def test_windows_tile_the_text_and_targets_are_shifted_by_one():
    ids = np.arange(20)
    x, y = char_windows(ids, 4)
    assert x.tolist()[:2] == [[0, 1, 2, 3], [4, 5, 6, 7]] and len(x) == 4  # 16..19 has no target for 19
    assert np.array_equal(y, x + 1)
    x2, y2 = char_windows(ids, 4, stride=2)
    assert x2[:, 0].tolist() == [0, 2, 4, 6, 8, 10, 12, 14] and np.array_equal(y2, x2 + 1)
    assert char_windows(np.arange(4), 4)[0].shape == (0, 4)  # no target for a lone window
    with pytest.raises(lf.ConfigError, match="context must be a positive integer"):
        char_windows(ids, 0)


def test_the_text_dataset_is_reproducible_and_fit_ready():
    a, b = text_dataset(context=32, val_fraction=0.1), text_dataset(context=32, val_fraction=0.1)
    assert np.array_equal(a.train[0], b.train[0]) and np.array_equal(a.val[1], b.val[1])
    assert a.sample_shape == (32,) and a.n_classes == 75 and a.test is None
    # windows back to back: the validation part is the last 10% of the novel
    n_val = round(684_768 * 0.1)
    assert len(a.val[0]) == (n_val - 1) // 32
    text, start = load_text(), 684_768 - n_val
    assert a.vocabulary.decode(a.val[0][0]) == text[start : start + 32]
    assert (
        a.vocabulary.decode(a.val[1][-1])
        == text[start + 32 * len(a.val[0]) - 31 : start + 32 * len(a.val[0]) + 1]
    )
    assert a.vocabulary.decode(a.train[0][0]) == text[:32]
    assert len(text_dataset(context=32, limit=10).train[0]) == 10


# ---------------------------------------------------------------------------- metric
def test_bits_per_char_is_the_cross_entropy_over_ln_2():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((3, 5, 7))  # (batch, classes, T)
    y = rng.integers(0, 5, (3, 7))
    loss = lf.CrossEntropyLoss()(logits, y)
    total, count = bits_per_char(logits, y)
    assert count == 21 and total / count == pytest.approx(loss / math.log(2), rel=1e-12)
    total2, count2 = bits_per_char(logits[:, :, 0], y[:, 0])  # (batch, classes)
    assert count2 == 3
    with pytest.raises(lf.ShapeError, match="bits_per_char needs logits"):
        bits_per_char(logits, y[:, :3])


# ---------------------------------------------------------------------------- config
def test_a_config_checks_the_text_keys_and_the_output_layout():
    with pytest.raises(lf.ConfigError, match=r"data.text: only a dataset \"text\" takes text"):
        parse_config(
            '[data]\ndataset = "digits"\ntext = "pride-and-prejudice"\n'
            '[model]\n[[model.layers]]\ntype = "Flatten"\n'
        )
    with pytest.raises(lf.ConfigError, match=r"data.context: expected a positive number of characters"):
        parse_config(TINY.replace("context = 16", "context = 0"))
    with pytest.raises(lf.ConfigError, match=r"unknown embedded text 'emma'"):
        parse_config(TINY.replace('dataset = "text"', 'dataset = "text"\ntext = "emma"'))
    cfg = parse_config(TINY.replace('[[model.layers]]\ntype = "Permute"\ndims = [0, 2, 1]\n', ""))
    data = load_data(cfg)
    with pytest.raises(
        lf.ConfigError,
        match=r"outputs shape \[16, 75\] but the data has 75 classes at each of the 16 positions"
        r".*Permute\(\[0, 2, 1\]\)",
    ):
        check_output(cfg, build_model(cfg, data.sample_shape), data)


def test_the_example_config_builds_the_documented_model():
    cfg = lf.config.load_config(ROOT / "examples" / "charlm.toml")
    model = build_model(cfg, (cfg.data["context"],))
    assert sum(int(p.size) for p in model.parameters()) == 622_539
    assert model.output_shape((64,)) == (75, 64)


# ---------------------------------------------------------------------------- train, generate
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("charlm")
    (folder / "tiny.toml").write_text(TINY, encoding="utf-8")
    out = folder / "run"
    assert (
        cli_main(["train", "--config", str(folder / "tiny.toml"), "--out", str(out), "--quiet", "--no-plot"])
        == 0
    )
    return out


def test_train_writes_the_run_folder_with_the_vocabulary_and_a_sample(tiny_run, capsys):
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    final = metrics["final"]
    assert final["val_bits_per_char"] == pytest.approx(final["val_loss"] / math.log(2), rel=1e-6)
    assert metrics["dataset"] == "text" and metrics["samples"]["train"] == 64
    meta = load_metadata(tiny_run / "model.lf")
    assert (
        meta["context"] == 16
        and CharVocabulary.from_config(meta["vocabulary"]) == text_dataset(context=16).vocabulary
    )
    sample = (tiny_run / "sample.txt").read_text(encoding="utf-8")
    assert sample == metrics["sample"]["prompt"] + metrics["sample"]["text"] + "\n"
    assert len(metrics["sample"]["text"]) == 300
    assert "history.csv" in [p.name for p in tiny_run.iterdir()]
    assert metrics["test_bits_per_char"] == pytest.approx(metrics["test_loss"] / math.log(2), rel=1e-6)


def test_evaluate_reports_bits_per_char_on_the_test_part(tiny_run, capsys):
    assert cli_main(["evaluate", str(tiny_run / "model.lf"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert result["bits_per_char"] == pytest.approx(metrics["test_bits_per_char"], rel=1e-6)
    assert result["samples"] == metrics["samples"]["test"] == (6848 - 1) // 16


def test_generate_samples_reproducibly(tiny_run, capsys):
    args = ["generate", str(tiny_run / "model.lf"), "--prompt", "It is a truth", "--length", "40"]
    assert cli_main([*args, "--seed", "3"]) == 0
    first = capsys.readouterr().out
    assert first.startswith("It is a truth") and len(first) == len("It is a truth") + 40 + 1
    assert cli_main([*args, "--seed", "3"]) == 0 and capsys.readouterr().out == first
    assert cli_main([*args, "--seed", "4", "--top-k", "1"]) == 0
    greedy = capsys.readouterr().out
    assert (
        cli_main([*args, "--temperature", "0"]) == 0 and capsys.readouterr().out == greedy
    )  # top-1 = argmax
    assert cli_main(["generate", str(tiny_run), "--length", "5", "--samples", "2"]) == 0  # the run folder
    assert capsys.readouterr().out.count("-" * 40) == 1


def test_generate_equals_reading_the_model_by_hand(tiny_run):
    """The sampler's window (text + filler in a causal model) gives the logits of the text alone
    run through the model's layers: greedy decoding by hand agrees."""
    model = lf.load(tiny_run / "model.lf")
    vocab = CharVocabulary.from_config(load_metadata(tiny_run / "model.lf")["vocabulary"])
    text = generate(model, vocab, "Elizabeth", length=12, temperature=0)
    ids = list(vocab.encode("Elizabeth"))
    with model.inference():
        for _ in range(12):
            out = np.asarray(ids[-16:])[None]
            for layer in model.layers[1:]:  # past the Input((16,)): any length up to 16
                out = layer.forward(out)
            ids.append(int(np.argmax(out[0, :, -1])))
    assert text == vocab.decode(ids[9:])


def test_generate_errors_are_clear(tiny_run, capsys, tmp_path):
    model = str(tiny_run / "model.lf")
    assert cli_main(["generate", model, "--prompt", "Ça coûte 5€"]) == 2
    err = capsys.readouterr().err
    assert "--prompt: the prompt holds 3 characters the vocabulary lacks: 'Ç' (first at position 0)" in err
    assert "Traceback" not in err
    digits = tmp_path / "digits.lf"
    lf.save(lf.Sequential(lf.Input(3), lf.Linear(3, 2)), digits)
    assert cli_main(["generate", str(digits)]) == 3
    assert "holds no vocabulary: it is not a language model" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["generate", model, "--temperature", "-1"])
    assert "must be a finite number >= 0" in capsys.readouterr().err


def test_a_model_that_looks_ahead_is_refused():
    vocab = CharVocabulary("abcd")
    lf.seed(0)
    model = lf.Sequential(
        lf.Input((8,)),
        lf.Embedding(4, 8),
        lf.TransformerEncoderLayer(8, 2, 16, dropout=0.0),  # not causal
        lf.Linear(8, 4),
        lf.Permute([0, 2, 1]),
    )
    with pytest.raises(lf.ConfigError, match="the model is not causal"):
        generate(model, vocab, "ab", length=3)


def test_save_keeps_plain_metadata_only(tmp_path):
    model = lf.Sequential(lf.Input(3), lf.Linear(3, 2))
    lf.save(model, tmp_path / "m.lf", metadata={"a": [1, "b", None]})
    assert load_metadata(tmp_path / "m.lf") == {"a": [1, "b", None]}
    assert lf.load(tmp_path / "m.lf").get_config() == model.get_config()
    lf.save(model, tmp_path / "n.lf")
    assert load_metadata(tmp_path / "n.lf") == {}
    with pytest.raises(lf.ConfigError, match="plain JSON data"):
        lf.save(model, tmp_path / "o.lf", metadata={"x": object()})
    with pytest.raises(lf.ConfigError, match="a dict with string keys"):
        lf.save(model, tmp_path / "o.lf", metadata={1: 2})


def test_the_docs_quote_the_committed_measurement():
    """README.md and docs/language-model.md quote benchmarks/results/charlm.json (written by
    `python -m benchmarks.charlm_torch`): rerunning it means updating them."""
    res = json.loads((ROOT / "benchmarks" / "results" / "charlm.json").read_text())
    run, same, budget = res["learnflux"], res["torch_same_steps"], res["torch_same_budget"]
    assert run["wall_s"] < 300  # the issue's budget: 5 minutes for the whole command
    assert abs(run["val_bits_per_char"] - same["val_bits_per_char"]) < 0.01  # the same computation
    page = (ROOT / "docs" / "language-model.md").read_text(encoding="utf-8")
    bpc, wall = run["val_bits_per_char"], run["wall_s"]
    assert f"| {bpc:.4f} ({run['epochs']} epochs) | {wall:.0f} s for the whole command |" in page
    assert f"| {same['val_bits_per_char']:.4f} | {same['train_s']:.0f} s of training |" in page
    assert (
        f"| {budget['val_bits_per_char']:.4f} ({budget['epochs']} epochs) | {budget['train_s']:.0f} s" in page
    )
    assert run["sample"]["prompt"] + run["sample"]["text"] in page
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    claim = f"It reaches {bpc:.2f} bits per character on the held-out last tenth of the novel in {wall:.0f} s"
    assert claim + "econds" in readme
    assert (
        f"reaches {budget['val_bits_per_char']:.2f} (it computes the same {same['epochs']} epochs" in readme
    )


def test_a_text_file_of_ones_own(tmp_path):
    path = tmp_path / "poem.txt"
    path.write_text("the cat sat on the mat\n" * 20, encoding="utf-8")
    data = text_dataset(path=path, context=8, val_fraction=0.25)
    assert data.vocabulary.chars == "\n acehmnost" and data.n_classes == 11
    assert data.vocabulary.decode(data.train[0][0]) == "the cat "
    path.write_bytes(b"caf\xe9")  # Latin-1, not UTF-8
    with pytest.raises(lf.DataError, match="not UTF-8 text"):
        text_dataset(path=path, context=2)
    with pytest.raises(lf.DataError, match="text: cannot read .*missing.txt"):
        text_dataset(path=tmp_path / "missing.txt")
    path.write_text("abc", encoding="utf-8")
    with pytest.raises(lf.DataError, match="shorter than one window of context = 8"):
        text_dataset(path=path, context=8, val_fraction=0.0)
