"""Moved to :mod:`learnflux.training.checkpoint` (the training floor); this name is the same module,
kept for one release (docs/vocabulary.md, "Modules moved")."""

import sys

from .training import checkpoint as _moved

sys.modules[__name__] = _moved
