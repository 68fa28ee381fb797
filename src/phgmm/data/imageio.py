"""Reading image and label files: the one place where pixels come off the disk.

- :data:`IMAGE_EXTENSIONS`: the file suffixes the whole project treats as images (data sets,
  ``phgmm predict`` folders).
- :func:`imread`: raw decode with OpenCV ``IMREAD_UNCHANGED`` (8/16-bit, any channel count).
- :func:`load_image`: an image as 8-bit RGB (through :func:`phgmm.visualize.to_rgb_uint8`).
- :func:`imread_label`: a label file as stored, except that a palette PNG gives its indices
  (OpenCV would expand them to the palette's colours).
- :func:`load_label`: a label map with its native ids, as the data sets read it (OpenCV; 16-bit
  and SYNTHIA's multi-channel maps included; palette PNGs as their indices).
- :func:`read_label_png`: a strictly single-channel class-index PNG (Pillow, so palette PNGs
  give their indices), as ``phgmm evaluate --predictions`` reads predictions.

Every failure raises :class:`~phgmm.data.errors.DatasetError` naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ..visualize import to_rgb_uint8
from .errors import DatasetError

__all__ = [
    "IMAGE_EXTENSIONS",
    "list_images",
    "imread",
    "imread_label",
    "is_palette_png",
    "load_image",
    "load_label",
    "label_ids",
    "read_label_png",
    "exif_orientation",
    "apply_orientation",
]

#: Suffixes (lower case) of the image files the project reads; every folder listing uses this.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".webp")

# A file OpenCV cannot decode is reported here as one DatasetError naming it; OpenCV's own
# "[ WARN:0@1.05] … PNG input buffer is incomplete" and "[ERROR:0@28.0] … IHDR chunk shall be
# first" lines would only repeat it, less clearly, and break the one-line message.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

# Pillow modes that hold one value per pixel (a palette image holds its palette indices)
_SINGLE_CHANNEL_MODES = {"1", "L", "P", "I", "I;16", "I;16B", "I;16L", "I;16N"}


def list_images(folder: str | os.PathLike) -> list[Path]:
    """The image files directly inside ``folder`` (not recursive), sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def imread(path: str | os.PathLike, what: str = "image") -> np.ndarray:
    """Decode an image file as stored (OpenCV ``IMREAD_UNCHANGED``: BGR order, 8/16-bit).

    ``what`` names the file's role in the error message ("image", "label map").
    """
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"{p}: {what} file not found")
    buf = np.fromfile(str(p), dtype=np.uint8)  # also works for non-ASCII paths
    arr = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if buf.size else None
    if arr is None:
        raise DatasetError(
            f"{p}: cannot decode {what} (unreadable, truncated or not an image file; expected a valid PNG/JPEG)"
        )
    return arr


def is_palette_png(path: str | os.PathLike) -> bool:
    """True for a PNG stored with a palette (colour type 3, Pillow's mode ``P``), as VOC and many
    annotation tools write label maps: each pixel holds an index, the palette only says how to show it."""
    with open(path, "rb") as fh:
        head = fh.read(26)
    # signature (8 bytes), IHDR length and type (8), width, height (8), bit depth (1), colour type (1)
    return len(head) == 26 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR" and head[25] == 3


def imread_label(path: str | os.PathLike) -> np.ndarray:
    """A label file as stored (:func:`imread`), except that a palette PNG gives its indices (H×W
    uint8): OpenCV would expand them to the palette's colours and the ids would be lost."""
    p = Path(path)
    if p.is_file() and p.suffix.lower() == ".png" and is_palette_png(p):
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(p) as img:
                img.load()
                if img.mode == "P":
                    return np.ascontiguousarray(np.array(img))
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            pass  # undecodable: imread names the file below
    return imread(p, "label map")


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as 8-bit RGB (HxWx3 uint8); gray, RGBA and 16-bit are converted.

    The EXIF orientation a camera records (a phone photo taken upright is stored sideways) is
    applied, so the pixels are the picture every viewer shows and the one its label map was
    drawn on. Raises :class:`DatasetError` if the file is missing, unreadable or truncated.
    """
    rgb = to_rgb_uint8(imread(path, "image"), bgr=True)
    return apply_orientation(rgb, exif_orientation(path))


def exif_orientation(path: str | os.PathLike) -> int:
    """The EXIF orientation tag (1–8) of an image file; 1 (as stored) when it has none."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    with open(p, "rb") as fh:
        head = fh.read(1 << 16)
    # TIFF: OpenCV's decoder turns it already, even with IMREAD_UNCHANGED
    if head[:4] in (b"II*\0", b"MM\0*"):
        return 1
    # only files that hold EXIF are opened (JPEG's APP1 "Exif", PNG's eXIf, WebP's EXIF chunk)
    if not (b"Exif" in head or b"eXIf" in head or b"EXIF" in head):
        return 1
    try:
        with Image.open(p) as img:
            value = img.getexif().get(0x0112, 1)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return 1  # the pixels decoded; unreadable metadata is no reason to refuse them
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """``image`` (H×W or H×W×C) turned as EXIF ``orientation`` says (Pillow's ``exif_transpose``)."""
    if orientation in (5, 6, 7, 8):
        image = np.swapaxes(image, 0, 1)  # transpose; then flips give the four turned cases
    flip_rows = orientation in (3, 4, 7, 8)
    flip_cols = orientation in (2, 3, 6, 7)
    if flip_rows:
        image = image[::-1]
    if flip_cols:
        image = image[:, ::-1]
    return np.ascontiguousarray(image) if orientation != 1 else image


def load_label(path: str | os.PathLike, channel: str = "single") -> np.ndarray:
    """Read a label map with its native ids (8- or 16-bit, no conversion).

    ``channel="single"``: the file must hold one channel (a 3-channel file whose channels are
    equal is accepted; a palette PNG gives its indices); ``channel="red"``: for multi-channel files
    take the red channel (the last one in OpenCV's BGR order), as SYNTHIA's ``GT/LABELS`` need.
    """
    if channel not in ("single", "red"):
        raise ValueError(f"channel must be 'single' or 'red', got {channel!r}")
    return label_ids(imread_label(path), path, channel)


def label_ids(arr: np.ndarray, path: str | os.PathLike, channel: str = "single") -> np.ndarray:
    """:func:`load_label`'s ids from a file already read with :func:`imread_label` (one decode)."""
    if channel not in ("single", "red"):
        raise ValueError(f"channel must be 'single' or 'red', got {channel!r}")
    if arr.ndim == 3:
        if arr.shape[2] == 1:
            arr = arr[:, :, 0]
        elif channel == "red":
            arr = arr[:, :, 2] if arr.shape[2] >= 3 else arr[:, :, 0]
        else:
            c0 = arr[:, :, 0]
            if arr.shape[2] >= 3 and np.array_equal(c0, arr[:, :, 1]) and np.array_equal(c0, arr[:, :, 2]):
                arr = c0
            else:
                raise DatasetError(
                    f"{path}: label map has {arr.shape[2]} different channels, expected "
                    f"a single-channel id map (one integer id per pixel), an 8-bit colour mask "
                    f"read through a class table, or ids in the red channel (SYNTHIA: channel red)"
                )
    return np.ascontiguousarray(arr)


def read_label_png(path: str | os.PathLike) -> np.ndarray:
    """Read a single-channel class-index PNG as an ``H×W`` int64 array.

    Raises :class:`DatasetError` (a ``ValueError``) naming the path for a missing, unreadable or
    multi-channel (RGB/RGBA/LA) image.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: label file not found")
    try:
        with Image.open(path) as img:
            mode = img.mode
            if mode not in _SINGLE_CHANNEL_MODES:
                raise DatasetError(
                    f"{path}: expected a single-channel class-index PNG, got mode {mode!r} "
                    f"with {len(img.getbands())} channels"
                )
            arr = np.array(img)
    except (UnidentifiedImageError, OSError) as e:
        raise DatasetError(f"{path}: cannot be read as a PNG ({e})") from None
    if arr.ndim != 2:
        raise DatasetError(f"{path}: expected a single-channel class-index PNG, got an array of shape {arr.shape}")
    return arr.astype(np.int64)
