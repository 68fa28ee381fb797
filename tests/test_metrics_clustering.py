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


def _sklearn_tsne(X, perplexity, init="pca", seed=0, max_iter=250):
    from sklearn.manifold import TSNE

    t = TSNE(
        n_components=2, perplexity=perplexity, init=init, learning_rate="auto", random_state=seed, max_iter=max_iter
    )
    return t.fit_transform(np.asarray(X, np.float64))


def test_tsne_is_sklearns_with_pca_start_seed_and_auto_perplexity():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(12, 3))
    e = tsne_embedding(X, max_iter=250)  # seed 0 by default, perplexity (12 - 1) / 3
    assert e.dtype == np.float64 and np.array_equal(e, _sklearn_tsne(X, 11 / 3))
    assert np.array_equal(
        tsne_embedding(X, seed=5, perplexity=2.5, max_iter=251), _sklearn_tsne(X, 2.5, seed=5, max_iter=251)
    )
    assert np.array_equal(tsne_embedding(X, max_iter=10), e)  # at least 250 iterations
    # points as float32 are read as float64
    X32 = X.astype(np.float32)
    assert np.array_equal(tsne_embedding(X32, max_iter=250), _sklearn_tsne(X32.astype(np.float64), 11 / 3))
    # one coordinate: a random start (PCA needs two); two points: still PCA
    x1 = rng.normal(size=6)
    np.testing.assert_array_equal(tsne_embedding(x1, max_iter=250), _sklearn_tsne(x1[:, None], 5 / 3, init="random"))
    two = rng.normal(size=(2, 2))
    np.testing.assert_array_equal(tsne_embedding(two, max_iter=250), _sklearn_tsne(two, 1.0))


def test_auto_perplexity_values():
    assert [auto_perplexity(n) for n in (2, 4, 31, 90, 91, 1000)] == [1.0, 1.0, 10.0, 89 / 3, 30.0, 30.0]


def test_clustering_and_tsne_messages_in_full():
    X = np.random.default_rng(0).normal(size=(5, 2))
    cases = [
        (lambda: clustering_indices(np.zeros((2, 3, 4)), np.zeros(2)), "points must be (n, d), got shape (2, 3, 4)"),
        (lambda: clustering_indices(np.zeros((4, 3)), np.array([0, 1])), "4 points but 2 labels"),
        (
            lambda: clustering_indices(np.array([[0.0], [np.inf]]), np.array([0, 1])),
            "points contain NaN or infinite values",
        ),
        (lambda: tsne_embedding(np.zeros((2, 3, 4))), "points must be (n, d), got shape (2, 3, 4)"),
        (lambda: tsne_embedding(X[:1]), "t-SNE needs at least 2 points, got 1"),
        (lambda: tsne_embedding(np.array([[0.0], [np.nan]])), "points contain NaN or infinite values"),
        (lambda: tsne_embedding(X, perplexity=5), "perplexity must be in (0, n=5), got 5"),
        (lambda: tsne_embedding(X, perplexity=0), "perplexity must be in (0, n=5), got 0"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError) as e:
            call()
        assert str(e.value) == message
    r = clustering_indices(np.zeros((3, 2)), np.array([0, 1, 2]))
    assert r["reason"] == "need more points than labels, got 3 points for 3 labels"
    r = clustering_indices(np.zeros((3, 2)), np.array([4, 4, 4]))
    assert r["reason"] == "need at least 2 distinct labels, got 1"


def test_silhouette_subsample_is_sklearns_with_the_seed():
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(2)
    X = rng.normal(size=(40, 3)) + np.repeat(np.eye(3)[:2] * 2, 20, axis=0)
    y = np.repeat([0, 1], 20)
    full = clustering_indices(X, y)
    assert full["silhouette"] == pytest.approx(silhouette_score(X, y))
    sub = clustering_indices(X, y, silhouette_sample_size=10)  # seed 0 by default
    assert sub["silhouette"] == silhouette_score(X, y, sample_size=10, random_state=0)
    assert sub["silhouette"] != full["silhouette"]
    seeded = clustering_indices(X, y, silhouette_sample_size=10, seed=3)
    assert seeded["silhouette"] == silhouette_score(X, y, sample_size=10, random_state=3)
    # points on a line (1-D) are one coordinate each
    line = clustering_indices(X[:, 0], y)
    assert line["silhouette"] == pytest.approx(silhouette_score(X[:, :1], y)) and line["n_points"] == 40


def test_float32_points_and_column_labels_are_scored_as_float64_without_a_warning():
    import warnings

    rng = np.random.default_rng(6)
    X = rng.normal(size=(30, 3)).astype(np.float32)
    y = np.repeat([0, 1, 2], 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = clustering_indices(X, y[:, None])
    assert r == clustering_indices(X.astype(np.float64), y)


def test_tsne_runs_1000_iterations_by_default():
    X = np.random.default_rng(0).normal(size=(30, 5))  # still moving at iteration 999: not stopped early
    np.testing.assert_array_equal(tsne_embedding(X), _sklearn_tsne(X, 29 / 3, max_iter=1000))
