"""A package's attributes loaded on first use (PEP 562's module ``__getattr__``), so that
``import phgmm`` stays cheap and ``phgmm.engine.training.train(cfg)`` still works without importing
each module first."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(
    package: str, modules: Iterable[str], names: Mapping[str, str] | None = None
) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: each of ``modules`` is imported when first read,
    and each name of ``names`` is read from its module (``{"train": "trainer"}``: ``train`` of
    ``package.trainer``)."""
    modules, names = frozenset(modules), dict(names or {})

    def __getattr__(name: str) -> Any:
        if name in modules:
            return importlib.import_module(f"{package}.{name}")
        if name in names:
            return getattr(importlib.import_module(f"{package}.{names[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
