"""HRNetV2 and HRNet + OCR (models/hrnet.py, models/ocr.py): shapes at odd sizes, parameter counts
against the reference's figures, the fusion's reach, OCR's operators written out, the auxiliary loss."""

from __future__ import annotations

import pytest
import torch

from phgmm.losses import PHGMMLoss, segmentation_loss
from phgmm.models import build_model
from phgmm.models.auxiliary import AuxLogits
from phgmm.models.hrnet import HRNetBackbone
from phgmm.models.layers import count_parameters
from phgmm.models.ocr import ObjectAttention, object_region_representations

SMALL = ["hrnet_w18", "hrnet_w18_ocr"]


@pytest.fixture(scope="module")
def w48():
    torch.manual_seed(0)
    return {name: build_model(name, num_classes=19) for name in ("hrnet_w48", "hrnet_w48_ocr")}


@pytest.mark.parametrize("name", SMALL)
@pytest.mark.parametrize("train", [True, False])
def test_output_shape_at_an_odd_size(name, train):
    torch.manual_seed(0)
    model = build_model(name, num_classes=5, backbone="resnet18").train(train)   # backbone: ignored
    out = model(torch.randn(2, 3, 61, 97))
    if train and name.endswith("_ocr"):
        assert isinstance(out, AuxLogits) and [w for w, _ in out.aux] == [0.4]
        assert out.aux[0][1].shape == (2, 5, 61, 97)
        out = out.logits
    assert isinstance(out, torch.Tensor) and out.shape == (2, 5, 61, 97)


def test_w48_output_shape_at_an_odd_size(w48):
    x = torch.randn(1, 3, 37, 45)
    with torch.no_grad():
        for model in w48.values():
            assert model.eval()(x).shape == (1, 19, 37, 45)


def test_parameter_counts_match_the_reference(w48):
    # HRNet/HRNet-Semantic-Segmentation README (Cityscapes, 19 classes, #Params column):
    # HRNetV2-W48 65.8M, HRNetV2-W18-Small-v2 3.9M (figures truncated to 0.1M).
    assert 65.8e6 <= count_parameters(w48["hrnet_w48"]) < 65.9e6
    assert 3.9e6 <= count_parameters(build_model("hrnet_w18", num_classes=19)) < 4.0e6
    # HRNetV2-W48 + OCR, 19 classes: 70.3M (the OCR comparison, Yuan et al. 2020).
    ocr = w48["hrnet_w48_ocr"]
    assert 70.3e6 <= count_parameters(ocr) < 70.4e6
    # OCR's layers on the 720-channel representation, written out from seg_hrnet_ocr.py
    # (the soft-region head is HRNetV2's classifier, so the difference is OCR proper)
    c, mid, key, k = 720, 512, 256, 19
    ocr_layers = (c * mid * 9 + mid + 2 * mid                       # conv3x3_ocr (biased) + BN
                  + 2 * (mid * key + 2 * key + key * key + 2 * key)   # f_pixel, f_object
                  + mid * key + 2 * key                             # f_down
                  + key * mid + 2 * mid                             # f_up
                  + 2 * mid * mid + 2 * mid                         # fusion of [context, feats]
                  + mid * k + k)                                    # classifier
    assert count_parameters(ocr) - count_parameters(w48["hrnet_w48"]) == ocr_layers


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
    inputs = [torch.randn(1, c, h, w, requires_grad=True) for c, h, w in [(4, 16, 25), (8, 8, 13), (16, 4, 7), (32, 2, 4)]]
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
            weights = torch.exp(m - m.max()) / torch.exp(m - m.max()).sum()   # spatial softmax of region k
            expected = sum(weights[i] * feats[n, :, i // 7, i % 7] for i in range(35))
            torch.testing.assert_close(got[n, :, k, 0], expected, rtol=1e-5, atol=1e-6)


def test_object_contextual_attention_against_a_pixel_loop():
    torch.manual_seed(0)
    att = ObjectAttention(channels=8, key_channels=4).eval()
    for m in att.modules():    # BatchNorm statistics away from identity
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
                logits = torch.stack([(q[:, y, x] * key[:, k]).sum() / 2.0 for k in range(4)])   # √d = 2
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
    terms["total"].backward()     # the soft-region head is trained by its loss
    assert model.head.aux_head[-1].weight.grad.abs().sum() > 0


def test_save_and_load_pretrained_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_model("hrnet_w18_ocr", num_classes=3).eval()
    model.save_pretrained(tmp_path / "m")
    back = type(model).from_pretrained(tmp_path / "m")
    x = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        torch.testing.assert_close(back(x), model(x))
