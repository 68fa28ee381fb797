"""Clustering quality of the local latent space z (docs/design.md §5, paper Fig. 9).

The points are the per-image component means μ_z^k (one L-dimensional point per image and
component), labelled by the component index k. ``clustering_indices`` reports scikit-learn's
silhouette coefficient (higher is better, in [-1, 1]), Calinski–Harabasz index (higher is
better) and Davies–Bouldin index (lower is better). ``tsne_embedding`` gives the 2-D picture.
scikit-learn is imported lazily (it is slow to import).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..io import to_numpy

__all__ = ["clustering_indices", "tsne_embedding", "auto_perplexity"]


def clustering_indices(points: Any, labels: Any, silhouette_sample_size: int | None = None, seed: int = 0) -> dict:
    """Silhouette, Calinski–Harabasz and Davies–Bouldin indices of ``points`` (n, d) by ``labels`` (n,).

    Returns ``{"silhouette", "calinski_harabasz", "davies_bouldin", "n_points", "n_labels",
    "reason"}``. The three indices are ``None`` (and ``reason`` says why) when there are fewer
    than 2 distinct labels or when ``n <= number of labels`` (the silhouette is undefined
    there); otherwise ``reason`` is ``None``. ``silhouette_sample_size`` subsamples the O(n²)
    silhouette computation for very large point sets.
    """
    X = to_numpy(points, np.float64)
    y = to_numpy(labels).reshape(-1)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ValueError(f"points must be (n, d), got shape {X.shape}")
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"{X.shape[0]} points but {y.shape[0]} labels")
    if not np.isfinite(X).all():
        raise ValueError("points contain NaN or infinite values")
    n = int(X.shape[0])
    k = int(np.unique(y).size)
    out: dict = {
        "silhouette": None,
        "calinski_harabasz": None,
        "davies_bouldin": None,
        "n_points": n,
        "n_labels": k,
        "reason": None,
    }
    if k < 2:
        out["reason"] = f"need at least 2 distinct labels, got {k}"
        return out
    if n <= k:
        out["reason"] = f"need more points than labels, got {n} points for {k} labels"
        return out
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

    sample = silhouette_sample_size if silhouette_sample_size and silhouette_sample_size < n else None
    out["silhouette"] = float(silhouette_score(X, y, sample_size=sample, random_state=seed))
    out["calinski_harabasz"] = float(calinski_harabasz_score(X, y))
    out["davies_bouldin"] = float(davies_bouldin_score(X, y))
    return out


def auto_perplexity(n: int) -> float:
    """A perplexity valid for ``n`` points: ``min(30, max(1, (n - 1) / 3))`` (always ``< n`` for n >= 2)."""
    return float(min(30.0, max(1.0, (n - 1) / 3.0)))


def tsne_embedding(points: Any, seed: int = 0, perplexity: float | None = None, max_iter: int = 1000) -> np.ndarray:
    """2-D t-SNE of ``points`` (n, d) → float array (n, 2), deterministic for a given ``seed``.

    ``perplexity=None`` picks :func:`auto_perplexity`; an explicit value must be ``< n``.
    Needs at least 2 points.
    """
    X = to_numpy(points, np.float64)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ValueError(f"points must be (n, d), got shape {X.shape}")
    n = int(X.shape[0])
    if n < 2:
        raise ValueError(f"t-SNE needs at least 2 points, got {n}")
    if not np.isfinite(X).all():
        raise ValueError("points contain NaN or infinite values")
    if perplexity is None:
        perplexity = auto_perplexity(n)
    if not (0 < perplexity < n):
        raise ValueError(f"perplexity must be in (0, n={n}), got {perplexity}")
    from sklearn.manifold import TSNE

    init = "pca" if X.shape[1] >= 2 and n >= 2 else "random"
    tsne = TSNE(
        n_components=2,
        perplexity=float(perplexity),
        init=init,
        learning_rate="auto",
        random_state=seed,
        max_iter=max(250, int(max_iter)),
    )
    return np.asarray(tsne.fit_transform(X), dtype=np.float64)
