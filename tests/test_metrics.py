"""Metrics: accuracy (labels, one-hot, binary), top-k accuracy, the registry."""

import numpy as np
import pytest

import learnflux as lf
from learnflux.metrics import METRICS, accuracy, get_metric, register_metric, top_k_accuracy

OUT = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.6, 0.1, 0.3]])


def test_accuracy_from_labels_and_one_hot():
    y = np.array([1, 0, 1, 2])
    assert accuracy(OUT, y) == (2.0, 4)
    assert accuracy(OUT, np.eye(3)[y]) == (2.0, 4)
    assert accuracy(OUT, y.astype(np.float32)) == (2.0, 4)  # whole numbers stored as floats


def test_binary_accuracy_thresholds():
    out = np.array([[0.9], [0.2], [0.6], [0.4]])
    assert accuracy(out, np.array([1, 0, 0, 0])) == (3.0, 4)
    logits = np.array([[2.0], [-1.0], [0.5], [-0.1]])
    assert get_metric("binary_accuracy_logits")[1](logits, np.array([1, 0, 1, 1])) == (3.0, 4)


def test_top_k_accuracy():
    y = np.array([2, 2, 0, 1])
    assert top_k_accuracy(1)(OUT, y) == (0.0, 4)
    assert top_k_accuracy(2)(OUT, y) == (1.0, 4)  # only row 0 has its class in its top 2
    assert top_k_accuracy(3)(OUT, y) == (4.0, 4)
    name, fn = get_metric("top2_accuracy")
    assert name == "top2_accuracy" and fn(OUT, y) == (1.0, 4)


def test_registry_and_errors():
    @register_metric("always_half")
    def always_half(output, target):
        return len(output) / 2, len(output)

    try:
        assert get_metric("always_half")[1] is always_half
        rng = np.random.default_rng(0)
        x, y = rng.standard_normal((20, 3)).astype(np.float32), rng.integers(0, 2, 20)
        model = lf.Sequential(lf.Input(3), lf.Linear(3, 2))
        hist = model.fit(
            x, y, epochs=1, loss=lf.CrossEntropyLoss(), metrics=("always_half",), verbose=0, seed=0
        )
        assert hist.history["always_half"] == [0.5]
    finally:
        METRICS.pop("always_half")
    with pytest.raises(lf.ConfigError, match="unknown metric"):
        get_metric("precision_at_42")
    with pytest.raises(lf.ConfigError, match="class labels"):
        accuracy(OUT, np.array([0.5, 1.0, 2.0, 0.0]))
    with pytest.raises(lf.ShapeError):
        accuracy(OUT, np.array([0, 1]))
