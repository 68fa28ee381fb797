"""Boundary IoU (Cheng, Girshick, Dollár, Berg, Kirillov, CVPR 2021), per class over a split.

For a binary mask ``M`` of an ``H×W`` image, the boundary region ``M_d ∩ M`` is the set of
pixels of ``M`` within distance ``d`` of its contour, with ``d = max(1, round(ratio × diag))``
and ``diag = sqrt(H² + W²)``. We follow the authors' reference ``mask_to_boundary`` exactly:
the mask is padded with one ring of zeros and eroded ``d`` times with a 3×3 square, and the
boundary is ``M`` minus that erosion. Equivalently: a pixel of ``M`` is a boundary pixel iff
some pixel within Chebyshev (chessboard) distance ``d`` is not in ``M`` or lies outside the
image (so pixels within ``d`` of the image border count as boundary too).

Per class ``c`` with ``G = (gt == c)`` and ``P = (pred == c)`` we sum over the images
``|(G_d∩G) ∩ (P_d∩P)|`` and ``|(G_d∩G) ∪ (P_d∩P)|``, restricted to pixels whose ground truth is
not ``ignore_index`` (ignored pixels are "not c" when the boundaries are computed and are then
left out of both counts), and report their ratio. A class whose union is empty over the split
has an undefined (``None``) boundary IoU and is left out of the mean, as is background
(``exclude_from_mean=(0,)``), matching the mIoU convention.

All classes of an image are handled at once: with a min and a max filter of the label image
over the ``(2d+1)²`` square, pixel ``p`` (label ``c``) is on the boundary of mask ``c`` iff the
window is not uniformly ``c`` or reaches outside the image.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..conventions import IGNORE_INDEX
from ..io import label_pairs

__all__ = ["BoundaryIoUAccumulator", "boundary_dilation", "label_boundary_region"]

try:
    import cv2 as _cv2
except Exception:  # pragma: no cover
    _cv2 = None


def boundary_dilation(height: int, width: int, dilation_ratio: float = 0.02) -> int:
    """The boundary width ``d`` in pixels: ``max(1, round(ratio * sqrt(H² + W²)))``."""
    d = int(round(dilation_ratio * math.sqrt(height * height + width * width)))
    return max(1, d)


def _min_max_filter(label: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    size = 2 * d + 1
    if _cv2 is not None and label.dtype in (np.uint8, np.uint16, np.int16, np.float32):
        kernel = np.ones((size, size), np.uint8)
        lo = _cv2.erode(label, kernel, borderType=_cv2.BORDER_REPLICATE)
        hi = _cv2.dilate(label, kernel, borderType=_cv2.BORDER_REPLICATE)
        return lo, hi
    from scipy.ndimage import maximum_filter, minimum_filter

    return (minimum_filter(label, size=size, mode="nearest"), maximum_filter(label, size=size, mode="nearest"))


def label_boundary_region(label: np.ndarray, d: int) -> np.ndarray:
    """Boolean map: pixel ``p`` lies in the boundary region of the mask ``label == label[p]``."""
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"expected an H×W label image, got shape {label.shape}")
    H, W = label.shape
    lab = label
    if lab.dtype not in (np.uint8, np.uint16, np.int16):
        lo_v, hi_v = (int(lab.min()), int(lab.max())) if lab.size else (0, 0)
        if lo_v >= 0 and hi_v < 65536:
            lab = lab.astype(np.uint16 if hi_v > 255 else np.uint8)
    lo, hi = _min_max_filter(np.ascontiguousarray(lab), d)
    region = (lo != lab) | (hi != lab)
    # The reference pads the mask with one ring of zeros: pixels within d of the border erode.
    region[:d, :] = True
    region[max(H - d, 0) :, :] = True
    region[:, :d] = True
    region[:, max(W - d, 0) :] = True
    return region


class BoundaryIoUAccumulator:
    """Per-class Boundary IoU summed over a split (see the module docstring for definitions).

    ``update(pred, target)`` takes ``H×W`` or ``N×H×W`` integer arrays (NumPy or torch).
    ``dilation`` (pixels) overrides ``dilation_ratio`` when given.
    ``intersection`` and ``union`` are int64 per-class counts (mergeable / all-reducible).
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int | None = IGNORE_INDEX,
        dilation_ratio: float = 0.02,
        dilation: int | None = None,
    ) -> None:
        self.num_classes = int(num_classes)
        self.ignore_index = None if ignore_index is None else int(ignore_index)
        self.dilation_ratio = float(dilation_ratio)
        self.dilation = None if dilation is None else max(1, int(dilation))
        self.intersection = np.zeros(self.num_classes, np.int64)
        self.union = np.zeros(self.num_classes, np.int64)
        self.num_images = 0

    def reset(self) -> None:
        self.intersection[:] = 0
        self.union[:] = 0
        self.num_images = 0

    def update(self, pred: Any, target: Any) -> None:
        for pi, ti in label_pairs(pred, target):
            self._update_one(pi, ti)

    def _update_one(self, pred: np.ndarray, target: np.ndarray) -> None:
        C = self.num_classes
        H, W = target.shape
        d = self.dilation if self.dilation is not None else boundary_dilation(H, W, self.dilation_ratio)
        valid = np.ones(target.shape, bool) if self.ignore_index is None else (target != self.ignore_index)
        t_ok = valid & (target >= 0) & (target < C)
        if not np.array_equal(t_ok, valid):
            bad = target[valid & ~t_ok][0]
            raise ValueError(f"target contains class id {int(bad)} outside [0, {C}) that is not the ignore index")
        p_bad = valid & ((pred < 0) | (pred >= C))
        if p_bad.any():
            raise ValueError(f"prediction contains class id {int(pred[p_bad][0])} outside [0, {C})")
        self.num_images += 1
        gb = label_boundary_region(target, d) & valid  # (G_d ∩ G) for G = (gt == gt[p])
        pb = label_boundary_region(pred, d) & valid  # (P_d ∩ P) for P = (pred == pred[p])
        t64 = target.astype(np.int64, copy=False)
        p64 = pred.astype(np.int64, copy=False)
        a = np.bincount(t64[gb], minlength=C)[:C]
        b = np.bincount(p64[pb], minlength=C)[:C]
        both = gb & pb & (t64 == p64)
        inter = np.bincount(t64[both], minlength=C)[:C]
        self.intersection += inter
        self.union += a + b - inter

    def merge(self, other: BoundaryIoUAccumulator) -> BoundaryIoUAccumulator:
        if other.num_classes != self.num_classes:
            raise ValueError("cannot merge boundary IoU accumulators with different class counts")
        self.intersection += other.intersection
        self.union += other.union
        self.num_images += other.num_images
        return self

    def compute(self, class_names: Sequence[str] | None = None, exclude_from_mean: Iterable[int] = (0,)) -> dict:
        C = self.num_classes
        if class_names is None:
            class_names = [f"class_{i}" for i in range(C)]
        if len(class_names) != C:
            raise ValueError(f"{len(class_names)} class names for {C} classes")
        excluded = {int(i) for i in exclude_from_mean}
        per = {
            str(n): (float(self.intersection[i]) / float(self.union[i]) if self.union[i] > 0 else None)
            for i, n in enumerate(class_names)
        }
        vals = [per[str(n)] for i, n in enumerate(class_names) if i not in excluded and per[str(n)] is not None]
        return {"boundary_iou": per, "mean_boundary_iou": float(np.mean(vals)) if vals else math.nan}
