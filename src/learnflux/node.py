"""Moved to :mod:`learnflux.core.node` (the core floor); this name is the same module, kept for
one release (docs/vocabulary.md, "Modules moved")."""

import sys

from .core import node as _moved

sys.modules[__name__] = _moved
