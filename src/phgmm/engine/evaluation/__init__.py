"""Evaluation: scoring a model or checkpoint on a split (``evaluate``: :func:`evaluate_model`,
:func:`evaluate_checkpoint`), what it returns (``result``), its probes (``probes``: uncertainty
and clustering; ``latent_probe``: the latent-use measures) and scoring saved prediction folders
(``score``: :func:`score_folders`).

Modules and names load on first use: ``phgmm.engine.evaluation.evaluate_checkpoint(...)`` after a
plain ``import phgmm``. The engine's own modules import each name from the module that defines it.
"""

from __future__ import annotations

from ...lazy import lazy_attributes

_MODULES = ("evaluate", "latent_probe", "probes", "result", "score")

#: the public names, each with the module that defines it
_NAMES = {
    "evaluate_model": "evaluate",
    "evaluate_checkpoint": "evaluate",
    "write_evaluation": "evaluate",
    "EvalResult": "result",
    "flat_scalars": "result",
    "LatentProbe": "latent_probe",
    "score_folders": "score",
}

__all__ = [*_MODULES, *_NAMES]

__getattr__ = lazy_attributes(__name__, _MODULES, _NAMES)
