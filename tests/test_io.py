"""Save and load: one file, JSON architecture + arrays, no pickle, atomic."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest

import learnflux as lf
from learnflux.files import io as lfio

from .test_model import residual_model


def test_round_trip_gives_identical_outputs(tmp_path):
    model = lf.Sequential(lf.Input(3), lf.Linear(3, 4), lf.LeakyReLU(0.1), lf.Linear(4, 2, bias=False))
    path = tmp_path / "m.lf"
    lf.save(model, path)
    loaded = lf.load(path)
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(x), loaded.predict(x))
    assert repr(loaded) == repr(model)


def test_graph_model_and_float64_round_trip(tmp_path):
    model = residual_model().astype(np.float64)
    lf.save(model, tmp_path / "g.lf")
    loaded = lf.load(tmp_path / "g.lf")
    assert loaded.dtype == np.float64
    x = np.random.default_rng(1).standard_normal((2, 4))
    np.testing.assert_array_equal(model.predict(x), loaded.predict(x))


def test_exact_weights_survive_exactly(tmp_path):
    model = lf.Sequential(lf.Linear(3, 1, bias=False)).astype("exact")
    model.layers[0].weight.value = [[Fraction(1, 200), Fraction(-3, 11600), Fraction(1, 5800)]]
    lf.save(model, tmp_path / "e.lf")
    loaded = lf.load(tmp_path / "e.lf")
    assert list(loaded.layers[0].weight.value.reshape(-1)) == [
        Fraction(1, 200),
        Fraction(-3, 11600),
        Fraction(1, 5800),
    ]


def test_file_is_a_plain_npz_readable_without_pickle(tmp_path):
    lf.save(lf.Sequential(lf.Linear(2, 1)), tmp_path / "m.lf")
    with np.load(tmp_path / "m.lf", allow_pickle=False) as f:
        header = json.loads(f["__learnflux__"].tobytes())
        assert header["model"]["class"] == "Sequential"
        assert f["0.weight"].shape == (1, 2)


def test_a_crash_while_saving_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "m.lf"
    good = lf.Sequential(lf.Linear(2, 1))
    lf.save(good, path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(lfio.np, "savez", crash)
    with pytest.raises(OSError, match="simulated"):
        lf.save(lf.Sequential(lf.Linear(2, 1)), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.lf"]  # no temporary file left behind


def test_loading_garbage_or_a_pickle_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.lf"
    bad.write_bytes(b"not a zip")
    with pytest.raises(lf.ConfigError, match="not a learnflux model file"):
        lf.load(bad)
    # an npz holding an object array needs pickle: refused, never executed
    evil = tmp_path / "evil.npz"
    np.savez(evil, __learnflux__=np.array([object()], dtype=object))
    with pytest.raises(lf.ConfigError):
        lf.load(evil)


def test_unknown_layer_class_in_file(tmp_path):
    path = tmp_path / "u.lf"
    header = {
        "format": "learnflux",
        "version": 1,
        "dtype": "float32",
        "model": {"class": "NoSuchLayer", "config": {}},
    }
    with open(path, "wb") as fh:
        np.savez(fh, __learnflux__=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8))
    with pytest.raises(lf.ConfigError, match="unknown layer class 'NoSuchLayer'"):
        lf.load(path)


def _rewrite(path, change):
    """Rewrite the arrays of a saved file through ``change(dict) -> dict``."""
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    with open(path, "wb") as fh:
        np.savez(fh, **change(arrays))


def test_a_file_with_a_missing_or_extra_array_or_another_format_is_refused(tmp_path):
    path = tmp_path / "m.lf"
    lf.save(lf.Sequential(lf.Linear(2, 3), lf.ReLU(), lf.Linear(3, 1)), path)
    _rewrite(path, lambda a: {k: v for k, v in a.items() if k != "2.bias"})
    with pytest.raises(lf.ConfigError, match=r"2\.bias"):
        lf.load(path)  # never a model with one freshly initialised weight
    lf.save(lf.Sequential(lf.Linear(2, 3)), path)
    _rewrite(path, lambda a: {**a, "5.weight": np.zeros((1, 1), np.float32)})
    with pytest.raises(lf.ConfigError, match=r"5\.weight"):
        lf.load(path)

    def other_format(arrays):
        header = json.loads(arrays["__learnflux__"].tobytes())
        header["format"] = "something-else"
        return {**arrays, "__learnflux__": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}

    lf.save(lf.Sequential(lf.Linear(2, 3)), path)
    _rewrite(path, other_format)
    with pytest.raises(lf.ConfigError, match="something-else"):
        lf.load(path)


def test_loading_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        lf.load(tmp_path / "absent.lf")


def test_load_state_dict_copies_the_arrays():
    # as PyTorch: the model owns its weights; training it never writes into the caller's arrays
    source = lf.Sequential(lf.Linear(3, 2), lf.BatchNorm1d(2)).astype(np.float64)
    state = source.state_dict()
    saved = {k: v.copy() for k, v in state.items()}
    model = lf.Sequential(lf.Linear(3, 2), lf.BatchNorm1d(2)).astype(np.float64)
    model.load_state_dict(state)
    for name, value in model.state_dict().items():
        assert not np.shares_memory(value, state[name]), name
    opt = lf.SGD(model.parameters(), lr=0.5, momentum=0.9)
    x = np.random.default_rng(0).standard_normal((4, 3))
    for _ in range(2):
        out = model(x)
        model.backward(np.ones_like(out))
        opt.step()
    for name, value in state.items():
        np.testing.assert_array_equal(value, saved[name], err_msg=name)
    assert not np.array_equal(model.state_dict()["0.weight"], saved["0.weight"])  # it did train
