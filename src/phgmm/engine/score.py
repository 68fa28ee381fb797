"""Score saved predictions of any model against ground truth: ``phgmm score PRED GT OUT``.

Both folders hold single-channel class-index PNGs (values ``0..C-1``; the ground truth may also
hold the ignore value, 255 by default). Files are matched by their path relative to each folder;
every prediction needs its ground truth and vice versa. The output folder gets ``metrics.json``
(the keys of :class:`phgmm.metrics.SegmentationEvaluator`, computed from one confusion matrix,
trimap and Boundary IoU accumulated over all images) and ``report.md`` with figures (a few
samples drawn on a gray canvas, as no RGB input is available here).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..io import metrics_json_safe, write_json
from ..metrics import SegmentationEvaluator

__all__ = ["score_folders", "read_label_png", "list_pngs", "default_classes"]

_SINGLE_CHANNEL_MODES = {"1", "L", "P", "I", "I;16", "I;16B", "I;16L", "I;16N"}


def default_classes() -> tuple[list[str], list[tuple[int, int, int]]]:
    """The 12 PHGMM class names and colours of ``phgmm.data.classes``."""
    from ..data.classes import PHGMM_CLASS_NAMES, PHGMM_COLORS

    return list(PHGMM_CLASS_NAMES), [tuple(c) for c in PHGMM_COLORS]


def read_label_png(path: str | os.PathLike) -> np.ndarray:
    """Read a single-channel class-index PNG as an ``H×W`` int64 array.

    Raises ``ValueError`` naming the path for a multi-channel (RGB/RGBA/LA) or unreadable image.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as img:
            mode = img.mode
            if mode not in _SINGLE_CHANNEL_MODES:
                raise ValueError(f"{path}: expected a single-channel class-index PNG, got mode {mode!r} "
                                 f"with {len(img.getbands())} channels")
            arr = np.array(img)
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"{path}: cannot be read as a PNG ({e})") from None
    if arr.ndim != 2:
        raise ValueError(f"{path}: expected a single-channel class-index PNG, got an array of shape {arr.shape}")
    return arr.astype(np.int64)


def list_pngs(root: Path, exclude: Path | None = None) -> dict[str, Path]:
    """``{relative posix path: absolute path}`` of every ``*.png`` below ``root`` (sorted)."""
    out = {}
    excl = exclude.resolve() if exclude is not None else None
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.suffix.lower() != ".png":
            continue
        if excl is not None and excl != root.resolve() and excl in p.resolve().parents:
            continue
        out[p.relative_to(root).as_posix()] = p
    return out


def _describe(missing: list[str], root: Path) -> str:
    shown = ", ".join(str(root / m) for m in missing[:5])
    more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
    return shown + more


def score_folders(pred_dir: str | os.PathLike, gt_dir: str | os.PathLike, out_dir: str | os.PathLike,
                  class_names: Sequence[str] | None = None, colors: Sequence[Sequence[int]] | None = None,
                  ignore_index: int = 255, progress: bool = True, num_samples: int = 4,
                  trimap_widths: Sequence[int] = range(1, 41), boundary_dilation_ratio: float = 0.02,
                  title: str | None = None) -> dict:
    """Score the class-index PNGs in ``pred_dir`` against those in ``gt_dir``; write
    ``out_dir/metrics.json`` and ``out_dir/report.md``; return the metrics (JSON-safe dict).

    Raises ``FileNotFoundError`` for a missing folder or an unmatched file (naming it) and
    ``ValueError`` (naming the file) for an empty folder, a size mismatch, a multi-channel PNG,
    a prediction outside ``[0, C)`` or a ground-truth value outside ``[0, C)`` ∪ {ignore}.
    """
    from ..report import write_report

    pred_dir, gt_dir, out_dir = Path(pred_dir), Path(gt_dir), Path(out_dir)
    for d, what in ((pred_dir, "prediction"), (gt_dir, "ground-truth")):
        if not d.exists():
            raise FileNotFoundError(f"{what} folder {d} does not exist")
        if not d.is_dir():
            raise NotADirectoryError(f"{what} folder {d} is not a directory")
    if class_names is None or colors is None:
        dn, dc = default_classes()
        if class_names is None:
            class_names = dn
        if colors is None:
            colors = dc if len(dc) == len(class_names) else None
    class_names = list(class_names)
    C = len(class_names)
    if C < 1:
        raise ValueError("class_names is empty")
    if colors is not None and len(colors) < C:
        raise ValueError(f"{len(colors)} colours for {C} classes")

    preds = list_pngs(pred_dir, exclude=out_dir)
    gts = list_pngs(gt_dir, exclude=out_dir)
    if not preds:
        raise ValueError(f"no PNG files found in prediction folder {pred_dir}")
    if not gts:
        raise ValueError(f"no PNG files found in ground-truth folder {gt_dir}")
    no_gt = sorted(set(preds) - set(gts))
    if no_gt:
        raise FileNotFoundError(f"no ground truth for prediction(s) {_describe(no_gt, pred_dir)}: "
                                f"expected {_describe(no_gt, gt_dir)}")
    no_pred = sorted(set(gts) - set(preds))
    if no_pred:
        raise FileNotFoundError(f"no prediction for ground truth {_describe(no_pred, gt_dir)}: "
                                f"expected {_describe(no_pred, pred_dir)}")

    names = sorted(preds)
    evaluator = SegmentationEvaluator(C, class_names, ignore_index=ignore_index,
                                      trimap_widths=trimap_widths, boundary_dilation_ratio=boundary_dilation_ratio)
    k = max(0, min(int(num_samples), len(names)))
    sample_idx = set(np.linspace(0, len(names) - 1, k).round().astype(int).tolist()) if k else set()
    samples = []

    iterator = names
    if progress:
        from tqdm import tqdm

        iterator = tqdm(names, desc="scoring", unit="img")
    for i, rel in enumerate(iterator):
        pp, gp = preds[rel], gts[rel]
        pred = read_label_png(pp)
        gt = read_label_png(gp)
        if pred.shape != gt.shape:
            raise ValueError(f"size mismatch: prediction {pp} is {pred.shape[1]}x{pred.shape[0]} (WxH) "
                             f"but ground truth {gp} is {gt.shape[1]}x{gt.shape[0]}")
        bad = (pred < 0) | (pred >= C)
        if bad.any():
            raise ValueError(f"{pp}: prediction value {int(pred[bad][0])} is outside the class range [0, {C})")
        bad = ((gt < 0) | (gt >= C)) & (gt != ignore_index)
        if bad.any():
            raise ValueError(f"{gp}: ground-truth value {int(gt[bad][0])} is neither a class in [0, {C}) "
                             f"nor the ignore value {ignore_index}")
        evaluator.update(pred, gt)
        if i in sample_idx:
            samples.append((None, gt, pred))

    metrics = evaluator.compute()
    metrics = metrics_json_safe(metrics)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "metrics.json", metrics)
    write_report(out_dir, metrics, class_names, colors, samples=samples or None,
                 title=title or f"phgmm score: {pred_dir} vs {gt_dir}", ignore_index=ignore_index)
    return metrics
