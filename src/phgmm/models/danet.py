"""DANet (Fu et al. 2019, "Dual Attention Network for Scene Segmentation") on a dilated ResNet.

The ResNet runs at output stride 8 (stages 3 and 4 dilated). Two parallel branches reduce F4 to a
quarter of its channels with a 3×3 conv-BN-ReLU each:

* the *position attention module* (PAM) lets every pixel attend to every other:
  E = softmax_j(q_i·k_j) with q, k 1×1 projections to C/8 channels, out_i = γ·Σ_j E_ij v_j + x_i
  (v a 1×1 projection, γ a learned scalar starting at 0);
* the *channel attention module* (CAM) lets every channel attend to every channel:
  A = softmax_b(max_b' e_ab' − e_ab) with e_ab = Σ_p x_a(p) x_b(p), out_a = β·Σ_b A_ab x_b + x_a
  (β learned, starting at 0; the max-minus form is the reference's, for numerical range).

Each branch has a 3×3 conv-BN-ReLU after its module; their sum is classified (dropout 0.1, 1×1).
As in the reference (junfu1115/DANet ``danet.py``), each branch also has its own classifier whose
loss is added in training with weight 1 (the reference sums the three losses); evaluation returns the
fused logits alone.
"""

from __future__ import annotations

import torch
from torch import nn

from .auxiliary import AuxLogits
from .backbone import resnet_encoder
from .base import BaselineNetwork, init_head_weights
from .layers import conv_bn_relu, resize_to
from .registry import register

__all__ = ["DANet", "PositionAttention", "ChannelAttention", "DANetHead"]


class PositionAttention(nn.Module):
    """PAM: self-attention over the H·W positions, residual with a learned scale γ (starts at 0)."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        self.query = nn.Conv2d(channels, channels // reduction, 1)
        self.key = nn.Conv2d(channels, channels // reduction, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.query(x).flatten(2).transpose(1, 2)  # N×HW×C'
        k = self.key(x).flatten(2)  # N×C'×HW
        attention = torch.softmax(torch.bmm(q, k), dim=-1)  # N×HW×HW, rows sum to 1
        v = self.value(x).flatten(2)  # N×C×HW
        out = torch.bmm(v, attention.transpose(1, 2)).view_as(x)
        return self.gamma * out + x


class ChannelAttention(nn.Module):
    """CAM: attention between the C channels (no projections), residual with a learned scale."""

    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(2)  # N×C×HW
        energy = torch.bmm(flat, flat.transpose(1, 2))  # N×C×C
        energy = energy.amax(dim=-1, keepdim=True) - energy
        attention = torch.softmax(energy, dim=-1)
        return self.gamma * torch.bmm(attention, flat).view_as(x) + x


def _classifier(cin: int, num_classes: int, dropout: float = 0.1) -> nn.Sequential:
    return nn.Sequential(nn.Dropout2d(dropout), nn.Conv2d(cin, num_classes, 1))


class DANetHead(nn.Module):
    """Both attention branches, their sum and the three classifiers (fused, PAM-only, CAM-only)."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        inter = in_channels // 4
        self.conv_p = conv_bn_relu(in_channels, inter)
        self.conv_c = conv_bn_relu(in_channels, inter)
        self.pam = PositionAttention(inter)
        self.cam = ChannelAttention()
        self.post_p = conv_bn_relu(inter, inter)
        self.post_c = conv_bn_relu(inter, inter)
        self.cls_p = _classifier(inter, num_classes)
        self.cls_c = _classifier(inter, num_classes)
        self.cls = _classifier(inter, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        p = self.post_p(self.pam(self.conv_p(x)))
        c = self.post_c(self.cam(self.conv_c(x)))
        return self.cls(p + c), self.cls_p(p), self.cls_c(c)


@register("danet", "DANet: position and channel attention on a dilated ResNet, output stride 8 (Fu et al. 2019)")
class DANet(BaselineNetwork):
    """DANet on a dilated ResNet (output stride 8).

    Args:
        num_classes: C.
        backbone: ``resnet18``/``34``/``50``/``101``/``152`` (the paper: ResNet-101).
        aux_weight: weight of each single-branch classifier's ℓ_s in training (the reference: 1).
        in_channels: image channels.
    """

    def __init__(
        self, num_classes: int = 12, backbone: str = "resnet101", aux_weight: float = 1.0, in_channels: int = 3
    ) -> None:
        super().__init__()
        self.aux_weight = float(aux_weight)
        self.encoder = resnet_encoder(
            backbone, in_channels=in_channels, replace_stride_with_dilation=(False, True, True)
        )
        self.head = DANetHead(self.encoder.channels[3], num_classes)
        init_head_weights(self.head)

    def forward(self, x: torch.Tensor) -> torch.Tensor | AuxLogits:
        fused, p, c = self.head(self.encoder(x)[3])
        size = x.shape[-2:]
        if not self.training:
            return resize_to(fused, size)
        return AuxLogits(
            resize_to(fused, size), ((self.aux_weight, resize_to(p, size)), (self.aux_weight, resize_to(c, size)))
        )
