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

from .models.serialization import NORMALIZATION, model_from_folder, save_folder

__all__ = ["load", "publish"]


def load(path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """The eval-mode model of a training checkpoint or a published folder, with ``.metadata``."""
    from .config import config_from_dict
    from .engine.checkpoint import CheckpointError, inference_model, load_checkpoint
    from .models.serialization import ModelFileError

    path = Path(path)
    state = load_checkpoint(path, map_location)
    if "build" in state:
        from .models import build_model
        try:
            model = model_from_folder(state, build_model)
        except ModelFileError as exc:
            raise CheckpointError(str(exc)) from None
    else:
        model = inference_model(state, config_from_dict(state["config"], f"{path} (config)"), path)
        classes = state.get("classes") or {}
        size = (state["config"].get("data") or {}).get("size")
        model.metadata = {"class_names": classes.get("names"), "colors": classes.get("colors"),
                          "size": list(size) if size else None, "normalization": NORMALIZATION,
                          "config": state["config"], "source": str(path)}
    return model.to(map_location).eval()


def publish(checkpoint: str | Path, out_dir: str | Path, overwrite: bool = False) -> Path:
    """Turn a training checkpoint into a shareable folder (``phgmm publish``)."""
    model = load(checkpoint)
    meta = model.metadata
    return save_folder(model, out_dir, config=meta["config"],
                       classes={"names": meta["class_names"], "colors": meta["colors"]}, overwrite=overwrite)
