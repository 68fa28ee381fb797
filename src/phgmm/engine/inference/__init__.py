"""Inference: the model side (``predictor``: :class:`Predictor`), whole-image and sliding-window
inference with test-time augmentation (``tiling``), the ``phgmm predict`` pipeline (``pipeline``:
:func:`predict_paths`) with its inputs (``inputs``) and outputs (``outputs``), ONNX export and
onnxruntime (``export``), and the captured CUDA-graph forward (``graphed``).

Modules and names load on first use: ``phgmm.engine.inference.Predictor(...)`` after a plain
``import phgmm``. The engine's own modules import each name from the module that defines it.
"""

from __future__ import annotations

from ...lazy import lazy_attributes

_MODULES = ("export", "graphed", "inputs", "outputs", "pipeline", "predictor", "tiling")

#: the public names, each with the module that defines it
_NAMES = {
    "Predictor": "predictor",
    "predict_paths": "pipeline",
    "collect_inputs": "inputs",
    "infer_logits": "tiling",
    "export_onnx": "export",
    "export_checkpoint": "export",
    "OnnxPredictor": "export",
    "GraphedForward": "graphed",
}

__all__ = [*_MODULES, *_NAMES]

__getattr__ = lazy_attributes(__name__, _MODULES, _NAMES)
