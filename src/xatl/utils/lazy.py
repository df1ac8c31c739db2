"""Lazy package exports (PEP 562): a package lists ``name -> submodule`` and its public names import on first
use, so importing the package (or a light submodule of it, such as a settings dataclass for ``--help``) does not
import torch.

    __getattr__, __dir__ = lazy_exports(__name__, {"HealConfig": "config", "heal": "run"})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of ``package`` for ``exports`` (public name -> submodule)."""

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{exports[name]}", package), name)
        setattr(sys.modules[package], name, value)       # resolve once
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
