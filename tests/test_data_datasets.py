"""Datasets: embedded digits, IDX files, MNIST-format folders, CSV files (no network)."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

import learnflux as lf
from learnflux.data import MNIST_SHA256, load_csv, load_digits, load_mnist, read_idx, sha256_file, write_idx
from learnflux.errors import ConfigError, DataError

# ---------------------------------------------------------------- digits


def test_digits_shapes_dtypes_and_range():
    x, y = load_digits()
    assert x.shape == (1797, 1, 8, 8) and x.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_array_equal(np.unique(y), np.arange(10))
    flat, y2 = load_digits(images=False)
    assert flat.shape == (1797, 64) and flat.dtype == np.float32
    np.testing.assert_array_equal(flat, x.reshape(1797, 64))
    np.testing.assert_array_equal(y, y2)
    flat[0, 0] = 5.0  # each call returns fresh arrays
    assert load_digits(images=False)[0][0, 0] == 0.0
    assert lf.data.load_digits is load_digits


def test_digits_equal_scikit_learns_exactly():
    datasets = pytest.importorskip("sklearn.datasets")
    ref = datasets.load_digits()
    x, y = load_digits()
    np.testing.assert_array_equal(x.reshape(1797, 64).astype(np.float64) * 16, ref.data)
    np.testing.assert_array_equal(x[:, 0], ref.images / 16)  # same row-major image layout
    np.testing.assert_array_equal(y, ref.target)


# ---------------------------------------------------------------- IDX


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path, dtype, compress):
    rng = np.random.default_rng(0)
    a = (rng.standard_normal((3, 4, 5)) * 50).astype(dtype)
    path = tmp_path / ("a.idx.gz" if compress else "a.idx")
    write_idx(path, a)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == compress
    b = read_idx(path)
    assert b.dtype == np.dtype(dtype) and b.shape == a.shape and b.flags.writeable
    np.testing.assert_array_equal(a, b)


def test_idx_reads_big_endian_bytes_written_by_hand(tmp_path):
    # int32 values 1 and 256, shape (2,): magic 0x00000C01, dim 2, then big-endian data
    raw = bytes([0, 0, 0x0C, 1]) + struct.pack(">I", 2) + struct.pack(">ii", 1, 256)
    (tmp_path / "v").write_bytes(raw)
    np.testing.assert_array_equal(read_idx(tmp_path / "v"), [1, 256])
    (tmp_path / "v.gz").write_bytes(gzip.compress(raw))  # compression detected from the content
    np.testing.assert_array_equal(read_idx(tmp_path / "v.gz"), [1, 256])


def test_idx_errors(tmp_path):
    good = bytes([0, 0, 8, 2]) + struct.pack(">II", 2, 3) + bytes(range(6))
    cases = {
        "truncated": (good[:-2], "truncated"),
        "trailing": (good + b"\x00", "trailing"),
        "magic": (b"\x01\x02" + good[2:], "not an IDX file"),
        "dtype": (bytes([0, 0, 0x07, 2]) + good[4:], "type code 0x07"),
        "dims": (good[:6], "truncated.*dimensions"),
        "empty": (b"", "truncated.*magic"),
    }
    for name, (content, pattern) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(DataError, match=pattern) as info:
            read_idx(path)
        assert name in str(info.value)  # the message names the file
        gz = tmp_path / (name + ".gz")
        gz.write_bytes(gzip.compress(content))
        with pytest.raises(DataError, match=pattern):
            read_idx(gz)
    cut = tmp_path / "cut.gz"
    cut.write_bytes(gzip.compress(good)[:-10])  # a gzip stream cut short
    with pytest.raises(DataError, match="gzip|truncated"):
        read_idx(cut)
    bad_crc = bytearray(gzip.compress(good))
    bad_crc[-6] ^= 0xFF  # damage the CRC
    (tmp_path / "crc.gz").write_bytes(bytes(bad_crc))
    with pytest.raises(DataError, match="gzip"):
        read_idx(tmp_path / "crc.gz")
    huge = tmp_path / "huge.gz"  # a header claiming 2**62 bytes: refused, not allocated
    huge.write_bytes(gzip.compress(bytes([0, 0, 8, 2]) + struct.pack(">II", 2**31, 2**31)))
    with pytest.raises(DataError, match="too large"):
        read_idx(huge)
    with pytest.raises(DataError, match="no such"):
        read_idx(tmp_path / "missing")


# ---------------------------------------------------------------- MNIST-format folders


def make_mnist_files(folder, n=12, rows=28, cols=28, seed=0, split="train", compress=True):
    """Write small MNIST-format IDX files (the standard names); returns (images, labels)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, rows, cols), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    prefix = "train" if split == "train" else "t10k"
    suffix = ".gz" if compress else ""
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
    return images, labels


@pytest.mark.parametrize("compress", [True, False])
def test_load_mnist_from_local_files(tmp_path, compress):
    images, labels = make_mnist_files(tmp_path, n=12, split="test", compress=compress)
    x, y = load_mnist(tmp_path, split="test")
    assert x.shape == (12, 1, 28, 28) and x.dtype == np.float32
    assert y.dtype == np.int64
    np.testing.assert_array_equal(x[:, 0], images.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(y, labels)
    assert x.min() >= 0 and x.max() <= 1
    # torchvision's layout is found too, for either kind
    make_mnist_files(tmp_path / "tv" / "FashionMNIST" / "raw", n=5, split="train")
    xf, yf = load_mnist(tmp_path / "tv", split="train", kind="fashion")
    assert xf.shape == (5, 1, 28, 28)


def test_load_mnist_errors(tmp_path):
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz.*not found.*download=True"):
        load_mnist(tmp_path)
    with pytest.raises(ConfigError, match="split"):
        load_mnist(tmp_path, split="valid")
    with pytest.raises(ConfigError, match="kind"):
        load_mnist(tmp_path, kind="kmnist")
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((3, 28, 28), np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(4, np.uint8))
    with pytest.raises(DataError, match="expected 3 labels"):
        load_mnist(tmp_path)


def test_official_checksum_table_is_complete_and_well_formed():
    for kind in ("mnist", "fashion"):
        assert set(MNIST_SHA256[kind]) == {
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
        }
        for name, digest in MNIST_SHA256[kind].items():
            # every official file has its checksum: a missing one would skip the verification
            assert isinstance(digest, str), f"{kind}/{name}: no checksum"
            assert len(digest) == 64 and set(digest) <= set("0123456789abcdef"), f"{kind}/{name}"
    assert MNIST_SHA256["mnist"]["train-images-idx3-ubyte.gz"].startswith("440fcabf")


def test_sha256_file(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    assert sha256_file(tmp_path / "f") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


# ---------------------------------------------------------------- CSV


def test_csv_numeric_with_header_and_target_by_name_and_index(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,label\n1,2,0\n3.5,-4,1\n\n5,6e1,2\n")
    x, y = load_csv(path)
    assert x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(x, [[1, 2], [3.5, -4], [5, 60]])
    np.testing.assert_array_equal(y, [0, 1, 2])
    x2, y2 = load_csv(path, target="a", dtype=np.float64)
    assert x2.dtype == np.float64
    np.testing.assert_array_equal(x2, [[2, 0], [-4, 1], [60, 2]])
    np.testing.assert_array_equal(y2, [1, 3.5, 5])
    assert y2.dtype == np.float64  # not all whole numbers: a regression target in dtype
    _, yb = load_csv(path, target="b")
    assert yb.dtype == np.int64  # whole numbers: class labels
    x3, y3 = load_csv(path, target=None)
    assert x3.shape == (3, 3) and y3 is None
    x4, y4 = load_csv(path, target=0, target_dtype=np.float32)
    assert y4.dtype == np.float32


def test_csv_without_header_regression_target_and_delimiter(tmp_path):
    path = tmp_path / "r.tsv"
    path.write_text("1\t2\t0.5\n3\t4\t1.25\n")
    x, y = load_csv(path, delimiter="\t")
    np.testing.assert_array_equal(x, [[1, 2], [3, 4]])
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, [0.5, 1.25])
    with pytest.raises(ConfigError, match="no header"):
        load_csv(path, target="y", delimiter="\t")


def test_csv_class_names_and_gzip(tmp_path):
    path = tmp_path / "iris.csv.gz"
    path.write_bytes(gzip.compress(b'w,h,species\n1,2,"setosa"\n3,4,virginica\n5,6,setosa\n'))
    x, y, classes = load_csv(path, target="species", return_classes=True)
    assert classes == ["setosa", "virginica"]
    np.testing.assert_array_equal(y, [0, 1, 0])
    np.testing.assert_array_equal(x, [[1, 2], [3, 4], [5, 6]])


def test_csv_errors_name_file_line_and_column(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b,y\n1,2,0\n\n3,x,1\n")
    with pytest.raises(DataError, match=r"bad\.csv, line 4, column 1 \('b'\): 'x' is not a number"):
        load_csv(path)
    path.write_text("a,b,y\n1,2,0\n1,2\n")
    with pytest.raises(DataError, match=r"bad\.csv, line 3: expected 3 fields, got 2"):
        load_csv(path)
    path.write_text("1,,0\n")
    with pytest.raises(DataError, match="line 1, column 1: an empty field"):
        load_csv(path, header=False)
    with pytest.raises(DataError, match="line 1, column 1: an empty field"):
        load_csv(path)  # an empty field does not make the first row a header
    path.write_text("a,b,y\n1,2,0\n")
    with pytest.raises(ConfigError, match="no column named 'z'"):
        load_csv(path, target="z")
    path.write_text("a,b\n")
    with pytest.raises(DataError, match="no data rows"):
        load_csv(path)
    path.write_text("a,b,y\n1,2,0\n")
    with pytest.raises(ConfigError, match="out of range"):
        load_csv(path, target=5)
    with pytest.raises(DataError, match="cannot read"):
        load_csv(tmp_path / "nope.csv")
