"""Inference on a user's images and videos: class-index PNGs, colour masks, overlays (an overlay
video for a video) and, for PHGMM, uncertainty maps from samples of q(z|x) (predictive entropy and
mutual information).

Inputs are gathered by :mod:`phgmm.engine.inputs` (files, folders, globs, videos); outputs are
written by :mod:`phgmm.engine.outputs`. This module holds the model side and the pipeline.

Speed (:func:`predict_paths`): images are read, decoded and preprocessed by a pool of threads
ahead of the model, batched (``batch`` images of the same input size per forward) and their
outputs encoded and written by another pool, so that decoding and writing overlap the forward
pass. PNGs are written for speed (zlib level 1, "up" row filter; see :mod:`phgmm.engine.outputs`).

Modes and test-time augmentation (:class:`Predictor`): ``mode="whole"`` resizes each image to
the model's working size, runs it, and resizes the logits back; ``mode="slide"`` runs the image
at its own resolution (times each ``scales`` factor) in windows of ``tile`` (default: the working
size) every ``stride`` (default: 2/3 of the tile), averaging overlapping logits — for frames
larger than the training crops. ``flip`` and ``scales`` average the softmax of several passes.
All of it is :func:`phgmm.engine.inference.infer_logits`.
"""

from __future__ import annotations

import copy
import logging
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
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data.errors import DatasetError
from ..models.contracts import LatentNetwork
from ..threads import available_cores
from .inference import check_options, default_stride, infer_logits, size_pair
from .inputs import IMAGE_SUFFIXES, VIDEO_EXTENSIONS, InputFile, check_unique_names, collect_images, collect_inputs
from .loaders import bad_sample_limit
from .outputs import PNG_COMPRESSION, Outputs, Pending, VideoOut
from .precision import amp_dtype, autocast, cast_for_autocast, check_device, memory_format, precision_note

__all__ = [
    "collect_images",
    "collect_inputs",
    "InputFile",
    "Predictor",
    "predict_paths",
    "IMAGE_SUFFIXES",
    "VIDEO_EXTENSIONS",
    "DEFAULT_SIZE",
    "PNG_COMPRESSION",
]

#: working size (W, H) of an ONNX file without phgmm metadata (exported before it existed)
DEFAULT_SIZE = (768, 384)

log = logging.getLogger(__name__)


# -- the predictor -------------------------------------------------------------------------------
class Predictor:
    """Runs a trained model (PyTorch checkpoint, in-memory model or ONNX file) on RGB images of any size.

    ``mode="whole"`` (default): the image is resized to the model's working size (``size`` = (W, H);
    by default the checkpoint's ``data.size``, the size recorded in the ONNX file's metadata, or a
    model's ``metadata["size"]``), normalised, and the logits are resized back to the image's own
    size before argmax. An explicit ``size`` wins. An ONNX file without metadata (an older export)
    runs at :data:`DEFAULT_SIZE`, with a warning.

    ``mode="slide"``: the image keeps its own resolution; windows of ``tile`` (default: the working
    size) every ``stride`` (default: 2/3 of the tile) are run and their logits averaged where they
    overlap (an image smaller than a tile is padded). ``flip`` / ``scales``: test-time
    augmentation (softmax of the passes averaged), see :func:`phgmm.engine.inference.infer_logits`.

    A PyTorch model runs with its BatchNorms folded into the convolutions before them
    (:func:`phgmm.models.fold.fold_batchnorm`, on a copy); ``fold_bn=False`` runs it as given.
    ``precision`` is ``train.amp``'s setting for the forward pass (:func:`phgmm.engine.precision.amp_dtype`):
    ``auto`` (bf16 on a GPU that has it, fp16 on other GPUs; on a CPU what
    :data:`~phgmm.engine.precision.CPU_AUTO_BF16` says), ``bf16`` (autocast where the device has
    native bf16, else fp32), ``fp16`` (GPU) or ``fp32``; an ONNX model always runs in fp32.
    ``threads``: onnxruntime's intra-op threads (default: the cores this process may use,
    :func:`phgmm.threads.available_cores`); a PyTorch model runs on torch's threads
    (``phgmm predict --threads`` sets them with :func:`phgmm.threads.thread_budget`).
    """

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        onnx: str | Path | None = None,
        size: Sequence[int] | None = None,
        device: str = "auto",
        *,
        model: torch.nn.Module | None = None,
        mode: str = "whole",
        tile: Sequence[int] | None = None,
        stride: Sequence[int] | None = None,
        flip: bool = False,
        scales: Sequence[float] = (1.0,),
        class_names: Sequence[str] | None = None,
        colors: Sequence[Sequence[int]] | None = None,
        fold_bn: bool = True,
        threads: int | None = None,
        precision: str = "auto",
    ) -> None:
        if sum(v is not None for v in (checkpoint, onnx, model)) != 1:
            raise ValueError("give exactly one of a checkpoint, an ONNX file or a model")
        size = size_pair(size, "size")
        tile, stride, scales = check_options(mode, tile, stride, scales)
        self._defaults()
        if onnx is None:
            self._load_torch(checkpoint, model, device, size, fold_bn)
            self._set_precision(precision)
        else:
            self._load_onnx(onnx, device, size, threads)
        if class_names is not None:
            self.class_names = list(class_names)
        if colors is not None:
            self.colors = [tuple(c) for c in colors]
        self.mode = mode
        self.tile = tile or tuple(self.size)
        self.stride = stride or default_stride(self.tile)
        # a stride given alone is checked against the default tile (the working size) here
        check_options(mode, self.tile, self.stride, scales)
        self.flip = bool(flip)
        self.scales = scales
        self._lut = self._normalisation_lut()  # after mean/std

    def _defaults(self) -> None:
        """The PHGMM class table, ImageNet statistics, no model yet."""
        from ..data.classes import PHGMM_CLASS_NAMES, PHGMM_COLORS

        self.class_names = list(PHGMM_CLASS_NAMES)
        self.colors = [tuple(c) for c in PHGMM_COLORS]
        self.onnx = None
        self.model = None
        self.mean = self.std = None  # None: the ImageNet statistics of data.transforms
        self.memory_format = torch.contiguous_format
        self.amp: torch.dtype | None = None
        self.precision = "fp32"

    def _set_precision(self, precision: str) -> None:
        """The autocast dtype of the forward pass, and the words that say which and why; the model's
        convolution and linear weights are cast to it once here instead of on every call (on a copy
        where the model is the caller's own)."""
        self.amp = amp_dtype(precision, self.device)
        self.precision = precision_note(precision, self.device, "--precision")
        if self.amp is not None:
            self.model = cast_for_autocast(self.model if self._own_model else copy.deepcopy(self.model), self.amp)

    def _autocast(self):
        return autocast(self.amp, self.device)

    def _load_torch(
        self,
        checkpoint: str | Path | None,
        model: torch.nn.Module | None,
        device: str,
        size: tuple[int, int] | None,
        fold_bn: bool,
    ) -> None:
        """A checkpoint, published folder or model: on its device, folded, with its classes and size."""
        self.device = check_device(device)  # before loading: a device that cannot serve stops now
        if checkpoint is not None:  # a training checkpoint or a published model folder
            from .checkpoint import load_inference_model

            model = load_inference_model(checkpoint)
        meta = getattr(model, "metadata", None) or {}
        if meta.get("class_names"):
            self.class_names, self.colors = list(meta["class_names"]), [tuple(c) for c in meta["colors"]]
        channels_last = ((meta.get("config") or {}).get("train") or {}).get("channels_last", "auto")
        self.memory_format = memory_format(channels_last)
        if fold_bn:  # same outputs up to rounding; 0.88× the time on a CPU (docs/design.md §8)
            from ..models.fold import fold_batchnorm

            model = fold_batchnorm(model)
        self._own_model = fold_bn or checkpoint is not None  # a copy (or loaded here), not the caller's
        self.model = model.to(self.device, memory_format=self.memory_format).eval()
        if size is None and not meta.get("size"):
            raise ValueError(
                f"{checkpoint or 'the model'}: no working size recorded (data.size): pass --size WxH (size=(W, H))"
            )
        self.size = size or tuple(int(v) for v in meta["size"])

    def _load_onnx(self, onnx: str | Path, device: str, size: tuple[int, int] | None, threads: int | None) -> None:
        """An exported file on onnxruntime's CPU provider, with the classes, statistics and size it records."""
        if str(device).lower() not in ("auto", "cpu"):
            raise ValueError(
                f"device {device!r}: an ONNX model runs on onnxruntime's CPU provider here; "
                f"leave the device out, or predict with the checkpoint on the GPU"
            )
        from ..threads import intra_op_threads
        from .export import OnnxPredictor

        self.onnx = OnnxPredictor(onnx, threads=intra_op_threads(threads))
        self.device = torch.device("cpu")
        info = self.onnx.info
        if info is not None:
            self.class_names, self.colors = list(info.class_names), list(info.colors)
            self.mean, self.std = info.mean, info.std
        self.size = size or (tuple(info.size) if info is not None else DEFAULT_SIZE)
        if size is None and info is None:
            log.warning(
                "%s has no phgmm metadata (an older export): running at the default size %dx%d; "
                "pass --size WxH (the size the model was trained at) or re-export it",
                onnx,
                *DEFAULT_SIZE,
            )

    def _normalisation_lut(self) -> np.ndarray:
        """uint8 → normalised float32 per channel, one ``cv2.LUT``; for the ImageNet statistics
        computed exactly as :func:`phgmm.data.transforms.normalize` does (bit-identical inputs)."""
        from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD

        mean = np.asarray(IMAGENET_MEAN if self.mean is None else self.mean, dtype=np.float32).reshape(1, 3)
        std = np.asarray(IMAGENET_STD if self.std is None else self.std, dtype=np.float32).reshape(1, 3)
        return ((np.arange(256, dtype=np.float32)[:, None] / 255.0 - mean) / std).astype(np.float32).reshape(1, 256, 3)

    @property
    def can_sample(self) -> bool:
        return isinstance(self.model, LatentNetwork)  # None with an ONNX model

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def input_size(self, rgb: np.ndarray) -> tuple[int, int]:
        """(W, H) of the model input for this image: the working size in whole mode, the image's
        own size in slide mode."""
        return tuple(self.size) if self.mode == "whole" else (int(rgb.shape[1]), int(rgb.shape[0]))

    def prepare(self, rgb: np.ndarray) -> torch.Tensor:
        """3×h×w normalised model input on the CPU, a channels-last view of an h×w×3 array (so a
        batch of them is channels-last without a copy). Thread-safe: readers run it ahead."""
        from ..data.transforms import resize_image
        from ..visualize import to_rgb_uint8

        arr = np.asarray(rgb)
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
            arr = to_rgb_uint8(arr)
        hwc = cv2.LUT(np.ascontiguousarray(resize_image(arr, self.input_size(arr))), self._lut)
        return torch.from_numpy(hwc).permute(2, 0, 1)

    @staticmethod
    def stack(xs: Sequence[torch.Tensor]) -> torch.Tensor:
        """N×3×h×w batch of :meth:`prepare`'d inputs (channels-last; one copy, none for N = 1)."""
        if len(xs) == 1:
            return xs[0].unsqueeze(0)
        return torch.stack([x.permute(1, 2, 0) for x in xs]).permute(0, 3, 1, 2)

    def preprocess(self, rgb: np.ndarray) -> torch.Tensor:
        """1×3×h×w model input (see :meth:`input_size`), normalised as the model was trained."""
        return self.prepare(rgb).unsqueeze(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The bare model: N×3×h×w → N×C×h×w float logits (on the model's device)."""
        if self.onnx is not None:
            return torch.from_numpy(self.onnx(x.detach().cpu().numpy()))
        with self._autocast():
            out = self.model(x.to(self.device).contiguous(memory_format=self.memory_format))
        return getattr(out, "logits", out).float()

    @torch.no_grad()
    def infer(self, x: torch.Tensor, max_batch: int | None = None) -> torch.Tensor:
        """N×C×h×w logits of a prepared batch, with this predictor's mode and test-time
        augmentation (:func:`~phgmm.engine.inference.infer_logits`)."""
        if self.onnx is None:
            x = x.to(self.device)
        return infer_logits(
            self.forward,
            x,
            mode=self.mode,
            tile=self.tile,
            stride=self.stride,
            flip=self.flip,
            scales=self.scales,
            max_batch=max_batch,
        )

    @staticmethod
    def _to_image(t: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        if tuple(t.shape[-2:]) == tuple(hw):
            return t
        return F.interpolate(t, size=tuple(hw), mode="bilinear", align_corners=False)

    @staticmethod
    def labels_from_logits(logits: torch.Tensor, hw: tuple[int, int] | None = None) -> np.ndarray:
        """H×W class indices (uint8, or uint16 beyond 256 classes) of 1×C×h×w logits, resized
        (bilinear) to ``hw`` = (H, W) first."""
        if hw is not None:
            logits = Predictor._to_image(logits, hw)
        if logits.device.type == "cpu":  # argmax over C is several times faster channels-last
            logits = logits.contiguous(memory_format=torch.channels_last)
        pred = logits.argmax(1)[0].cpu()
        if logits.shape[1] <= 256:
            return pred.to(torch.uint8).numpy()
        return pred.to(torch.int32).numpy().astype(np.uint16)

    @torch.no_grad()
    def logits(self, rgb: np.ndarray) -> torch.Tensor:
        """1×C×H×W logits at the image's own resolution (CPU)."""
        return self._to_image(self.infer(self.preprocess(rgb)).float().cpu(), rgb.shape[:2])

    @torch.no_grad()
    def sample_batch(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """n×N×C×h×w logits of a prepared batch, from n samples of z ~ q(z|x) (in slide mode
        each window samples on its own; no flip/scale augmentation)."""
        if not self.can_sample:
            raise ValueError(
                "uncertainty maps need a PHGMM checkpoint (sampling q(z|x)); "
                "ONNX files and baselines have no latent distribution"
            )
        x = x.to(self.device).contiguous(memory_format=self.memory_format)
        if self.mode == "whole":
            with self._autocast():
                return self.model.sample_logits(x, n).float()

        def samples_as_channels(t: torch.Tensor) -> torch.Tensor:  # N×(n·C)×h×w: slide averages per channel
            with self._autocast():
                s = self.model.sample_logits(t.contiguous(memory_format=self.memory_format), n).float()
            return s.permute(1, 0, 2, 3, 4).flatten(1, 2)

        out = infer_logits(samples_as_channels, x, mode="slide", tile=self.tile, stride=self.stride)
        return out.unflatten(1, (n, -1)).permute(1, 0, 2, 3, 4)

    @torch.no_grad()
    def sample_logits(self, rgb: np.ndarray, n: int) -> torch.Tensor:
        """n×1×C×H×W logits decoded from n samples of z ~ q(z|x), at the image's own resolution."""
        if not self.can_sample:
            raise ValueError(
                "uncertainty maps need a PHGMM checkpoint (sampling q(z|x)); "
                "ONNX files and baselines have no latent distribution"
            )
        s = self.sample_batch(self.preprocess(rgb), n).cpu()
        return self._to_image(s.flatten(0, 1), rgb.shape[:2]).unflatten(0, (n, 1))


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
    from ..data.imageio import load_image

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
    run = _Run(predictor, plan, batch, workers, uncertainty, samples, save_frames, skip_bad, videos)
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


class _Run:
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
        logits = self.predictor.infer(x, max_batch=self.batch)
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
        from ..metrics import uncertainty_maps

        s = self.predictor._to_image(logits.float(), hw).cpu().unsqueeze(1)
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
