"""Pictures of labels, errors and uncertainty as ``uint8`` RGB arrays, and atomic PNG writing.

All functions take NumPy arrays or torch tensors and return ``H×W×3`` ``uint8`` NumPy arrays.
``error_overlay`` follows the paper's Fig. 8: green where the prediction is right, red where it
is wrong, gray where the ground truth is ignored, blended over the input image.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .conventions import IGNORE_INDEX
from .io import to_numpy

__all__ = [
    "to_numpy",
    "to_rgb_uint8",
    "colorize",
    "overlay",
    "error_overlay",
    "heatmap",
    "save_png",
    "CORRECT_COLOR",
    "WRONG_COLOR",
    "IGNORE_COLOR",
]

CORRECT_COLOR = (0, 200, 0)
WRONG_COLOR = (230, 0, 0)
IGNORE_COLOR = (128, 128, 128)


def to_rgb_uint8(image: Any, bgr: bool = False) -> np.ndarray:
    """Any image to ``H×W×3`` uint8 RGB — the project's one RGB-to-uint8 conversion.

    Layouts: ``H×W`` gray, ``H×W×1/2/3/4`` (gray, gray+alpha, RGB, RGBA; alpha is dropped) and
    ``1/3/4×H×W`` (torch layout). Depths: uint8 as is; uint16 keeps its high byte (``>> 8``);
    float (and bool) in [0, 1] is scaled by 255, any other number is clipped to [0, 255] and
    rounded; NaN becomes 0. ``bgr=True`` reads a 3/4-channel array in OpenCV's BGR(A) order.
    """
    a = to_numpy(image)
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 2, 3, 4):
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"cannot interpret an array of shape {a.shape} as an image")
    if a.shape[-1] <= 2:  # gray or gray + alpha
        a = a[..., :1]
    else:
        a = a[..., :3]
        if bgr:
            a = a[..., ::-1]
    if a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)
    elif a.dtype != np.uint8:
        was_float = np.issubdtype(a.dtype, np.floating) or a.dtype == bool
        a = a.astype(np.float64)
        seen = a[~np.isnan(a)]
        if was_float and seen.size and seen.max() <= 1.0:
            a = a * 255.0
        a = np.clip(np.nan_to_num(a), 0, 255).round().astype(np.uint8)
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    return np.ascontiguousarray(a)


def colorize(label: Any, colors: Sequence[Sequence[int]], ignore_color: Sequence[int] = (0, 0, 0)) -> np.ndarray:
    """Class-index map ``H×W`` → ``H×W×3`` uint8 RGB with ``colors[c]`` for class ``c`` — the
    project's one colour-mask function (``phgmm.data.colorize`` and ``ClassTable.colorize`` are
    this function).

    Convention: values outside ``[0, len(colors))`` — the ignore label 255 above all — are drawn
    in ``ignore_color``, black by default.
    """
    lab = to_numpy(label)
    if lab.ndim != 2:
        raise ValueError(f"colorize expects an H×W label map, got shape {lab.shape}")
    pal = np.asarray(colors, dtype=np.int64).reshape(-1, 3)
    if pal.size and (pal.min() < 0 or pal.max() > 255):
        raise ValueError("colours must be RGB triples in [0, 255]")
    pal = pal.astype(np.uint8)
    lab = lab.astype(np.int64, copy=False)
    out = np.empty(lab.shape + (3,), np.uint8)
    out[:] = np.asarray(ignore_color, np.uint8)
    ok = (lab >= 0) & (lab < len(pal))
    out[ok] = pal[lab[ok]]
    return out


def overlay(rgb: Any, color_mask: Any, alpha: float = 0.5) -> np.ndarray:
    """``(1 - alpha) * rgb + alpha * color_mask`` as uint8; both ``H×W×3``."""
    a = to_rgb_uint8(rgb).astype(np.float32)
    b = to_rgb_uint8(color_mask).astype(np.float32)
    if a.shape != b.shape:
        raise ValueError(f"image and mask sizes differ: {a.shape} vs {b.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    return np.clip((1.0 - alpha) * a + alpha * b, 0, 255).round().astype(np.uint8)


def error_overlay(rgb: Any, pred: Any, target: Any, ignore_index: int = IGNORE_INDEX, alpha: float = 0.5) -> np.ndarray:
    """Green where ``pred == target``, red where wrong, gray where ``target == ignore_index``,
    blended over ``rgb`` (paper Fig. 8)."""
    p = to_numpy(pred)
    t = to_numpy(target)
    if p.shape != t.shape or p.ndim != 2:
        raise ValueError(f"pred and target must be H×W of the same size, got {p.shape} and {t.shape}")
    mask = np.empty(t.shape + (3,), np.uint8)
    mask[:] = WRONG_COLOR
    mask[p == t] = CORRECT_COLOR
    mask[t == ignore_index] = IGNORE_COLOR
    img = to_rgb_uint8(rgb)
    if img.shape[:2] != t.shape:
        raise ValueError(f"image size {img.shape[:2]} differs from label size {t.shape}")
    return overlay(img, mask, alpha)


def heatmap(values: Any, vmin: float | None = None, vmax: float | None = None, cmap: str = "inferno") -> np.ndarray:
    """Scalar map ``H×W`` (e.g. entropy) → ``H×W×3`` uint8 through a matplotlib colormap.

    The range defaults to the finite min/max of ``values``; NaN/inf pixels are black.
    """
    from matplotlib import colormaps

    v = to_numpy(values).astype(np.float64)
    if v.ndim != 2:
        raise ValueError(f"heatmap expects an H×W array, got shape {v.shape}")
    finite = np.isfinite(v)
    if vmin is None:
        vmin = float(v[finite].min()) if finite.any() else 0.0
    if vmax is None:
        vmax = float(v[finite].max()) if finite.any() else 1.0
    span = vmax - vmin
    norm = (v - vmin) / span if span > 0 else np.zeros_like(v)
    norm = np.clip(np.where(finite, norm, 0.0), 0.0, 1.0)
    rgb = (colormaps[cmap](norm)[..., :3] * 255.0).round().astype(np.uint8)
    rgb[~finite] = 0
    return rgb


def save_png(path: str | os.PathLike, array: Any) -> Path:
    """Write ``array`` (``H×W`` uint8/uint16/bool, ``H×W×3`` or ``H×W×4`` uint8) as PNG,
    atomically (temporary file in the same folder + ``os.replace``)."""
    from PIL import Image

    from .io import atomic_write_bytes

    a = to_numpy(array)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    if a.ndim == 2:
        if a.dtype == np.uint16:
            img = Image.fromarray(a)
        else:
            if a.dtype != np.uint8:
                if a.size and (a.min() < 0 or a.max() > 255):
                    raise ValueError("a single-channel PNG array must be in [0, 255] (or uint16)")
                a = a.astype(np.uint8)
            img = Image.fromarray(np.ascontiguousarray(a))
    elif a.ndim == 3 and a.shape[-1] in (3, 4):
        if a.dtype != np.uint8:
            a = to_rgb_uint8(a) if a.shape[-1] == 3 else np.clip(a, 0, 255).astype(np.uint8)
        img = Image.fromarray(np.ascontiguousarray(a))
    else:
        raise ValueError(f"cannot save an array of shape {a.shape} as PNG")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())
