"""HRNetV2 and HRNet + OCR (models/hrnet.py, models/ocr.py): parameter counts
against the reference's figures, the fusion's reach, OCR's operators written out, the auxiliary loss."""

from __future__ import annotations

import torch

from phgmm.losses import PHGMMLoss, segmentation_loss
from phgmm.models import build_model
from phgmm.models.hrnet import HRNetBackbone
from phgmm.models.layers import count_parameters
from phgmm.models.ocr import ObjectAttention, object_region_representations


def _ocr_layers(c: int, k: int, mid: int = 512, key: int = 256) -> int:
    """OCR's layers on a c-channel representation for k classes, written out from seg_hrnet_ocr.py
    (the soft-region head is HRNetV2's classifier, counted with the plain HRNet)."""
    return (
        c * mid * 9
        + mid
        + 2 * mid  # conv3x3_ocr (biased) + BN
        + 2 * (mid * key + 2 * key + key * key + 2 * key)  # f_pixel, f_object
        + mid * key
        + 2 * key  # f_down
        + key * mid
        + 2 * mid  # f_up
        + 2 * mid * mid
        + 2 * mid  # fusion of [context, feats]
        + mid * k
        + k
    )  # classifier


def test_parameter_counts_match_the_reference():
    # HRNet/HRNet-Semantic-Segmentation README (Cityscapes, 19 classes, #Params column):
    # HRNetV2-W48 65.8M, HRNetV2-W18-Small-v2 3.9M (figures truncated to 0.1M). Built on the meta
    # device: only the shapes are counted.
    with torch.device("meta"):
        nets = {name: build_model(name, num_classes=19) for name in ("hrnet_w48", "hrnet_w48_ocr", "hrnet_w18")}
    assert 65.8e6 <= count_parameters(nets["hrnet_w48"]) < 65.9e6
    assert 3.9e6 <= count_parameters(nets["hrnet_w18"]) < 4.0e6
    # HRNetV2-W48 + OCR, 19 classes: 70.3M (the OCR comparison, Yuan et al. 2020).
    ocr = nets["hrnet_w48_ocr"]
    assert 70.3e6 <= count_parameters(ocr) < 70.4e6
    assert count_parameters(ocr) - count_parameters(nets["hrnet_w48"]) == _ocr_layers(720, 19)


def test_registered_ocr_networks_defaults():
    """hrnet_w48_ocr: W48 full depth on 720 channels; hrnet_w18_ocr: W18-Small-v2 on 270; both with
    OCR's 512/256 widths, 12 classes and the soft-region head at 0.4 unless told otherwise."""
    from phgmm.models.ocr import HRNetOCR, HRNetW18OCR, HRNetW48OCR

    with torch.device("meta"):
        nets = {48: HRNetW48OCR(), 18: HRNetW18OCR()}
        plain = {48: build_model("hrnet_w48", num_classes=12), 18: build_model("hrnet_w18", num_classes=12)}
        base = HRNetOCR()  # the unregistered base class: W48's defaults
        greys = [cls(in_channels=1, num_classes=3, aux_weight=0.25) for cls in (HRNetW18OCR, HRNetW48OCR)]
        narrow = HRNetW18OCR(mid_channels=32, key_channels=16)
    for width, (depth, c) in {48: ("full", 720), 18: ("small", 270)}.items():
        for net in (nets[width], base) if width == 48 else (nets[width],):
            assert (net.encoder.width, net.encoder.stage_depth, sum(net.encoder.channels)) == (width, depth, c)
            assert net.aux_weight == 0.4 and net.head.cls_head.out_channels == 12
            assert net.head.attention.key_channels == 256
            assert count_parameters(net) - count_parameters(plain[width]) == _ocr_layers(c, 12)
            assert next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d)).in_channels == 3
    for grey in greys:
        first = next(m for m in grey.modules() if isinstance(m, torch.nn.Conv2d))
        assert first.in_channels == 1 and grey.aux_weight == 0.25 and grey.head.cls_head.out_channels == 3
    assert narrow.head.attention.key_channels == 16 and narrow.head.cls_head.in_channels == 32


def test_ocr_head_layers_and_their_order():
    """conv3x3_ocr is conv-BN-ReLU, the fusion ends in dropout 0.05, and the head's forward is the
    composition of its parts: regions from the soft-region logits, context, classifier on [y, x]."""
    from phgmm.models.ocr import OCRHead

    torch.manual_seed(0)
    head = OCRHead(6, 3, mid_channels=8, key_channels=4).eval()
    assert head.attention.key_channels == 4 and head.attention.f_up[0].out_channels == 8
    assert [type(m).__name__ for m in head.conv3x3_ocr] == ["Conv2d", "BatchNorm2d", "ReLU"]
    assert isinstance(head.fuse[-1], torch.nn.Dropout2d) and head.fuse[-1].p == 0.05
    assert count_parameters(OCRHead(6, 3)) - count_parameters(head.aux_head) == _ocr_layers(6, 3)
    for m in head.modules():  # BatchNorm statistics away from identity
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 6, 5, 7)
    with torch.no_grad():
        logits, region_logits = head(x)
        soft = head.aux_head(x)
        feats = torch.relu(head.conv3x3_ocr[1](head.conv3x3_ocr[0](x)))
        context = head.attention(feats, object_region_representations(feats, soft))
        expected = head.cls_head(head.fuse(torch.cat([context, feats], 1)))
    torch.testing.assert_close(region_logits, soft)
    torch.testing.assert_close(logits, expected)
    assert logits.shape == (2, 3, 5, 7)


def test_four_branches_at_ceil_halved_sizes_and_every_output_sees_every_branch():
    torch.manual_seed(0)
    net = HRNetBackbone(width=4, depth="small")
    assert [len(s[0].branches) for s in net.stages] == [2, 3, 4]
    assert [len(s) for s in HRNetBackbone(width=4, depth="full").stages] == [1, 4, 3]
    xs = net(torch.randn(1, 3, 61, 97))
    # stem: 61x97 -> 31x49 -> 16x25; each new branch halves with rounding up
    assert [tuple(x.shape[1:]) for x in xs] == [(4, 16, 25), (8, 8, 13), (16, 4, 7), (32, 2, 4)]
    # repeated multi-resolution fusion: every output of the last module depends on every input branch
    last = net.stages[-1][-1].eval()
    inputs = [
        torch.randn(1, c, h, w, requires_grad=True) for c, h, w in [(4, 16, 25), (8, 8, 13), (16, 4, 7), (32, 2, 4)]
    ]
    for i, out in enumerate(last(inputs)):
        grads = torch.autograd.grad(out.sum(), inputs, retain_graph=True)
        assert all(float(g.abs().sum()) > 0 for g in grads), f"output {i} misses a branch"


def test_object_region_representations_against_the_sum_written_out():
    torch.manual_seed(0)
    feats, regions = torch.randn(2, 6, 5, 7), torch.randn(2, 3, 5, 7)
    got = object_region_representations(feats, regions)
    assert got.shape == (2, 6, 3, 1)
    for n in range(2):
        for k in range(3):
            m = regions[n, k].flatten()
            weights = torch.exp(m - m.max()) / torch.exp(m - m.max()).sum()  # spatial softmax of region k
            expected = sum(weights[i] * feats[n, :, i // 7, i % 7] for i in range(35))
            torch.testing.assert_close(got[n, :, k, 0], expected, rtol=1e-5, atol=1e-6)
    # bfloat16 features (autocast on a CPU): the softmax runs in float32, the sum in the features' dtype
    half = object_region_representations(feats.bfloat16(), regions.bfloat16())
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), got, rtol=0.05, atol=0.05)


def test_object_attention_widths_written_out():
    """ObjectAttention(512, 256), the reference's widths: two 1×1 conv-BN-ReLU layers for the pixel
    queries and the region keys, one for the values and one back up to 512."""
    att = ObjectAttention()
    conv_bn = lambda cin, cout: cin * cout + 2 * cout  # noqa: E731
    assert count_parameters(att.f_pixel) == count_parameters(att.f_object) == conv_bn(512, 256) + conv_bn(256, 256)
    assert count_parameters(att.f_down) == conv_bn(512, 256) and count_parameters(att.f_up) == conv_bn(256, 512)
    assert [type(m).__name__ for m in att.f_pixel] == ["Conv2d", "BatchNorm2d", "ReLU"] * 2


def test_object_contextual_attention_against_a_pixel_loop():
    torch.manual_seed(0)
    att = ObjectAttention(channels=8, key_channels=4).eval()
    for m in att.modules():  # BatchNorm statistics away from identity
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    feats, regions = torch.randn(1, 8, 3, 5), torch.randn(1, 8, 4, 1)
    with torch.no_grad():
        got = att(feats, regions)
        q, key, v = att.f_pixel(feats)[0], att.f_object(regions)[0, :, :, 0], att.f_down(regions)[0, :, :, 0]
        context = torch.zeros(1, 4, 3, 5)
        for y in range(3):
            for x in range(5):
                logits = torch.stack([(q[:, y, x] * key[:, k]).sum() / 2.0 for k in range(4)])  # √d = 2
                w = torch.softmax(logits, 0)
                context[0, :, y, x] = sum(w[k] * v[:, k] for k in range(4))
        torch.testing.assert_close(got, att.f_up(context), rtol=1e-5, atol=1e-6)


def test_the_soft_region_loss_is_added_to_l_s_with_weight_0_4():
    torch.manual_seed(0)
    model = build_model("hrnet_w18_ocr", num_classes=4).train()
    x, y = torch.randn(2, 3, 32, 48), torch.randint(0, 4, (2, 32, 48))
    out = model(x)
    terms = PHGMMLoss(lambda_s=1.0)(out, y)
    expected = segmentation_loss(out.logits, y) + 0.4 * segmentation_loss(out.aux[0][1], y)
    torch.testing.assert_close(terms["s"], expected)
    torch.testing.assert_close(terms["total"], expected)
    assert float(terms["g"]) == float(terms["z"]) == 0.0
    terms["total"].backward()  # the soft-region head is trained by its loss
    assert model.head.aux_head[-1].weight.grad.abs().sum() > 0


def test_save_and_load_pretrained_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_model("hrnet_w18_ocr", num_classes=3).eval()
    model.save_pretrained(tmp_path / "m")
    back = type(model).from_pretrained(tmp_path / "m")
    x = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        torch.testing.assert_close(back(x), model(x))
