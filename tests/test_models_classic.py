"""SegNet and DeepLab v2 (models/segnet.py, models/deeplabv2.py): parameter counts
against their papers, the pooling-index decoder and the summed ASPP against brute-force references."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from phgmm.models import build_model
from phgmm.models.deeplabv2 import DeepLabV2, SummedASPP
from phgmm.models.segnet import SegNet

SMALL_SEGNET = dict(channels=(8, 8, 16, 16, 16))


def test_segnet_parameter_count_is_the_papers():
    """Badrinarayanan et al. 2017, Table 6: SegNet has 29.5 M trainable parameters (the ENet paper's
    Table 3 gives 29.46 M); 11 CamVid classes, the paper's setting. 13 encoder convolutions (VGG-16)."""
    with torch.device("meta"):
        model = SegNet(num_classes=11)
    convs = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 13 and [c.out_channels for c in convs][-1] == 512
    counts = model.parameter_counts()
    assert counts["encoder"] == 14_718_912  # VGG-16's 13 conv weights (14,710,464) + their BN
    assert counts["inference_total"] == 29_441_419
    assert abs(counts["inference_total"] - 29.46e6) < 0.03e6


def test_segnet_half_is_segnet_at_half_width():
    with torch.device("meta"):
        model = build_model("segnet_half", num_classes=11)
    assert isinstance(model, SegNet) and model.head.classifier.in_channels == 32
    assert model.parameter_counts()["inference_total"] == 7_366_347


def test_segnet_backbone_is_ignored():
    a = build_model("segnet", num_classes=3, backbone="resnet18", **SMALL_SEGNET)
    b = build_model("segnet", num_classes=3, backbone="resnet101", **SMALL_SEGNET)
    assert a.parameter_counts() == b.parameter_counts()


def test_segnet_decoder_unpools_at_the_encoders_argmax():
    """The decoder's first input is the deepest pooled map placed back at its maxima: compare with
    PyTorch's max_pool2d/max_unpool2d indices on the encoder's last block, at an odd size."""
    torch.manual_seed(0)
    model = SegNet(num_classes=3, **SMALL_SEGNET).eval()
    seen = {}
    model.head.blocks[0].register_forward_pre_hook(lambda m, args: seen.update(input=args[0]))
    x = torch.randn(1, 3, 45, 71)
    with torch.no_grad():
        model(x)
        y = x
        for block in model.encoder[:4]:
            y = F.max_pool2d(block(y), 2, 2, ceil_mode=True)
        f5 = model.encoder[4](y)
        pooled, idx = F.max_pool2d(f5, 2, 2, ceil_mode=True, return_indices=True)
        expected = F.max_unpool2d(pooled, idx, 2, 2, output_size=f5.shape[-2:])
    assert seen["input"].shape == f5.shape == (1, 16, 3, 5)
    torch.testing.assert_close(seen["input"], expected)
    assert 0 < (seen["input"] != 0).sum() <= pooled.numel()


def test_summed_aspp_matches_dilated_convolutions_written_out():
    """ASPP-L: the sum of four dilated 3×3 classifiers, checked pixel by pixel (borders too) against
    the sum over rates, taps and channels of w·x with zero padding, plus the four biases."""
    torch.manual_seed(0)
    aspp = SummedASPP(4, 3, rates=(1, 2, 3, 5))
    aspp.requires_grad_(False)
    with torch.no_grad():
        for conv in aspp.branches:
            conv.bias.normal_()
    x = torch.randn(1, 4, 9, 11)
    out = aspp(x)
    assert out.shape == (1, 3, 9, 11)
    for i, j in [(0, 0), (4, 5), (8, 10), (2, 9), (7, 1)]:
        for c in range(3):
            want = 0.0
            for r, conv in zip(aspp.rates, aspp.branches, strict=True):
                want += float(conv.bias[c])
                for dy in range(3):
                    for dx in range(3):
                        u, v = i + (dy - 1) * r, j + (dx - 1) * r
                        if 0 <= u < 9 and 0 <= v < 11:
                            want += float(conv.weight[c, :, dy, dx] @ x[0, :, u, v])
            assert abs(float(out[0, c, i, j]) - want) < 1e-4


def test_deeplabv2_output_stride_8_and_rates():
    model = DeepLabV2(num_classes=3, backbone="resnet18")
    assert model.encoder.dilation == 4 and model.head.rates == (6, 12, 18, 24)
    seen = {}
    model.encoder.layer4.register_forward_hook(lambda m, i, o: seen.update(f4=o.shape))
    with torch.no_grad():
        model.eval()(torch.randn(1, 3, 64, 128))
    assert seen["f4"][-2:] == (8, 16)


def test_deeplabv2_r101_parameter_count():
    """A ResNet-101 without fc (torchvision's 44,549,160 − 2,049,000) and four 3×3 classifiers on
    its 2048 channels, with bias: 44.05 M for the 21 PASCAL VOC classes of Chen et al. 2018 (the
    "≈ 44 M" other papers list for DeepLab v2)."""
    with torch.device("meta"):
        model = DeepLabV2(num_classes=21, backbone="resnet101")
    counts = model.parameter_counts()
    assert counts["encoder"] == 42_500_160
    assert counts["head"] == 4 * (2048 * 9 * 21 + 21) == 1_548_372
    assert counts["inference_total"] == 44_048_532


def test_summed_aspp_starts_as_the_reference_classifier():
    """Every branch: weights drawn from N(0, 0.01), biases zero (the reference's classifier init)."""
    torch.manual_seed(0)
    aspp = SummedASPP(256, 21)
    for conv in aspp.branches:
        w = conv.weight.detach()
        assert abs(float(w.std()) - 0.01) < 0.0005 and abs(float(w.mean())) < 0.0005
        assert not conv.bias.any()
    assert [(c.dilation, c.padding) for c in aspp.branches] == [((r, r), (r, r)) for r in (6, 12, 18, 24)]


def test_deeplabv2_defaults_and_arguments():
    """12 classes on a ResNet-101 by default; rates and in_channels reach the head and the stem."""
    with torch.device("meta"):
        model = DeepLabV2()
    assert model.parameter_counts()["encoder"] == 42_500_160
    assert [c.out_channels for c in model.head.branches] == [12] * 4 and model.head.rates == (6, 12, 18, 24)
    torch.manual_seed(0)
    grey = DeepLabV2(num_classes=3, backbone="resnet18", rates=(1, 2), in_channels=1).eval()
    assert grey.head.rates == (1, 2) and [c.dilation for c in grey.head.branches] == [(1, 1), (2, 2)]
    with torch.no_grad():
        assert grey(torch.randn(1, 1, 40, 24)).shape == (1, 3, 40, 24)
