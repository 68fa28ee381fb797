"""Inference on a user's images: colour masks, overlays, class-index PNGs and, for PHGMM,
uncertainty maps from samples of q(z|x) (predictive entropy and mutual information)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

__all__ = ["collect_images", "Predictor", "predict_paths", "IMAGE_SUFFIXES", "DEFAULT_SIZE"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
#: working size (W, H) of an ONNX file without phgmm metadata (exported before it existed)
DEFAULT_SIZE = (768, 384)

log = logging.getLogger(__name__)


def collect_images(inputs: Iterable[str | Path]) -> list[Path]:
    """Image files named directly, plus the images inside named folders (sorted, not recursive)."""
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise FileNotFoundError(f"{p}: folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such image file or folder")
    return files


class Predictor:
    """Runs a trained model (PyTorch checkpoint or ONNX file) on RGB images of any size.

    The image is resized to the model's working size (``size`` = (W, H); by default the
    checkpoint's ``data.size``, or the size recorded in the ONNX file's metadata), normalised, and
    the logits are resized back to the image's own size before argmax. An explicit ``size`` wins.
    An ONNX file without metadata (an older export) runs at :data:`DEFAULT_SIZE`, with a warning.
    """

    def __init__(self, checkpoint: str | Path | None = None, onnx: str | Path | None = None,
                 size: Sequence[int] | None = None, device: str = "auto") -> None:
        if (checkpoint is None) == (onnx is None):
            raise ValueError("give exactly one of a checkpoint or an ONNX file")
        from ..data.classes import PHGMM_CLASS_NAMES, PHGMM_COLORS

        self.class_names = list(PHGMM_CLASS_NAMES)
        self.colors = [tuple(c) for c in PHGMM_COLORS]
        self.onnx = None
        self.model = None
        self.mean = self.std = None       # None: the ImageNet statistics of data.transforms
        if checkpoint is not None:
            from .checkpoint import load_model_from_checkpoint
            model, config, names, colors = load_model_from_checkpoint(checkpoint)
            if names:
                self.class_names, self.colors = list(names), list(colors)
            self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available()
                                       else ("cpu" if device == "auto" else device))
            from .precision import memory_format
            self.memory_format = memory_format(config["train"]["channels_last"])
            self.model = model.to(self.device, memory_format=self.memory_format).eval()
            self.size = tuple(size) if size else tuple(config["data"]["size"])
        else:
            from .export import OnnxPredictor
            self.onnx = OnnxPredictor(onnx)
            self.device = torch.device("cpu")
            info = self.onnx.info
            if info is not None:
                self.class_names, self.colors = list(info.class_names), list(info.colors)
                self.mean, self.std = info.mean, info.std
            if size:
                self.size = tuple(size)
            elif info is not None:
                self.size = tuple(info.size)
            else:
                self.size = DEFAULT_SIZE
                log.warning("%s has no phgmm metadata (an older export): running at the default size %dx%d; "
                            "pass --size WxH (the size the model was trained at) or re-export it",
                            onnx, *DEFAULT_SIZE)

    @property
    def can_sample(self) -> bool:
        return self.model is not None and hasattr(self.model, "sample_logits")

    def preprocess(self, rgb: np.ndarray) -> torch.Tensor:
        """1×3×H×W model input at the working size, normalised as the model was trained."""
        from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD, preprocess
        x = preprocess(rgb, self.size).unsqueeze(0)
        if self.mean is None or (tuple(self.mean), tuple(self.std)) == (tuple(IMAGENET_MEAN), tuple(IMAGENET_STD)):
            return x
        # another normalisation (recorded in an ONNX file): back to [0, 1], then its mean/std
        def channels(v):
            return torch.tensor(v, dtype=torch.float32).view(1, 3, 1, 1)
        return (x * channels(IMAGENET_STD) + channels(IMAGENET_MEAN) - channels(self.mean)) / channels(self.std)

    @torch.no_grad()
    def logits(self, rgb: np.ndarray) -> torch.Tensor:
        """1×C×H×W logits at the image's own resolution."""
        x = self.preprocess(rgb)
        if self.onnx is not None:
            out = torch.from_numpy(self.onnx(x.numpy()))
        else:
            out = self.model(x.to(self.device).contiguous(memory_format=self.memory_format)).float().cpu()
        return F.interpolate(out, size=rgb.shape[:2], mode="bilinear", align_corners=False)

    @torch.no_grad()
    def sample_logits(self, rgb: np.ndarray, n: int) -> torch.Tensor:
        """n×1×C×H×W logits decoded from n samples of z ~ q(z|x)."""
        if not self.can_sample:
            raise ValueError("uncertainty maps need a PHGMM checkpoint (sampling q(z|x)); "
                             "ONNX files and baselines have no latent distribution")
        x = self.preprocess(rgb).to(self.device).contiguous(memory_format=self.memory_format)
        s = self.model.sample_logits(x, n).float().cpu()
        return F.interpolate(s.flatten(0, 1), size=rgb.shape[:2], mode="bilinear",
                             align_corners=False).unflatten(0, (n, 1))


def predict_paths(predictor: Predictor, inputs: Iterable[str | Path], out_dir: str | Path,
                  uncertainty: bool = False, samples: int = 8, overwrite: bool = False,
                  progress: bool = True) -> list[Path]:
    """Write, per image ``<stem>``, one file in each of these sub-folders of ``out_dir``:
    ``labels/<stem>.png`` (class indices — ready for ``phgmm evaluate --predictions out/labels``),
    ``color/<stem>.png`` (colour mask), ``overlay/<stem>.png`` (mask over the image) and, with
    ``uncertainty``, ``entropy/`` and ``mi/`` (``.png`` heat maps scaled to [0, log C] and ``.npy``
    float maps). Returns the written files."""
    from ..data.imageio import load_image
    from ..metrics import uncertainty_maps
    from ..visualize import colorize, heatmap, overlay, save_png

    files = collect_images(inputs)
    if uncertainty and not predictor.can_sample:
        raise ValueError("--uncertainty needs a PHGMM checkpoint (it samples q(z|x))")
    if uncertainty and samples < 2:
        raise ValueError(f"--samples must be at least 2 for uncertainty maps, got {samples}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stems = [f.stem for f in files]
    if len(set(stems)) != len(stems):
        dup = sorted({s for s in stems if stems.count(s) > 1})
        raise ValueError(f"several inputs share the file name(s) {dup[:5]}: their outputs would collide")
    if not overwrite:
        clash = [out / "labels" / f"{s}.png" for s in stems if (out / "labels" / f"{s}.png").exists()]
        if clash:
            raise FileExistsError(f"{clash[0]} already exists: pass --overwrite or another --out folder")
    folders = ["labels", "color", "overlay"] + (["entropy", "mi"] if uncertainty else [])
    for name in folders:
        (out / name).mkdir(exist_ok=True)
    written: list[Path] = []
    for f in tqdm(files, desc="predict", disable=not progress, dynamic_ncols=True):
        rgb = load_image(f)
        logits = predictor.logits(rgb)
        pred = logits.argmax(1)[0].numpy().astype(np.uint8)
        color = colorize(pred, predictor.colors)
        written += [save_png(out / "labels" / f"{f.stem}.png", pred),
                    save_png(out / "color" / f"{f.stem}.png", color),
                    save_png(out / "overlay" / f"{f.stem}.png", overlay(rgb, color, 0.5))]
        if uncertainty:
            maps = uncertainty_maps(predictor.sample_logits(rgb, samples))
            top = float(np.log(len(predictor.class_names)))
            for key, name in (("predictive_entropy", "entropy"), ("mutual_information", "mi")):
                values = maps[key][0].numpy().astype(np.float32)
                np.save(out / name / f"{f.stem}.npy", values)
                written += [save_png(out / name / f"{f.stem}.png", heatmap(values, vmin=0.0, vmax=top)),
                            out / name / f"{f.stem}.npy"]
    return written
