"""Checkpoints: written atomically, read with ``weights_only=True``.

A checkpoint holds the model, optimiser, scheduler and AMP scaler states, the position in training
(epoch, step), every RNG state, the resolved config, the class table and the package version —
only tensors and plain Python containers, so ``torch.load(..., weights_only=True)`` reads it and a
file that carries code is refused rather than run.
"""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import __version__

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "capture_rng", "restore_rng",
           "load_model_from_checkpoint", "inference_model", "unwrap"]


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit; the message names the file."""


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DDP / torch.compile wrappers."""
    while True:
        if hasattr(model, "module"):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def capture_rng() -> dict[str, Any]:
    """Python, NumPy and torch RNG states as weights_only-safe values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
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
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {**state, "phgmm_version": __version__}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; errors name the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{path}: refused to load: the file holds objects other than tensors and "
                              f"plain containers (code would run on loading). Details: {exc}") from None
    except Exception as exc:  # truncated/corrupt files raise several different errors
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise CheckpointError(f"{path}: not a phgmm checkpoint (expected the keys 'model' and 'config')")
    state["source"] = str(path)   # for messages; never written back (snapshots are built anew)
    return state


def inference_model(state: dict[str, Any], cfg, path: str | Path) -> nn.Module:
    """The eval-mode network of ``cfg`` (no PostNet) holding a loaded checkpoint's weights."""
    from .builders import build_model_from_config

    model = build_model_from_config(cfg, inference=True)
    weights = {k: v for k, v in state["model"].items() if not k.startswith("postnet.")}
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not fit the model of the config "
                              f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    return model.eval()


def load_model_from_checkpoint(path: str | Path, map_location: str | torch.device = "cpu"):
    """Rebuild the inference model of a checkpoint (no PostNet) → (model, config dict, names, colours)."""
    from ..config import config_from_dict

    state = load_checkpoint(path, map_location)
    model = inference_model(state, config_from_dict(state["config"], f"{path} (config)"), path)
    classes = state.get("classes", {})
    return model, state["config"], classes.get("names"), [tuple(c) for c in classes.get("colors", [])]
