"""Colour palettes of the scene's things and the random colour variation drawn around them."""

from __future__ import annotations

__all__ = ["CAR_COLORS", "FACADE_COLORS", "SKIN", "CLOTHES", "PANTS", "jit", "scale"]

CAR_COLORS = [
    (235, 235, 235),
    (25, 25, 28),
    (160, 163, 168),
    (110, 112, 118),
    (150, 20, 25),
    (25, 50, 120),
    (60, 60, 70),
    (200, 190, 170),
    (30, 70, 45),
    (210, 120, 30),
    (90, 25, 30),
]
FACADE_COLORS = [
    (200, 185, 160),
    (170, 160, 150),
    (150, 75, 60),
    (225, 215, 195),
    (125, 125, 130),
    (185, 150, 115),
    (205, 195, 170),
    (160, 120, 95),
    (140, 150, 160),
    (215, 200, 160),
]
SKIN = [(235, 200, 170), (210, 160, 120), (170, 115, 80), (110, 70, 45), (240, 210, 190)]
CLOTHES = [
    (30, 30, 35),
    (200, 40, 40),
    (40, 70, 150),
    (230, 230, 225),
    (90, 90, 95),
    (60, 110, 60),
    (180, 150, 60),
    (120, 60, 120),
    (220, 120, 40),
    (70, 50, 35),
    (150, 170, 200),
]
PANTS = [(30, 35, 60), (25, 25, 25), (70, 75, 90), (150, 130, 100), (60, 60, 60)]


def jit(rng, col, amt=18, chroma=0.35):
    """Random colour variation: a shared brightness offset plus a smaller per-channel one."""
    d = rng.integers(-amt, amt + 1, 4)
    k = chroma
    return tuple(min(255, max(0, int(c + d[0] * (1 - k) + d[i + 1] * k))) for i, c in enumerate(col))


def scale(col, k):
    """``col`` brightened (k > 1) or darkened (k < 1), clipped to 0..255."""
    return tuple(min(255, max(0, int(c * k))) for c in col)
