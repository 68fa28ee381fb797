"""Roofline bounds (benchmark/roofline.py) and the host-synchronisation-free training step they rely on."""

from __future__ import annotations

import collections

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from phgmm import PHGMM, PHGMMLoss
from phgmm.benchmark.roofline import (
    DEVICES,
    DeviceSpec,
    OpRecord,
    by_operator,
    inference_roofline,
    roofline,
    trace_ops,
    training_ops,
    training_roofline,
)

SLOW_MEMORY = DeviceSpec("test", peak_flops=1e12, bandwidth=1e9)


def test_one_convolution_by_hand():
    conv = nn.Conv2d(8, 16, 3, padding=1, device="meta")
    x = torch.empty(2, 8, 10, 12, device="meta")
    ops = trace_ops(lambda: conv(x))
    assert [op.name for op in ops] == ["convolution"]
    flops = 2 * (2 * 16 * 10 * 12) * (8 * 3 * 3)  # 2·MACs, bias not counted
    moved = 4 * (2 * 8 * 10 * 12 + 16 * 8 * 9 + 16 + 2 * 16 * 10 * 12)  # input, weight, bias, output
    assert ops[0] == OpRecord("convolution", flops, moved, True)
    r = roofline(ops, SLOW_MEMORY)
    assert r.eager_s == pytest.approx(max(flops / 1e12, moved / 1e9))
    assert r.fused_s == r.eager_s and r.kernels == 1
    assert r.eager_mfu == pytest.approx((flops / 1e12) / (moved / 1e9))


def test_views_move_nothing_and_in_place_ops_read_and_write_their_tensor():
    a = torch.empty(4, 6, device="meta")
    b = torch.empty(4, 6, device="meta")

    def fn():
        a.t().unsqueeze(0)  # views
        a.add_(b)  # reads a and b, writes a in place
        torch.relu(a)  # reads a, writes a new tensor
        a.relu_()  # reads a, writes a
        a.copy_(b)  # reads b, writes a (a is not read)
        torch.add(a, b, out=b)  # reads a and b, writes b

    ops = trace_ops(fn)
    assert [(op.name, op.bytes, op.matrix) for op in ops] == [
        ("add_", 3 * 96, False),
        ("relu", 2 * 96, False),
        ("relu_", 2 * 96, False),
        ("copy_", 2 * 96, False),
        ("add", 3 * 96, False),
    ]
    r = roofline(ops, SLOW_MEMORY, extra_bytes=1000)
    assert r.fused_s == pytest.approx(1000 / 1e9)  # no matrix op: only the extra traffic
    assert r.eager_s == pytest.approx((12 * 96 + 1000) / 1e9)


def test_flops_match_flop_counter_on_a_real_forward():
    torch.manual_seed(0)
    model = PHGMM(num_classes=5, backbone="resnet18", postnet=None).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        ops = trace_ops(lambda: model(x))
        with FlopCounterMode(display=False) as counter:
            model(x)
    assert sum(op.flops for op in ops) == counter.get_total_flops() > 0


def test_flops_match_a_closed_form_count_of_a_conv_and_linear_stack():
    """An independent count (the test above compares the FLOP registry with itself): 2 FLOPs per
    multiply-add, N·C_out·H_out·W_out·C_in·k_h·k_w of them per convolution (groups divide C_in),
    N·in·out per linear layer; biases, activations and pooling are not model FLOPs."""
    n, h, w = 2, 24, 40
    stack = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.BatchNorm2d(16),
        nn.Conv2d(16, 16, 3, padding=2, dilation=2, groups=4),
        nn.Conv2d(16, 4, 1),
        nn.Flatten(),
        nn.Linear(4 * 12 * 20, 10),
    ).to("meta")
    x = torch.empty(n, 3, h, w, device="meta")
    expected = 2 * (
        n * 8 * h * w * 3 * 9  # 3 → 8, 3×3, full resolution
        + n * 16 * (h // 2) * (w // 2) * 8 * 9  # 8 → 16, 3×3, stride 2
        + n * 16 * (h // 2) * (w // 2) * 4 * 9  # 16 → 16 in 4 groups, 3×3 dilated
        + n * 4 * (h // 2) * (w // 2) * 16  # 16 → 4, 1×1
        + n * (4 * 12 * 20) * 10
    )  # linear
    assert sum(op.flops for op in trace_ops(lambda: stack(x))) == expected


#: fused AdamW on fp32 parameters, worked out by hand: reads p, grad, m, v and writes p, m, v, 4 bytes each
ADAMW_BYTES = 7 * 4


def test_training_bounds_are_ordered_and_count_the_optimiser():
    r = training_roofline("phgmm", backbone="resnet18", size=(96, 64), batch=2, num_classes=5)
    params = sum(p.numel() for p in PHGMM(num_classes=5, backbone="resnet18", postnet="full").parameters())
    assert r.bytes_matrix >= ADAMW_BYTES * params
    assert r.eager_s > r.fused_s > r.compute_s > 0
    assert 0 < r.eager_mfu < r.fused_mfu < 1
    base = training_roofline("fcn8s", backbone="resnet18", size=(96, 64), batch=2, num_classes=5)
    assert base.kernels < r.kernels  # no PostNet, no latent spaces


def test_per_operator_table_adds_up_to_the_eager_bound():
    ops, params = training_ops("phgmm", backbone="resnet18", size=(96, 64), batch=2, num_classes=5)
    table = by_operator(ops, SLOW_MEMORY)
    r = roofline(ops, SLOW_MEMORY, extra_bytes=ADAMW_BYTES * params)
    assert sum(row["calls"] for row in table.values()) == r.kernels == len(ops)
    optimiser_s = ADAMW_BYTES * params / SLOW_MEMORY.bandwidth
    assert sum(row["bound_s"] for row in table.values()) + optimiser_s == pytest.approx(r.eager_s)
    bounds = [row["bound_s"] for row in table.values()]
    assert bounds == sorted(bounds, reverse=True)
    assert table["convolution"]["calls"] == table["convolution_backward"]["calls"] > 0


def test_paper_setting_on_h100_traces_in_seconds_and_is_memory_bound():
    """ResNet-101 at 768×384, batch 16: the shapes alone, on the meta device."""
    infer = inference_roofline("phgmm", device=DEVICES["h100"])
    enc = inference_roofline("phgmm", device=DEVICES["h100"], encoder_only=True)
    assert 1.0 < infer.flops / enc.flops < 1.2  # the documented FLOP floor, 1.167
    assert infer.eager_mfu < 0.5  # bandwidth, not arithmetic, binds


def _host_syncs(fn) -> collections.Counter:
    """Operators that read a device value back to the host (a CUDA synchronisation)."""

    class Syncs(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.seen = collections.Counter()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = func.overloadpacket.__name__
            if name in ("_local_scalar_dense", "nonzero", "masked_select", "is_nonzero", "item"):
                self.seen[name] += 1
            return func(*args, **(kwargs or {}))

    with Syncs() as mode:
        fn()
    return mode.seen


def test_training_forward_and_loss_never_wait_on_the_device():
    """CUDA graphs and an eager step that runs ahead of the GPU both need a step free of host reads;
    F.one_hot, boolean-mask indexing, `if tensor.any()` and distribution argument checks each were one."""
    torch.manual_seed(0)
    model = PHGMM(num_classes=5, backbone="resnet18", postnet="full")
    x, y = torch.randn(2, 3, 64, 96), torch.randint(0, 5, (2, 64, 96))
    y[:, :8] = 255
    for loss_fn in (PHGMMLoss(), PHGMMLoss(free_bits=0.1, warmup_steps=10)):
        seen = _host_syncs(lambda f=loss_fn: f(model(x, y), y, step=3)["total"].backward())
        assert not seen, f"host synchronisations in the training step: {dict(seen)}"


@pytest.mark.parametrize("name", ["phgmm", "deeplabv3", "fcn8s", "pspnet", "unet"])
def test_inference_never_waits_on_the_device(name):
    """What predict and evaluate run (BatchNorm folded; whole image, and slide + flip + scales) reads
    nothing back to the host, so it can run ahead of a GPU and be captured as a CUDA graph."""
    from phgmm.engine.inference.tiling import infer_logits
    from phgmm.models import build_model, fold_batchnorm

    torch.manual_seed(0)
    kwargs = {"postnet": None} if name == "phgmm" else {}
    model = fold_batchnorm(build_model(name, num_classes=5, backbone="resnet18", **kwargs).eval())
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        assert not _host_syncs(lambda: model(x).argmax(1))
        assert not _host_syncs(
            lambda: infer_logits(model, x, mode="slide", tile=(48, 32), stride=(32, 16), flip=True, scales=(0.75, 1.0))
        )
        if name == "phgmm":  # the samples behind the uncertainty maps
            assert not _host_syncs(lambda: model.sample_logits(x, 3))


def test_optimiser_traffic_is_28_bytes_per_parameter_worked_by_hand():
    """A fused AdamW step on fp32 parameters reads the parameter, its gradient and both moments and
    writes the parameter and both moments back: 4 + 3 tensors of 4 bytes = 28 bytes per parameter,
    added to both traffic sums and to both time bounds of a training step (and never to inference)."""
    per_param = (4 + 4 + 4 + 4) + (4 + 4 + 4)  # reads: p, grad, m, v; writes: p, m, v
    kwargs = dict(backbone="resnet18", size=(64, 32), batch=1, num_classes=3)
    ops, params = training_ops("fcn8s", **kwargs)
    from phgmm.models import build_model

    model = build_model("fcn8s", num_classes=3, backbone="resnet18")
    assert params == sum(p.numel() for p in model.parameters()) > 0
    r = training_roofline("fcn8s", device=SLOW_MEMORY, **kwargs)
    assert r.bytes_all - sum(op.bytes for op in ops) == per_param * params
    assert r.bytes_matrix - sum(op.bytes for op in ops if op.matrix) == per_param * params
    bare = roofline(ops, SLOW_MEMORY)
    assert r.eager_s - bare.eager_s == pytest.approx(per_param * params / 1e9)
    assert r.fused_s - bare.fused_s == pytest.approx(per_param * params / 1e9)


def test_device_table_is_the_datasheets():
    """Dense bf16 tensor-core peaks and memory bandwidths as the vendors' datasheets print them."""
    assert (DEVICES["h100"].peak_flops, DEVICES["h100"].bandwidth) == (989e12, 3.35e12)
    assert (DEVICES["h200"].peak_flops, DEVICES["h200"].bandwidth) == (989e12, 4.8e12)
    assert (DEVICES["a100"].peak_flops, DEVICES["a100"].bandwidth) == (312e12, 2.039e12)


def test_roofline_as_dict_names_each_bound():
    from phgmm.benchmark.roofline import Roofline

    r = Roofline(DeviceSpec("toy", 10.0, 2.0), 3, 5, 7, 11, 4.0, 2.0, 1.0)
    assert r.as_dict() == {
        "device": "toy",
        "flops": 3,
        "bytes_all": 5,
        "bytes_matrix": 7,
        "kernels": 11,
        "eager_s": 4.0,
        "fused_s": 2.0,
        "compute_s": 1.0,
        "eager_mfu_ceiling": 0.25,  # compute ÷ eager
        "fused_mfu_ceiling": 0.5,  # compute ÷ fused
    }


def test_by_operator_sums_each_operators_calls():
    dev = DeviceSpec("toy", 10.0, 2.0)
    ops = [OpRecord("mm", 30, 4, True), OpRecord("add", 0, 8, False), OpRecord("mm", 50, 6, True)]
    # mm: 30 + 50 FLOPs, 4 + 6 bytes, bounds max(3, 2) + max(5, 3) = 8 s; add: 8 bytes ÷ 2 = 4 s
    assert by_operator(ops, dev) == {
        "mm": {"calls": 2, "flops": 80, "bytes": 10, "bound_s": 8.0},
        "add": {"calls": 1, "flops": 0, "bytes": 8, "bound_s": 4.0},
    }


def test_training_roofline_defaults_reach_the_trace(monkeypatch):
    import phgmm.benchmark.roofline as rl

    asked = []
    monkeypatch.setattr(rl, "training_ops", lambda *a, **kw: asked.append((a, kw)) or ([], 10))
    r = rl.training_roofline(decoder_units=(1,))
    assert asked == [(("phgmm", "resnet101", (768, 384), 16, 12, "full", torch.bfloat16), {"decoder_units": (1,)})]
    # H100: 10 parameters × 28 bytes of AdamW over 3.35 TB/s, and nothing else
    assert r.bytes_all == 280 and r.eager_s == 280 / 3.35e12 and r.device.name.startswith("NVIDIA H100")


def test_inference_roofline_defaults_and_folding(monkeypatch):
    import phgmm.benchmark.roofline as rl

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4))
            self.head = nn.Conv2d(4, 2, 1)

        def forward(self, x):
            return self.head(self.encoder(x))

    asked = []
    monkeypatch.setattr(rl, "_meta_model", lambda *a, **kw: asked.append(("model", a, kw)) or Tiny())
    monkeypatch.setattr(rl, "_meta_batch", lambda *a: asked.append(("batch", a)) or (torch.zeros(1, 3, 4, 6), None))
    plain = rl.inference_roofline(decoder_units=(1,))
    assert asked == [
        ("model", ("phgmm", "resnet101", 12, torch.bfloat16, None), {"decoder_units": (1,)}),
        ("batch", ((768, 384), 16, 12, torch.bfloat16)),
    ]
    folded = rl.inference_roofline(folded=True)
    encoder = rl.inference_roofline(encoder_only=True)
    # folding removes the BatchNorm's traffic; the bare encoder has no classifier's FLOPs
    assert folded.kernels == plain.kernels - 1 and folded.flops == plain.flops
    # FLOPs of the 3×3 convolution on one 6×4 image: 2·24·27·4 = 5184, of the classifier 2·24·4·2 = 384
    assert (encoder.flops, plain.flops) == (5184, 5184 + 384)


def test_training_ops_defaults_and_the_labels_reach_a_latent_network(monkeypatch):
    import phgmm.benchmark.roofline as rl

    class Latent(nn.Module):
        """LatentNetwork's interface on a 1×1 convolution; keeps whether the labels came."""

        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 1)
            self.labels: list[bool] = []

        def forward(self, x, y=None):
            self.labels.append(y is not None)
            return self.conv(x)

        def forward_latent(self, x, y=None, sample=None): ...
        def encode(self, x): ...
        def decode(self, enc, pi=None, mu_z=None, mu_g=None): ...
        def sample_logits(self, x, n): ...

    asked, net = [], Latent()
    monkeypatch.setattr(rl, "_meta_model", lambda *a, **kw: asked.append(("model", a, kw)) or net)
    batch = (torch.zeros(1, 3, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
    monkeypatch.setattr(rl, "_meta_batch", lambda *a: asked.append(("batch", a)) or batch)
    ops, params = rl.training_ops(decoder_units=(1,))
    assert asked == [
        ("model", ("phgmm", "resnet101", 12, torch.bfloat16, "full"), {"decoder_units": (1,)}),
        ("batch", ((768, 384), 16, 12, torch.bfloat16)),
    ]
    assert net.labels == [True] and params == 3 * 2 + 2 and net.training
