"""Writing a synthetic data set to disk in Cityscapes' or SYNTHIA's real file layout."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .labels import TO_CITYSCAPES, TO_SYNTHIA
from .render import render_scene_fine

__all__ = ["generate_dataset"]

# fast, deterministic PNG settings (measured): noisy RGB compresses best per ms with the SUB
# filter + Huffman-only coding; flat label maps with run-length coding
_PNG_RGB = [
    cv2.IMWRITE_PNG_COMPRESSION,
    1,
    cv2.IMWRITE_PNG_FILTER,
    cv2.IMWRITE_PNG_FILTER_SUB,
    cv2.IMWRITE_PNG_STRATEGY,
    cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY,
]
_PNG_LABEL = [
    cv2.IMWRITE_PNG_COMPRESSION,
    1,
    cv2.IMWRITE_PNG_FILTER,
    cv2.IMWRITE_PNG_FILTER_SUB,
    cv2.IMWRITE_PNG_STRATEGY,
    cv2.IMWRITE_PNG_STRATEGY_RLE,
]


def generate_dataset(
    out_dir,
    num: int,
    size=(768, 384),
    seed: int = 0,
    fmt: str = "cityscapes",
    val_fraction: float = 0.2,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write ``num`` synthetic scenes to ``out_dir`` in a real on-disk format.

    ``fmt="cityscapes"``: ``leftImg8bit/{train,val}/synth/synth_000000_{i:06d}_leftImg8bit.png``
    and ``gtFine/{train,val}/synth/..._gtFine_labelIds.png`` with native Cityscapes ids; the
    last ``round(num * val_fraction)`` images form ``val``.
    ``fmt="synthia"``: ``RGB/{i:07d}.png`` and ``GT/LABELS/{i:07d}.png`` (16-bit, 3 channels,
    id in the red channel); the split is :class:`~phgmm.data.SynthiaDataset`'s own 7:2 rule and
    ``val_fraction`` is not used.

    Refuses (``FileExistsError``) to write into a non-empty folder unless ``overwrite=True``.
    """
    out = Path(out_dir).expanduser()
    size = _parse_size(size)
    _check_arguments(out, num, fmt, val_fraction, overwrite)
    n_val = _num_val(num, fmt, val_fraction)
    for i in _progress(num, fmt, progress):
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, i])
        rgb, fine = render_scene_fine(rng, size)
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        if fmt == "cityscapes":
            _write_cityscapes(out, i, "val" if i >= num - n_val else "train", bgr, fine)
        else:
            _write_synthia(out, i, bgr, fine)
    return out


def _parse_size(text) -> tuple[int, int]:
    from ...io import SizeError, parse_wxh

    w, h = parse_wxh(text)
    if w < 32 or h < 32:
        raise SizeError(f"size {text!r} is too small (at least 32x32)")
    return w, h


def _check_arguments(out: Path, num: int, fmt: str, val_fraction: float, overwrite: bool) -> None:
    if fmt not in ("cityscapes", "synthia"):
        raise ValueError(f"format must be 'cityscapes' or 'synthia', got {fmt!r}")
    if num < 1:
        raise ValueError(f"num must be >= 1, got {num}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{out}: folder is not empty; refusing to write synthetic data into it "
            f"(choose an empty/new folder or pass --overwrite / overwrite=True)"
        )


def _num_val(num: int, fmt: str, val_fraction: float) -> int:
    """How many of the last images form Cityscapes' ``val`` split (SYNTHIA splits by itself)."""
    n_val = int(round(num * val_fraction)) if fmt == "cityscapes" else 0
    if fmt == "cityscapes" and val_fraction > 0 and num >= 2:
        n_val = min(max(n_val, 1), num - 1)  # both splits non-empty
    return n_val


def _progress(num: int, fmt: str, progress: bool):
    try:
        from tqdm import tqdm

        return tqdm(range(num), desc=f"synth {fmt}", unit="img", disable=not progress)
    except ImportError:  # pragma: no cover
        return range(num)


def _write_cityscapes(out: Path, i: int, split: str, bgr: np.ndarray, fine: np.ndarray) -> None:
    stem = f"synth_000000_{i:06d}"
    d_img = out / "leftImg8bit" / split / "synth"
    d_gt = out / "gtFine" / split / "synth"
    d_img.mkdir(parents=True, exist_ok=True)
    d_gt.mkdir(parents=True, exist_ok=True)
    _write(d_img / f"{stem}_leftImg8bit.png", bgr, _PNG_RGB)
    _write(d_gt / f"{stem}_gtFine_labelIds.png", TO_CITYSCAPES[fine])


def _write_synthia(out: Path, i: int, bgr: np.ndarray, fine: np.ndarray) -> None:
    d_img, d_gt = out / "RGB", out / "GT" / "LABELS"
    d_img.mkdir(parents=True, exist_ok=True)
    d_gt.mkdir(parents=True, exist_ok=True)
    lab = np.zeros(fine.shape + (3,), np.uint16)
    lab[:, :, 2] = TO_SYNTHIA[fine]  # red channel (OpenCV BGR order) = class id
    _write(d_img / f"{i:07d}.png", bgr, _PNG_RGB)
    _write(d_gt / f"{i:07d}.png", lab)


def _write(path: Path, arr: np.ndarray, params=None) -> None:
    ok, buf = cv2.imencode(".png", arr, params or _PNG_LABEL)
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    path.write_bytes(buf.tobytes())
