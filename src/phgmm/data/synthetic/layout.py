"""Where things go: the lighting, the street's widths, and which objects stand where.

Objects are placed first and drawn afterwards, far to near, so nearer ones occlude farther ones.
"""

from __future__ import annotations

import numpy as np

from .road_users import draw_car, draw_cyclist, draw_person
from .scene import Scene
from .street import draw_clutter, draw_fence, draw_hedge, draw_lamp, draw_sign, draw_tree

__all__ = ["lighting", "street_plan", "draw_along_facades", "place_objects", "draw_far_to_near"]


def lighting(rng: np.random.Generator) -> dict:
    """Sun or overcast, dusk, and how much each facade row is in shade."""
    sunny = rng.random() < 0.6
    sun_left = rng.random() < 0.5
    return {
        "sunny": sunny,
        "dusk": rng.random() < 0.15,
        "shade_l": rng.uniform(0.6, 0.8) if sunny and not sun_left else rng.uniform(0.9, 1.05),
        "shade_r": rng.uniform(0.6, 0.8) if sunny and sun_left else rng.uniform(0.9, 1.05),
    }


def street_plan(rng: np.random.Generator) -> dict:
    """Road half-widths left/right of the camera, sidewalk widths, and the far end (metres)."""
    return {
        "road_l": rng.uniform(3.5, 8.0),
        "road_r": rng.uniform(3.0, 6.5),
        "sw_l": rng.uniform(2.0, 4.5),
        "sw_r": rng.uniform(2.0, 4.5),
        "zfar": rng.uniform(90, 200),
    }


def _kerb(st, side) -> float:
    """Distance from the camera to the kerb on ``side`` (-1 left, 1 right)."""
    return st["road_r"] if side > 0 else st["road_l"]


def _sidewalk(st, side) -> float:
    return st["sw_r"] if side > 0 else st["sw_l"]


def _zmin(s: Scene, X) -> float:
    # nearest depth at which something at lateral X is still well inside the image
    return max(5.0, abs(X) * s.f / (0.42 * s.W))


def draw_along_facades(s: Scene, st):
    """One or two fences and sometimes a hedge, just in front of the facades."""
    rng = s.rng
    for _ in range(1 + (rng.random() < 0.5)):
        side = rng.choice([-1, 1])
        X = side * (_kerb(st, side) + _sidewalk(st, side) - 0.15)
        z0 = _zmin(s, X) * rng.uniform(0.6, 1.6)
        draw_fence(s, X, z0, z0 + rng.uniform(6, 25), rng.uniform(0.9, 1.8))
    if rng.random() < 0.4:
        side = rng.choice([-1, 1])
        X = side * (_kerb(st, side) + _sidewalk(st, side) - 0.4)
        z0 = rng.uniform(_zmin(s, X), 40)
        draw_hedge(s, X, z0, z0 + rng.uniform(4, 15))


def place_objects(s: Scene, st) -> list[tuple]:
    """Trees, lamps, signs, people, cyclists, clutter and cars: ``(z, kind, X, extra, side)``."""
    objs = _place_street_objects(s, st)
    objs += _place_cars(s, st)
    return objs


def _place_street_objects(s: Scene, st) -> list[tuple]:
    rng = s.rng
    objs = []

    def add(n, kind, lateral, zspan=40.0, extra=()):
        for _ in range(n):
            side = rng.choice([-1, 1])
            X = lateral(side)
            z = rng.uniform(_zmin(s, X), _zmin(s, X) + zspan)
            objs.append((z, kind, X, extra, side))

    def edge(sd):
        return _kerb(st, sd)

    def sw(sd):
        return _sidewalk(st, sd)

    add(rng.integers(1, 5), "tree", lambda sd: sd * (edge(sd) + rng.uniform(0.6, max(0.7, sw(sd) - 0.6))), 50)
    add(rng.integers(1, 4), "lamp", lambda sd: sd * (edge(sd) + rng.uniform(0.3, 0.6)), 60)
    add(rng.integers(1, 4), "sign", lambda sd: sd * (edge(sd) + rng.uniform(0.3, 0.8)), 20)
    add(
        rng.integers(1, 5),
        "person",  # mostly on the sidewalks, some crossing the road
        lambda sd: (
            sd * (edge(sd) + rng.uniform(0.4, max(0.5, sw(sd) - 0.4)))
            if rng.random() < 0.85
            else rng.uniform(-st["road_l"] + 0.5, st["road_r"] - 0.5)
        ),
        25,
    )
    add(rng.integers(1, 4), "cyclist", lambda sd: sd * (edge(sd) - rng.uniform(0.7, 1.5)), 25)
    add(rng.integers(0, 4), "clutter", lambda sd: sd * (edge(sd) + rng.uniform(0.5, max(0.6, sw(sd) - 0.5))), 40)
    return objs


def _place_cars(s: Scene, st) -> list[tuple]:
    """Cars in the driving lanes and parked along the kerbs, never two in one spot."""
    rng = s.rng
    objs = []
    n_cars = rng.integers(1, 7)
    lanes = [-st["road_l"] + 1.7 + i * 3.2 for i in range(int((st["road_l"] + st["road_r"] - 1.5) // 3.2))]
    lanes = lanes or [0.0]
    used: list[tuple[float, float]] = []
    for _ in range(n_cars):
        for _try in range(6):
            if rng.random() < 0.4:
                side = rng.choice([-1, 1])
                X = side * (_kerb(st, side) - 1.1)
            else:
                X = lanes[rng.integers(len(lanes))]
            z = rng.uniform(max(6.0, _zmin(s, X) * 0.8), 55)
            if all(abs(X - ux) > 1.5 or abs(z - uz) > 7.5 for ux, uz in used):
                used.append((X, z))
                # extra = (oncoming,): cars left of the camera mostly drive towards it
                objs.append((z, "car", X, (X < -0.5 and rng.random() < 0.7,), 0))
                break
    return objs


def draw_far_to_near(s: Scene, objs: list[tuple]) -> None:
    """Draw the placed objects from the farthest to the nearest."""
    objs.sort(key=lambda o: -o[0])
    for z, kind, X, extra, side in objs:
        if kind == "tree":
            draw_tree(s, X, z)
        elif kind == "lamp":
            draw_lamp(s, X, z, -side)  # the arm reaches over the road
        elif kind == "sign":
            draw_sign(s, X, z)
        elif kind == "person":
            draw_person(s, X, z)
        elif kind == "cyclist":
            draw_cyclist(s, X, z)
        elif kind == "clutter":
            draw_clutter(s, X, z)
        elif kind == "car":
            draw_car(s, X, z, *extra)
