"""The layer catalogue, one family per file.

Every module of this package is imported here and every layer it registers (``@register_layer``)
is exported, as ``lf.layers.<Name>`` and ``lf.<Name>``: a new layer is one new file (plus its test
case and its docs), with no import list to extend. ``Activation``, the base class of the
element-wise activations, is exported too (to subclass it); the private bases are not.
"""

import importlib as _importlib
import pkgutil as _pkgutil

from ..core.layer import LAYER_REGISTRY as _REGISTRY
from .activations import Activation

for _module in sorted(m.name for m in _pkgutil.iter_modules(__path__)):
    _importlib.import_module(f"{__name__}.{_module}")

#: every registered layer defined in this package, by name
CATALOGUE = {
    name: cls for name, cls in sorted(_REGISTRY.items()) if cls.__module__.startswith(f"{__name__}.")
}
globals().update(CATALOGUE)

__all__ = ["Activation", *CATALOGUE]
