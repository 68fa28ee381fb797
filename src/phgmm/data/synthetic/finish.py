"""Turning the flat-coloured drawing into a photo: per-class texture, lighting, blur and noise."""

from __future__ import annotations

import cv2
import numpy as np

from .labels import F
from .scene import Scene

__all__ = ["finish"]

# texture amplitudes per fine id: (coarse blotches, fine grain)
_TEX = {
    "static": (0.06, 0.05),
    "sky": (0.025, 0.0),
    "building": (0.06, 0.035),
    "road": (0.07, 0.07),
    "lanemarking": (0.05, 0.05),
    "sidewalk": (0.06, 0.05),
    "fence": (0.05, 0.05),
    "vegetation": (0.16, 0.16),
    "pole": (0.02, 0.02),
    "car": (0.03, 0.015),
    "truck": (0.03, 0.02),
    "bus": (0.03, 0.02),
    "sign": (0.02, 0.02),
    "person": (0.04, 0.03),
    "rider": (0.04, 0.03),
    "bicycle": (0.02, 0.02),
    "terrain": (0.12, 0.1),
    "wall": (0.06, 0.05),
    "traffic_light": (0.02, 0.02),
    "ego_vehicle": (0.02, 0.01),
}
_AMP_C = np.zeros(256, np.float32)
_AMP_F = np.zeros(256, np.float32)
for _n, (_c, _f) in _TEX.items():
    _AMP_C[F[_n]], _AMP_F[F[_n]] = _c, _f

_NOISE_BANKS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
_NOISE_PAD = 64


def _noise_bank(W: int, H: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed (seeded) Gaussian noise fields, cropped at random offsets per image (fast and
    deterministic: the bank depends only on the image size)."""
    key = (W, H)
    if key not in _NOISE_BANKS:
        g = np.random.default_rng(12345)
        fine = g.standard_normal((H + _NOISE_PAD, W + _NOISE_PAD), dtype=np.float32)
        sensor = g.standard_normal((H + _NOISE_PAD, W + _NOISE_PAD, 3), dtype=np.float32)
        _NOISE_BANKS[key] = (fine, sensor)
    return _NOISE_BANKS[key]


def finish(s: Scene, light) -> np.ndarray:
    """Texture, lighting, blur and sensor noise applied to ``s.img``; returns the RGB image."""
    rng, H, W = s.rng, s.H, s.W
    fine_bank, sensor_bank = _noise_bank(W, H)
    oy, ox = rng.integers(0, _NOISE_PAD, 2)
    fine = fine_bank[oy : oy + H, ox : ox + W]
    oy, ox = rng.integers(0, _NOISE_PAD, 2)
    sensor = sensor_bank[oy : oy + H, ox : ox + W]
    coarse = rng.standard_normal((H // 16 + 2, W // 16 + 2), dtype=np.float32)
    coarse = cv2.resize(coarse, (W, H), interpolation=cv2.INTER_CUBIC)
    gain = cv2.LUT(s.lab, _AMP_C) * coarse
    gain += cv2.LUT(s.lab, _AMP_F) * fine
    gain += 1.0
    g = rng.uniform(0.7, 1.2)
    tint = np.array([rng.uniform(0.93, 1.07), 1.0, rng.uniform(0.93, 1.07)], np.float32)
    if light["dusk"]:
        tint *= np.array([1.08, 0.97, 0.85], np.float32)
    img = s.img.astype(np.float32)
    img *= gain[:, :, None]
    img *= (g * tint)[None, None, :]
    sigma = np.float32(rng.uniform(1.0, 4.0))
    blur = rng.random() < 0.5
    bs = rng.uniform(0.4, 0.8)
    if blur:
        img = cv2.GaussianBlur(img, (3, 3), bs)
    img += sensor * sigma
    np.maximum(img, 0.0, out=img)
    return cv2.convertScaleAbs(img)  # rounding, saturating float -> uint8
