"""Networks: PHGMM and the comparison baselines, all on the same ResNet code."""

from __future__ import annotations

from typing import Any

from torch import nn

from .backbone import ResNetEncoder, resnet_encoder
from .fold import fold_batchnorm
from .phgmm import PHGMM, PHGMMOutput

__all__ = ["PHGMM", "PHGMMOutput", "ResNetEncoder", "resnet_encoder", "build_model", "MODEL_NAMES",
           "fold_batchnorm"]

MODEL_NAMES = ("phgmm", "deeplabv3", "fcn8s", "pspnet", "unet")


def build_model(name: str = "phgmm", num_classes: int = 12, backbone: str = "resnet101",
                **kwargs: Any) -> nn.Module:
    """Build a network by name. ``kwargs`` go to the model's constructor.

    Baselines (``deeplabv3``, ``fcn8s``, ``pspnet``, ``unet``) return plain N×C×H×W logits in both
    modes; PHGMM returns a :class:`PHGMMOutput` in training mode.
    """
    key = name.lower()
    if key == "phgmm":
        return PHGMM(num_classes=num_classes, backbone=backbone, **kwargs)
    if key in MODEL_NAMES:
        from . import baselines
        model = baselines.build_baseline(key, num_classes=num_classes, backbone=backbone, **kwargs)
        model.build_args = {"name": key, "num_classes": num_classes, "backbone": backbone, **kwargs}
        return model
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
