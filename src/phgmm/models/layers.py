"""Small building blocks shared by PHGMM and the baselines (as smp's ``base/modules.py``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ConvTranspose2d", "conv_bn_relu", "resize_to", "count_parameters"]


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, dilation: int = 1) -> nn.Sequential:
    """Convolution (no bias: BN follows) + BatchNorm + ReLU, padded to keep the size."""
    pad = dilation * (kernel // 2)
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def resize_to(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize of an N×C×h×w map to ``size`` (H, W), pixel-centre aligned; a no-op at that size."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def count_parameters(module: nn.Module | None) -> int:
    """Number of parameters of ``module`` (0 for None)."""
    return sum(p.numel() for p in module.parameters()) if module is not None else 0


class ConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` that runs in fp32 while CPU autocast is on.

    PyTorch's bf16 transposed convolution on the CPU (oneDNN, torch 2.13) returns wrong input
    gradients for some shapes — 8 or 12 channels at stride 4 or 8, PHGMM's ×4 class upsampling and
    FCN-8s's ×8 among them — with a relative error above 1, while its forward is right
    (tests/test_precision.py measures it). Trained through, the decoder then learns from garbage.
    Every transposed convolution of the model zoo is small, so it runs in fp32 there; on a GPU and
    without autocast it is the plain layer."""

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                return super().forward(x.float(), output_size)
        return super().forward(x, output_size)
