"""Checkpoints: written atomically, read with ``weights_only=True``.

A checkpoint holds the model, optimiser, scheduler and AMP scaler states, the position in training
(epoch, step), every RNG state, the resolved config, the class table and the package version —
only tensors and plain Python containers, so ``torch.load(..., weights_only=True)`` reads it and a
file that carries code is refused rather than run.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..io import AtomicFile, DiskFullError, is_disk_full
from ..version import __version__
from .torchfile import CheckpointError, read_torch_file

__all__ = [
    "CheckpointError",
    "config_differences",
    "load_inference_model",
    "save_checkpoint",
    "load_checkpoint",
    "capture_rng",
    "restore_rng",
    "unwrap",
    "init_from_weights",
    "read_torch_file",
    "check_finite_weights",
]


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DDP / DataParallel / torch.compile wrappers."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif _compiled(model):
            model = model._orig_mod
        else:
            return model


def _compiled(model: nn.Module) -> bool:
    """Whether ``model`` is ``torch.compile``'s wrapper. Its module is loaded by torch.compile, so
    a process that never compiled need not import it (seconds) to know the answer."""
    eval_frame = sys.modules.get("torch._dynamo.eval_frame")
    return eval_frame is not None and isinstance(model, eval_frame.OptimizedModule)


def capture_rng() -> dict[str, Any]:
    """Python, NumPy and torch RNG states as weights_only-safe values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    path = Path(path)
    state = {**state, "phgmm_version": __version__}
    try:
        with AtomicFile(path, fsync=True) as tmp:
            torch.save(state, tmp)
    except OSError as exc:
        if is_disk_full(exc):
            raise _disk_full(path, resumable="optimizer" in state) from None
        raise
    return path


def _disk_full(path: Path, resumable: bool) -> DiskFullError:
    """The one line for a checkpoint that did not fit on the disk: what was kept, how to go on."""
    if path.exists():
        kept = f"the previous {path.name} there is complete and unchanged"
        if resumable:  # the earlier file at this path is of the same kind: a training position
            kept += f"; after freeing some space, continue with --resume {path}"
        else:
            kept += "; free some space and run again"
    else:
        kept = f"no {path.name} had been written yet; free some space and run again"
    return DiskFullError(
        f"{path}: no space left on device while saving it. Nothing was lost: the checkpoint "
        f"was written under a temporary name, now removed; {kept}"
    )


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a training checkpoint (``weights_only=True``) or a published model folder
    (``model.safetensors`` + ``config.json``, see :mod:`phgmm.pretrained`); errors name the file
    and say whether it is missing, empty, corrupt or refused because it would run code."""
    from ..models.serialization import ModelFileError, is_saved_model_dir, read_folder

    path = Path(path)
    if path.is_dir():
        if not is_saved_model_dir(path):
            best = path / "checkpoints" / "best.pt"
            if best.is_file():
                raise CheckpointError(f"{path}: a training run, not a model folder: give its checkpoint, {best}")
            raise CheckpointError(
                f"{path}: a folder without model.safetensors and config.json, so not a "
                f"published model (phgmm publish writes one)"
            )
        try:
            return read_folder(path)
        except ModelFileError as exc:
            raise CheckpointError(str(exc)) from None
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    # files a user may well pass by mistake, named for what they are before PyTorch says "corrupt"
    if path.suffix.lower() == ".onnx":
        raise CheckpointError(
            f"{path}: an ONNX model, not a checkpoint: predict with it through `phgmm predict --onnx {path}`"
        )
    if path.name in ("model.safetensors", "config.json") and is_saved_model_dir(path.parent):
        raise CheckpointError(f"{path}: one file of a published model: give its folder, {path.parent}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty (an interrupted copy or download?)")
    state = read_torch_file(path, map_location)
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise CheckpointError(f"{path}: not a phgmm checkpoint (expected the keys 'model' and 'config')")
    state["source"] = str(path)  # for messages; never written back (snapshots are built anew)
    return state


def config_differences(
    saved: dict[str, Any], cfg, section: str = "model", keys: tuple[str, ...] | None = None
) -> list[str]:
    """``"section.key: checkpoint A, here B"`` for every setting of ``section`` (or only ``keys``)
    where a checkpoint's saved config and ``cfg`` disagree."""
    from ..config import config_to_dict

    ours = config_to_dict(cfg).get(section, {})
    theirs = (saved or {}).get(section, {})
    out = []
    for key in keys or tuple(ours):
        a, b = theirs.get(key, ours.get(key)), ours.get(key)
        if a != b and not (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and list(a) == list(b)):
            out.append(f"{section}.{key}: checkpoint {a!r}, here {b!r}")
    return out


def _mismatch(path: str | Path, state: dict[str, Any], cfg, detail: str) -> CheckpointError:
    diffs = config_differences(state.get("config", {}), cfg)
    which = "; ".join(diffs) if diffs else detail
    return CheckpointError(
        f"{path}: its weights do not fit the model of this config ({which}); use the checkpoint's own model settings"
    )


def _model_of_config(state: dict[str, Any], cfg, path: str | Path, keep_postnet: bool = False) -> nn.Module:
    """The eval-mode network of ``cfg`` holding a loaded checkpoint's weights.

    PostNet is left out unless ``keep_postnet`` and the checkpoint has its weights (evaluation's
    latent measures use it to report z's KL; the forward never runs it)."""
    from .builders import build_model_from_config

    keep_postnet = keep_postnet and any(k.startswith("postnet.") for k in state["model"])
    check_finite_weights(state["model"], path)
    try:
        model = build_model_from_config(cfg, inference=not keep_postnet, pretrained=False)
    except (TypeError, ValueError) as exc:
        raise _mismatch(path, state, cfg, str(exc)) from None
    weights = {k: v for k, v in state["model"].items() if keep_postnet or not k.startswith("postnet.")}
    try:
        missing, unexpected = model.load_state_dict(weights, strict=False)
    except RuntimeError as exc:  # a tensor of another shape
        raise _mismatch(path, state, cfg, str(exc).splitlines()[0]) from None
    if missing or unexpected:
        raise _mismatch(path, state, cfg, f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model.eval()


def check_finite_weights(weights: dict[str, Any], path: str | Path) -> None:
    """Refuse weights holding NaN or infinity (a diverged run's): such a model predicts one class
    everywhere, or makes scikit-learn fail on its latent codes, without saying why."""
    bad = [
        k
        for k, v in weights.items()
        if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())
    ]
    if bad:
        raise CheckpointError(
            f"{path}: {len(bad)} of its {len(weights)} weight tensors hold NaN or infinite values "
            f"(first: {bad[0]}): the training that wrote it diverged, so its predictions would "
            f"mean nothing. Use an earlier checkpoint, or train again (a lower train.lr, "
            f"train.grad_clip)"
        )


def load_inference_model(
    path: str | Path,
    map_location: str | torch.device = "cpu",
    *,
    cfg=None,
    keep_postnet: bool = False,
    state: dict[str, Any] | None = None,
) -> nn.Module:
    """The eval-mode model of a training checkpoint or a published folder: the one way a model is
    loaded from a file (``phgmm.load``, ``phgmm predict``, ``phgmm export``, ``phgmm evaluate``,
    an experiment's scoring).

    Without ``cfg``: the network the file describes, on ``map_location``, with ``model.metadata``
    (class names and colours, working size (W, H), normalisation, run config). With ``cfg`` (a
    config resolved from the file's own, e.g. after ``--set``): ``cfg``'s network holding the file's
    weights, without metadata; a model setting where the two disagree is a :class:`CheckpointError`
    naming it. PostNet is left out unless ``keep_postnet`` (with ``cfg``) and the file has its
    weights. ``state``: the file as :func:`load_checkpoint` already read it (it is not read again).
    """
    state = load_checkpoint(path, map_location) if state is None else state
    if cfg is not None:
        return _model_of_config(state, cfg, path, keep_postnet)
    return _described_model(state, Path(path)).to(map_location).eval()


def _described_model(state: dict[str, Any], path: Path) -> nn.Module:
    """The network a read checkpoint (its saved config) or published folder (its ``build``)
    describes, holding its weights, with ``model.metadata``."""
    from ..config import config_from_dict
    from ..models import build_model
    from ..models.serialization import NORMALIZATION, ModelFileError, model_from_folder

    if "build" in state:
        check_finite_weights(state["model"], path)
        try:
            return model_from_folder(state, build_model)
        except ModelFileError as exc:
            raise CheckpointError(str(exc)) from None
    model = _model_of_config(state, config_from_dict(state["config"], f"{path} (config)"), path)
    classes = state.get("classes") or {}
    size = (state["config"].get("data") or {}).get("size")
    model.metadata = {
        "class_names": classes.get("names"),
        "colors": classes.get("colors"),
        "size": list(size) if size else None,
        "normalization": NORMALIZATION,
        "config": state["config"],
        "source": str(path),
    }
    return model


def _names(keys: list[str], shapes: dict[str, tuple] | None = None, most: int = 4) -> str:
    """A short list of tensor names (with "source → here" shapes when given), the rest counted."""
    shown = [f"{k} {list(shapes[k][0])} → {list(shapes[k][1])}" if shapes else k for k in keys[:most]]
    return ", ".join(shown) + (f" and {len(keys) - most} more" if len(keys) > most else "")


def init_from_weights(model: nn.Module, path: str | Path) -> str:
    """Fine-tuning (``model.init_from``): copy into ``model`` every tensor of a training checkpoint or
    published model folder whose name and shape match; the others keep their fresh initialisation.
    Returns one line saying what was loaded and naming what was not (e.g. a classifier for another
    class count). Nothing else is taken from the file: the run starts at step 0 with a new
    optimiser and schedule (``--resume`` continues a run instead). A file none of whose tensors
    fit is an error."""
    source = load_checkpoint(path)["model"]
    own = model.state_dict()
    fits = {k: v for k, v in source.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if not fits:
        raise CheckpointError(
            f"{path}: model.init_from: none of its {len(source)} tensors fits this "
            f"{model.__class__.__name__} (another network or backbone?)"
        )
    model.load_state_dict(fits, strict=False)
    other_shape = {k: (tuple(source[k].shape), tuple(own[k].shape)) for k in own if k in source and k not in fits}
    absent = [k for k in own if k not in source]
    line = f"model.init_from {path}: loaded {len(fits)} of {len(own)} tensors"
    if other_shape:
        line += f"; fresh, another shape: {_names(list(other_shape), other_shape)}"
    if absent:
        line += f"; fresh, not in the file: {_names(absent)}"
    unused = len(source) - len(fits) - len(other_shape)
    if unused:
        line += f"; {unused} of the file's tensors have no place here"
    return line
