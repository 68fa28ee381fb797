"""What ``phgmm predict`` writes: class-index PNGs, colour-mask PNGs and overlay JPEGs per image, an
overlay video per video, uncertainty maps; all written atomically from background threads.
"""

from __future__ import annotations

import shutil
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from ...io import AtomicFile, DiskFullError, OutputError
from .inputs import InputFile

__all__ = ["Outputs", "Pending", "VideoOut", "write_png", "write_jpeg", "PNG_COMPRESSION", "JPEG_QUALITY"]

#: zlib level of the written PNGs (1: fast; outputs are written while the model runs)
PNG_COMPRESSION = 1

#: quality of the overlay JPEGs: a photograph under a mask, for looking at. Measured on 768×384
#: overlays: 0.8 ms to encode and about 70 KB, against 6.3 ms and 420 KB as PNG even at zlib level 1,
#: the largest cost of `phgmm predict` outside the forward (benchmarks/README.md)
JPEG_QUALITY = 90
# full-resolution colour (4:4:4): the default 4:2:0 halves it and smears the mask's colours across
# class boundaries, the very thing an overlay shows (0.8 ms and 70 KB instead of 0.5 ms and 55 KB)
_JPEG_PARAMS = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
if hasattr(cv2, "IMWRITE_JPEG_SAMPLING_FACTOR"):
    _JPEG_PARAMS += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]

# zlib level 1, run-length matching (OpenCV's default strategy), every row "up"-filtered instead of
# adaptively: measured on 768×384 outputs, 2-3× faster to encode than OpenCV's defaults and smaller
# (labels 0.4 ms, colour masks 1.3 ms)
_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
if hasattr(cv2, "IMWRITE_PNG_FILTER") and hasattr(cv2, "IMWRITE_PNG_FILTER_UP"):
    _PNG_PARAMS += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]


def _encode_and_write(path: Path, array: np.ndarray, ext: str, params: list[int]) -> Path:
    from ...io import atomic_write_bytes

    ok, buf = cv2.imencode(ext, array, params)
    if not ok:  # pragma: no cover - OpenCV encodes every uint8 array (and uint16 as PNG)
        raise OSError(f"{path}: {ext[1:].upper()} encoding failed")
    return atomic_write_bytes(path, buf.tobytes())


def write_png(path: Path, array: np.ndarray) -> Path:
    """PNG (gray, or BGR order as OpenCV takes it) written atomically at :data:`PNG_COMPRESSION`."""
    return _encode_and_write(path, array, ".png", _PNG_PARAMS)


def write_jpeg(path: Path, bgr: np.ndarray) -> Path:
    """JPEG (BGR order) written atomically at :data:`JPEG_QUALITY`: for pictures, never for labels."""
    return _encode_and_write(path, bgr, ".jpg", _JPEG_PARAMS)


class Outputs:
    """What one run writes, per image or frame (called from writer threads)."""

    def __init__(self, out: Path, colors: Sequence[Sequence[int]]) -> None:
        self.out = out
        pal = np.zeros((max(256, len(colors)), 3), np.uint8)  # classes beyond the table: black
        pal[: len(colors)] = np.asarray(colors, np.uint8).reshape(-1, 3)[:, ::-1]
        self.palette_bgr = pal

    def overlay_bgr(self, rgb: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        color = np.take(self.palette_bgr, pred, axis=0)
        bgr = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
        return color, cv2.addWeighted(bgr, 0.5, color, 0.5, 0.0)

    def image(self, name: str, rgb: np.ndarray, pred: np.ndarray, maps: dict | None) -> list[Path]:
        color, over = self.overlay_bgr(rgb, pred)
        written = [
            write_png(self.out / "labels" / f"{name}.png", pred),
            write_png(self.out / "color" / f"{name}.png", color),
            write_jpeg(self.out / "overlay" / f"{name}.jpg", over),
        ]
        return written + self.maps(name, maps)

    def frame(self, name: str, pred: np.ndarray, maps: dict | None) -> list[Path]:
        return [write_png(self.out / "labels" / f"{name}.png", pred)] + self.maps(name, maps)

    def maps(self, name: str, maps: dict | None) -> list[Path]:
        if not maps:
            return []
        from ...visualize import heatmap, save_png

        written = []
        top = float(np.log(maps["num_classes"]))  # both maps lie in [0, log C]
        for key, folder in (("predictive_entropy", "entropy"), ("mutual_information", "mi")):
            if key not in maps:  # a model without samples of z has its softmax entropy only
                continue
            values = maps[key]
            npy = self.out / folder / f"{name}.npy"
            # atomic like every other output; the suffix stops np.save from appending ".npy"
            with AtomicFile(npy, suffix=".npy") as tmp:
                np.save(tmp, values)
            written += [save_png(self.out / folder / f"{name}.png", heatmap(values, vmin=0.0, vmax=top)), npy]
        return written


class Pending:
    """Futures of background writes, bounded (the oldest is waited for when full); their results
    (lists of written paths) are collected in order."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.futures: deque[Future] = deque()
        self.written: list[Path] = []

    def add(self, future: Future) -> None:
        self.futures.append(future)
        while len(self.futures) > self.limit:
            self.written += self.futures.popleft().result()

    def drain(self) -> list[Path]:
        while self.futures:
            self.written += self.futures.popleft().result()
        return self.written


class VideoOut:
    """The overlay video of one input video (frames encoded in order by one thread; written to a
    temporary file and renamed when complete), plus per-frame labels through the shared pool."""

    def __init__(self, item: InputFile, out: Path, outputs: Outputs, fps: float, size: tuple[int, int]) -> None:
        self.item = item
        self.final = out / "overlay" / f"{item.name}.mp4"
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.file = AtomicFile(self.final, suffix=".mp4")  # OpenCV takes the container from the suffix
        self.tmp = self.file.tmp
        self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        if not self.writer.isOpened():
            self.file.discard()
            raise OSError(f"{self.final}: OpenCV cannot write an mp4v video here")
        self.outputs = outputs
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="phgmm-video")
        self.pending = Pending(8)
        self.frames = 0

    def _write(self, rgb: np.ndarray, pred: np.ndarray) -> list[Path]:
        self.writer.write(self.outputs.overlay_bgr(rgb, pred)[1])
        self.frames += 1
        return []

    def add(self, rgb: np.ndarray, pred: np.ndarray) -> None:
        self.pending.add(self.thread.submit(self._write, rgb, pred))

    def close(self) -> Path:
        try:
            self.pending.drain()
        finally:
            self.thread.shutdown()
            self.writer.release()
        self._check_complete()
        return self.file.commit()

    def _check_complete(self) -> None:
        """OpenCV's writer reports no error (a full disk included): read the file back and refuse
        one that does not hold every frame, so that an .mp4 in place is always a whole video."""
        cap = cv2.VideoCapture(str(self.tmp))
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
        cap.release()
        if n == self.frames:
            return
        self.file.discard()
        kept = (
            "Nothing was lost: the video was being written under a temporary name, now removed, and "
            "every file written before it is complete"
        )
        if shutil.disk_usage(self.final.parent).free < 1 << 20:
            raise DiskFullError(
                f"{self.final}: no space left on device. {kept}. Free some space and run the "
                f"command again with --skip-existing"
            )
        raise OutputError(f"{self.final}: OpenCV wrote {n} of its {self.frames} frames. {kept}")

    def abort(self) -> None:
        self.thread.shutdown(cancel_futures=True)
        self.writer.release()
        self.file.discard()
