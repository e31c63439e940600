"""The layer registry: explicit registration, public concrete classes only."""

from __future__ import annotations

import importlib
import subprocess
import sys

import numpy as np
import pytest

import learnflux as lf
from learnflux.core.layer import LAYER_REGISTRY, Layer
from learnflux.files.fileformat import DISTRIBUTED_LAYERS, is_loadable


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_the_registry_holds_public_concrete_classes_under_their_names():
    for name, cls in LAYER_REGISTRY.items():
        assert name == cls.__name__ and not name.startswith("_"), name
        assert is_loadable(cls), f"{name} is abstract"
    for private in ("_AlongAxis", "_BatchNorm", "_Pool2d", "Activation", "Layer"):
        assert private not in LAYER_REGISTRY


def test_every_public_concrete_learnflux_layer_is_registered():
    ours = {c for c in _subclasses(Layer) if c.__module__.startswith("learnflux.")}
    concrete = {c for c in ours if is_loadable(c)}
    assert {"Linear", "Conv2d", "Sequential", "Model", "Input"} <= {c.__name__ for c in concrete}
    missing = sorted(c.__name__ for c in concrete if LAYER_REGISTRY.get(c.__name__) is not c)
    assert not missing, f"not registered (decorate them with @register_layer): {missing}"


def test_register_layer_refuses_what_cannot_be_loaded_by_name():
    with pytest.raises(lf.ConfigError, match="expects a Layer subclass"):
        lf.register_layer(int)

    class _Private(lf.Layer):
        pass

    with pytest.raises(lf.ConfigError, match="private name"):
        lf.register_layer(_Private)

    class Linear(lf.Layer):  # the name of a built-in layer
        pass

    with pytest.raises(lf.ConfigError, match="learnflux's learnflux.layers.linear.Linear"):
        lf.register_layer(Linear)
    assert LAYER_REGISTRY["Linear"] is lf.Linear


class UnregisteredDoubler(lf.Layer):
    """Never registered: found by the deprecated implicit lookup only."""

    def forward(self, x):
        return 2 * x

    def backward(self, delta_out, need_input_delta=True):
        return 2 * delta_out


def test_an_unregistered_layer_of_your_own_still_loads_with_a_deprecation_warning(tmp_path):
    assert "UnregisteredDoubler" not in LAYER_REGISTRY
    model = lf.Sequential(lf.Input(2), UnregisteredDoubler())
    lf.save(model, tmp_path / "d.lf")
    with pytest.warns(
        DeprecationWarning, match=r"UnregisteredDoubler .* is not registered; decorate it with @lf\."
    ):
        back = lf.load(tmp_path / "d.lf")
    np.testing.assert_array_equal(back.predict(np.ones((1, 2))), [[2.0, 2.0]])
    with pytest.warns(DeprecationWarning, match="UnregisteredDoubler"):
        again = lf.Sequential.from_config(model.get_config())
    assert isinstance(again.layers[1], UnregisteredDoubler)


def test_every_registered_layer_is_exported_without_an_import_list():
    """The catalogue's layers (learnflux.layers) and the core's models are ``lf.<Name>``; a layer
    that another learnflux package registers is exported by that package, its own namespace
    (``learnflux.distributed.SyncBatchNorm1d``), since ``import learnflux`` does not import it."""
    import learnflux.distributed  # noqa: F401  registers SyncBatchNorm1d/2d whatever ran before

    elsewhere = set()
    for name, cls in LAYER_REGISTRY.items():
        module = cls.__module__
        if module.startswith(("learnflux.layers.", "learnflux.core.")):
            assert getattr(lf, name) is cls, f"lf.{name}"
        elif module.startswith("learnflux."):
            namespace = importlib.import_module(".".join(module.split(".")[:2]))
            assert getattr(namespace, name) is cls and name in namespace.__all__, name
            assert name not in lf.__all__, name
            elsewhere.add(name)
        if module.startswith("learnflux.layers."):
            assert getattr(lf.layers, name) is cls and name in lf.layers.__all__
    # lf.load imports learnflux.distributed for these names (files/fileformat.py)
    assert elsewhere == set(DISTRIBUTED_LAYERS)
    assert lf.Activation is lf.layers.Activation and "_BatchNorm" not in lf.layers.__all__


def test_a_model_with_sync_batchnorm_loads_without_importing_learnflux_distributed(tmp_path):
    """lf.load imports learnflux.distributed for its layers (and no MPI with it)."""
    import learnflux.distributed as dist

    model = lf.Sequential(lf.Input(3), lf.Linear(3, 4), dist.SyncBatchNorm1d(4), lf.Linear(4, 2))
    model.fit(np.ones((8, 3), np.float32), np.arange(8) % 2, epochs=1, loss="cross_entropy", verbose=0)
    lf.save(model, tmp_path / "sync.lf")
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)
    np.save(tmp_path / "x.npy", x)
    code = f"""
import sys
import numpy as np
import learnflux as lf
assert "learnflux.distributed" not in sys.modules
back = lf.load({str(tmp_path / "sync.lf")!r})
print(type(back.layers[2]).__module__, "mpi4py" in sys.modules)
np.save({str(tmp_path / "y.npy")!r}, back.predict(np.load({str(tmp_path / "x.npy")!r})))
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["learnflux.distributed.sync_batchnorm", "False"]
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), model.predict(x))
