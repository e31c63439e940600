"""Moved to :mod:`learnflux.files.io` (the training floor's files folder); this name is the same
module, kept for one release (docs/vocabulary.md, "Modules moved")."""

import sys

from .files import io as _moved

sys.modules[__name__] = _moved
