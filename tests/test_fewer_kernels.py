"""Fewer kernels, same arithmetic: each reduction against the formulation it replaced (docs/gpu.md)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from support import four_class_phgmm

from phgmm import PHGMMLoss
from phgmm.engine.training.step import batched_bn_counters
from phgmm.models import fold_batchnorm

pytestmark = pytest.mark.usefixtures("one_thread")


def _level_maps_before(model, feats):
    """PHGMM.level_maps as it was: a weight and a bias torch.cat per level, one sigmoid and one mean
    per level and summary."""
    spaces = [model.local_space, model.global_space]
    summaries = [space.summary.convs for space in spaces if space is not None]
    summary_maps, skips = [], []
    for level, (f, skip_conv) in enumerate(zip(feats, model.decoder.skip_convs(), strict=True)):
        convs = [s[level] for s in summaries] + [skip_conv]
        weight = torch.cat([c.weight for c in convs])
        bias = torch.cat([c.bias if c.bias is not None else c.weight.new_zeros(c.out_channels) for c in convs])
        out = F.conv2d(f, weight, bias, padding=skip_conv.padding)
        *parts, skip = out.split([c.out_channels for c in convs], dim=1)
        summary_maps.append(parts)
        skips.append(skip)
    owners = [space.summary for space in spaces if space is not None]
    pooled = iter([owner.pool(owner.normalize([maps[i] for maps in summary_maps])) for i, owner in enumerate(owners)])
    s_z, s_g = (next(pooled) if space is not None else None for space in spaces)
    return s_z, s_g, skips


def _tiny(**kwargs):
    return four_class_phgmm(None, **kwargs)


def _flat(values):
    return [v for v in values if v is not None]


@pytest.mark.parametrize(
    "variant", ["default", "channels_last", "summary_norm", "no_global", "no_local", "neither", "folded"]
)
def test_level_maps_match_the_literal_formulation(variant):
    kwargs = {"summary_norm": "batch"} if variant == "summary_norm" else {}
    kwargs.update({"use_global": False} if variant in ("no_global", "neither") else {})
    kwargs.update({"use_local": False} if variant in ("no_local", "neither") else {})
    model = _tiny(**kwargs)
    x = torch.randn(2, 3, 64, 96)
    if variant == "channels_last":
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    if variant == "folded":
        model = fold_batchnorm(model.eval())
    feats = [f.detach().requires_grad_() for f in model.encoder(x)]
    new, old = model.level_maps(feats), _level_maps_before(model, feats)
    new_flat, old_flat = _flat([new[0], new[1], *new[2]]), _flat([old[0], old[1], *old[2]])
    assert len(new_flat) == len(old_flat)
    for a, b in zip(new_flat, old_flat, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    if variant == "folded":
        return
    params = [p for p in model.parameters()] + feats
    weights = [torch.randn_like(t) for t in new_flat]
    grads_new = torch.autograd.grad(
        sum((w * t).sum() for w, t in zip(weights, new_flat, strict=True)), params, allow_unused=True
    )
    grads_old = torch.autograd.grad(
        sum((w * t).sum() for w, t in zip(weights, old_flat, strict=True)), params, allow_unused=True
    )
    for a, b in zip(grads_new, grads_old, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_level_maps_under_autocast_round_as_before():
    """Under bf16 autocast the merged weights are cast once instead of once per convolution: the
    same values rounded the same way, so the same outputs."""
    model = _tiny().to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 64, 96).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        feats = model.encoder(x)
        new, old = model.level_maps(feats), _level_maps_before(model, feats)
    for a, b in zip(_flat([new[0], new[1], *new[2]]), _flat([old[0], old[1], *old[2]]), strict=True):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a.float(), b.float(), rtol=1e-2, atol=1e-2)


def test_batched_bn_counters_leave_the_same_state_and_gradients():
    model = four_class_phgmm("light")
    model.decoder.groups[0].skip[1].momentum = None  # a cumulative average reads its counter
    twin = copy.deepcopy(model)
    x, y = torch.randn(2, 3, 64, 96), torch.randint(0, 4, (2, 64, 96))
    loss = PHGMMLoss()
    for m, batched in ((model, False), (twin, True)):
        for _ in range(2):
            m.zero_grad(set_to_none=True)
            if batched:
                with batched_bn_counters(m):
                    total = loss(m(x, y), y)["total"]
            else:
                total = loss(m(x, y), y)["total"]
            total.backward()
    assert list(model.state_dict()) == list(twin.state_dict())
    for (name, a), b in zip(model.state_dict().items(), twin.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert int(twin.encoder.bn1.num_batches_tracked) == 2
    for (name, a), b in zip(model.named_parameters(), twin.parameters(), strict=True):
        assert (a.grad is None) == (b.grad is None), name
        if a.grad is not None:
            assert torch.equal(a.grad, b.grad), name


def test_batched_bn_counters_restore_the_counters_when_the_forward_fails():
    model = _tiny()
    before = {n: b.clone() for n, b in model.named_buffers()}
    with pytest.raises(RuntimeError):
        with batched_bn_counters(model):
            model(torch.randn(2, 5, 64, 96))  # wrong number of channels
    after = dict(model.named_buffers())
    assert list(after) == list(before)
    assert all(torch.equal(before[n], after[n]) for n in before)
