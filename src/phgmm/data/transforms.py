"""Image/label I/O, resizing, normalisation and training augmentation (numpy + OpenCV only).

Sizes are always ``(W, H)``. Images are resized bilinearly, labels with nearest neighbour.
Training augmentation (paper: random crop, contrast, brightness, horizontal flip) is applied
online and reproducibly: :func:`sample_rng` derives a per-sample generator from
``(seed, epoch, index)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from .datasets import DatasetError  # defined before datasets.py imports this module

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "load_image",
    "load_label",
    "to_rgb8",
    "normalize",
    "denormalize",
    "resize_pair",
    "resize_image",
    "preprocess",
    "Augment",
    "sample_rng",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_MEAN = np.asarray(IMAGENET_MEAN, dtype=np.float32).reshape(3, 1, 1)
_STD = np.asarray(IMAGENET_STD, dtype=np.float32).reshape(3, 1, 1)

cv2.setNumThreads(1)  # DataLoader workers provide the parallelism


def _imread(path: str | Path, what: str) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"{p}: {what} file not found")
    buf = np.fromfile(str(p), dtype=np.uint8)  # also works for non-ASCII paths
    arr = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if buf.size else None
    if arr is None:
        raise DatasetError(f"{p}: cannot decode {what} (unreadable, truncated or not an image file; "
                           f"expected a valid PNG/JPEG)")
    return arr


def to_rgb8(arr: np.ndarray, bgr: bool = True) -> np.ndarray:
    """Convert gray / gray+alpha / RGB / RGBA, 8- or 16-bit (or float) to 8-bit RGB HxWx3."""
    if arr.dtype == np.uint16:
        arr = (arr >> 8).astype(np.uint8)
    elif arr.dtype in (np.float32, np.float64):
        arr = np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    elif arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        return np.ascontiguousarray(np.repeat(arr[:, :, None], 3, axis=2))
    ch = arr.shape[2]
    if ch == 1:
        return np.ascontiguousarray(np.repeat(arr, 3, axis=2))
    if ch == 2:  # gray + alpha
        return np.ascontiguousarray(np.repeat(arr[:, :, :1], 3, axis=2))
    arr = arr[:, :, :3]  # drop alpha
    if bgr:
        arr = arr[:, :, ::-1]
    return np.ascontiguousarray(arr)


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as 8-bit RGB (HxWx3 uint8); gray, RGBA and 16-bit are converted.

    Raises :class:`DatasetError` if the file is missing, unreadable or truncated.
    """
    return to_rgb8(_imread(path, "image"))


def load_label(path: str | Path, channel: str = "single") -> np.ndarray:
    """Read a label map with its native ids (8- or 16-bit, no conversion).

    ``channel="single"``: the file must hold one channel (a 3-channel file whose channels are
    equal is accepted); ``channel="red"``: for multi-channel files take the red channel (the
    last one in OpenCV's BGR order), as SYNTHIA's ``GT/LABELS`` need.
    """
    arr = _imread(path, "label map")
    if arr.ndim == 3:
        if arr.shape[2] == 1:
            arr = arr[:, :, 0]
        elif channel == "red":
            arr = arr[:, :, 2] if arr.shape[2] >= 3 else arr[:, :, 0]
        else:
            c0 = arr[:, :, 0]
            if arr.shape[2] >= 3 and np.array_equal(c0, arr[:, :, 1]) and np.array_equal(c0, arr[:, :, 2]):
                arr = c0
            else:
                raise DatasetError(f"{path}: label map has {arr.shape[2]} different channels, expected "
                                   f"a single-channel id map (one integer id per pixel)")
    return np.ascontiguousarray(arr)


# per-channel lookup table uint8 -> normalised float32 (one cv2.LUT call instead of float maths)
_NORM_LUT = ((np.arange(256, dtype=np.float32)[:, None] / 255.0 - _MEAN.reshape(1, 3)) / _STD.reshape(1, 3)
             ).astype(np.float32).reshape(1, 256, 3)


def normalize(rgb: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 RGB -> float32 3xHxW tensor normalised with the ImageNet mean/std."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    x = cv2.LUT(rgb, _NORM_LUT)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def denormalize(t: torch.Tensor | np.ndarray) -> np.ndarray:
    """Inverse of :func:`normalize`: 3xHxW (or 1x3xHxW) -> uint8 HxWx3 RGB."""
    x = t.detach().cpu().float().numpy() if isinstance(t, torch.Tensor) else np.asarray(t, np.float32)
    if x.ndim == 4:
        x = x[0]
    x = (x * _STD + _MEAN) * 255.0
    return np.clip(x.transpose(1, 2, 0) + 0.5, 0, 255).astype(np.uint8)


def resize_image(rgb: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """Bilinear resize to ``size=(W, H)``; ``None`` or the same size returns the input."""
    if size is None or (rgb.shape[1], rgb.shape[0]) == tuple(size):
        return rgb
    return cv2.resize(rgb, (int(size[0]), int(size[1])), interpolation=cv2.INTER_LINEAR)


def _resize_label(label: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (label.shape[1], label.shape[0]) == tuple(size):
        return label
    return cv2.resize(label, (int(size[0]), int(size[1])), interpolation=cv2.INTER_NEAREST)


def resize_pair(rgb: np.ndarray, label: np.ndarray, size: tuple[int, int] | None):
    """Resize an image (bilinear) and its label (nearest) to ``size=(W, H)``."""
    if size is None:
        return rgb, label
    return resize_image(rgb, size), _resize_label(label, size)


def preprocess(rgb: np.ndarray, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Inference preprocessing: optional bilinear resize to ``(W, H)``, then :func:`normalize`."""
    arr = np.asarray(rgb)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        arr = to_rgb8(arr, bgr=False)
    return normalize(resize_image(arr, size))


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """Per-sample generator: the same (seed, epoch, index) always gives the same augmentation."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch), int(index)])


@dataclass
class Augment:
    """Paper's training augmentation: random scale-crop, horizontal flip, brightness, contrast.

    The image is scaled by ``s ~ U(scale)`` relative to the output size and a random ``(W, H)``
    window is cropped (``s >= 1`` so no padding is needed); the label undergoes the same
    geometry with nearest-neighbour interpolation, so it stays aligned. Brightness adds
    ``U(-b, b) * 255``, contrast scales around the image mean by ``U(1-c, 1+c)`` (image only).
    """

    scale: tuple[float, float] = (1.0, 1.5)
    flip_p: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2

    def __call__(self, rgb: np.ndarray, label: np.ndarray, size: tuple[int, int] | None,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        H0, W0 = label.shape[:2]
        W, H = (W0, H0) if size is None else (int(size[0]), int(size[1]))
        s = float(rng.uniform(*self.scale)) if self.scale[1] > self.scale[0] else float(self.scale[0])
        s = max(s, 1.0)
        Ws, Hs = max(W, int(round(W * s))), max(H, int(round(H * s)))
        ox = int(rng.integers(0, Ws - W + 1))
        oy = int(rng.integers(0, Hs - H + 1))
        flip = bool(rng.random() < self.flip_p)
        b = float(rng.uniform(-self.brightness, self.brightness)) * 255.0
        c = float(rng.uniform(1.0 - self.contrast, 1.0 + self.contrast))
        img = cv2.resize(rgb, (Ws, Hs), interpolation=cv2.INTER_LINEAR) if (Ws, Hs) != (W0, H0) else rgb
        lab = cv2.resize(label, (Ws, Hs), interpolation=cv2.INTER_NEAREST) if (Ws, Hs) != (W0, H0) else label
        img = img[oy:oy + H, ox:ox + W]
        lab = lab[oy:oy + H, ox:ox + W]
        if flip:
            img = img[:, ::-1]
            lab = lab[:, ::-1]
        if b != 0.0 or c != 1.0:
            mean = float(img.mean())
            # out = (img - mean) * c + mean + b  ==  img * c + (mean * (1 - c) + b)
            img = cv2.convertScaleAbs(np.ascontiguousarray(img), alpha=c, beta=mean * (1.0 - c) + b) \
                if mean * (1.0 - c) + b >= 0 else \
                np.clip(img.astype(np.float32) * c + (mean * (1.0 - c) + b), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(img), np.ascontiguousarray(lab)
