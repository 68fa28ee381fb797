"""2×2 max pooling that remembers where each maximum was, and the unpooling that puts values back
there (SegNet's and ENet's decoders).

``F.max_pool2d(return_indices=True)`` + ``F.max_unpool2d`` do this in PyTorch, but unpooling has no
reliable ONNX export (the TorchScript exporter refuses ``max_unpool2d``; ONNX's MaxPool indices count
over the whole N×C×H×W tensor, not per plane). So the windows are laid out explicitly: the map is
padded to even size with −inf (PyTorch's ``ceil_mode=True``: an odd last row/column is a window of
its own), reshaped to N×C×h×w×4, and the window position of the maximum is an ``argmax`` over the
last axis (the first maximum on ties, as PyTorch's pooling). Unpooling is a one-hot of that position
times the value, reshaped back and cropped: Reshape/ArgMax/Equal/Mul/Slice in ONNX.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["max_pool2x2_with_argmax", "max_unpool2x2"]


def _windows(x: torch.Tensor) -> torch.Tensor:
    """N×C×H×W (even H, W) → N×C×H/2×W/2×4, the 2×2 windows in row-major order."""
    n, c, h, w = x.shape
    x = x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 2, 4, 3, 5)
    return x.reshape(n, c, h // 2, w // 2, 4)


def max_pool2x2_with_argmax(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """2×2, stride-2 max pooling in ceil mode; returns the pooled map (N×C×⌈H/2⌉×⌈W/2⌉) and the
    position 0..3 of each maximum inside its window (int64, same shape)."""
    h, w = x.shape[-2:]
    x = F.pad(x, (0, w % 2, 0, h % 2), value=float("-inf"))
    win = _windows(x)
    where = win.argmax(dim=-1, keepdim=True)
    # gather (not amax): the gradient goes to the one maximum, as max_pool2d's
    return win.gather(-1, where).squeeze(-1), where.squeeze(-1)


def max_unpool2x2(y: torch.Tensor, where: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Put each value of ``y`` (N×C×h×w) at its window position ``where`` in a zero H×W map
    (``size``, the map before pooling); the inverse placement of :func:`max_pool2x2_with_argmax`."""
    n, c, h, w = y.shape
    slots = torch.arange(4, device=y.device)
    win = y.unsqueeze(-1) * (where.unsqueeze(-1) == slots).to(y.dtype)  # N×C×h×w×4
    out = win.reshape(n, c, h, w, 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(n, c, 2 * h, 2 * w)
    return out[..., : size[0], : size[1]]
