"""Score saved predictions of any model against ground truth: ``phgmm evaluate --predictions P
--ground-truth G``.

Predictions are single-channel class-index PNGs (values ``0..C-1``). The ground truth is either

- class indices too (the default): values ``0..C-1`` or the ignore value (255 by default); or
- a data set's native ids together with its class table (``gt_table``, e.g.
  ``load_class_table("camvid")``), which maps them exactly as the data sets do
  (:meth:`phgmm.data.ClassTable.read_label`); the classes are then the table's.

Values that cannot be what the caller said — a prediction outside ``[0, C)``, a class-index
ground truth outside ``[0, C)`` ∪ {ignore}, a native id the table does not know — are refused
with a :class:`~phgmm.data.DatasetError` naming the file and the values, never scored. Files are
matched by their path relative to each folder; every prediction needs its ground truth and vice
versa. The output folder gets ``metrics.json`` (the keys of
:class:`phgmm.metrics.SegmentationEvaluator`, computed from one confusion matrix, trimap and
Boundary IoU accumulated over all images) and ``report.md`` with figures (a few samples drawn on
a gray canvas, as no RGB input is available here).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...conventions import UNKNOWN_IDS
from ...data.classes import IGNORE_INDEX, PHGMM_CLASS_NAMES, PHGMM_COLORS, ClassTable, load_class_table, resolve_classes
from ...data.errors import DatasetError
from ...data.imageio import read_label_png
from ...io import metrics_json_safe, write_json
from ...metrics import SegmentationEvaluator

__all__ = ["score_folders", "read_label_png", "list_pngs", "default_classes"]


def default_classes() -> tuple[list[str], list[tuple[int, int, int]]]:
    """The 12 PHGMM class names and colours of ``phgmm.data.classes``."""
    return list(PHGMM_CLASS_NAMES), [tuple(c) for c in PHGMM_COLORS]


def _values(a: np.ndarray, limit: int = 12) -> str:
    vals = np.unique(a)
    shown = ", ".join(str(int(v)) for v in vals[:limit])
    return shown + (f", ... ({len(vals)} distinct)" if len(vals) > limit else "")


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


def score_folders(
    pred_dir: str | os.PathLike,
    gt_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    class_names: Sequence[str] | None = None,
    colors: Sequence[Sequence[int]] | None = None,
    ignore_index: int = IGNORE_INDEX,
    progress: bool = True,
    num_samples: int = 4,
    trimap_widths: Sequence[int] = range(1, 41),
    boundary_dilation_ratio: float = 0.02,
    title: str | None = None,
    gt_table: ClassTable | str | os.PathLike | None = None,
    unknown_ids: str = "error",
    gt_channel: str = "single",
    miou_exclude: Sequence[str | int] | None = None,
    predicted_only: bool = False,
) -> dict:
    """Score the class-index PNGs in ``pred_dir`` against the ground truth in ``gt_dir``; write
    ``out_dir/metrics.json`` and ``out_dir/report.md``; return the metrics (JSON-safe dict).

    Args:
        class_names, colors: the model's classes (default: the table's with ``gt_table``, else
            the 12 PHGMM classes).
        ignore_index: the ignore value of a class-index ground truth (a table maps to 255).
        gt_table: ``None`` — the ground truth holds class indices ``0..C-1`` and
            ``ignore_index``. A :class:`~phgmm.data.ClassTable` (or a YAML/CSV path or built-in
            name for :func:`~phgmm.data.load_class_table`) — the ground truth holds that data
            set's native ids and is mapped through the table, as the data sets map it.
        unknown_ids: with ``gt_table``: ``"error"`` refuses a native id that is not in the table,
            ``"ignore"`` maps it to 255.
        gt_channel: with ``gt_table``: ``"single"`` or ``"red"`` (SYNTHIA's multi-channel
            ``GT/LABELS``), as :func:`~phgmm.data.load_label` takes it. With ``"single"`` an 8-bit
            colour mask in the table's colours is read as training reads it.
        miou_exclude: class names or indices left out of the mIoU (``[]``: none); default: the
            table's ``miou_exclude`` with ``gt_table``, else class 0 (the 12 PHGMM classes' background).
        predicted_only: score only the ground-truth files that have a prediction (a prediction
            without ground truth is still an error); ``metrics["ground_truth_not_scored"]`` counts
            the others.

    Raises ``FileNotFoundError`` for a missing folder or an unmatched file (naming it),
    ``ValueError`` for an empty folder or a size mismatch, and :class:`~phgmm.data.DatasetError`
    (a ``ValueError``) naming the file and the values for a multi-channel PNG, a prediction
    outside ``[0, C)``, a class-index ground truth outside ``[0, C)`` ∪ {ignore}, or a native id
    not in ``gt_table``. Nothing is written when a file is refused.
    """
    pred_dir, gt_dir, out_dir = Path(pred_dir), Path(gt_dir), Path(out_dir)
    _check_folders(pred_dir, gt_dir)
    table = _load_table(gt_table, unknown_ids, gt_channel, ignore_index)
    class_names, colors = _resolve_classes(class_names, colors, table)
    if miou_exclude is not None:
        excluded = resolve_classes(list(miou_exclude), list(class_names), "miou_exclude")
    else:
        excluded = table.miou_exclude if table is not None else (0,)
    pairs, unpredicted = _pair_files(pred_dir, gt_dir, exclude=out_dir, predicted_only=predicted_only)
    read_pair = _PairReader(len(class_names), ignore_index, table, unknown_ids, gt_channel)
    evaluator = SegmentationEvaluator(
        len(class_names),
        class_names,
        ignore_index=ignore_index,
        exclude_from_mean=excluded,
        trimap_widths=trimap_widths,
        boundary_dilation_ratio=boundary_dilation_ratio,
    )
    samples = _accumulate(evaluator, pairs, read_pair, num_samples, progress)
    metrics = metrics_json_safe({**evaluator.compute(), "miou_excluded": [class_names[i] for i in excluded]})
    if predicted_only:
        metrics["ground_truth_not_scored"] = unpredicted
    if read_pair.census is not None:
        metrics["unknown_ids_ignored_pixels"] = read_pair.census[0]
        metrics["unknown_ids_ignored_fraction"] = read_pair.census[0] / max(1, read_pair.census[1])
    # only now that every file was accepted: nothing is written when one is refused
    _write_outputs(
        out_dir, metrics, class_names, colors, samples, title or f"phgmm score: {pred_dir} vs {gt_dir}", ignore_index
    )
    return metrics


# --------------------------------------------------------------------------- arguments
def _check_folders(pred_dir: Path, gt_dir: Path) -> None:
    for d, what in ((pred_dir, "prediction"), (gt_dir, "ground-truth")):
        if not d.exists():
            raise FileNotFoundError(f"{what} folder {d} does not exist")
        if not d.is_dir():
            raise NotADirectoryError(f"{what} folder {d} is not a directory")


def _load_table(gt_table, unknown_ids: str, gt_channel: str, ignore_index: int) -> ClassTable | None:
    """The ground truth's class table (``None``: it holds class indices), with its options checked."""
    if gt_table is None:
        return None
    table = load_class_table(gt_table)
    if unknown_ids not in UNKNOWN_IDS:
        raise ValueError(f"unknown_ids must be 'error' or 'ignore', got {unknown_ids!r}")
    if gt_channel not in ("single", "red"):
        raise ValueError(f"gt_channel must be 'single' or 'red', got {gt_channel!r}")
    if ignore_index != IGNORE_INDEX:
        raise ValueError(
            f"a class table maps ignored ids to {IGNORE_INDEX}; ignore_index must be "
            f"{IGNORE_INDEX} with gt_table, got {ignore_index}"
        )
    return table


def _resolve_classes(class_names, colors, table: ClassTable | None) -> tuple[list[str], list | None]:
    """The class names and colours: as given, else the table's, else the 12 PHGMM classes."""
    if table is not None:
        if class_names is None:
            class_names = list(table.names)
            if colors is None:
                colors = [tuple(c) for c in table.colors]
        elif len(class_names) != table.num_classes:
            raise ValueError(
                f"{len(class_names)} class names but class table "
                f"'{table.source or table.name}' maps to {table.num_classes} classes"
            )
    if class_names is None or colors is None:
        dn, dc = default_classes()
        if class_names is None:
            class_names = dn
        if colors is None:
            colors = dc if len(dc) == len(class_names) else None
    class_names = list(class_names)
    if len(class_names) < 1:
        raise ValueError("class_names is empty")
    if colors is not None and len(colors) < len(class_names):
        raise ValueError(f"{len(colors)} colours for {len(class_names)} classes")
    return class_names, colors


# --------------------------------------------------------------------------- files
#: Cityscapes' file names: an image ``<city>_<seq>_<frame>_leftImg8bit.png`` (and so its prediction)
#: and its label ids ``<city>_<seq>_<frame>_gtFine_labelIds.png`` share the part before the suffix
_CITYSCAPES_IMAGE = "_leftImg8bit.png"
_CITYSCAPES_LABEL_IDS = ("_gtFine_labelIds.png", "_gtCoarse_labelIds.png")


def _cityscapes_keys(preds: dict[str, Path], gts: dict[str, Path]) -> tuple[dict[str, Path], dict[str, Path]] | None:
    """Both sides keyed by ``<city>/<city>_<seq>_<frame>`` when the predictions are named after
    Cityscapes images and the ground truth is a Cityscapes ``gtFine``/``gtCoarse`` folder (whose
    ``_color`` and ``_instanceIds`` PNGs are left out); None when the names are not Cityscapes'."""
    labels = {
        rel[: -len(suffix)]: path
        for rel, path in gts.items()
        for suffix in _CITYSCAPES_LABEL_IDS
        if rel.endswith(suffix)
    }
    if not labels or not all(rel.endswith(_CITYSCAPES_IMAGE) for rel in preds):
        return None
    return {rel[: -len(_CITYSCAPES_IMAGE)]: path for rel, path in preds.items()}, labels


def _pair_files(
    pred_dir: Path, gt_dir: Path, exclude: Path, predicted_only: bool = False
) -> tuple[list[tuple[Path, Path]], int]:
    """``(prediction, ground truth)`` paths matched by relative path, sorted, and the count of
    ground-truth files left without a prediction: every file needs its partner, except, with
    ``predicted_only``, a ground truth. Cityscapes' own names pair too: ``…_leftImg8bit.png`` with
    ``…_gtFine_labelIds.png``."""
    preds = list_pngs(pred_dir, exclude=exclude)
    gts = list_pngs(gt_dir, exclude=exclude)
    if not preds:
        raise ValueError(f"no PNG files found in prediction folder {pred_dir}")
    if not gts:
        raise ValueError(f"no PNG files found in ground-truth folder {gt_dir}")
    pred_name = gt_name = "{}"  # key → the file name a missing partner would have
    keyed = _cityscapes_keys(preds, gts) if set(preds) != set(gts) else None
    if keyed is not None:
        preds, gts = keyed
        found = next(iter(gts.values())).name
        pred_name = "{}" + _CITYSCAPES_IMAGE
        gt_name = "{}" + next(suffix for suffix in _CITYSCAPES_LABEL_IDS if found.endswith(suffix))

    def present(files: dict[str, Path], root: Path, keys: list[str]) -> str:
        return _describe([files[k].relative_to(root).as_posix() for k in keys], root)

    no_gt = sorted(set(preds) - set(gts))
    if no_gt:
        raise FileNotFoundError(
            f"no ground truth for prediction(s) {present(preds, pred_dir, no_gt)}: "
            f"expected {_describe([gt_name.format(k) for k in no_gt], gt_dir)}"
        )
    no_pred = sorted(set(gts) - set(preds))
    if no_pred and not predicted_only:
        raise FileNotFoundError(
            f"no prediction for ground truth {present(gts, gt_dir, no_pred)}: "
            f"expected {_describe([pred_name.format(k) for k in no_pred], pred_dir)}; to score only "
            f"the {len(preds)} image{'s' if len(preds) != 1 else ''} that have a prediction, "
            f"add --predicted-only (score_folders(..., predicted_only=True))"
        )
    return [(preds[rel], gts[rel]) for rel in sorted(preds)], len(no_pred)


@dataclass
class _PairReader:
    """Reads a prediction and its ground truth as class indices, refusing values that cannot be.
    With a table and ``unknown_ids="ignore"``, ``census`` counts (ignored unknown pixels, pixels)."""

    num_classes: int
    ignore_index: int
    table: ClassTable | None
    unknown_ids: str
    gt_channel: str
    census: list[int] | None = None

    def __post_init__(self) -> None:
        if self.table is not None and self.unknown_ids == "ignore":
            self.census = [0, 0]

    def __call__(self, pp: Path, gp: Path) -> tuple[np.ndarray, np.ndarray]:
        C = self.num_classes
        pred = read_label_png(pp)
        if self.table is not None:  # native ids -> class indices, exactly as the data sets map them
            gt = self.table.read_label(gp, unknown=self.unknown_ids, channel=self.gt_channel)
            if self.census is not None:
                unknown, total, _ = self.table.unknown_fraction(gp, channel=self.gt_channel)
                self.census[0] += unknown
                self.census[1] += total
        else:
            try:
                gt = read_label_png(gp)
            except DatasetError as exc:
                if "single-channel" not in str(exc):
                    raise
                raise DatasetError(
                    f"{exc}; a colour mask is read through the class table whose colours it "
                    f"is painted in: --classes TABLE (score_folders(gt_table=...))"
                ) from None
        if pred.shape != gt.shape:
            raise ValueError(
                f"size mismatch: prediction {pp} is {pred.shape[1]}x{pred.shape[0]} (WxH) "
                f"but ground truth {gp} is {gt.shape[1]}x{gt.shape[0]}"
            )
        bad = (pred < 0) | (pred >= C)
        if bad.any():
            raise DatasetError(
                f"{pp}: prediction values [{_values(pred[bad])}] are outside the class "
                f"range [0, {C}) (predictions must be the model's class indices)"
            )
        if self.table is None:
            bad = ((gt < 0) | (gt >= C)) & (gt != self.ignore_index)
            if bad.any():
                raise DatasetError(
                    f"{gp}: ground-truth values [{_values(gt[bad])}] are neither classes in [0, {C}) nor "
                    f"the ignore value {self.ignore_index}; if this ground truth holds a data set's native "
                    f"ids, give its class table (gt_table / --classes) to map them"
                )
        return pred, gt


# --------------------------------------------------------------------------- scoring and writing
def _accumulate(
    evaluator: SegmentationEvaluator,
    pairs: list[tuple[Path, Path]],
    read_pair: _PairReader,
    num_samples: int,
    progress: bool,
) -> list[tuple]:
    """Feed every pair to ``evaluator``; return ``num_samples`` evenly spread ``(None, gt, pred)``."""
    k = max(0, min(int(num_samples), len(pairs)))
    sample_idx = set(np.linspace(0, len(pairs) - 1, k).round().astype(int).tolist()) if k else set()
    samples = []
    iterator = pairs
    if progress:
        from tqdm import tqdm

        iterator = tqdm(pairs, desc="scoring", unit="img")
    for i, (pp, gp) in enumerate(iterator):
        pred, gt = read_pair(pp, gp)
        evaluator.update(pred, gt)
        if i in sample_idx:
            samples.append((None, gt, pred))
    return samples


def _write_outputs(
    out_dir: Path, metrics: dict, class_names: list[str], colors, samples: list[tuple], title: str, ignore_index: int
) -> None:
    from ...report import write_report

    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "metrics.json", metrics)
    write_report(out_dir, metrics, class_names, colors, samples=samples or None, title=title, ignore_index=ignore_index)
