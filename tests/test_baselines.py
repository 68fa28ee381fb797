"""Comparison networks: DeepLab's output stride, the config-key contract."""

from __future__ import annotations

import pytest
import torch

from phgmm.models import build_model
from phgmm.models.baselines import DeepLabV3, PSPNet, build_baseline


def test_build_model_dispatches_to_baselines():
    model = build_model("fcn8s", num_classes=4, backbone="resnet18")
    assert type(model).__name__ == "FCN8s"
    assert model.parameter_counts()["inference_total"] == sum(p.numel() for p in model.parameters())


def _f4_shape(model, x):
    seen = {}

    def hook(module, inputs, output):
        seen["f4"] = output.shape

    handle = model.encoder.layer4.register_forward_hook(hook)
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    return seen["f4"]


def test_deeplabv3_output_stride_8():
    model = DeepLabV3(num_classes=3, backbone="resnet18")
    assert model.encoder.dilation == 4  # stages 3 and 4 dilated (2 × 2)
    assert model.head[0].rates == (12, 24, 36)
    assert _f4_shape(model, torch.randn(1, 3, 64, 128))[-2:] == (8, 16)  # H/8 × W/8
    os16 = DeepLabV3(num_classes=3, backbone="resnet18", output_stride=16)
    assert os16.head[0].rates == (6, 12, 18)
    assert _f4_shape(os16, torch.randn(1, 3, 64, 128))[-2:] == (4, 8)
    with pytest.raises(ValueError):
        DeepLabV3(output_stride=32, backbone="resnet18")


def test_pspnet_output_stride_8():
    model = PSPNet(num_classes=3, backbone="resnet18")
    assert _f4_shape(model, torch.randn(1, 3, 64, 128))[-2:] == (8, 16)


def test_ignores_phgmm_only_kwargs():
    phgmm_keys = dict(
        num_components=4,
        use_global=False,
        postnet="light",
        latent_dim=8,
        component_dim=4,
        global_dim=4,
        decoder_units=(1, 1, 1, 1),
        decoder_channels=12,
        sample_latent=True,
        local_channels=32,
    )
    model = build_baseline("deeplabv3", num_classes=3, backbone="resnet18", output_stride=16, **phgmm_keys)
    assert model.output_stride == 16
    assert build_model("unet", num_classes=3, backbone="resnet18", **phgmm_keys) is not None


@pytest.mark.parametrize("name", ["deeplabv3", "fcn8s"])
def test_bogus_kwarg_raises_type_error(name):
    with pytest.raises(TypeError, match="bogus"):
        build_baseline(name, backbone="resnet18", bogus=1)
    with pytest.raises(ValueError):
        build_baseline("segformer", backbone="resnet18")
