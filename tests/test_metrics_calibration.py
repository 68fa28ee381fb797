"""Error-detection AUROC/AUPR and calibration (ECE) accumulators, and the numbers of a reliability diagram."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from phgmm.metrics.calibration import CalibrationAccumulator, ErrorDetectionAccumulator, reliability_bins


def _quantise(scores: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Each score replaced by its bin's centre (clamping outside the range), written
    independently of the module: bin i = [e_i, e_{i+1}), last bin closed."""
    n = len(edges) - 1
    idx = np.clip(np.searchsorted(edges, scores, side="right") - 1, 0, n - 1)
    return 0.5 * (edges[idx] + edges[idx + 1])


def _scores_and_errors(rng: np.random.Generator, n: int, hi: float):
    wrong = rng.random(n) < 0.2
    # wrong pixels tend to be more uncertain; a few scores fall outside [0, hi]
    score = rng.normal(np.where(wrong, 0.6 * hi, 0.35 * hi), 0.25 * hi)
    return score, wrong


@pytest.mark.parametrize(
    "edges",
    [
        np.linspace(0.0, math.log(12), 1001),  # the default binning
        np.linspace(0.0, math.log(12), 8),  # coarse: many ties
        np.array([-0.5, 0.0, 0.1, 0.4, 1.0, 1.7, 2.0, 2.6]),  # uneven, caller-given
    ],
)
def test_auroc_aupr_match_sklearn_on_quantised_scores(edges: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    score, wrong = _scores_and_errors(rng, 20000, math.log(12))
    acc = ErrorDetectionAccumulator(edges=edges)
    acc.update(score, wrong)
    out = acc.compute()
    q = _quantise(score, edges)
    assert out["auroc"] == pytest.approx(roc_auc_score(wrong, q), abs=1e-9)
    assert out["aupr"] == pytest.approx(average_precision_score(wrong, q), abs=1e-9)
    assert out["n_wrong"] == int(wrong.sum()) and out["n_right"] == int((~wrong).sum())
    assert out["error_rate"] == pytest.approx(wrong.mean())
    # feeding the quantised scores themselves changes nothing
    acc2 = ErrorDetectionAccumulator(edges=edges)
    acc2.update(q, wrong)
    assert acc2.compute() == out


def test_fine_bins_close_to_continuous_auroc() -> None:
    rng = np.random.default_rng(2)
    score, wrong = _scores_and_errors(rng, 5000, 2.0)
    acc = ErrorDetectionAccumulator(num_bins=1000, value_range=(-2.0, 4.0))
    acc.update(torch.from_numpy(score).float(), torch.from_numpy(wrong))
    assert acc.compute()["auroc"] == pytest.approx(roc_auc_score(wrong, score), abs=2e-3)


def test_error_detection_extremes_and_undefined() -> None:
    wrong = np.array([1, 1, 0, 0, 0, 0], dtype=bool)
    perfect = ErrorDetectionAccumulator(num_bins=10, value_range=(0, 1))
    perfect.update(np.array([0.9, 0.8, 0.1, 0.2, 0.3, 0.05]), wrong)
    assert perfect.compute()["auroc"] == 1.0 and perfect.compute()["aupr"] == 1.0
    inverse = ErrorDetectionAccumulator(num_bins=10, value_range=(0, 1))
    inverse.update(np.array([0.05, 0.1, 0.9, 0.8, 0.7, 0.6]), wrong)
    assert inverse.compute()["auroc"] == 0.0
    constant = ErrorDetectionAccumulator(num_bins=10, value_range=(0, 1))
    constant.update(np.full(6, 0.5), wrong)
    assert constant.compute()["auroc"] == 0.5
    assert constant.compute()["aupr"] == pytest.approx(2 / 6)  # = error rate
    # clamping: scores far outside the range land in the end bins, +-inf included
    clamped = ErrorDetectionAccumulator(num_bins=10, value_range=(0, 1))
    clamped.update(np.array([np.inf, 7.0, -np.inf, -3.0, 0.0, 1.0]), wrong)
    assert clamped.wrong[-1] == 2 and clamped.right[0] == 3 and clamped.right[-1] == 1
    empty = ErrorDetectionAccumulator()
    assert empty.compute() == {"auroc": None, "aupr": None, "n_wrong": 0, "n_right": 0, "error_rate": None}
    all_right = ErrorDetectionAccumulator(num_bins=10, value_range=(0, 1))
    all_right.update(np.full(4, 0.3), np.zeros(4, dtype=bool))
    assert all_right.compute()["auroc"] is None and all_right.compute()["aupr"] is None


def test_error_detection_batches_merge_and_state() -> None:
    rng = np.random.default_rng(3)
    score = rng.random((6, 8, 10)) * 3
    wrong = rng.random((6, 8, 10)) < score / 4
    one = ErrorDetectionAccumulator(num_bins=50, value_range=(0, 3))
    one.update(score, wrong)
    batched = ErrorDetectionAccumulator(num_bins=50, value_range=(0, 3))
    for i in range(6):
        batched.update(torch.from_numpy(score[i]), torch.from_numpy(wrong[i]))  # torch, 2-D
    assert np.array_equal(batched.wrong, one.wrong) and np.array_equal(batched.right, one.right)
    assert batched.compute() == one.compute()
    a = ErrorDetectionAccumulator(num_bins=50, value_range=(0, 3))
    b = ErrorDetectionAccumulator(num_bins=50, value_range=(0, 3))
    a.update(score[:2], wrong[:2])
    b.update(score[2:], wrong[2:])
    assert a.merge(b).compute() == one.compute()
    state = one.state_tensor()
    assert state.dtype == torch.int64 and state.numel() == 100
    restored = ErrorDetectionAccumulator(num_bins=50, value_range=(0, 3))
    restored.load_state_tensor(state)
    assert restored.compute() == one.compute()
    # the all_reduce of two processes is the sum of their states
    summed = ErrorDetectionAccumulator(num_bins=50, value_range=(0, 3))
    a2 = ErrorDetectionAccumulator(num_bins=50, value_range=(0, 3))
    a2.update(score[:2], wrong[:2])
    summed.load_state_tensor(a2.state_tensor() + b.state_tensor())
    assert summed.compute() == one.compute()
    with pytest.raises(ValueError, match="entries"):
        restored.load_state_tensor(state[:-1])
    with pytest.raises(ValueError, match="edges"):
        one.merge(ErrorDetectionAccumulator(num_bins=49, value_range=(0, 3)))


def test_error_detection_valid_mask() -> None:
    rng = np.random.default_rng(4)
    score = rng.random((2, 5, 7))
    wrong = rng.random((2, 5, 7)) < 0.3
    valid = rng.random((2, 5, 7)) < 0.7
    masked = ErrorDetectionAccumulator(num_bins=20, value_range=(0, 1))
    masked.update(torch.from_numpy(score), torch.from_numpy(wrong), torch.from_numpy(valid))
    ref = ErrorDetectionAccumulator(num_bins=20, value_range=(0, 1))
    ref.update(score[valid], wrong[valid])
    assert masked.compute() == ref.compute()
    assert masked.compute()["n_wrong"] + masked.compute()["n_right"] == int(valid.sum())
    # invalid pixels may hold anything, even NaN scores
    score_nan = score.copy()
    score_nan[~valid] = np.nan
    masked2 = ErrorDetectionAccumulator(num_bins=20, value_range=(0, 1))
    masked2.update(score_nan, wrong.astype(np.uint8), valid)
    assert masked2.compute() == ref.compute()


def test_error_detection_bad_input() -> None:
    acc = ErrorDetectionAccumulator()
    with pytest.raises(ValueError, match="shape"):
        acc.update(np.zeros((2, 3)), np.zeros((3, 2), dtype=bool))
    with pytest.raises(ValueError, match="valid has shape"):
        acc.update(np.zeros((2, 3)), np.zeros((2, 3), dtype=bool), np.ones((2, 2), dtype=bool))
    with pytest.raises(ValueError, match="NaN"):
        acc.update(np.array([0.1, np.nan]), np.array([True, False]))
    with pytest.raises(ValueError, match="boolean"):
        acc.update(np.array([0.1, 0.2]), np.array([0, 2]))
    with pytest.raises(ValueError, match="increasing"):
        ErrorDetectionAccumulator(edges=[0.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="value_range"):
        ErrorDetectionAccumulator(value_range=(1.0, 0.0))


# -- calibration ---------------------------------------------------------------------------
def _brute_force_ece(conf: np.ndarray, correct: np.ndarray, B: int = 15) -> tuple[float, float]:
    counts = [0] * B
    sum_conf = [0.0] * B
    sum_ok = [0] * B
    for c, ok in zip(conf.tolist(), correct.tolist(), strict=True):
        b = 0
        for i in range(B):
            if i / B < c <= (i + 1) / B:
                b = i
                break
        counts[b] += 1
        sum_conf[b] += c
        sum_ok[b] += int(ok)
    n = sum(counts)
    gaps = [abs(sum_ok[b] / counts[b] - sum_conf[b] / counts[b]) for b in range(B) if counts[b]]
    ece = sum(counts[b] / n * abs(sum_ok[b] / counts[b] - sum_conf[b] / counts[b]) for b in range(B) if counts[b])
    return ece, max(gaps)


def test_ece_matches_brute_force_loop() -> None:
    rng = np.random.default_rng(5)
    conf = rng.beta(5, 1.5, size=(3, 20, 25))
    conf.flat[:4] = [0.0, 1.0, 1 / 15, 2 / 15]  # exact bin edges (right-closed bins)
    correct = rng.random(conf.shape) < conf**1.5  # overconfident
    acc = CalibrationAccumulator()
    acc.update(torch.from_numpy(conf), torch.from_numpy(correct))
    out = acc.compute()
    ece, mce = _brute_force_ece(conf.ravel(), correct.ravel())
    assert out["ece"] == pytest.approx(ece, abs=1e-12)
    assert out["mce"] == pytest.approx(mce, abs=1e-12)
    assert out["count"] == conf.size and len(out["bins"]) == 15
    assert sum(b["count"] for b in out["bins"]) == conf.size
    assert out["bins"][0]["lower"] == 0.0 and out["bins"][-1]["upper"] == 1.0
    single = CalibrationAccumulator()
    single.update(np.array([0.0, 1 / 15, 2 / 15, 1.0]), np.ones(4, dtype=bool))
    assert single.count.tolist() == [2, 1] + [0] * 12 + [1]


def test_ece_calibrated_and_overconfident_cases() -> None:
    rng = np.random.default_rng(6)
    conf = rng.random(200_000)
    correct = rng.random(200_000) < conf
    acc = CalibrationAccumulator()
    acc.update(conf, correct)
    assert acc.compute()["ece"] < 0.01
    fixed = CalibrationAccumulator()
    fixed.update(torch.full((4, 16, 16), 0.6), torch.ones(4, 16, 16, dtype=torch.bool))
    out = fixed.compute()
    assert out["ece"] == pytest.approx(0.4) and out["mce"] == pytest.approx(0.4)
    filled = [b for b in out["bins"] if b["count"]]
    assert len(filled) == 1 and filled[0]["accuracy"] == 1.0
    assert filled[0]["confidence"] == pytest.approx(0.6)
    c = float(np.float32(0.6))  # 0.6000000238..., just above the edge 9/15
    assert filled[0]["lower"] < c <= filled[0]["upper"] and filled[0]["lower"] == 9 / 15
    empty = CalibrationAccumulator().compute()
    assert empty["ece"] is None and empty["mce"] is None and empty["bins"][0]["accuracy"] is None


def test_calibration_batches_merge_state_and_valid() -> None:
    rng = np.random.default_rng(7)
    conf = rng.random((4, 6, 9)).astype(np.float32)
    correct = rng.random((4, 6, 9)) < 0.7
    valid = rng.random((4, 6, 9)) < 0.8
    one = CalibrationAccumulator(num_bins=10)
    one.update(conf, correct, valid)
    batched = CalibrationAccumulator(num_bins=10)
    for i in range(4):
        batched.update(torch.from_numpy(conf[i]), torch.from_numpy(correct[i]), torch.from_numpy(valid[i]))
    np.testing.assert_allclose(batched.state_tensor().numpy(), one.state_tensor().numpy(), rtol=1e-12)
    assert batched.compute()["ece"] == pytest.approx(one.compute()["ece"], abs=1e-12)
    a, b = CalibrationAccumulator(num_bins=10), CalibrationAccumulator(num_bins=10)
    a.update(conf[:1], correct[:1], valid[:1])
    b.update(conf[1:], correct[1:], valid[1:])
    assert a.merge(b).compute()["ece"] == pytest.approx(one.compute()["ece"], abs=1e-12)
    state = one.state_tensor()
    assert state.dtype == torch.float64 and state.numel() == 30
    restored = CalibrationAccumulator(num_bins=10)
    restored.load_state_tensor(state)
    assert restored.compute() == one.compute()
    ref = CalibrationAccumulator(num_bins=10)
    ref.update(conf[valid], correct[valid])
    assert one.compute()["count"] == int(valid.sum())
    assert one.compute()["ece"] == pytest.approx(ref.compute()["ece"], abs=1e-12)
    with pytest.raises(ValueError, match="merge"):
        one.merge(CalibrationAccumulator(num_bins=15))
    with pytest.raises(ValueError, match="entries"):
        restored.load_state_tensor(state[:5])


def test_calibration_bad_input() -> None:
    acc = CalibrationAccumulator()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        acc.update(np.array([0.5, 1.5]), np.array([True, False]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        acc.update(torch.tensor([-0.1, 0.5]), torch.tensor([True, False]))
    with pytest.raises(ValueError, match="shape"):
        acc.update(np.full((2, 3), 0.5), np.ones((2, 4), dtype=bool))
    with pytest.raises(ValueError, match="NaN"):
        acc.update(np.array([np.nan]), np.array([True]))
    # out-of-range values on invalid pixels are not scored
    acc.update(np.array([0.5, 7.0]), np.array([True, False]), np.array([True, False]))
    assert acc.compute()["count"] == 1


def _message(excinfo: pytest.ExceptionInfo) -> str:
    return str(excinfo.value)


def test_error_detection_defaults_bounds_and_edges() -> None:
    default = ErrorDetectionAccumulator()  # 1000 equal bins on [0, log 12]: entropies of 12 classes
    assert default.num_bins == 1000 and default.edges[0] == 0.0 and default.edges[-1] == math.log(12)
    np.testing.assert_allclose(np.diff(default.edges), math.log(12) / 1000)
    one = ErrorDetectionAccumulator(num_bins=1, value_range=(0, 1))  # one bin: every pixel tied
    one.update(np.array([0.1, 0.9, 0.5]), np.array([True, False, False]))
    assert one.compute()["auroc"] == 0.5 and one.compute()["aupr"] == pytest.approx(1 / 3)
    two = ErrorDetectionAccumulator(edges=[0.0, 1.0])  # two edges: one bin
    assert two.num_bins == 1
    # edges as a tensor (here one that requires grad) are read as plain numbers
    grad = ErrorDetectionAccumulator(edges=torch.tensor([0.0, 0.5, 2.0], requires_grad=True))
    assert grad.edges.tolist() == [0.0, 0.5, 2.0] and grad.edges.dtype == np.float64
    # a score on an inner edge belongs to the bin that edge opens: [e_i, e_i+1)
    edges = ErrorDetectionAccumulator(edges=[0.0, 1.0, 2.0, 3.0])
    assert edges.bin_index([0.0, 0.99, 1.0, 2.0, 3.0, 7.0, -1.0]).tolist() == [0, 0, 1, 2, 2, 2, 0]
    assert edges.bin_index(np.array([1, 2], dtype=np.int64)).tolist() == [1, 2]


def test_error_detection_messages_in_full() -> None:
    with pytest.raises(ValueError) as e:
        ErrorDetectionAccumulator(num_bins=0)
    assert _message(e) == "num_bins must be >= 1, got 0"
    with pytest.raises(ValueError) as e:
        ErrorDetectionAccumulator(value_range=(1.0, 1.0))
    assert _message(e) == "value_range must be finite with low < high, got (1.0, 1.0)"
    with pytest.raises(ValueError) as e:
        ErrorDetectionAccumulator(edges=[0.0])
    assert _message(e) == "edges must be a 1-D sequence of at least 2 values, got shape (1,)"
    with pytest.raises(ValueError) as e:
        ErrorDetectionAccumulator(edges=[[0.0, 1.0], [2.0, 3.0]])
    assert _message(e) == "edges must be a 1-D sequence of at least 2 values, got shape (2, 2)"
    with pytest.raises(ValueError) as e:
        ErrorDetectionAccumulator(edges=[0.0, 2.0, 1.0])
    assert _message(e) == "edges must be finite and strictly increasing"
    acc = ErrorDetectionAccumulator(num_bins=4, value_range=(0, 1))
    with pytest.raises(ValueError) as e:
        acc.load_state_tensor(torch.zeros(7, dtype=torch.int64))
    assert _message(e) == "state tensor has 7 entries, expected 8"
    with pytest.raises(ValueError) as e:  # the same number of bins, other edges
        acc.merge(ErrorDetectionAccumulator(num_bins=4, value_range=(0, 2)))
    assert _message(e) == "cannot merge error-detection accumulators with different bin edges"
    cases = [
        ((np.array([0.5, "x"], dtype=object), np.array([1, 0])), "score must be a numeric array, got dtype object"),
        ((np.array([0.5, 0.1]), np.array([1, "x"], dtype=object)), "wrong must be a numeric array, got dtype object"),
        ((np.array([1 + 2j]), np.array([1])), "score must be real numbers, got dtype torch.complex128"),
        ((np.array([True]), np.array([1])), "score must be real numbers, got dtype torch.bool"),
        ((np.zeros((2, 3)), np.zeros((3, 2), bool)), "wrong has shape (3, 2) but the scores have shape (2, 3)"),
        ((np.zeros(2), np.zeros(2, bool), np.ones(3, bool)), "valid has shape (3,) but the scores have shape (2,)"),
        ((np.array([0.1, np.nan]), np.array([True, False])), "score contains NaN on scored pixels"),
        ((np.array([0.1, 0.2]), np.array([0, 2])), "wrong must be boolean (or 0/1), got other values"),
        ((np.array([0.1, 0.2]), np.array([1j, 0])), "wrong must be boolean (or 0/1), got other values"),
    ]
    for args, message in cases:
        with pytest.raises(ValueError) as e:
            acc.update(*args)
        assert _message(e) == message
    with pytest.raises(ValueError) as e:
        acc.bin_index(np.array(["x"], dtype=object))
    assert _message(e) == "score must be a numeric array, got dtype object"
    assert acc.compute()["n_wrong"] + acc.compute()["n_right"] == 0  # nothing was counted


def test_error_detection_one_pixel_each_side_reset_and_repr() -> None:
    acc = ErrorDetectionAccumulator(num_bins=10, value_range=(0, 1))
    acc.update(np.array([0.9, 0.1]), np.array([True, False]))  # one wrong, one right pixel
    assert acc.compute() == {"auroc": 1.0, "aupr": 1.0, "n_wrong": 1, "n_right": 1, "error_rate": 0.5}
    assert repr(acc) == "ErrorDetectionAccumulator(num_bins=10, range=(0, 1), n_wrong=1, n_right=1)"
    acc.reset()
    assert acc.wrong.tolist() == [0] * 10 and acc.right.tolist() == [0] * 10
    all_wrong = ErrorDetectionAccumulator(num_bins=10, value_range=(0, 1))
    all_wrong.update(np.array([0.2, 0.7]), np.array([1, 1], dtype=np.uint8))
    assert all_wrong.compute() == {"auroc": None, "aupr": 1.0, "n_wrong": 2, "n_right": 0, "error_rate": 1.0}
    # unsigned integer inputs (uint16 scores and uint32/uint64 flags) count like any other
    ints = ErrorDetectionAccumulator(num_bins=4, value_range=(0, 4))
    ints.update(np.array([0, 1, 2, 3], np.uint16), np.array([0, 1, 1, 0], np.uint32), np.ones(4, np.uint64))
    assert ints.wrong.tolist() == [0, 1, 1, 0] and ints.right.tolist() == [1, 0, 0, 1]
    # the state tensor on another device (the meta device stands for a GPU here)
    state = ints.state_tensor("meta")
    assert state.device.type == "meta" and state.shape == (8,) and state.dtype == torch.int64
    assert ints.state_tensor().device.type == "cpu"
    assert ints.state_tensor().tolist() == [0, 1, 1, 0, 1, 0, 0, 1]
    # a float state (as a float all-reduce would give) loads as counts
    loaded = ErrorDetectionAccumulator(num_bins=4, value_range=(0, 4))
    loaded.load_state_tensor(ints.state_tensor().double())
    assert loaded.compute() == ints.compute() and loaded.wrong.dtype == np.int64


def test_calibration_one_bin_one_pixel_messages_reset_and_repr() -> None:
    default = CalibrationAccumulator()
    assert default.num_bins == 15 and len(default.compute()["bins"]) == 15
    one = CalibrationAccumulator(num_bins=1)  # one bin [0, 1]: ECE = |accuracy - mean confidence|
    one.update(np.array([0.2, 0.6]), np.array([True, True]))
    assert one.compute()["ece"] == pytest.approx(0.6) and one.compute()["bins"][0]["upper"] == 1.0
    single = CalibrationAccumulator(num_bins=4)  # a single pixel is scored
    single.update(np.array([0.7]), np.array([True]))
    out = single.compute()
    assert out["ece"] == pytest.approx(0.3) and out["mce"] == pytest.approx(0.3)
    assert out["count"] == 1 and out["accuracy"] == 1.0 and out["confidence"] == pytest.approx(0.7)
    assert [b["count"] for b in out["bins"]] == [0, 0, 1, 0]
    assert [(b["lower"], b["upper"]) for b in out["bins"]] == [(0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0)]
    assert repr(single) == "CalibrationAccumulator(num_bins=4, count=1)"
    for a in (single.count, single.sum_confidence, single.sum_correct):
        assert a.dtype == np.float64
    state = single.state_tensor("meta")
    assert state.device.type == "meta" and state.dtype == torch.float64 and state.shape == (12,)
    assert single.state_tensor().tolist() == [0, 0, 1, 0, 0, 0, 0.7, 0, 0, 0, 1, 0]
    loaded = CalibrationAccumulator(num_bins=4)
    loaded.load_state_tensor(single.state_tensor().float())  # a float32 state loads as float64 sums
    assert loaded.sum_confidence.dtype == np.float64 and loaded.compute()["count"] == 1
    single.reset()
    assert single.state_tensor().tolist() == [0.0] * 12 and single.compute()["ece"] is None
    with pytest.raises(ValueError) as e:
        CalibrationAccumulator(num_bins=0)
    assert _message(e) == "num_bins must be >= 1, got 0"
    with pytest.raises(ValueError) as e:
        loaded.load_state_tensor(torch.zeros(11, dtype=torch.float64))
    assert _message(e) == "state tensor has 11 entries, expected 12"
    with pytest.raises(ValueError) as e:
        loaded.merge(CalibrationAccumulator(num_bins=5))
    assert _message(e) == "cannot merge 5 calibration bins into 4"
    with pytest.raises(ValueError) as e:
        loaded.update(np.array([0.5, 1.5, -0.25]), np.array([True, False, True]))
    assert _message(e) == "probs_max must lie in [0, 1]; got values from -0.25 to 1.5 outside it"
    with pytest.raises(ValueError) as e:
        loaded.update(np.array([0.5, np.nan]), np.array([True, False]))
    assert _message(e) == "probs_max contains NaN on scored pixels"
    with pytest.raises(ValueError) as e:
        loaded.update(np.array([0.5]), np.array([[True]]))
    assert _message(e) == "correct has shape (1, 1) but the scores have shape (1,)"


def test_reliability_bins_are_the_bars_worked_by_hand() -> None:
    acc = CalibrationAccumulator(num_bins=4)
    acc.update(np.array([0.1, 0.2, 0.6, 0.7, 0.9]), np.array([True, False, True, True, False]))
    r = reliability_bins(acc.compute())
    np.testing.assert_allclose(r["lower"], [0.0, 0.25, 0.5, 0.75])
    np.testing.assert_allclose(r["width"], [0.25] * 4)
    assert r["filled"].tolist() == [True, False, True, True]
    np.testing.assert_allclose(r["accuracy"], [0.5, 0.0, 1.0, 0.0])  # (0, .25]: one of 0.1, 0.2 right
    np.testing.assert_allclose(r["confidence"], [0.15, 0.0, 0.65, 0.9])
    np.testing.assert_allclose(r["gap"], [0.35, 0.0, 0.35, 0.9])  # from accuracy to confidence
    np.testing.assert_allclose(r["gap_bottom"], [0.15, 0.0, 0.65, 0.0])
    # a bin without pixels is drawn empty, whatever numbers a hand-made result gives it
    hand = {
        "bins": [
            {"lower": 0.0, "upper": 0.5, "count": 0, "accuracy": 0.3, "confidence": 0.4},
            {"lower": 0.5, "upper": 1.0, "count": 2, "accuracy": 1.0, "confidence": 0.75},
        ]
    }
    r = reliability_bins(hand)
    assert r["filled"].tolist() == [False, True] and r["accuracy"].tolist() == [0.0, 1.0]
    assert r["confidence"].tolist() == [0.0, 0.75] and r["gap"].tolist() == [0.0, 0.25]
    for bad in ({}, {"bins": []}, {"bins": None}):
        with pytest.raises(ValueError) as e:
            reliability_bins(bad)
        assert _message(e) == "calibration has no 'bins' (pass CalibrationAccumulator.compute())"
    empty = reliability_bins(CalibrationAccumulator(num_bins=3).compute())
    assert empty["filled"].tolist() == [False] * 3 and empty["gap"].tolist() == [0.0] * 3
