"""Names a package exports but imports on first use (PEP 562's module `__getattr__`), so that
importing the package, as the `scaler` command does before it parses its flags, imports
neither torch nor pandas."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], object]:
    """The `__getattr__` of `package` that imports each name of `exports` (name -> the module
    that defines it) the first time it is asked for, and keeps it in the package."""

    def __getattr__(name: str) -> object:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
