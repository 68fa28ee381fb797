"""The camera and the two canvases every part of a scene is drawn on."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["Scene", "SHIFT"]

# OpenCV draws with sub-pixel precision when coordinates are fixed-point with SHIFT fraction bits
SHIFT = 3
_S = float(1 << SHIFT)


class Scene:
    """A random pinhole camera + two canvases (anti-aliased image, aliased fine-id label).

    Every drawing call paints the image; it paints the label too when given a fine id
    (``fid``), so details such as windows or shadows stay in the class of what is below them.
    """

    def __init__(self, rng: np.random.Generator, W: int, H: int):
        self.rng, self.W, self.H = rng, W, H
        self.img = np.empty((H, W, 3), np.uint8)
        self.lab = np.empty((H, W), np.uint8)
        self.f = W * rng.uniform(0.55, 0.75)
        self.hc = rng.uniform(1.3, 1.7)
        self.yh = H * rng.uniform(0.38, 0.5)
        self.vx = W * rng.uniform(0.42, 0.58)
        self.znear = max(0.5, self.f * self.hc / (H - self.yh) * 0.7)

    # -- projection ---------------------------------------------------------------------------
    def P(self, X, Y, Z) -> np.ndarray:
        """Project world points (X right, Y up, Z forward; metres) to image coordinates."""
        Z = np.maximum(np.asarray(Z, np.float64), 0.3)
        x = self.vx + self.f * np.asarray(X, np.float64) / Z
        y = self.yh + self.f * (self.hc - np.asarray(Y, np.float64)) / Z
        if x.shape != y.shape:
            x, y = np.broadcast_arrays(x, y)
        out = np.empty(x.shape + (2,), np.float64)
        out[..., 0] = x
        out[..., 1] = y
        return out

    def px(self, size_m, Z) -> float:
        """Image size in pixels of ``size_m`` metres at depth ``Z``."""
        return self.f * size_m / max(Z, 0.3)

    # -- drawing ------------------------------------------------------------------------------
    @staticmethod
    def _fx(pts) -> np.ndarray:
        # |coordinates| stay far below 2**27 because Z >= 0.3 m and |X| <= 400 m
        return (np.asarray(pts) * _S + 0.5).astype(np.int32)

    def polys(self, polys, color, fid=None):
        """Fill one or several polygons (each Nx2 float image coordinates)."""
        if isinstance(polys, np.ndarray) and polys.ndim == 2:
            polys = [polys]
        pts = [self._fx(p) for p in polys]
        if not pts:
            return
        cv2.fillPoly(self.img, pts, color, cv2.LINE_AA, SHIFT)
        if fid is not None:
            cv2.fillPoly(self.lab, pts, int(fid), cv2.LINE_8, SHIFT)

    def quad_z(self, X, Y0, Y1, Z, color, fid=None):
        """Rectangle facing the camera at depth Z: X=(x0, x1), Y from Y0 to Y1."""
        x0, x1 = X
        self.polys(self.P([x0, x1, x1, x0], [Y0, Y0, Y1, Y1], Z), color, fid)

    def quad_x(self, X, Y0, Y1, Z0, Z1, color, fid=None):
        """Rectangle in the plane X = const (a facade, a car side)."""
        self.polys(self.P(X, [Y0, Y0, Y1, Y1], [Z0, Z1, Z1, Z0]), color, fid)

    def ellipse(self, center, axes, color, fid=None, angle=0.0, thickness=-1):
        c = tuple(int(round(v * _S)) for v in center)
        a = tuple(max(1, int(round(v * _S))) for v in axes)
        if max(a) > 2**24:
            return
        cv2.ellipse(self.img, c, a, angle, 0, 360, color, thickness, cv2.LINE_AA, SHIFT)
        if fid is not None:
            cv2.ellipse(self.lab, c, a, angle, 0, 360, int(fid), thickness, cv2.LINE_8, SHIFT)

    def line(self, p0, p1, color, thick_px, fid=None):
        t = max(1, int(round(thick_px)))
        a, b = tuple(self._fx(p0).tolist()), tuple(self._fx(p1).tolist())
        cv2.line(self.img, a, b, color, t, cv2.LINE_AA, SHIFT)
        if fid is not None:
            cv2.line(self.lab, a, b, int(fid), t, cv2.LINE_8, SHIFT)

    def strokes(self, segments, color):
        """Thin 1-pixel lines in the image only (tile joints, fence boards): texture, not class."""
        cv2.polylines(self.img, [self._fx(seg) for seg in segments], False, color, 1, cv2.LINE_AA, SHIFT)
