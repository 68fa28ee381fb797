"""ENet and BiSeNet v1 (models/realtime.py): parameter counts against their
papers, and their distinctive parts (unpooling with the downsampling's indices, ARM, FFM) against
hand-written arithmetic; ENet through ONNX."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from phgmm.models.realtime import AttentionRefinement, BiSeNet, ENet, FeatureFusion


def test_enet_parameter_count_is_the_papers():
    """Paszke et al. 2016, Table 3: ENet has 0.37 M parameters (19 Cityscapes classes here)."""
    model = ENet(num_classes=19)
    counts = model.parameter_counts()
    assert counts["inference_total"] == 363_593
    assert abs(counts["inference_total"] - 0.37e6) < 0.01e6
    # the backbone key does not apply to ENet's own encoder
    assert ENet(num_classes=19, backbone="resnet18").parameter_counts() == counts


def test_bisenet_r18_parameter_count():
    """The BiSeNet paper gives no count for its ResNet-18 model; PixSeg's BiSeNet release lists 14 M
    for its ResNet-18 version. Here: ResNet-18 without fc (torchvision's 11,689,512 − 513,000), the
    spatial path, ARMs, FFM and head: 12.80 M for inference, 13.40 M with the two auxiliary heads
    (19 classes)."""
    with torch.device("meta"):
        model = BiSeNet(num_classes=19, backbone="resnet18")
    counts = model.parameter_counts()
    assert counts["encoder"] == 11_176_512
    assert counts["inference_total"] == 12_795_795
    assert counts["aux"] == 2 * (128 * 256 * 9 + 2 * 256 + 256 * 19 + 19)
    assert 12.5e6 < counts["training_total"] == 13_396_409 < 14.5e6


def _random_bn(module: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)


def _conv_bn_relu_by_hand(seq: torch.nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    conv, bn = seq[0], seq[1]
    y = F.conv2d(x, conv.weight, None, conv.stride, conv.padding, conv.dilation)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    y = (y - bn.running_mean[:, None, None]) * scale[:, None, None] + bn.bias[:, None, None]
    return y.clamp_min(0)


def test_attention_refinement_module_by_hand():
    """ARM: y = conv-BN-ReLU(x); out = y · sigmoid(W·mean_hw(y) + b), per image and channel."""
    torch.manual_seed(0)
    arm = AttentionRefinement(6, 4)
    _random_bn(arm)
    arm.eval()
    x = torch.randn(2, 6, 7, 9)
    with torch.no_grad():
        out = arm(x)
        y = _conv_bn_relu_by_hand(arm.conv, x)
        w, b = arm.attention.weight[:, :, 0, 0], arm.attention.bias
        for n in range(2):
            a = torch.sigmoid(w @ y[n].mean(dim=(1, 2)) + b)  # 4 weights
            torch.testing.assert_close(out[n], y[n] * a[:, None, None])


def test_feature_fusion_module_by_hand():
    """FFM: f = conv-BN-ReLU(cat(spatial, context)); a = sigmoid(W2·relu(W1·mean(f) + b1) + b2);
    out = f·a + f."""
    torch.manual_seed(1)
    ffm = FeatureFusion(8, 8)
    _random_bn(ffm, seed=1)
    ffm.eval()
    sp, cp = torch.randn(2, 3, 5, 6), torch.randn(2, 5, 5, 6)
    with torch.no_grad():
        out = ffm(sp, cp)
        f = _conv_bn_relu_by_hand(ffm.conv, torch.cat([sp, cp], dim=1))
        w1, b1 = ffm.squeeze.weight[:, :, 0, 0], ffm.squeeze.bias
        w2, b2 = ffm.excite.weight[:, :, 0, 0], ffm.excite.bias
        for n in range(2):
            a = torch.sigmoid(w2 @ torch.relu(w1 @ f[n].mean(dim=(1, 2)) + b1) + b2)
            torch.testing.assert_close(out[n], f[n] * a[:, None, None] + f[n])
    assert w1.shape == (2, 8)  # squeezed by 4


def test_enet_upsampling_puts_values_at_the_downsampling_argmax():
    """With the upsampling bottleneck's extension silenced, its output is ReLU(unpool(1×1 conv + BN
    of its input)) at the maxima of the matching downsampling's pool: PyTorch's max_unpool2d
    with max_pool2d's indices, at an odd size."""
    torch.manual_seed(0)
    model = ENet(num_classes=3).eval()
    up = model.head.up4
    with torch.no_grad():
        up.expand[1].weight.zero_()
        up.expand[1].bias.zero_()
    seen = {}
    model.encoder.down2.register_forward_pre_hook(lambda m, args: seen.update(before=args[0]))
    up.register_forward_pre_hook(lambda m, args: seen.update(into=args[0]))
    up.register_forward_hook(lambda m, args, out: seen.update(out=out))
    with torch.no_grad():
        model(torch.randn(1, 3, 45, 67))
        before = seen["before"]
        _, idx = F.max_pool2d(before, 2, 2, ceil_mode=True, return_indices=True)
        expected = F.relu(F.max_unpool2d(up.main(seen["into"]), idx, 2, 2, output_size=before.shape[-2:]))
    assert seen["out"].shape == before.shape == (1, 64, 12, 17)
    torch.testing.assert_close(seen["out"], expected)


def test_enet_exports_to_onnx_with_its_unpooling(tmp_path):
    pytest.importorskip("onnxruntime")
    from phgmm.engine.inference.export import OnnxPredictor, export_onnx

    torch.manual_seed(0)
    model = ENet(num_classes=4)
    _random_bn(model)
    model.eval()
    # the TorchScript exporter: seconds here, where the default (dynamo) one takes minutes on ENet's
    # 30 blocks on two cores
    path = export_onnx(model, tmp_path / "enet.onnx", example_size=(96, 64), exporter="torchscript")
    x = np.random.default_rng(0).standard_normal((1, 3, 61, 97), dtype=np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    got = OnnxPredictor(path)(x)
    assert got.shape == (1, 4, 61, 97)
    assert np.abs(got - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())
