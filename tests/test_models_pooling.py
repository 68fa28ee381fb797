"""Max pooling with window argmax and the unpooling of SegNet/ENet (models/pooling.py): against
loops, against PyTorch's max_pool2d/max_unpool2d, and through ONNX."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from phgmm.models.pooling import max_pool2x2_with_argmax, max_unpool2x2


def _loop_pool(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """2×2 ceil-mode max pooling and the first argmax's window slot (dy·2 + dx), one window at a time."""
    n, c, h, w = x.shape
    ho, wo = (h + 1) // 2, (w + 1) // 2
    pooled, where = torch.empty(n, c, ho, wo), torch.empty(n, c, ho, wo, dtype=torch.long)
    for b in range(n):
        for ch in range(c):
            for i in range(ho):
                for j in range(wo):
                    best, slot = None, None
                    for dy in range(2):
                        for dx in range(2):
                            r, s = 2 * i + dy, 2 * j + dx
                            if r < h and s < w and (best is None or x[b, ch, r, s] > best):
                                best, slot = x[b, ch, r, s], 2 * dy + dx
                    pooled[b, ch, i, j], where[b, ch, i, j] = best, slot
    return pooled, where


def _loop_unpool(y: torch.Tensor, where: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    n, c, h, w = y.shape
    out = torch.zeros(n, c, *size)
    for b in range(n):
        for ch in range(c):
            for i in range(h):
                for j in range(w):
                    dy, dx = divmod(int(where[b, ch, i, j]), 2)
                    out[b, ch, 2 * i + dy, 2 * j + dx] = y[b, ch, i, j]
    return out


@pytest.mark.parametrize("size", [(7, 9), (6, 4), (5, 5)])
def test_pool_and_unpool_match_the_loops_and_pytorch_at_odd_and_even_sizes(size):
    g = torch.Generator().manual_seed(sum(size))
    x = torch.randn(2, 3, *size, generator=g)
    x[0, 0, :2, :2] = 0.0  # a tie (as after a ReLU): the first maximum wins, as PyTorch's
    x[1, 2, 2:4, 0:2] = 1.5
    pooled, where = max_pool2x2_with_argmax(x)
    ref_pooled, ref_where = _loop_pool(x)
    assert pooled.shape == (2, 3, (size[0] + 1) // 2, (size[1] + 1) // 2)
    assert torch.equal(pooled, ref_pooled) and torch.equal(where, ref_where)
    y = torch.randn(pooled.shape, generator=g)
    out = max_unpool2x2(y, where, size)
    assert out.shape == x.shape
    assert torch.equal(out, _loop_unpool(y, where, size))
    # PyTorch's own pair, with per-plane flat indices
    tp, ti = F.max_pool2d(x, 2, 2, ceil_mode=True, return_indices=True)
    assert torch.equal(pooled, tp)
    assert torch.equal(out, F.max_unpool2d(y, ti, 2, 2, output_size=size))


def test_pooling_gradient_goes_to_the_one_maximum():
    x = torch.tensor([[[[1.0, 3.0], [3.0, 0.0]]]], requires_grad=True)
    pooled, _ = max_pool2x2_with_argmax(x)
    pooled.sum().backward()
    assert x.grad.flatten().tolist() == [0.0, 1.0, 0.0, 0.0]


def test_pool_unpool_exports_to_onnx_and_runs_in_onnxruntime(tmp_path):
    pytest.importorskip("onnxruntime")
    from phgmm.engine.inference.export import OnnxPredictor, export_onnx

    class PoolUnpool(torch.nn.Module):
        def forward(self, x):
            pooled, where = max_pool2x2_with_argmax(x)
            return max_unpool2x2(pooled * 2.0, where, x.shape[-2:])

    path = export_onnx(PoolUnpool(), tmp_path / "unpool.onnx", example_size=(16, 12), exporter="torchscript")
    x = np.random.default_rng(0).standard_normal((2, 3, 11, 13), dtype=np.float32)
    t = torch.from_numpy(x)
    p, i = F.max_pool2d(t, 2, 2, ceil_mode=True, return_indices=True)
    ref = F.max_unpool2d(p * 2.0, i, 2, 2, output_size=(11, 13)).numpy()
    np.testing.assert_array_equal(OnnxPredictor(path)(x), ref)
