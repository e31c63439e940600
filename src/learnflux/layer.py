"""Moved to :mod:`learnflux.core.layer` (the core floor); this name is the same module, kept for
one release (docs/vocabulary.md, "Modules moved")."""

import sys

from .core import layer as _moved

sys.modules[__name__] = _moved
