"""A network as a folder: ``model.safetensors`` (weights) + ``config.json`` (how to build it, and
what a user of the model needs: class names and colours, working size, input normalisation).

Nothing here unpickles: safetensors holds tensors only and JSON holds the settings. The folder
carries no optimiser state and no PostNet (inference never runs it). :mod:`phgmm.pretrained` builds
the user-facing ``phgmm.load`` / ``phgmm publish`` on top of this.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from ..io import AtomicFile, atomic_write_bytes
from ..version import __version__

__all__ = [
    "WEIGHTS_NAME",
    "CONFIG_NAME",
    "NORMALIZATION",
    "ModelFileError",
    "is_saved_model_dir",
    "save_folder",
    "read_folder",
    "model_from_folder",
]

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
#: The input normalisation every phgmm model is trained with (ImageNet statistics, RGB, [0, 1]).
NORMALIZATION = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "scale": 1 / 255}


class ModelFileError(ValueError):
    """A saved-model folder that cannot be read; the message names the file."""


def is_saved_model_dir(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and (path / CONFIG_NAME).is_file() and (path / WEIGHTS_NAME).is_file()


def _config_from_build(build: dict[str, Any]) -> dict[str, Any]:
    """A run config whose model section rebuilds the network (the keys the config knows)."""
    from ..config import Config, config_to_dict

    cfg = config_to_dict(Config())
    for key, value in build.items():
        if key in cfg["model"]:
            cfg["model"][key] = list(value) if isinstance(value, tuple) else value
    return cfg


def save_folder(
    model: nn.Module,
    out_dir: str | Path,
    config: dict[str, Any] | None = None,
    classes: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` (without PostNet) as ``model.safetensors`` + ``config.json`` in ``out_dir``.

    Args:
        model: a phgmm network; it records how it was built in ``model.build_args``.
        config: the full run config (``config_to_dict``); None derives one from ``build_args``.
        classes: ``{"names": [...], "colors": [[r, g, b], ...]}``.
        overwrite: replace an earlier save; otherwise it is an error.
    """
    from safetensors.torch import save_file

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: exists and is not a folder")
    if is_saved_model_dir(out) and not overwrite:
        raise FileExistsError(f"{out}: already holds a saved model; pass --overwrite (overwrite=True) to replace it")
    build = dict(getattr(model, "build_args", None) or {})
    if not build:
        raise ValueError("this model does not record how it was built; build it with phgmm.models.build_model")
    if build.get("name") == "phgmm":  # the shared model is for inference: no PostNet
        build.update(postnet=None, decode_posterior=0.0)
    config = json.loads(json.dumps(config if config is not None else _config_from_build(build)))
    config.setdefault("model", {}).update(postnet=None, decode_posterior=0.0)
    out.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items() if not k.startswith("postnet.")}
    size = (config.get("data") or {}).get("size")
    meta = {
        "phgmm_version": __version__,
        "build": build,
        "config": config,
        "class_names": (classes or {}).get("names"),
        "colors": (classes or {}).get("colors"),
        "size": list(size) if size else None,
        "normalization": NORMALIZATION,
    }
    with AtomicFile(out / WEIGHTS_NAME) as tmp:  # it also gives safetensors' 0600 file the usual mode
        save_file(weights, str(tmp), metadata={"format": "pt", "phgmm_version": __version__})
    atomic_write_bytes(out / CONFIG_NAME, json.dumps(meta, indent=2).encode())
    return out


def read_folder(path: str | Path) -> dict[str, Any]:
    """A saved folder as a checkpoint-like dict: ``model`` (weights), ``config``, ``classes``,
    ``build`` and ``metadata``; a :class:`ModelFileError` names the file that cannot be read."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    try:
        meta = json.loads((path / CONFIG_NAME).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path / CONFIG_NAME}: not a readable model config ({exc})") from None
    if not isinstance(meta, dict) or "config" not in meta or "build" not in meta:
        raise ModelFileError(f"{path / CONFIG_NAME}: not a phgmm model config (expected 'config' and 'build')")
    try:
        weights = load_file(str(path / WEIGHTS_NAME))
    except (OSError, SafetensorError) as exc:
        raise ModelFileError(f"{path / WEIGHTS_NAME}: not readable safetensors weights ({exc})") from None
    return {
        "model": weights,
        "config": meta["config"],
        "build": meta["build"],
        "classes": {"names": meta.get("class_names"), "colors": meta.get("colors")},
        "metadata": meta,
        "source": str(path),
    }


def model_from_folder(state: dict[str, Any], build: Callable[..., nn.Module]) -> nn.Module:
    """The eval-mode network of a :func:`read_folder` result, with ``model.metadata`` set.

    ``build(name, **kwargs)`` constructs the network from the saved build arguments
    (``phgmm.models.build_model``, or a class's own constructor)."""
    source = state.get("source")
    model = _build_described(state, build)
    _check_classes(state, model)
    _check_size(state)
    wrong = _shape_mismatches(model, state["model"])
    if wrong:
        raise ModelFileError(
            f"{source}: {WEIGHTS_NAME} does not fit the model described in {CONFIG_NAME}: "
            f"{len(wrong)} tensors have another shape (first: {wrong[0]}); was {CONFIG_NAME} "
            f"edited? Publish the checkpoint again (phgmm publish)"
        )
    missing, unexpected = model.load_state_dict(state["model"], strict=False)
    if missing or unexpected:
        raise ModelFileError(
            f"{source}: weights do not fit the model described in {CONFIG_NAME} "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    meta = state["metadata"]
    model.metadata = {
        "class_names": meta.get("class_names"),
        "colors": meta.get("colors"),
        "size": meta.get("size"),
        "normalization": meta.get("normalization", NORMALIZATION),
        "config": state["config"],
        "source": state.get("source"),
    }
    return model.eval()


def _build_described(state: dict[str, Any], build: Callable[..., nn.Module]) -> nn.Module:
    """The network ``config.json``'s ``build`` describes; a setting the network does not take
    (an edited or foreign file) is a :class:`ModelFileError` naming it, not a TypeError."""
    where = f"{state.get('source')}/{CONFIG_NAME}" if state.get("source") else CONFIG_NAME
    args = dict(state["build"])
    name = args.pop("name", None)
    if not isinstance(name, str):
        raise ModelFileError(f'{where}: \'build\' names no network (expected "name": "phgmm", …)')
    try:
        return build(name, **args)
    except TypeError as exc:  # an unexpected keyword: say which, in the file's own terms
        bad = str(exc).rsplit("argument", 1)[-1].strip(" '")
        raise ModelFileError(
            f"{where}: 'build' holds a setting the {name} network does not take "
            f"({bad or exc}); was the file edited? Publish the checkpoint again"
        ) from None
    except (ValueError, KeyError) as exc:
        raise ModelFileError(f"{where}: 'build' cannot be built ({exc})") from None


def _check_classes(state: dict[str, Any], model: nn.Module) -> None:
    """Class names and colours, where given, count the network's output classes: a list cut
    short would name the wrong class for every prediction past its end."""
    where = f"{state.get('source')}/{CONFIG_NAME}" if state.get("source") else CONFIG_NAME
    n = getattr(model, "num_classes", None) or state["build"].get("num_classes")
    for key in ("class_names", "colors"):
        values = state["metadata"].get(key)
        if n is not None and values is not None and len(values) != n:
            raise ModelFileError(
                f"{where}: '{key}' lists {len(values)} entries but the network predicts "
                f"{n} classes; was the file edited? Publish the checkpoint again"
            )


def _check_size(state: dict[str, Any]) -> None:
    """The working size, where recorded, is two positive integers (W, H)."""
    size = state["metadata"].get("size")
    if size is None:
        return
    if not (
        isinstance(size, (list, tuple))
        and len(size) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        where = f"{state.get('source')}/{CONFIG_NAME}" if state.get("source") else CONFIG_NAME
        raise ModelFileError(
            f"{where}: 'size', the working size the model was trained at, must be two "
            f"positive integers [W, H] (e.g. [768, 384]), got {size!r}"
        )


def _shape_mismatches(model: nn.Module, weights: dict[str, Any]) -> list[str]:
    """``name: file [a, b], config [c, d]`` for each tensor whose shape differs from the model's."""
    own = model.state_dict()
    return [
        f"{k}: file {list(v.shape)}, config {list(own[k].shape)}"
        for k, v in weights.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
