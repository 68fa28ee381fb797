import math

import numpy as np
import pytest
import torch
from scipy.ndimage import zoom

from phgmm.metrics import BoundaryIoUAccumulator, boundary_dilation
from phgmm.metrics.boundary import label_boundary_region

IGN = 255


def _brute_boundary(mask, d):
    """Reference ``mask_to_boundary`` of Cheng et al. by hand: pad one ring of zeros, a pixel of the
    mask is a boundary pixel iff a zero lies within Chebyshev distance d inside the padded array."""
    H, W = mask.shape
    padded = np.zeros((H + 2, W + 2), bool)
    padded[1:-1, 1:-1] = mask
    out = np.zeros((H, W), bool)
    for y in range(H):
        for x in range(W):
            if not mask[y, x]:
                continue
            py, px = y + 1, x + 1
            win = padded[max(0, py - d) : py + d + 1, max(0, px - d) : px + d + 1]
            out[y, x] = not win.all()
    return out


def _brute_boundary_iou(preds, targets, C, ratio):
    inter = np.zeros(C)
    union = np.zeros(C)
    for p, t in zip(preds, targets, strict=True):
        H, W = t.shape
        d = max(1, int(round(ratio * math.sqrt(H * H + W * W))))
        valid = t != IGN
        for c in range(C):
            gb = _brute_boundary(t == c, d) & valid
            pb = _brute_boundary(p == c, d) & valid
            inter[c] += (gb & pb).sum()
            union[c] += (gb | pb).sum()
    return [inter[c] / union[c] if union[c] else None for c in range(C)]


def _blobs(rng, shape, classes):
    small = rng.integers(0, classes, size=(shape[0] // 5 + 1, shape[1] // 5 + 1))
    return zoom(small, 5, order=0)[: shape[0], : shape[1]].astype(np.int64)


@pytest.mark.parametrize("ratio", [0.02, 0.06, 0.1])
def test_boundary_iou_matches_brute_force(ratio):
    rng = np.random.default_rng(int(ratio * 100))
    C = 4
    targets, preds = [], []
    for shape in [(22, 30), (18, 25)]:
        t = _blobs(rng, shape, C)
        t[rng.random(shape) < 0.04] = IGN
        p = _blobs(rng, shape, C)
        p = np.where(rng.random(shape) < 0.5, np.where(t == IGN, 1, t), p)
        targets.append(t)
        preds.append(p)
    acc = BoundaryIoUAccumulator(C, dilation_ratio=ratio)
    for p, t in zip(preds, targets, strict=True):
        acc.update(torch.from_numpy(p), t)
    names = [f"c{i}" for i in range(C)]
    got = acc.compute(names)
    ref = _brute_boundary_iou(preds, targets, C, ratio)
    for c, n in enumerate(names):
        assert got["boundary_iou"][n] == pytest.approx(ref[c], abs=1e-12)
    defined = [ref[c] for c in range(1, C) if ref[c] is not None]
    assert got["mean_boundary_iou"] == pytest.approx(np.mean(defined))


def test_matches_reference_cv2_erode_implementation():
    cv2 = pytest.importorskip("cv2")

    def mask_to_boundary(mask, dilation_ratio):  # as in github.com/bowenc0221/boundary-iou-api
        h, w = mask.shape
        img_diag = np.sqrt(h**2 + w**2)
        dilation = int(round(dilation_ratio * img_diag))
        if dilation < 1:
            dilation = 1
        new_mask = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
        kernel = np.ones((3, 3), dtype=np.uint8)
        new_mask_erode = cv2.erode(new_mask, kernel, iterations=dilation)
        mask_erode = new_mask_erode[1 : h + 1, 1 : w + 1]
        return mask - mask_erode

    rng = np.random.default_rng(5)
    t = _blobs(rng, (60, 80), 3)
    p = _blobs(rng, (60, 80), 3)
    acc = BoundaryIoUAccumulator(3, dilation_ratio=0.03)
    acc.update(p, t)
    for c in range(3):
        g = mask_to_boundary((t == c).astype(np.uint8), 0.03).astype(bool)
        q = mask_to_boundary((p == c).astype(np.uint8), 0.03).astype(bool)
        assert acc.intersection[c] == (g & q).sum()
        assert acc.union[c] == (g | q).sum()


def test_perfect_prediction_and_mean_excludes_background():
    t = np.zeros((40, 40), int)
    t[10:30, 5:25] = 1
    t[0:8, 30:40] = 2
    acc = BoundaryIoUAccumulator(4)
    acc.update(t, t)
    r = acc.compute(["background", "x", "y", "z"])
    assert r["boundary_iou"] == {"background": 1.0, "x": 1.0, "y": 1.0, "z": None}
    assert r["mean_boundary_iou"] == 1.0
    shifted = np.roll(t, 3, axis=1)
    acc2 = BoundaryIoUAccumulator(4)
    acc2.update(shifted, t)
    r2 = acc2.compute(["background", "x", "y", "z"])
    assert 0 < r2["boundary_iou"]["x"] < 1
    assert r2["mean_boundary_iou"] == pytest.approx(np.mean([r2["boundary_iou"]["x"], r2["boundary_iou"]["y"]]))


def test_dilation_and_errors():
    assert boundary_dilation(384, 768) == 17
    assert boundary_dilation(10, 10) == 1
    acc = BoundaryIoUAccumulator(3)
    with pytest.raises(ValueError, match="5"):
        acc.update(np.zeros((4, 4), int), np.full((4, 4), 5))
    with pytest.raises(ValueError, match="shapes"):
        acc.update(np.zeros((4, 4), int), np.zeros((4, 5), int))


def _brute_region(label, d):
    """Pixel p is in the boundary region of its own mask iff a pixel within Chebyshev distance d
    carries another label or lies outside the image: the module docstring's definition, looped."""
    H, W = label.shape
    out = np.zeros((H, W), bool)
    for y in range(H):
        for x in range(W):
            if y < d or x < d or y >= H - d or x >= W - d:
                out[y, x] = True
                continue
            out[y, x] = bool((label[y - d : y + d + 1, x - d : x + d + 1] != label[y, x]).any())
    return out


@pytest.mark.parametrize(
    "values",
    [(0, 1, 2), (44, 300, 7), (0, 256, 255), (0, 65536, 65535), (-1, 255, 3), (-5, 0, 70000), (70000, 70001, 70002)],
)
def test_boundary_region_of_any_label_values_matches_the_definition(values):
    rng = np.random.default_rng(9)
    base = _blobs(rng, (14, 17), 3)
    label = np.choose(base, values).astype(np.int64)
    for d in (1, 2):
        np.testing.assert_array_equal(label_boundary_region(label, d), _brute_region(label, d))
    np.testing.assert_array_equal(label_boundary_region(label.astype(np.float64), 1), _brute_region(label, 1))
    # an image thinner than 2d: every pixel is within d of the border
    assert label_boundary_region(label[:3], 2).all() and label_boundary_region(label[:, :2], 1).all()


def test_accumulator_bounds_dilation_reset_and_messages():
    t = np.zeros((60, 60), int)
    t[15:45, 15:45] = 1
    p = np.roll(t, 4, axis=0)
    for dilation, d in ((None, 2), (0, 1), (1, 1), (3, 3)):  # default: round(0.02 * 84.9) = 2
        acc = BoundaryIoUAccumulator(2) if dilation is None else BoundaryIoUAccumulator(2, dilation=dilation)
        acc.update(p, t)
        ref = [(_brute_boundary(t == c, d) & _brute_boundary(p == c, d)).sum() for c in range(2)]
        uni = [(_brute_boundary(t == c, d) | _brute_boundary(p == c, d)).sum() for c in range(2)]
        assert acc.intersection.tolist() == ref and acc.union.tolist() == uni, dilation
        assert acc.intersection.dtype == np.int64 and acc.union.dtype == np.int64
    # without an ignore index every pixel is scored (255 would be a class id)
    free = BoundaryIoUAccumulator(2, ignore_index=None, dilation=2)
    free.update(p, t)
    assert free.union.tolist() == _brute_union(p, t, 2) and free.ignore_index is None
    assert BoundaryIoUAccumulator(2).num_images == 0
    free.update(np.stack([p, p]), np.stack([t, t]))
    assert free.num_images == 3
    other = BoundaryIoUAccumulator(2, dilation=2)
    other.update(p, t)
    free.merge(other)
    assert free.num_images == 4 and free.union.tolist() == [4 * u for u in _brute_union(p, t, 2)]
    free.reset()
    assert free.num_images == 0 and free.intersection.tolist() == [0, 0] and free.union.tolist() == [0, 0]
    # default names; a class whose union is a single pixel has a boundary IoU
    tiny = BoundaryIoUAccumulator(2, dilation=1)
    tiny.update(np.array([[0, 0, 1]]), np.array([[0, 0, 1]]))
    assert tiny.union.tolist() == [2, 1]
    assert tiny.compute() == {"boundary_iou": {"class_0": 1.0, "class_1": 1.0}, "mean_boundary_iou": 1.0}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no class in the mean: NaN, without an empty-mean warning
        assert math.isnan(BoundaryIoUAccumulator(2).compute()["mean_boundary_iou"])
    cases = [
        (
            lambda: BoundaryIoUAccumulator(3).update(np.zeros((1, 3), int), np.array([[0, 3, 5]])),
            "target contains class id 3 outside [0, 3) that is not the ignore index",
        ),
        (
            lambda: BoundaryIoUAccumulator(3).update(np.array([[0, 1, 3]]), np.zeros((1, 3), int)),
            "prediction contains class id 3 outside [0, 3)",
        ),
        (
            lambda: BoundaryIoUAccumulator(3).update(np.array([[0, -1, 1]]), np.zeros((1, 3), int)),
            "prediction contains class id -1 outside [0, 3)",
        ),
        (
            lambda: BoundaryIoUAccumulator(3).merge(BoundaryIoUAccumulator(4)),
            "cannot merge boundary IoU accumulators with different class counts",
        ),
        (lambda: BoundaryIoUAccumulator(3).compute(["a", "b"]), "2 class names for 3 classes"),
        (
            lambda: label_boundary_region(np.zeros((2, 2, 2), int), 1),
            "expected an H×W label image, got shape (2, 2, 2)",
        ),
    ]
    for call, message in cases:
        with pytest.raises(ValueError) as e:
            call()
        assert str(e.value) == message
    # a prediction outside the classes on an ignored pixel is not scored
    ok = BoundaryIoUAccumulator(3)
    ok.update(np.array([[0, 9, 1]]), np.array([[0, 255, 1]]))
    assert ok.num_images == 1


def _brute_union(p, t, d):
    return [int((_brute_boundary(t == c, d) | _brute_boundary(p == c, d)).sum()) for c in range(2)]
