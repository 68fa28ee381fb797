"""Inference on a user's images and videos (``phgmm predict``): class-index PNGs, colour masks,
overlays (an overlay video for a video) and, for PHGMM, uncertainty maps from samples of q(z|x)
(predictive entropy and mutual information).

Inputs are gathered by :mod:`phgmm.engine.inference.inputs` (files, folders, globs, videos); the model
runs in a :class:`~phgmm.engine.inference.predictor.Predictor`; outputs are written by
:mod:`phgmm.engine.inference.outputs`. This module is the pipeline between them.

Speed (:func:`predict_paths`): images are read, decoded and preprocessed by a pool of threads
ahead of the model, batched (``batch`` images of the same input size per forward) and their
outputs encoded and written by another pool, so that decoding and writing overlap the forward
pass. PNGs are written for speed (zlib level 1, "up" row filter; see
:mod:`phgmm.engine.inference.outputs`).
"""

from __future__ import annotations

import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from tqdm.auto import tqdm

from ...data.errors import DatasetError
from ...threads import available_cores
from ..loaders import bad_sample_limit
from .inputs import InputFile, check_unique_names, collect_inputs
from .outputs import Outputs, Pending, VideoOut
from .predictor import Predictor

__all__ = ["predict_paths"]


# -- reading -------------------------------------------------------------------------------------
@dataclass
class _Frame:
    item: InputFile
    index: int | None  # frame number within a video, None for an image
    rgb: np.ndarray
    x: torch.Tensor  # 3×h×w prepared model input


def _open_video(path: Path) -> tuple[cv2.VideoCapture, float, int]:
    """An opened capture, its fps (25 when unknown) and frame count (0 when unknown)."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # our own error says it in one line
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DatasetError(
            f"{path}: cannot read the video (OpenCV cannot open it: not a video, truncated, or a codec it lacks)"
        )
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    return cap, (fps if np.isfinite(fps) and fps > 0 else 25.0), max(count, 0)


def _ordered(pool: ThreadPoolExecutor, tasks: Iterator[Callable[[], Any]], depth: int) -> Iterator[Any]:
    """Results of ``tasks`` in order, up to ``depth`` of them running ahead on ``pool``."""
    futures: deque[Future] = deque()
    try:
        for task in tasks:
            futures.append(pool.submit(task))
            if len(futures) > depth:
                yield futures.popleft().result()
        while futures:
            yield futures.popleft().result()
    finally:
        for f in futures:
            f.cancel()


def _load_image(item: InputFile, predictor: Predictor, skip_bad: bool = False) -> _Frame | str:
    """The frame of an image file; with ``skip_bad``, an unreadable file gives its error message."""
    from ...data.imageio import load_image

    try:
        rgb = load_image(item.path)
    except DatasetError as exc:
        if not skip_bad:
            raise
        return str(exc)
    return _Frame(item, None, rgb, predictor.prepare(rgb))


def _video_frames(item: InputFile, predictor: Predictor, depth: int) -> Iterator[_Frame]:
    cap, _, _ = _open_video(item.path)
    state = {"index": 0, "done": False}

    def read() -> _Frame | None:  # runs on the one reader thread of this video: in order
        if state["done"]:
            return None
        ok, bgr = cap.read()
        if not ok:
            state["done"] = True
            return None
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        frame = _Frame(item, state["index"], rgb, predictor.prepare(rgb))
        state["index"] += 1
        return frame

    def forever() -> Iterator[Callable[[], _Frame | None]]:
        while not state["done"]:
            yield read

    reader = ThreadPoolExecutor(1, thread_name_prefix="phgmm-video-read")
    try:
        n = 0
        for frame in _ordered(reader, forever(), depth):
            if frame is None:
                break
            n += 1
            yield frame
        if n == 0:
            raise DatasetError(f"{item.path}: cannot read the video (OpenCV opens it but decodes no frame)")
    finally:
        state["done"] = True
        reader.shutdown(wait=True, cancel_futures=True)
        cap.release()


def _frames(
    items: Sequence[InputFile],
    predictor: Predictor,
    pool: ThreadPoolExecutor,
    depth: int,
    skipped: list[str] | None = None,
) -> Iterator[_Frame]:
    """Frames of every input in order; with a ``skipped`` list, unreadable images are logged
    there (and on stderr) instead of stopping the run."""
    i = 0
    while i < len(items):
        if items[i].video:
            yield from _video_frames(items[i], predictor, depth)
            i += 1
            continue
        j = i
        while j < len(items) and not items[j].video:
            j += 1
        for frame in _ordered(
            pool, (partial(_load_image, item, predictor, skipped is not None) for item in items[i:j]), depth
        ):
            if isinstance(frame, str):
                skipped.append(frame)
                print(f"skipped a bad image: {frame}", file=sys.stderr, flush=True)
                continue
            yield frame
        i = j


def _batches(frames: Iterable[_Frame], size: int) -> Iterator[list[_Frame]]:
    """Consecutive frames with the same model-input size, at most ``size`` of them."""
    group: list[_Frame] = []
    for f in frames:
        if group and (len(group) >= size or group[0].x.shape != f.x.shape):
            yield group
            group = []
        group.append(f)
    if group:
        yield group


# -- the run -------------------------------------------------------------------------------------
def predict_paths(
    predictor: Predictor,
    inputs: Iterable[str | Path],
    out_dir: str | Path,
    uncertainty: bool = False,
    samples: int = 8,
    overwrite: bool = False,
    progress: bool = True,
    batch: int = 1,
    workers: int | None = None,
    save_frames: bool = False,
    skip_bad: float | None = None,
    skip_existing: bool = False,
) -> list[Path]:
    """Segment the images and videos named by ``inputs`` (files, folders, glob patterns: see
    :func:`collect_inputs`) and write, per image with output name ``<name>`` (e.g. ``cityA/img1``),
    one file in each of these sub-folders of ``out_dir``: ``labels/<name>.png`` (class indices —
    ready for ``phgmm evaluate --predictions out/labels``), ``color/<name>.png`` (colour mask),
    ``overlay/<name>.jpg`` (mask over the image, JPEG) and, with ``uncertainty``, ``entropy/``
    (``.png`` heat map scaled to [0, log C] and ``.npy`` float map) and, for PHGMM, ``mi/``.

    The entropy map is the predictive entropy of ``samples`` decodes of z ~ q(z|x) for PHGMM, and
    the entropy of the softmax for every other model (and ONNX files), which have no latent
    distribution; PHGMM's ``mi/`` holds the mutual information of its samples.

    Per video ``<name>``: ``overlay/<name>.mp4`` (mp4v, the source's fps) and, with
    ``save_frames``, ``labels/<name>/000000.png``… (and the uncertainty maps per frame, which
    need ``save_frames``).

    ``batch`` images of the same model-input size go through the model together; ``workers``
    threads (default: min(4, CPUs)) read and preprocess ahead, as many write. ``skip_bad`` (a
    fraction) logs and skips unreadable images, stopping once more than that share of the images
    were bad. ``skip_existing`` leaves out every input whose outputs are all there (an interrupted
    run continues); otherwise existing outputs are an error unless ``overwrite``. Returns the
    written files.
    """
    out = Path(out_dir)
    items = collect_inputs(inputs, exclude=out)
    _check_request(predictor, items, batch, uncertainty, samples, save_frames, overwrite, skip_existing)
    check_unique_names(items)
    plan = _Plan(out, uncertainty, predictor.can_sample)
    if skip_existing:
        items = plan.unfinished(items)
    elif not overwrite:
        plan.refuse_existing(items)
    videos = _open_videos(items)  # every video must open before any work starts
    plan.make_folders()
    run = _PredictionRun(predictor, plan, batch, workers, uncertainty, samples, save_frames, skip_bad, videos)
    return run.go(items, progress)


def _check_request(
    predictor: Predictor,
    items: Sequence[InputFile],
    batch: int,
    uncertainty: bool,
    samples: int,
    save_frames: bool,
    overwrite: bool,
    skip_existing: bool,
) -> None:
    """Refuse what cannot run, before any work: a bad batch or sample count, video maps without frames."""
    if batch < 1:
        raise ValueError(f"--batch must be at least 1, got {batch}")
    if overwrite and skip_existing:
        raise ValueError("--skip-existing keeps finished outputs and --overwrite replaces them: give one of them")
    if uncertainty and predictor.can_sample and samples < 2:
        raise ValueError(f"--samples must be at least 2 for uncertainty maps, got {samples}")
    videos = [item for item in items if item.video]
    if uncertainty and videos and not save_frames:
        raise ValueError(f"{videos[0].path}: --uncertainty on a video writes its maps per frame: add --save-frames")


def _open_videos(items: Sequence[InputFile]) -> dict[InputFile, tuple[float, int]]:
    """fps and frame count of every video among ``items`` (each opened and closed: a bad one stops here)."""
    meta = {}
    for item in items:
        if item.video:
            cap, fps, count = _open_video(item.path)
            cap.release()
            meta[item] = (fps, count)
    return meta


class _Plan:
    """Where each input's outputs go, and which of them a run writes."""

    def __init__(self, out: Path, uncertainty: bool, mutual_information: bool) -> None:
        self.out = out
        self.maps = (["entropy"] + (["mi"] if mutual_information else [])) if uncertainty else []

    def outputs(self, item: InputFile) -> list[Path]:
        """Every file an input leaves when it is finished (a video: its overlay video, renamed
        into place only once its frames are written)."""
        if item.video:
            return [self.out / "overlay" / f"{item.name}.mp4"]
        files = [
            self.out / "labels" / f"{item.name}.png",
            self.out / "color" / f"{item.name}.png",
            self.out / "overlay" / f"{item.name}.jpg",
        ]
        return files + [self.out / m / f"{item.name}{ext}" for m in self.maps for ext in (".png", ".npy")]

    def unfinished(self, items: Sequence[InputFile]) -> list[InputFile]:
        """The inputs some of whose outputs are missing; says how many were finished already."""
        todo = [item for item in items if not all(p.exists() for p in self.outputs(item))]
        if len(todo) < len(items):
            print(
                f"--skip-existing: {len(items) - len(todo)} of {len(items)} inputs already have all their "
                f"outputs in {self.out}; predicting the other {len(todo)}",
                file=sys.stderr,
                flush=True,
            )
        return todo

    def refuse_existing(self, items: Sequence[InputFile]) -> None:
        for item in items:
            first = self.outputs(item)[0]
            if first.exists():
                raise FileExistsError(
                    f"{first} already exists: pass --skip-existing to continue an interrupted "
                    f"run, --overwrite to replace it, or another --out folder"
                )

    def make_folders(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        for name in ["labels", "color", "overlay"] + self.maps:
            (self.out / name).mkdir(exist_ok=True)


class _PredictionRun:
    """One pass over the inputs: readers ahead of the model, writers behind it (see the module docstring)."""

    def __init__(
        self,
        predictor: Predictor,
        plan: _Plan,
        batch: int,
        workers: int | None,
        uncertainty: bool,
        samples: int,
        save_frames: bool,
        skip_bad: float | None,
        videos: dict[InputFile, tuple[float, int]],
    ) -> None:
        self.predictor, self.plan, self.batch = predictor, plan, batch
        self.workers = max(1, min(4, available_cores()) if workers is None else int(workers))
        self.uncertainty, self.samples, self.save_frames = uncertainty, samples, save_frames
        self.skip_bad, self.videos = skip_bad, videos
        self.outputs = Outputs(plan.out, predictor.colors)
        self.pending = Pending(2 * self.workers + batch)
        self.video: VideoOut | None = None
        self.skipped: list[str] | None = [] if skip_bad is not None else None

    def go(self, items: Sequence[InputFile], progress: bool) -> list[Path]:
        """Run every input; the written files."""
        n_images = sum(not item.video for item in items)
        total = n_images + sum(count for _, count in self.videos.values())
        limit = bad_sample_limit(self.skip_bad or 0.0, n_images)
        readers = ThreadPoolExecutor(self.workers, thread_name_prefix="phgmm-read")
        self.writers = ThreadPoolExecutor(self.workers, thread_name_prefix="phgmm-write")
        bar = tqdm(total=total, desc="predict", unit="img", disable=not progress, dynamic_ncols=True)
        frames = _frames(items, self.predictor, readers, max(2 * self.batch, self.workers + self.batch), self.skipped)
        # The reader and writer threads are the parallelism of decoding and encoding; OpenCV's own pool
        # would split each small call again and take cores from the model's threads (measured on 2 cores:
        # predict ÷ forward 0.86–0.99 with it, 0.88–1.04 without). Restored when the run ends.
        cv_threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            for group in _batches(frames, self.batch):
                if self.skipped and len(self.skipped) > limit:
                    raise DatasetError(
                        f"{len(self.skipped)} unreadable images, more than {self.skip_bad:.0%} of "
                        f"{n_images} allows ({limit}); the first: {self.skipped[0]}. Fix the files, or allow more "
                        f"with --max-bad-fraction F"
                    )
                self.run_batch(group)
                bar.update(len(group))
            self.close_video()
            if self.skipped:
                print(
                    f"skipped {len(self.skipped)} unreadable images (--skip-bad-samples)", file=sys.stderr, flush=True
                )
            return self.pending.drain()
        finally:
            frames.close()
            bar.close()
            if self.video is not None:
                self.video.abort()
            readers.shutdown(wait=True, cancel_futures=True)
            self.writers.shutdown(wait=True, cancel_futures=True)
            cv2.setNumThreads(cv_threads)

    def run_batch(self, group: list[_Frame]) -> None:
        """The model on one batch, and its outputs handed to the writers."""
        x = self.predictor.stack([f.x for f in group])
        logits = self.predictor.batch_logits(x, max_batch=self.batch)
        sampled = None
        if self.uncertainty and self.predictor.can_sample:
            sampled = self.predictor.sample_batch(x, self.samples)
        for k, f in enumerate(group):
            hw = f.rgb.shape[:2]
            pred = self.predictor.labels_from_logits(logits[k : k + 1], hw)
            maps = None
            if self.uncertainty:
                maps = self.maps(sampled[:, k] if sampled is not None else logits[k : k + 1], hw)
            self.emit(f, pred, maps)

    def maps(self, logits: torch.Tensor, hw: tuple[int, int]) -> dict[str, Any]:
        """Uncertainty maps of one image at its own size from S×C×h×w logits: the predictive
        entropy (of S samples of z, or of the one softmax when S = 1) and, for samples, the mutual information."""
        from ...metrics import uncertainty_maps

        s = self.predictor.to_image(logits.float(), hw).cpu().unsqueeze(1)
        m = uncertainty_maps(s)
        keys = ("predictive_entropy", "mutual_information") if s.shape[0] > 1 else ("predictive_entropy",)
        maps: dict[str, Any] = {key: m[key][0].numpy().astype(np.float32) for key in keys}
        maps["num_classes"] = int(s.shape[2])
        return maps

    def emit(self, f: _Frame, pred: np.ndarray, maps: dict[str, Any] | None) -> None:
        """Queue the outputs of one image, or add one frame to its video."""
        if not f.item.video:
            self.pending.add(self.writers.submit(self.outputs.image, f.item.name, f.rgb, pred, maps))
            return
        if self.video is None or self.video.item is not f.item:
            self.close_video()
            hw = f.rgb.shape[:2]
            self.video = VideoOut(f.item, self.plan.out, self.outputs, self.videos[f.item][0], (hw[1], hw[0]))
        self.video.add(f.rgb, pred)
        if self.save_frames:
            self.pending.add(self.writers.submit(self.outputs.frame, f"{f.item.name}/{f.index:06d}", pred, maps))

    def close_video(self) -> None:
        """Finish the current video: its frames first, so that a finished .mp4 means finished frames
        (what --skip-existing reads)."""
        if self.video is not None:
            self.pending.drain()
            self.pending.written.append(self.video.close())
            self.video = None
