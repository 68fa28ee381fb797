"""The model side of inference: :class:`Predictor` runs a trained model (a PyTorch checkpoint or
published folder, an in-memory model, or an ONNX file) on RGB images of any size.

Modes and test-time augmentation: ``mode="whole"`` resizes each image to the model's working size,
runs it, and resizes the logits back; ``mode="slide"`` runs the image at its own resolution (times
each ``scales`` factor) in windows of ``tile`` (default: the working size) every ``stride``
(default: 2/3 of the tile), averaging overlapping logits — for frames larger than the training
crops. ``flip`` and ``scales`` average the softmax of several passes. All of it is
:func:`phgmm.engine.inference.tiling.infer_logits`. The pipeline that feeds it files and videos and
writes its outputs is :mod:`phgmm.engine.inference.pipeline`.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ...models.contracts import LatentNetwork
from ..precision import amp_dtype, autocast, cast_for_autocast, check_device, memory_format, precision_note
from .tiling import check_options, default_stride, infer_logits, size_pair

__all__ = ["Predictor", "DEFAULT_SIZE"]

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
    augmentation (softmax of the passes averaged), see :func:`phgmm.engine.inference.tiling.infer_logits`.

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
        from ...data.classes import PHGMM_CLASS_NAMES, PHGMM_COLORS

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
            from ..checkpoint import load_inference_model

            model = load_inference_model(checkpoint)
        meta = getattr(model, "metadata", None) or {}
        if meta.get("class_names"):
            self.class_names, self.colors = list(meta["class_names"]), [tuple(c) for c in meta["colors"]]
        channels_last = ((meta.get("config") or {}).get("train") or {}).get("channels_last", "auto")
        self.memory_format = memory_format(channels_last)
        if fold_bn:  # same outputs up to rounding; 0.88× the time on a CPU (docs/design.md §8)
            from ...models.fold import fold_batchnorm

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
        from ...threads import intra_op_threads
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
        from ...data.transforms import IMAGENET_MEAN, IMAGENET_STD

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
        """3×h×w model input on the CPU (see :meth:`input_size`), normalised as the model was trained: a
        channels-last view of an h×w×3 array, so a batch of them (:meth:`stack`; one image:
        ``prepare(rgb).unsqueeze(0)``) is channels-last without a copy. Thread-safe: readers run it ahead."""
        from ...data.transforms import resize_image
        from ...visualize import to_rgb_uint8

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The bare model: N×3×h×w → N×C×h×w float logits (on the model's device)."""
        if self.onnx is not None:
            return torch.from_numpy(self.onnx(x.detach().cpu().numpy()))
        with self._autocast():
            out = self.model(x.to(self.device).contiguous(memory_format=self.memory_format))
        return getattr(out, "logits", out).float()

    @torch.no_grad()
    def batch_logits(self, x: torch.Tensor, max_batch: int | None = None) -> torch.Tensor:
        """N×C×h×w logits of a prepared batch (:meth:`prepare`, :meth:`stack`), with this predictor's
        mode and test-time augmentation (:func:`~phgmm.engine.inference.tiling.infer_logits`)."""
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
    def to_image(t: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        if tuple(t.shape[-2:]) == tuple(hw):
            return t
        return F.interpolate(t, size=tuple(hw), mode="bilinear", align_corners=False)

    @staticmethod
    def labels_from_logits(logits: torch.Tensor, hw: tuple[int, int] | None = None) -> np.ndarray:
        """H×W class indices (uint8, or uint16 beyond 256 classes) of 1×C×h×w logits, resized
        (bilinear) to ``hw`` = (H, W) first."""
        if hw is not None:
            logits = Predictor.to_image(logits, hw)
        if logits.device.type == "cpu":  # argmax over C is several times faster channels-last
            logits = logits.contiguous(memory_format=torch.channels_last)
        pred = logits.argmax(1)[0].cpu()
        if logits.shape[1] <= 256:
            return pred.to(torch.uint8).numpy()
        return pred.to(torch.int32).numpy().astype(np.uint16)

    @torch.no_grad()
    def logits(self, rgb: np.ndarray) -> torch.Tensor:
        """1×C×H×W logits at the image's own resolution (CPU)."""
        return self.to_image(self.batch_logits(self.prepare(rgb).unsqueeze(0)).float().cpu(), rgb.shape[:2])

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
        s = self.sample_batch(self.prepare(rgb).unsqueeze(0), n).cpu()
        return self.to_image(s.flatten(0, 1), rgb.shape[:2]).unflatten(0, (n, 1))
