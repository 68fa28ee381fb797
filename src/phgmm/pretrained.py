"""Loading and sharing trained models, like ``from_pretrained`` / ``save_pretrained`` of
segmentation_models_pytorch and transformers.

``phgmm.load(path)`` takes a training checkpoint (``.pt``) or a published folder
(``model.safetensors`` + ``config.json``, :mod:`phgmm.models.serialization`) and returns the
eval-mode network with ``model.metadata`` (class names and colours, working size (W, H),
normalisation, run config). ``publish`` turns a checkpoint into such a folder; every network also
has ``save_pretrained(dir)`` and ``from_pretrained(dir)``.

>>> import phgmm
>>> model = phgmm.load("runs/demo/checkpoints/best.pt")              # doctest: +SKIP
>>> model.metadata["class_names"][:3]                                # doctest: +SKIP
['background', 'sky', 'building']
>>> model.save_pretrained("my-model")                                # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .models.serialization import save_folder

__all__ = ["load", "publish"]


def load(path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """The eval-mode model of a training checkpoint or a published folder, with ``.metadata``
    (class names and colours, working size (W, H), normalisation, run config)."""
    from .engine.checkpoint import load_inference_model

    return load_inference_model(path, map_location)


def publish(checkpoint: str | Path, out_dir: str | Path, overwrite: bool = False) -> Path:
    """Turn a training checkpoint into a shareable folder (``phgmm publish``)."""
    model = load(checkpoint)
    meta = model.metadata
    return save_folder(
        model,
        out_dir,
        config=meta["config"],
        classes={"names": meta["class_names"], "colors": meta["colors"]},
        overwrite=overwrite,
    )
