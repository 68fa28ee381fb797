"""What an evaluation returns (:class:`EvalResult`), and its numbers flattened for a training
history and TensorBoard (:func:`flat_scalars`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["EvalResult", "flat_scalars"]


@dataclass
class EvalResult:
    metrics: dict[str, Any]
    samples: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    z_points: np.ndarray | None = None  # (images·K)×L component means
    z_labels: np.ndarray | None = None  # component index k of each point


def flat_scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """The scalar numbers of a metrics dict, nested ones under dotted-underscore names
    (``miou``, ``clustering_silhouette``, ``swap_z_random_miou_drop``, ``mi_z`` …): what a training
    history and TensorBoard record at each validation."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            out[key] = float(value)
        elif isinstance(value, dict) and key in ("clustering", "latent", "clustering_active", "clustering_by_class"):
            prefix = "" if key == "latent" else f"{key}_"
            for k, v in flat_scalars(value).items():
                out[f"{prefix}{k}"] = v
    return out
