"""Segmentation metrics (docs/design.md §5–6): confusion-matrix scores, trimap, Boundary IoU, clustering of
z, and sampling uncertainty.

``SegmentationEvaluator`` bundles the three split-level accumulators (confusion matrix, trimap,
Boundary IoU) behind one ``update(pred, target)`` / ``compute()`` so that evaluating a checkpoint
and scoring saved predictions (``phgmm evaluate --predictions``, :mod:`phgmm.engine.evaluation.score`)
produce the same ``metrics.json`` keys. Its ``state_tensor()`` /
``load_state_tensor()`` pack every count into one int64 tensor for ``dist.all_reduce``.

``metrics_json_safe`` and ``write_json`` live in :mod:`phgmm.io` and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from ..conventions import IGNORE_INDEX
from ..io import metrics_json_safe, read_json, write_json
from .boundary import BoundaryIoUAccumulator, boundary_dilation
from .confusion import ConfusionMatrix, compute_scores
from .trimap import TrimapAccumulator, label_boundary
from .uncertainty import expected_entropy, mutual_information_map, predictive_entropy, uncertainty_maps

__all__ = [
    "ConfusionMatrix",
    "compute_scores",
    "TrimapAccumulator",
    "label_boundary",
    "BoundaryIoUAccumulator",
    "boundary_dilation",
    "clustering_indices",
    "tsne_embedding",
    "predictive_entropy",
    "expected_entropy",
    "mutual_information_map",
    "uncertainty_maps",
    "metrics_json_safe",
    "write_json",
    "read_json",
    "SegmentationEvaluator",
]


def __getattr__(name: str):
    # scikit-learn is slow to import: load the clustering module only when asked for.
    if name in ("clustering_indices", "tsne_embedding"):
        from . import clustering

        return getattr(clustering, name)
    raise AttributeError(f"module 'phgmm.metrics' has no attribute {name!r}")


class SegmentationEvaluator:
    """Confusion matrix + trimap + Boundary IoU over a split, one ``update`` per batch.

    ``compute()`` returns the keys of ``metrics.json``: ``miou``, ``iou``, ``precision``,
    ``recall``, ``mean_precision``, ``mean_recall``, ``pixel_accuracy``, ``confusion``,
    ``class_names``, ``trimap`` (``{str(width): error}``), ``boundary_iou``,
    ``mean_boundary_iou``, ``num_images``. Set ``trimap_widths=None`` / ``boundary=False`` to
    skip the (CPU, per-image) trimap or Boundary IoU work.
    """

    def __init__(
        self,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        ignore_index: int = IGNORE_INDEX,
        exclude_from_mean: Iterable[int] = (0,),
        trimap_widths: Iterable[float] | None = range(1, 41),
        boundary: bool = True,
        boundary_dilation_ratio: float = 0.02,
        device: torch.device | str | None = None,
    ) -> None:
        self.num_classes = int(num_classes)
        self.class_names = (
            list(class_names) if class_names is not None else [f"class_{i}" for i in range(self.num_classes)]
        )
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {self.num_classes} classes")
        self.ignore_index = ignore_index
        self.exclude_from_mean = tuple(exclude_from_mean)
        self.confusion = ConfusionMatrix(self.num_classes, ignore_index, device=device)
        self.trimap = TrimapAccumulator(trimap_widths, ignore_index) if trimap_widths is not None else None
        self.boundary = (
            BoundaryIoUAccumulator(self.num_classes, ignore_index, boundary_dilation_ratio) if boundary else None
        )
        self.num_images = 0

    def reset(self) -> None:
        self.confusion.reset()
        if self.trimap is not None:
            self.trimap.reset()
        if self.boundary is not None:
            self.boundary.reset()
        self.num_images = 0

    def update(self, pred: Any, target: Any) -> None:
        """``pred``/``target``: ``H×W`` or ``N×H×W`` integer class ids (torch or NumPy)."""
        self.confusion.update(pred, target)
        shape = tuple(getattr(target, "shape", np.shape(target)))
        self.num_images += 1 if len(shape) == 2 else int(np.prod(shape[:-2]))
        if self.trimap is None and self.boundary is None:
            return
        p = pred.detach().cpu().numpy() if isinstance(pred, torch.Tensor) else np.asarray(pred)
        t = target.detach().cpu().numpy() if isinstance(target, torch.Tensor) else np.asarray(target)
        if t.ndim > 3:
            p, t = p.reshape((-1,) + p.shape[-2:]), t.reshape((-1,) + t.shape[-2:])
        if self.trimap is not None:
            self.trimap.update(p, t)
        if self.boundary is not None:
            self.boundary.update(p, t)

    # -- distributed helpers -------------------------------------------------------------
    def state_tensor(self) -> torch.Tensor:
        """Every count as one int64 tensor (on the confusion matrix's device) to all-reduce."""
        parts = [self.confusion.matrix.reshape(-1).cpu(), torch.tensor([self.num_images])]
        if self.trimap is not None:
            parts += [
                torch.from_numpy(self.trimap.band),
                torch.from_numpy(self.trimap.wrong),
                torch.tensor([self.trimap.num_images]),
            ]
        if self.boundary is not None:
            parts += [
                torch.from_numpy(self.boundary.intersection),
                torch.from_numpy(self.boundary.union),
                torch.tensor([self.boundary.num_images]),
            ]
        return torch.cat([p.to(torch.int64) for p in parts]).to(self.confusion.matrix.device)

    def load_state_tensor(self, state: torch.Tensor) -> None:
        """Inverse of :meth:`state_tensor` (e.g. after ``dist.all_reduce``)."""
        s = state.detach().cpu().to(torch.int64).reshape(-1)
        C = self.num_classes
        expected = C * C + 1
        if self.trimap is not None:
            expected += 2 * len(self.trimap.widths) + 1
        if self.boundary is not None:
            expected += 2 * C + 1
        if s.numel() != expected:
            raise ValueError(f"state tensor has {s.numel()} entries, expected {expected}")
        i = 0

        def take(n: int) -> torch.Tensor:
            nonlocal i
            out = s[i : i + n]
            i += n
            return out

        self.confusion.matrix.copy_(take(C * C).reshape(C, C))
        self.num_images = int(take(1))
        if self.trimap is not None:
            k = len(self.trimap.widths)
            self.trimap.band[:] = take(k).numpy()
            self.trimap.wrong[:] = take(k).numpy()
            self.trimap.num_images = int(take(1))
        if self.boundary is not None:
            self.boundary.intersection[:] = take(C).numpy()
            self.boundary.union[:] = take(C).numpy()
            self.boundary.num_images = int(take(1))

    def merge(self, other: SegmentationEvaluator) -> SegmentationEvaluator:
        self.confusion.merge(other.confusion)
        if self.trimap is not None and other.trimap is not None:
            self.trimap.merge(other.trimap)
        if self.boundary is not None and other.boundary is not None:
            self.boundary.merge(other.boundary)
        self.num_images += other.num_images
        return self

    def compute(self) -> dict:
        out = compute_scores(self.confusion.matrix, self.class_names, self.exclude_from_mean)
        if self.trimap is not None:
            out["trimap"] = {str(w): e for w, e in self.trimap.compute().items()}
        if self.boundary is not None:
            out.update(self.boundary.compute(self.class_names, self.exclude_from_mean))
        out["num_images"] = int(self.num_images)
        return out
