"""HRNet + OCR (Yuan, Chen & Wang 2020, "Object-Contextual Representations for Semantic Segmentation").

On HRNetV2's concatenated representation (:mod:`.hrnet`), OCR

1. predicts *soft object regions*: an auxiliary head (HRNetV2's classifier) gives K = C class
   maps M (N×K×H×W at H/4);
2. aggregates *object region representations*: f_k = Σ_i softmax_i(M_k)_i · x_i, a spatial softmax
   of each region over the pixels weighting the pixel features x (512 channels after a 3×3
   conv-BN-ReLU);
3. computes the *object-contextual representation* of each pixel: attention of the pixel's query
   over the K region keys, y_i = Σ_k softmax_k(q_i·κ_k / √d) v_k, with q, κ, v two/two/one 1×1
   conv-BN-ReLU transforms to d = 256 channels and y brought back to 512 by another one;
4. classifies the concatenation [y, x] after a 1×1 conv-BN-ReLU and dropout 0.05.

In training mode the network returns :class:`~.auxiliary.AuxLogits` with the soft-region head's
logits at weight 0.4, as the reference (``seg_hrnet_ocr.py`` with the loss's ``BALANCE_WEIGHTS``
[0.4, 1]); evaluation mode returns the main logits alone. Departures from the reference are those of
:mod:`.hrnet`; the OCR layers are the reference's (mid 512, key 256 channels).
"""

from __future__ import annotations

import torch
from torch import nn

from .auxiliary import AuxLogits
from .base import BaselineNetwork, init_head_weights
from .hrnet import HRNetBackbone, concat_branches, hrnet_classifier, init_hrnet_weights
from .layers import conv_bn_relu, resize_to
from .registry import register

__all__ = ["HRNetOCR", "object_region_representations", "ObjectAttention", "OCRHead", "AUX_WEIGHT"]

#: weight of the soft-region head's loss (the reference's first balance weight)
AUX_WEIGHT = 0.4


def object_region_representations(feats: torch.Tensor, region_logits: torch.Tensor) -> torch.Tensor:
    """f_k = Σ_i softmax over pixels i of M_k, times x_i: N×C×H×W features, N×K×H×W region
    logits → N×C×K×1 region representations (a K×1 map, so 1×1 convolutions apply to it)."""
    weights = torch.softmax(region_logits.flatten(2).float(), dim=2).to(feats.dtype)  # N×K×HW
    return torch.bmm(feats.flatten(2), weights.transpose(1, 2)).unsqueeze(-1)  # N×C×K×1


def _transform(cin: int, cout: int, layers: int) -> nn.Sequential:
    """``layers`` 1×1 conv-BN-ReLU, flattened into one Sequential (so BatchNorm folding sees the pairs)."""
    return nn.Sequential(*(m for k in range(layers) for m in conv_bn_relu(cin if k == 0 else cout, cout, 1)))


class ObjectAttention(nn.Module):
    """Pixel–region attention: queries from pixels, keys and values from region representations."""

    def __init__(self, channels: int = 512, key_channels: int = 256) -> None:
        super().__init__()
        self.key_channels = key_channels
        self.f_pixel = _transform(channels, key_channels, 2)
        self.f_object = _transform(channels, key_channels, 2)
        self.f_down = _transform(channels, key_channels, 1)
        self.f_up = _transform(key_channels, channels, 1)

    def forward(self, feats: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
        n, _, h, w = feats.shape
        query = self.f_pixel(feats).flatten(2).transpose(1, 2)  # N×HW×d
        key = self.f_object(regions).flatten(2)  # N×d×K
        value = self.f_down(regions).flatten(2).transpose(1, 2)  # N×K×d
        sim = torch.softmax(torch.bmm(query, key) * self.key_channels**-0.5, dim=-1)  # N×HW×K
        context = torch.bmm(sim, value).transpose(1, 2).reshape(n, self.key_channels, h, w)
        return self.f_up(context)


class OCRHead(nn.Module):
    """Soft regions, region representations, contextual attention, fusion and classifier."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        mid_channels: int = 512,
        key_channels: int = 256,
        dropout: float = 0.05,
    ) -> None:
        super().__init__()
        self.aux_head = hrnet_classifier(in_channels, num_classes)
        self.conv3x3_ocr = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, 3, padding=1), nn.BatchNorm2d(mid_channels), nn.ReLU(inplace=True)
        )
        self.attention = ObjectAttention(mid_channels, key_channels)
        self.fuse = nn.Sequential(*conv_bn_relu(2 * mid_channels, mid_channels, 1), nn.Dropout2d(dropout))
        self.cls_head = nn.Conv2d(mid_channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Main and soft-region logits, both at ``x``'s size."""
        region_logits = self.aux_head(x)
        feats = self.conv3x3_ocr(x)
        regions = object_region_representations(feats, region_logits)
        context = self.attention(feats, regions)
        return self.cls_head(self.fuse(torch.cat([context, feats], dim=1))), region_logits


class HRNetOCR(BaselineNetwork):
    """HRNetV2 + OCR; logits at H×W (and the soft-region logits in training mode).

    Args:
        num_classes: C.
        backbone: ignored (HRNet is its own backbone).
        width, depth: of the HRNet (:class:`~.hrnet.HRNetBackbone`).
        mid_channels, key_channels: OCR widths (512, 256).
        aux_weight: weight of the soft-region head's ℓ_s (0.4).
        in_channels: image channels.
    """

    def __init__(
        self,
        num_classes: int = 12,
        backbone: str = "hrnet",
        width: int = 48,
        depth: str = "full",
        mid_channels: int = 512,
        key_channels: int = 256,
        aux_weight: float = AUX_WEIGHT,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.aux_weight = float(aux_weight)
        self.encoder = HRNetBackbone(width, depth, in_channels)
        init_hrnet_weights(self.encoder)
        self.head = OCRHead(sum(self.encoder.channels), num_classes, mid_channels, key_channels)
        init_head_weights(self.head)

    def forward(self, x: torch.Tensor) -> torch.Tensor | AuxLogits:
        logits, region_logits = self.head(concat_branches(self.encoder(x)))
        logits = resize_to(logits, x.shape[-2:])
        if not self.training:
            return logits
        return AuxLogits(logits, ((self.aux_weight, resize_to(region_logits, x.shape[-2:])),))


@register(
    "hrnet_w48_ocr",
    "HRNetV2-W48 + OCR: soft object regions and object-contextual "
    "representations (Yuan et al. 2020); model.backbone does not apply",
)
class HRNetW48OCR(HRNetOCR):
    def __init__(
        self,
        num_classes: int = 12,
        backbone: str = "hrnet",
        width: int = 48,
        depth: str = "full",
        mid_channels: int = 512,
        key_channels: int = 256,
        aux_weight: float = AUX_WEIGHT,
        in_channels: int = 3,
    ) -> None:
        super().__init__(num_classes, backbone, width, depth, mid_channels, key_channels, aux_weight, in_channels)


@register(
    "hrnet_w18_ocr",
    "HRNetV2-W18-Small-v2 + OCR: the small HRNet + OCR (Yuan et al. 2020); model.backbone does not apply",
)
class HRNetW18OCR(HRNetOCR):
    def __init__(
        self,
        num_classes: int = 12,
        backbone: str = "hrnet",
        width: int = 18,
        depth: str = "small",
        mid_channels: int = 512,
        key_channels: int = 256,
        aux_weight: float = AUX_WEIGHT,
        in_channels: int = 3,
    ) -> None:
        super().__init__(num_classes, backbone, width, depth, mid_channels, key_channels, aux_weight, in_channels)
