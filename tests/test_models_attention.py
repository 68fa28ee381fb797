"""DANet and OCNet (models/danet.py, models/ocnet.py): parameter counts written
out from the reference implementations, and each attention operator against a loop over pixels or
channels."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from phgmm.losses import PHGMMLoss, segmentation_loss
from phgmm.models import build_model
from phgmm.models.danet import ChannelAttention, PositionAttention
from phgmm.models.layers import count_parameters, resize_to
from phgmm.models.ocnet import ObjectContext

NAMES = {"danet": [1.0, 1.0], "ocnet": [0.4], "ocnet_asp": [0.4]}  # name → auxiliary weights

#: torchvision's ResNet-101 has 44,549,160 parameters; without its 2048×1000 fc layer (2,049,000)
RESNET101_FEATURES = 42_500_160


def _bn(c: int) -> int:
    return 2 * c


def _conv(cin: int, cout: int, k: int = 1, bias: bool = False) -> int:
    return cin * cout * k * k + (cout if bias else 0)


def test_parameter_counts_written_out_from_the_references():
    c, k = 19, 19  # Cityscapes' 19 classes, ResNet-101 (F3 1024, F4 2048 channels)
    danet = build_model("danet", num_classes=c)
    assert count_parameters(danet.encoder) == RESNET101_FEATURES
    inter = 512  # junfu1115/DANet danet.py: DANetHead(2048, nclass)
    da = (
        2 * (_conv(2048, inter, 3) + _bn(inter))  # conv5a, conv5c
        + 2 * (_conv(inter, inter, 3) + _bn(inter))  # conv51, conv52
        + 2 * _conv(inter, inter // 8, bias=True)
        + _conv(inter, inter, bias=True)
        + 1  # PAM + γ
        + 1
    )  # CAM's γ
    assert count_parameters(danet.head) == da + 3 * _conv(inter, c, bias=True)

    # OCNet.pytorch (resnet101_baseoc / resnet101_asp_oc), with InPlace-ABN counted as BatchNorm
    dsn = _conv(1024, 512, 3, bias=True) + _bn(512) + _conv(512, k, bias=True)
    reduce = _conv(2048, 512, 3, bias=True) + _bn(512)

    def attention(ch, kc):
        return _conv(ch, kc, bias=True) + _bn(kc) + _conv(ch, kc, bias=True) + _conv(kc, ch, bias=True)

    base_oc = attention(512, 256) + _conv(1024, 512) + _bn(512)
    ocnet = build_model("ocnet", num_classes=c)
    assert count_parameters(ocnet.encoder) == RESNET101_FEATURES
    assert count_parameters(ocnet.head) == reduce + base_oc + _conv(512, k, bias=True) + dsn
    asp_oc = (
        _conv(512, 256, 3, bias=True)
        + _bn(256)
        + attention(256, 128)
        + _conv(256, 256)
        + _bn(256)
        + _conv(512, 256)
        + _bn(256)
        + 3 * (_conv(512, 256, 3) + _bn(256))
        + _conv(5 * 256, 512)
        + _bn(512)
    )
    asp = build_model("ocnet_asp", num_classes=c)
    assert count_parameters(asp.head) == reduce + asp_oc + _conv(512, k, bias=True) + dsn


def test_position_attention_against_a_pixel_pair_loop():
    torch.manual_seed(0)
    pam = PositionAttention(16).eval()
    with torch.no_grad():
        pam.gamma.fill_(0.7)
        x = torch.randn(2, 16, 3, 5)
        got = pam(x)
        q, k, v = pam.query(x), pam.key(x), pam.value(x)
        expected = x.clone()
        for n in range(2):
            for i in range(15):
                yi, xi = divmod(i, 5)
                energy = torch.stack([(q[n, :, yi, xi] * k[n, :, j // 5, j % 5]).sum() for j in range(15)])
                a = torch.exp(energy - energy.max())
                a = a / a.sum()
                expected[n, :, yi, xi] += 0.7 * sum(a[j] * v[n, :, j // 5, j % 5] for j in range(15))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_channel_attention_against_a_channel_pair_loop():
    torch.manual_seed(0)
    cam = ChannelAttention()
    with torch.no_grad():
        cam.gamma.fill_(-0.3)
        x = torch.randn(2, 6, 3, 4)
        got = cam(x)
        expected = x.clone()
        for n in range(2):
            energy = torch.tensor([[float((x[n, a] * x[n, b]).sum()) for b in range(6)] for a in range(6)])
            for a in range(6):
                e = energy[a].max() - energy[a]  # the reference's max-minus-energy
                w = torch.exp(e - e.max())
                w = w / w.sum()
                expected[n, a] += -0.3 * sum(w[b] * x[n, b] for b in range(6))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scale", [1, 2])
def test_object_context_against_a_pixel_pair_loop(scale):
    torch.manual_seed(0)
    # scale 1 is the default
    oc = ObjectContext(channels=6, key_channels=4, value_channels=3, **({"scale": 2} if scale == 2 else {})).eval()
    bn = oc.f_key[1]
    bn.running_mean.uniform_(-0.5, 0.5)
    bn.running_var.uniform_(0.5, 2.0)
    torch.nn.init.normal_(oc.W.weight)  # not the zero start, so the context shows
    x = torch.randn(1, 6, 5, 7)
    with torch.no_grad():
        got = oc(x)
        small = F.max_pool2d(x, 2, ceil_mode=True) if scale == 2 else x  # 5x7 -> 3x4
        h, w = small.shape[-2:]
        key, value = oc.f_key(small)[0], oc.f_value(small)[0]
        context = torch.zeros(1, 3, h, w)
        for i in range(h * w):
            ki = key[:, i // w, i % w]
            sim = torch.stack([(ki * key[:, j // w, j % w]).sum() / 2.0 for j in range(h * w)])  # √4
            a = torch.softmax(sim, 0)
            context[0, :, i // w, i % w] = sum(a[j] * value[:, j // w, j % w] for j in range(h * w))
        expected = resize_to(oc.W(context), (5, 7))
    assert got.shape == x.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_object_context_starts_empty():
    model = build_model("ocnet", num_classes=3, backbone="resnet18").eval()
    x = torch.randn(1, 512, 4, 6)
    with torch.no_grad():
        assert float(model.head.context.context(x).abs().max()) == 0.0


@pytest.mark.parametrize("name", NAMES)
def test_auxiliary_losses_are_added_to_l_s(name):
    torch.manual_seed(0)
    model = build_model(name, num_classes=4, backbone="resnet18").train()
    x, y = torch.randn(2, 3, 40, 56), torch.randint(0, 4, (2, 40, 56))
    out = model(x)
    expected = segmentation_loss(out.logits, y) + sum(w * segmentation_loss(a, y) for w, a in out.aux)
    torch.testing.assert_close(PHGMMLoss(lambda_s=1.0)(out, y)["s"], expected)


@pytest.mark.parametrize("name", ["danet", "ocnet", "ocnet_asp"])
def test_defaults_in_channels_and_output_stride_8(name):
    """12 classes on a dilated ResNet-101 by default; in_channels reaches the stem; F4 at 1/8 of the
    input (layers 3 and 4 dilated by 2 and 4, not strided)."""
    from phgmm.models.registry import registered

    with torch.device("meta"):
        default = registered()[name].cls()  # the class's own defaults, not build_model's
    assert count_parameters(default.encoder) == RESNET101_FEATURES
    cls = default.head.cls  # DANet: dropout then a 1×1 conv; OCNet: the 1×1 conv
    assert (cls[-1] if isinstance(cls, torch.nn.Sequential) else cls).out_channels == 12
    torch.manual_seed(0)
    model = build_model(name, num_classes=3, backbone="resnet18", in_channels=1).eval()
    seen = {}
    model.encoder.layer4.register_forward_hook(lambda m, i, o: seen.update(f4=o.shape))
    with torch.no_grad():
        assert model(torch.randn(1, 1, 64, 96)).shape == (1, 3, 64, 96)
    assert seen["f4"][-2:] == (8, 12) and model.encoder.dilation == 4


def test_danet_head_fuses_the_sum_of_both_branches_and_keeps_the_references_layers():
    from phgmm.models.danet import DANetHead

    torch.manual_seed(0)
    head = DANetHead(32, 3).eval()
    for cls in (head.cls, head.cls_p, head.cls_c):
        assert [type(m).__name__ for m in cls] == ["Dropout2d", "Conv2d"] and cls[0].p == 0.1
    with torch.no_grad():
        head.pam.gamma.fill_(0.5)
        head.cam.gamma.fill_(-0.5)
        x = torch.randn(2, 32, 5, 7)
        fused, p, c = head(x)
        pp = head.post_p(head.pam(head.conv_p(x)))
        cc = head.post_c(head.cam(head.conv_c(x)))
    torch.testing.assert_close(fused, head.cls(pp + cc))
    torch.testing.assert_close(p, head.cls_p(pp))
    torch.testing.assert_close(c, head.cls_c(cc))


def test_ocnet_modules_keep_the_references_layers():
    """Widths at their defaults (512 in, 256 key/branch channels), the object context at scale 2
    in ASP-OC, the atrous rates, dropout before every classifier, and ReLU after each BatchNorm."""
    from phgmm.models.ocnet import ASPOC, BaseOC

    def attention(ch, kc):
        return _conv(ch, kc, bias=True) + _bn(kc) + _conv(ch, kc, bias=True) + _conv(kc, ch, bias=True)

    with torch.device("meta"):
        base, asp = BaseOC(), ASPOC()
    assert count_parameters(base) == attention(512, 256) + _conv(1024, 512) + _bn(512)
    assert count_parameters(asp) == (
        _conv(512, 256, 3, bias=True)
        + _bn(256)
        + attention(256, 128)
        + _conv(256, 256)
        + _bn(256)
        + _conv(512, 256)
        + _bn(256)
        + 3 * (_conv(512, 256, 3) + _bn(256))
        + _conv(5 * 256, 512)
        + _bn(512)
    )
    assert isinstance(base.fuse[-1], torch.nn.Dropout2d) and base.fuse[-1].p == 0.05
    assert isinstance(asp.fuse[-1], torch.nn.Dropout2d) and asp.fuse[-1].p == 0.1
    assert base.context.scale == 1 and asp.context.scale == 2
    assert [b[0].dilation for b in asp.branches] == [(1, 1), (12, 12), (24, 24), (36, 36)]
    assert [type(m).__name__ for m in asp.context_in] == ["Conv2d", "BatchNorm2d", "ReLU"]
    assert [type(m).__name__ for m in base.context.f_key] == ["Conv2d", "BatchNorm2d", "ReLU"]
    model = build_model("ocnet", num_classes=3, backbone="resnet18")
    h = model.head
    assert [type(m).__name__ for m in h.reduce] == ["Conv2d", "BatchNorm2d", "ReLU"]
    assert [type(m).__name__ for m in h.dsn] == ["Conv2d", "BatchNorm2d", "ReLU", "Dropout2d", "Conv2d"]
    assert h.dsn[3].p == 0.1
    with torch.no_grad():  # the 3×3 convolutions keep the map's size
        assert h.reduce(torch.randn(1, 512, 5, 7)).shape == (1, 512, 5, 7)
        assert h.dsn(torch.randn(1, 256, 5, 7)).shape == (1, 3, 5, 7)
