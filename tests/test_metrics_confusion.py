import math
import time

import numpy as np
import pytest
import torch
from torchmetrics.functional.classification import multiclass_jaccard_index, multiclass_precision, multiclass_recall

from phgmm.metrics import ConfusionMatrix, SegmentationEvaluator, compute_scores

C = 5
NAMES = ["background", "a", "b", "c", "d"]


def _random_pair(seed, shape=(3, 9, 11), ignore_frac=0.15, classes=C):
    rng = np.random.default_rng(seed)
    target = rng.integers(0, classes, size=shape)
    pred = np.where(rng.random(shape) < 0.6, target, rng.integers(0, classes, size=shape))
    target[rng.random(shape) < ignore_frac] = 255
    return pred, target


def _brute_force(pred, target, num_classes):
    """Per-pixel Python loop: TP/FP/FN counts, skipping ignore pixels."""
    tp = [0] * num_classes
    fp = [0] * num_classes
    fn = [0] * num_classes
    for p, t in zip(pred.reshape(-1).tolist(), target.reshape(-1).tolist(), strict=True):
        if t == 255:
            continue
        if p == t:
            tp[t] += 1
        else:
            fp[p] += 1
            fn[t] += 1
    iou, prec, rec = [], [], []
    for c in range(num_classes):
        iou.append(tp[c] / (tp[c] + fp[c] + fn[c]) if tp[c] + fp[c] + fn[c] else None)
        prec.append(tp[c] / (tp[c] + fp[c]) if tp[c] + fp[c] else None)
        rec.append(tp[c] / (tp[c] + fn[c]) if tp[c] + fn[c] else None)
    return iou, prec, rec, sum(tp), sum(tp) + sum(fn)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_match_brute_force_loop(seed):
    pred, target = _random_pair(seed)
    cm = ConfusionMatrix(C)
    cm.update(torch.from_numpy(pred), torch.from_numpy(target))
    s = compute_scores(cm.matrix, NAMES)
    iou, prec, rec, correct, total = _brute_force(pred, target, C)
    for c, n in enumerate(NAMES):
        assert s["iou"][n] == pytest.approx(iou[c])
        assert s["precision"][n] == pytest.approx(prec[c])
        assert s["recall"][n] == pytest.approx(rec[c])
    assert s["pixel_accuracy"] == pytest.approx(correct / total)
    assert s["miou"] == pytest.approx(np.mean(iou[1:]))  # background left out of the mean
    assert sum(map(sum, s["confusion"])) == total
    assert s["class_names"] == NAMES


def test_scores_match_torchmetrics():
    pred, target = _random_pair(7, shape=(4, 16, 20))
    cm = ConfusionMatrix(C)
    cm.update(pred, target)  # numpy input
    s = compute_scores(cm.matrix, NAMES)
    p, t = torch.from_numpy(pred), torch.from_numpy(target)
    tm_iou = multiclass_jaccard_index(p, t, num_classes=C, average=None, ignore_index=255)
    tm_prec = multiclass_precision(p, t, num_classes=C, average=None, ignore_index=255, multidim_average="global")
    tm_rec = multiclass_recall(p, t, num_classes=C, average=None, ignore_index=255, multidim_average="global")
    for c, n in enumerate(NAMES):
        assert s["iou"][n] == pytest.approx(float(tm_iou[c]), abs=1e-6)
        assert s["precision"][n] == pytest.approx(float(tm_prec[c]), abs=1e-6)
        assert s["recall"][n] == pytest.approx(float(tm_rec[c]), abs=1e-6)
    # torchmetrics' macro mean over the named classes only
    assert s["miou"] == pytest.approx(float(tm_iou[1:].mean()), abs=1e-6)


def test_ignore_pixels_are_skipped_whatever_is_predicted():
    target = np.array([[1, 1, 255, 255]])
    cm = ConfusionMatrix(3)
    cm.update(np.array([[1, 1, 2, 0]]), target)
    assert cm.matrix.tolist() == [[0, 0, 0], [0, 2, 0], [0, 0, 0]]
    s = compute_scores(cm.matrix, ["bg", "x", "y"])
    assert s["iou"] == {"bg": None, "x": 1.0, "y": None}
    assert s["miou"] == 1.0  # y is absent from GT and prediction on scored pixels: not in the mean


def test_background_is_scored_but_left_out_of_the_mean():
    # A car predicted on a background pixel is a false positive for car.
    names = ["background", "road", "car"]
    target = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([2, 0, 1, 1, 2, 2])
    cm = ConfusionMatrix(3)
    cm.update(pred, target)
    s = compute_scores(cm.matrix, names)
    assert s["iou"]["car"] == pytest.approx(2 / 3)
    assert s["precision"]["car"] == pytest.approx(2 / 3)
    assert s["iou"]["background"] == pytest.approx(1 / 2)
    assert s["miou"] == pytest.approx((1.0 + 2 / 3) / 2)
    s_all = compute_scores(cm.matrix, names, exclude_from_mean=())
    assert s_all["miou"] == pytest.approx((0.5 + 1.0 + 2 / 3) / 3)


def test_target_out_of_range_raises_naming_the_value():
    cm = ConfusionMatrix(4)
    with pytest.raises(ValueError, match="7"):
        cm.update(np.array([0, 1, 2]), np.array([0, 7, 255]))
    with pytest.raises(ValueError, match="9"):
        cm.update(np.array([0, 9, 2]), np.array([0, 1, 2]))
    with pytest.raises(ValueError):
        cm.update(np.zeros((2, 3), int), np.zeros((3, 2), int))
    assert int(cm.matrix.sum()) == 0


def test_batched_equals_per_image_and_merge_and_reset():
    pred, target = _random_pair(3, shape=(3, 12, 10))
    a = ConfusionMatrix(C)
    a.update(pred, target)
    b = ConfusionMatrix(C)
    for p, t in zip(pred, target, strict=True):
        b.update(torch.from_numpy(p).to(torch.uint8), torch.from_numpy(t).to(torch.uint8))
    assert torch.equal(a.matrix, b.matrix)
    assert a.matrix.dtype == torch.int64
    half1, half2 = ConfusionMatrix(C), ConfusionMatrix(C)
    half1.update(pred[:1], target[:1])
    half2.update(pred[1:], target[1:])
    assert torch.equal(half1.merge(half2).matrix, a.matrix)
    a.reset()
    assert int(a.matrix.sum()) == 0


def test_empty_matrix_gives_nan_mean_and_none_scores():
    s = compute_scores(np.zeros((3, 3), int), ["bg", "x", "y"])
    assert math.isnan(s["miou"]) and math.isnan(s["pixel_accuracy"])
    assert all(v is None for v in s["iou"].values())


def test_large_batch_is_fast():
    rng = torch.Generator().manual_seed(0)
    target = torch.randint(0, 12, (8, 384, 768), generator=rng, dtype=torch.int64)
    pred = torch.randint(0, 12, (8, 384, 768), generator=rng, dtype=torch.int64)
    target[:, :10] = 255
    cm = ConfusionMatrix(12)
    t0 = time.perf_counter()
    cm.update(pred, target)
    elapsed = time.perf_counter() - t0
    assert int(cm.matrix.sum()) == 8 * 374 * 768
    assert elapsed < 5.0  # bincount-based: well under a second on one core


def test_segmentation_evaluator_state_roundtrip_and_merge():
    pred, target = _random_pair(11, shape=(4, 20, 24), ignore_frac=0.05)
    full = SegmentationEvaluator(C, NAMES, trimap_widths=range(1, 6))
    full.update(torch.from_numpy(pred), torch.from_numpy(target))
    r = full.compute()
    assert r["num_images"] == 4
    assert set(r) >= {
        "miou",
        "iou",
        "precision",
        "recall",
        "pixel_accuracy",
        "confusion",
        "class_names",
        "trimap",
        "boundary_iou",
        "mean_boundary_iou",
        "num_images",
    }
    assert list(r["trimap"]) == ["1", "2", "3", "4", "5"]

    parts = [SegmentationEvaluator(C, NAMES, trimap_widths=range(1, 6)) for _ in range(2)]
    parts[0].update(pred[:2], target[:2])
    parts[1].update(pred[2:], target[2:])
    summed = parts[0].state_tensor() + parts[1].state_tensor()  # what all_reduce(SUM) does
    fresh = SegmentationEvaluator(C, NAMES, trimap_widths=range(1, 6))
    fresh.load_state_tensor(summed)
    assert fresh.compute() == r
    assert parts[0].merge(parts[1]).compute() == r
