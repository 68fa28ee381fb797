"""Confusion matrix accumulated over a whole split, and the scores read off it.

Convention (docs/design.md §1, §5; AdapNet++'s reduction): rows are ground truth, columns are
predictions; pixels whose ground truth is ``ignore_index`` (255) are skipped; background
(class 0) is scored like every other class — a car predicted on a background pixel is a false
positive for car — but it is left out of the mean IoU (``exclude_from_mean=(0,)``).
Every score comes from the ONE matrix summed over all images, never from per-image averages.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from ..conventions import IGNORE_INDEX

__all__ = ["ConfusionMatrix", "compute_scores", "as_long_tensor"]


def as_long_tensor(x: Any, device: torch.device | str | None = None) -> torch.Tensor:
    """Convert a NumPy array / torch tensor / nested list of integer class ids to int64 torch."""
    if isinstance(x, torch.Tensor):
        t = x
    else:
        arr = np.asarray(x)
        if arr.dtype == np.uint16 or arr.dtype == np.uint32 or arr.dtype == np.uint64:
            arr = arr.astype(np.int64)
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.is_floating_point() or t.is_complex():
        if t.numel() and not torch.equal(t, torch.round(t)):
            raise ValueError("class ids must be integers, got non-integer floating-point values")
    if t.dtype == torch.bool:
        t = t.to(torch.uint8)
    return t.to(device=device, dtype=torch.int64) if device is not None else t.to(torch.int64)


class ConfusionMatrix:
    """A ``C×C`` int64 confusion matrix (rows = ground truth, columns = prediction).

    ``update(pred, target)`` takes integer class-id arrays of the same shape (``N×H×W``, ``H×W``,
    anything), as torch tensors or NumPy arrays. Pixels whose target equals ``ignore_index`` are
    skipped. A target value outside ``[0, C)`` that is not ``ignore_index`` raises ``ValueError``
    naming the value; so does a prediction outside ``[0, C)`` on a scored pixel.

    ``.matrix`` is a torch ``int64`` tensor on ``device`` so that a distributed trainer can
    ``torch.distributed.all_reduce`` it in place.
    """

    def __init__(
        self, num_classes: int, ignore_index: int | None = IGNORE_INDEX, device: torch.device | str | None = None
    ) -> None:
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = None if ignore_index is None else int(ignore_index)
        if self.ignore_index is not None and 0 <= self.ignore_index < self.num_classes:
            raise ValueError(f"ignore_index {ignore_index} collides with a class id in [0, {num_classes})")
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.matrix = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64, device=self.device)

    def reset(self) -> None:
        self.matrix.zero_()

    @torch.no_grad()
    def update(self, pred: Any, target: Any) -> None:
        pred_t = as_long_tensor(pred, self.device).reshape(-1)
        target_t = as_long_tensor(target, self.device).reshape(-1)
        if pred_t.numel() != target_t.numel():
            raise ValueError(
                f"pred and target differ in size: {tuple(getattr(pred, 'shape', ()))} vs "
                f"{tuple(getattr(target, 'shape', ()))}"
            )
        if tuple(getattr(pred, "shape", ())) != tuple(getattr(target, "shape", ())):
            raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
        C = self.num_classes
        if self.ignore_index is not None:
            keep = target_t != self.ignore_index
            if not bool(keep.all()):
                pred_t = pred_t[keep]
                target_t = target_t[keep]
        if target_t.numel() == 0:
            return
        bad_t = (target_t < 0) | (target_t >= C)
        if bool(bad_t.any()):
            value = int(target_t[bad_t][0])
            raise ValueError(
                f"target contains class id {value} outside [0, {C}) that is not the ignore index {self.ignore_index}"
            )
        bad_p = (pred_t < 0) | (pred_t >= C)
        if bool(bad_p.any()):
            value = int(pred_t[bad_p][0])
            raise ValueError(f"prediction contains class id {value} outside [0, {C})")
        counts = torch.bincount(target_t * C + pred_t, minlength=C * C)
        self.matrix += counts.reshape(C, C).to(self.matrix.device)

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add another matrix (e.g. from another worker) into this one; returns ``self``."""
        m = other.matrix if isinstance(other, ConfusionMatrix) else as_long_tensor(other)
        if tuple(m.shape) != (self.num_classes, self.num_classes):
            raise ValueError(f"cannot merge a {tuple(m.shape)} matrix into a {self.num_classes}x{self.num_classes} one")
        self.matrix += m.to(self.matrix.device, torch.int64)
        return self

    def compute(self, class_names: Sequence[str] | None = None, exclude_from_mean: Iterable[int] = (0,)) -> dict:
        return compute_scores(self.matrix, class_names, exclude_from_mean)

    def __repr__(self) -> str:
        return (
            f"ConfusionMatrix(num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
            f"total={int(self.matrix.sum())})"
        )


def _ratio(num: float, den: float) -> float | None:
    return float(num) / float(den) if den > 0 else None


def compute_scores(
    matrix: Any, class_names: Sequence[str] | None = None, exclude_from_mean: Iterable[int] = (0,)
) -> dict:
    """Scores from a ``C×C`` confusion matrix (rows = ground truth, columns = prediction).

    Returns a dict with
      - ``iou``, ``precision``, ``recall``: ``{name: float or None}``; ``None`` where the score is
        undefined (IoU: class absent from both ground truth and prediction; precision: never
        predicted; recall: absent from ground truth);
      - ``miou``: mean IoU over the classes not in ``exclude_from_mean`` whose IoU is defined
        (present in ground truth or prediction) — NaN if there are none;
      - ``mean_precision``, ``mean_recall``: the same reduction for precision and recall;
      - ``pixel_accuracy``: trace / total over all scored pixels (background included);
      - ``confusion``: the matrix as a list of lists of int; ``class_names``.
    """
    if isinstance(matrix, ConfusionMatrix):
        matrix = matrix.matrix
    if isinstance(matrix, torch.Tensor):
        m = matrix.detach().cpu().to(torch.int64).numpy()
    else:
        m = np.asarray(matrix, dtype=np.int64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {m.shape}")
    C = m.shape[0]
    if class_names is None:
        class_names = [f"class_{i}" for i in range(C)]
    class_names = [str(n) for n in class_names]
    if len(class_names) != C:
        raise ValueError(f"{len(class_names)} class names for a {C}x{C} confusion matrix")
    excluded = {int(i) for i in exclude_from_mean}

    tp = np.diag(m).astype(np.float64)
    gt = m.sum(axis=1).astype(np.float64)  # tp + fn
    pr = m.sum(axis=0).astype(np.float64)  # tp + fp
    union = gt + pr - tp

    iou = {n: _ratio(tp[i], union[i]) for i, n in enumerate(class_names)}
    precision = {n: _ratio(tp[i], pr[i]) for i, n in enumerate(class_names)}
    recall = {n: _ratio(tp[i], gt[i]) for i, n in enumerate(class_names)}

    def _mean(d: dict) -> float:
        vals = [d[n] for i, n in enumerate(class_names) if i not in excluded and d[n] is not None]
        return float(np.mean(vals)) if vals else math.nan

    total = m.sum()
    return {
        "miou": _mean(iou),
        "iou": iou,
        "precision": precision,
        "recall": recall,
        "mean_precision": _mean(precision),
        "mean_recall": _mean(recall),
        "pixel_accuracy": float(tp.sum() / total) if total > 0 else math.nan,
        "confusion": m.tolist(),
        "class_names": list(class_names),
    }
