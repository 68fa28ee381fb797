"""Training, evaluation, prediction and export: the engine behind the command line.

Its modules load on first use, so that ``import phgmm`` then ``phgmm.engine.train.train(cfg)``,
``phgmm.engine.evaluate.evaluate_checkpoint(...)`` or ``phgmm.engine.predict`` work as the README
writes them, without importing each module first.
"""

from __future__ import annotations

import importlib

_MODULES = (
    "builders",
    "checkpoint",
    "datachecks",
    "distributed",
    "evaluate",
    "export",
    "graphed",
    "inference",
    "inputs",
    "latent_probe",
    "loaders",
    "outputs",
    "precision",
    "predict",
    "runlock",
    "score",
    "stepping",
    "torchfile",
    "train",
)

__all__ = list(_MODULES)


def __getattr__(name: str):
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'phgmm.engine' has no attribute {name!r}")
