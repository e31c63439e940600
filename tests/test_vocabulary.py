"""One vocabulary (docs/vocabulary.md): an explicit ``lf.__all__`` that is complete, the dropped
duplicates keep working for one release with a DeprecationWarning, the phases are every layer's."""

import importlib
import inspect
import warnings

import numpy as np
import pytest

import learnflux as lf


def test_every_name_in_all_exists_once():
    assert len(lf.__all__) == len(set(lf.__all__))
    assert [n for n in lf.__all__ if not hasattr(lf, n)] == []


def test_nothing_public_is_missing_from_all():
    """Every public object of the package is listed; a submodule is listed only when it is a
    namespace (lf.optim, lf.data...), the others are the implementation."""
    public = [n for n in dir(lf) if not n.startswith("_")]
    missing = [n for n in public if n not in lf.__all__ and not inspect.ismodule(getattr(lf, n))]
    assert missing == []
    for name in lf.__all__:
        value = getattr(lf, name)
        if inspect.ismodule(value):  # the namespace is the module of that path (learnflux.train
            # is learnflux.training.train under its permanent public name, docs/vocabulary.md)
            assert importlib.import_module(f"learnflux.{name}") is value, name
    assert set(lf.layers.__all__) <= set(lf.__all__)  # every layer of the catalogue


def test_implementation_modules_are_not_exported():
    for name in ("io", "model", "layer", "param", "errors", "kernels", "checkpoint", "progress"):
        assert name not in lf.__all__


def test_star_import_gives_exactly_all():
    namespace: dict = {}
    exec("from learnflux import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(lf.__all__)


def test_params_is_deprecated_and_still_works():
    model = lf.Sequential(lf.Input(3), lf.Linear(3, 2), lf.ReLU(), lf.Linear(2, 1))
    with pytest.warns(DeprecationWarning, match=r"params\(\) is deprecated.*use parameters\(\)"):
        old = model.params()
    assert old == model.parameters() and len(old) == 4
    with pytest.warns(DeprecationWarning):
        assert model.layers[1].params() == model.layers[1].parameters()


def test_learnflux_itself_raises_no_deprecation_warning():
    """The warning is for the user's own calls: learnflux's internal ones (an optimizer given a
    model, a fit) would be noise the user cannot act on."""
    x, y = np.ones((8, 3), np.float32), np.arange(8) % 2
    model = lf.Sequential(lf.Input(3), lf.Linear(3, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        opt = lf.SGD(model, lr=0.1)
        model.fit(x, y, epochs=1, loss="cross_entropy", optimizer=opt, clip_norm=1.0, verbose=0)
        lf.clip_grad_norm_(model, 1.0)
        model.zero_grad()


def test_every_layer_has_the_phase_context_managers():
    layer = lf.Dropout(0.5)
    assert layer.training
    with layer.inference() as same:
        assert same is layer and not layer.training
        with layer.training_phase():
            assert layer.training
        assert not layer.training
    assert layer.training
    # predict on a bare layer runs in the inference phase (Dropout is then the identity)
    x = np.ones((4, 6), np.float32)
    np.testing.assert_array_equal(lf.train.predict(layer, x), x)
    assert layer.training
