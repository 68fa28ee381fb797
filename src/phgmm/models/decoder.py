"""PHGMM's decoder and merge stage (paper Fig. 5, docs/design.md §2).

Four groups of residual units at H/32, H/16, H/8 and H/4, all ``3C`` channels. Group 1 starts from
conv1×1(512 → 3C) of the local-space map; every group adds a skip, conv3×3(F_l → 3C) + BN + ReLU of
the encoder level at its resolution; between groups the map is upsampled ×2 (bilinear). Each group's
output passes conv3×3 + ReLU and is upsampled to H/4. The merge concatenates the four maps with the
global map (4·3C + M channels), applies two 1×1 convolutions down to C logits and a learned ×4
upsampling (transposed conv, kernel 8, stride 4, bilinear initialisation — the paper's "8×8"
convolution).

Two rearrangements give the same numbers for less work (both are linear algebra, not approximations;
``tests/test_model.py`` checks them against the literal formulation):

* the skip convolution's *pre-activation* is passed in (``PHGMM`` computes it in the same
  convolution as the two latent summaries, which read the same F_l), so a group applies only the
  skip's BN + ReLU;
* the merge's first 1×1 convolution is applied to each map at its own resolution before the
  bilinear upsampling to H/4 (a 1×1 convolution and a per-channel interpolation commute), so the
  4·3C + M channel H/4 concatenation is never built.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import BasicBlock
from .layers import ConvTranspose2d, conv_bn_relu, resize_to

__all__ = ["Decoder", "MergeHead", "bilinear_kernel"]


class DecoderGroup(nn.Module):
    """One resolution of the decoder: skip + residual units + the side output (at this resolution).

    ``skip`` is conv3×3 + BN + ReLU of the encoder level; :meth:`forward` takes the convolution's
    output (``skip[0](F_l)``, or the matching slice of a shared convolution) and applies the rest.
    """

    def __init__(self, skip_channels: int, channels: int, num_units: int) -> None:
        super().__init__()
        self.skip = conv_bn_relu(skip_channels, channels)
        self.units = nn.Sequential(*(BasicBlock(channels, channels) for _ in range(num_units)))
        self.side = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True))

    def forward(
        self, x: torch.Tensor | None, skip_pre: torch.Tensor, skip_keep: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self.skip[2](self.skip[1](skip_pre))
        if skip_keep is not None:  # N×1×1×1: 0 drops this image's skip (decoder weakening)
            skip = skip * skip_keep
        x = self.units(skip if x is None else resize_to(x, skip.shape[-2:]) + skip)
        return x, self.side(x)


class Decoder(nn.Module):
    """The four decoder groups; returns the four side outputs, each at its group's resolution."""

    def __init__(
        self,
        encoder_channels: Sequence[int],
        in_channels: int | None = 512,
        channels: int = 36,
        units: Sequence[int] = (3, 23, 4, 3),
    ) -> None:
        super().__init__()
        if len(units) != 4:
            raise ValueError(f"decoder_units needs four numbers (one per group), got {list(units)}")
        # in_channels None: no local-space input; group 1 starts from its skip alone ("without z").
        self.input = nn.Conv2d(in_channels, channels, 1) if in_channels else None
        # Group order is coarse → fine: F4 (H/32), F3, F2, F1 (H/4).
        self.groups = nn.ModuleList(
            DecoderGroup(c, channels, n) for c, n in zip(reversed(list(encoder_channels)), units, strict=True)
        )
        self.channels = channels

    def forward(
        self, z_map: torch.Tensor | None, skip_pre: Sequence[torch.Tensor], skip_keep: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Side outputs coarse → fine from the local-space map and the skip convolutions' outputs.

        Args:
            z_map: N×512×(H/32)×(W/32) decoder input (None for a decoder without one).
            skip_pre: ``groups[i].skip[0]`` applied to the encoder levels, fine → coarse
                (F1 … F4 order, as the encoder returns its levels).
            skip_keep: optional N×1×1×1 mask multiplied into every skip (training-time skip dropout).
        """
        x = self.input(z_map) if self.input is not None else None
        sides = []
        for group, pre in zip(self.groups, reversed(list(skip_pre)), strict=True):
            x, side = group(x, pre, skip_keep)
            sides.append(side)
        return sides

    def skip_convs(self) -> list[nn.Conv2d]:
        """The skip convolutions in encoder-level order (F1 … F4)."""
        return [group.skip[0] for group in reversed(self.groups)]


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
    """Concatenate decoder side outputs and the global map at H/4, predict C logits at H×W.

    ``fuse`` (1×1 + BN + ReLU) reads the concatenation; it is computed as the sum of each map's
    share of the 1×1 weights, applied at the map's own resolution and then upsampled (identical
    result, see the module docstring).
    """

    def __init__(self, in_channels: int, mid_channels: int, num_classes: int) -> None:
        super().__init__()
        # 1×1: the side outputs already passed a 3×3 each; a 3×3 here would cost more than the
        # whole H/4 decoder group for no receptive field the skips lack.
        self.fuse = conv_bn_relu(in_channels, mid_channels, kernel=1)
        self.classifier = nn.Conv2d(mid_channels, num_classes, 1)
        self.upsample = ConvTranspose2d(num_classes, num_classes, 8, stride=4, padding=2, bias=False)
        with torch.no_grad():
            self.upsample.weight.copy_(bilinear_kernel(num_classes, 8))

    def forward(self, maps: Sequence[torch.Tensor], size: Sequence[int], out_size: Sequence[int]) -> torch.Tensor:
        """Logits N×C×out_size from the side maps (any resolutions) merged at ``size`` (H/4).

        The maps' channels must add up to the head's input channels, in concatenation order.
        """
        conv, bn, relu = self.fuse
        widths = [m.shape[1] for m in maps]
        if sum(widths) != conv.in_channels:
            raise ValueError(f"merge expects {conv.in_channels} channels in all, got {widths}")
        merged = None
        for weight, m in zip(conv.weight.split(widths, dim=1), maps, strict=True):
            part = resize_to(F.conv2d(m, weight), size)
            merged = part if merged is None else merged + part
        if conv.bias is not None:  # none in training; the folded BatchNorm's (models/fold.py)
            merged = merged + conv.bias.view(1, -1, 1, 1)
        logits = self.upsample(self.classifier(relu(bn(merged))))
        # The H/4 grid is ceil(ceil(H/2)/2), so 4× it covers the input: crop, never stretch.
        return logits[..., : out_size[0], : out_size[1]]
