"""Training, evaluation, prediction and export: the engine behind the command line.

One sub-package per pipeline — :mod:`~phgmm.engine.training`, :mod:`~phgmm.engine.evaluation`,
:mod:`~phgmm.engine.inference` — over the shared modules kept flat here (builders, loaders,
checkpoint, torchfile, precision, distributed, cudagraph, runlock, datachecks). They load on first
use, so that ``import phgmm`` then ``phgmm.engine.training.train(cfg)``,
``phgmm.engine.evaluation.evaluate_checkpoint(...)`` or ``phgmm.engine.inference.Predictor`` work
as the README writes them, without importing each module first.
"""

from __future__ import annotations

from ..lazy import lazy_attributes

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

__getattr__ = lazy_attributes(__name__, _MODULES)
