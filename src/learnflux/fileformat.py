"""Moved to :mod:`learnflux.files.fileformat` (the training floor's files folder); this name is the same
module, kept for one release (docs/vocabulary.md, "Modules moved")."""

import sys

from .files import fileformat as _moved

sys.modules[__name__] = _moved
