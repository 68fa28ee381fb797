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

Modules, in drawing order:

- ``labels``: the fine classes and their PHGMM / Cityscapes / SYNTHIA ids
- ``colors``: colour palettes and random colour variation
- ``scene``: the camera (projection) and the image + label canvases
- ``backdrop``: sky, skyline, ground (road, sidewalks, shadows, lane markings)
- ``street``: buildings, fences, hedges, trees, lamps, signs, clutter, the ego vehicle
- ``road_users``: cars, pedestrians, cyclists
- ``layout``: lighting, street widths, where objects stand, drawing them far to near
- ``finish``: texture, lighting, blur and sensor noise
- ``render``: one scene end to end (``render_scene``, ``render_scene_fine``, ``save_example``)
- ``writer``: a whole data set on disk (``generate_dataset``)
"""

# F (fine id by name) stays importable here, as it was from the single module
from .labels import FINE_CLASSES, F  # noqa: F401
from .render import render_scene, render_scene_fine, save_example
from .writer import generate_dataset

__all__ = ["render_scene", "render_scene_fine", "generate_dataset", "save_example", "FINE_CLASSES"]
