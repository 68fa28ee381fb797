"""Training: the loop (``trainer``: :class:`Trainer`, :func:`train`), the one step (``step``) and
its CUDA graph (``graphed``), the optimiser and schedule (``optimizer``), what a checkpoint restores
(``state``), what a resume may change (``resume``) and the start summary (``console``).

Modules and names load on first use: ``phgmm.engine.training.train(cfg)`` after a plain
``import phgmm``. The engine's own modules import each name from the module that defines it.
"""

from __future__ import annotations

from ...lazy import lazy_attributes

_MODULES = ("console", "graphed", "optimizer", "resume", "state", "step", "trainer")

#: the public names, each with the module that defines it
_NAMES = {
    "train": "trainer",
    "Trainer": "trainer",
    "TrainingError": "trainer",
    "RunExistsError": "trainer",
    "TrainingInterrupted": "trainer",
    "TrainingState": "state",
    "build_optimizer": "optimizer",
    "parameter_groups": "optimizer",
    "poly_lambda": "optimizer",
    "check_resume_config": "resume",
    "config_of_checkpoint": "resume",
    "training_step": "step",
    "LOSS_TERMS": "step",
    "GraphedTrainStep": "graphed",
}

__all__ = [*_MODULES, *_NAMES]

__getattr__ = lazy_attributes(__name__, _MODULES, _NAMES)
