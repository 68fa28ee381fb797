"""OCNet (Yuan & Wang 2018, "OCNet: Object Context Network for Scene Parsing") on a dilated ResNet.

The *object context* of a pixel is the attention-weighted sum of the features of all pixels, with
weights from the similarity of their keys: c_i = W·Σ_j softmax_j(κ_i·κ_j / √d) v_j, where κ is a
shared 1×1 conv-BN-ReLU projection (query = key, as the reference) to d channels, v a 1×1
projection and W a 1×1 convolution initialised at zero (so the context starts empty).

* **Base-OC** (``ocnet``): F4 → 3×3 conv-BN-ReLU to 512 channels → object context (key and value
  256 channels) → the context concatenated with its input → 1×1 conv-BN-ReLU to 512, dropout 0.05.
* **ASP-OC** (``ocnet_asp``): F4 → 3×3 conv-BN-ReLU to 512 → five parallel branches of 256
  channels — object context (after a 3×3 conv-BN-ReLU; computed on a 2× max-pooled map and
  upsampled, then a 1×1 conv-BN-ReLU), a 1×1 conv and three 3×3 atrous convolutions at rates 12, 24
  and 36 — concatenated → 1×1 conv-BN-ReLU to 512, dropout 0.1.

Both classify with a 1×1 convolution; in training an auxiliary head on F3 (3×3 conv-BN-ReLU to 512,
dropout 0.1, 1×1) adds its ℓ_s with weight 0.4, as the reference's deep supervision (OCNet.pytorch,
``CriterionDSN``). Departures: the reference's InPlace-ABN (BatchNorm + leaky ReLU) is BatchNorm +
ReLU here, and bilinear resizing is pixel-centre aligned.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .auxiliary import AuxLogits
from .backbone import resnet_encoder
from .base import BaselineNetwork, init_head_weights
from .layers import conv_bn_relu, resize_to
from .registry import register

__all__ = ["ObjectContext", "BaseOC", "ASPOC", "OCNet", "OCNetASP", "AUX_WEIGHT"]

#: weight of the F3 auxiliary head's loss (the reference's deep supervision)
AUX_WEIGHT = 0.4


class ObjectContext(nn.Module):
    """Self-attention block: shared query/key projection, value, zero-initialised output projection.

    Args:
        channels: input and output channels.
        key_channels, value_channels: d and the value width.
        scale: attend on a ``scale``× max-pooled map (ASP-OC's 2) and upsample the context back.
    """

    def __init__(self, channels: int, key_channels: int, value_channels: int, scale: int = 1) -> None:
        super().__init__()
        self.key_channels, self.scale = key_channels, scale
        self.f_key = nn.Sequential(
            nn.Conv2d(channels, key_channels, 1), nn.BatchNorm2d(key_channels), nn.ReLU(inplace=True)
        )
        self.f_value = nn.Conv2d(channels, value_channels, 1)
        self.W = nn.Conv2d(value_channels, channels, 1)

    def reset_output(self) -> None:
        """Zero the output projection (the reference's initialisation: the context starts empty)."""
        nn.init.zeros_(self.W.weight)
        nn.init.zeros_(self.W.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        if self.scale > 1:
            x = F.max_pool2d(x, self.scale, ceil_mode=True)  # ceil: a 1-pixel side stays 1
        n, _, h, w = x.shape
        key = self.f_key(x).flatten(2)  # N×d×HW (also the query)
        value = self.f_value(x).flatten(2).transpose(1, 2)  # N×HW×V
        sim = torch.softmax(torch.bmm(key.transpose(1, 2), key) * self.key_channels**-0.5, dim=-1)
        context = torch.bmm(sim, value).transpose(1, 2).reshape(n, -1, h, w)
        return resize_to(self.W(context), size)


class BaseOC(nn.Module):
    """Object context concatenated with its input, fused by a 1×1 conv-BN-ReLU and dropout."""

    def __init__(self, channels: int = 512, key_channels: int = 256, dropout: float = 0.05) -> None:
        super().__init__()
        self.context = ObjectContext(channels, key_channels, key_channels)
        self.fuse = nn.Sequential(*conv_bn_relu(2 * channels, channels, 1), nn.Dropout2d(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([self.context(x), x], dim=1))


class ASPOC(nn.Module):
    """Atrous spatial pyramid with an object-context branch in place of image pooling."""

    def __init__(
        self, channels: int = 512, branch_channels: int = 256, rates: Sequence[int] = (12, 24, 36), dropout: float = 0.1
    ) -> None:
        super().__init__()
        c = branch_channels
        self.context_in = nn.Sequential(nn.Conv2d(channels, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.context = ObjectContext(c, c // 2, c // 2, scale=2)
        self.context_out = conv_bn_relu(c, c, 1)
        self.branches = nn.ModuleList(
            [conv_bn_relu(channels, c, 1)] + [conv_bn_relu(channels, c, 3, dilation=r) for r in rates]
        )
        self.fuse = nn.Sequential(*conv_bn_relu((len(rates) + 2) * c, 2 * c, 1), nn.Dropout2d(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = self.context_out(self.context(self.context_in(x)))
        return self.fuse(torch.cat([context, *(b(x) for b in self.branches)], dim=1))


class _OCHead(nn.Module):
    def __init__(self, enc: Sequence[int], num_classes: int, asp: bool) -> None:
        super().__init__()
        self.reduce = nn.Sequential(nn.Conv2d(enc[3], 512, 3, padding=1), nn.BatchNorm2d(512), nn.ReLU(inplace=True))
        self.context = ASPOC(512) if asp else BaseOC(512)
        self.cls = nn.Conv2d(512, num_classes, 1)
        self.dsn = nn.Sequential(
            nn.Conv2d(enc[2], 512, 3, padding=1),
            nn.BatchNorm2d(512),
            nn.ReLU(inplace=True),
            nn.Dropout2d(0.1),
            nn.Conv2d(512, num_classes, 1),
        )


class _OCNetBase(BaselineNetwork):
    asp = False

    def __init__(
        self, num_classes: int = 12, backbone: str = "resnet101", aux_weight: float = AUX_WEIGHT, in_channels: int = 3
    ) -> None:
        super().__init__()
        self.aux_weight = float(aux_weight)
        self.encoder = resnet_encoder(
            backbone, in_channels=in_channels, replace_stride_with_dilation=(False, True, True)
        )
        self.head = _OCHead(self.encoder.channels, num_classes, self.asp)
        init_head_weights(self.head)
        for m in self.head.modules():
            if isinstance(m, ObjectContext):
                m.reset_output()

    def forward(self, x: torch.Tensor) -> torch.Tensor | AuxLogits:
        f3, f4 = self.encoder(x)[2:]
        h, size = self.head, x.shape[-2:]
        logits = resize_to(h.cls(h.context(h.reduce(f4))), size)
        if not self.training:
            return logits
        return AuxLogits(logits, ((self.aux_weight, resize_to(h.dsn(f3), size)),))


@register(
    "ocnet", "OCNet (Base-OC): object context by self-attention on a dilated ResNet, output stride 8 (Yuan & Wang 2018)"
)
class OCNet(_OCNetBase):
    """OCNet with the Base-OC module (see the module docstring). Args as :class:`~.danet.DANet`;
    ``aux_weight`` weighs the F3 head's ℓ_s (0.4)."""

    def __init__(
        self, num_classes: int = 12, backbone: str = "resnet101", aux_weight: float = AUX_WEIGHT, in_channels: int = 3
    ) -> None:
        super().__init__(num_classes, backbone, aux_weight, in_channels)


@register(
    "ocnet_asp",
    "OCNet (ASP-OC): object context inside an atrous spatial pyramid on a dilated ResNet (Yuan & Wang 2018)",
)
class OCNetASP(_OCNetBase):
    """OCNet with the ASP-OC module (see the module docstring)."""

    asp = True

    def __init__(
        self, num_classes: int = 12, backbone: str = "resnet101", aux_weight: float = AUX_WEIGHT, in_channels: int = 3
    ) -> None:
        super().__init__(num_classes, backbone, aux_weight, in_channels)
