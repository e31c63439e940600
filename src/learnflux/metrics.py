"""The public namespace ``lf.metrics`` (docs/vocabulary.md): the module :mod:`learnflux.training.metrics`
under its public name, the same module object (so monkeypatching either name patches both). This
path is permanent, whatever the package's layout; learnflux's own code imports the new path."""

import sys

from .training import metrics as _public

sys.modules[__name__] = _public
