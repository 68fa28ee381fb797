"""DeepLab v2 (Chen et al., TPAMI 40(4) 2018; arXiv 2016): ASPP-L on a dilated ResNet-101.

The ResNet runs at output stride 8 (stages 3 and 4 dilated by 2 and 4). Its F4 feeds four parallel
3×3 convolutions straight to the C class scores, at atrous rates 6, 12, 18 and 24, whose outputs are
**summed** (the paper's ASPP-L; DeepLab v3's ASPP instead concatenates 256-channel branches with
BN and image pooling). The scores are upsampled bilinearly to H×W. Departures from the reference
(Caffe): the fully connected CRF post-processing, multi-scale inputs (MSC) and COCO pre-training are
left out, as every network here trains from scratch on the same engine; the ResNet is torchvision's
layout (stride on the 3×3) rather than Caffe's (stride on the first 1×1) — the same parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .backbone import resnet_encoder
from .base import BaselineNetwork
from .layers import resize_to
from .registry import register

__all__ = ["DeepLabV2", "SummedASPP"]


class SummedASPP(nn.Module):
    """Parallel dilated 3×3 classifiers (with bias) on one feature map, summed."""

    def __init__(self, cin: int, num_classes: int, rates: Sequence[int] = (6, 12, 18, 24)) -> None:
        super().__init__()
        self.rates = tuple(rates)
        self.branches = nn.ModuleList(nn.Conv2d(cin, num_classes, 3, padding=r, dilation=r) for r in self.rates)
        for conv in self.branches:  # the reference's classifier init: N(0, 0.01), zero bias
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branches[0](x)
        for conv in self.branches[1:]:
            out = out + conv(x)
        return out


@register(
    "deeplabv2",
    "DeepLab v2: ASPP-L (summed dilated 3x3 classifiers, rates 6/12/18/24) on a "
    "dilated ResNet, output stride 8 (Chen et al. 2018)",
)
class DeepLabV2(BaselineNetwork):
    """DeepLab v2 (Chen et al. 2018).

    Args:
        num_classes: C.
        backbone: ``resnet101`` in the paper (any of resnet18…152).
        rates: the atrous rates of the summed branches (6, 12, 18, 24: ASPP-L).
        in_channels: image channels.
    """

    def __init__(
        self,
        num_classes: int = 12,
        backbone: str = "resnet101",
        rates: Sequence[int] = (6, 12, 18, 24),
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.encoder = resnet_encoder(
            backbone, in_channels=in_channels, replace_stride_with_dilation=(False, True, True)
        )
        self.head = SummedASPP(self.encoder.channels[3], num_classes, rates)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return resize_to(self.head(self.encoder(x)[3]), x.shape[-2:])
