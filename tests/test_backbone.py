"""The ResNet encoders against torchvision's layout and numbers (recorded once from torchvision
0.29.1 into tests/fixtures: torchvision cannot be imported beside the CPU build of torch here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from phgmm.models.backbone import resnet_encoder

FIXTURES = Path(__file__).parent / "fixtures"
SHAPES = json.loads((FIXTURES / "torchvision_resnet_state_dict_shapes.json").read_text())


@pytest.mark.parametrize("depth", [18, 34, 50, 101])
def test_torchvision_state_dict_loads_strictly(depth):
    enc = resnet_encoder(f"resnet{depth}")
    ours = {k: list(v.shape) for k, v in enc.state_dict().items()}
    assert ours == SHAPES[f"resnet{depth}"]
    # a state dict with exactly torchvision's names and shapes loads with strict=True
    fake = {k: torch.zeros(s) for k, s in SHAPES[f"resnet{depth}"].items()}
    enc.load_state_dict(fake, strict=True)


def test_resnet101_parameter_count():
    n = sum(p.numel() for p in resnet_encoder("resnet101").parameters())
    assert abs(n - 42.50e6) / 42.50e6 < 0.005


def test_numbers_match_torchvision_resnet18():
    ref = json.loads((FIXTURES / "torchvision_resnet18_reference.json").read_text())
    g = torch.Generator().manual_seed(123)
    sd = {}
    # same draws, in torchvision's key order (fc last), as when the reference was recorded
    for k, shape in list(SHAPES["resnet18"].items()) + [("fc.weight", [1000, 512]), ("fc.bias", [1000])]:
        if k.endswith("num_batches_tracked"):
            sd[k] = torch.tensor(0)
            continue
        v = torch.randn(shape, generator=g) * 0.05 + (1.0 if k.endswith("running_var") else 0.0)
        sd[k] = v.abs() + 0.5 if k.endswith("running_var") else v
    x = torch.randn(1, 3, 64, 96, generator=g)
    enc = resnet_encoder("resnet18").eval()
    enc.load_state_dict({k: v for k, v in sd.items() if not k.startswith("fc.")}, strict=True)
    with torch.no_grad():
        feats = enc(x)
    assert [tuple(f.shape[-2:]) for f in feats] == [(16, 24), (8, 12), (4, 6), (2, 3)]
    for f, s in zip(feats, ref["sums"], strict=True):
        assert f.double().sum().item() == pytest.approx(s, rel=1e-4)


def test_stage_resolutions_and_dilation():
    enc = resnet_encoder("resnet50", replace_stride_with_dilation=(False, True, True)).eval()
    with torch.no_grad():
        feats = enc(torch.randn(1, 3, 64, 128))
    assert [tuple(f.shape[-2:]) for f in feats] == [(16, 32), (8, 16), (8, 16), (8, 16)]
    assert [f.shape[1] for f in feats] == [256, 512, 1024, 2048]


def test_in_channels_for_postnet():
    enc = resnet_encoder("resnet18", in_channels=15)
    assert enc.conv1.weight.shape == (64, 15, 7, 7)


def test_bad_depth():
    with pytest.raises(ValueError, match="resnet18/34/50/101"):
        resnet_encoder("resnetx")
    with pytest.raises(ValueError, match="unknown ResNet depth 42"):
        resnet_encoder(42)
