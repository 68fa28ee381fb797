"""Does PHGMM use its latent spaces? Measures of latent use (docs/design.md, "Posterior collapse").

* **Active units** (Burda et al. 2016): a latent unit u is active when the variance across
  images of its posterior mean, ``Var_x(E[u | x])``, exceeds a threshold (0.01). A collapsed
  posterior returns the same mean for every image: no active unit. For z the units are the K·L
  component means μ_k,l; for g the L means μ_g,l.
* **KL per dimension**: how many nats each dimension's posterior spends, averaged over images —
  for g against its prior N(0, I), for z against PostNet's posterior (matched components).
* **Swap test**: the mIoU change when each image is decoded with another image's z (π and μ_z)
  or g (μ_g), everything else unchanged. A decoder that ignores a latent loses nothing.
* **Clustering that collapse cannot win** (:func:`collapse_proof_clustering`): the paper's
  clustering labels the per-image component means by their component index, and K constant
  vectors cluster perfectly. Here the indices are computed over active units only, and a second
  variant labels each image's code by the image's dominant class.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..io import to_numpy

__all__ = ["active_units", "swap_partner", "dominant_class", "collapse_proof_clustering", "latent_summary"]


def active_units(means: Any, threshold: float = 0.01) -> dict[str, Any]:
    """Active units of posterior means ``means`` (n_images × units, any trailing shape flattened).

    Returns ``{"active": count, "units": total, "fraction", "variance": per-unit variances (list),
    "mask": boolean NumPy array}``. The variance is the population variance over images.
    """
    m = to_numpy(means, np.float64)
    if m.ndim < 2 or m.shape[0] < 2:
        raise ValueError(f"need at least 2 images of posterior means (n × units), got shape {m.shape}")
    m = m.reshape(m.shape[0], -1)
    var = m.var(axis=0)
    mask = var > threshold
    return {"active": int(mask.sum()), "units": int(mask.size), "fraction": float(mask.mean()),
            "variance": var, "mask": mask}


def swap_partner(current: Any, carry: Any | None = None):
    """Another image's codes for every image of a batch: the previous image in the stream.

    ``current`` is the batch's codes (N × …), ``carry`` the last image's codes of the previous
    batch (1 × …) or None for the first batch, where the batch is rolled by one instead. Works for
    torch tensors and NumPy arrays; a first batch of one image keeps its own codes.
    """
    import torch

    if carry is None:
        return torch.roll(current, 1, 0) if isinstance(current, torch.Tensor) else np.roll(current, 1, 0)
    if isinstance(current, torch.Tensor):
        return torch.cat([carry, current[:-1]])
    return np.concatenate([carry, current[:-1]])


def dominant_class(labels: Any, num_classes: int, ignore_index: int = 255,
                   exclude: tuple[int, ...] = (0,)) -> np.ndarray:
    """The most frequent scored class of each label map (N×H×W → N), background excluded;
    -1 for an image without any such pixel."""
    y = to_numpy(labels).reshape(len(labels), -1)
    out = np.full(len(y), -1, dtype=np.int64)
    for i, row in enumerate(y):
        row = row[(row != ignore_index) & (row < num_classes)]
        counts = np.bincount(row.astype(np.int64), minlength=num_classes)
        counts[list(exclude)] = 0
        if counts.sum() > 0:
            out[i] = int(counts.argmax())
    return out


def _indices_or_none(points: np.ndarray, labels: np.ndarray, reason_if_empty: str) -> dict[str, Any]:
    from .clustering import clustering_indices

    if points.shape[1] == 0 or np.allclose(points, points[:1]):
        # All points coincide: no cluster structure at all. scikit-learn would give
        # Davies–Bouldin 0 ("perfect") here, so the score is set by definition.
        return {"silhouette": 0.0, "calinski_harabasz": 0.0, "davies_bouldin": None,
                "n_points": int(points.shape[0]), "n_labels": int(np.unique(labels).size),
                "reason": reason_if_empty}
    return clustering_indices(points, labels)


def collapse_proof_clustering(mu_z: Any, pi: Any, dominant: Any, threshold: float = 0.01) -> dict[str, Any]:
    """Two clustering scores of z that a collapsed posterior cannot win.

    Args:
        mu_z: component means, n_images × K × L.
        pi: mixture weights, n_images × K.
        dominant: each image's dominant class (:func:`dominant_class`); -1 images are left out.
        threshold: the active-unit threshold.

    Returns:
        ``{"active": indices of the paper's points (μ_k labelled by k) over active units only,
        "by_class": indices of each image's code (π_k·μ_k over active units) labelled by its
        dominant class}``. Without an active unit every point coincides: silhouette 0,
        Calinski–Harabasz 0, Davies–Bouldin None (undefined), with the reason.
    """
    mu = to_numpy(mu_z, np.float64)
    w = to_numpy(pi, np.float64)
    n, k, l = mu.shape
    mask = active_units(mu, threshold)["mask"].reshape(k, l)
    # the paper's points, restricted to the units that are active in any component
    keep = mask.any(axis=0)
    pts = mu[:, :, keep].reshape(n * k, int(keep.sum()))
    labs = np.tile(np.arange(k), n)
    out = {"active": _indices_or_none(pts, labs, "no active unit: every point coincides")}
    codes = (w[:, :, None] * mu)[:, mask]
    dom = np.asarray(dominant).reshape(-1)
    sel = dom >= 0
    out["by_class"] = _indices_or_none(codes[sel], dom[sel], "no active unit: every image's code coincides")
    return out


def latent_summary(mu_z: Any | None, pi: Any | None, mu_g: Any | None, logvar_g: Any | None,
                   threshold: float = 0.01) -> dict[str, Any]:
    """Active units of z and g and g's KL to N(0, I) per dimension, from per-image parameters."""
    out: dict[str, Any] = {"active_threshold": threshold}
    if mu_z is not None:
        au = active_units(mu_z, threshold)
        out.update(z_active_units=au["active"], z_units=au["units"], z_active_fraction=au["fraction"],
                   z_mean_variance=float(au["variance"].mean()))
        if pi is not None:
            out["pi_mean_variance"] = float(to_numpy(pi, np.float64).var(axis=0).mean())
    if mu_g is not None:
        au = active_units(mu_g, threshold)
        out.update(g_active_units=au["active"], g_units=au["units"], g_active_fraction=au["fraction"],
                   g_mean_variance=float(au["variance"].mean()))
        if logvar_g is not None:
            mu = to_numpy(mu_g, np.float64)
            lv = to_numpy(logvar_g, np.float64)
            kl = 0.5 * (mu ** 2 + np.exp(lv) - 1.0 - lv)          # closed form per image and dim
            per_dim = kl.mean(axis=0)
            out.update(g_kl=float(kl.sum(axis=1).mean()), g_kl_per_dim=per_dim.tolist(),
                       g_kl_dims_above_0_01=int((per_dim > 0.01).sum()))
    return out
