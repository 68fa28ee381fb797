"""The street's fixed things: buildings with windows, fences, hedges, trees, street lamps,
traffic signs, clutter (bins, billboards, traffic lights, low walls) and the ego vehicle's bonnet."""

from __future__ import annotations

import numpy as np

from .colors import CLOTHES, FACADE_COLORS, jit, scale
from .labels import F
from .scene import Scene

__all__ = [
    "draw_buildings",
    "draw_fence",
    "draw_hedge",
    "draw_tree",
    "draw_lamp",
    "draw_sign",
    "draw_clutter",
    "draw_ego",
]


def draw_buildings(s: Scene, st, light, side):
    """A row of facades along one side of the street (``side``: -1 left, 1 right), with gaps."""
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
        base = jit(rng, FACADE_COLORS[rng.integers(len(FACADE_COLORS))], 15)
        # front face (perpendicular to the street, visible behind gaps)
        s.quad_z((X, X + side * 25), 0, h, z0, scale(base, 0.75 * shade), F["building"])
        s.quad_x(X, 0, h, z0, z1, scale(base, shade), F["building"])
        # cornice (image only)
        s.quad_x(X, h - 0.4, h, z0, z1, scale(base, 0.7 * shade))
        if z0 < 110:
            _windows(s, X, z0, z1, h, base, jit(rng, (55, 65, 80), 15), shade)


def _windows(s: Scene, X, z0, z1, h, base, dark_glass, side_shade):
    """A grid of windows (a few lit) and maybe a door on one facade; image only, still building."""
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
    glass = scale(dark_glass, side_shade)
    s.polys(list(corners[~lit]), glass)
    if lit.any():
        s.polys(list(corners[lit]), scale(jit(rng, (150, 170, 190), 25), side_shade))
    # a door / shop window on the ground floor (image only: still building)
    if rng.random() < 0.6:
        zd = rng.uniform(z0, max(z0 + 0.1, z1 - 3))
        s.quad_x(X, 0, rng.uniform(2.0, 2.6), zd, zd + rng.uniform(1.2, 3), scale(base, 0.45))


def draw_fence(s: Scene, X, z0, z1, h):
    """A board fence or a see-through metal railing in the plane X = const."""
    rng = s.rng
    if rng.random() < 0.6:  # panel fence
        col = jit(rng, [(140, 105, 70), (175, 165, 150), (105, 120, 95), (160, 140, 120)][rng.integers(4)], 12)
        s.quad_x(X, 0, h, z0, z1, col, F["fence"])
        step = rng.uniform(0.12, 0.3)
        zs = np.arange(z0 + step, z1, step)
        a, b = s.P(X, 0.05, zs), s.P(X, h - 0.05, zs)
        s.strokes([np.stack([p, q]) for p, q in zip(a, b, strict=True)], scale(col, 0.7))
        s.quad_x(X, h - 0.08, h, z0, z1, scale(col, 0.8), F["fence"])
    else:  # metal railing: rails + posts + bars, the background shows through
        col = jit(rng, [(70, 80, 75), (150, 150, 155), (40, 40, 45)][rng.integers(3)], 10)
        for y in (0.15, h * 0.5, h - 0.06):
            s.quad_x(X, y, y + 0.07, z0, z1, col, F["fence"])
        step = rng.uniform(0.18, 0.3)
        polys = []
        for zb in np.arange(z0, z1, step):
            polys.append(s.P(X, [0, 0, h, h], [zb, zb + 0.06, zb + 0.06, zb]))
        s.polys(polys, col, F["fence"])


def draw_hedge(s: Scene, X, z0, z1):
    """A hedge with a bumpy top in the plane X = const."""
    rng = s.rng
    h = rng.uniform(0.7, 1.4)
    col = jit(rng, (60, 95, 40), 15)
    s.quad_x(X, 0, h, z0, z1, col, F["vegetation"])
    # bumpy top
    for z in np.arange(z0, z1, 0.6):
        c = s.P(X, h, z + 0.3)
        r = s.px(0.35, z + 0.3)
        s.ellipse(c, (r * 0.6, r * 0.5), scale(col, rng.uniform(0.85, 1.15)), F["vegetation"])


def draw_tree(s: Scene, X, Z):
    """A trunk and a crown of overlapping blobs, with lighter and darker leaf clusters on top."""
    rng = s.rng
    trunk_h = rng.uniform(2.0, 3.5)
    tw = rng.uniform(0.18, 0.35)
    s.quad_z((X - tw / 2, X + tw / 2), 0, trunk_h + 0.5, Z, jit(rng, (85, 65, 45), 12), F["vegetation"])
    cy = trunk_h + rng.uniform(1.2, 2.5)
    R = rng.uniform(1.5, 3.0)
    base = jit(rng, [(70, 110, 45), (55, 95, 40), (95, 125, 55), (60, 85, 50)][rng.integers(4)], 12)
    for _ in range(rng.integers(3, 7)):
        dx, dy = rng.uniform(-0.6, 0.6) * R, rng.uniform(-0.5, 0.5) * R
        r = R * rng.uniform(0.55, 0.9)
        s.ellipse(
            s.P(X + dx, cy + dy, Z),
            (s.px(r, Z), s.px(r * rng.uniform(0.7, 1.0), Z)),
            scale(base, rng.uniform(0.9, 1.1)),
            F["vegetation"],
        )
    for _ in range(rng.integers(6, 14)):  # leaf clusters (image only)
        dx, dy = rng.uniform(-0.6, 0.6) * R, rng.uniform(-0.5, 0.4) * R
        s.ellipse(s.P(X + dx, cy + dy, Z), (s.px(R * 0.25, Z), s.px(R * 0.2, Z)), scale(base, rng.uniform(0.65, 1.3)))


def draw_lamp(s: Scene, X, Z, toward):
    """A lamp post, usually with an arm reaching over the road (``toward``: -1 left, 1 right)."""
    rng = s.rng
    h = rng.uniform(5, 9)
    w = rng.uniform(0.14, 0.25)
    col = jit(rng, [(90, 95, 100), (60, 75, 65), (150, 150, 150), (45, 45, 50)][rng.integers(4)], 10)
    s.quad_z((X - w / 2, X + w / 2), 0, h, Z, col, F["pole"])
    if rng.random() < 0.7:
        arm = rng.uniform(1.0, 2.2)
        xe = X + toward * arm
        s.polys(s.P([X, xe, xe, X], [h - 0.12, h - 0.12, h, h], Z), col, F["pole"])
        s.quad_z(
            (xe - 0.3, xe + 0.3) if toward > 0 else (xe - 0.3, xe + 0.3), h - 0.25, h, Z, scale(col, 0.8), F["pole"]
        )


def draw_sign(s: Scene, X, Z):
    """A traffic sign on a post (the post is pole, the plate is sign)."""
    rng = s.rng
    ph = rng.uniform(2.2, 3.0)
    pw = rng.uniform(0.07, 0.11)
    pole_col = jit(rng, (140, 140, 145), 15)
    size = rng.uniform(0.7, 1.0)
    s.quad_z((X - pw / 2, X + pw / 2), 0, ph, Z, pole_col, F["pole"])
    c = s.P(X, ph + size / 2, Z)
    r = s.px(size / 2, Z)
    _sign_plate(s, c, r, rng.integers(5))


def _sign_plate(s: Scene, c, r, kind):
    """One of five sign plates centred at image point ``c``, radius ``r`` pixels; symbols image only."""
    rng = s.rng
    fid = F["sign"]
    if kind == 0:  # prohibition: red ring, white inside
        s.ellipse(c, (r, r), (200, 30, 35), fid)
        s.ellipse(c, (r * 0.72, r * 0.72), (240, 240, 240))
    elif kind == 1:  # mandatory: blue disc, white arrow
        s.ellipse(c, (r, r), (30, 80, 170), fid)
        s.polys(
            np.array(
                [
                    [c[0] - r * 0.15, c[1] + r * 0.6],
                    [c[0] + r * 0.15, c[1] + r * 0.6],
                    [c[0] + r * 0.15, c[1] - r * 0.1],
                    [c[0] + r * 0.4, c[1] - r * 0.1],
                    [c[0], c[1] - r * 0.6],
                    [c[0] - r * 0.4, c[1] - r * 0.1],
                    [c[0] - r * 0.15, c[1] - r * 0.1],
                ]
            ),
            (240, 240, 240),
        )
    elif kind == 2:  # warning triangle
        tri = np.array([[c[0], c[1] - r], [c[0] + r * 1.05, c[1] + r * 0.8], [c[0] - r * 1.05, c[1] + r * 0.8]])
        s.polys(tri, (200, 30, 35), fid)
        s.polys(c + (tri - c) * 0.65, (240, 235, 225))
    elif kind == 3:  # rectangular information sign
        col = [(30, 80, 170), (30, 120, 60), (240, 200, 30)][rng.integers(3)]
        s.polys(
            np.array(
                [
                    [c[0] - r, c[1] - r * 0.7],
                    [c[0] + r, c[1] - r * 0.7],
                    [c[0] + r, c[1] + r * 0.7],
                    [c[0] - r, c[1] + r * 0.7],
                ]
            ),
            col,
            fid,
        )
        s.polys(
            np.array(
                [
                    [c[0] - r * 0.7, c[1] - r * 0.15],
                    [c[0] + r * 0.7, c[1] - r * 0.15],
                    [c[0] + r * 0.7, c[1] + r * 0.15],
                    [c[0] - r * 0.7, c[1] + r * 0.15],
                ]
            ),
            (240, 240, 240),
        )
    else:  # priority diamond
        d = np.array([[c[0], c[1] - r], [c[0] + r, c[1]], [c[0], c[1] + r], [c[0] - r, c[1]]])
        s.polys(d, (240, 240, 240), fid)
        s.polys(c + (d - c) * 0.7, (240, 200, 30))


def draw_clutter(s: Scene, X, Z):
    """One piece of background clutter: a bin, a billboard, a traffic light or a low wall."""
    rng = s.rng
    k = rng.integers(4)
    if k == 0:  # bin
        col = jit(rng, [(50, 90, 60), (90, 90, 95), (40, 60, 120)][rng.integers(3)], 12)
        s.quad_z((X - 0.3, X + 0.3), 0, rng.uniform(0.9, 1.2), Z, col, F["static"])
    elif k == 1:  # billboard / advertising column
        w, h = rng.uniform(1.0, 2.0), rng.uniform(2.0, 3.0)
        s.quad_z((X - w / 2, X + w / 2), 0.3, h, Z, jit(rng, (60, 60, 65), 10), F["static"])
        s.quad_z(
            (X - w / 2 + 0.08, X + w / 2 - 0.08),
            0.45,
            h - 0.1,
            Z,
            jit(rng, CLOTHES[rng.integers(len(CLOTHES))], 30),
            F["static"],
        )
    elif k == 2:  # traffic light on a pole
        ph = rng.uniform(2.8, 3.6)
        s.quad_z((X - 0.06, X + 0.06), 0, ph, Z, (70, 70, 75), F["pole"])
        s.quad_z((X - 0.18, X + 0.18), ph, ph + 0.9, Z, (30, 30, 30), F["traffic_light"])
        on = rng.integers(3)
        for i, col in enumerate([(230, 40, 30), (240, 180, 20), (40, 220, 90)]):
            c = s.P(X, ph + 0.75 - i * 0.3, Z)
            s.ellipse(c, (s.px(0.1, Z),) * 2, col if i == on else scale(col, 0.3))
    else:  # low wall
        L = rng.uniform(2, 6)
        s.quad_x(X, 0, rng.uniform(0.5, 1.0), Z, Z + L, jit(rng, (150, 145, 135), 15), F["wall"])


def draw_ego(s: Scene):
    """The camera car's own bonnet across the bottom of the image."""
    rng = s.rng
    W, H = s.W, s.H
    top = H * rng.uniform(0.86, 0.92)
    xs = np.linspace(-0.05 * W, 1.05 * W, 24)
    ys = top + (H - top) * 0.6 * ((xs - W / 2) / (0.55 * W)) ** 2
    pts = np.concatenate([np.stack([xs, ys], 1), [[1.05 * W, H + 5], [-0.05 * W, H + 5]]])
    s.polys(pts, jit(rng, (35, 38, 45), 10), F["ego_vehicle"])
