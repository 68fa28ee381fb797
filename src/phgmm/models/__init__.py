"""Networks: PHGMM and the comparison baselines, all built by name through one registry."""

from __future__ import annotations

from typing import Any

from torch import nn

# each network module registers its classes on import (models/registry.py); the order here is
# the order `phgmm models` lists them
from . import (  # noqa: F401  (HRNet, HRNet + OCR, attention rows)  # noqa: F401  (attention, classic, real-time rows)
    baselines,  # noqa: F401
    ccnet,
    danet,
    deeplabv2,
    hrnet,
    ocnet,
    ocr,
    realtime,
    segnet,
)
from .backbone import ResNetEncoder, resnet_encoder
from .fold import fold_batchnorm
from .phgmm import PHGMM, PHGMMOutput
from .registry import build_registered, registered

__all__ = [
    "PHGMM",
    "PHGMMOutput",
    "ResNetEncoder",
    "resnet_encoder",
    "build_model",
    "MODEL_NAMES",
    "fold_batchnorm",
    "MODEL_NOTES",
]

MODEL_NAMES: tuple[str, ...] = ("phgmm", *(n for n in registered() if n != "phgmm"))
MODEL_NOTES: dict[str, str] = {n: e.note for n, e in registered().items()}


def build_model(name: str = "phgmm", num_classes: int = 12, backbone: str = "resnet101", **kwargs: Any) -> nn.Module:
    """Build a network by name (:data:`MODEL_NAMES`). ``kwargs`` go to the model's constructor.

    The comparison networks return plain N×C×H×W logits in both modes; PHGMM returns a
    :class:`PHGMMOutput` in training mode.
    """
    key = name.lower()
    if key == "phgmm":
        return PHGMM(num_classes=num_classes, backbone=backbone, **kwargs)
    if key in MODEL_NAMES:
        model = build_registered(key, num_classes=num_classes, backbone=backbone, **kwargs)
        model.build_args = {"name": key, "num_classes": num_classes, "backbone": backbone, **kwargs}
        return model
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
