"""The generator's fine classes and how each maps to PHGMM, Cityscapes and SYNTHIA ids."""

from __future__ import annotations

import numpy as np

__all__ = ["FINE_CLASSES", "F", "TO_COARSE", "TO_CITYSCAPES", "TO_SYNTHIA"]

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
# fine id by name, spaces as underscores: F["traffic_light"] == 18
F = {name.replace(" ", "_"): i for i, (name, *_rest) in enumerate(FINE_CLASSES)}

# lookup tables indexed by fine id (256 entries, so a uint8 label map indexes them directly)
TO_COARSE = np.array([c[1] for c in FINE_CLASSES] + [255] * (256 - len(FINE_CLASSES)), np.uint8)
TO_CITYSCAPES = np.array([c[2] for c in FINE_CLASSES] + [0] * (256 - len(FINE_CLASSES)), np.uint8)
TO_SYNTHIA = np.array([c[3] for c in FINE_CLASSES] + [0] * (256 - len(FINE_CLASSES)), np.uint16)
