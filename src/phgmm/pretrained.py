"""Loading and sharing trained models: a folder with ``model.safetensors`` + ``config.json``.

Like ``save_pretrained`` / ``from_pretrained`` of segmentation_models_pytorch and transformers,
the folder loads without unpickling anything (safetensors holds tensors only, JSON holds the
settings), carries no optimiser state and no PostNet (inference never runs it), and holds what a
user of the model needs besides the weights: the class names and colours, the working size and
the input normalisation.

>>> import phgmm
>>> model = phgmm.load("runs/demo/checkpoints/best.pt")    # or a published folder  # doctest: +SKIP
>>> model.metadata["class_names"][:3]                                              # doctest: +SKIP
['background', 'sky', 'building']
>>> model.save_pretrained("my-model")                                              # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__

__all__ = ["save_pretrained", "load", "publish", "is_pretrained_dir", "read_pretrained", "WEIGHTS_NAME", "CONFIG_NAME",
           "NORMALIZATION"]

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
#: The input normalisation every phgmm model is trained with (ImageNet statistics, RGB, [0, 1]).
NORMALIZATION = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "scale": 1 / 255}


def is_pretrained_dir(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and (path / CONFIG_NAME).is_file() and (path / WEIGHTS_NAME).is_file()


def save_pretrained(model: nn.Module, out_dir: str | Path, config: dict[str, Any] | None = None,
                    classes: dict[str, Any] | None = None, overwrite: bool = False) -> Path:
    """Write ``model`` (without PostNet) as ``model.safetensors`` + ``config.json`` in ``out_dir``.

    Args:
        model: a phgmm network (built by ``phgmm.models.build_model``, ``PHGMM(...)`` or from a
            checkpoint).
        config: the full run config (``config_to_dict``); None uses the model's own construction
            arguments.
        classes: ``{"names": [...], "colors": [[r, g, b], ...]}``.
        overwrite: replace files of an earlier save; otherwise an existing save is an error.
    """
    from safetensors.torch import save_file

    from .io import atomic_write_bytes

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: exists and is not a folder")
    if is_pretrained_dir(out) and not overwrite:
        raise FileExistsError(f"{out}: already holds a saved model; pass overwrite=True (--overwrite) to replace it")
    out.mkdir(parents=True, exist_ok=True)
    build = dict(getattr(model, "build_args", None) or {})
    if not build:
        raise ValueError("this model does not record how it was built; build it with phgmm.models.build_model")
    if build.get("name") == "phgmm":      # the shared model is for inference: no PostNet
        build.update(postnet=None, decode_posterior=0.0)
    if config is None:
        config = _config_from_build(build)
    config = json.loads(json.dumps(config))   # plain JSON types (tuples → lists)
    config.setdefault("model", {})["postnet"] = None
    config["model"]["decode_posterior"] = 0.0
    weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()
               if not k.startswith("postnet.")}
    size = (config.get("data") or {}).get("size")
    meta = {"phgmm_version": __version__, "build": build, "config": config,
            "class_names": (classes or {}).get("names"), "colors": (classes or {}).get("colors"),
            "size": list(size) if size else None, "normalization": NORMALIZATION}
    tmp = out / f".{WEIGHTS_NAME}.tmp"
    save_file(weights, str(tmp), metadata={"format": "pt", "phgmm_version": __version__})
    tmp.replace(out / WEIGHTS_NAME)
    atomic_write_bytes(out / CONFIG_NAME, json.dumps(meta, indent=2).encode())
    return out


def _config_from_build(build: dict[str, Any]) -> dict[str, Any]:
    """A run config whose model section rebuilds the network (keys the config knows)."""
    from .config import Config, config_to_dict

    cfg = config_to_dict(Config())
    for key, value in build.items():
        if key in cfg["model"]:
            cfg["model"][key] = list(value) if isinstance(value, tuple) else value
    return cfg


def read_pretrained(path: str | Path) -> dict[str, Any]:
    """A published folder as a checkpoint-like dict: ``model`` (weights), ``config``, ``classes``,
    ``build`` and ``metadata``; errors name the file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .engine.checkpoint import CheckpointError

    path = Path(path)
    try:
        meta = json.loads((path / CONFIG_NAME).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path / CONFIG_NAME}: not a readable model config ({exc})") from None
    try:
        weights = load_file(str(path / WEIGHTS_NAME))
    except (OSError, SafetensorError) as exc:
        raise CheckpointError(f"{path / WEIGHTS_NAME}: not readable safetensors weights ({exc})") from None
    if not isinstance(meta, dict) or "config" not in meta or "build" not in meta:
        raise CheckpointError(f"{path / CONFIG_NAME}: not a phgmm model config (expected 'config' and 'build')")
    return {"model": weights, "config": meta["config"], "build": meta["build"],
            "classes": {"names": meta.get("class_names"), "colors": meta.get("colors")},
            "metadata": meta, "source": str(path)}


def load(path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """The eval-mode model of a training checkpoint (``.pt``) or a published folder.

    The model carries ``model.metadata``: class names and colours, working size (W, H),
    normalisation and the run config.
    """
    from .engine.checkpoint import CheckpointError, load_checkpoint

    path = Path(path)
    state = load_checkpoint(path, map_location)
    if "build" in state:
        from .models import build_model
        build = dict(state["build"])
        model = build_model(build.pop("name"), **build)
        missing, unexpected = model.load_state_dict(state["model"], strict=False)
        if missing or unexpected:
            raise CheckpointError(f"{path}: weights do not fit the model described in {CONFIG_NAME} "
                                  f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    else:
        from .config import config_from_dict
        from .engine.checkpoint import inference_model
        model = inference_model(state, config_from_dict(state["config"], f"{path} (config)"), path)
    classes = state.get("classes") or {}
    size = (state["config"].get("data") or {}).get("size")
    model.metadata = {"class_names": classes.get("names"), "colors": classes.get("colors"),
                      "size": list(size) if size else None, "normalization": NORMALIZATION,
                      "config": state["config"], "source": str(path)}
    return model.to(map_location).eval()


def publish(checkpoint: str | Path, out_dir: str | Path, overwrite: bool = False) -> Path:
    """Turn a training checkpoint into a shareable folder (``phgmm publish``)."""
    model = load(checkpoint)
    meta = model.metadata
    return save_pretrained(model, out_dir, config=meta["config"],
                           classes={"names": meta["class_names"], "colors": meta["colors"]}, overwrite=overwrite)
