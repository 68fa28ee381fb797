"""Trimap error curve (docs/design.md §5, paper Fig. 7): pixel error within a band around label boundaries.

Definitions (fixed here, the paper leaves them open):

* **Boundary pixel.** A pixel ``p`` whose ground truth is not ``ignore_index`` and that has at
  least one 4-neighbour ``q`` (up/down/left/right, inside the image) whose ground truth is also
  not ``ignore_index`` and differs from ``p``'s. Both sides of a class edge are boundary
  pixels. Edges between a class and an ignored region are *not* boundaries (an unlabelled area
  is not a label boundary), and the image border is not a boundary.
* **Band of width w.** Every non-ignored pixel whose Euclidean distance (pixel centres) to the
  nearest boundary pixel is ``<= w``. Boundary pixels themselves (distance 0) are in every band.
  An image without boundary pixels contributes nothing.
* **Error at width w.** ``sum(wrong pixels in the band) / sum(pixels in the band)`` summed over
  all images of the split (not a mean of per-image errors); ``None`` if no band pixel was seen.

Implementation: one exact Euclidean distance transform per image (OpenCV
``distanceTransform(DIST_L2, DIST_MASK_PRECISE)``, SciPy's EDT as a fallback), then one
histogram of the squared distances against the squared widths: all 40 widths cost one pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..conventions import IGNORE_INDEX
from ..io import label_pairs

__all__ = ["TrimapAccumulator", "label_boundary", "boundary_distance"]

try:  # OpenCV is a declared dependency; SciPy is the fallback.
    import cv2 as _cv2
except Exception:  # pragma: no cover
    _cv2 = None


def label_boundary(target: np.ndarray, ignore_index: int | None = IGNORE_INDEX) -> np.ndarray:
    """Boolean ``H×W`` map of boundary pixels of a label image (see the module docstring)."""
    t = np.asarray(target)
    if t.ndim != 2:
        raise ValueError(f"label_boundary expects an H×W label image, got shape {t.shape}")
    valid = np.ones(t.shape, bool) if ignore_index is None else (t != ignore_index)
    b = np.zeros(t.shape, bool)
    h = (t[:, 1:] != t[:, :-1]) & valid[:, 1:] & valid[:, :-1]
    b[:, 1:] |= h
    b[:, :-1] |= h
    v = (t[1:, :] != t[:-1, :]) & valid[1:, :] & valid[:-1, :]
    b[1:, :] |= v
    b[:-1, :] |= v
    return b


def boundary_distance(boundary: np.ndarray) -> np.ndarray:
    """Exact Euclidean distance (float64) of every pixel to the nearest ``True`` pixel.

    Returns ``inf`` everywhere when there is no boundary pixel.
    """
    boundary = np.asarray(boundary, bool)
    if not boundary.any():
        return np.full(boundary.shape, np.inf)
    src = np.ascontiguousarray((~boundary).astype(np.uint8))
    if _cv2 is not None:
        return _cv2.distanceTransform(src, _cv2.DIST_L2, _cv2.DIST_MASK_PRECISE).astype(np.float64)
    from scipy.ndimage import distance_transform_edt  # pragma: no cover

    return distance_transform_edt(src)  # pragma: no cover


class TrimapAccumulator:
    """Accumulates the trimap error for several band widths over a split.

    ``update(pred, target)`` takes one image (``H×W``) or a batch (``N×H×W``) of integer class
    ids, as NumPy arrays or torch tensors. ``compute()`` returns ``{width: error}`` (``None``
    where the band was empty). ``band`` and ``wrong`` hold the per-width pixel counts (int64),
    so that several workers can be merged (``merge``) or all-reduced.
    """

    def __init__(self, widths: Iterable[float] = range(1, 41), ignore_index: int | None = IGNORE_INDEX) -> None:
        ws = sorted({(int(w) if float(w).is_integer() else float(w)) for w in widths})
        if not ws:
            raise ValueError("at least one trimap width is needed")
        if ws[0] < 0:
            raise ValueError(f"trimap widths must be >= 0, got {ws[0]}")
        self.widths = ws
        self.ignore_index = None if ignore_index is None else int(ignore_index)
        self._w2 = np.asarray(ws, dtype=np.float64) ** 2
        self.band = np.zeros(len(ws), dtype=np.int64)
        self.wrong = np.zeros(len(ws), dtype=np.int64)
        self.num_images = 0

    def reset(self) -> None:
        self.band[:] = 0
        self.wrong[:] = 0
        self.num_images = 0

    def update(self, pred: Any, target: Any) -> None:
        for pi, ti in label_pairs(pred, target):
            self._update_one(pi, ti)

    def _update_one(self, pred: np.ndarray, target: np.ndarray) -> None:
        self.num_images += 1
        boundary = label_boundary(target, self.ignore_index)
        if not boundary.any():
            return
        dist = boundary_distance(boundary)
        valid = np.ones(target.shape, bool) if self.ignore_index is None else (target != self.ignore_index)
        # Squared distances between pixel centres are integers: round away float error so that
        # "d <= w" is decided exactly (e.g. d = 3 exactly is inside the band of width 3).
        d2 = np.rint(dist[valid] ** 2)
        wrong = (pred != target)[valid]
        # index of the first width whose square is >= d2: the pixel is in that band and all wider.
        k = len(self.widths)
        idx = np.searchsorted(self._w2, d2, side="left")
        band_hist = np.bincount(idx, minlength=k + 1)[:k]
        wrong_hist = np.bincount(idx[wrong], minlength=k + 1)[:k]
        self.band += np.cumsum(band_hist)
        self.wrong += np.cumsum(wrong_hist)

    def merge(self, other: TrimapAccumulator) -> TrimapAccumulator:
        if list(other.widths) != list(self.widths):
            raise ValueError("cannot merge trimap accumulators with different widths")
        self.band += other.band
        self.wrong += other.wrong
        self.num_images += other.num_images
        return self

    def compute(self) -> dict:
        return {
            w: (float(self.wrong[i]) / float(self.band[i]) if self.band[i] > 0 else None)
            for i, w in enumerate(self.widths)
        }
