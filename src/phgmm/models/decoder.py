"""PHGMM's decoder and merge stage (paper Fig. 5, SPEC §2).

Four groups of residual units at H/32, H/16, H/8 and H/4, all ``3C`` channels. Group 1 starts from
conv1×1(512 → 3C) of the local-space map; every group adds a skip, conv3×3(F_l → 3C) + BN + ReLU of
the encoder level at its resolution; between groups the map is upsampled ×2 (bilinear). Each group's
output passes conv3×3 + ReLU and is upsampled to H/4. The merge concatenates the four maps with the
global map (4·3C + M channels), applies two 1×1 convolutions down to C logits and a learned ×4
upsampling (transposed conv, kernel 8, stride 4, bilinear initialisation — the paper's "8×8"
convolution).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import BasicBlock

__all__ = ["Decoder", "MergeHead", "bilinear_kernel"]


def conv_bn_relu(cin: int, cout: int, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def resize_to(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class DecoderGroup(nn.Module):
    """One resolution of the decoder: skip + residual units + the H/4 side output."""

    def __init__(self, skip_channels: int, channels: int, num_units: int) -> None:
        super().__init__()
        self.skip = conv_bn_relu(skip_channels, channels)
        self.units = nn.Sequential(*(BasicBlock(channels, channels) for _ in range(num_units)))
        self.side = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.units(resize_to(x, skip.shape[-2:]) + self.skip(skip))
        return x, self.side(x)


class Decoder(nn.Module):
    """The four decoder groups; returns the four side outputs, each at H/4."""

    def __init__(self, encoder_channels: Sequence[int], in_channels: int = 512, channels: int = 36,
                 units: Sequence[int] = (3, 23, 4, 3)) -> None:
        super().__init__()
        if len(units) != 4:
            raise ValueError(f"decoder_units needs four numbers (one per group), got {list(units)}")
        self.input = nn.Conv2d(in_channels, channels, 1)
        # Group order is coarse → fine: F4 (H/32), F3, F2, F1 (H/4).
        self.groups = nn.ModuleList(DecoderGroup(c, channels, n)
                                    for c, n in zip(reversed(list(encoder_channels)), units))
        self.channels = channels

    def forward(self, z_map: torch.Tensor, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        x = self.input(z_map)
        h4 = features[0].shape[-2:]
        sides = []
        for group, skip in zip(self.groups, reversed(list(features))):
            x, side = group(x, skip)
            sides.append(resize_to(side, h4))
        return sides


def bilinear_kernel(channels: int, kernel_size: int) -> torch.Tensor:
    """Weights of a per-channel bilinear upsampling transposed convolution (FCN's initialisation)."""
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = torch.arange(kernel_size, dtype=torch.float32)
    filt1d = 1 - (og - center).abs() / factor
    filt = filt1d[:, None] * filt1d[None, :]
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    weight[range(channels), range(channels)] = filt
    return weight


class MergeHead(nn.Module):
    """Concatenate decoder side outputs and the global map at H/4, predict C logits at H×W."""

    def __init__(self, in_channels: int, mid_channels: int, num_classes: int) -> None:
        super().__init__()
        # 1×1: the side outputs already passed a 3×3 each; a 3×3 here would cost more than the
        # whole H/4 decoder group for no receptive field the skips lack.
        self.fuse = conv_bn_relu(in_channels, mid_channels, kernel=1)
        self.classifier = nn.Conv2d(mid_channels, num_classes, 1)
        self.upsample = nn.ConvTranspose2d(num_classes, num_classes, 8, stride=4, padding=2, bias=False)
        with torch.no_grad():
            self.upsample.weight.copy_(bilinear_kernel(num_classes, 8))

    def forward(self, maps: Sequence[torch.Tensor], out_size: Sequence[int]) -> torch.Tensor:
        logits = self.upsample(self.classifier(self.fuse(torch.cat(list(maps), dim=1))))
        # The H/4 grid is ceil(ceil(H/2)/2), so 4× it covers the input: crop, never stretch.
        return logits[..., : out_size[0], : out_size[1]]
