"""Task modules. Importing this package imports (and so registers) every task in it.

A task is one module or package here; nothing else needs to list it.
"""

import importlib
import pkgutil

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")
