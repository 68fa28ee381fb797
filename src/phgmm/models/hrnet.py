"""HRNetV2 (Wang et al. 2020, "Deep High-Resolution Representation Learning for Visual Recognition").

The network keeps a high-resolution branch (H/4) from the stem to the head and adds one
lower-resolution branch per stage (H/8, H/16, H/32), so stage 4 runs four parallel branches. Every
high-resolution module runs each branch's residual blocks and then fuses all branches into each
one (repeated multi-resolution fusion): a finer branch reaches a coarser one through strided 3×3
convolutions, a coarser one a finer one through a 1×1 convolution and bilinear upsampling; the
contributions are summed and passed through a ReLU. The HRNetV2 segmentation head upsamples the four
outputs to H/4, concatenates them (15C channels for width C) and classifies with 1×1 conv-BN-ReLU
and a 1×1 classifier, as the reference ``seg_hrnet.py`` (HRNet/HRNet-Semantic-Segmentation).

Two depths: ``full`` (stage 1: 4 bottlenecks; stages 2/3/4: 1/4/3 modules of 4 basic blocks per
branch — HRNetV2-W48) and ``small`` (2 bottlenecks; 1/3/2 modules of 2 blocks — the reference's
HRNetV2-W18-Small-v2). HRNet is its own backbone: ``model.backbone`` (a ResNet name) does not apply
and is ignored.

Departures from the reference: bilinear resizing is pixel-centre aligned (``align_corners=False``,
as every network here; the reference uses ``True``), and weights start from He initialisation with
the last BatchNorm of each residual block at zero (trained from scratch, as the paper compares).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .backbone import BasicBlock, Bottleneck
from .base import BaselineNetwork, init_head_weights
from .layers import resize_to
from .registry import register

__all__ = [
    "HRNetV2",
    "HRNetBackbone",
    "HighResolutionModule",
    "hrnet_depth",
    "HRNET_DEPTHS",
    "concat_branches",
    "hrnet_classifier",
    "init_hrnet_weights",
]

#: per depth: stage-1 bottlenecks, then (modules, blocks per branch) of stages 2, 3 and 4
HRNET_DEPTHS: dict[str, tuple[int, tuple[tuple[int, int], ...]]] = {
    "full": (4, ((1, 4), (4, 4), (3, 4))),
    "small": (2, ((1, 2), (3, 2), (2, 2))),
}


def hrnet_depth(depth: str) -> tuple[int, tuple[tuple[int, int], ...]]:
    if depth not in HRNET_DEPTHS:
        raise ValueError(f"unknown HRNet depth {depth!r}; choose one of {', '.join(HRNET_DEPTHS)}")
    return HRNET_DEPTHS[depth]


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _downsampler(cin: int, cout: int, steps: int) -> nn.Sequential:
    """``steps`` stride-2 3×3 conv-BN: ReLU between them, none after the last (it is summed)."""
    return nn.Sequential(
        *(_conv_bn(cin, cout if k == steps - 1 else cin, 3, stride=2, relu=k < steps - 1) for k in range(steps))
    )


class HighResolutionModule(nn.Module):
    """One exchange unit: residual blocks per branch, then every branch fused into every output.

    Args:
        channels: width of each branch, finest first.
        blocks: basic blocks per branch.
    """

    def __init__(self, channels: Sequence[int], blocks: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList(nn.Sequential(*(BasicBlock(c, c) for _ in range(blocks))) for c in channels)
        fuse = []
        for i, ci in enumerate(channels):
            row: list[nn.Module] = []
            for j, cj in enumerate(channels):
                if j == i:
                    row.append(nn.Identity())
                elif j > i:  # coarser → finer: 1×1 to the target width, upsampled in forward
                    row.append(_conv_bn(cj, ci, 1, relu=False))
                else:  # finer → coarser: i − j strided convolutions
                    row.append(_downsampler(cj, ci, i - j))
            fuse.append(nn.ModuleList(row))
        self.fuse = nn.ModuleList(fuse)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs, strict=True)]
        out = []
        for i, row in enumerate(self.fuse):
            size = xs[i].shape[-2:]
            y = xs[i]
            for j, layer in enumerate(row):
                if j != i:
                    y = y + resize_to(layer(xs[j]), size)
            out.append(self.relu(y))
        return out


class HRNetBackbone(nn.Module):
    """Stem (two stride-2 3×3 convolutions, H/4), stage 1 (bottlenecks at 64 → 256 channels) and
    stages 2–4 with 2, 3 and 4 parallel branches of widths C, 2C, 4C, 8C.

    ``forward`` returns the four branch outputs at H/4, H/8, H/16 and H/32 (each side rounded up).
    """

    def __init__(self, width: int = 48, depth: str = "full", in_channels: int = 3) -> None:
        super().__init__()
        stage1_blocks, stages = hrnet_depth(depth)
        # not `depth`: load_pretrained_backbone reads that name as a ResNet depth
        self.width, self.stage_depth = width, depth
        self.stem = nn.Sequential(_conv_bn(in_channels, 64, 3, stride=2), _conv_bn(64, 64, 3, stride=2))
        down = nn.Sequential(nn.Conv2d(64, 256, 1, bias=False), nn.BatchNorm2d(256))
        self.layer1 = nn.Sequential(
            Bottleneck(64, 64, downsample=down), *(Bottleneck(256, 64) for _ in range(1, stage1_blocks))
        )
        previous = [256]
        self.transitions = nn.ModuleList()
        self.stages = nn.ModuleList()
        for s, (modules, blocks) in enumerate(stages):
            channels = [width * 2**b for b in range(s + 2)]
            self.transitions.append(self._transition(previous, channels))
            self.stages.append(nn.Sequential(*(HighResolutionModule(channels, blocks) for _ in range(modules))))
            previous = channels
        self.channels: list[int] = previous

    @staticmethod
    def _transition(previous: Sequence[int], channels: Sequence[int]) -> nn.ModuleList:
        """Adapt the existing branches' widths (3×3 conv where they differ) and open the new
        coarser branch from the coarsest existing one with a stride-2 3×3 convolution."""
        layers: list[nn.Module] = []
        for i, c in enumerate(channels):
            if i < len(previous):
                layers.append(nn.Identity() if previous[i] == c else _conv_bn(previous[i], c, 3))
            else:
                layers.append(_conv_bn(previous[-1], c, 3, stride=2))
        return nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        xs = [self.layer1(self.stem(x))]
        for transition, stage in zip(self.transitions, self.stages, strict=True):
            xs = [layer(xs[min(i, len(xs) - 1)]) for i, layer in enumerate(transition)]
            xs = stage(xs)
        return xs


def concat_branches(xs: Sequence[torch.Tensor]) -> torch.Tensor:
    """HRNetV2's representation: every branch upsampled to the finest one's size, concatenated."""
    size = xs[0].shape[-2:]
    return torch.cat([resize_to(x, size) for x in xs], dim=1)


def hrnet_classifier(channels: int, num_classes: int) -> nn.Sequential:
    """The reference's ``last_layer``: 1×1 conv-BN-ReLU at full width, then the 1×1 classifier."""
    return nn.Sequential(
        nn.Conv2d(channels, channels, 1),
        nn.BatchNorm2d(channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(channels, num_classes, 1),
    )


def init_hrnet_weights(module: nn.Module) -> None:
    """The heads' initialisation (:func:`~phgmm.models.base.init_head_weights`), and every residual block of
    ``module`` starting as the identity."""
    init_head_weights(module)
    # each residual block starts as the identity (as the project's ResNet): stabler from scratch
    for m in module.modules():
        if isinstance(m, Bottleneck):
            nn.init.zeros_(m.bn3.weight)
        elif isinstance(m, BasicBlock):
            nn.init.zeros_(m.bn2.weight)


class HRNetV2(BaselineNetwork):
    """HRNetV2 for segmentation: :class:`HRNetBackbone` + concatenation head, logits at H×W.

    Args:
        num_classes: C.
        backbone: ignored (HRNet is its own backbone; the key exists for every network).
        width: the finest branch's width (48 for W48, 18 for W18).
        depth: ``full`` or ``small`` (see :data:`HRNET_DEPTHS`).
        in_channels: image channels.
    """

    def __init__(
        self, num_classes: int = 12, backbone: str = "hrnet", width: int = 48, depth: str = "full", in_channels: int = 3
    ) -> None:
        super().__init__()
        self.encoder = HRNetBackbone(width, depth, in_channels)
        init_hrnet_weights(self.encoder)
        self.head = hrnet_classifier(sum(self.encoder.channels), num_classes)
        init_head_weights(self.head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return resize_to(self.head(concat_branches(self.encoder(x))), x.shape[-2:])


@register(
    "hrnet_w48",
    "HRNetV2-W48: four parallel branches, repeated multi-resolution fusion, "
    "concatenation head (Wang et al. 2020); model.backbone does not apply",
)
class HRNetV2W48(HRNetV2):
    def __init__(
        self, num_classes: int = 12, backbone: str = "hrnet", width: int = 48, depth: str = "full", in_channels: int = 3
    ) -> None:
        super().__init__(num_classes, backbone, width, depth, in_channels)


@register("hrnet_w18", "HRNetV2-W18-Small-v2: the small HRNetV2 (Wang et al. 2020); model.backbone does not apply")
class HRNetV2W18(HRNetV2):
    def __init__(
        self,
        num_classes: int = 12,
        backbone: str = "hrnet",
        width: int = 18,
        depth: str = "small",
        in_channels: int = 3,
    ) -> None:
        super().__init__(num_classes, backbone, width, depth, in_channels)
