"""The public namespace ``lf.train`` (docs/vocabulary.md): the module :mod:`learnflux.training.train`
under its public name, the same module object (so monkeypatching either name patches both). This
path is permanent, whatever the package's layout; learnflux's own code imports the new path."""

import sys

from .training import train as _public

sys.modules[__name__] = _public
