"""Rendering one scene: its layers in drawing order, then the photographic finish."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .backdrop import draw_ground, draw_sky, draw_skyline
from .finish import finish
from .labels import TO_COARSE
from .layout import draw_along_facades, draw_far_to_near, lighting, place_objects, street_plan
from .scene import Scene
from .street import draw_buildings, draw_ego

__all__ = ["render_scene_fine", "render_scene", "save_example"]


def render_scene_fine(rng: np.random.Generator, size=(768, 384)) -> tuple[np.ndarray, np.ndarray]:
    """Render one scene: RGB uint8 HxWx3 and a *fine* label (indices into ``FINE_CLASSES``)."""
    # the order of the steps is the order of the draws from ``rng``: changing it changes every scene
    W, H = int(size[0]), int(size[1])
    s = Scene(rng, W, H)
    light = lighting(rng)
    st = street_plan(rng)
    draw_sky(s, light)
    draw_skyline(s, st["zfar"])
    draw_ground(s, st, light)
    draw_buildings(s, st, light, -1)
    draw_buildings(s, st, light, 1)
    draw_along_facades(s, st)
    draw_far_to_near(s, place_objects(s, st))
    if rng.random() < 0.3:
        draw_ego(s)
    return finish(s, light), s.lab


def render_scene(rng: np.random.Generator, size=(768, 384)) -> tuple[np.ndarray, np.ndarray]:
    """Render one street scene: ``(rgb uint8 HxWx3, label uint8 HxW)`` in the 12 PHGMM classes."""
    rgb, fine = render_scene_fine(rng, size)
    return rgb, TO_COARSE[fine]


def save_example(path, seed: int = 6, size=(768, 384)) -> Path:
    """Save a scene above its colour label as a compact PNG (the picture in ``docs/data.md``).

    The photo half is palette-quantised to 240 colours (to stay small); the label half keeps the
    exact class colours.
    """
    from PIL import Image

    from ..classes import PHGMM_COLORS

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
