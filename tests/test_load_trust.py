"""Hostile, corrupt and oversized model files are refused cleanly and cheaply: one regression test
per class of escape found by the probe of issue 11 (a FileFormatError naming the file and the
entry, never another exception, in time and memory bounded by the file's real size), and saves
that leave nothing behind (temporary files, modes, symbolic links)."""

from __future__ import annotations

import inspect
import io
import json
import os
import stat
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

import learnflux as lf
import learnflux.files.io as lfio
from learnflux.errors import FileFormatError

from .fuzz_mutants import HEADER, MARKER_NAME, _Evil, header_of, members_of, npy, npy_raw, zip_of


def _cnn():
    lf.seed(0)
    return lf.Sequential(
        lf.Input((1, 8, 8)),
        lf.Conv2d(1, 4, 3, padding=1),
        lf.BatchNorm2d(4),
        lf.ReLU(),
        lf.MaxPool2d(2),
        lf.Flatten(),
        lf.Dropout(0.2),
        lf.Linear(64, 10),
    )


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "m.lf"
    lf.save(_cnn(), path)
    return path


def _with_header(path, change):
    data = path.read_bytes()
    header = header_of(data)
    change(header)
    members = members_of(data)
    members[HEADER + ".npy"] = npy(np.frombuffer(json.dumps(header).encode(), dtype=np.uint8))
    path.write_bytes(zip_of(list(members.items())))
    return path


def _with_member(path, name, blob):
    members = members_of(path.read_bytes())
    if blob is None:
        del members[name + ".npy"]
    else:
        members[name + ".npy"] = blob
    path.write_bytes(zip_of(list(members.items())))
    return path


def _refused(path, match, seconds=2.0):
    t0 = time.perf_counter()
    with pytest.raises(FileFormatError, match=match) as info:
        lf.load(path)
    assert time.perf_counter() - t0 < seconds
    assert str(path) in str(info.value)
    assert not getattr(info.value, "unexpected", None)
    return info.value


# ---------------------------------------------------------------------------- the archive
def test_a_corrupt_member_read_after_the_table_is_refused(saved):
    data = bytearray(saved.read_bytes())
    at = data.find(b"7.weight.npy") + 200  # inside the Linear's weights: the CRC no longer matches
    data[at] ^= 0xFF
    saved.write_bytes(bytes(data))
    _refused(saved, r"entry '7\.weight': is corrupt \(Bad CRC")


@pytest.mark.parametrize("cut", [10, 300, 2000, -30])
def test_truncated_files_are_refused(saved, cut):
    data = saved.read_bytes()
    saved.write_bytes(data[:cut])
    _refused(saved, "not a learnflux model file|corrupt|truncated|beyond the end")


def test_not_an_archive_and_not_a_regular_file(tmp_path):
    (tmp_path / "e.lf").write_bytes(b"")
    _refused(tmp_path / "e.lf", "not a zip archive")
    if os.path.exists("/dev/zero"):
        with pytest.raises(FileFormatError, match="not a regular file"):
            lf.load("/dev/zero")


def test_duplicate_encrypted_and_overlapping_members(saved):
    members = list(members_of(saved.read_bytes()).items())
    saved.write_bytes(zip_of(members + [members[1]]))
    _refused(saved, "appears twice")
    z = bytearray(zip_of(members))
    z[z.find(b"PK\x01\x02") + 8] |= 1
    saved.write_bytes(bytes(z))
    _refused(saved, "encrypted")
    z = bytearray(zip_of(members + [("dup.npy", members[0][1])]))
    first, last = z.find(b"PK\x01\x02"), z.rfind(b"PK\x01\x02")
    z[last + 42 : last + 46] = z[first + 42 : first + 46]
    saved.write_bytes(bytes(z))
    _refused(saved, "overlaps|corrupt|appears twice")


def test_many_extra_entries_are_refused_fast(saved):
    members = list(members_of(saved.read_bytes()).items())
    extra = npy(np.zeros(1, np.float32))
    saved.write_bytes(zip_of(members + [(f"x{i}.npy", extra) for i in range(20_000)]))
    _refused(saved, r"unexpected \['x0', 'x1'", seconds=5.0)


def test_a_zip_bomb_is_refused_before_it_is_inflated(saved):
    members = members_of(saved.read_bytes())
    n = 64 << 20
    members["7.bias.npy"] = npy_raw(
        f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({n // 4},), }}", bytes(n)
    )
    saved.write_bytes(zip_of(list(members.items()), zipfile.ZIP_DEFLATED))
    assert saved.stat().st_size < 200_000
    tracemalloc.start()
    try:
        _refused(saved, r"7\.bias.*shape \(16777216,\).*holds \(10,\)|expand to")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


def test_a_huge_whitespace_header_is_refused_unread(saved):
    raw = b" " * (40 << 20) + json.dumps(header_of(saved.read_bytes())).encode()
    members = members_of(saved.read_bytes())
    members[HEADER + ".npy"] = npy(np.frombuffer(raw, dtype=np.uint8))
    saved.write_bytes(zip_of(list(members.items()), zipfile.ZIP_DEFLATED))
    _refused(saved, r"the header is 41,9\d\d,\d\d\d bytes \(at most 8,388,608")


# ---------------------------------------------------------------------------- the header
@pytest.mark.parametrize(
    "change,match",
    [
        (lambda h: h.pop("model"), r"the header has no 'model' key"),
        (lambda h: h.update(version=2), "unsupported version 2"),
        (lambda h: h.update(dtype="float16"), "expected float32, float64 or exact"),
        (lambda h: h.update(extra=1), r"unknown header key\(s\) \['extra'\]"),
        (lambda h: h["model"]["config"]["layers"][7].update(config=[1]), r"layers\[7\]\.config'.*object"),
        (
            lambda h: h["model"]["config"]["layers"][7]["config"].update(in_features="64"),
            r"layers\[7\]\.config\.in_features': expected an integer, got '64'",
        ),
        (
            lambda h: h["model"]["config"]["layers"][7]["config"].update(in_features=10**11),
            r"in_features': 100000000000 is out of range",
        ),
        (
            lambda h: h["model"]["config"]["layers"][7]["config"].update(in_features=1e11),
            r"in_features': expected an integer, got 100000000000\.0",
        ),
        (lambda h: h["model"]["config"]["layers"][3].update({"class": "Activation"}), "abstract base class"),
        (
            lambda h: h["model"]["config"]["layers"][3].update({"class": "Layer"}),
            "unknown layer class 'Layer'",
        ),
        (lambda h: h["model"]["config"]["layers"][3].update({"class": "_BatchNorm"}), "abstract base class"),
        (
            lambda h: h["model"]["config"]["layers"][0]["config"].update(shape=[]),
            r"shape': expected null, a pos",
        ),
        (lambda h: h["model"]["config"]["layers"][6]["config"].update(rng=3), "takes no argument 'rng'"),
        (
            lambda h: h["model"]["config"]["layers"][1]["config"].update(padding=1000),
            "exceeds the kernel's reach",
        ),
        (lambda h: h["model"]["config"]["layers"][5]["config"].update(start_dim=10**9), "out of range"),
        (lambda h: h["model"]["config"]["layers"][6]["config"].update(p=2.0), r"Dropout: p must be"),
    ],
    ids=[
        "no-model",
        "version",
        "dtype",
        "unknown-key",
        "config-not-object",
        "string-size",
        "huge-size",
        "float-size",
        "abstract-activation",
        "layer-base",
        "private-base",
        "input-shape-empty",
        "rng",
        "padding",
        "axis",
        "constructor-check",
    ],
)
def test_header_values_are_checked_before_anything_is_built(saved, change, match):
    _with_header(saved, change)
    _refused(saved, match)


def test_json_traps(saved):
    text = json.dumps(header_of(saved.read_bytes()))
    for raw, match in [
        (text.replace('"version": 1', '"version": 1e9999999'), "overflows a float"),
        (text.replace('"version": 1', '"version": NaN'), "NaN is not a number"),
        (text.replace('"version": 1', '"version": ' + "9" * 5000), "5000 digits"),
        (text[:-1] + ', "version": 1}', "appears twice"),
        ("[" * 50_000 + "]" * 50_000, "nested too deeply|not a JSON object"),
        (text.encode("utf-16").decode("latin-1"), "not UTF-8|corrupt header"),
        ("[" + "{}," * 1_100_000 + "{}]", "objects and lists"),
    ]:
        raw_bytes = raw.encode("latin-1") if raw.startswith(("\xff", "\xfe")) else raw.encode()
        _with_member(saved, HEADER, npy(np.frombuffer(raw_bytes, dtype=np.uint8)))
        _refused(saved, match)


def test_graph_references_are_checked(tmp_path):
    x = lf.Input(3)
    y = lf.Linear(3, 2)(lf.Add()([x, lf.Linear(3, 3)(x)]))
    path = tmp_path / "g.lf"
    lf.save(lf.Model(x, y), path)
    for nodes_change, match in [
        (lambda n: n[1].update(inbound=[5]), "not an earlier node"),
        (lambda n: n[1].update(inbound=[-3]), r"numbered -1 to -n and all used, got \[-3, -1\]"),
        (lambda n: n[1].update(inbound=[0, 0]), "takes one input, got 2"),
        (lambda n: n[1].update(inbound=[]), "non-empty list"),
        (lambda n: n[1].update(inbound=["0"]), "not an earlier node"),
    ]:
        lf.save(lf.Model(x, y), path)
        _with_header(path, lambda h, c=nodes_change: c(h["model"]["config"]["nodes"]))
        _refused(path, match)


def test_nesting_depth_and_layer_count_are_bounded(tmp_path):
    path = tmp_path / "d.lf"
    spec = (
        '{"class": "Sequential", "config": {"layers": [' * 40 + '{"class": "ReLU", "config": {}}' + "]}}" * 40
    )
    text = '{"format": "learnflux", "version": 1, "dtype": "float32", "model": ' + spec + "}"
    path.write_bytes(zip_of([(HEADER + ".npy", npy(np.frombuffer(text.encode(), dtype=np.uint8)))]))
    _refused(path, "nested more than 32 deep")


def test_ten_thousand_layers_load_in_linear_time(tmp_path):
    model = lf.Sequential(lf.Input(4), *[lf.ReLU() for _ in range(10_000)])
    lf.save(model, tmp_path / "big.lf")
    t0 = time.perf_counter()
    loaded = lf.load(tmp_path / "big.lf")
    assert len(loaded.layers) == 10_001
    assert time.perf_counter() - t0 < 5  # about 0.5 s; was quadratic (about 10 s)


# ---------------------------------------------------------------------------- the arrays
@pytest.mark.parametrize(
    "array,match",
    [
        (np.zeros((10, 64), dtype="U4"), r"holds str\d+ values; the model computes in float32"),
        (np.zeros((10, 64), dtype="S4"), "holds bytes"),
        (np.zeros((10, 64), dtype="datetime64[s]"), "holds datetimes"),
        (np.zeros((10, 64), dtype=np.complex64), "holds complex numbers"),
        (np.zeros((10, 64), dtype=bool), "holds bool values"),
        (np.zeros((10, 64), dtype=np.float64), "holds float64 values; the model computes in float32"),
        (np.zeros((10, 64), dtype=[("a", "<f4")]), "raw or structured|malformed"),
        (np.zeros((64, 10), dtype=np.float32), r"shape \(64, 10\).*\(10, 64\)"),
        (np.zeros((10, 64, 1), dtype=np.float32), r"shape \(10, 64, 1\)"),
    ],
    ids=["str", "bytes", "datetime", "complex", "bool", "float64", "record", "transposed", "extra-dim"],
)
def test_only_the_models_own_float_dtype_and_shape(saved, array, match):
    _with_member(saved, "7.weight", npy(array))
    _refused(saved, match)


def test_a_pickle_is_refused_and_never_run(saved, tmp_path):
    obj = np.empty(1, dtype=object)
    obj[0] = _Evil(str(tmp_path))
    _with_member(saved, "7.weight", npy(obj, allow_pickle=True))
    _refused(saved, "Python objects")
    evil = tmp_path / "evil.lf"
    evil.write_bytes(zip_of([(HEADER + ".npy", npy(obj, allow_pickle=True))]))
    _refused(evil, "Python objects")
    import pickle

    (tmp_path / "raw.lf").write_bytes(pickle.dumps(_Evil(str(tmp_path))))
    _refused(tmp_path / "raw.lf", "not a zip archive")
    assert not (tmp_path / MARKER_NAME).exists()


def test_lying_npy_headers(saved):
    for header, match in [
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000), }", "holds 2,560 bytes"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (10, 64), 'x': __import__('os'), }", "malformed"),
        ("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", "Python objects"),
    ]:
        _with_member(saved, "7.weight", npy_raw(header, bytes(2560)))
        _refused(saved, match)


def test_non_finite_weights_and_statistics(saved):
    lf.load(saved)
    w = np.zeros((4,), np.float32)
    w[2] = np.nan
    _with_member(saved, "2.running_mean", npy(w))
    err = _refused(
        saved, r"entry '2\.running_mean' holds 1 non-finite value\(s\) \(first: nan at index \(2,\)\)"
    )
    assert "allow_non_finite=True" in str(err)
    model = lf.load(saved, allow_non_finite=True)
    assert np.isnan(model.layers[2].running_mean[2])
    _with_member(saved, "2.running_mean", npy(np.zeros(4, np.float32)))
    _with_member(saved, "2.running_var", npy(-np.ones(4, np.float32)))
    _refused(saved, "a variance must be >= 0")
    _with_member(saved, "2.running_var", npy(np.ones(4, np.float32)))
    _with_member(saved, "2.num_batches_tracked", npy(np.array(-1)))
    _refused(saved, "a count must be >= 0")


def test_exact_strings_are_bounded_and_strict(tmp_path):
    model = lf.Sequential(lf.Input(2), lf.Linear(2, 1)).astype("exact")
    path = tmp_path / "e.lf"
    for bad, match in [
        ("1/0", "divides by zero"),
        ("1e9999999", "is not an exact value"),
        (" 1/2", "is not an exact value"),
        ("9" * 5000, "is not an exact value"),
    ]:
        lf.save(model, path)
        _with_member(path, "1.bias", npy(np.array([bad])))
        _refused(path, match)
    lf.save(model, path)
    big = "1" + "0" * 9000
    _with_member(path, "1.bias", npy(np.array([big])))
    _refused(path, "strings of up to 9,001 characters")


def test_every_builtin_layer_with_weights_has_its_shapes_checked_before_building():
    """A layer whose constructor allocates weights or buffers must declare their shapes
    (Layer.state_shapes), so that a file's sizes are compared with its arrays before the
    constructor runs."""
    from learnflux.core.layer import LAYER_REGISTRY

    for name, cls in LAYER_REGISTRY.items():
        if not cls.__module__.startswith("learnflux.layers") or name.startswith("_"):
            continue
        source = "".join(
            inspect.getsource(k.__init__)
            for k in cls.__mro__
            if "__init__" in vars(k) and k not in (object, lf.Layer)
        )
        if "add_param" in source or "add_buffer" in source:
            declared = cls.state_shapes.__func__ is not lf.Layer.state_shapes.__func__
            assert declared, f"{name} allocates weights: declare them in {name}.state_shapes"


def test_round_trips_still_hold(tmp_path):
    model = _cnn()
    lf.save(model, tmp_path / "m.lf")
    back = lf.load(tmp_path / "m.lf")
    x = np.random.default_rng(0).random((3, 1, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(x), back.predict(x))
    mlp = lf.Sequential(lf.Input(6), lf.Linear(6, 5), lf.LayerNorm(5), lf.GELU(), lf.Linear(5, 2)).astype(
        "float64"
    )
    emb = lf.Sequential(lf.Embedding(7, 3), lf.Flatten(), lf.Linear(6, 2))
    for m in (mlp, emb):
        lf.save(m, tmp_path / "r.lf")
        assert {k: v.dtype for k, v in lf.load(tmp_path / "r.lf").state_dict().items()} == {
            k: v.dtype for k, v in m.state_dict().items()
        }


# ---------------------------------------------------------------------------- saves
def test_stale_temporaries_of_killed_writers_are_removed(tmp_path):
    path = tmp_path / "m.lf"
    dead = tmp_path / ".m.lf.4194999.deadbeef.tmp"  # above Linux's largest pid: no such process
    live = tmp_path / f".m.lf.{os.getppid()}.cafe0001.tmp"  # a running process's: kept
    old = tmp_path / ".m.lf.ab_cd123.tmp"  # tempfile.mkstemp's name (older saves), two hours old
    recent = tmp_path / ".m.lf.zz_cd123.tmp"
    other = tmp_path / ".other.lf.4194999.deadbeef.tmp"  # another file's: not ours to clean
    for p in (dead, live, old, recent, other):
        p.write_bytes(b"partial")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    lf.save(lf.Sequential(lf.Linear(2, 1)), path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["m.lf", live.name, recent.name, other.name])


def test_a_failed_write_removes_its_temporary(tmp_path):
    def boom(fh):
        fh.write(b"half")
        raise OSError("disk full (simulated)")

    with pytest.raises(OSError, match="simulated"):
        lfio.atomic_write(tmp_path / "f.bin", boom)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.name != "posix", reason="file modes")
def test_modes_follow_the_umask_and_an_existing_file_keeps_its_mode(tmp_path):
    model = lf.Sequential(lf.Linear(2, 1))
    old = os.umask(0o022)
    try:
        lf.save(model, tmp_path / "a.lf")
        assert stat.S_IMODE((tmp_path / "a.lf").stat().st_mode) == 0o644
        os.umask(0o077)
        lf.save(model, tmp_path / "b.lf")
        assert stat.S_IMODE((tmp_path / "b.lf").stat().st_mode) == 0o600
        os.chmod(tmp_path / "a.lf", 0o640)
        lf.save(model, tmp_path / "a.lf")
        assert stat.S_IMODE((tmp_path / "a.lf").stat().st_mode) == 0o640
    finally:
        os.umask(old)


@pytest.mark.skipif(os.name != "posix", reason="symbolic links")
def test_a_symlink_is_written_through(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "model.lf"
    lf.save(lf.Sequential(lf.Linear(2, 1)), target)
    link = tmp_path / "link.lf"
    link.symlink_to(target)
    lf.save(lf.Sequential(lf.Linear(2, 3)), link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert lf.load(target).layers[0].out_features == 3
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["model.lf"]


def test_the_folder_is_flushed_after_the_rename(tmp_path, monkeypatch):
    flushed = []
    monkeypatch.setattr(lfio, "_fsync_folder", lambda folder: flushed.append(folder))
    lf.save(lf.Sequential(lf.Linear(2, 1)), tmp_path / "m.lf")
    assert flushed == [tmp_path]


def test_saved_files_stay_plain_npz(saved):
    with np.load(saved, allow_pickle=False) as f:
        assert HEADER in f.files
    with zipfile.ZipFile(io.BytesIO(saved.read_bytes())) as z:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())


def test_a_custom_layer_round_trips_with_its_buffers(tmp_path):
    """A layer class of your own loads too: its arguments checked against its constructor, its
    arrays (here an integer and a boolean buffer) compared with the file's after it is built."""
    from learnflux.core.layer import LAYER_REGISTRY

    @lf.register_layer
    class TrustTestScale(lf.Layer):
        def __init__(self, units: int = 3, gain: float = 2.0) -> None:
            super().__init__()
            self.units, self.gain = units, gain
            self.add_param("weight", np.ones(units))
            self.add_buffer("offsets", np.array([-3, 0, 7]))
            self.add_buffer("mask", np.array([True, False, True]))

        def forward(self, x):
            return x * self.weight.value * self.gain

        def backward(self, delta_out, need_input_delta=True):
            return delta_out

        def get_config(self):
            return {"units": self.units, "gain": self.gain}

    try:
        model = lf.Sequential(lf.Input(3), TrustTestScale())
        lf.save(model, tmp_path / "c.lf")
        back = lf.load(tmp_path / "c.lf")
        assert back.layers[1].gain == 2.0
        assert back.layers[1]._buffers["offsets"].tolist() == [-3, 0, 7]
        assert back.layers[1]._buffers["mask"].tolist() == [True, False, True]
        _with_header(
            tmp_path / "c.lf", lambda h: h["model"]["config"]["layers"][1]["config"].update(gain="x")
        )
        _refused(tmp_path / "c.lf", r"layers\[1\]\.config\.gain': expected a number, got 'x'")
    finally:
        LAYER_REGISTRY.pop("TrustTestScale", None)
