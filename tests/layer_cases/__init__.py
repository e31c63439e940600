"""Every LayerCase of every module in this folder (each module defines ``CASES``)."""

from __future__ import annotations

import importlib
import pkgutil

ALL_CASES = []
for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    ALL_CASES.extend(importlib.import_module(f"{__name__}.{_info.name}").CASES)
