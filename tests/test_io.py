"""Save and load: one file, JSON architecture + arrays, no pickle, atomic."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest

import learnflux as lf
from learnflux import io as lfio

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


def test_loading_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        lf.load(tmp_path / "absent.lf")
