"""Batching (ArrayLoader), train/val(/test) splits and the Standardizer."""

from __future__ import annotations

import json

import numpy as np
import pytest

import learnflux as lf
from learnflux.data import ArrayLoader, Standardizer, train_val_split, train_val_test_split
from learnflux.errors import ConfigError, DataError, NonFiniteError, ShapeError


def _data(n=10, d=3):
    x = np.arange(n * d, dtype=np.float32).reshape(n, d)
    y = np.arange(n, dtype=np.int64)
    return x, y


# ---------------------------------------------------------------- ArrayLoader


def test_batches_cover_every_sample_once_in_order_without_shuffle():
    x, y = _data(10)
    loader = ArrayLoader(x, y, batch_size=4, shuffle=False)
    assert len(loader) == 3
    batches = list(loader)
    assert [len(xb) for xb, _ in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([yb for _, yb in batches]), y)
    for xb, yb in batches:
        np.testing.assert_array_equal(xb, x[yb])
    # without shuffling a batch is a view of x: no copy at all
    assert np.shares_memory(batches[0][0], x)


def test_drop_last_and_len():
    x, y = _data(10)
    loader = ArrayLoader(x, y, batch_size=4, shuffle=True, drop_last=True, seed=0)
    assert len(loader) == 2
    batches = list(loader)
    assert [len(xb) for xb, _ in batches] == [4, 4]
    assert len(np.unique(np.concatenate([yb for _, yb in batches]))) == 8
    assert len(ArrayLoader(x, y, batch_size=10, drop_last=True)) == 1
    assert len(ArrayLoader(x, y, batch_size=11, drop_last=True)) == 0
    assert list(ArrayLoader(x, y, batch_size=11, drop_last=True)) == []
    assert len(ArrayLoader(x, y, batch_size=11)) == 1


def test_shuffle_is_a_new_permutation_each_epoch_and_reproducible_from_the_seed():
    x, y = _data(50)
    a = ArrayLoader(x, y, batch_size=7, seed=123)
    b = ArrayLoader(x, y, batch_size=7, seed=123)
    epochs_a = [np.concatenate([yb for _, yb in a]) for _ in range(3)]
    epochs_b = [np.concatenate([yb for _, yb in b]) for _ in range(3)]
    for ea, eb in zip(epochs_a, epochs_b, strict=True):
        np.testing.assert_array_equal(ea, eb)  # same seed, same sequence of epochs
        np.testing.assert_array_equal(np.sort(ea), y)  # every sample exactly once
    assert not np.array_equal(epochs_a[0], epochs_a[1])  # a new order each epoch
    assert not np.array_equal(epochs_a[0], y)
    c = ArrayLoader(x, y, batch_size=7, seed=124)
    assert not np.array_equal(np.concatenate([yb for _, yb in c]), epochs_a[0])
    # x and y stay paired
    for xb, yb in ArrayLoader(x, y, batch_size=7, seed=5):
        np.testing.assert_array_equal(xb, x[yb])


def test_seeded_shuffle_golden_orders():
    # the documented order of epoch e: np.random.default_rng([seed, e]).permutation(n). Pinned,
    # so a run replays its data order on another machine or version; (seed, epoch) is a pair, so
    # seed 5's epoch 1 is not seed 6's epoch 0 (as seed + epoch would make it)
    x = np.arange(20)
    loader = ArrayLoader(x, x, batch_size=4, seed=5)
    assert loader.order(0)[:8].tolist() == [9, 18, 3, 7, 1, 16, 19, 13]
    assert loader.order(1)[:8].tolist() == [15, 5, 11, 12, 19, 13, 2, 16]
    assert ArrayLoader(x, x, seed=6).order(0)[:8].tolist() == [2, 18, 11, 1, 4, 19, 14, 8]
    assert [yb.tolist() for _, yb in loader][:2] == [[9, 18, 3, 7], [1, 16, 19, 13]]
    assert [yb.tolist() for _, yb in loader][0] == [15, 5, 11, 12]  # the next epoch
    assert ArrayLoader(x, x, shuffle=False).order(0) is None


def test_set_epoch_replays_an_epoch_and_global_seed_makes_seedless_loaders_reproducible():
    x, y = _data(30)
    loader = ArrayLoader(x, y, batch_size=8, seed=9)
    first = [np.concatenate([yb for _, yb in loader]) for _ in range(3)]
    loader.set_epoch(1)
    np.testing.assert_array_equal(np.concatenate([yb for _, yb in loader]), first[1])
    lf.seed(77)
    s1 = np.concatenate([yb for _, yb in ArrayLoader(x, y, batch_size=8)])
    lf.seed(77)
    s2 = np.concatenate([yb for _, yb in ArrayLoader(x, y, batch_size=8)])
    np.testing.assert_array_equal(s1, s2)
    gen = ArrayLoader(x, y, seed=np.random.default_rng(3))
    assert isinstance(gen.seed, int)


def test_loader_without_targets_and_dtype_preserved():
    x = np.ones((5, 2, 3), dtype=np.float32)
    batches = list(ArrayLoader(x, batch_size=2, seed=0))
    assert all(yb is None for _, yb in batches)
    assert all(xb.dtype == np.float32 and xb.shape[1:] == (2, 3) for xb, _ in batches)


def test_loader_errors():
    x, y = _data(10)
    with pytest.raises(ShapeError, match="same number of samples.*10.*9"):
        ArrayLoader(x, y[:9])
    for bad in (0, -1, 2.5, "4", True, None):
        with pytest.raises(ConfigError, match="batch_size"):
            ArrayLoader(x, y, batch_size=bad)
    with pytest.raises(ShapeError, match="scalar"):
        ArrayLoader(np.float32(1.0))
    with pytest.raises(ConfigError, match="seed"):
        ArrayLoader(x, y, seed=-3)


# ---------------------------------------------------------------- splits


def test_train_val_split_partitions_and_is_seeded():
    x, y = _data(100)
    x_tr, x_val, y_tr, y_val = train_val_split(x, y, val_fraction=0.2, seed=0)
    assert len(x_val) == 20 and len(x_tr) == 80
    np.testing.assert_array_equal(np.sort(np.concatenate([y_tr, y_val])), y)  # a partition
    np.testing.assert_array_equal(x_tr, x[y_tr])  # pairs kept
    np.testing.assert_array_equal(x_val, x[y_val])
    again = train_val_split(x, y, val_fraction=0.2, seed=0)
    np.testing.assert_array_equal(again[3], y_val)
    other = train_val_split(x, y, val_fraction=0.2, seed=1)
    assert not np.array_equal(other[3], y_val)
    assert len(train_val_split(x, y, val_fraction=0.25)[1]) == 25
    assert len(train_val_split(x, y, val_fraction=0.001)[1]) == 1  # ceil, like scikit-learn
    x_tr, x_val, y_tr, y_val = train_val_split(x, None, val_fraction=0.0)
    assert len(x_val) == 0 and len(x_tr) == 100 and y_tr is None and y_val is None


def test_stratified_split_keeps_class_proportions():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), [60, 30, 10])
    rng.shuffle(y)
    x = np.arange(100)[:, None].astype(np.float32)
    _, x_val, _, y_val = train_val_split(x, y, val_fraction=0.2, seed=3, stratify=True)
    assert len(y_val) == 20
    np.testing.assert_array_equal(np.bincount(y_val, minlength=3), [12, 6, 2])
    np.testing.assert_array_equal(y[x_val[:, 0].astype(int)], y_val)
    # one-hot targets are stratified by their argmax
    onehot = np.eye(3, dtype=np.float32)[y]
    _, _, _, oh_val = train_val_split(x, onehot, val_fraction=0.2, seed=3, stratify=True)
    np.testing.assert_array_equal(np.bincount(oh_val.argmax(1), minlength=3), [12, 6, 2])
    # counts that do not divide: the held-out part still has its exact size, the remainders go
    # to the classes with the largest fractional share (1.75, 1.75, 1.5 → 2, 2, 1)
    y = np.repeat(np.arange(3), [7, 7, 6])
    x = np.arange(20)[:, None].astype(np.float32)
    _, _, y_tr, y_val = train_val_split(x, y, val_fraction=0.25, seed=1, stratify=True)
    np.testing.assert_array_equal(np.bincount(y_val, minlength=3), [2, 2, 1])
    np.testing.assert_array_equal(np.bincount(y_tr, minlength=3), [5, 5, 5])


def test_three_way_split():
    x, y = _data(50)
    parts = train_val_test_split(x, y, val_fraction=0.2, test_fraction=0.1, seed=4)
    x_tr, x_val, x_te, y_tr, y_val, y_te = parts
    assert (len(y_tr), len(y_val), len(y_te)) == (35, 10, 5)
    np.testing.assert_array_equal(np.sort(np.concatenate([y_tr, y_val, y_te])), y)
    np.testing.assert_array_equal(x_te, x[y_te])
    strat = train_val_test_split(x, y % 2, val_fraction=0.2, test_fraction=0.2, seed=4, stratify=True)
    np.testing.assert_array_equal(np.bincount(strat[5]), [5, 5])
    np.testing.assert_array_equal(np.bincount(strat[4]), [5, 5])


def test_split_errors():
    x, y = _data(10)
    for bad in (1.0, -0.1, 1.5, "0.2", None):
        with pytest.raises(ConfigError, match="val_fraction"):
            train_val_split(x, y, val_fraction=bad)
    with pytest.raises(ShapeError, match="same number of samples"):
        train_val_split(x, y[:5])
    with pytest.raises(ConfigError, match="labels"):
        train_val_split(x, None, stratify=True)
    with pytest.raises(ConfigError, match="no training sample"):
        train_val_test_split(x, y, val_fraction=0.5, test_fraction=0.5)


# ---------------------------------------------------------------- Standardizer


def test_standardizer_matches_numpy_and_round_trips_json():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((200, 4)) * [1, 2, 3, 4] + [5, -1, 0, 2]).astype(np.float32)
    x[:, 2] = 7.0  # a constant feature: centred, not scaled
    s = Standardizer()
    z = s.fit_transform(x)
    assert z.dtype == np.float32
    x64 = x.astype(np.float64)
    std = x64.std(0)
    std[2] = 1.0
    np.testing.assert_allclose(z, (x64 - x64.mean(0)) / std, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(0), [1, 1, 0, 1], atol=1e-5)
    np.testing.assert_allclose(s.inverse_transform(z), x, rtol=1e-5, atol=1e-5)
    config = json.loads(json.dumps(s.get_config()))
    s2 = Standardizer.from_config(config)
    np.testing.assert_array_equal(s2.transform(x), z)  # exactly the same statistics
    assert s.transform(x.astype(np.float64)).dtype == np.float64
    assert s.transform(x.astype(np.int32)).dtype == np.float32


def test_standardizer_per_channel_for_images():
    rng = np.random.default_rng(2)
    x = (
        rng.standard_normal((16, 3, 5, 5)).astype(np.float32)
        * np.array([1, 10, 100], np.float32)[:, None, None]
    )
    s = Standardizer(axis=(0, 2, 3)).fit(x)
    assert s.mean.shape == (1, 3, 1, 1)
    z = s.transform(x)
    np.testing.assert_allclose(z.std(axis=(0, 2, 3)), 1, rtol=1e-4)
    np.testing.assert_allclose(z.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    z2 = s.transform(x[:, :, :3, :3])  # per channel: any image size is fine
    assert z2.shape == (16, 3, 3, 3)
    s2 = Standardizer.from_config(json.loads(json.dumps(s.get_config())))
    np.testing.assert_array_equal(s2.transform(x), z)


def test_standardizer_errors():
    s = Standardizer()
    with pytest.raises(DataError, match="not fitted"):
        s.transform(np.ones((2, 3)))
    s.fit(np.ones((4, 3)))
    with pytest.raises(ShapeError, match=r"\(3,\)"):
        s.transform(np.ones((2, 4)))
    with pytest.raises(NonFiniteError):
        Standardizer().fit(np.array([[1.0], [np.nan]]))
    with pytest.raises(ConfigError):
        Standardizer(axis=1)
    with pytest.raises(ConfigError):
        Standardizer.from_config({"mean": [[0.0]]})
    with pytest.raises(DataError, match="numeric"):
        Standardizer().fit(np.array([["a"], ["b"]]))
