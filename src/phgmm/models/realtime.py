"""The real-time rows of the paper's tables: ENet (Paszke et al. 2016) and BiSeNet v1 (Yu et al. 2018).

**ENet** has its own small encoder–decoder, so ``model.backbone`` does not apply to it: it is
accepted and ignored (as SegNet's), recorded in the build arguments only. Layout (the paper's
Table 1): an initial block (3×3 stride-2 convolution to 13 channels beside a 2×2 max pool of the
image, concatenated to 16), stage 1 (a downsampling bottleneck to 64 and four regular ones), stages
2 and 3 (a downsampling bottleneck to 128 in stage 2 only, then regular, dilated 2, asymmetric 5,
dilated 4, regular, dilated 8, asymmetric 5, dilated 16), stage 4 (an upsampling bottleneck to 64
and two regular), stage 5 (an upsampling bottleneck to 16 and one regular) and a 2×2 stride-2
transposed convolution to the C scores. Bottlenecks are 1×1 projection (2×2 stride 2 when
downsampling) → main convolution → 1×1 expansion, each with BN and PReLU, spatial dropout (0.01 in
stage 1, 0.1 after), added to the main branch (max pooled and zero-padded when downsampling; a 1×1
convolution and max unpooling with the pooling indices of the matching downsampling when
upsampling). Internal width: a quarter of the block's output width, as the reference (Torch)
implementation. The decoder uses ReLU, as the reference. Departure: the initial block's BN covers
only the 13 convolution channels (the three pooled image channels are already normalised by
preprocessing), so that every BN follows a convolution and folds into it for inference.

**BiSeNet v1** takes ``model.backbone`` for its context path (ResNet-18 in the paper's real-time
setting; the paper also reports ResNet-101). Spatial path: three stride-2 conv-BN-ReLU layers
(7×7 to 64, 3×3, 3×3) and a 1×1 to 128, at H/8. Context path: the ResNet's F3 (H/16) and F4 (H/32);
global context (average pool + 1×1 conv) added to the attention-refined F4 (ARM: 3×3 conv-BN-ReLU to
128, then channel attention = global pool → 1×1 conv → sigmoid, multiplied in), upsampled and
refined, added to the attention-refined F3, upsampled to H/8 and refined. Feature fusion module:
concatenation → 1×1 conv-BN-ReLU → channel attention (pool → 1×1 → ReLU → 1×1 → sigmoid) →
``f·a + f``. Head: 3×3 conv-BN-ReLU to 64, 1×1 to C, bilinear ×8. Departures: on the 1×1 pooled
maps (ARM's attention, global context) a biased convolution replaces the BN (BN cannot train on a
batch of one 1×1 map; as the other networks here). In training mode the two auxiliary heads of the
paper (on the context path's refined H/16 and H/8 features; 3×3 conv-BN-ReLU to 256 and a 1×1
classifier, as the authors' TorchSeg code) add their ℓ_s with weight α = 1 (an
:class:`~.auxiliary.AuxLogits`); evaluation, prediction and the ONNX export see the main logits only,
and those heads count in ``training_total`` only.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .auxiliary import AuxLogits
from .backbone import resnet_encoder
from .base import BaselineNetwork, init_head_weights
from .layers import ConvTranspose2d, resize_to
from .pooling import max_pool2x2_with_argmax, max_unpool2x2
from .registry import register

__all__ = ["ENet", "BiSeNet", "AttentionRefinement", "FeatureFusion"]


def _conv_bn(
    cin: int,
    cout: int,
    kernel: int | tuple[int, int] = 1,
    stride: int = 1,
    dilation: int = 1,
    act: nn.Module | None = None,
) -> nn.Sequential:
    """Convolution (no bias) + BN (+ ``act``), padded to keep the size at stride 1."""
    k = (kernel, kernel) if isinstance(kernel, int) else kernel
    pad = (dilation * (k[0] - 1) // 2, dilation * (k[1] - 1) // 2)  # 0 for ENet's 2×2 stride-2 projection
    layers = [nn.Conv2d(cin, cout, k, stride=stride, padding=pad, dilation=dilation, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, act) if act is not None else nn.Sequential(*layers)


# -- ENet ----------------------------------------------------------------------------------------
def _act(channels: int, relu: bool) -> nn.Module:
    return nn.ReLU() if relu else nn.PReLU(channels)


class _InitialBlock(nn.Module):
    def __init__(self, cin: int = 3, cout: int = 16) -> None:
        super().__init__()
        self.conv = _conv_bn(cin, cout - cin, 3, stride=2)
        self.act = nn.PReLU(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.max_pool2d(x, 2, 2, ceil_mode=True)  # ⌈H/2⌉×⌈W/2⌉, as the stride-2 conv
        return self.act(torch.cat([self.conv(x), pooled], dim=1))


class _Bottleneck(nn.Module):
    """Regular, dilated or asymmetric bottleneck at a fixed width."""

    def __init__(
        self, channels: int, dilation: int = 1, asymmetric: int = 0, dropout: float = 0.1, relu: bool = False
    ) -> None:
        super().__init__()
        inner = channels // 4
        self.project = _conv_bn(channels, inner, 1, act=_act(inner, relu))
        if asymmetric:
            k = asymmetric
            self.conv = nn.Sequential(
                nn.Conv2d(inner, inner, (k, 1), padding=(k // 2, 0), bias=False),
                *_conv_bn(inner, inner, (1, k), act=_act(inner, relu)),
            )
        else:
            self.conv = _conv_bn(inner, inner, 3, dilation=dilation, act=_act(inner, relu))
        self.expand = _conv_bn(inner, channels, 1)
        self.drop = nn.Dropout2d(dropout)
        self.out = _act(channels, relu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(x + self.drop(self.expand(self.conv(self.project(x)))))


class _Downsample(nn.Module):
    """Downsampling bottleneck: the main branch max-pools (keeping the argmax) and zero-pads channels."""

    def __init__(self, cin: int, cout: int, dropout: float) -> None:
        super().__init__()
        inner = cout // 4
        self.cout = cout
        self.project = _conv_bn(cin, inner, 2, stride=2, act=nn.PReLU(inner))
        self.conv = _conv_bn(inner, inner, 3, act=nn.PReLU(inner))
        self.expand = _conv_bn(inner, cout, 1)
        self.drop = nn.Dropout2d(dropout)
        self.out = nn.PReLU(cout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = x.shape[-2:]
        main, where = max_pool2x2_with_argmax(x)
        main = F.pad(main, (0, 0, 0, 0, 0, self.cout - x.shape[1]))
        # zero-pad an odd side so the 2×2 stride-2 projection gives ⌈H/2⌉, as the ceil-mode pool
        ext = self.project(F.pad(x, (0, w % 2, 0, h % 2)))
        ext = self.drop(self.expand(self.conv(ext)))
        return self.out(main + ext), where


class _Upsample(nn.Module):
    """Upsampling bottleneck: the main branch is a 1×1 conv + BN and max unpooling with the indices
    of the matching downsampling bottleneck; the extension a stride-2 transposed convolution."""

    def __init__(self, cin: int, cout: int, dropout: float = 0.1) -> None:
        super().__init__()
        inner = cout // 4
        self.main = _conv_bn(cin, cout, 1)
        self.project = _conv_bn(cin, inner, 1, act=nn.ReLU())
        self.deconv = nn.Sequential(
            ConvTranspose2d(inner, inner, 3, stride=2, padding=1, output_padding=1, bias=False),
            nn.BatchNorm2d(inner),
            nn.ReLU(),
        )
        self.expand = _conv_bn(inner, cout, 1)
        self.drop = nn.Dropout2d(dropout)
        self.out = nn.ReLU()

    def forward(self, x: torch.Tensor, where: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        main = max_unpool2x2(self.main(x), where, size)
        ext = self.deconv(self.project(x))[..., : size[0], : size[1]]
        ext = self.drop(self.expand(ext))
        return self.out(main + ext)


def _stage23(channels: int) -> list[nn.Module]:
    """Stages 2 and 3 after the downsampling: the paper's repeating pattern of eight bottlenecks."""
    return [
        _Bottleneck(channels),
        _Bottleneck(channels, dilation=2),
        _Bottleneck(channels, asymmetric=5),
        _Bottleneck(channels, dilation=4),
        _Bottleneck(channels),
        _Bottleneck(channels, dilation=8),
        _Bottleneck(channels, asymmetric=5),
        _Bottleneck(channels, dilation=16),
    ]


class _ENetEncoder(nn.Module):
    def __init__(self, in_channels: int, widths: Sequence[int]) -> None:
        super().__init__()
        c0, c1, c2 = widths
        self.initial = _InitialBlock(in_channels, c0)
        self.down1 = _Downsample(c0, c1, dropout=0.01)
        self.stage1 = nn.Sequential(*(_Bottleneck(c1, dropout=0.01) for _ in range(4)))
        self.down2 = _Downsample(c1, c2, dropout=0.1)
        self.stage2 = nn.Sequential(*_stage23(c2))
        self.stage3 = nn.Sequential(*_stage23(c2))


class _ENetDecoder(nn.Module):
    def __init__(self, widths: Sequence[int], num_classes: int) -> None:
        super().__init__()
        c0, c1, c2 = widths
        self.up4 = _Upsample(c2, c1)
        self.stage4 = nn.Sequential(*(_Bottleneck(c1, relu=True) for _ in range(2)))
        self.up5 = _Upsample(c1, c0)
        self.stage5 = _Bottleneck(c0, relu=True)
        self.fullconv = ConvTranspose2d(c0, num_classes, 2, stride=2, bias=False)


@register(
    "enet",
    "ENet: initial block, regular/dilated/asymmetric bottlenecks, max-unpooling decoder "
    "(Paszke et al. 2016); model.backbone does not apply",
)
class ENet(BaselineNetwork):
    """ENet (Paszke et al. 2016).

    Args:
        num_classes: C.
        backbone: ignored (ENet's encoder is its own).
        widths: the widths after the initial block, stage 1 and stages 2–3 (16, 64, 128).
        in_channels: image channels.
    """

    def __init__(
        self,
        num_classes: int = 12,
        backbone: str = "resnet101",
        widths: Sequence[int] = (16, 64, 128),
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if len(widths) != 3:
            raise ValueError(f"ENet widths needs three values, got {list(widths)}")
        self.encoder = _ENetEncoder(in_channels, widths)
        self.head = _ENetDecoder(widths, num_classes)
        init_head_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e, d = self.encoder, self.head
        y0 = e.initial(x)
        y1, where1 = e.down1(y0)
        y2, where2 = e.down2(e.stage1(y1))
        y = e.stage3(e.stage2(y2))
        y = d.stage4(d.up4(y, where2, y1.shape[-2:]))
        y = d.stage5(d.up5(y, where1, y0.shape[-2:]))
        return d.fullconv(y)[..., : x.shape[2], : x.shape[3]]


# -- BiSeNet v1 ------------------------------------------------------------------------------------
class AttentionRefinement(nn.Module):
    """ARM: 3×3 conv-BN-ReLU, then ``y · sigmoid(W·mean(y) + b)`` per channel."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = _conv_bn(cin, cout, 3, act=nn.ReLU(inplace=True))
        self.attention = nn.Conv2d(cout, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y * torch.sigmoid(self.attention(y.mean(dim=(2, 3), keepdim=True)))


class FeatureFusion(nn.Module):
    """FFM: ``f = conv-BN-ReLU(cat(spatial, context))``, ``a = sigmoid(W2·relu(W1·mean(f)))``,
    output ``f·a + f``."""

    def __init__(self, cin: int, cout: int, reduction: int = 4) -> None:
        super().__init__()
        self.conv = _conv_bn(cin, cout, 1, act=nn.ReLU(inplace=True))
        self.squeeze = nn.Conv2d(cout, cout // reduction, 1)
        self.excite = nn.Conv2d(cout // reduction, cout, 1)

    def forward(self, spatial: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        f = self.conv(torch.cat([spatial, context], dim=1))
        a = torch.sigmoid(self.excite(F.relu(self.squeeze(f.mean(dim=(2, 3), keepdim=True)))))
        return f * a + f


class _BiSeNetHead(nn.Module):
    def __init__(
        self, enc: Sequence[int], num_classes: int, channels: int = 128, head_channels: int = 64, in_channels: int = 3
    ) -> None:
        super().__init__()

        def cbr(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
            return _conv_bn(cin, cout, kernel, stride=stride, act=nn.ReLU(inplace=True))

        self.spatial = nn.Sequential(
            cbr(in_channels, 64, 7, 2), cbr(64, 64, 3, 2), cbr(64, 64, 3, 2), cbr(64, channels, 1)
        )
        self.global_context = nn.Conv2d(enc[3], channels, 1)
        self.arm32 = AttentionRefinement(enc[3], channels)
        self.arm16 = AttentionRefinement(enc[2], channels)
        self.refine32 = cbr(channels, channels, 3)
        self.refine16 = cbr(channels, channels, 3)
        self.ffm = FeatureFusion(2 * channels, 2 * channels)
        self.classifier = nn.Sequential(cbr(2 * channels, head_channels, 3), nn.Conv2d(head_channels, num_classes, 1))


@register(
    "bisenet",
    "BiSeNet v1: spatial path, ResNet context path with attention refinement, feature fusion (Yu et al. 2018)",
)
class BiSeNet(BaselineNetwork):
    """BiSeNet v1 (Yu et al. 2018). ``encoder`` is the context path's ResNet; ``head`` is the spatial
    path and everything after the ResNet.

    Args:
        num_classes: C.
        backbone: the context path's ResNet (``resnet18`` in the paper's real-time setting).
        channels: width of the spatial and context paths (128; the fusion has twice that).
        aux_weight: α, the weight of each auxiliary head's ℓ_s in training (1); 0 builds none.
        in_channels: image channels (both paths take the image).
    """

    aux_modules = ("aux_heads",)

    def __init__(
        self,
        num_classes: int = 12,
        backbone: str = "resnet18",
        channels: int = 128,
        aux_weight: float = 1.0,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.encoder = resnet_encoder(backbone, in_channels=in_channels)
        self.head = _BiSeNetHead(self.encoder.channels, num_classes, channels, in_channels=in_channels)
        self.aux_weight = float(aux_weight)
        self.aux_heads = (
            nn.ModuleList(
                nn.Sequential(_conv_bn(channels, 256, 3, act=nn.ReLU(inplace=True)), nn.Conv2d(256, num_classes, 1))
                for _ in range(2)
            )
            if aux_weight
            else None
        )
        init_head_weights(self.head)
        if self.aux_heads is not None:
            init_head_weights(self.aux_heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor | AuxLogits:
        h, size = self.head, x.shape[-2:]
        _, _, f3, f4 = self.encoder(x)
        sp = h.spatial(x)
        g = F.relu(h.global_context(f4.mean(dim=(2, 3), keepdim=True)))
        c32 = h.refine32(resize_to(h.arm32(f4) + g, f3.shape[-2:]))  # H/16
        c16 = h.refine16(resize_to(h.arm16(f3) + c32, sp.shape[-2:]))  # H/8
        logits = resize_to(h.classifier(h.ffm(sp, c16)), size)
        if not self.training or self.aux_heads is None:
            return logits
        return AuxLogits(
            logits,
            tuple(
                (self.aux_weight, resize_to(head(c), size)) for head, c in zip(self.aux_heads, (c32, c16), strict=True)
            ),
        )
