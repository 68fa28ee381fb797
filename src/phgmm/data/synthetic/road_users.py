"""The things that move: cars, vans and buses; pedestrians; cyclists (rider + bicycle)."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .colors import CAR_COLORS, CLOTHES, PANTS, SKIN, jit, scale
from .labels import F
from .scene import Scene

__all__ = ["draw_car", "draw_person", "draw_cyclist"]

_TYRE = (25, 25, 25)
_WHEEL_R = 0.34  # bicycle wheel radius, metres


# -- vehicles -----------------------------------------------------------------------------------
class _Vehicle(NamedTuple):
    fid: int  # fine id: car, truck or bus
    w: float  # width, height, length (metres)
    h: float
    L: float
    body: tuple  # colours
    glass: tuple
    belt: float  # height of the window line


def _vehicle(rng: np.random.Generator) -> _Vehicle:
    """Draw a vehicle's kind, size and colours: 80 % cars, 13 % vans/trucks, 7 % buses."""
    kind = rng.random()
    if kind < 0.8:
        fid, w, h, L = F["car"], rng.uniform(1.7, 1.9), rng.uniform(1.4, 1.6), rng.uniform(4.0, 4.7)
    elif kind < 0.93:
        fid, w, h, L = F["truck"], rng.uniform(2.0, 2.4), rng.uniform(2.2, 3.2), rng.uniform(5.5, 7.5)
    else:
        fid, w, h, L = F["bus"], 2.5, rng.uniform(3.0, 3.3), rng.uniform(10, 12)
    body = jit(rng, CAR_COLORS[rng.integers(len(CAR_COLORS))], 12)
    if fid == F["bus"]:
        body = jit(rng, [(230, 200, 40), (200, 40, 40), (240, 240, 240)][rng.integers(3)], 10)
    glass = jit(rng, (40, 48, 60), 10)
    belt = h * (0.6 if fid == F["car"] else 0.55)
    return _Vehicle(fid, w, h, L, body, glass, belt)


def draw_car(s: Scene, X, Z, oncoming):
    """A vehicle centred at lateral ``X`` with its rear (front if ``oncoming``) at depth ``Z``."""
    v = _vehicle(s.rng)
    if abs(X) > v.w / 2:  # off the optical axis: one side face is visible
        _vehicle_side(s, v, X, Z)
    _vehicle_end(s, v, X, Z, oncoming)


def _vehicle_side(s: Scene, v: _Vehicle, X, Z):
    """The side face towards the optical axis: body, windows, two wheels."""
    fid, h, L, belt, glass = v.fid, v.h, v.L, v.belt, v.glass
    xs = X - v.w / 2 if X > 0 else X + v.w / 2
    sh = scale(v.body, 0.82)
    if fid == F["car"]:
        s.quad_x(xs, 0.22, belt, Z, Z + L, sh, fid)
        s.polys(s.P(xs, [belt, belt, h, h], [Z + 0.1 * L, Z + 0.9 * L, Z + 0.7 * L, Z + 0.3 * L]), sh, fid)
        s.polys(
            s.P(
                xs,
                [belt + 0.05, belt + 0.05, h - 0.07, h - 0.07],
                [Z + 0.16 * L, Z + 0.84 * L, Z + 0.67 * L, Z + 0.33 * L],
            ),
            glass,
        )
    else:
        s.quad_x(xs, 0.3, h, Z, Z + L, sh, fid)
        if fid == F["bus"]:
            s.quad_x(xs, h * 0.5, h * 0.85, Z + 0.5, Z + L - 1.5, glass)
        else:
            s.quad_x(xs, h * 0.55, h * 0.85, Z + L - 1.6, Z + L - 0.3, glass)
    for zc in (Z + 0.85, Z + L - 0.85):
        s.polys(_wheel_poly(s, xs, 0.33, zc, 0.33), _TYRE, fid)
        s.polys(_wheel_poly(s, xs, 0.33, zc, 0.16, 8), (150, 150, 155), fid)


def _wheel_poly(s: Scene, X, yc, zc, r, n=14):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return s.P(X, yc + r * np.sin(t), zc + r * np.cos(t))


def _vehicle_end(s: Scene, v: _Vehicle, X, Z, oncoming):
    """The face at depth Z: tyres, body, windscreen, bumper, lights, number plate."""
    fid, h, belt, body, glass = v.fid, v.h, v.belt, v.body, v.glass
    x0, x1 = X - v.w / 2, X + v.w / 2
    s.quad_z((x0 + 0.1, x0 + 0.35), 0, 0.3, Z + 0.2, _TYRE, fid)
    s.quad_z((x1 - 0.35, x1 - 0.1), 0, 0.3, Z + 0.2, _TYRE, fid)
    s.quad_z((x0, x1), 0.22, belt, Z, body, fid)
    if fid == F["car"]:
        s.polys(s.P([x0 + 0.08, x1 - 0.08, x1 - 0.2, x0 + 0.2], [belt, belt, h, h], Z), body, fid)
        s.polys(
            s.P([x0 + 0.18, x1 - 0.18, x1 - 0.27, x0 + 0.27], [belt + 0.05, belt + 0.05, h - 0.06, h - 0.06], Z), glass
        )
    else:
        s.quad_z((x0, x1), belt, h, Z, body, fid)
        s.quad_z((x0 + 0.12, x1 - 0.12), h * 0.6, h * 0.9, Z, glass)
    s.quad_z((x0, x1), 0.22, 0.38, Z, scale(body, 0.55))  # bumper
    lamp = (250, 245, 220) if oncoming else (200, 20, 20)
    yl = belt - 0.22
    s.quad_z((x0 + 0.05, x0 + 0.35), yl, yl + 0.14, Z, lamp)
    s.quad_z((x1 - 0.35, x1 - 0.05), yl, yl + 0.14, Z, lamp)
    s.quad_z((X - 0.25, X + 0.25), 0.42, 0.54, Z, (235, 235, 230))  # plate


# -- people -------------------------------------------------------------------------------------
def draw_person(s: Scene, X, Z):
    """A pedestrian facing the camera (or away from it), standing at (X, Z)."""
    _person_figure(s, X, Z, s.rng.uniform(1.55, 1.9), F["person"])


def _person_figure(s: Scene, X, Z, height, fid, y0=0.0, legs=True, lean=0.0):
    """A frontal human figure ``height`` metres tall with its feet at height ``y0``."""
    rng = s.rng
    hgt = height
    skin = jit(rng, SKIN[rng.integers(len(SKIN))], 8)
    shirt = jit(rng, CLOTHES[rng.integers(len(CLOTHES))], 15)
    pants = jit(rng, PANTS[rng.integers(len(PANTS))], 10)
    hip = y0 + 0.47 * hgt
    sw = 0.21 * hgt  # shoulder width
    if legs:
        _legs(s, X, Z, hgt, y0, hip, sw, pants, fid)
    sh_y = y0 + 0.82 * hgt
    _torso_and_arms(s, X, Z, hgt, hip, sw, sh_y, lean, shirt, skin, fid)
    _head(s, X + lean, Z, hgt, sh_y, skin, fid)
    if rng.random() < 0.3:  # bag
        xb = X + (sw * 0.7 if rng.random() < 0.5 else -sw * 0.7)
        s.quad_z((xb - 0.12, xb + 0.12), hip - 0.25, hip + 0.05, Z, jit(rng, (60, 45, 35), 20), fid)


def _legs(s: Scene, X, Z, hgt, y0, hip, sw, pants, fid):
    spread = s.rng.uniform(-0.12, 0.12)
    lw = 0.075 * hgt
    s.polys(
        s.P([X - 0.02, X - 0.02 - lw, X - sw * 0.45 + spread - lw, X - sw * 0.45 + spread], [hip, hip, y0, y0], Z),
        pants,
        fid,
    )
    s.polys(
        s.P([X + 0.02, X + 0.02 + lw, X + sw * 0.45 - spread + lw, X + sw * 0.45 - spread], [hip, hip, y0, y0], Z),
        pants,
        fid,
    )
    s.quad_z((X - sw * 0.5, X + sw * 0.5), hip - 0.08, hip + 0.02, Z, pants, fid)
    shoe = (30, 30, 30)
    s.quad_z((X - sw * 0.45 + spread - lw - 0.02, X - sw * 0.45 + spread + 0.02), y0, y0 + 0.07, Z, shoe, fid)
    s.quad_z((X + sw * 0.45 - spread - 0.02, X + sw * 0.45 - spread + lw + 0.02), y0, y0 + 0.07, Z, shoe, fid)


def _torso_and_arms(s: Scene, X, Z, hgt, hip, sw, sh_y, lean, shirt, skin, fid):
    xl = lean
    torso = s.P([X - sw * 0.45, X + sw * 0.45, X + sw * 0.55 + xl, X - sw * 0.55 + xl], [hip, hip, sh_y, sh_y], Z)
    s.polys(torso, shirt, fid)
    aw = 0.055 * hgt
    for sgn in (-1, 1):
        xa = X + xl + sgn * sw * 0.55
        xh = X + sgn * (sw * 0.6 + s.rng.uniform(-0.03, 0.08))
        s.polys(
            s.P([xa, xa + sgn * aw, xh + sgn * aw, xh], [sh_y, sh_y - 0.05, hip - 0.05, hip - 0.05], Z),
            scale(shirt, 0.9),
            fid,
        )
        s.ellipse(s.P(xh + sgn * aw / 2, hip - 0.07, Z), (s.px(0.045, Z), s.px(0.05, Z)), skin, fid)


def _head(s: Scene, X, Z, hgt, sh_y, skin, fid):
    """Neck, head and hair above the shoulders at height ``sh_y``, centred at ``X``."""
    s.quad_z((X - 0.04, X + 0.04), sh_y, sh_y + 0.05, Z, skin, fid)
    hr = 0.065 * hgt
    hc = s.P(X, sh_y + 0.05 + hr, Z)
    s.ellipse(hc, (s.px(hr * 0.85, Z), s.px(hr, Z)), skin, fid)
    hair = (40, 30, 25) if s.rng.random() < 0.7 else (180, 150, 90)
    s.ellipse(hc - np.array([0, s.px(hr * 0.35, Z)]), (s.px(hr * 0.88, Z), s.px(hr * 0.7, Z)), hair, fid)


# -- cyclists -----------------------------------------------------------------------------------
def draw_cyclist(s: Scene, X, Z):
    """A rider (label: rider) on a bicycle (label: bicycle), seen from behind or from the side."""
    rng = s.rng
    frame_col = jit(
        rng, [(200, 30, 30), (30, 30, 30), (30, 70, 160), (180, 180, 185), (30, 130, 60)][rng.integers(5)], 10
    )
    if rng.random() < 0.45:  # rear view: riding away along the street
        _cyclist_rear(s, X, Z, frame_col)
        return
    # side view: crossing the street, bicycle in the plane Z = const
    d = rng.choice([-1, 1])  # riding direction
    seat, bb, bars = _bicycle_side(s, X, Z, d, frame_col)
    _rider_side(s, Z, d, seat, bb, bars)


def _cyclist_rear(s: Scene, X, Z, frame_col):
    bike = F["bicycle"]
    s.quad_z((X - 0.03, X + 0.03), 0.0, 2 * _WHEEL_R, Z + 0.05, _TYRE, bike)
    s.quad_z((X - 0.25, X + 0.25), 1.0, 1.05, Z + 0.9, frame_col, bike)  # handlebar
    s.quad_z((X - 0.05, X + 0.05), 0.35, 0.95, Z + 0.1, frame_col, bike)
    _person_figure(s, X, Z + 0.3, s.rng.uniform(1.6, 1.85) * 0.78, F["rider"], y0=0.55, legs=True)


def _bicycle_side(s: Scene, X, Z, d, frame_col):
    """Wheels and frame in the plane Z = const; returns the seat, bottom bracket and handlebar
    points (X, Y) the rider holds on to."""
    bike, r = F["bicycle"], _WHEEL_R
    xr, xf = X - d * 0.52, X + d * 0.52
    thick = s.px(0.05, Z)
    for xc in (xr, xf):
        c = s.P(xc, r, Z)
        rp = s.px(r, Z)
        s.ellipse(c, (rp, rp), _TYRE, bike, thickness=max(1, int(round(thick * 1.4))))
        s.ellipse(c, (s.px(0.04, Z), s.px(0.04, Z)), (120, 120, 120), bike)
    seat = (X - d * 0.18, 0.95)
    bb = (X + d * 0.0, 0.3)
    head = (X + d * 0.42, 1.0)
    bars = (head[0] + d * 0.05, 1.12)

    def P(q):
        return s.P(q[0], q[1], Z)

    for a, b in ((seat, bb), (bb, (xr, r)), (seat, (xr, r)), (seat, head), (bb, head), (head, (xf, r))):
        s.line(P(a), P(b), frame_col, thick, bike)
    s.line(P(head), P(bars), (30, 30, 30), thick, bike)
    return seat, bb, bars


def _rider_side(s: Scene, Z, d, seat, bb, bars):
    """Legs to the pedals, torso leaning forward, arms to the bars, a helmet."""
    rng, rider = s.rng, F["rider"]
    hgt = rng.uniform(1.6, 1.85)
    pants = jit(rng, PANTS[rng.integers(len(PANTS))], 10)
    shirt = jit(rng, CLOTHES[rng.integers(len(CLOTHES))], 15)
    skin = jit(rng, SKIN[rng.integers(len(SKIN))], 8)
    hip = (seat[0], seat[1] + 0.08)
    lt = s.px(0.13, Z)

    def P(q):
        return s.P(q[0], q[1], Z)

    for ph in (0.0, np.pi):
        ang = rng.uniform(0, 2 * np.pi) + ph
        pedal = (bb[0] + 0.16 * math.cos(ang), bb[1] + 0.16 * math.sin(ang))
        knee = ((hip[0] + pedal[0]) / 2 + d * 0.2, (hip[1] + pedal[1]) / 2 + 0.12)
        s.line(P(hip), P(knee), pants, lt, rider)
        s.line(P(knee), P(pedal), pants, lt * 0.8, rider)
    sh = (hip[0] + d * 0.3, hip[1] + 0.5 * hgt * 0.62)
    s.line(P(hip), P(sh), shirt, s.px(0.3, Z), rider)
    s.line(P(sh), P(bars), shirt, s.px(0.08, Z), rider)
    hc = P((sh[0] + d * 0.08, sh[1] + 0.17))
    s.ellipse(hc, (s.px(0.1, Z), s.px(0.11, Z)), skin, rider)
    s.ellipse(
        hc - np.array([0, s.px(0.05, Z)]),
        (s.px(0.12, Z), s.px(0.08, Z)),
        jit(rng, CLOTHES[rng.integers(len(CLOTHES))], 10),
        rider,
    )
