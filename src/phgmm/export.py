"""ONNX export of the inference graph and an onnxruntime predictor.

Only the inference graph is exported: the model in eval mode, with PHGMM's PostNet removed (it is a
training-only module; PHGMM's eval-mode forward returns N×C×H×W logits and never runs it). The
graph has one input ``image`` (N×3×H×W float32) and one output ``logits`` (N×C×H×W), with dynamic
batch, height and width, so a single file serves every input size.

The exporter tried first is ``torch.onnx.export(..., dynamo=True)`` (``torch.export`` +
onnxscript); if it fails on the installed torch, the TorchScript exporter with ``dynamic_axes`` is
used instead. Weights are stored inside the one ``.onnx`` file (no external-data side file), and
the file is written atomically (temporary file in the same folder + ``os.replace``).

``onnx``, ``onnxscript`` and ``onnxruntime`` are optional dependencies: ``pip install phgmm[onnx]``.
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .io import parse_wxh

__all__ = ["export_onnx", "OnnxPredictor", "InferenceGraph", "register_cli",
           "INPUT_NAME", "OUTPUT_NAME"]

INPUT_NAME = "image"
OUTPUT_NAME = "logits"
_DIMS = {0: "batch", 2: "height", 3: "width"}
_INSTALL_HINT = "ONNX support is optional: install it with `pip install phgmm[onnx]`"

log = logging.getLogger(__name__)


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


def _export_dynamo(graph: nn.Module, example: torch.Tensor, path: str, opset: int | None) -> None:
    # torchvision is not installed here; the exporter's registry logs one warning per torchvision
    # op it skips. Silence that logger for the duration of the export.
    reg_logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    old_level = reg_logger.level
    reg_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(graph, (example,), path, dynamo=True, input_names=[INPUT_NAME],
                              output_names=[OUTPUT_NAME], opset_version=opset, external_data=False,
                              dynamic_shapes=(dict(_DIMS),), optimize=True, verbose=False)
    finally:
        reg_logger.setLevel(old_level)


def _export_torchscript(graph: nn.Module, example: torch.Tensor, path: str, opset: int | None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, (example,), path, dynamo=False, input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME], opset_version=opset or 17,
                          dynamic_axes={INPUT_NAME: dict(_DIMS), OUTPUT_NAME: dict(_DIMS)})


def export_onnx(model: nn.Module, out_path: str | os.PathLike, example_size: Sequence[int] = (384, 768),
                opset: int | None = None, overwrite: bool = False, exporter: str = "auto") -> Path:
    """Export ``model``'s inference graph to ONNX; returns the written path.

    Args:
        model: PHGMM or a baseline (any module whose eval-mode forward gives logits, or an object
            with ``.logits``). It is deep-copied; the original is not modified.
        out_path: the ``.onnx`` file to write (parent folders are created).
        example_size: (H, W) of the example input used for tracing; the exported graph accepts any
            batch, height and width.
        opset: ONNX opset (None: the exporter's default).
        overwrite: replace an existing file (otherwise ``FileExistsError``).
        exporter: ``"auto"`` (dynamo, then TorchScript on failure), ``"dynamo"`` or ``"torchscript"``.
    """
    if exporter not in ("auto", "dynamo", "torchscript"):
        raise ValueError(f"exporter must be 'auto', 'dynamo' or 'torchscript', got {exporter!r}")
    out = Path(out_path)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True (CLI: --overwrite) to replace it")
    try:
        import onnx  # noqa: F401  (both exporters need it)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(_INSTALL_HINT) from exc
    h, w = (int(v) for v in example_size)
    graph = InferenceGraph(model)
    in_channels = _in_channels(graph.model)
    # Batch 2, not 1: torch.export specialises dimensions of size 0/1 to constants.
    example = torch.randn(2, in_channels, h, w)

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        errors: list[str] = []
        done = False
        if exporter in ("auto", "dynamo"):
            try:
                _export_dynamo(graph, example, tmp, opset)
                done = True
            except Exception as exc:  # noqa: BLE001 - any exporter failure triggers the fallback
                if exporter == "dynamo":
                    raise
                errors.append(f"dynamo exporter: {type(exc).__name__}: {exc}")
                log.warning("dynamo ONNX export failed (%s); falling back to the TorchScript exporter", exc)
        if not done:
            try:
                _export_torchscript(graph, example, tmp, opset)
            except Exception as exc:
                errors.append(f"TorchScript exporter: {type(exc).__name__}: {exc}")
                raise RuntimeError("ONNX export failed:\n  " + "\n  ".join(errors)) from exc
        if overwrite or not out.exists():
            os.replace(tmp, out)
        else:  # created by someone else while we exported
            raise FileExistsError(f"{out} appeared during the export; pass overwrite=True to replace it")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def _in_channels(model: nn.Module) -> int:
    enc = getattr(model, "encoder", None)
    conv = getattr(enc, "conv1", None)
    return int(conv.in_channels) if isinstance(conv, nn.Conv2d) else 3


class OnnxPredictor:
    """Run an exported model with onnxruntime.

    >>> predictor = OnnxPredictor("model.onnx")
    >>> logits = predictor(images)          # float32 N×3×H×W → N×C×H×W
    >>> classes = predictor.predict(images)  # N×H×W int64

    Args:
        path: the ``.onnx`` file.
        providers: onnxruntime execution providers (default: CPU).
        threads: intra-op threads (None: onnxruntime's default).
    """

    def __init__(self, path: str | os.PathLike, providers: Sequence[str] | None = None,
                 threads: int | None = None) -> None:
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
        self.session = ort.InferenceSession(str(self.path), sess_options=options,
                                            providers=list(providers or ["CPUExecutionProvider"]))
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

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


# -- CLI -----------------------------------------------------------------------------------------
def register_cli(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``phgmm export --checkpoint CKPT --out model.onnx [--overwrite] [--size WxH]``."""
    p = subparsers.add_parser("export", help="export a trained model's inference graph to ONNX",
                              description="Export the inference graph (eval mode, no PostNet) of a "
                                          "checkpoint to ONNX with dynamic batch, height and width.")
    p.add_argument("--checkpoint", required=True, help="training checkpoint (.pt)")
    p.add_argument("--out", required=True, help="output .onnx file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--size", type=parse_wxh, default=(768, 384),
                   help="example input size WxH used for tracing (default 768x384); the file accepts any size")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    p.add_argument("--exporter", choices=("auto", "dynamo", "torchscript"), default="auto",
                   help="auto: dynamo, falling back to TorchScript")
    p.set_defaults(func=cmd_export)
    return p


def cmd_export(args: argparse.Namespace) -> int:
    from phgmm.engine.checkpoint import load_model_from_checkpoint  # the lead's engine; lazy

    model, _config, class_names, _colors = load_model_from_checkpoint(args.checkpoint, map_location="cpu")
    out = export_onnx(model, args.out, example_size=(args.size[1], args.size[0]), opset=args.opset,
                      overwrite=args.overwrite, exporter=args.exporter)
    n = len(class_names) if class_names is not None else "?"
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB; input '{INPUT_NAME}' N×3×H×W float32, "
          f"output '{OUTPUT_NAME}' N×{n}×H×W)")
    return 0


if __name__ == "__main__":   # ``python -m phgmm.export …`` is ``phgmm export …``
    import sys

    from .cli import main

    raise SystemExit(main(["export", *sys.argv[1:]]))
