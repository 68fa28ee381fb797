"""The comparison networks' common base: :class:`BaselineNetwork` and the weight initialisation of their heads.

Every comparison network (DeepLab v3, FCN-8s, PSPNet, U-Net, the attention, HRNet and real-time rows) is a
:class:`BaselineNetwork`: an ``encoder``, a ``head``, ``parameter_counts`` and
:class:`~phgmm.models.shareable.Shareable`'s saving and loading.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .layers import count_parameters
from .registry import build_registered
from .shareable import Shareable

__all__ = ["BaselineNetwork", "init_head_weights"]


def init_head_weights(module: nn.Module) -> None:
    """He (fan-out) initialisation of every convolution of ``module``, zero biases, BatchNorm at identity."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class BaselineNetwork(Shareable, nn.Module):
    """Common parts: an ``encoder`` (ResNet, F1..F4) and a ``head`` (everything else)."""

    encoder: nn.Module
    head: nn.Module

    @classmethod
    def from_build_args(cls, name: str, **kwargs: Any) -> BaselineNetwork:
        model = build_registered(name, **kwargs)
        model.build_args = {"name": name, **kwargs}
        return model

    #: attributes holding heads that only training runs (deep supervision): counted in
    #: ``training_total`` and under ``aux``, not in ``inference_total``
    aux_modules: tuple[str, ...] = ()

    def parameter_counts(self) -> dict[str, int]:
        counts = {"encoder": count_parameters(self.encoder), "head": count_parameters(self.head)}
        counts["inference_total"] = counts["training_total"] = counts["encoder"] + counts["head"]
        if self.aux_modules:
            counts["aux"] = sum(count_parameters(getattr(self, name)) for name in self.aux_modules)
            counts["training_total"] += counts["aux"]
        return counts
