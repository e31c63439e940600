"""Moved to :mod:`learnflux.core.model` (the core floor); this name is the same module, kept for
one release (docs/vocabulary.md, "Modules moved")."""

import sys

from .core import model as _moved

sys.modules[__name__] = _moved
