"""``python -m learnflux`` is the ``learnflux`` command."""

import sys

from .cli import main

sys.exit(main())
