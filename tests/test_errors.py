"""Bad input gets a clear error naming the layer, never a NumPy traceback from deep inside."""

from __future__ import annotations

import numpy as np
import pytest

import learnflux as lf


def model():
    return lf.Sequential(lf.Input(3), lf.Linear(3, 2), lf.ReLU(), lf.Linear(2, 1))


def test_wrong_feature_count_names_the_input_layer():
    with pytest.raises(lf.ShapeError, match=r"Input\(3\) at '0'.*\(batch, 3\).*\(2, 4\)"):
        model()(np.ones((2, 4)))
    with pytest.raises(lf.ShapeError, match=r"Input\(3\) at '0'.*\(batch, 3\).*\(2, 2\)"):
        model()(np.ones((2, 2)))  # fewer features than declared, too
    image = lf.Sequential(lf.Input((1, 8, 8)), lf.Flatten())
    for wrong in [(2, 1, 8, 7), (2, 1, 9, 8), (2, 2, 8, 8), (2, 64)]:
        with pytest.raises(lf.ShapeError, match=r"\(batch, 1, 8, 8\)"):
            image(np.ones(wrong))
    assert image(np.ones((2, 1, 8, 8))).shape == (2, 64)
    assert lf.Sequential(lf.Input((None, 4)), lf.Flatten())(np.ones((2, 5, 4))).shape == (2, 20)


def test_wrong_shape_inside_names_the_linear_layer():
    m = lf.Sequential(lf.Linear(3, 2), lf.Linear(5, 1))
    with pytest.raises(lf.ShapeError, match=r"Linear\(5 → 1\) at '1'.*\(batch, 5\).*\(2, 2\)"):
        m(np.ones((2, 3)))


def test_vector_without_batch_axis_is_explained():
    with pytest.raises(lf.ShapeError, match="batch"):
        lf.Linear(3, 1)(np.ones(3))


def test_string_and_complex_inputs_are_refused_with_their_dtype():
    with pytest.raises(lf.DtypeError, match=r"Input\(3\).*real numbers.*<U"):
        model()(np.array([["a", "b", "c"]]))
    with pytest.raises(lf.DtypeError, match="complex"):
        model()(np.ones((1, 3), dtype=complex))


def test_nan_input_names_the_layer_and_the_position():
    x = np.ones((2, 3))
    x[1, 2] = np.nan
    with pytest.raises(lf.NonFiniteError, match=r"Input\(3\).*non-finite.*\(1, 2\)"):
        model()(x)
    with pytest.raises(lf.NonFiniteError, match=r"Linear\(3 → 2\)"):
        lf.Linear(3, 2)(x)


def test_integer_and_float64_inputs_are_cast_to_the_model_dtype():
    m = model()
    assert m(np.ones((1, 3), dtype=np.int64)).dtype == np.float32
    assert m(np.ones((1, 3), dtype=np.float64)).dtype == np.float32


def test_loss_shape_mismatch_names_the_loss():
    with pytest.raises(lf.ShapeError, match=r"SquaredError.*\(2, 1\).*\(3,\)"):
        lf.SquaredError()(np.ones((2, 1)), np.ones(3))


def test_setting_weights_of_the_wrong_shape():
    layer = lf.Linear(3, 1)
    with pytest.raises(lf.ShapeError, match=r"Linear\(3 → 1\).*weight.*\(3,\).*\(1, 3\)"):
        layer.weight.value = [1.0, 2.0, 3.0]


def test_layers_that_cannot_be_exact_say_so():
    with pytest.raises(lf.ExactnessError, match="Sigmoid"):
        lf.Sequential(lf.Linear(2, 2), lf.Sigmoid()).astype("exact")
    with pytest.raises(lf.DtypeError, match="unsupported dtype"):
        lf.Linear(2, 2).astype(np.int32)


def test_wrong_delta_shape_in_backward():
    layer = lf.Linear(3, 2)
    layer(np.ones((4, 3)))
    with pytest.raises(lf.ShapeError, match=r"δ has shape \(4, 3\), expected \(4, 2\)"):
        layer.backward(np.ones((4, 3), dtype=np.float32))
