"""Resizing, normalisation and training augmentation (numpy + OpenCV only).

Sizes are always ``(W, H)``. Images are resized bilinearly (:func:`resize_image`) and label maps
with centre-aligned nearest neighbour (:func:`resize_label`): both put output pixel ``x`` at
input position ``(x + 0.5) * in / out - 0.5``, so a label stays on its image. Training
augmentation (paper: random crop, contrast, brightness, horizontal flip) is applied online and
reproducibly: :func:`sample_rng` derives a per-sample generator from ``(seed, epoch, index)``.

File reading lives in :mod:`phgmm.data.imageio`; ``load_image`` and ``load_label`` are
re-exported here for older imports.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ..visualize import to_rgb_uint8
from .imageio import load_image, load_label  # noqa: F401  (re-exported for older imports)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "normalize",
    "denormalize",
    "resize_label",
    "resize_image",
    "resize_pair",
    "preprocess",
    "Augment",
    "sample_rng",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_MEAN = np.asarray(IMAGENET_MEAN, dtype=np.float32).reshape(3, 1, 1)
_STD = np.asarray(IMAGENET_STD, dtype=np.float32).reshape(3, 1, 1)

cv2.setNumThreads(1)  # DataLoader workers provide the parallelism


# per-channel lookup table uint8 -> normalised float32 (one cv2.LUT call instead of float maths)
_NORM_LUT = (
    ((np.arange(256, dtype=np.float32)[:, None] / 255.0 - _MEAN.reshape(1, 3)) / _STD.reshape(1, 3))
    .astype(np.float32)
    .reshape(1, 256, 3)
)


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


# dtypes that OpenCV resizes as they are; others (bool, int64, uint32, ...) go through value indices
_CV_LABEL_DTYPES = frozenset(
    np.dtype(t) for t in (np.uint8, np.int8, np.uint16, np.int16, np.int32, np.float32, np.float64)
)


def resize_label(label: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """Resize a label map (``H×W`` or ``H×W×C``) to ``size_wh=(W, H)`` with centre-aligned nearest
    neighbour — the project's one label resize.

    Output pixel ``x`` takes the input pixel under its centre, ``floor((x + 0.5) * in / out)``:
    OpenCV's ``INTER_NEAREST_EXACT``, identical to Pillow's ``Image.NEAREST`` on 8- and 32-bit
    images (a centre exactly on a pixel border may go either way), and the same geometry as the
    bilinear image resize (OpenCV's ``INTER_NEAREST`` takes ``floor(x * in / out)`` and shifts
    labels up-left of their image, by half an output pixel on average when downscaling). No new values appear; the
    dtype is kept (any dtype, int64 and bool included). The same size returns the input.
    On downscaling, a structure thinner than ``in / out`` pixels survives only where an output
    pixel centre falls on it — exactly where the bilinear image gives it weight >= 1/2.
    """
    label = np.asarray(label)
    W, H = int(size_wh[0]), int(size_wh[1])
    if W < 1 or H < 1:
        raise ValueError(f"label size must be positive (W, H), got {tuple(size_wh)}")
    if label.ndim not in (2, 3) or label.shape[0] < 1 or label.shape[1] < 1:
        raise ValueError(f"resize_label expects an H×W (or H×W×C) label map, got shape {label.shape}")
    if (label.shape[1], label.shape[0]) == (W, H):
        return label
    if label.dtype in _CV_LABEL_DTYPES and (label.ndim == 2 or label.shape[2] <= 4):
        out = cv2.resize(np.ascontiguousarray(label), (W, H), interpolation=cv2.INTER_NEAREST_EXACT)
        return out[:, :, None] if label.ndim == 3 and out.ndim == 2 else out
    values, inverse = np.unique(label, return_inverse=True)  # any dtype: resize the value indices
    index = inverse.reshape(label.shape).astype(np.int32)
    if index.ndim == 3:
        index = np.stack([resize_label(index[:, :, k], (W, H)) for k in range(index.shape[2])], axis=2)
    else:
        index = resize_label(index, (W, H))
    return values[index]


def resize_pair(rgb: np.ndarray, label: np.ndarray, size: tuple[int, int] | None):
    """Resize an image (bilinear, :func:`resize_image`) and its label (centre-aligned nearest,
    :func:`resize_label`) to ``size=(W, H)``; ``None`` returns both unchanged."""
    if size is None:
        return rgb, label
    return resize_image(rgb, size), resize_label(label, size)


def preprocess(rgb: np.ndarray, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Inference preprocessing: optional bilinear resize to ``(W, H)``, then :func:`normalize`."""
    arr = np.asarray(rgb)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        arr = to_rgb_uint8(arr)
    return normalize(resize_image(arr, size))


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """Per-sample generator: the same (seed, epoch, index) always gives the same augmentation."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch), int(index)])


@dataclass
class Augment:
    """Paper's training augmentation: random scale-crop, horizontal flip, brightness, contrast.

    The image is scaled by ``s ~ U(scale)`` relative to the output size and a random ``(W, H)``
    window is cropped (``s >= 1`` so no padding is needed); the label undergoes the same
    geometry with centre-aligned nearest neighbour (:func:`resize_label`), so it stays aligned
    and takes no value it did not have. Brightness adds
    ``U(-b, b) * 255``, contrast scales around the image mean by ``U(1-c, 1+c)`` (image only).
    """

    scale: tuple[float, float] = (1.0, 1.5)
    flip_p: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2

    def __call__(
        self, rgb: np.ndarray, label: np.ndarray, size: tuple[int, int] | None, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
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
        img = resize_image(rgb, (Ws, Hs))  # the same centre-aligned geometry for both
        lab = resize_label(label, (Ws, Hs))
        img = img[oy : oy + H, ox : ox + W]
        lab = lab[oy : oy + H, ox : ox + W]
        if flip:
            img = img[:, ::-1]
            lab = lab[:, ::-1]
        if b != 0.0 or c != 1.0:
            mean = float(img.mean())
            # out = (img - mean) * c + mean + b  ==  img * c + (mean * (1 - c) + b)
            img = (
                cv2.convertScaleAbs(np.ascontiguousarray(img), alpha=c, beta=mean * (1.0 - c) + b)
                if mean * (1.0 - c) + b >= 0
                else np.clip(img.astype(np.float32) * c + (mean * (1.0 - c) + b), 0, 255).astype(np.uint8)
            )
        return np.ascontiguousarray(img), np.ascontiguousarray(lab)
