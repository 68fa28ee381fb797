"""Does an uncertainty map find the wrong pixels, and are the confidences calibrated?

Both accumulators sum fixed-size counts over every batch of a split (like ``ConfusionMatrix``),
so partial results from several processes add up: ``state_tensor()`` → ``dist.all_reduce`` →
``load_state_tensor()``, or ``merge(other)``.

``ErrorDetectionAccumulator`` — a per-pixel uncertainty score (predictive entropy, mutual
information, softmax entropy, ...) against "is the prediction wrong?":

* **AUROC**: the probability that a randomly chosen wrong pixel has a higher score than a
  randomly chosen right one (ties count half; the Mann–Whitney form). 0.5 = the map ranks wrong
  pixels no better than chance; 1 = every wrong pixel is more uncertain than every right one;
  below 0.5 = the map is more uncertain on right pixels.
* **AUPR**: average precision with "wrong" as the positive class, thresholds taken from the
  highest score down (scikit-learn's ``average_precision_score``). A useless map scores about the
  error rate (reported as ``error_rate``); a perfect one scores 1.

Scores are histogrammed into fixed bins (scores outside the bin range clamp to the end bins), so
both numbers are *exact for the binned scores*: pixels in one bin count as tied. Choose edges fine
enough for the scores (the default, 1000 bins on ``[0, log 12]``, suits entropies with 12
classes).

``CalibrationAccumulator`` — the confidence of the predicted class (max softmax probability)
against "is the prediction right?", binned uniformly on ``[0, 1]``:

* **ECE** (expected calibration error) ``= Σ_b (n_b / N) · |acc_b − conf_b|``, where ``acc_b``
  and ``conf_b`` are the accuracy and mean confidence of the pixels in bin ``b``: how far, on
  average over pixels, stated confidence is from observed accuracy. 0 = calibrated.
* **MCE** (maximum calibration error) ``= max_b |acc_b − conf_b|`` over non-empty bins.

References: Naeini, Cooper & Hauskrecht, "Obtaining well calibrated probabilities using Bayesian
binning", AAAI 2015; Guo, Pleiss, Sun & Weinberger, "On calibration of modern neural networks",
ICML 2017 (15 bins, right-closed: bin ``i`` holds ``(i/B, (i+1)/B]``, confidence 0 goes to bin 0).

``reliability_bins`` gives the numbers a reliability diagram draws from a
``CalibrationAccumulator.compute()`` result (:func:`phgmm.report.reliability_diagram` draws them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["ErrorDetectionAccumulator", "CalibrationAccumulator", "reliability_bins"]


# -- input handling ------------------------------------------------------------------------
def _as_tensor(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach()
    arr = np.asarray(x)
    if arr.dtype == object:
        raise ValueError(f"{name} must be a numeric array, got dtype object")
    if arr.dtype in (np.uint16, np.uint32, np.uint64):
        arr = arr.astype(np.int64)
    return torch.from_numpy(np.ascontiguousarray(arr))


def _as_bool(x: Any, name: str, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    t = _as_tensor(x, name)
    if tuple(t.shape) != shape:
        raise ValueError(f"{name} has shape {tuple(t.shape)} but the scores have shape {shape}")
    t = t.to(device)
    if t.dtype == torch.bool:
        return t.reshape(-1)
    if t.is_complex() or (t.numel() and not bool(((t == 0) | (t == 1)).all())):
        raise ValueError(f"{name} must be boolean (or 0/1), got other values")
    return (t != 0).reshape(-1)


def _prepare(values: Any, flag: Any, valid: Any, names: tuple[str, str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Flatten ``values`` (float64) and ``flag`` (bool), keeping only the ``valid`` pixels."""
    v = _as_tensor(values, names[0])
    if v.is_complex() or v.dtype == torch.bool:
        raise ValueError(f"{names[0]} must be real numbers, got dtype {v.dtype}")
    if v.device.type == "mps":  # no float64 there
        v = v.cpu()
    shape = tuple(v.shape)
    f = _as_bool(flag, names[1], shape, v.device)
    v = v.reshape(-1).to(torch.float64)
    if valid is not None:
        keep = _as_bool(valid, "valid", shape, v.device)
        v, f = v[keep], f[keep]
    if v.numel() and bool(torch.isnan(v).any()):
        raise ValueError(f"{names[0]} contains NaN on scored pixels")
    return v, f


def _ratio(num: float, den: float) -> float | None:
    return float(num) / float(den) if den > 0 else None


# -- error detection -----------------------------------------------------------------------
class ErrorDetectionAccumulator:
    """Histograms of an uncertainty score over wrong and over right pixels; AUROC / AUPR.

    Bins are fixed at construction: either ``edges`` (strictly increasing, at least 2 values;
    overrides ``num_bins``/``value_range``) or ``num_bins`` equal bins on ``value_range``. Bin
    ``i`` holds ``[edges[i], edges[i+1])``, the last bin also its right edge; scores below
    ``edges[0]`` or above ``edges[-1]`` (±inf included) clamp to the end bins.
    """

    def __init__(
        self,
        num_bins: int = 1000,
        value_range: tuple[float, float] = (0.0, math.log(12)),
        *,
        edges: Sequence[float] | np.ndarray | torch.Tensor | None = None,
    ) -> None:
        if edges is None:
            lo, hi = float(value_range[0]), float(value_range[1])
            if int(num_bins) < 1:
                raise ValueError(f"num_bins must be >= 1, got {num_bins}")
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(f"value_range must be finite with low < high, got {value_range}")
            e = np.linspace(lo, hi, int(num_bins) + 1, dtype=np.float64)
        else:
            e = np.asarray(edges.detach().cpu() if isinstance(edges, torch.Tensor) else edges, dtype=np.float64)
            if e.ndim != 1 or e.size < 2:
                raise ValueError(f"edges must be a 1-D sequence of at least 2 values, got shape {e.shape}")
            if not np.isfinite(e).all() or not (np.diff(e) > 0).all():
                raise ValueError("edges must be finite and strictly increasing")
        self.edges = e
        self.num_bins = e.size - 1
        self.wrong = np.zeros(self.num_bins, dtype=np.int64)
        self.right = np.zeros(self.num_bins, dtype=np.int64)

    def reset(self) -> None:
        self.wrong[:] = 0
        self.right[:] = 0

    def bin_index(self, score: Any) -> torch.Tensor:
        """Bin of each score (flattened, int64, on the scores' device)."""
        s = _as_tensor(score, "score")
        if s.device.type == "mps":
            s = s.cpu()
        s = s.reshape(-1).to(torch.float64)
        inner = torch.from_numpy(self.edges[1:-1]).to(s.device)
        return torch.bucketize(s, inner, right=True)

    @torch.no_grad()
    def update(self, score: Any, wrong: Any, valid: Any | None = None) -> None:
        """``score``: per-pixel uncertainty, any shape (torch or NumPy); ``wrong``: bool map of the
        same shape (prediction != label); ``valid``: optional bool map, False pixels (e.g. label
        255) are skipped."""
        s, w = _prepare(score, wrong, valid, ("score", "wrong"))
        if s.numel() == 0:
            return
        idx = self.bin_index(s)
        n = self.num_bins
        self.wrong += torch.bincount(idx[w], minlength=n).cpu().numpy().astype(np.int64)
        self.right += torch.bincount(idx[~w], minlength=n).cpu().numpy().astype(np.int64)

    # -- distributed helpers ---------------------------------------------------------------
    def state_tensor(self, device: torch.device | str | None = None) -> torch.Tensor:
        """``[wrong counts, right counts]`` as one int64 tensor of length ``2 * num_bins``."""
        t = torch.from_numpy(np.concatenate([self.wrong, self.right]))
        return t.to(device) if device is not None else t

    def load_state_tensor(self, state: torch.Tensor) -> None:
        """Inverse of :meth:`state_tensor` (e.g. after ``dist.all_reduce``)."""
        s = state.detach().cpu().to(torch.int64).reshape(-1).numpy()
        if s.size != 2 * self.num_bins:
            raise ValueError(f"state tensor has {s.size} entries, expected {2 * self.num_bins}")
        self.wrong[:] = s[: self.num_bins]
        self.right[:] = s[self.num_bins :]

    def merge(self, other: ErrorDetectionAccumulator) -> ErrorDetectionAccumulator:
        """Add another accumulator with the same edges into this one; returns ``self``."""
        if other.edges.shape != self.edges.shape or not np.array_equal(other.edges, self.edges):
            raise ValueError("cannot merge error-detection accumulators with different bin edges")
        self.wrong += other.wrong
        self.right += other.right
        return self

    def compute(self) -> dict:
        """``{"auroc", "aupr", "n_wrong", "n_right", "error_rate"}``; a score that is undefined
        (AUROC without wrong or without right pixels, AUPR without wrong pixels) is ``None``."""
        w = self.wrong.astype(np.float64)
        r = self.right.astype(np.float64)
        n_wrong, n_right = int(self.wrong.sum()), int(self.right.sum())
        auroc = aupr = None
        if n_wrong > 0 and n_right > 0:
            right_below = np.cumsum(r) - r  # right pixels in lower bins
            auroc = float(np.sum(w * (right_below + 0.5 * r)) / (float(n_wrong) * float(n_right)))
        if n_wrong > 0:
            # One threshold per bin, from the highest down: precision at "score >= this bin",
            # weighted by the recall gained at this bin (empty-of-wrong bins add nothing).
            tp = np.cumsum(w[::-1])
            fp = np.cumsum(r[::-1])
            gain = w[::-1]
            has = gain > 0
            aupr = float(np.sum(gain[has] * tp[has] / (tp[has] + fp[has])) / n_wrong)
        return {
            "auroc": auroc,
            "aupr": aupr,
            "n_wrong": n_wrong,
            "n_right": n_right,
            "error_rate": _ratio(n_wrong, n_wrong + n_right),
        }

    def __repr__(self) -> str:
        return (
            f"ErrorDetectionAccumulator(num_bins={self.num_bins}, range=({self.edges[0]:g}, "
            f"{self.edges[-1]:g}), n_wrong={int(self.wrong.sum())}, n_right={int(self.right.sum())})"
        )


# -- calibration ---------------------------------------------------------------------------
class CalibrationAccumulator:
    """Per-bin count, sum of confidence and sum of correct over ``num_bins`` equal confidence bins.

    Bin ``i`` holds ``(i/B, (i+1)/B]``; confidence 0 goes to bin 0. Sums are float64 (counts are
    exact up to 2**53 pixels); the state tensor is float64 too.
    """

    def __init__(self, num_bins: int = 15) -> None:
        if int(num_bins) < 1:
            raise ValueError(f"num_bins must be >= 1, got {num_bins}")
        self.num_bins = int(num_bins)
        self.edges = np.arange(self.num_bins + 1, dtype=np.float64) / self.num_bins
        self.count = np.zeros(self.num_bins, dtype=np.float64)
        self.sum_confidence = np.zeros(self.num_bins, dtype=np.float64)
        self.sum_correct = np.zeros(self.num_bins, dtype=np.float64)

    def reset(self) -> None:
        self.count[:] = 0
        self.sum_confidence[:] = 0
        self.sum_correct[:] = 0

    @torch.no_grad()
    def update(self, probs_max: Any, correct: Any, valid: Any | None = None) -> None:
        """``probs_max``: confidence of the predicted class in ``[0, 1]``, any shape (torch or
        NumPy); ``correct``: bool map of the same shape; ``valid``: optional bool map of pixels
        to score. Raises ``ValueError`` for confidences outside ``[0, 1]`` or NaN."""
        c, ok = _prepare(probs_max, correct, valid, ("probs_max", "correct"))
        if c.numel() == 0:
            return
        if bool(((c < 0) | (c > 1)).any()):
            bad = c[(c < 0) | (c > 1)]
            raise ValueError(
                f"probs_max must lie in [0, 1]; got values from {float(bad.min()):g} to {float(bad.max()):g} outside it"
            )
        c_np = c.cpu().numpy()
        ok_np = ok.cpu().numpy()
        # Right-closed bins: index i with edges[i] < c <= edges[i+1]; c == 0 → bin 0.
        idx = np.searchsorted(self.edges[1:-1], c_np, side="left")
        B = self.num_bins
        self.count += np.bincount(idx, minlength=B)
        self.sum_confidence += np.bincount(idx, weights=c_np, minlength=B)
        self.sum_correct += np.bincount(idx[ok_np], minlength=B)

    # -- distributed helpers ---------------------------------------------------------------
    def state_tensor(self, device: torch.device | str | None = None) -> torch.Tensor:
        """``[count, sum_confidence, sum_correct]`` as one float64 tensor of length ``3 * B``."""
        t = torch.from_numpy(np.concatenate([self.count, self.sum_confidence, self.sum_correct]))
        return t.to(device) if device is not None else t

    def load_state_tensor(self, state: torch.Tensor) -> None:
        """Inverse of :meth:`state_tensor` (e.g. after ``dist.all_reduce``)."""
        s = state.detach().cpu().to(torch.float64).reshape(-1).numpy()
        B = self.num_bins
        if s.size != 3 * B:
            raise ValueError(f"state tensor has {s.size} entries, expected {3 * B}")
        self.count[:] = s[:B]
        self.sum_confidence[:] = s[B : 2 * B]
        self.sum_correct[:] = s[2 * B :]

    def merge(self, other: CalibrationAccumulator) -> CalibrationAccumulator:
        """Add another accumulator with the same number of bins into this one; returns ``self``."""
        if other.num_bins != self.num_bins:
            raise ValueError(f"cannot merge {other.num_bins} calibration bins into {self.num_bins}")
        self.count += other.count
        self.sum_confidence += other.sum_confidence
        self.sum_correct += other.sum_correct
        return self

    def compute(self) -> dict:
        """``{"ece", "mce", "count", "accuracy", "confidence", "bins": [{"lower", "upper",
        "count", "accuracy", "confidence"}, ...]}``; ``ece``/``mce`` (and empty bins' accuracy
        and confidence) are ``None`` when there is nothing to score."""
        N = float(self.count.sum())
        bins = []
        ece = 0.0
        mce = None
        for i in range(self.num_bins):
            n = float(self.count[i])
            acc = _ratio(self.sum_correct[i], n)
            conf = _ratio(self.sum_confidence[i], n)
            if n > 0:
                gap = abs(acc - conf)
                ece += n / N * gap
                mce = gap if mce is None else max(mce, gap)
            bins.append(
                {
                    "lower": float(self.edges[i]),
                    "upper": float(self.edges[i + 1]),
                    "count": int(round(n)),
                    "accuracy": acc,
                    "confidence": conf,
                }
            )
        return {
            "ece": ece if N > 0 else None,
            "mce": mce,
            "count": int(round(N)),
            "accuracy": _ratio(self.sum_correct.sum(), N),
            "confidence": _ratio(self.sum_confidence.sum(), N),
            "bins": bins,
        }

    def __repr__(self) -> str:
        return f"CalibrationAccumulator(num_bins={self.num_bins}, count={int(self.count.sum())})"


# -- the numbers of a reliability diagram -------------------------------------------------
def reliability_bins(calibration: dict) -> dict[str, np.ndarray]:
    """What a reliability diagram draws, from a :meth:`CalibrationAccumulator.compute` result:
    one entry per bin, as NumPy arrays.

    ``lower``, ``width``: the bin's left edge and width; ``filled``: the bin holds a pixel;
    ``accuracy``, ``confidence``: its accuracy and mean confidence (0 in an empty bin); ``gap``:
    ``|confidence − accuracy|`` and ``gap_bottom``: ``min(accuracy, confidence)``, the bar from the
    accuracy to the confidence (0 and 0 in an empty bin). The figure itself is
    :func:`phgmm.report.reliability_diagram`.
    """
    bins = calibration.get("bins") or []
    if not bins:
        raise ValueError("calibration has no 'bins' (pass CalibrationAccumulator.compute())")
    lower = np.array([b["lower"] for b in bins], dtype=np.float64)
    upper = np.array([b["upper"] for b in bins], dtype=np.float64)
    filled = np.array([b["count"] > 0 and b["accuracy"] is not None for b in bins], dtype=bool)
    acc = np.array([b["accuracy"] if f else 0.0 for b, f in zip(bins, filled, strict=True)], dtype=np.float64)
    conf = np.array([b["confidence"] if f else 0.0 for b, f in zip(bins, filled, strict=True)], dtype=np.float64)
    return {
        "lower": lower,
        "width": upper - lower,
        "filled": filled,
        "accuracy": acc,
        "confidence": conf,
        "gap": np.abs(conf - acc),
        "gap_bottom": np.minimum(acc, conf),
    }
