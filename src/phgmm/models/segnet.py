"""SegNet (Badrinarayanan et al. 2017, TPAMI 39(12)): a VGG-16 encoder and a mirrored decoder that
upsamples with the encoder's max-pooling indices.

* Encoder: the 13 convolutional layers of VGG-16 (3×3, conv-BN-ReLU) in five blocks of 2, 2, 3, 3
  and 3 layers (64, 128, 256, 512, 512 channels), each block followed by 2×2 max pooling whose
  argmax positions are kept. VGG's fully connected layers are dropped, as in the paper.
* Decoder: per block, from the deepest, unpooling with that block's indices (a sparse map, values
  at the maxima, zeros elsewhere) then the block's convolutions mirrored, the last of each block
  reducing to the next shallower block's width; the very last 3×3 convolution outputs the C class
  scores (the paper's soft-max classifier is the loss's).

The network has its own encoder, so ``model.backbone`` does not apply: it is accepted and ignored
(as every comparison network accepts the PHGMM-only keys), and recorded in the build arguments only.
Pooling is in ceil mode, so any H×W (also odd) comes back at H×W: an odd last row/column is a
window of its own, and unpooling crops to the size before pooling (Caffe's SegNet pools in ceil mode).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .base import BaselineNetwork, init_head_weights
from .layers import conv_bn_relu
from .pooling import max_pool2x2_with_argmax, max_unpool2x2
from .registry import register

__all__ = ["SegNet", "SegNetHalf", "VGG16_BLOCKS"]

#: convolutions per VGG-16 block (13 in all)
VGG16_BLOCKS = (2, 2, 3, 3, 3)


def _encoder_block(cin: int, cout: int, layers: int) -> nn.Sequential:
    return nn.Sequential(*(conv_bn_relu(cin if i == 0 else cout, cout) for i in range(layers)))


class _SegNetDecoder(nn.Module):
    """Decoder blocks (deepest first) and the classifier."""

    def __init__(self, channels: Sequence[int], num_classes: int) -> None:
        super().__init__()
        blocks = []
        for i in reversed(range(len(channels))):
            c, layers = channels[i], VGG16_BLOCKS[i]
            if i == 0:  # the shallowest block: its last convolution is the classifier
                blocks.append(_encoder_block(c, c, layers - 1))
            else:
                convs = [conv_bn_relu(c, c) for _ in range(layers - 1)] + [conv_bn_relu(c, channels[i - 1])]
                blocks.append(nn.Sequential(*convs))
        self.blocks = nn.ModuleList(blocks)
        self.classifier = nn.Conv2d(channels[0], num_classes, 3, padding=1)


@register(
    "segnet",
    "SegNet: VGG-16 encoder, decoder unpooling with the max-pooling indices "
    "(Badrinarayanan et al. 2017); model.backbone does not apply",
)
class SegNet(BaselineNetwork):
    """SegNet (Badrinarayanan et al. 2017).

    Args:
        num_classes: C.
        backbone: ignored (SegNet's encoder is its own VGG-16).
        channels: the five block widths (64, 128, 256, 512, 512); smaller for CPU-scale runs.
        in_channels: image channels.
    """

    def __init__(
        self,
        num_classes: int = 12,
        backbone: str = "resnet101",
        channels: Sequence[int] = (64, 128, 256, 512, 512),
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if len(channels) != len(VGG16_BLOCKS):
            raise ValueError(f"SegNet channels needs five widths, got {list(channels)}")
        widths = [in_channels, *channels]
        self.encoder = nn.ModuleList(_encoder_block(widths[i], widths[i + 1], n) for i, n in enumerate(VGG16_BLOCKS))
        self.head = _SegNetDecoder(channels, num_classes)
        init_head_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        trail = []  # (size before pooling, argmax) per block
        for block in self.encoder:
            x = block(x)
            size = x.shape[-2:]
            x, where = max_pool2x2_with_argmax(x)
            trail.append((size, where))
        for block, (size, where) in zip(self.head.blocks, reversed(trail), strict=True):
            x = block(max_unpool2x2(x, where, size))
        return self.head.classifier(x)


@register(
    "segnet_half",
    "SegNet at half width (32-256 channels, a quarter of the FLOPs): the CPU-scale "
    "stand-in, not a variant of the paper; model.backbone does not apply",
)
class SegNetHalf(SegNet):
    """:class:`SegNet` with every block at half width (32, 64, 128, 256, 256; 7.37 M parameters with
    11 classes, a quarter of the convolutions' multiply-adds), for the CPU-scale comparison."""

    def __init__(
        self,
        num_classes: int = 12,
        backbone: str = "resnet101",
        channels: Sequence[int] = (32, 64, 128, 256, 256),
        in_channels: int = 3,
    ) -> None:
        super().__init__(num_classes, backbone, channels, in_channels)
