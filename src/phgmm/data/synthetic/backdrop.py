"""What every scene starts from: the sky, a far skyline, and the ground (terrain, road,
sidewalks, shadows, lane markings)."""

from __future__ import annotations

import numpy as np

from .colors import jit, scale
from .labels import F
from .scene import Scene

__all__ = ["draw_sky", "draw_skyline", "draw_ground"]


def draw_sky(s: Scene, light):
    """Fill the whole canvas with a sky gradient (label: sky) and add clouds."""
    rng, H, W = s.rng, s.H, s.W
    overcast = rng.random() < 0.3
    if overcast:
        top = np.array(jit(rng, (150, 155, 165), 15), np.float32)
        bot = np.array(jit(rng, (200, 202, 205), 12), np.float32)
    else:
        top = np.array(jit(rng, (60, 115, 195), 20), np.float32)
        bot = np.array(jit(rng, (175, 200, 230), 15), np.float32)
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
        col = scale(bot, rng.uniform(1.02, 1.15)) if not overcast else scale(bot, rng.uniform(0.85, 0.95))
        for _k in range(rng.integers(2, 5)):
            s.ellipse(
                (cx + rng.uniform(-40, 40), cy + rng.uniform(-8, 8)), (rng.uniform(20, 70), rng.uniform(6, 16)), col
            )


def draw_skyline(s: Scene, zfar):
    """A row of distant buildings (and a few trees) at the far end of the street."""
    rng = s.rng
    x = -zfar * 1.2
    while x < zfar * 1.2:
        w = rng.uniform(8, 30)
        h = rng.uniform(8, 45)
        if rng.random() < 0.15:  # distant trees
            c = s.P(x + w / 2, h * 0.25, zfar)
            s.ellipse(c, (s.px(w / 2, zfar), s.px(h * 0.3, zfar)), jit(rng, (80, 105, 70), 10), F["vegetation"])
        else:
            col = jit(rng, (150, 155, 165), 20)
            s.quad_z((x, x + w), 0, h, zfar, col, F["building"])
        x += w + (rng.uniform(2, 15) if rng.random() < 0.3 else 0)


def draw_ground(s: Scene, st, light):
    """Everything on the ground plane, from the background terrain up to the lane markings."""
    road_col = _paving(s, st)
    _road_shadows(s, st, light, road_col)
    _lane_markings(s, st)


def _paving(s: Scene, st) -> tuple:
    """Terrain (or paved background), the road and both sidewalks; returns the road colour."""
    rng = s.rng
    zn, zf = s.znear, st["zfar"]
    # everything below the horizon starts as background ground (terrain or paved)
    terrain = rng.random() < 0.5
    col = jit(rng, (105, 120, 70) if terrain else (120, 115, 110), 15)
    s.polys(s.P([-400, 400, 400, -400], 0, [zn, zn, zf, zf]), col, F["terrain"] if terrain else F["static"])
    rl, rr, swl, swr = st["road_l"], st["road_r"], st["sw_l"], st["sw_r"]
    road_col = jit(rng, (95, 95, 100), 18)
    s.polys(s.P([-rl, rr, rr, -rl], 0, [zn, zn, zf, zf]), road_col, F["road"])
    sw_col = jit(rng, [(175, 170, 165), (190, 160, 160), (160, 160, 168), (200, 185, 160)][rng.integers(4)], 12)
    for sign, r, w in ((-1, rl, swl), (1, rr, swr)):
        _sidewalk(s, sign, r, w, sw_col, zf)
    return road_col


def _sidewalk(s: Scene, sign, r, w, sw_col, zf):
    """One sidewalk from the road edge ``r`` outwards (``sign``: -1 left, 1 right), ``w`` wide."""
    rng, zn = s.rng, s.znear
    xa, xb = sign * r, sign * (r + w)
    s.polys(s.P([xa, xb, xb, xa], 0, [zn, zn, zf, zf]), sw_col, F["sidewalk"])
    # kerb: bright stripe at the road edge
    kx = sign * (r + 0.18)
    s.polys(s.P([xa, kx, kx, xa], 0.02, [zn, zn, zf, zf]), scale(sw_col, 1.12), F["sidewalk"])
    # tile joints (image only)
    step = rng.uniform(1.0, 2.0)
    dark = scale(sw_col, 0.8)
    zs = np.arange(zn + rng.uniform(0, step), min(zf, 60), step)
    a = s.P(xa, 0, zs)
    b = s.P(xb, 0, zs)
    lines = [np.stack([p, q]) for p, q in zip(a, b, strict=True)]
    if lines:
        s.strokes(lines, dark)


def _road_shadows(s: Scene, st, light, road_col):
    """Shadows cast across the road on sunny days (image only: still road)."""
    rng, zn, rl, rr = s.rng, s.znear, st["road_l"], st["road_r"]
    for _ in range(rng.integers(0, 4) if light["sunny"] else 0):
        z0 = rng.uniform(zn + 2, 60)
        z1 = z0 + rng.uniform(3, 15)
        side = rng.choice([-1, 1])
        x0 = side * (rl if side < 0 else rr) * rng.uniform(1.0, 1.6)
        x1 = side * rng.uniform(-1, 2)
        s.polys(s.P([x0, x1, x1, x0], 0.01, [z0, z0 + 2, z1 + 2, z1]), scale(road_col, rng.uniform(0.55, 0.75)))


def _lane_markings(s: Scene, st):
    """Lane dividers, sometimes edge lines and a zebra crossing, all in one label colour."""
    rng = s.rng
    zn, zf, rl, rr = s.znear, st["zfar"], st["road_l"], st["road_r"]
    mark = jit(rng, (225, 225, 215), 12)
    wid = rng.uniform(0.12, 0.18)
    polys = _lane_dividers(s, st, wid)
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


def _lane_dividers(s: Scene, st, wid) -> list:
    """Polygons of the dashed (or solid) lines between lanes, ``wid`` metres wide."""
    rng = s.rng
    zn, zf, rl, rr = s.znear, st["zfar"], st["road_l"], st["road_r"]
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
    return polys
