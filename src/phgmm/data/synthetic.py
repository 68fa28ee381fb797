"""Procedural street scenes: the embedded default data set (``phgmm synth``).

Each scene is a pinhole-camera view down a straight street: sky with clouds, a far skyline,
facades with windows on both sides (with gaps showing the ground behind), a road with lane
markings and crossings, sidewalks with kerbs and tiles, fences and hedges along the facades,
trees, street lamps, traffic signs on posts, cars / vans / buses (rear, front and side faces,
windows, wheels, lights), pedestrians, cyclists (side and rear views: rider + bicycle), and
background clutter (bins, billboards, walls, traffic lights, terrain, sometimes the ego
vehicle's bonnet). Objects are drawn far to near, so they occlude each other. The image gets
per-class texture, lighting (gain, colour tint, sun side, cast shadows), optional blur and
sensor noise; object edges are anti-aliased (``cv2.LINE_AA``) in the image while the label map
is drawn with exact aliased edges, so boundary accuracy matters.

Scenes are written in the real on-disk formats (Cityscapes ``labelIds`` with native Cityscapes
ids, or SYNTHIA 16-bit 3-channel labels with the id in the red channel) so they go through the
real loaders. The same seed gives byte-identical files: image ``i`` is drawn from
``numpy.random.default_rng([seed, i])``.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

__all__ = ["render_scene", "render_scene_fine", "generate_dataset", "save_example", "FINE_CLASSES"]

# fine id: (name, phgmm class index, cityscapes id, synthia id)
FINE_CLASSES = [
    ("static", 0, 4, 0),
    ("sky", 1, 23, 1),
    ("building", 2, 11, 2),
    ("road", 3, 7, 3),
    ("lanemarking", 3, 7, 22),
    ("sidewalk", 4, 8, 4),
    ("fence", 5, 13, 5),
    ("vegetation", 6, 21, 6),
    ("pole", 7, 17, 7),
    ("car", 8, 26, 8),
    ("truck", 8, 27, 18),
    ("bus", 8, 28, 19),
    ("sign", 9, 20, 9),
    ("person", 10, 24, 10),
    ("rider", 11, 25, 17),
    ("bicycle", 11, 33, 11),
    ("terrain", 0, 22, 16),
    ("wall", 0, 12, 21),
    ("traffic light", 0, 19, 15),
    ("ego vehicle", 0, 1, 0),
]
F = {name.replace(" ", "_"): i for i, (name, *_rest) in enumerate(FINE_CLASSES)}
_TO_COARSE = np.array([c[1] for c in FINE_CLASSES] + [255] * (256 - len(FINE_CLASSES)), np.uint8)
_TO_CITYSCAPES = np.array([c[2] for c in FINE_CLASSES] + [0] * (256 - len(FINE_CLASSES)), np.uint8)
_TO_SYNTHIA = np.array([c[3] for c in FINE_CLASSES] + [0] * (256 - len(FINE_CLASSES)), np.uint16)

# texture amplitudes per fine id: (coarse blotches, fine grain)
_TEX = {
    "static": (0.06, 0.05), "sky": (0.025, 0.0), "building": (0.06, 0.035), "road": (0.07, 0.07),
    "lanemarking": (0.05, 0.05), "sidewalk": (0.06, 0.05), "fence": (0.05, 0.05),
    "vegetation": (0.16, 0.16), "pole": (0.02, 0.02), "car": (0.03, 0.015), "truck": (0.03, 0.02),
    "bus": (0.03, 0.02), "sign": (0.02, 0.02), "person": (0.04, 0.03), "rider": (0.04, 0.03),
    "bicycle": (0.02, 0.02), "terrain": (0.12, 0.1), "wall": (0.06, 0.05), "traffic_light": (0.02, 0.02),
    "ego_vehicle": (0.02, 0.01),
}
_AMP_C = np.zeros(256, np.float32)
_AMP_F = np.zeros(256, np.float32)
for _n, (_c, _f) in _TEX.items():
    _AMP_C[F[_n]], _AMP_F[F[_n]] = _c, _f

SHIFT = 3
_S = float(1 << SHIFT)

CAR_COLORS = [(235, 235, 235), (25, 25, 28), (160, 163, 168), (110, 112, 118), (150, 20, 25),
              (25, 50, 120), (60, 60, 70), (200, 190, 170), (30, 70, 45), (210, 120, 30), (90, 25, 30)]
FACADE_COLORS = [(200, 185, 160), (170, 160, 150), (150, 75, 60), (225, 215, 195), (125, 125, 130),
                 (185, 150, 115), (205, 195, 170), (160, 120, 95), (140, 150, 160), (215, 200, 160)]
SKIN = [(235, 200, 170), (210, 160, 120), (170, 115, 80), (110, 70, 45), (240, 210, 190)]
CLOTHES = [(30, 30, 35), (200, 40, 40), (40, 70, 150), (230, 230, 225), (90, 90, 95), (60, 110, 60),
           (180, 150, 60), (120, 60, 120), (220, 120, 40), (70, 50, 35), (150, 170, 200)]
PANTS = [(30, 35, 60), (25, 25, 25), (70, 75, 90), (150, 130, 100), (60, 60, 60)]


def _jit(rng, col, amt=18, chroma=0.35):
    """Random colour variation: a shared brightness offset plus a smaller per-channel one."""
    d = rng.integers(-amt, amt + 1, 4)
    k = chroma
    return tuple(min(255, max(0, int(c + d[0] * (1 - k) + d[i + 1] * k))) for i, c in enumerate(col))


def _scale(col, k):
    return tuple(min(255, max(0, int(c * k))) for c in col)


class _Scene:
    """Camera + two canvases (anti-aliased image, aliased fine-id label)."""

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


# ---------------------------------------------------------------------------------------------
# scene parts

def _sky(s: _Scene, light):
    rng, H, W = s.rng, s.H, s.W
    overcast = rng.random() < 0.3
    if overcast:
        top = np.array(_jit(rng, (150, 155, 165), 15), np.float32)
        bot = np.array(_jit(rng, (200, 202, 205), 12), np.float32)
    else:
        top = np.array(_jit(rng, (60, 115, 195), 20), np.float32)
        bot = np.array(_jit(rng, (175, 200, 230), 15), np.float32)
    if light["dusk"]:
        bot = bot * 0.6 + np.array([240, 170, 110], np.float32) * 0.4
    yh = int(min(H, s.yh + 2))
    t = np.linspace(0.0, 1.0, max(yh, 1), dtype=np.float32)[:, None] ** 0.8
    grad = top[None, :] * (1 - t) + bot[None, :] * t
    s.img[:yh] = grad[:, None, :].astype(np.uint8)
    s.img[yh:] = bot.astype(np.uint8)
    s.lab[:] = F["sky"]
    for _ in range(rng.integers(0, 6)):  # clouds (still sky)
        cx, cy = rng.uniform(0, W), rng.uniform(0, s.yh * 0.8)
        col = _scale(bot, rng.uniform(1.02, 1.15)) if not overcast else _scale(bot, rng.uniform(0.85, 0.95))
        for _k in range(rng.integers(2, 5)):
            s.ellipse((cx + rng.uniform(-40, 40), cy + rng.uniform(-8, 8)),
                      (rng.uniform(20, 70), rng.uniform(6, 16)), col)


def _skyline(s: _Scene, zfar):
    rng = s.rng
    x = -zfar * 1.2
    while x < zfar * 1.2:
        w = rng.uniform(8, 30)
        h = rng.uniform(8, 45)
        if rng.random() < 0.15:  # distant trees
            c = s.P(x + w / 2, h * 0.25, zfar)
            s.ellipse(c, (s.px(w / 2, zfar), s.px(h * 0.3, zfar)), _jit(rng, (80, 105, 70), 10), F["vegetation"])
        else:
            col = _jit(rng, (150, 155, 165), 20)
            s.quad_z((x, x + w), 0, h, zfar, col, F["building"])
        x += w + (rng.uniform(2, 15) if rng.random() < 0.3 else 0)


def _ground(s: _Scene, st, light):
    rng = s.rng
    zn, zf = s.znear, st["zfar"]
    # everything below the horizon starts as background ground (terrain or paved)
    terrain = rng.random() < 0.5
    col = _jit(rng, (105, 120, 70) if terrain else (120, 115, 110), 15)
    s.polys(s.P([-400, 400, 400, -400], 0, [zn, zn, zf, zf]), col, F["terrain"] if terrain else F["static"])
    rl, rr, swl, swr = st["road_l"], st["road_r"], st["sw_l"], st["sw_r"]
    road_col = _jit(rng, (95, 95, 100), 18)
    s.polys(s.P([-rl, rr, rr, -rl], 0, [zn, zn, zf, zf]), road_col, F["road"])
    sw_col = _jit(rng, [(175, 170, 165), (190, 160, 160), (160, 160, 168), (200, 185, 160)][rng.integers(4)], 12)
    for sign, r, w in ((-1, rl, swl), (1, rr, swr)):
        xa, xb = sign * r, sign * (r + w)
        s.polys(s.P([xa, xb, xb, xa], 0, [zn, zn, zf, zf]), sw_col, F["sidewalk"])
        # kerb: bright stripe at the road edge
        kx = sign * (r + 0.18)
        s.polys(s.P([xa, kx, kx, xa], 0.02, [zn, zn, zf, zf]), _scale(sw_col, 1.12), F["sidewalk"])
        # tile joints (image only)
        step = rng.uniform(1.0, 2.0)
        dark = _scale(sw_col, 0.8)
        zs = np.arange(zn + rng.uniform(0, step), min(zf, 60), step)
        a = s.P(xa, 0, zs)
        b = s.P(xb, 0, zs)
        lines = [np.stack([p, q]) for p, q in zip(a, b)]
        if lines:
            cv2.polylines(s.img, [s._fx(seg) for seg in lines], False, dark, 1, cv2.LINE_AA, SHIFT)
    # cast shadows on the road (image only)
    for _ in range(rng.integers(0, 4) if light["sunny"] else 0):
        z0 = rng.uniform(zn + 2, 60)
        z1 = z0 + rng.uniform(3, 15)
        side = rng.choice([-1, 1])
        x0 = side * (rl if side < 0 else rr) * rng.uniform(1.0, 1.6)
        x1 = side * rng.uniform(-1, 2)
        s.polys(s.P([x0, x1, x1, x0], 0.01, [z0, z0 + 2, z1 + 2, z1]), _scale(road_col, rng.uniform(0.55, 0.75)))
    # lane markings
    mark = _jit(rng, (225, 225, 215), 12)
    wid = rng.uniform(0.12, 0.18)
    lane_w = rng.uniform(2.9, 3.5)
    dividers = []
    x = -rl + lane_w
    while x < rr - lane_w * 0.6:
        dividers.append(x)
        x += lane_w
    if not dividers:
        dividers = [(rr - rl) / 2]
    dash, gap = rng.uniform(2.5, 4), rng.uniform(4, 8)
    polys = []
    for xd in dividers:
        solid = rng.random() < 0.2
        z = zn + rng.uniform(0, dash + gap)
        while z < zf * 0.6:
            z1 = min(z + (dash if not solid else 40), zf)
            polys.append(s.P([xd - wid / 2, xd + wid / 2, xd + wid / 2, xd - wid / 2], 0.01, [z, z, z1, z1]))
            z = z1 + (gap if not solid else 0)
    if rng.random() < 0.6:  # edge lines
        for xe in (-rl + 0.4, rr - 0.4):
            polys.append(s.P([xe - wid / 2, xe + wid / 2, xe + wid / 2, xe - wid / 2], 0.01, [zn, zn, zf, zf]))
    if rng.random() < 0.35:  # zebra crossing
        zc = rng.uniform(8, 25)
        depth = rng.uniform(3, 5)
        x = -rl + 0.3
        while x < rr - 0.3:
            polys.append(s.P([x, x + 0.5, x + 0.5, x], 0.01, [zc, zc, zc + depth, zc + depth]))
            x += 1.0
    s.polys(polys, mark, F["lanemarking"])


def _windows(s: _Scene, X, z0, z1, h, base, dark_glass, side_shade):
    rng = s.rng
    fh = rng.uniform(2.8, 3.6)
    cs = rng.uniform(2.2, 4.0)
    ww = cs * rng.uniform(0.4, 0.7)
    wh = fh * rng.uniform(0.4, 0.65)
    rows = int((h - 1.0) // fh)
    cols = int((z1 - z0 - 0.5) // cs)
    if rows <= 0 or cols <= 0:
        return
    r = np.arange(rows)[:, None] * fh + rng.uniform(0.6, 1.0)
    c = z0 + 0.5 + np.arange(cols)[None, :] * cs
    y0 = np.broadcast_to(r, (rows, cols)).ravel()
    zz = np.broadcast_to(c, (rows, cols)).ravel()
    Xs = np.full_like(zz, X)
    corners = np.stack([s.P(Xs, y0, zz), s.P(Xs, y0, zz + ww), s.P(Xs, y0 + wh, zz + ww), s.P(Xs, y0 + wh, zz)], 1)
    lit = rng.random(len(corners)) < 0.2
    glass = _scale(dark_glass, side_shade)
    s.polys(list(corners[~lit]), glass)
    if lit.any():
        s.polys(list(corners[lit]), _scale(_jit(rng, (150, 170, 190), 25), side_shade))
    # a door / shop window on the ground floor (image only: still building)
    if rng.random() < 0.6:
        zd = rng.uniform(z0, max(z0 + 0.1, z1 - 3))
        s.quad_x(X, 0, rng.uniform(2.0, 2.6), zd, zd + rng.uniform(1.2, 3), _scale(base, 0.45))


def _buildings(s: _Scene, st, light, side):
    rng = s.rng
    X = side * (st["road_r"] + st["sw_r"] if side > 0 else st["road_l"] + st["sw_l"])
    shade = light["shade_r"] if side > 0 else light["shade_l"]
    blocks = []
    z = rng.uniform(0.0, 6.0)
    while z < st["zfar"]:
        L = rng.uniform(8, 30)
        if rng.random() < 0.2:
            blocks.append(("gap", z, z + rng.uniform(3, 12)))
            z = blocks[-1][2]
            continue
        blocks.append(("b", z, z + L))
        z += L
    for kind, z0, z1 in reversed(blocks):  # far first
        if kind != "b":
            continue
        h = rng.uniform(6, 20) if rng.random() < 0.8 else rng.uniform(20, 32)
        base = _jit(rng, FACADE_COLORS[rng.integers(len(FACADE_COLORS))], 15)
        # front face (perpendicular to the street, visible behind gaps)
        s.quad_z((X, X + side * 25), 0, h, z0, _scale(base, 0.75 * shade), F["building"])
        s.quad_x(X, 0, h, z0, z1, _scale(base, shade), F["building"])
        # cornice (image only)
        s.quad_x(X, h - 0.4, h, z0, z1, _scale(base, 0.7 * shade))
        if z0 < 110:
            _windows(s, X, z0, z1, h, base, _jit(rng, (55, 65, 80), 15), shade)


def _fence(s: _Scene, X, z0, z1, h):
    rng = s.rng
    if rng.random() < 0.6:  # panel fence
        col = _jit(rng, [(140, 105, 70), (175, 165, 150), (105, 120, 95), (160, 140, 120)][rng.integers(4)], 12)
        s.quad_x(X, 0, h, z0, z1, col, F["fence"])
        step = rng.uniform(0.12, 0.3)
        zs = np.arange(z0 + step, z1, step)
        a, b = s.P(X, 0.05, zs), s.P(X, h - 0.05, zs)
        cv2.polylines(s.img, [s._fx(np.stack([p, q])) for p, q in zip(a, b)], False, _scale(col, 0.7), 1,
                      cv2.LINE_AA, SHIFT)
        s.quad_x(X, h - 0.08, h, z0, z1, _scale(col, 0.8), F["fence"])
    else:  # metal railing: rails + posts + bars, the background shows through
        col = _jit(rng, [(70, 80, 75), (150, 150, 155), (40, 40, 45)][rng.integers(3)], 10)
        for y in (0.15, h * 0.5, h - 0.06):
            s.quad_x(X, y, y + 0.07, z0, z1, col, F["fence"])
        step = rng.uniform(0.18, 0.3)
        polys = []
        for zb in np.arange(z0, z1, step):
            polys.append(s.P(X, [0, 0, h, h], [zb, zb + 0.06, zb + 0.06, zb]))
        s.polys(polys, col, F["fence"])


def _hedge(s: _Scene, X, z0, z1):
    rng = s.rng
    h = rng.uniform(0.7, 1.4)
    col = _jit(rng, (60, 95, 40), 15)
    s.quad_x(X, 0, h, z0, z1, col, F["vegetation"])
    # bumpy top
    for z in np.arange(z0, z1, 0.6):
        c = s.P(X, h, z + 0.3)
        r = s.px(0.35, z + 0.3)
        s.ellipse(c, (r * 0.6, r * 0.5), _scale(col, rng.uniform(0.85, 1.15)), F["vegetation"])


def _tree(s: _Scene, X, Z):
    rng = s.rng
    trunk_h = rng.uniform(2.0, 3.5)
    tw = rng.uniform(0.18, 0.35)
    s.quad_z((X - tw / 2, X + tw / 2), 0, trunk_h + 0.5, Z, _jit(rng, (85, 65, 45), 12), F["vegetation"])
    cy = trunk_h + rng.uniform(1.2, 2.5)
    R = rng.uniform(1.5, 3.0)
    base = _jit(rng, [(70, 110, 45), (55, 95, 40), (95, 125, 55), (60, 85, 50)][rng.integers(4)], 12)
    for _ in range(rng.integers(3, 7)):
        dx, dy = rng.uniform(-0.6, 0.6) * R, rng.uniform(-0.5, 0.5) * R
        r = R * rng.uniform(0.55, 0.9)
        s.ellipse(s.P(X + dx, cy + dy, Z), (s.px(r, Z), s.px(r * rng.uniform(0.7, 1.0), Z)),
                  _scale(base, rng.uniform(0.9, 1.1)), F["vegetation"])
    for _ in range(rng.integers(6, 14)):  # leaf clusters (image only)
        dx, dy = rng.uniform(-0.6, 0.6) * R, rng.uniform(-0.5, 0.4) * R
        s.ellipse(s.P(X + dx, cy + dy, Z), (s.px(R * 0.25, Z), s.px(R * 0.2, Z)),
                  _scale(base, rng.uniform(0.65, 1.3)))


def _lamp(s: _Scene, X, Z, toward):
    rng = s.rng
    h = rng.uniform(5, 9)
    w = rng.uniform(0.14, 0.25)
    col = _jit(rng, [(90, 95, 100), (60, 75, 65), (150, 150, 150), (45, 45, 50)][rng.integers(4)], 10)
    s.quad_z((X - w / 2, X + w / 2), 0, h, Z, col, F["pole"])
    if rng.random() < 0.7:
        arm = rng.uniform(1.0, 2.2)
        xe = X + toward * arm
        s.polys(s.P([X, xe, xe, X], [h - 0.12, h - 0.12, h, h], Z), col, F["pole"])
        s.quad_z((xe - 0.3, xe + 0.3) if toward > 0 else (xe - 0.3, xe + 0.3), h - 0.25, h, Z,
                 _scale(col, 0.8), F["pole"])


def _sign(s: _Scene, X, Z):
    rng = s.rng
    ph = rng.uniform(2.2, 3.0)
    pw = rng.uniform(0.07, 0.11)
    pole_col = _jit(rng, (140, 140, 145), 15)
    size = rng.uniform(0.7, 1.0)
    s.quad_z((X - pw / 2, X + pw / 2), 0, ph, Z, pole_col, F["pole"])
    c = s.P(X, ph + size / 2, Z)
    r = s.px(size / 2, Z)
    kind = rng.integers(5)
    fid = F["sign"]
    if kind == 0:  # prohibition: red ring, white inside
        s.ellipse(c, (r, r), (200, 30, 35), fid)
        s.ellipse(c, (r * 0.72, r * 0.72), (240, 240, 240))
    elif kind == 1:  # mandatory: blue disc, white arrow
        s.ellipse(c, (r, r), (30, 80, 170), fid)
        s.polys(np.array([[c[0] - r * 0.15, c[1] + r * 0.6], [c[0] + r * 0.15, c[1] + r * 0.6],
                          [c[0] + r * 0.15, c[1] - r * 0.1], [c[0] + r * 0.4, c[1] - r * 0.1],
                          [c[0], c[1] - r * 0.6], [c[0] - r * 0.4, c[1] - r * 0.1],
                          [c[0] - r * 0.15, c[1] - r * 0.1]]), (240, 240, 240))
    elif kind == 2:  # warning triangle
        tri = np.array([[c[0], c[1] - r], [c[0] + r * 1.05, c[1] + r * 0.8], [c[0] - r * 1.05, c[1] + r * 0.8]])
        s.polys(tri, (200, 30, 35), fid)
        s.polys(c + (tri - c) * 0.65, (240, 235, 225))
    elif kind == 3:  # rectangular information sign
        col = [(30, 80, 170), (30, 120, 60), (240, 200, 30)][rng.integers(3)]
        s.polys(np.array([[c[0] - r, c[1] - r * 0.7], [c[0] + r, c[1] - r * 0.7],
                          [c[0] + r, c[1] + r * 0.7], [c[0] - r, c[1] + r * 0.7]]), col, fid)
        s.polys(np.array([[c[0] - r * 0.7, c[1] - r * 0.15], [c[0] + r * 0.7, c[1] - r * 0.15],
                          [c[0] + r * 0.7, c[1] + r * 0.15], [c[0] - r * 0.7, c[1] + r * 0.15]]), (240, 240, 240))
    else:  # priority diamond
        d = np.array([[c[0], c[1] - r], [c[0] + r, c[1]], [c[0], c[1] + r], [c[0] - r, c[1]]])
        s.polys(d, (240, 240, 240), fid)
        s.polys(c + (d - c) * 0.7, (240, 200, 30))


def _wheel_poly(s: _Scene, X, yc, zc, r, n=14):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return s.P(X, yc + r * np.sin(t), zc + r * np.cos(t))


def _car(s: _Scene, X, Z, oncoming):
    rng = s.rng
    kind = rng.random()
    if kind < 0.8:
        fid, w, h, L = F["car"], rng.uniform(1.7, 1.9), rng.uniform(1.4, 1.6), rng.uniform(4.0, 4.7)
    elif kind < 0.93:
        fid, w, h, L = F["truck"], rng.uniform(2.0, 2.4), rng.uniform(2.2, 3.2), rng.uniform(5.5, 7.5)
    else:
        fid, w, h, L = F["bus"], 2.5, rng.uniform(3.0, 3.3), rng.uniform(10, 12)
    body = _jit(rng, CAR_COLORS[rng.integers(len(CAR_COLORS))], 12)
    if fid == F["bus"]:
        body = _jit(rng, [(230, 200, 40), (200, 40, 40), (240, 240, 240)][rng.integers(3)], 10)
    glass = _jit(rng, (40, 48, 60), 10)
    tyre = (25, 25, 25)
    x0, x1 = X - w / 2, X + w / 2
    is_car = fid == F["car"]
    belt = h * (0.6 if is_car else 0.55)
    # side face (the one facing the optical axis)
    if abs(X) > w / 2:
        xs = x0 if X > 0 else x1
        sh = _scale(body, 0.82)
        if is_car:
            s.quad_x(xs, 0.22, belt, Z, Z + L, sh, fid)
            s.polys(s.P(xs, [belt, belt, h, h], [Z + 0.1 * L, Z + 0.9 * L, Z + 0.7 * L, Z + 0.3 * L]), sh, fid)
            s.polys(s.P(xs, [belt + 0.05, belt + 0.05, h - 0.07, h - 0.07],
                        [Z + 0.16 * L, Z + 0.84 * L, Z + 0.67 * L, Z + 0.33 * L]), glass)
        else:
            s.quad_x(xs, 0.3, h, Z, Z + L, sh, fid)
            if fid == F["bus"]:
                s.quad_x(xs, h * 0.5, h * 0.85, Z + 0.5, Z + L - 1.5, glass)
            else:
                s.quad_x(xs, h * 0.55, h * 0.85, Z + L - 1.6, Z + L - 0.3, glass)
        for zc in (Z + 0.85, Z + L - 0.85):
            s.polys(_wheel_poly(s, xs, 0.33, zc, 0.33), tyre, fid)
            s.polys(_wheel_poly(s, xs, 0.33, zc, 0.16, 8), (150, 150, 155), fid)
    # rear (or front) face at depth Z
    s.quad_z((x0 + 0.1, x0 + 0.35), 0, 0.3, Z + 0.2, tyre, fid)
    s.quad_z((x1 - 0.35, x1 - 0.1), 0, 0.3, Z + 0.2, tyre, fid)
    s.quad_z((x0, x1), 0.22, belt, Z, body, fid)
    if is_car:
        s.polys(s.P([x0 + 0.08, x1 - 0.08, x1 - 0.2, x0 + 0.2], [belt, belt, h, h], Z), body, fid)
        s.polys(s.P([x0 + 0.18, x1 - 0.18, x1 - 0.27, x0 + 0.27], [belt + 0.05, belt + 0.05, h - 0.06, h - 0.06], Z), glass)
    else:
        s.quad_z((x0, x1), belt, h, Z, body, fid)
        s.quad_z((x0 + 0.12, x1 - 0.12), h * 0.6, h * 0.9, Z, glass)
    s.quad_z((x0, x1), 0.22, 0.38, Z, _scale(body, 0.55))  # bumper
    lamp = (250, 245, 220) if oncoming else (200, 20, 20)
    yl = belt - 0.22
    s.quad_z((x0 + 0.05, x0 + 0.35), yl, yl + 0.14, Z, lamp)
    s.quad_z((x1 - 0.35, x1 - 0.05), yl, yl + 0.14, Z, lamp)
    s.quad_z((X - 0.25, X + 0.25), 0.42, 0.54, Z, (235, 235, 230))  # plate


def _person_figure(s: _Scene, X, Z, height, fid, y0=0.0, legs=True, lean=0.0):
    rng = s.rng
    hgt = height
    skin = _jit(rng, SKIN[rng.integers(len(SKIN))], 8)
    shirt = _jit(rng, CLOTHES[rng.integers(len(CLOTHES))], 15)
    pants = _jit(rng, PANTS[rng.integers(len(PANTS))], 10)
    hip = y0 + 0.47 * hgt
    sw = 0.21 * hgt
    if legs:
        spread = rng.uniform(-0.12, 0.12)
        lw = 0.075 * hgt
        s.polys(s.P([X - 0.02, X - 0.02 - lw, X - sw * 0.45 + spread - lw, X - sw * 0.45 + spread],
                    [hip, hip, y0, y0], Z), pants, fid)
        s.polys(s.P([X + 0.02, X + 0.02 + lw, X + sw * 0.45 - spread + lw, X + sw * 0.45 - spread],
                    [hip, hip, y0, y0], Z), pants, fid)
        s.quad_z((X - sw * 0.5, X + sw * 0.5), hip - 0.08, hip + 0.02, Z, pants, fid)
        shoe = (30, 30, 30)
        s.quad_z((X - sw * 0.45 + spread - lw - 0.02, X - sw * 0.45 + spread + 0.02), y0, y0 + 0.07, Z, shoe, fid)
        s.quad_z((X + sw * 0.45 - spread - 0.02, X + sw * 0.45 - spread + lw + 0.02), y0, y0 + 0.07, Z, shoe, fid)
    sh_y = y0 + 0.82 * hgt
    xl = lean
    torso = s.P([X - sw * 0.45, X + sw * 0.45, X + sw * 0.55 + xl, X - sw * 0.55 + xl], [hip, hip, sh_y, sh_y], Z)
    s.polys(torso, shirt, fid)
    aw = 0.055 * hgt
    for sgn in (-1, 1):
        xa = X + xl + sgn * sw * 0.55
        xh = X + sgn * (sw * 0.6 + rng.uniform(-0.03, 0.08))
        s.polys(s.P([xa, xa + sgn * aw, xh + sgn * aw, xh], [sh_y, sh_y - 0.05, hip - 0.05, hip - 0.05], Z),
                _scale(shirt, 0.9), fid)
        s.ellipse(s.P(xh + sgn * aw / 2, hip - 0.07, Z), (s.px(0.045, Z), s.px(0.05, Z)), skin, fid)
    s.quad_z((X + xl - 0.04, X + xl + 0.04), sh_y, sh_y + 0.05, Z, skin, fid)
    hr = 0.065 * hgt
    hc = s.P(X + xl, sh_y + 0.05 + hr, Z)
    s.ellipse(hc, (s.px(hr * 0.85, Z), s.px(hr, Z)), skin, fid)
    hair = (40, 30, 25) if rng.random() < 0.7 else (180, 150, 90)
    s.ellipse(hc - np.array([0, s.px(hr * 0.35, Z)]), (s.px(hr * 0.88, Z), s.px(hr * 0.7, Z)), hair, fid)
    if rng.random() < 0.3:  # bag
        xb = X + (sw * 0.7 if rng.random() < 0.5 else -sw * 0.7)
        s.quad_z((xb - 0.12, xb + 0.12), hip - 0.25, hip + 0.05, Z, _jit(rng, (60, 45, 35), 20), fid)


def _person(s: _Scene, X, Z):
    _person_figure(s, X, Z, s.rng.uniform(1.55, 1.9), F["person"])


def _cyclist(s: _Scene, X, Z):
    rng = s.rng
    frame_col = _jit(rng, [(200, 30, 30), (30, 30, 30), (30, 70, 160), (180, 180, 185), (30, 130, 60)][rng.integers(5)], 10)
    bike, rider = F["bicycle"], F["rider"]
    r = 0.34
    if rng.random() < 0.45:  # rear view: riding away along the street
        s.quad_z((X - 0.03, X + 0.03), 0.0, 2 * r, Z + 0.05, (25, 25, 25), bike)
        s.quad_z((X - 0.25, X + 0.25), 1.0, 1.05, Z + 0.9, frame_col, bike)  # handlebar
        s.quad_z((X - 0.05, X + 0.05), 0.35, 0.95, Z + 0.1, frame_col, bike)
        _person_figure(s, X, Z + 0.3, rng.uniform(1.6, 1.85) * 0.78, rider, y0=0.55, legs=True)
        return
    # side view: crossing the street, bicycle in the plane Z = const
    d = rng.choice([-1, 1])
    xr, xf = X - d * 0.52, X + d * 0.52
    thick = s.px(0.05, Z)
    for xc in (xr, xf):
        c = s.P(xc, r, Z)
        rp = s.px(r, Z)
        s.ellipse(c, (rp, rp), (25, 25, 25), bike, thickness=max(1, int(round(thick * 1.4))))
        s.ellipse(c, (s.px(0.04, Z), s.px(0.04, Z)), (120, 120, 120), bike)
    seat = (X - d * 0.18, 0.95)
    bb = (X + d * 0.0, 0.3)
    head = (X + d * 0.42, 1.0)
    P = lambda q: s.P(q[0], q[1], Z)  # noqa: E731
    for a, b in ((seat, bb), (bb, (xr, r)), (seat, (xr, r)), (seat, head), (bb, head), (head, (xf, r))):
        s.line(P(a), P(b), frame_col, thick, bike)
    s.line(P(head), P((head[0] + d * 0.05, 1.12)), (30, 30, 30), thick, bike)
    # rider: legs to the pedals, torso leaning forward, arms to the bars, helmet
    hgt = rng.uniform(1.6, 1.85)
    pants = _jit(rng, PANTS[rng.integers(len(PANTS))], 10)
    shirt = _jit(rng, CLOTHES[rng.integers(len(CLOTHES))], 15)
    skin = _jit(rng, SKIN[rng.integers(len(SKIN))], 8)
    hip = (seat[0], seat[1] + 0.08)
    lt = s.px(0.13, Z)
    for ph in (0.0, np.pi):
        ang = rng.uniform(0, 2 * np.pi) + ph
        pedal = (bb[0] + 0.16 * math.cos(ang), bb[1] + 0.16 * math.sin(ang))
        knee = ((hip[0] + pedal[0]) / 2 + d * 0.2, (hip[1] + pedal[1]) / 2 + 0.12)
        s.line(P(hip), P(knee), pants, lt, rider)
        s.line(P(knee), P(pedal), pants, lt * 0.8, rider)
    sh = (hip[0] + d * 0.3, hip[1] + 0.5 * hgt * 0.62)
    s.line(P(hip), P(sh), shirt, s.px(0.3, Z), rider)
    s.line(P(sh), P((head[0] + d * 0.05, 1.12)), shirt, s.px(0.08, Z), rider)
    hc = P((sh[0] + d * 0.08, sh[1] + 0.17))
    s.ellipse(hc, (s.px(0.1, Z), s.px(0.11, Z)), skin, rider)
    s.ellipse(hc - np.array([0, s.px(0.05, Z)]), (s.px(0.12, Z), s.px(0.08, Z)),
              _jit(rng, CLOTHES[rng.integers(len(CLOTHES))], 10), rider)


def _clutter(s: _Scene, X, Z):
    rng = s.rng
    k = rng.integers(4)
    if k == 0:  # bin
        col = _jit(rng, [(50, 90, 60), (90, 90, 95), (40, 60, 120)][rng.integers(3)], 12)
        s.quad_z((X - 0.3, X + 0.3), 0, rng.uniform(0.9, 1.2), Z, col, F["static"])
    elif k == 1:  # billboard / advertising column
        w, h = rng.uniform(1.0, 2.0), rng.uniform(2.0, 3.0)
        s.quad_z((X - w / 2, X + w / 2), 0.3, h, Z, _jit(rng, (60, 60, 65), 10), F["static"])
        s.quad_z((X - w / 2 + 0.08, X + w / 2 - 0.08), 0.45, h - 0.1, Z,
                 _jit(rng, CLOTHES[rng.integers(len(CLOTHES))], 30), F["static"])
    elif k == 2:  # traffic light on a pole
        ph = rng.uniform(2.8, 3.6)
        s.quad_z((X - 0.06, X + 0.06), 0, ph, Z, (70, 70, 75), F["pole"])
        s.quad_z((X - 0.18, X + 0.18), ph, ph + 0.9, Z, (30, 30, 30), F["traffic_light"])
        on = rng.integers(3)
        for i, col in enumerate([(230, 40, 30), (240, 180, 20), (40, 220, 90)]):
            c = s.P(X, ph + 0.75 - i * 0.3, Z)
            s.ellipse(c, (s.px(0.1, Z),) * 2, col if i == on else _scale(col, 0.3))
    else:  # low wall
        L = rng.uniform(2, 6)
        s.quad_x(X, 0, rng.uniform(0.5, 1.0), Z, Z + L, _jit(rng, (150, 145, 135), 15), F["wall"])


def _ego(s: _Scene):
    rng = s.rng
    W, H = s.W, s.H
    top = H * rng.uniform(0.86, 0.92)
    xs = np.linspace(-0.05 * W, 1.05 * W, 24)
    ys = top + (H - top) * 0.6 * ((xs - W / 2) / (0.55 * W)) ** 2
    pts = np.concatenate([np.stack([xs, ys], 1), [[1.05 * W, H + 5], [-0.05 * W, H + 5]]])
    s.polys(pts, _jit(rng, (35, 38, 45), 10), F["ego_vehicle"])


# ---------------------------------------------------------------------------------------------

def render_scene_fine(rng: np.random.Generator, size=(768, 384)) -> tuple[np.ndarray, np.ndarray]:
    """Render one scene: RGB uint8 HxWx3 and a *fine* label (indices into ``FINE_CLASSES``)."""
    W, H = int(size[0]), int(size[1])
    s = _Scene(rng, W, H)
    sunny = rng.random() < 0.6
    sun_left = rng.random() < 0.5
    light = {
        "sunny": sunny, "dusk": rng.random() < 0.15,
        "shade_l": rng.uniform(0.6, 0.8) if sunny and not sun_left else rng.uniform(0.9, 1.05),
        "shade_r": rng.uniform(0.6, 0.8) if sunny and sun_left else rng.uniform(0.9, 1.05),
    }
    st = {"road_l": rng.uniform(3.5, 8.0), "road_r": rng.uniform(3.0, 6.5),
          "sw_l": rng.uniform(2.0, 4.5), "sw_r": rng.uniform(2.0, 4.5), "zfar": rng.uniform(90, 200)}
    _sky(s, light)
    _skyline(s, st["zfar"])
    _ground(s, st, light)
    _buildings(s, st, light, -1)
    _buildings(s, st, light, 1)

    def edge(side):
        return st["road_r"] if side > 0 else st["road_l"]

    def sw(side):
        return st["sw_r"] if side > 0 else st["sw_l"]

    def zmin(X):
        return max(5.0, abs(X) * s.f / (0.42 * W))

    # layer 1: along the facades (fences, hedges, walls)
    for _ in range(1 + (rng.random() < 0.5)):
        side = rng.choice([-1, 1])
        X = side * (edge(side) + sw(side) - 0.15)
        z0 = zmin(X) * rng.uniform(0.6, 1.6)
        _fence(s, X, z0, z0 + rng.uniform(6, 25), rng.uniform(0.9, 1.8))
    if rng.random() < 0.4:
        side = rng.choice([-1, 1])
        X = side * (edge(side) + sw(side) - 0.4)
        z0 = rng.uniform(zmin(X), 40)
        _hedge(s, X, z0, z0 + rng.uniform(4, 15))

    # layer 2: objects, far to near
    objs = []

    def add(n, fn, lateral, zspan=40.0, extra=()):
        for _ in range(n):
            side = rng.choice([-1, 1])
            X = lateral(side)
            z = rng.uniform(zmin(X), zmin(X) + zspan)
            objs.append((z, fn, X, extra, side))

    add(rng.integers(1, 5), "tree", lambda sd: sd * (edge(sd) + rng.uniform(0.6, max(0.7, sw(sd) - 0.6))), 50)
    add(rng.integers(1, 4), "lamp", lambda sd: sd * (edge(sd) + rng.uniform(0.3, 0.6)), 60)
    add(rng.integers(1, 4), "sign", lambda sd: sd * (edge(sd) + rng.uniform(0.3, 0.8)), 20)
    add(rng.integers(1, 5), "person",
        lambda sd: sd * (edge(sd) + rng.uniform(0.4, max(0.5, sw(sd) - 0.4))) if rng.random() < 0.85
        else rng.uniform(-st["road_l"] + 0.5, st["road_r"] - 0.5), 25)
    add(rng.integers(1, 4), "cyclist", lambda sd: sd * (edge(sd) - rng.uniform(0.7, 1.5)), 25)
    add(rng.integers(0, 4), "clutter", lambda sd: sd * (edge(sd) + rng.uniform(0.5, max(0.6, sw(sd) - 0.5))), 40)
    # cars: driving lanes and parked along the kerbs
    n_cars = rng.integers(1, 7)
    lanes = [-st["road_l"] + 1.7 + i * 3.2 for i in range(int((st["road_l"] + st["road_r"] - 1.5) // 3.2))]
    lanes = lanes or [0.0]
    used: list[tuple[float, float]] = []
    for _ in range(n_cars):
        for _try in range(6):
            if rng.random() < 0.4:
                side = rng.choice([-1, 1])
                X = side * (edge(side) - 1.1)
            else:
                X = lanes[rng.integers(len(lanes))]
            z = rng.uniform(max(6.0, zmin(X) * 0.8), 55)
            if all(abs(X - ux) > 1.5 or abs(z - uz) > 7.5 for ux, uz in used):
                used.append((X, z))
                objs.append((z, "car", X, (X < -0.5 and rng.random() < 0.7,), 0))
                break
    objs.sort(key=lambda o: -o[0])
    for z, kind, X, extra, side in objs:
        if kind == "tree":
            _tree(s, X, z)
        elif kind == "lamp":
            _lamp(s, X, z, -side)
        elif kind == "sign":
            _sign(s, X, z)
        elif kind == "person":
            _person(s, X, z)
        elif kind == "cyclist":
            _cyclist(s, X, z)
        elif kind == "clutter":
            _clutter(s, X, z)
        elif kind == "car":
            _car(s, X, z, *extra)
    if rng.random() < 0.3:
        _ego(s)
    return _finish(s, light), s.lab


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


def _finish(s: _Scene, light) -> np.ndarray:
    """Texture, lighting, blur and sensor noise."""
    rng, H, W = s.rng, s.H, s.W
    fine_bank, sensor_bank = _noise_bank(W, H)
    oy, ox = rng.integers(0, _NOISE_PAD, 2)
    fine = fine_bank[oy:oy + H, ox:ox + W]
    oy, ox = rng.integers(0, _NOISE_PAD, 2)
    sensor = sensor_bank[oy:oy + H, ox:ox + W]
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


def render_scene(rng: np.random.Generator, size=(768, 384)) -> tuple[np.ndarray, np.ndarray]:
    """Render one street scene: ``(rgb uint8 HxWx3, label uint8 HxW)`` in the 12 PHGMM classes."""
    rgb, fine = render_scene_fine(rng, size)
    return rgb, _TO_COARSE[fine]


def save_example(path, seed: int = 6, size=(768, 384)) -> Path:
    """Save a scene above its colour label as a compact PNG (the picture in ``docs/data.md``).

    The photo half is palette-quantised to 240 colours (to stay small); the label half keeps the
    exact class colours.
    """
    from PIL import Image

    from .classes import PHGMM_COLORS

    rgb, lab = render_scene(np.random.default_rng([2024, seed]), size)
    top = Image.fromarray(rgb).quantize(colors=240, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    pal = top.getpalette()[: 240 * 3]
    pal += [c for col in PHGMM_COLORS for c in col] + [255, 255, 255] * (256 - 240 - len(PHGMM_COLORS))
    idx = np.concatenate([np.asarray(top, np.uint8), (240 + lab.astype(np.int32)).astype(np.uint8)], 0)
    out = Image.fromarray(idx, mode="P")
    out.putpalette(pal)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out.save(path, optimize=True)
    return path


# ---------------------------------------------------------------------------------------------
# writing data sets

# fast, deterministic PNG settings (measured): noisy RGB compresses best per ms with the SUB
# filter + Huffman-only coding; flat label maps with run-length coding
_PNG_RGB = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB,
            cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY]
_PNG_LABEL = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB,
              cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]


def _write(path: Path, arr: np.ndarray, params=None) -> None:
    ok, buf = cv2.imencode(".png", arr, params or _PNG_LABEL)
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    path.write_bytes(buf.tobytes())


def _parse_size(text) -> tuple[int, int]:
    from ..io import SizeError, parse_wxh

    w, h = parse_wxh(text)
    if w < 32 or h < 32:
        raise SizeError(f"size {text!r} is too small (at least 32x32)")
    return w, h


def generate_dataset(out_dir, num: int, size=(768, 384), seed: int = 0, fmt: str = "cityscapes",
                     val_fraction: float = 0.2, overwrite: bool = False, progress: bool = True) -> Path:
    """Write ``num`` synthetic scenes to ``out_dir`` in a real on-disk format.

    ``fmt="cityscapes"``: ``leftImg8bit/{train,val}/synth/synth_000000_{i:06d}_leftImg8bit.png``
    and ``gtFine/{train,val}/synth/..._gtFine_labelIds.png`` with native Cityscapes ids; the
    last ``round(num * val_fraction)`` images form ``val``.
    ``fmt="synthia"``: ``RGB/{i:07d}.png`` and ``GT/LABELS/{i:07d}.png`` (16-bit, 3 channels,
    id in the red channel); the split is :class:`~phgmm.data.SynthiaDataset`'s own 7:2 rule and
    ``val_fraction`` is not used.

    Refuses (``FileExistsError``) to write into a non-empty folder unless ``overwrite=True``.
    """
    out = Path(out_dir).expanduser()
    size = _parse_size(size)
    if fmt not in ("cityscapes", "synthia"):
        raise ValueError(f"format must be 'cityscapes' or 'synthia', got {fmt!r}")
    if num < 1:
        raise ValueError(f"num must be >= 1, got {num}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out}: folder is not empty; refusing to write synthetic data into it "
                              f"(choose an empty/new folder or pass --overwrite / overwrite=True)")
    n_val = int(round(num * val_fraction)) if fmt == "cityscapes" else 0
    if fmt == "cityscapes" and val_fraction > 0 and num >= 2:
        n_val = min(max(n_val, 1), num - 1)
    try:
        from tqdm import tqdm
        it = tqdm(range(num), desc=f"synth {fmt}", unit="img", disable=not progress)
    except ImportError:  # pragma: no cover
        it = range(num)
    for i in it:
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, i])
        rgb, fine = render_scene_fine(rng, size)
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        if fmt == "cityscapes":
            split = "val" if i >= num - n_val else "train"
            stem = f"synth_000000_{i:06d}"
            d_img = out / "leftImg8bit" / split / "synth"
            d_gt = out / "gtFine" / split / "synth"
            d_img.mkdir(parents=True, exist_ok=True)
            d_gt.mkdir(parents=True, exist_ok=True)
            _write(d_img / f"{stem}_leftImg8bit.png", bgr, _PNG_RGB)
            _write(d_gt / f"{stem}_gtFine_labelIds.png", _TO_CITYSCAPES[fine])
        else:
            d_img, d_gt = out / "RGB", out / "GT" / "LABELS"
            d_img.mkdir(parents=True, exist_ok=True)
            d_gt.mkdir(parents=True, exist_ok=True)
            lab = np.zeros(fine.shape + (3,), np.uint16)
            lab[:, :, 2] = _TO_SYNTHIA[fine]  # red channel (OpenCV BGR order) = class id
            _write(d_img / f"{i:07d}.png", bgr, _PNG_RGB)
            _write(d_gt / f"{i:07d}.png", lab)
    return out

