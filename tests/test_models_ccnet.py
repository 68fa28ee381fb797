"""CCNet (models/ccnet.py): criss-cross attention against the explicit H+W−1 neighbourhood, the
recurrence's reach, the parameter count of the reference's layers."""

from __future__ import annotations

import pytest
import torch

from phgmm.models.ccnet import CCNet, CrissCrossAttention


def _loop_criss_cross(cca: CrissCrossAttention, x: torch.Tensor) -> torch.Tensor:
    """Each position attends to its column (all H rows) and its row without itself (W − 1): one
    soft-max over those H + W − 1 energies q·k, then the weighted sum of the values."""
    q, k, v = cca.query(x), cca.key(x), cca.value(x)
    n, _, h, w = x.shape
    out = torch.empty_like(x)
    for b in range(n):
        for i in range(h):
            for j in range(w):
                hood = [(r, j) for r in range(h)] + [(i, s) for s in range(w) if s != j]
                assert len(hood) == h + w - 1
                energy = torch.stack([q[b, :, i, j] @ k[b, :, r, s] for r, s in hood])
                attn = torch.softmax(energy, dim=0)
                out[b, :, i, j] = sum(a * v[b, :, r, s] for a, (r, s) in zip(attn, hood, strict=True))
    return cca.gamma * out + x


def test_criss_cross_attention_matches_the_explicit_neighbourhood_loop():
    torch.manual_seed(0)
    cca = CrissCrossAttention(16)
    with torch.no_grad():
        cca.gamma.fill_(0.7)  # starts at 0 (identity); any value tests the attention
        x = torch.randn(2, 16, 5, 7)
        torch.testing.assert_close(cca(x), _loop_criss_cross(cca, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("recurrence, reaches", [(1, False), (2, True)])
def test_two_recurrences_reach_every_position(recurrence, reaches):
    """One pass sees only the row and column; the second carries the rest (the paper's R = 2)."""
    torch.manual_seed(0)
    cca = CrissCrossAttention(8)
    with torch.no_grad():
        cca.gamma.fill_(1.0)
    x = torch.randn(1, 8, 4, 6, requires_grad=True)
    y = x
    for _ in range(recurrence):
        y = cca(y)
    y[0, :, 0, 0].sum().backward()
    assert (x.grad[0, :, 3, 5].abs().sum() > 0) == reaches  # off the row and column of (0, 0)
    assert x.grad[0, :, 0, 5].abs().sum() > 0  # on its row: always


def test_ccnet_r101_parameter_count_is_the_reference_layers():
    """The CCNet paper gives no parameter count; this is the reference implementation's RCCA head
    (speedinghzl/CCNet, networks/ccnet.py: conva, cca, convb, bottleneck; without its deep-
    supervision head, counted apart) on a ResNet-101 (torchvision's 44,549,160 less the 2,049,000 of
    fc), 19 classes."""
    with torch.device("meta"):
        model = CCNet(num_classes=19, backbone="resnet101")
    c, ci, n = 2048, 512, 19
    head = (
        c * ci * 9
        + 2 * ci  # conva: 3×3 conv + BN
        + 2 * (ci * ci // 8 + ci // 8)
        + ci * ci
        + ci
        + 1  # query, key, value (1×1, bias), gamma
        + ci * ci * 9
        + 2 * ci  # convb
        + (c + ci) * ci * 9
        + 2 * ci  # bottleneck 3×3 on cat(F4, out) + BN
        + ci * n
        + n
    )  # classifier
    counts = model.parameter_counts()
    assert counts["encoder"] == 44_549_160 - 2_049_000
    assert counts["head"] == head == 23_934_100
    assert counts["inference_total"] == 66_434_260
    dsn = 1024 * ci * 9 + 2 * ci + ci * n + n  # F3 → 512 (3×3 + BN) → classes
    assert counts["aux"] == dsn and counts["training_total"] == 66_434_260 + dsn == 71_163_623


def test_ccnet_layers_defaults_and_arguments():
    """The RCCA head's defaults (512 channels, R = 2, dropout 0.1 before each classifier), queries
    and keys at C/8, R = 1 allowed and 0 refused, no F3 head at aux_weight 0, the heads' reference
    initialisation (zero biases), and the arguments that reach the encoder."""
    from phgmm.models.ccnet import RCCAHead, deep_supervision_head

    head = RCCAHead(64, 5)
    assert (head.reduce[0].out_channels, head.recurrence) == (512, 2)
    assert [type(m).__name__ for m in head.fuse] == ["Sequential", "Dropout2d", "Conv2d"] and head.fuse[1].p == 0.1
    dsn = deep_supervision_head(64, 5)
    assert [type(m).__name__ for m in dsn] == ["Conv2d", "BatchNorm2d", "ReLU", "Dropout2d", "Conv2d"]
    assert dsn[3].p == 0.1 and dsn[0].out_channels == 512
    assert [CrissCrossAttention(c).query.out_channels for c in (8, 16, 64, 4)] == [1, 2, 8, 1]
    with torch.device("meta"):
        default = CCNet()
    assert default.parameter_counts()["encoder"] == 42_500_160 and default.head.fuse[-1].out_channels == 12
    torch.manual_seed(0)
    one = CCNet(
        num_classes=3, backbone="resnet18", channels=16, recurrence=1, dropout=0.3, aux_weight=0.0, in_channels=1
    )
    assert one.head.recurrence == 1 and one.head.fuse[1].p == 0.3 and one.aux_head is None
    assert isinstance(one.train()(torch.randn(2, 1, 40, 24)), torch.Tensor)
    seen = {}  # output stride 8: layers 3 and 4 dilated by 2 and 4, not strided
    one.encoder.layer4.register_forward_hook(lambda m, i, o: seen.update(f4=o.shape))
    with torch.no_grad():
        one.eval()(torch.randn(1, 1, 64, 96))
    assert seen["f4"][-2:] == (8, 12) and one.encoder.dilation == 4
    with pytest.raises(ValueError) as e:
        CCNet(backbone="resnet18", recurrence=0)
    assert str(e.value) == "CCNet recurrence must be >= 1, got 0"
    model = CCNet(num_classes=3, backbone="resnet18", channels=16)
    assert not model.head.fuse[-1].bias.any() and not model.aux_head[-1].bias.any()
