"""Comparison networks (docs/design.md §5, Tables 1–2) on the same ResNet code as PHGMM.

Every baseline is trained from scratch like PHGMM, takes an N×3×H×W image and returns N×C×H×W
logits at the input's own H×W, in training and in evaluation mode, for any H×W (also sizes that are
not a multiple of 32). None of them has a latent space, so their training-mode output is the same
plain logits tensor as in evaluation mode.

* :class:`DeepLabV3` — Chen et al. 2017: ResNet at output stride 8 (stages 3 and 4 dilated),
  ASPP (1×1, three 3×3 atrous convolutions at rates 12/24/36, image pooling; 256 channels),
  1×1 projection + dropout, a 3×3 conv head, bilinear upsampling. ``output_stride=16`` dilates
  only stage 4 and halves the rates (6/12/18).
* :class:`FCN8s` — Long et al. 2015 on a ResNet: 1×1 score layers on F4 (H/32), F3 (H/16) and
  F2 (H/8), fused by 2× learned (bilinear-initialised) upsampling and sums, then a learned 8×
  upsampling to H×W.
* :class:`PSPNet` — Zhao et al. 2017: ResNet at output stride 8, pyramid pooling with bins
  1, 2, 3 and 6 (each branch reduces F4 to a quarter of its channels: 512 on ResNet-50/101),
  a 3×3 conv to 512 channels, dropout, classifier, bilinear upsampling. No auxiliary head.
* :class:`UNet` — a U-Net/SegNet-family encoder–decoder: F4 is upsampled step by step to H/4,
  concatenated at each step with the encoder level of that resolution (skips) and refined by two
  3×3 conv-BN-ReLU layers, then two more ×2 upsampling stages reach H×W.

Batch-norm on a 1×1 pooled map cannot train with a batch of one image (one value per channel), so
the image-pooling branch of ASPP and the 1-bin branch of the pyramid pooling use a biased 1×1
convolution + ReLU without normalisation; every other convolution has BN.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import resnet_encoder
from .base import BaselineNetwork, init_head_weights
from .decoder import bilinear_kernel
from .layers import ConvTranspose2d, conv_bn_relu, resize_to
from .registry import PHGMM_ONLY_KWARGS, build_registered, register

__all__ = ["DeepLabV3", "FCN8s", "PSPNet", "UNet", "ASPP", "PyramidPooling", "build_baseline", "PHGMM_ONLY_KWARGS"]


# -- DeepLab v3 ----------------------------------------------------------------------------------
class ASPPPooling(nn.Module):
    """Image-level features: global average pool, 1×1 conv + ReLU, broadcast back to the grid."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = F.relu(self.conv(x.mean(dim=(2, 3), keepdim=True)))
        return v.expand(-1, -1, x.shape[2], x.shape[3])


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1×1, three atrous 3×3, image pooling; concat → 1×1 → dropout."""

    def __init__(
        self, cin: int, rates: Sequence[int] = (12, 24, 36), channels: int = 256, dropout: float = 0.5
    ) -> None:
        super().__init__()
        branches: list[nn.Module] = [conv_bn_relu(cin, channels, 1)]
        branches += [conv_bn_relu(cin, channels, 3, dilation=r) for r in rates]
        branches.append(ASPPPooling(cin, channels))
        self.branches = nn.ModuleList(branches)
        self.project = nn.Sequential(conv_bn_relu(len(branches) * channels, channels, 1), nn.Dropout(dropout))
        self.rates = tuple(rates)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([b(x) for b in self.branches], dim=1))


@register("deeplabv3", "DeepLab v3: ASPP on a dilated ResNet, output stride 8 (Chen et al. 2017)")
class DeepLabV3(BaselineNetwork):
    """DeepLab v3 (Chen et al. 2017) on a dilated ResNet.

    Args:
        num_classes: C.
        backbone: ``resnet18``/``34``/``50``/``101``/``152``.
        output_stride: 8 (dilate stages 3 and 4; rates 12/24/36, the paper's comparison setting)
            or 16 (dilate stage 4; rates 6/12/18).
        aspp_channels: channels of every ASPP branch and of the head (256).
        dropout: after the ASPP projection.
        rates: override the atrous rates.
        in_channels: image channels.
    """

    def __init__(
        self,
        num_classes: int = 12,
        backbone: str = "resnet101",
        output_stride: int = 8,
        aspp_channels: int = 256,
        dropout: float = 0.5,
        rates: Sequence[int] | None = None,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if output_stride not in (8, 16):
            raise ValueError(f"output_stride must be 8 or 16, got {output_stride}")
        dilate = (False, True, True) if output_stride == 8 else (False, False, True)
        if rates is None:
            rates = (12, 24, 36) if output_stride == 8 else (6, 12, 18)
        self.output_stride = output_stride
        self.encoder = resnet_encoder(backbone, in_channels=in_channels, replace_stride_with_dilation=dilate)
        self.head = nn.Sequential(
            ASPP(self.encoder.channels[3], rates, aspp_channels, dropout),
            conv_bn_relu(aspp_channels, aspp_channels, 3),
            nn.Conv2d(aspp_channels, num_classes, 1),
        )
        init_head_weights(self.head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f4 = self.encoder(x)[3]
        return resize_to(self.head(f4), x.shape[-2:])


# -- FCN-8s --------------------------------------------------------------------------------------
def _learned_upsample(channels: int, factor: int) -> nn.ConvTranspose2d:
    """×factor transposed convolution (kernel 2f, stride f, padding f/2), bilinear-initialised."""
    up = ConvTranspose2d(channels, channels, 2 * factor, stride=factor, padding=factor // 2, bias=False)
    with torch.no_grad():
        up.weight.copy_(bilinear_kernel(channels, 2 * factor))
    return up


class _FCNHead(nn.Module):
    def __init__(self, channels: Sequence[int], num_classes: int) -> None:
        super().__init__()
        self.score4 = nn.Conv2d(channels[3], num_classes, 1)
        self.score3 = nn.Conv2d(channels[2], num_classes, 1)
        self.score2 = nn.Conv2d(channels[1], num_classes, 1)
        self.up4 = _learned_upsample(num_classes, 2)
        self.up3 = _learned_upsample(num_classes, 2)
        self.up8 = _learned_upsample(num_classes, 8)
        for conv in (self.score4, self.score3, self.score2):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)


@register("fcn8s", "FCN-8s: score layers fused by learned upsampling (Long et al. 2015)")
class FCN8s(BaselineNetwork):
    """FCN-8s (Long et al. 2015) on a ResNet: score F4, F3, F2; 2× fuse, 2× fuse, 8× to H×W.

    A stride-2 stage maps a side s to ceil(s/2), so each learned ×2 (×8) upsampling covers the
    finer grid (the input) and is cropped to it, as in the original FCN.
    """

    def __init__(self, num_classes: int = 12, backbone: str = "resnet101", in_channels: int = 3) -> None:
        super().__init__()
        self.encoder = resnet_encoder(backbone, in_channels=in_channels)
        self.head = _FCNHead(self.encoder.channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, f2, f3, f4 = self.encoder(x)
        h = self.head
        s3 = h.score3(f3)
        s = h.up4(h.score4(f4))[..., : s3.shape[2], : s3.shape[3]] + s3
        s2 = h.score2(f2)
        s = h.up3(s)[..., : s2.shape[2], : s2.shape[3]] + s2
        return h.up8(s)[..., : x.shape[2], : x.shape[3]]


# -- PSPNet --------------------------------------------------------------------------------------
class PyramidPooling(nn.Module):
    """Pyramid pooling module: per bin b, adaptive average pool to b×b, 1×1 conv to
    ``branch_channels``, bilinear upsampling back; concatenated with the input."""

    def __init__(self, cin: int, bins: Sequence[int] = (1, 2, 3, 6), branch_channels: int | None = None) -> None:
        super().__init__()
        branch_channels = branch_channels or cin // len(bins)
        self.bins = tuple(bins)
        self.stages = nn.ModuleList(
            nn.Sequential(nn.Conv2d(cin, branch_channels, 1), nn.ReLU(inplace=True))
            if b == 1
            else conv_bn_relu(cin, branch_channels, 1)
            for b in self.bins
        )
        self.out_channels = cin + len(self.bins) * branch_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        outs = [x]
        for b, stage in zip(self.bins, self.stages, strict=True):
            pooled = x.mean(dim=(2, 3), keepdim=True) if b == 1 else F.adaptive_avg_pool2d(x, b)
            outs.append(resize_to(stage(pooled), size))
        return torch.cat(outs, dim=1)


@register("pspnet", "PSPNet: pyramid pooling on a dilated ResNet (Zhao et al. 2017)")
class PSPNet(BaselineNetwork):
    """PSPNet (Zhao et al. 2017): dilated ResNet (output stride 8), pyramid pooling, head.

    Args:
        bins: pyramid bins (1, 2, 3, 6).
        channels: head channels after the pyramid (512).
        branch_channels: channels of each pyramid branch (None → F4 channels / number of bins,
            i.e. 512 on ResNet-50/101).
        dropout: before the classifier (0.1).
        output_stride: 8 (the paper's setting) or 16.
    """

    def __init__(
        self,
        num_classes: int = 12,
        backbone: str = "resnet101",
        bins: Sequence[int] = (1, 2, 3, 6),
        channels: int = 512,
        branch_channels: int | None = None,
        dropout: float = 0.1,
        output_stride: int = 8,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if output_stride not in (8, 16):
            raise ValueError(f"output_stride must be 8 or 16, got {output_stride}")
        dilate = (False, True, True) if output_stride == 8 else (False, False, True)
        self.output_stride = output_stride
        self.encoder = resnet_encoder(backbone, in_channels=in_channels, replace_stride_with_dilation=dilate)
        ppm = PyramidPooling(self.encoder.channels[3], bins, branch_channels)
        self.head = nn.Sequential(
            ppm, conv_bn_relu(ppm.out_channels, channels, 3), nn.Dropout2d(dropout), nn.Conv2d(channels, num_classes, 1)
        )
        init_head_weights(self.head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return resize_to(self.head(self.encoder(x)[3]), x.shape[-2:])


# -- U-Net-style encoder–decoder ------------------------------------------------------------------
class _UpBlock(nn.Module):
    def __init__(self, cin: int, skip: int, cout: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(conv_bn_relu(cin + skip, cout), conv_bn_relu(cout, cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None, size: Sequence[int]) -> torch.Tensor:
        x = resize_to(x, size)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.convs(x)


class _UNetHead(nn.Module):
    def __init__(self, enc: Sequence[int], channels: Sequence[int], num_classes: int) -> None:
        super().__init__()
        c1, c2, c3, c4, c5 = channels
        self.center = conv_bn_relu(enc[3], c1)
        self.up3 = _UpBlock(c1, enc[2], c2)  # → H/16, skip F3
        self.up2 = _UpBlock(c2, enc[1], c3)  # → H/8,  skip F2
        self.up1 = _UpBlock(c3, enc[0], c4)  # → H/4,  skip F1
        self.up0 = _UpBlock(c4, 0, c5)  # → H/2
        self.final = _UpBlock(c5, 0, c5)  # → H
        self.classifier = nn.Conv2d(c5, num_classes, 1)


@register("unet", "U-Net/SegNet family: encoder-decoder with skips (Ronneberger et al. 2015)")
class UNet(BaselineNetwork):
    """U-Net-style encoder–decoder on the ResNet features (SegNet/U-Net family).

    Args:
        channels: five decoder widths: the centre block on F4 and the blocks at H/16, H/8, H/4,
            then H/2 and H (the last two have no encoder skip: the ResNet has no stride-1/2 stage
            output) — default (256, 256, 128, 64, 32).
    """

    def __init__(
        self,
        num_classes: int = 12,
        backbone: str = "resnet101",
        channels: Sequence[int] = (256, 256, 128, 64, 32),
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if len(channels) != 5:
            raise ValueError(f"UNet channels needs five widths, got {list(channels)}")
        self.encoder = resnet_encoder(backbone, in_channels=in_channels)
        self.head = _UNetHead(self.encoder.channels, channels, num_classes)
        init_head_weights(self.head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f1, f2, f3, f4 = self.encoder(x)
        h = self.head
        y = h.center(f4)
        y = h.up3(y, f3, f3.shape[-2:])
        y = h.up2(y, f2, f2.shape[-2:])
        y = h.up1(y, f1, f1.shape[-2:])
        y = h.up0(y, None, (2 * f1.shape[2], 2 * f1.shape[3]))
        y = h.final(y, None, x.shape[-2:])
        return h.classifier(y)


def build_baseline(name: str, num_classes: int = 12, backbone: str = "resnet101", **kwargs: Any) -> nn.Module:
    """Build a comparison network by name (see :func:`phgmm.models.registry.build_registered`)."""
    return build_registered(name, num_classes=num_classes, backbone=backbone, **kwargs)
