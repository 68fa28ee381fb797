"""CCNet (Huang et al., ICCV 2019 / TPAMI 2020): recurrent criss-cross attention on a dilated ResNet.

Criss-cross attention lets every position attend to the H + W − 1 positions of its own row and
column (itself counted once). With queries and keys from 1×1 convolutions (C/8 channels) and values
from a 1×1 convolution (C channels), the H column energies (the position's own one masked out) and
the W row energies share one soft-max; the output is γ·(attended values) + input, with γ a learned
scalar starting at 0. Applied R = 2 times with the same weights (the RCCA module), every position
sees every other one. Written in plain PyTorch (einsum), with no CUDA extension, so it runs and
exports to ONNX anywhere.

The head follows the reference implementation's RCCA module: 3×3 conv (F4 → 512) + BN + ReLU,
criss-cross attention ×R, 3×3 conv + BN + ReLU, concatenated with F4, 3×3 conv to 512 + BN + ReLU,
dropout 0.1, 1×1 classifier, bilinear upsampling from output stride 8. In training mode the
reference's deep-supervision head on F3 (3×3 conv to 512 + BN + ReLU, dropout 0.1, 1×1 classifier)
adds its ℓ_s with weight 0.4 (an :class:`~.auxiliary.AuxLogits`); evaluation, prediction and the ONNX
export see the main logits only, and the head is counted in ``training_total`` only. Departure: ReLU
where the reference's in-place activated BN uses leaky ReLU (slope 0.01).
"""

from __future__ import annotations

import torch
from torch import nn

from .auxiliary import AuxLogits
from .backbone import resnet_encoder
from .base import BaselineNetwork, init_head_weights
from .layers import conv_bn_relu, resize_to
from .registry import register

__all__ = ["CCNet", "CrissCrossAttention", "RCCAHead", "deep_supervision_head"]


class CrissCrossAttention(nn.Module):
    """Criss-cross attention: each position attends to its row and its column (H + W − 1 positions)."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        inner = max(1, channels // reduction)
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.shape[2]
        q, k, v = self.query(x), self.key(x), self.value(x)
        e_col = torch.einsum("nchw,ncrw->nhwr", q, k)  # N×H×W×H: position (h, w) vs (r, w)
        e_row = torch.einsum("nchw,nchs->nhws", q, k)  # N×H×W×W: position (h, w) vs (h, s)
        rows = torch.arange(h, device=x.device)
        self_in_column = (rows[:, None] == rows[None, :])[None, :, None, :]
        # the position itself is in both its row and its column: count it once (in the row)
        e_col = e_col.masked_fill(self_in_column, float("-inf"))
        attn = torch.softmax(torch.cat([e_col, e_row], dim=-1), dim=-1)
        a_col, a_row = attn[..., :h], attn[..., h:]
        out = torch.einsum("nhwr,ncrw->nchw", a_col, v) + torch.einsum("nhws,nchs->nchw", a_row, v)
        return self.gamma * out + x


class RCCAHead(nn.Module):
    """Reduce, criss-cross attention ``recurrence`` times (shared weights), refine, fuse with the input,
    classify."""

    def __init__(
        self, cin: int, num_classes: int, channels: int = 512, recurrence: int = 2, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.recurrence = recurrence
        self.reduce = conv_bn_relu(cin, channels)
        self.cca = CrissCrossAttention(channels)
        self.refine = conv_bn_relu(channels, channels)
        self.fuse = nn.Sequential(
            conv_bn_relu(cin + channels, channels), nn.Dropout2d(dropout), nn.Conv2d(channels, num_classes, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.reduce(x)
        for _ in range(self.recurrence):
            y = self.cca(y)
        return self.fuse(torch.cat([x, self.refine(y)], dim=1))


def deep_supervision_head(cin: int, num_classes: int, channels: int = 512, dropout: float = 0.1) -> nn.Sequential:
    """The reference's auxiliary classifier on F3: 3×3 conv-BN-ReLU, dropout, 1×1."""
    return nn.Sequential(*conv_bn_relu(cin, channels), nn.Dropout2d(dropout), nn.Conv2d(channels, num_classes, 1))


@register(
    "ccnet", "CCNet: recurrent criss-cross attention (R=2) on a dilated ResNet, output stride 8 (Huang et al. 2019)"
)
class CCNet(BaselineNetwork):
    """CCNet (Huang et al. 2019).

    Args:
        num_classes: C.
        backbone: ``resnet101`` in the paper (any of resnet18…152), dilated to output stride 8.
        channels: width of the attention head (512).
        recurrence: R, how many times the criss-cross attention is applied (2).
        dropout: before the classifier (0.1).
        aux_weight: weight of the F3 deep-supervision head's ℓ_s in training (0.4); 0 builds no such head.
        in_channels: image channels.
    """

    aux_modules = ("aux_head",)

    def __init__(
        self,
        num_classes: int = 12,
        backbone: str = "resnet101",
        channels: int = 512,
        recurrence: int = 2,
        dropout: float = 0.1,
        aux_weight: float = 0.4,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if recurrence < 1:
            raise ValueError(f"CCNet recurrence must be >= 1, got {recurrence}")
        self.encoder = resnet_encoder(
            backbone, in_channels=in_channels, replace_stride_with_dilation=(False, True, True)
        )
        self.head = RCCAHead(self.encoder.channels[3], num_classes, channels, recurrence, dropout)
        self.aux_weight = float(aux_weight)
        self.aux_head = deep_supervision_head(self.encoder.channels[2], num_classes) if aux_weight else None
        init_head_weights(self.head)
        if self.aux_head is not None:
            init_head_weights(self.aux_head)

    def forward(self, x: torch.Tensor) -> torch.Tensor | AuxLogits:
        f3, f4 = self.encoder(x)[2:]
        logits = resize_to(self.head(f4), x.shape[-2:])
        if not self.training or self.aux_head is None:
            return logits
        return AuxLogits(logits, ((self.aux_weight, resize_to(self.aux_head(f3), x.shape[-2:])),))
