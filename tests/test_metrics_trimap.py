import numpy as np
import pytest
import torch
from scipy.ndimage import distance_transform_edt, zoom

from phgmm.metrics import TrimapAccumulator

IGN = 255


def _reference_trimap(preds, targets, widths):
    """Independent implementation: explicit 4-neighbour loop + SciPy's exact EDT per image."""
    band = np.zeros(len(widths))
    wrong = np.zeros(len(widths))
    for pred, t in zip(preds, targets, strict=True):
        H, W = t.shape
        boundary = np.zeros((H, W), bool)
        for y in range(H):
            for x in range(W):
                if t[y, x] == IGN:
                    continue
                for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                    yy, xx = y + dy, x + dx
                    if 0 <= yy < H and 0 <= xx < W and t[yy, xx] != IGN and t[yy, xx] != t[y, x]:
                        boundary[y, x] = True
        if not boundary.any():
            continue
        dist = distance_transform_edt(~boundary)
        valid = t != IGN
        for i, w in enumerate(widths):
            in_band = valid & (dist <= w + 1e-9)
            band[i] += in_band.sum()
            wrong[i] += (in_band & (pred != t)).sum()
    return {w: (wrong[i] / band[i] if band[i] else None) for i, w in enumerate(widths)}


def _blobby_labels(rng, shape, classes=4):
    small = rng.integers(0, classes, size=(shape[0] // 6 + 1, shape[1] // 6 + 1))
    big = zoom(small, 6, order=0)[: shape[0], : shape[1]]
    return big.astype(np.int64)


def test_trimap_matches_scipy_edt_reference():
    rng = np.random.default_rng(0)
    targets, preds = [], []
    for _ in range(3):
        t = _blobby_labels(rng, (30, 41))
        t[rng.random(t.shape) < 0.05] = IGN
        t[:4, :7] = IGN
        p = np.where(rng.random(t.shape) < 0.8, np.where(t == IGN, 0, t), rng.integers(0, 4, t.shape))
        # erode predictions near some edges to make errors concentrate around boundaries
        p[:, 1:] = np.where(rng.random((30, 40)) < 0.3, p[:, :-1], p[:, 1:])
        targets.append(t)
        preds.append(p)
    widths = list(range(0, 41))
    acc = TrimapAccumulator(widths=widths)
    acc.update(np.stack(preds[:2]), torch.from_numpy(np.stack(targets[:2])))  # a batch ...
    acc.update(preds[2], targets[2])  # ... and a single image
    got = acc.compute()
    ref = _reference_trimap(preds, targets, widths)
    assert list(got) == widths
    for w in widths:
        assert got[w] == pytest.approx(ref[w], abs=1e-12), w
    # Errors are larger close to the boundaries than far away in this construction
    assert got[1] > got[40]


def test_trimap_hand_checked_1d():
    target = np.array([[0, 0, 0, 1, 1, 1]])
    pred = np.array([[0, 0, 0, 0, 1, 1]])  # one wrong pixel, right at the boundary
    acc = TrimapAccumulator(widths=[0, 1, 2, 3])
    acc.update(pred, target)
    # boundary pixels: columns 2 and 3; w=0 → {2,3}; w=1 → {1..4}; w>=2 → all 6
    assert acc.band.tolist() == [2, 4, 6, 6]
    assert acc.compute() == {0: 0.5, 1: 0.25, 2: 1 / 6, 3: 1 / 6}


def test_trimap_hand_checked_2d_euclidean_band():
    target = np.zeros((7, 7), int)
    target[3, 3] = 1
    pred = np.zeros((7, 7), int)
    acc = TrimapAccumulator(widths=[1, 2])
    acc.update(pred, target)
    # boundary = centre + its 4 neighbours (5 px). Within distance 1: those 5, the 4 diagonal
    # neighbours of the centre and the 4 pixels two steps away along the axes → 13 pixels.
    assert acc.band.tolist()[0] == 13
    assert acc.compute()[1] == pytest.approx(1 / 13)
    # distance <= 2: count by brute force over the 5 boundary pixels (offsets from the centre).
    expected = 0
    bpts = [(3, 3), (2, 3), (4, 3), (3, 2), (3, 4)]
    for y in range(7):
        for x in range(7):
            if min((y - by) ** 2 + (x - bx) ** 2 for by, bx in bpts) <= 4:
                expected += 1
    assert acc.band.tolist()[1] == expected


def test_ignore_edges_are_not_boundaries_and_ignored_pixels_not_counted():
    target = np.array([[0, 0, IGN, 1, 1, 1]])
    pred = np.array([[1, 1, 1, 0, 0, 0]])
    acc = TrimapAccumulator(widths=[1, 5])
    acc.update(pred, target)
    assert acc.compute() == {1: None, 5: None}  # no class-class edge anywhere
    target2 = np.array([[0, 1, IGN, 1]])
    acc.update(np.array([[0, 0, 0, 1]]), target2)
    # boundary {0,1}; band w=1 → {0,1} plus column 2 (ignored, not counted); w=5 adds column 3
    assert acc.band.tolist() == [2, 3]
    assert acc.compute() == {1: 0.5, 5: pytest.approx(1 / 3)}


def test_default_widths_and_merge():
    acc = TrimapAccumulator()
    assert acc.widths == list(range(1, 41))
    t = np.zeros((10, 12), int)
    t[:, 6:] = 2
    a, b = TrimapAccumulator(), TrimapAccumulator()
    a.update(t, t)
    b.update(np.zeros_like(t), t)
    a.merge(b)
    assert a.num_images == 2
    assert a.compute()[1] == pytest.approx(0.25)  # w=1 band: columns 4..7 in both images; b is wrong on 6, 7
    with pytest.raises(ValueError):
        a.update(np.zeros((3, 3)), np.zeros((3, 4)))


def test_boundary_and_distance_helpers():
    from phgmm.metrics import label_boundary
    from phgmm.metrics.trimap import boundary_distance

    t = np.array([[1, 1, IGN, 2], [1, 3, 3, 2]])
    # default ignore index 255: an edge to an ignored pixel is no boundary
    assert label_boundary(t).astype(int).tolist() == [[0, 1, 0, 0], [1, 1, 1, 1]]
    # without an ignore index, 255 is a label like any other
    assert label_boundary(t, None).astype(int).tolist() == [[0, 1, 1, 1], [1, 1, 1, 1]]
    assert label_boundary(np.array([[4, 4], [4, 4]])).tolist() == [[False, False], [False, False]]
    with pytest.raises(ValueError) as e:
        label_boundary(np.zeros(3))
    assert str(e.value) == "label_boundary expects an H×W label image, got shape (3,)"
    b = np.zeros((3, 4), int)  # 0/1 integers mark the boundary as well as booleans do
    b[1, 1] = 1
    dist = boundary_distance(b)
    assert dist.dtype == np.float64
    np.testing.assert_allclose(dist, distance_transform_edt(b == 0))
    none = boundary_distance(np.zeros((2, 3), bool))
    assert none.shape == (2, 3) and none.dtype == np.float64 and np.isinf(none).all()


def test_accumulator_widths_ignore_index_counts_and_messages():
    target = np.zeros((9, 9), int)
    target[4, 4] = 1  # boundary: the centre and its 4 neighbours
    pred = np.zeros((9, 9), int)
    acc = TrimapAccumulator(widths=[1.5, 2, 1.0])  # fractional widths stay fractional, whole ones int
    assert acc.widths == [1, 1.5, 2] and all(type(w) is int for w in (acc.widths[0], acc.widths[2]))
    acc.update(pred, target)
    # within 1.5 of the plus-shaped boundary: the 3×3 square and the 4 tips one step out (13),
    # plus the 8 pixels at distance sqrt(2) from a tip (the knight's moves from the centre)
    assert acc.band.tolist() == [13, 21, 25] and acc.band.dtype == np.int64 and acc.wrong.dtype == np.int64
    assert acc.compute() == {1: 1 / 13, 1.5: 1 / 21, 2: 1 / 25}
    # a custom ignore index, and none at all
    t = np.array([[0, 0, 7, 1, 1, 1]])
    p = np.array([[1, 1, 1, 1, 0, 0]])
    seven = TrimapAccumulator([1], ignore_index=7)
    seven.update(p, t)
    assert seven.compute() == {1: None}  # 7 is ignored: no class-class edge
    free = TrimapAccumulator([1], ignore_index=None)
    free.update(p, t)
    assert free.band.tolist() == [5] and free.ignore_index is None  # 7 is a class: two edges
    assert free.compute() == {1: 4 / 5}
    # every image counts, with or without a boundary; reset clears every count
    batch = TrimapAccumulator([1, 2])
    batch.update(np.zeros((3, 4, 4), int), np.zeros((3, 4, 4), int))
    assert batch.num_images == 3 and batch.band.tolist() == [0, 0]
    batch.update(pred, target)
    assert batch.num_images == 4
    batch.reset()
    assert batch.num_images == 0 and batch.band.tolist() == [0, 0] and batch.wrong.tolist() == [0, 0]
    cases = [
        (lambda: TrimapAccumulator([]), "at least one trimap width is needed"),
        (lambda: TrimapAccumulator([-1, 3]), "trimap widths must be >= 0, got -1"),
        (
            lambda: TrimapAccumulator([1, 2]).merge(TrimapAccumulator([1, 3])),
            "cannot merge trimap accumulators with different widths",
        ),
    ]
    for call, message in cases:
        with pytest.raises(ValueError) as e:
            call()
        assert str(e.value) == message
