"""Training, evaluation, prediction and export: the engine behind the command line.

One sub-package per pipeline — :mod:`~phgmm.engine.training`, :mod:`~phgmm.engine.evaluation`,
:mod:`~phgmm.engine.inference` — over the shared modules kept flat here (builders, loaders,
checkpoint, torchfile, precision, distributed, cudagraph, runlock, datachecks). They load on first
use, so that ``import phgmm`` then ``phgmm.engine.training.train(cfg)``,
``phgmm.engine.evaluation.evaluate_checkpoint(...)`` or ``phgmm.engine.inference.Predictor`` work
as the README writes them, without importing each module first.
"""

from __future__ import annotations

import importlib

_MODULES = (
    "builders",
    "checkpoint",
    "cudagraph",
    "datachecks",
    "distributed",
    "evaluation",
    "inference",
    "loaders",
    "precision",
    "runlock",
    "torchfile",
    "training",
)

__all__ = list(_MODULES)


def __getattr__(name: str):
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'phgmm.engine' has no attribute {name!r}")
