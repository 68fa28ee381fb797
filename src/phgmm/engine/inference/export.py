"""ONNX export of the inference graph, the metadata that travels with it, and an onnxruntime predictor.

Only the inference graph is exported: the model in eval mode, with PHGMM's PostNet removed (it is a
training-only module; PHGMM's eval-mode forward returns N×C×H×W logits and never runs it). The
graph has one input ``image`` (N×3×H×W float32) and one output ``logits`` (N×C×H×W), with dynamic
batch, height and width, so a single file serves every input size.

What a predictor needs besides the graph is stored in the file's ``metadata_props`` (keys
``phgmm.*``, see :class:`OnnxModelInfo`): the working size W×H the model was trained at, the class
names and colours, the normalisation mean/std, the model name and the number of classes.
:func:`export_checkpoint` writes them from the checkpoint; ``phgmm predict --onnx`` reads them.

The exporter tried first is ``torch.onnx.export(..., dynamo=True)`` (``torch.export`` +
onnxscript); if it fails on the installed torch, the TorchScript exporter with ``dynamic_axes`` is
used instead. Weights are stored inside the one ``.onnx`` file (no external-data side file), and
the file is written atomically (temporary file in the same folder + ``os.replace``).

``onnx``, ``onnxscript`` and ``onnxruntime`` are optional dependencies: ``pip install phgmm[onnx]``.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ...io import AtomicFile

__all__ = [
    "export_onnx",
    "export_checkpoint",
    "OnnxPredictor",
    "OnnxModelInfo",
    "InferenceGraph",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "METADATA_PREFIX",
]

INPUT_NAME = "image"
OUTPUT_NAME = "logits"
METADATA_PREFIX = "phgmm."
_METADATA_FORMAT = "1"
_DIMS = {0: "batch", 2: "height", 3: "width"}
_INSTALL_HINT = "ONNX support is optional: install it with `pip install phgmm[onnx]`"

log = logging.getLogger(__name__)


# -- metadata ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OnnxModelInfo:
    """What ``predict --onnx`` needs to run an exported graph like its checkpoint.

    Stored as ``metadata_props`` with the keys ``phgmm.size`` (``"WxH"``), ``phgmm.class_names``,
    ``phgmm.colors``, ``phgmm.mean``, ``phgmm.std`` (JSON lists), ``phgmm.model``,
    ``phgmm.num_classes``, plus ``phgmm.backbone``, ``phgmm.version`` and ``phgmm.format``.
    """

    size: tuple[int, int]  # (W, H): the working size the model was trained at
    class_names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    model: str
    num_classes: int
    backbone: str | None = None

    def to_metadata(self) -> dict[str, str]:
        from ...version import __version__

        w, h = self.size
        props = {
            "format": _METADATA_FORMAT,
            "size": f"{int(w)}x{int(h)}",
            "class_names": json.dumps(list(self.class_names)),
            "colors": json.dumps([[int(v) for v in c] for c in self.colors]),
            "mean": json.dumps([float(v) for v in self.mean]),
            "std": json.dumps([float(v) for v in self.std]),
            "model": str(self.model),
            "num_classes": str(int(self.num_classes)),
            "version": __version__,
        }
        if self.backbone:
            props["backbone"] = str(self.backbone)
        return {METADATA_PREFIX + k: v for k, v in props.items()}

    @classmethod
    def from_metadata(cls, props: Mapping[str, str], source: str = "ONNX file") -> OnnxModelInfo | None:
        """Parse ``metadata_props``; None when the file carries no ``phgmm.*`` metadata (an export
        made before the metadata existed, or by another tool)."""
        get = {k[len(METADATA_PREFIX) :]: v for k, v in props.items() if k.startswith(METADATA_PREFIX)}
        if "size" not in get:
            return None
        from ...io import parse_wxh

        try:
            return cls(
                size=parse_wxh(get["size"]),
                class_names=tuple(str(n) for n in json.loads(get["class_names"])),
                colors=tuple(tuple(int(v) for v in c) for c in json.loads(get["colors"])),
                mean=tuple(float(v) for v in json.loads(get["mean"])),
                std=tuple(float(v) for v in json.loads(get["std"])),
                model=get["model"],
                num_classes=int(get["num_classes"]),
                backbone=get.get("backbone"),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"{source}: unreadable phgmm metadata ({type(exc).__name__}: {exc})") from None

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        class_names: Sequence[str] | None = None,
        colors: Sequence[Sequence[int]] | None = None,
    ) -> OnnxModelInfo:
        """From a checkpoint's config dict and class table. Without a class table, the 12 PHGMM
        classes (what :class:`~phgmm.engine.inference.predictor.Predictor` assumes for such a checkpoint)."""
        from ...data.classes import PHGMM_CLASS_NAMES, PHGMM_COLORS
        from ...data.transforms import IMAGENET_MEAN, IMAGENET_STD

        if not class_names:
            class_names, colors = PHGMM_CLASS_NAMES, PHGMM_COLORS
        model = config["model"]
        return cls(
            size=tuple(int(v) for v in config["data"]["size"]),
            class_names=tuple(class_names),
            colors=tuple(tuple(int(v) for v in c) for c in colors),
            mean=tuple(IMAGENET_MEAN),
            std=tuple(IMAGENET_STD),
            model=str(model["name"]),
            num_classes=int(model["num_classes"]),
            backbone=model.get("backbone"),
        )


# -- export --------------------------------------------------------------------------------------
class InferenceGraph(nn.Module):
    """``image → logits``: the eval-mode forward of a segmentation network, PostNet removed.

    Wraps a deep copy, so the caller's model (its mode, its PostNet) is left untouched.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        model = copy.deepcopy(model).cpu().float()
        if getattr(model, "postnet", None) is not None:
            model.postnet = None
        self.model = model.eval()
        self.eval()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        out = self.model(image)
        logits = getattr(out, "logits", out)
        if not isinstance(logits, torch.Tensor):
            raise TypeError(f"the model's eval-mode forward must return a logits tensor, got {type(out).__name__}")
        return logits


#: loggers that warn about nothing a user can act on during an export: the exporter's registry
#: (one line per torchvision op it skips; torchvision is not installed) and onnxscript's optimiser
#: (a Split with several outputs is left unfolded, which the graph does not need)
_QUIET_LOGGERS = ("torch.onnx._internal.exporter._registration", "onnxscript.optimizer._constant_folding")


def _export_dynamo(graph: nn.Module, example: torch.Tensor, path: str, opset: int | None) -> None:
    loggers = [logging.getLogger(name) for name in _QUIET_LOGGERS]
    old_levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph,
                (example,),
                path,
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                opset_version=opset,
                external_data=False,
                dynamic_shapes=(dict(_DIMS),),
                optimize=True,
                verbose=False,
            )
    finally:
        for lg, level in zip(loggers, old_levels, strict=True):
            lg.setLevel(level)


def _export_torchscript(graph: nn.Module, example: torch.Tensor, path: str, opset: int | None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            (example,),
            path,
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset or 17,
            dynamic_axes={INPUT_NAME: dict(_DIMS), OUTPUT_NAME: dict(_DIMS)},
        )


def _export_graph(graph: nn.Module, example: torch.Tensor, path: str, opset: int | None, exporter: str) -> None:
    """Dynamo first (``auto``), the TorchScript exporter when it fails."""
    errors: list[str] = []
    if exporter in ("auto", "dynamo"):
        try:
            _export_dynamo(graph, example, path, opset)
            return
        except Exception as exc:  # noqa: BLE001 - any exporter failure triggers the fallback
            if exporter == "dynamo":
                raise
            errors.append(f"dynamo exporter: {type(exc).__name__}: {exc}")
            log.warning("dynamo ONNX export failed (%s); falling back to the TorchScript exporter", exc)
    try:
        _export_torchscript(graph, example, path, opset)
    except Exception as exc:
        errors.append(f"TorchScript exporter: {type(exc).__name__}: {exc}")
        raise RuntimeError("ONNX export failed:\n  " + "\n  ".join(errors)) from exc


def _write_metadata(path: str, props: Mapping[str, str]) -> None:
    import onnx

    proto = onnx.load(path)
    kept = {p.key: p.value for p in proto.metadata_props if p.key not in props}
    onnx.helper.set_model_props(proto, {**kept, **props})
    onnx.save(proto, path)


def export_onnx(
    model: nn.Module,
    out_path: str | os.PathLike,
    example_size: Sequence[int] = (768, 384),
    opset: int | None = None,
    overwrite: bool = False,
    exporter: str = "auto",
    info: OnnxModelInfo | None = None,
) -> Path:
    """Export ``model``'s inference graph to ONNX; returns the written path.

    Args:
        model: PHGMM or a baseline (any module whose eval-mode forward gives logits, or an object
            with ``.logits``). It is deep-copied; the original is not modified.
        out_path: the ``.onnx`` file to write (parent folders are created).
        example_size: (W, H) of the example input used for tracing; the exported graph accepts any
            batch, height and width.
        opset: ONNX opset (None: the exporter's default).
        overwrite: replace an existing file (otherwise ``FileExistsError``).
        exporter: ``"auto"`` (dynamo, then TorchScript on failure), ``"dynamo"`` or ``"torchscript"``.
        info: written into the file's ``metadata_props`` (working size, classes, normalisation…)
            so that a predictor runs the graph like the checkpoint. Without it the file has no
            metadata and ``phgmm predict --onnx`` falls back to the default size with a warning;
            :func:`export_checkpoint` fills it in from the checkpoint.
    """
    if exporter not in ("auto", "dynamo", "torchscript"):
        raise ValueError(f"exporter must be 'auto', 'dynamo' or 'torchscript', got {exporter!r}")
    out = Path(out_path)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite (overwrite=True) to replace it")
    try:
        import onnx  # noqa: F401  (both exporters need it)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(_INSTALL_HINT) from exc
    w, h = (int(v) for v in example_size)
    graph = InferenceGraph(model)
    # Batch 2, not 1: torch.export specialises dimensions of size 0/1 to constants.
    example = torch.randn(2, _in_channels(graph.model), h, w)

    with AtomicFile(out) as tmp:
        _export_graph(graph, example, str(tmp), opset, exporter)
        if info is not None:
            _write_metadata(str(tmp), info.to_metadata())
        if not overwrite and out.exists():  # created by someone else while we exported
            raise FileExistsError(f"{out} appeared during the export; pass --overwrite (overwrite=True) to replace it")
    return out


def export_checkpoint(
    checkpoint: str | os.PathLike,
    out_path: str | os.PathLike,
    example_size: Sequence[int] | None = None,
    opset: int | None = None,
    overwrite: bool = False,
    exporter: str = "auto",
) -> tuple[Path, OnnxModelInfo]:
    """Export a training checkpoint's inference graph with its metadata (:class:`OnnxModelInfo`).

    ``example_size`` (W, H) is only the tracing size (default: the checkpoint's ``data.size``);
    the metadata always records the checkpoint's ``data.size`` as the working size.
    Returns the written path and the metadata.
    """
    from ..checkpoint import load_inference_model

    model = load_inference_model(checkpoint, map_location="cpu")
    meta = model.metadata
    info = OnnxModelInfo.from_config(meta["config"], meta["class_names"], [tuple(c) for c in meta["colors"] or []])
    out = export_onnx(
        model,
        out_path,
        example_size=example_size or info.size,
        opset=opset,
        overwrite=overwrite,
        exporter=exporter,
        info=info,
    )
    return out, info


def _in_channels(model: nn.Module) -> int:
    enc = getattr(model, "encoder", None)
    conv = getattr(enc, "conv1", None)
    return int(conv.in_channels) if isinstance(conv, nn.Conv2d) else 3


# -- onnxruntime ---------------------------------------------------------------------------------
class OnnxPredictor:
    """Run an exported model with onnxruntime.

    >>> predictor = OnnxPredictor("model.onnx")
    >>> logits = predictor(images)          # float32 N×3×H×W → N×C×H×W
    >>> classes = predictor.predict(images)  # N×H×W int64
    >>> predictor.info.size                 # (W, H) it was trained at; None for files without metadata

    Args:
        path: the ``.onnx`` file.
        providers: onnxruntime execution providers (default: CPU).
        threads: intra-op threads (None: onnxruntime's default). With ``OMP_WAIT_POLICY=PASSIVE``
            in the environment (the ``phgmm`` command sets it) its threads sleep instead of spinning.
    """

    def __init__(
        self, path: str | os.PathLike, providers: Sequence[str] | None = None, threads: int | None = None
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ImportError(f"OnnxPredictor needs onnxruntime. {_INSTALL_HINT}") from exc
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no ONNX model at {self.path}")
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = int(threads)
        if os.environ.get("OMP_WAIT_POLICY", "").strip().upper() == "PASSIVE":
            # the phgmm command's wait policy (phgmm.threads) for onnxruntime's own pool, which spins by default
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=list(providers or ["CPUExecutionProvider"])
            )
        except Exception as exc:  # onnxruntime raises its own classes; the first line says enough
            hint = (
                " (a PyTorch checkpoint: predict with it through --checkpoint)"
                if self.path.suffix.lower() in (".pt", ".pth")
                else ""
            )
            raise ValueError(
                f"{self.path}: not a model onnxruntime can load{hint}: "
                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            ) from None
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        props = self.session.get_modelmeta().custom_metadata_map or {}
        #: the file's :class:`OnnxModelInfo`, or None when it carries none (older exports)
        self.info: OnnxModelInfo | None = OnnxModelInfo.from_metadata(props, str(self.path))

    def __call__(self, images: Any) -> np.ndarray:
        if isinstance(images, torch.Tensor):
            images = images.detach().cpu().numpy()
        x = np.ascontiguousarray(images, dtype=np.float32)
        if x.ndim != 4:
            raise ValueError(f"expected N×3×H×W images, got shape {x.shape}")
        return self.session.run([self.output_name], {self.input_name: x})[0]

    def predict(self, images: Any) -> np.ndarray:
        """Class indices N×H×W."""
        return self(images).argmax(axis=1)
