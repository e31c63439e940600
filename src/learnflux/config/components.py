"""The classes a config's ``type`` keys name, from the registries of their own packages."""

from __future__ import annotations

from collections.abc import Mapping

from .. import losses, optim
from ..core.layer import LAYER_REGISTRY
from ..core.model import Model
from ..layers import Input

#: [loss], [optimizer] and [schedule]: the table -> its classes by name
COMPONENTS: dict[str, Mapping[str, type]] = {
    "loss": losses.registry,
    "optimizer": optim.registry,
    "schedule": optim.schedule_registry,
}


def layer_classes() -> dict[str, type]:
    """The layers a ``[[model.layers]]`` table may name, sorted: the registered layers
    (``LAYER_REGISTRY``, where a layer of your own joins with ``@lf.register_layer``) but the
    models (a graph of layers, not built from arguments) and ``Input`` (the builder puts it
    first, with the data's sample shape)."""
    return {
        name: cls
        for name, cls in sorted(LAYER_REGISTRY.items())
        if not name.startswith("_") and not issubclass(cls, Model) and cls is not Input
    }
