"""Whole-image and sliding-window inference with test-time augmentation (flip, multi-scale).

One function, :func:`infer_logits`, used by ``phgmm predict`` and ``phgmm evaluate``: it
takes any ``forward`` that maps an ``N×3×h×w`` float tensor to ``N×C×h×w`` logits — a model, an
ONNX session wrapped as a callable, ``model.sample_logits`` reshaped — and an already normalised
input batch ``x`` (``N×3×H×W``), and returns ``N×C×H×W`` at the input's resolution.

Modes (as in mmsegmentation's ``whole`` / ``slide`` test modes):

* ``"whole"``: one forward of the whole input.
* ``"slide"``: windows of ``tile`` = (W, H) pixels every ``stride`` = (W, H) pixels, the last
  row/column of windows shifted back to end at the image border, so every window has the tile's
  size; where windows overlap, their logits are averaged (a count map divides the summed
  logits). An input smaller than a tile is zero-padded at the bottom/right up to the tile (zero is
  the mean colour of a normalised image) and the padding is cropped off the result. ``stride``
  must not exceed ``tile`` (that would leave pixels no window covers); default ``tile`` is the
  input size (one window) and default ``stride`` two thirds of the tile.

Test-time augmentation: ``flip=True`` also runs the horizontally mirrored input and mirrors its
prediction back; ``scales`` runs the input resized (bilinear) by each factor and resizes each
prediction (bilinear) back to ``H×W``. Both compose with either mode (a slide at scale 1.5 slides
the tile over the 1.5× input).

What is returned — in every case ``softmax(result, 1)`` is the predictive distribution and
``argmax(result, 1)`` the prediction:

* one pass (no flip, a single scale): the model's own logits (averaged over overlapping windows
  in slide mode; resized back for a scale other than 1) — with a single window and scale 1.0
  exactly ``forward(x)``;
* several passes (flip and/or several scales): as mmsegmentation's test-time augmentation, the
  softmax probabilities of the passes are averaged, and the **log** of that mean is returned
  (log-probabilities, floored at the smallest positive float so they stay finite). These are
  logits too: their softmax is exactly the averaged distribution.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from ...conventions import EVAL_MODES

__all__ = ["infer_logits", "check_options", "slide_windows", "default_stride", "size_pair"]


def default_stride(tile: Sequence[int]) -> tuple[int, int]:
    """Two thirds of ``tile`` = (W, H), rounded (768×384 → 512×256), at least 1."""
    return tuple(max(1, int(round(int(t) * 2 / 3))) for t in tile)  # type: ignore[return-value]


def size_pair(value: Sequence[int] | None, name: str) -> tuple[int, int] | None:
    """``value`` as a positive (W, H) pair of ints (None stays None); a clear error names ``name``."""
    if value is None:
        return None
    try:
        w, h = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (W, H) pair of integers, got {value!r}") from None
    if w < 1 or h < 1:
        raise ValueError(f"{name} must be positive (W, H), got {tuple(value)}")
    return w, h


def check_options(
    mode: str, tile: Sequence[int] | None, stride: Sequence[int] | None, scales: Sequence[float]
) -> tuple[tuple[int, int] | None, tuple[int, int] | None, tuple[float, ...]]:
    """Refuse what no inference can run, before any work: an unknown mode, a tile or stride that is
    not a positive (W, H), a stride larger than the tile, a scale that is not a positive number.
    Returns ``(tile, stride, scales)`` normalised (tile and stride stay None when not given)."""
    if mode not in EVAL_MODES:
        raise ValueError(f"mode must be one of {', '.join(EVAL_MODES)}, got {mode!r}")
    tile_wh, stride_wh = size_pair(tile, "tile"), size_pair(stride, "stride")
    if tile_wh is not None and stride_wh is not None and (stride_wh[0] > tile_wh[0] or stride_wh[1] > tile_wh[1]):
        raise ValueError(
            f"stride {stride_wh[0]}x{stride_wh[1]} is larger than the tile {tile_wh[0]}x{tile_wh[1]}: "
            f"pixels between the windows would get no prediction"
        )
    scales = tuple(float(s) for s in scales)
    if not scales or any(not math.isfinite(s) or s <= 0 for s in scales):
        raise ValueError(f"scales must be positive numbers, got {scales}")
    return tile_wh, stride_wh, scales


def slide_windows(
    height: int, width: int, tile: Sequence[int], stride: Sequence[int]
) -> list[tuple[int, int, int, int]]:
    """The windows ``(y1, y2, x1, x2)`` of a slide over an ``height×width`` image (at least the
    tile's size): every ``stride`` pixels, the last ones shifted back to end at the border (so all
    have the tile's size), as mmsegmentation's ``slide_inference``."""
    tw, th = (int(v) for v in tile)
    sw, sh = (int(v) for v in stride)
    rows = max(height - th + sh - 1, 0) // sh + 1
    cols = max(width - tw + sw - 1, 0) // sw + 1
    windows = []
    for r in range(rows):
        for c in range(cols):
            y2, x2 = min(r * sh + th, height), min(c * sw + tw, width)
            window = (max(y2 - th, 0), y2, max(x2 - tw, 0), x2)
            if window not in windows:
                windows.append(window)
    return windows


def _check(out: object, n: int, size: tuple[int, int], num_classes: int | None) -> torch.Tensor:
    if not isinstance(out, torch.Tensor):
        out = getattr(out, "logits", out)
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"forward must return an N×C×h×w tensor, got {type(out).__name__}")
    if out.ndim != 4 or out.shape[0] != n or tuple(out.shape[-2:]) != size:
        raise ValueError(
            f"forward returned shape {tuple(out.shape)} for an input of {n}×3×{size[0]}×{size[1]}; "
            f"expected {n}×C×{size[0]}×{size[1]} logits at the input's resolution"
        )
    if num_classes is not None and out.shape[1] != num_classes:
        raise ValueError(f"forward returned {out.shape[1]} channels, expected num_classes={num_classes}")
    return out


def _whole(forward: Callable, x: torch.Tensor, num_classes: int | None) -> torch.Tensor:
    return _check(forward(x), x.shape[0], tuple(x.shape[-2:]), num_classes)


def _slide(
    forward: Callable,
    x: torch.Tensor,
    tile: tuple[int, int],
    stride: tuple[int, int],
    num_classes: int | None,
    max_batch: int | None,
) -> torch.Tensor:
    n, _, height, width = x.shape
    tw, th = tile
    pad_h, pad_w = max(th - height, 0), max(tw - width, 0)
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h))
    hp, wp = x.shape[-2:]
    windows = slide_windows(hp, wp, tile, stride)
    per_call = max(1, (max_batch or n) // n)  # windows per forward call (each n crops)
    acc: torch.Tensor | None = None
    count = torch.zeros(1, 1, hp, wp, device=x.device, dtype=torch.float32)
    for start in range(0, len(windows), per_call):
        group = windows[start : start + per_call]
        crops = (
            torch.cat([x[:, :, y1:y2, x1:x2] for y1, y2, x1, x2 in group])
            if len(group) > 1
            else x[:, :, group[0][0] : group[0][1], group[0][2] : group[0][3]]
        )
        out = _check(forward(crops), crops.shape[0], (th, tw), num_classes)
        if acc is None:  # channels-last: the later argmax over C is several times faster on a CPU
            acc = torch.zeros(n, out.shape[1], hp, wp, device=out.device, dtype=torch.float32).contiguous(
                memory_format=torch.channels_last
            )
        for j, (y1, y2, x1, x2) in enumerate(group):
            acc[:, :, y1:y2, x1:x2] += out[j * n : (j + 1) * n].float()
            count[:, :, y1:y2, x1:x2] += 1
    assert acc is not None
    if len(windows) > 1:
        acc = acc / count.to(acc.device)
    return acc[:, :, :height, :width]


def _resize(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(t.shape[-2:]) == tuple(size):
        return t
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)


@torch.no_grad()
def infer_logits(
    forward: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    mode: str = "whole",
    tile: Sequence[int] | None = None,
    stride: Sequence[int] | None = None,
    flip: bool = False,
    scales: Sequence[float] = (1.0,),
    num_classes: int | None = None,
    max_batch: int | None = None,
) -> torch.Tensor:
    """``N×C×H×W`` logits of the normalised batch ``x`` (``N×3×H×W``), see the module docstring.

    Args:
        forward: maps ``N×3×h×w`` to ``N×C×h×w`` logits (a model in eval mode, an ONNX callable).
            It is called on tensors on ``x``'s device.
        x: the normalised input batch.
        mode: ``"whole"`` (one forward) or ``"slide"`` (overlapping windows, logits averaged).
        tile: slide window (W, H) (default: the input's own size, i.e. one window).
        stride: slide step (W, H) (default: :func:`default_stride` of the tile); at most ``tile``.
        flip: also run the horizontally flipped input and average (softmax) with it.
        scales: resize factors of the input; several factors (or ``flip``) average the softmax
            probabilities of all passes and return their log.
        num_classes: C, checked against what ``forward`` returns (optional).
        max_batch: slide mode: at most this many crops per forward call (default ``N``: one
            window position of every image per call); a larger value batches several windows.

    Returns:
        ``N×C×H×W`` float logits on ``forward``'s output device: raw logits for a single pass,
        log-mean-probabilities for several (softmax of either is the predictive distribution).
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"x must be an N×3×H×W tensor, got {getattr(x, 'shape', type(x).__name__)}")
    tile_wh, stride_wh, scales = check_options(mode, tile, stride, scales)
    if max_batch is not None and int(max_batch) < 1:
        raise ValueError(f"max_batch must be at least 1, got {max_batch}")
    height, width = x.shape[-2:]

    def one_pass(inp: torch.Tensor) -> torch.Tensor:
        if mode == "whole":
            return _whole(forward, inp, num_classes)
        t = tile_wh or (inp.shape[-1], inp.shape[-2])
        s = stride_wh or default_stride(t)
        if s[0] > t[0] or s[1] > t[1]:
            raise ValueError(f"stride {s[0]}x{s[1]} is larger than the tile {t[0]}x{t[1]}")
        return _slide(forward, inp, t, s, num_classes, max_batch)

    def at_scale(scale: float, mirrored: bool) -> torch.Tensor:
        inp = x
        if scale != 1.0:
            inp = _resize(x, (max(1, int(round(height * scale))), max(1, int(round(width * scale)))))
        if mirrored:
            inp = inp.flip(-1)
        out = one_pass(inp)
        if mirrored:
            out = out.flip(-1)
        return _resize(out, (height, width))

    passes = [(s, m) for s in scales for m in ((False, True) if flip else (False,))]
    if len(passes) == 1:
        return at_scale(*passes[0])
    mean: torch.Tensor | None = None
    for scale, mirrored in passes:
        p = at_scale(scale, mirrored).float().softmax(1)
        mean = p if mean is None else mean.add_(p)
    assert mean is not None
    return mean.div_(len(passes)).clamp_min_(torch.finfo(mean.dtype).tiny).log_()
