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
    assert fresh.num_images == fresh.trimap.num_images == fresh.boundary.num_images == 4
    assert parts[0].merge(parts[1]).compute() == r


def _message(excinfo) -> str:
    return str(excinfo.value)


def test_error_messages_in_full():
    cases = [
        (lambda: ConfusionMatrix(0), "num_classes must be >= 1, got 0"),
        (lambda: ConfusionMatrix(3, ignore_index=1), "ignore_index 1 collides with a class id in [0, 3)"),
        (lambda: ConfusionMatrix(3, ignore_index=0), "ignore_index 0 collides with a class id in [0, 3)"),
        (
            lambda: ConfusionMatrix(3).update([0.5, 1.0], [0, 1]),
            "class ids must be integers, got non-integer floating-point values",
        ),
        (
            lambda: ConfusionMatrix(3).update(np.zeros(3, int), np.zeros(4, int)),
            "pred and target differ in size: (3,) vs (4,)",
        ),
        (
            lambda: ConfusionMatrix(3).update(np.zeros((2, 3), int), np.zeros((3, 2), int)),
            "pred and target shapes differ: (2, 3) vs (3, 2)",
        ),
        (
            lambda: ConfusionMatrix(3).update([0, 0], [3, 0]),
            "target contains class id 3 outside [0, 3) that is not the ignore index 255",
        ),
        (lambda: ConfusionMatrix(3).update([0, -1], [0, 1]), "prediction contains class id -1 outside [0, 3)"),
        (lambda: ConfusionMatrix(3).merge(np.zeros((2, 2), int)), "cannot merge a (2, 2) matrix into a 3x3 one"),
        (lambda: compute_scores(np.zeros((2, 3), int)), "confusion matrix must be square, got shape (2, 3)"),
        (lambda: compute_scores(np.zeros(3, int)), "confusion matrix must be square, got shape (3,)"),
        (lambda: compute_scores(np.zeros((3, 3), int), ["a", "b"]), "2 class names for a 3x3 confusion matrix"),
        (lambda: SegmentationEvaluator(3, ["a", "b"]), "2 class names for 3 classes"),
        (
            lambda: SegmentationEvaluator(3).load_state_tensor(torch.zeros(5, dtype=torch.int64)),
            "state tensor has 5 entries, expected 98",
        ),
    ]
    for call, message in cases:
        with pytest.raises(ValueError) as e:
            call()
        assert _message(e) == message
    with pytest.raises(AttributeError) as e:
        import phgmm.metrics

        phgmm.metrics.no_such_measure  # noqa: B018
    assert _message(e) == "module 'phgmm.metrics' has no attribute 'no_such_measure'"


def test_lazy_clustering_functions_are_the_modules():
    import phgmm.metrics
    from phgmm.metrics import clustering

    assert phgmm.metrics.clustering_indices is clustering.clustering_indices
    assert phgmm.metrics.tsne_embedding is clustering.tsne_embedding


def test_class_id_inputs_of_every_kind():
    from phgmm.metrics.confusion import as_long_tensor

    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64, np.int32, np.float32):
        t = as_long_tensor(np.array([[0, 2], [7, 1]], dtype=dtype))
        assert t.dtype == torch.int64 and t.tolist() == [[0, 2], [7, 1]], dtype
    assert as_long_tensor(np.array([300], np.uint16)).tolist() == [300]  # not wrapped to 8 bits
    assert as_long_tensor(torch.tensor([1.0, 2.0])).tolist() == [1, 2]  # whole floats are ids
    assert as_long_tensor(torch.tensor([True, False])).tolist() == [1, 0]
    assert as_long_tensor(torch.zeros(0)).shape == (0,)
    on = as_long_tensor(np.array([1, 2], np.int32), "meta")  # the meta device stands for a GPU
    assert on.device.type == "meta" and on.dtype == torch.int64
    assert as_long_tensor(torch.tensor([1, 2], dtype=torch.int32), "cpu").dtype == torch.int64
    # ids above 255 and boolean maps count like any other ids
    cm = ConfusionMatrix(301, ignore_index=None)
    cm.update(torch.tensor([260, 300]), torch.tensor([260, 299]))
    assert int(cm.matrix[260, 260]) == 1 and int(cm.matrix[299, 300]) == 1 and int(cm.matrix.sum()) == 2
    binary = ConfusionMatrix(2)
    binary.update(np.array([True, True, False]), np.array([True, False, False]))
    assert binary.matrix.tolist() == [[1, 1], [0, 1]]


def test_bounds_of_the_matrix_and_its_scores():
    one = ConfusionMatrix(1)  # one class: everything is right
    one.update([0, 0, 0], [0, 0, 255])
    assert one.matrix.tolist() == [[2]]
    assert ConfusionMatrix(3, ignore_index=3).ignore_index == 3  # just past the classes is allowed
    free = ConfusionMatrix(3, ignore_index=None)  # no ignore index: 255 is an id out of range
    free.update([0, 1], [0, 1])
    assert free.matrix.trace() == 2 and free.ignore_index is None
    with pytest.raises(ValueError, match="not the ignore index None"):
        free.update([0], [255])
    on = ConfusionMatrix(3, device="meta")
    assert on.device == torch.device("meta") and on.matrix.device.type == "meta"
    assert repr(ConfusionMatrix(3)) == "ConfusionMatrix(num_classes=3, ignore_index=255, total=0)"
    # one pixel per class is enough for every score; a 1-pixel matrix has an accuracy
    s = compute_scores([[1, 0], [0, 0]], ["bg", "x"], exclude_from_mean=())
    assert s["iou"] == {"bg": 1.0, "x": None} and s["pixel_accuracy"] == 1.0
    assert s["miou"] == 1.0 and s["mean_precision"] == 1.0 and s["mean_recall"] == 1.0
    assert s["confusion"] == [[1, 0], [0, 0]] and all(type(v) is int for row in s["confusion"] for v in row)
    # precision and recall means over the classes not excluded (background left out by default)
    m = np.array([[5, 1, 0], [2, 3, 1], [0, 1, 1]])
    s = compute_scores(m, ["bg", "a", "b"])
    assert s["mean_precision"] == pytest.approx((3 / 5 + 1 / 2) / 2)
    assert s["mean_recall"] == pytest.approx((3 / 6 + 1 / 2) / 2)
    cm = ConfusionMatrix(3)
    cm.merge(torch.from_numpy(m))  # a plain matrix (another worker's) merges too
    cm.merge(m.tolist())
    assert cm.matrix.tolist() == (2 * m).tolist() and cm.matrix.dtype == torch.int64
    assert compute_scores(cm) == compute_scores(2 * m)  # the accumulator itself may be scored
    named = cm.compute(["bg", "a", "b"], exclude_from_mean=())
    assert list(named["iou"]) == ["bg", "a", "b"]
    assert named["miou"] == pytest.approx(np.mean([5 / 8, 3 / 8, 1 / 3]))
    # nothing scored: NaN means and accuracy, without a warning about an empty mean
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        empty = compute_scores(np.zeros((2, 2), int))
    assert math.isnan(empty["miou"]) and math.isnan(empty["mean_recall"]) and math.isnan(empty["pixel_accuracy"])
    assert empty["class_names"] == ["class_0", "class_1"]


def test_segmentation_evaluator_options_against_its_parts():
    from phgmm.metrics import BoundaryIoUAccumulator, TrimapAccumulator

    pred, target = _random_pair(21, shape=(2, 40, 40), ignore_frac=0.05)
    target[target == 255] = 7  # a custom ignore index
    target[:, 5:9, 5:9] = 7
    names = ["bg", "a", "b", "c", "d"]
    ev = SegmentationEvaluator(C, names, ignore_index=7, exclude_from_mean=(), trimap_widths=[1, 3])
    ev.update(pred, target)
    r = ev.compute()
    cm, tri, bd = ConfusionMatrix(C, 7), TrimapAccumulator([1, 3], 7), BoundaryIoUAccumulator(C, 7, 0.02)
    cm.update(pred, target)
    tri.update(pred, target)
    bd.update(pred, target)
    assert ev.ignore_index == 7 and r["class_names"] == names and r["num_images"] == 2
    assert r["miou"] == pytest.approx(cm.compute(names, ())["miou"]) and r["iou"] == cm.compute(names)["iou"]
    assert r["trimap"] == {str(w): e for w, e in tri.compute().items()} and r["trimap"]["1"] is not None
    assert r == {**cm.compute(names, ()), "trimap": r["trimap"], **bd.compute(names, ()), "num_images": 2}
    assert list(r["boundary_iou"]) == names
    # the default boundary width: 2 % of the diagonal (here 2 pixels), not the whole image
    halves = np.zeros((60, 60), int)
    halves[:, 30:] = 2
    shifted = np.roll(halves, 5, axis=1)
    ev = SegmentationEvaluator(3, trimap_widths=None)
    ev.update(shifted, halves)
    for d, same in ((2, True), (87, False)):
        ref = BoundaryIoUAccumulator(3, dilation=d)
        ref.update(shifted, halves)
        assert (ev.compute()["boundary_iou"] == ref.compute()["boundary_iou"]) == same, d
    # default names and the background left out of the means
    plain = SegmentationEvaluator(3, trimap_widths=None, boundary=False)
    plain.update([[0, 1], [1, 2]], [[0, 1], [2, 2]])
    out = plain.compute()
    assert out["class_names"] == ["class_0", "class_1", "class_2"] and "boundary_iou" not in out
    assert "trimap" not in out and out["miou"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert SegmentationEvaluator(3, device="meta").confusion.matrix.device.type == "meta"
    wide = SegmentationEvaluator(3, trimap_widths=None, boundary_dilation_ratio=0.1)  # 8 pixels
    wide.update(shifted, halves)
    ref = BoundaryIoUAccumulator(3, dilation=8)
    ref.update(shifted, halves)
    assert wide.compute()["boundary_iou"] == ref.compute()["boundary_iou"] != ev.compute()["boundary_iou"]
    # a matrix of floats (e.g. read back from JSON) is scored as counts
    floats = compute_scores(np.array([[2.0, 1.0], [0.0, 3.0]]))
    assert floats["confusion"] == [[2, 1], [0, 3]] and all(type(v) is int for r in floats["confusion"] for v in r)


@pytest.mark.parametrize("which", ["trimap", "boundary"])
def test_segmentation_evaluator_with_one_of_trimap_and_boundary(which):
    pred, target = _random_pair(22, shape=(2, 30, 30), ignore_frac=0.05)
    both = SegmentationEvaluator(C, trimap_widths=[1, 2])
    both.update(pred, target)
    one = SegmentationEvaluator(C, trimap_widths=[1, 2] if which == "trimap" else None, boundary=which == "boundary")
    one.update(pred, target)
    r, full = one.compute(), both.compute()
    assert (which == "trimap") == ("trimap" in r) and (which == "boundary") == ("boundary_iou" in r)
    key = "trimap" if which == "trimap" else "boundary_iou"
    assert r[key] == full[key] and any(v is not None for v in r[key].values())
    # merging with an evaluator that has the part leaves the part out, and counts the rest
    one.merge(both)
    assert one.num_images == 4 and int(one.confusion.matrix.sum()) == 2 * int(both.confusion.matrix.sum())


@pytest.mark.parametrize("lead", [(2, 2), (1, 2, 2)])
def test_segmentation_evaluator_flattens_any_batch_shape(lead):
    pred, target = _random_pair(23, shape=(4, 20, 24), ignore_frac=0.05)
    flat = SegmentationEvaluator(C, trimap_widths=[1, 2])
    flat.update(pred, target)
    nested = SegmentationEvaluator(C, trimap_widths=[1, 2])
    nested.update(torch.from_numpy(pred.reshape(lead + (20, 24))), target.reshape(lead + (20, 24)))
    assert nested.compute() == flat.compute() and nested.num_images == 4
    lists = SegmentationEvaluator(C, trimap_widths=[1, 2])
    lists.update(pred.tolist(), target.tolist())  # nested lists: 4 images
    lists.update(pred[0].tolist(), target[0].tolist())  # and one image
    assert lists.num_images == 5
    lists.reset()
    assert lists.num_images == 0 and int(lists.state_tensor().abs().sum()) == 0
