"""safetensors weights (learnflux.exchange.safetensors): round trips, PyTorch in both directions,
and what loading refuses (with the model left as it was)."""

from __future__ import annotations

import json
import os
import struct
import sys

import numpy as np
import pytest

import learnflux as lf

try:
    import safetensors.numpy as st_numpy
except ImportError:  # the `safetensors` extra is not installed
    st_numpy = None
try:
    import torch
except ImportError:
    torch = None

needs_st = pytest.mark.skipif(
    st_numpy is None, reason="safetensors (the `safetensors` extra) is not installed"
)
needs_torch = pytest.mark.skipif(torch is None or st_numpy is None, reason="PyTorch is not installed")


def cnn(seed=0):
    """A small CNN with batch norm whose running statistics have moved (non-trivial buffers)."""
    lf.seed(seed)
    model = lf.Sequential(
        lf.Input((1, 6, 6)),
        lf.Conv2d(1, 3, 3, padding=1),
        lf.BatchNorm2d(3),
        lf.ReLU(),
        lf.MaxPool2d(2),
        lf.Flatten(),
        lf.Linear(27, 4),
    )
    with model.training_phase():
        model(np.random.default_rng(seed).standard_normal((8, 1, 6, 6)))
    model.eval()
    return model


def x_sample(n=5):
    return np.random.default_rng(9).standard_normal((n, 1, 6, 6)).astype(np.float32)


def assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert set(sa) == set(sb)
    for key in sa:
        assert sa[key].dtype == sb[key].dtype, key
        np.testing.assert_array_equal(sa[key], sb[key], err_msg=key)


@needs_st
def test_round_trip(tmp_path):
    model, other = cnn(0), cnn(1)
    path = tmp_path / "w.safetensors"
    lf.save_safetensors(model, path, metadata={"note": "digits"})
    assert other.state_dict()["2.running_mean"].tolist() != model.state_dict()["2.running_mean"].tolist()
    lf.load_safetensors(other, path)
    assert_same_state(model, other)
    np.testing.assert_array_equal(other.predict(x_sample()), model.predict(x_sample()))
    stored = st_numpy.load_file(str(path))
    assert set(stored) == set(model.state_dict()) and stored["2.num_batches_tracked"].shape == ()
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
    assert meta["format"] == "pt" and meta["note"] == "digits" and meta["producer"].startswith("learnflux")


@needs_st
def test_float64_round_trip(tmp_path):
    model = cnn(0).astype("float64")
    lf.save_safetensors(model, tmp_path / "w.safetensors")
    other = cnn(1).astype("float64")
    lf.load_safetensors(other, tmp_path / "w.safetensors")
    assert_same_state(model, other)


@needs_torch
def test_learnflux_to_torch(tmp_path):
    from safetensors.torch import load_file

    model = cnn(0)
    lf.save_safetensors(model, tmp_path / "w.safetensors")
    module = lf.to_torch(cnn(1))
    module.load_state_dict(load_file(str(tmp_path / "w.safetensors")))
    module.eval()
    with torch.no_grad():
        out = module(torch.from_numpy(x_sample())).numpy()
    np.testing.assert_allclose(out, model.predict(x_sample()), rtol=1e-5, atol=1e-6)


@needs_torch
def test_torch_to_learnflux(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    module = lf.to_torch(cnn(1))
    with torch.no_grad():  # weights and statistics that are not learnflux's own
        for t in module.state_dict().values():
            if t.dtype.is_floating_point:
                t.uniform_(0.5, 1.5)
    module.eval()
    save_file(module.state_dict(), str(tmp_path / "t.safetensors"))
    model = cnn(0)
    lf.load_safetensors(model, tmp_path / "t.safetensors")
    with torch.no_grad():
        expected = module(torch.from_numpy(x_sample())).numpy()
    np.testing.assert_allclose(model.predict(x_sample()), expected, rtol=1e-5, atol=1e-6)
    assert int(model.state_dict()["2.num_batches_tracked"]) == int(
        module.state_dict()["2.num_batches_tracked"]
    )


def _write_raw(path, header: dict, data: bytes = b"", length=None):
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + data)


def _refused(model, path, match, **kwargs):
    """``load_safetensors`` refuses ``path`` with a FileFormatError matching ``match``, and the
    model keeps every value it had."""
    before = {k: v.copy() for k, v in model.state_dict().items()}
    with pytest.raises(lf.FileFormatError, match=match):
        lf.load_safetensors(model, path, **kwargs)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)


@needs_st
def test_corrupt_and_truncated_files(tmp_path):
    model = cnn(0)
    good = tmp_path / "good.safetensors"
    lf.save_safetensors(cnn(1), good)
    raw = good.read_bytes()
    bad = tmp_path / "bad.safetensors"
    for data, match in [
        (raw[: len(raw) - 7], "not a valid safetensors file .*incomplete metadata"),  # truncated data
        (raw[:5], "not a valid safetensors file .*header too small"),
        (b"", "not a valid safetensors file"),
        (b"PK\x03\x04" + raw[4:], "not a valid safetensors file"),  # a zip's magic number
        (raw[:8] + b"[" + raw[9:], "not a valid safetensors file"),  # the JSON broken
    ]:
        bad.write_bytes(data)
        _refused(model, bad, match)
    _write_raw(bad, {}, length=1 << 62)
    _refused(model, bad, "not a valid safetensors file .*header too large")
    header = {"0.weight": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 4_000_000]}}
    _write_raw(bad, header, b"\0" * 16)  # declares more than the file holds
    _refused(model, bad, "not a valid safetensors file")
    _refused(model, tmp_path, "not a regular file")
    with pytest.raises(FileNotFoundError):
        lf.load_safetensors(model, tmp_path / "missing.safetensors")


@needs_st
def test_names_shapes_and_dtypes_are_checked(tmp_path):
    model = cnn(0)
    path = tmp_path / "w.safetensors"
    wider = lf.Sequential(lf.Input((1, 6, 6)), lf.Conv2d(1, 4, 3, padding=1))
    lf.save_safetensors(wider, path)
    _refused(
        model,
        path,
        r"missing \['2.bias', '2.num_batches_tracked', '2.running_mean', '2.running_var', '2.weight'\] "
        r"\.\.\., unexpected \[\]",
    )
    _refused(
        model,
        path,
        r"entry '1.weight' has shape \(4, 1, 3, 3\), the model holds \(3, 1, 3, 3\)",
        strict=False,
    )
    state = {k: np.ascontiguousarray(v).reshape(v.shape) for k, v in model.state_dict().items()}
    st_numpy.save_file({**state, "9.weight": np.zeros(2, np.float32)}, str(path))
    _refused(model, path, r"missing \[\], unexpected \['9.weight'\]")
    st_numpy.save_file(
        {k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in state.items()}, str(path)
    )
    _refused(model, path, "entry '1.weight' holds float64 values; the model computes in float32")
    st_numpy.save_file({**state, "6.bias": state["6.bias"].astype(np.float16)}, str(path))
    _refused(model, path, "entry '6.bias' holds float16 values")
    st_numpy.save_file({**state, "2.num_batches_tracked": np.array(1.5, np.float32)}, str(path))
    _refused(model, path, "entry '2.num_batches_tracked' holds float32 values, not integers")
    st_numpy.save_file({**state, "2.num_batches_tracked": np.array(-1)}, str(path))
    _refused(model, path, "a count must be >= 0")
    st_numpy.save_file({**state, "2.running_var": -np.ones(3, np.float32)}, str(path))
    _refused(model, path, "a variance must be >= 0")
    nan = state["6.weight"].copy()
    nan[1, 2] = np.nan
    st_numpy.save_file({**state, "6.weight": nan}, str(path))
    _refused(model, path, r"entry '6.weight' holds 1 non-finite value\(s\) \(first: nan at index \(1, 2\)\)")
    lf.load_safetensors(model, path, allow_non_finite=True)
    assert np.isnan(model.state_dict()["6.weight"][1, 2])


@needs_st
def test_bfloat16_is_refused_before_reading(tmp_path):
    model = lf.Sequential(lf.Input(2), lf.Linear(2, 1, bias=False))
    path = tmp_path / "bf16.safetensors"
    _write_raw(path, {"1.weight": {"dtype": "BF16", "shape": [1, 2], "data_offsets": [0, 4]}}, b"\0" * 4)
    _refused(model, path, "entry '1.weight' holds BF16 values, which learnflux does not read")


@needs_st
def test_non_strict_loads_what_matches(tmp_path):
    model = cnn(0)
    state = {k: np.ascontiguousarray(v) for k, v in cnn(1).state_dict().items() if k.startswith("6.")}
    st_numpy.save_file({**state, "extra": np.zeros(1, np.float32)}, str(tmp_path / "w.safetensors"))
    conv_before = model.state_dict()["1.weight"].copy()
    lf.load_safetensors(model, tmp_path / "w.safetensors", strict=False)
    np.testing.assert_array_equal(model.state_dict()["6.weight"], state["6.weight"])
    np.testing.assert_array_equal(model.state_dict()["1.weight"], conv_before)


@needs_st
def test_exact_models_are_refused(tmp_path):
    model = lf.Sequential(lf.Input(2), lf.Linear(2, 1)).astype("exact")
    with pytest.raises(lf.DtypeError, match=r"astype\('float64'\)"):
        lf.save_safetensors(model, tmp_path / "w.safetensors")
    with pytest.raises(lf.DtypeError, match=r"astype\('float64'\)"):
        lf.load_safetensors(model, tmp_path / "w.safetensors")


@needs_st
def test_a_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "w.safetensors"
    lf.save_safetensors(cnn(0), path)
    before = path.read_bytes()

    def crash(*args):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        lf.save_safetensors(cnn(1), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["w.safetensors"]  # no temporary file left


def test_without_safetensors_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    with pytest.raises(lf.ConfigError, match=r"pip install 'learnflux\[safetensors\]'"):
        lf.save_safetensors(cnn(0), tmp_path / "w.safetensors")
