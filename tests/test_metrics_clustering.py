import numpy as np
import pytest

from phgmm.metrics.clustering import auto_perplexity, clustering_indices, tsne_embedding


def _np_indices(X, y):
    """Independent NumPy implementation of the three formulas."""
    labels = np.unique(y)
    n, k = len(X), len(labels)
    D = np.sqrt(((X[:, None, :] - X[None, :, :]) ** 2).sum(-1))
    s = np.zeros(n)
    for i in range(n):
        same = y == y[i]
        if same.sum() == 1:
            s[i] = 0.0
            continue
        a = D[i, same & (np.arange(n) != i)].mean()
        b = min(D[i, y == lab].mean() for lab in labels if lab != y[i])
        s[i] = (b - a) / max(a, b)
    silhouette = s.mean()
    c = X.mean(0)
    cents = np.stack([X[y == lab].mean(0) for lab in labels])
    B = sum((y == lab).sum() * ((cents[j] - c) ** 2).sum() for j, lab in enumerate(labels))
    W = sum(((X[y == lab] - cents[j]) ** 2).sum() for j, lab in enumerate(labels))
    ch = (B / (k - 1)) / (W / (n - k))
    scat = np.array([np.sqrt(((X[y == lab] - cents[j]) ** 2).sum(1)).mean() for j, lab in enumerate(labels)])
    db = 0.0
    for i in range(k):
        db += max((scat[i] + scat[j]) / np.sqrt(((cents[i] - cents[j]) ** 2).sum()) for j in range(k) if j != i)
    return silhouette, ch, db / k


def test_indices_match_numpy_formulas():
    rng = np.random.default_rng(0)
    k, per, d = 4, 15, 8
    centres = rng.normal(0, 3, size=(k, d))
    X = np.concatenate([centres[j] + rng.normal(0, 1, size=(per, d)) for j in range(k)])
    y = np.repeat(np.arange(k), per)
    X = np.concatenate([X, rng.normal(0, 1, size=(1, d))])  # a singleton cluster too
    y = np.concatenate([y, [9]])
    r = clustering_indices(X, y)
    sil, ch, db = _np_indices(X, y)
    assert r["silhouette"] == pytest.approx(sil, rel=1e-9)
    assert r["calinski_harabasz"] == pytest.approx(ch, rel=1e-9)
    assert r["davies_bouldin"] == pytest.approx(db, rel=1e-9)
    assert r["reason"] is None and r["n_points"] == len(X) and r["n_labels"] == k + 1


def test_well_separated_clusters_score_better():
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1, 2], 20)
    tight = np.eye(3)[y] * 10 + rng.normal(0, 0.1, (60, 3))
    loose = np.eye(3)[y] * 1 + rng.normal(0, 1.0, (60, 3))
    a, b = clustering_indices(tight, y), clustering_indices(loose, y)
    assert a["silhouette"] > b["silhouette"]
    assert a["calinski_harabasz"] > b["calinski_harabasz"]
    assert a["davies_bouldin"] < b["davies_bouldin"]


def test_degenerate_inputs_give_none_with_reason():
    r = clustering_indices(np.random.rand(10, 3), np.zeros(10))
    assert r["silhouette"] is None and r["calinski_harabasz"] is None and r["davies_bouldin"] is None
    assert "2 distinct" in r["reason"]
    r = clustering_indices(np.random.rand(3, 3), np.array([0, 1, 2]))
    assert r["silhouette"] is None and "more points" in r["reason"]
    with pytest.raises(ValueError):
        clustering_indices(np.random.rand(4, 3), np.array([0, 1]))


def test_tsne_shape_determinism_and_perplexity():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 6))
    e1 = tsne_embedding(X, seed=3, max_iter=250)
    e2 = tsne_embedding(X, seed=3, max_iter=250)
    assert e1.shape == (24, 2) and np.isfinite(e1).all()
    np.testing.assert_allclose(e1, e2)
    assert tsne_embedding(X[:4], max_iter=250).shape == (4, 2)  # auto perplexity < n
    assert auto_perplexity(4) < 4 and auto_perplexity(10_000) == 30.0
    with pytest.raises(ValueError, match="perplexity"):
        tsne_embedding(X, perplexity=24)
    with pytest.raises(ValueError):
        tsne_embedding(X[:1])
